"""ONNX Runtime backend: any execution provider, thread and optimisation settings."""

from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file
from hilbench_agent.protocol import AgentError

# ONNX tensor type strings -> numpy dtype names.
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}
_OPT_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    aliases = ("ort",)
    model_suffixes = (".onnx", ".ort")
    default_for = (".onnx", ".ort")
    install_hint = "pip install onnxruntime"
    settings = {
        "providers": Setting((list,), "execution providers in priority order, e.g. "
                             "['CUDAExecutionProvider', 'CPUExecutionProvider']"),
        "provider_options": Setting((list,), "one table of options per provider"),
        "intra_op_threads": Setting((int,), "threads inside one operator (0 = runtime default)", minimum=0),
        "inter_op_threads": Setting((int,), "threads across operators (0 = runtime default)", minimum=0),
        "graph_optimization": Setting((str,), "disable | basic | extended | all", choices=_OPT_LEVELS),
        "execution_mode": Setting((str,), "sequential | parallel", choices=("sequential", "parallel")),
    }

    @classmethod
    def probe(cls):
        try:
            import onnxruntime as ort
        except Exception as exc:
            return {"available": False, "reason": "onnxruntime is not installed (%s)" % str(exc).splitlines()[0]}
        return {
            "available": True,
            "version": ort.__version__,
            "providers": list(ort.get_available_providers()),
            "device": ort.get_device(),
        }

    def load(self, model_path, settings):
        check_model_file(model_path, (".onnx", ".ort"))
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise AgentError("backend", "onnxruntime is not installed on this device: %s" % exc)
        opts = ort.SessionOptions()
        if settings.get("intra_op_threads") is not None:
            opts.intra_op_num_threads = int(settings["intra_op_threads"])
        if settings.get("inter_op_threads") is not None:
            opts.inter_op_num_threads = int(settings["inter_op_threads"])
        level = settings.get("graph_optimization")
        if level is not None:
            if level not in _OPT_LEVELS:
                raise AgentError("backend", "graph_optimization must be one of %s, not %r" % ("|".join(_OPT_LEVELS), level))
            opts.graph_optimization_level = {
                "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            }[level]
        mode = settings.get("execution_mode")
        if mode is not None:
            if mode not in ("sequential", "parallel"):
                raise AgentError("backend", "execution_mode must be sequential or parallel, not %r" % mode)
            opts.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL if mode == "sequential"
                                   else ort.ExecutionMode.ORT_PARALLEL)
        providers = list(settings.get("providers") or ["CPUExecutionProvider"])
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise AgentError("backend", "execution provider %s is not available on this device (available: %s)"
                             % (", ".join(missing), ", ".join(available)))
        provider_options = settings.get("provider_options")
        if provider_options is not None and len(provider_options) != len(providers):
            raise AgentError("backend", "provider_options has %d entries but providers has %d"
                             % (len(provider_options), len(providers)))
        try:
            if provider_options is not None:
                self.session = ort.InferenceSession(model_path, sess_options=opts, providers=providers,
                                                    provider_options=provider_options)
            else:
                self.session = ort.InferenceSession(model_path, sess_options=opts, providers=providers)
        except Exception as exc:
            raise AgentError("model", "onnxruntime cannot load %s: %s" % (model_path, _one_line(exc)))
        self._settings = dict(settings)
        self._opts = opts
        self._feeds = None
        self._outputs = None

    def input_specs(self):
        specs = []
        for inp in self.session.get_inputs():
            dtype = _ORT_TYPES.get(inp.type)
            if dtype is None:
                raise AgentError("input", "input %r has type %s, which hilbench cannot generate" % (inp.name, inp.type))
            shape = [d if isinstance(d, int) else (d or None) for d in inp.shape]
            specs.append(InputSpec(inp.name, shape, dtype))
        return specs

    def set_inputs(self, arrays):
        self._feeds = arrays
        run = self.session.run
        feeds = arrays

        def invoke():
            return run(None, feeds)

        # A closure keeps the timed call to the runtime call and nothing else.
        self.invoke = invoke

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def outputs(self):
        return self.session.run(None, self._feeds)

    def effective_settings(self):
        return {
            "providers": self.session.get_providers(),
            "intra_op_threads": self._opts.intra_op_num_threads,
            "inter_op_threads": self._opts.inter_op_num_threads,
            "graph_optimization": self._settings.get("graph_optimization", "all"),
        }

    def close(self):
        self.session = None


def _one_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if len(lines) > 1 and len(lines[0]) < 20 else lines[0]
