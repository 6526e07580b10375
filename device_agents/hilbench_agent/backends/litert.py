"""LiteRT backend (ai-edge-litert), falling back to tflite-runtime or TensorFlow Lite."""

import os

from hilbench_agent import edgetpu
from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file
from hilbench_agent.protocol import AgentError


def _import_interpreter():
    """(module, package name, version) of the first LiteRT flavour found."""
    try:
        from ai_edge_litert import interpreter as mod
        try:
            import ai_edge_litert
            version = getattr(ai_edge_litert, "__version__", None)
        except Exception:
            version = None
        if version is None:
            version = _dist_version("ai-edge-litert")
        return mod, "ai-edge-litert", version
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as mod
        return mod, "tflite-runtime", getattr(tflite_runtime, "__version__", None) or _dist_version("tflite-runtime")
    except ImportError:
        pass
    try:
        import tensorflow as tf
        return tf.lite, "tensorflow", tf.__version__
    except ImportError:
        pass
    return None, None, None


def _dist_version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None


class LiteRTBackend(Backend):
    name = "litert"
    aliases = ("tflite",)
    model_suffixes = (".tflite",)
    default_for = (".tflite",)
    install_hint = "pip install ai-edge-litert (or tflite-runtime)"
    settings = {
        "threads": Setting((int,), "interpreter threads (-1 = runtime default)", minimum=-1),
        "xnnpack": Setting((bool,), "use the XNNPACK CPU delegate (default true)"),
        "delegate": Setting((str,), "path of an external delegate library, e.g. libedgetpu.so.1 "
                                       "(\"edgetpu\": the platform's Edge TPU library)"),
        "delegate_options": Setting((dict,), "options passed to the external delegate"),
        "allow_cpu_fallback": Setting((bool,), "run a model not compiled for the Edge TPU with the Edge TPU "
                                               "delegate anyway (every op on the CPU; default false: refused)"),
    }

    @classmethod
    def probe(cls):
        mod, package, version = _import_interpreter()
        if mod is None:
            return {"available": False, "reason": "neither ai-edge-litert nor tflite-runtime is installed"}
        return {"available": True, "package": package, "version": version}

    def load(self, model_path, settings):
        check_model_file(model_path, (".tflite",))
        # The Edge TPU rules (hilbench_agent/edgetpu.py), before anything loads. Only an Edge TPU job reads the file
        # for them; a compiled model without the delegate is LiteRT's "unresolved custom op" below, said the same way.
        compiled = None
        if edgetpu.is_edgetpu_delegate(settings.get("delegate")):
            compiled = edgetpu.is_compiled(model_path)
            refusal = edgetpu.refusal(os.path.basename(model_path), compiled, settings.get("delegate"),
                                      settings.get("allow_cpu_fallback", False))
            if refusal:
                raise AgentError("model", refusal)
        mod, package, version = _import_interpreter()
        if mod is None:
            raise AgentError("backend", "LiteRT is not installed on this device (pip install ai-edge-litert, or tflite-runtime)")
        kwargs = {"model_path": model_path}
        threads = settings.get("threads")
        if threads is not None:
            kwargs["num_threads"] = int(threads)
        xnnpack = settings.get("xnnpack", True)
        if not xnnpack:
            resolver = getattr(mod, "OpResolverType", None)
            if resolver is None:
                raise AgentError("backend", "%s %s cannot turn XNNPACK off" % (package, version))
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        delegate_path = settings.get("delegate")
        self._edgetpu = None
        if delegate_path:
            is_tpu = edgetpu.is_edgetpu_delegate(delegate_path)
            if is_tpu:
                delegate_path = edgetpu.resolve(delegate_path)
            try:
                delegate = mod.load_delegate(delegate_path, settings.get("delegate_options") or {})
            except Exception as exc:
                if is_tpu:
                    raise AgentError("backend", edgetpu.load_error(delegate_path, exc))
                raise AgentError("backend", "cannot load delegate %s: %s" % (delegate_path, str(exc).splitlines()[0] if str(exc) else exc))
            kwargs["experimental_delegates"] = [delegate]
            if is_tpu:
                self._edgetpu = edgetpu.record(delegate_path, settings.get("delegate_options"), compiled)
        try:
            self.interp = mod.Interpreter(**kwargs)
            self.interp.allocate_tensors()
        except ValueError as exc:
            raise AgentError("model", "LiteRT cannot load %s: %s" % (model_path, str(exc).splitlines()[0]))
        except Exception as exc:
            if compiled is None and edgetpu.needs_delegate(exc):
                raise AgentError("model", edgetpu.refusal(os.path.basename(model_path), True, None, False))
            raise AgentError("model", "LiteRT cannot load %s: %s" % (model_path, str(exc).splitlines()[0] if str(exc) else exc))
        self.package = package
        self.version = version
        self._settings = dict(settings)
        self._resized = False

    def input_specs(self):
        specs = []
        for d in self.interp.get_input_details():
            signature = d.get("shape_signature")
            shape = list(signature if signature is not None and len(signature) else d["shape"])
            shape = [int(x) if int(x) >= 0 else None for x in shape]
            quant = d.get("quantization") or (0.0, 0)
            quant = (float(quant[0]), int(quant[1])) if quant[0] else None
            dtype = d["dtype"].__name__ if hasattr(d["dtype"], "__name__") else str(d["dtype"])
            specs.append(InputSpec(d["name"], shape, dtype, quant))
        return specs

    def set_inputs(self, arrays):
        details = self.interp.get_input_details()
        resized = False
        for d in details:
            arr = arrays[d["name"]]
            if list(d["shape"]) != list(arr.shape):
                self.interp.resize_tensor_input(d["index"], list(arr.shape))
                resized = True
        if resized:
            self.interp.allocate_tensors()
            details = self.interp.get_input_details()
        for d in details:
            self.interp.set_tensor(d["index"], arrays[d["name"]])
        # Inputs stay bound: the timed call is the bare invoke().
        self.invoke = self.interp.invoke

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def outputs(self):
        return [self.interp.get_tensor(d["index"]) for d in self.interp.get_output_details()]

    def effective_settings(self):
        out = {
            "runtime": self.package,
            "threads": self._settings.get("threads", -1),
            "xnnpack": bool(self._settings.get("xnnpack", True)),
            "delegate": self._settings.get("delegate"),
        }
        if getattr(self, "_edgetpu", None):
            # USB or PCIe, runtime version, clock (std/max): what the Edge TPU run really had
            out["edgetpu"] = dict(self._edgetpu, allow_cpu_fallback=bool(self._settings.get("allow_cpu_fallback")))
        return out

    def close(self):
        self.interp = None
