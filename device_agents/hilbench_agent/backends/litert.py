"""LiteRT backend (ai-edge-litert), falling back to tflite-runtime or TensorFlow Lite.

Where the nodes run (the offload verdict, docs/backends.md "Offload verdicts") is read from the interpreter's
node list (``_get_ops_details()``): each delegate partition is a ``DELEGATE`` node appended after the model's
own nodes, taking the partition's inputs and giving its outputs, so the model's nodes it replaced are those
between the two. Delegates given in the job are applied when the interpreter is made, the default XNNPACK one at
``allocate_tensors``, so the node list read in between tells them apart: with an external delegate (Edge TPU,
GPU, NNAPI, ...) the nodes XNNPACK took still run on the CPU.
"""

import os

from hilbench_agent import edgetpu
from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file, offload_verdict
from hilbench_agent.protocol import AgentError

#: the Edge TPU compiler's custom op: a compiled subgraph the Edge TPU delegate runs
EDGETPU_OP = edgetpu.EDGETPU_CUSTOM_OP.decode()
#: ``delegate = "gpu"``: the GPU delegate's library names, tried in order
GPU_DELEGATES = ("libtensorflowlite_gpu_delegate.so", "libtensorflowlite_gpu_gl.so")


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
                                       "(\"edgetpu\": the platform's Edge TPU library; \"gpu\": LiteRT's GPU delegate)"),
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
        if delegate_path == "gpu":
            delegate_path, delegate = _gpu_delegate(mod, settings.get("delegate_options") or {})
            kwargs["experimental_delegates"] = [delegate]
        elif delegate_path:
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
        self._delegate_path = delegate_path
        self._external_nodes = None
        try:
            self.interp = mod.Interpreter(**kwargs)
            if delegate_path:
                # The job's delegate is applied by now, XNNPACK not yet (it comes with allocate_tensors).
                self._external_nodes = _delegate_nodes(self.interp)
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

    def offload(self, after_run=False):
        delegate = self._delegate_path
        xnnpack = bool(self._settings.get("xnnpack", True))
        accelerator = _accelerator_name(delegate) if delegate else ("XNNPACK" if xnnpack else "cpu")
        try:
            nodes = self.interp._get_ops_details()
        except Exception as exc:
            return offload_verdict(accelerator, source="%s %s does not list its nodes (_get_ops_details: %s)"
                                   % (self.package, self.version, str(exc).splitlines()[0] if str(exc) else exc))
        return litert_verdict(nodes, accelerator, self._external_nodes if delegate else None,
                              "%s %s node list (_get_ops_details)" % (self.package, self.version))

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


def _gpu_delegate(mod, options):
    """(library, delegate) of LiteRT's GPU delegate (``delegate = "gpu"``), or a one-line error saying how to get it."""
    errors = []
    for name in GPU_DELEGATES:
        try:
            return name, mod.load_delegate(name, options)
        except Exception as exc:
            errors.append("%s: %s" % (name, str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__))
    raise AgentError("backend", "delegate = \"gpu\": the LiteRT GPU delegate is not on this device (%s): build "
                     "libtensorflowlite_gpu_delegate.so for it (bazel build //tensorflow/lite/delegates/gpu:"
                     "libtensorflowlite_gpu_delegate.so) and put it on LD_LIBRARY_PATH, or give its path as delegate"
                     % "; ".join(errors))


def _accelerator_name(path):
    """What a delegate library is called in the verdict: edgetpu, GPU, NNAPI, Hexagon, else its file name."""
    if edgetpu.is_edgetpu_delegate(path):
        return "edgetpu"
    base = os.path.basename(str(path)).lower()
    for word, name in (("edgetpu", "edgetpu"), ("gpu", "GPU"), ("nnapi", "NNAPI"), ("hexagon", "Hexagon"),
                       ("qnn", "QNN"), ("xnnpack", "XNNPACK")):
        if word in base:
            return name
    return os.path.basename(str(path))[:64]


def _delegate_nodes(interp):
    """The indices of the DELEGATE nodes the interpreter has now, or None where it cannot list them."""
    try:
        return set(n["index"] for n in interp._get_ops_details() if n.get("op_name") == "DELEGATE")
    except Exception:
        return None


def _partition(node, model_nodes, producer):
    """The model's nodes a DELEGATE ``node`` replaced: walking back from its outputs to its inputs."""
    inputs = set(int(t) for t in node.get("inputs", ()))
    stack = [int(t) for t in node.get("outputs", ())]
    part = set()
    while stack:
        index = producer.get(stack.pop())
        if index is None or index in part:
            continue
        part.add(index)
        stack.extend(int(t) for t in model_nodes[index].get("inputs", ()) if int(t) >= 0 and int(t) not in inputs)
    return part


def litert_verdict(nodes, accelerator, external, source):
    """The offload verdict of a LiteRT node list (``_get_ops_details()``). ``external``: the indices of the DELEGATE
    nodes the job's own delegate made (read before ``allocate_tensors``), None when the job named no delegate (then
    every DELEGATE node is XNNPACK's, the accelerator)."""
    model_nodes = dict((n["index"], n) for n in nodes if n.get("op_name") != "DELEGATE")
    delegates = [n for n in nodes if n.get("op_name") == "DELEGATE"]
    producer = {}
    for index in sorted(model_nodes):
        for t in model_nodes[index].get("outputs", ()):
            producer[int(t)] = index
    mine = [d for d in delegates if external is None or d["index"] in external]
    accelerated = set()
    for d in mine:
        accelerated |= _partition(d, model_nodes, producer)
    partitions = len(mine)
    if accelerator == "edgetpu":
        # Each Edge TPU custom op is a compiled subgraph the Edge TPU runs.
        custom = set(i for i, n in model_nodes.items() if n.get("op_name") == EDGETPU_OP) - accelerated
        accelerated |= custom
        partitions += len(custom)
    total = len(model_nodes)
    if accelerator == "cpu":
        return offload_verdict("cpu", total, 0, total, 0, (), source + "; XNNPACK is off: builtin kernels only")
    left = [model_nodes[i].get("op_name", "?") for i in sorted(model_nodes) if i not in accelerated]
    how = ("%d %s partition(s) replace %d of %d nodes" % (partitions, accelerator, len(accelerated), total))
    if external is not None and len(delegates) > len(mine):
        how += "; the XNNPACK partitions of the rest run on the CPU"
    return offload_verdict(accelerator, total, len(accelerated), total - len(accelerated), partitions, left,
                           "%s: %s" % (source, how))
