"""Inference backends the agent can drive.

A backend is a small contract (see :class:`base.Backend`): ``probe()`` says
whether it can run here, ``load()`` opens a model, ``input_specs()`` describes
the inputs, ``set_inputs()`` binds arrays, ``invoke`` is the one call the timed
loop measures, ``outputs()`` returns the last results, ``close()`` frees it.

``SETTINGS`` is the single schema of every backend's job settings; the host
imports it to validate plans before anything is started.
"""

from hilbench_agent.protocol import AgentError

#: backend name -> {setting: (accepted python types, description)}
SETTINGS = {
    "onnxruntime": {
        "providers": ((list,), "execution providers in priority order, e.g. ['CUDAExecutionProvider', 'CPUExecutionProvider']"),
        "provider_options": ((list,), "one table of options per provider"),
        "intra_op_threads": ((int,), "threads inside one operator (0 = runtime default)"),
        "inter_op_threads": ((int,), "threads across operators (0 = runtime default)"),
        "graph_optimization": ((str,), "disable | basic | extended | all"),
        "execution_mode": ((str,), "sequential | parallel"),
    },
    "litert": {
        "threads": ((int,), "interpreter threads (-1 = runtime default)"),
        "xnnpack": ((bool,), "use the XNNPACK CPU delegate (default true)"),
        "delegate": ((str,), "path of an external delegate library, e.g. libedgetpu.so.1"),
        "delegate_options": ((dict,), "options passed to the external delegate"),
    },
    "tensorrt": {
        "fp16": ((bool,), "allow FP16 kernels when building from ONNX"),
        "int8": ((bool,), "allow INT8 kernels when building from ONNX (needs a calibrated/QDQ model)"),
        "workspace_mb": ((int,), "builder workspace limit in MiB"),
        "device": ((int,), "CUDA device index"),
    },
    "coreml": {
        "compute_units": ((str,), "ALL | CPU_ONLY | CPU_AND_GPU | CPU_AND_NE"),
    },
    "synthetic": {
        "latency_ms": ((int, float), "mean latency of one stand-in invoke"),
        "jitter_ms": ((int, float), "standard deviation of the stand-in latency"),
        "first_ms": ((int, float), "latency of the first invoke"),
        "load_ms": ((int, float), "time the stand-in model load takes"),
        "spin": ((bool,), "busy-wait instead of sleeping (exact, burns a core)"),
        "seed": ((int,), "seed of the latency noise"),
        "fail_at": ((int,), "raise a backend error at this invoke (for testing)"),
        "crash_at": ((int,), "kill the agent process at this invoke (for testing)"),
        "hang_at": ((int,), "hang at this invoke (for testing)"),
    },
}

#: Aliases users may write in plans.
ALIASES = {"ort": "onnxruntime", "tflite": "litert", "trt": "tensorrt"}

#: Which model file suffixes each backend accepts (None: no model file needed).
MODEL_SUFFIXES = {
    "onnxruntime": (".onnx", ".ort"),
    "litert": (".tflite",),
    "tensorrt": (".onnx", ".engine", ".plan", ".trt"),
    "coreml": (".mlmodel", ".mlpackage"),
    "synthetic": None,
}


def canonical_name(name):
    return ALIASES.get(name, name)


def get_backend_class(name):
    name = canonical_name(name)
    if name == "onnxruntime":
        from hilbench_agent.backends.onnxruntime import OnnxRuntimeBackend
        return OnnxRuntimeBackend
    if name == "litert":
        from hilbench_agent.backends.litert import LiteRTBackend
        return LiteRTBackend
    if name == "synthetic":
        from hilbench_agent.backends.synthetic import SyntheticBackend
        return SyntheticBackend
    if name == "tensorrt":
        from hilbench_agent.backends.tensorrt import TensorRTBackend
        return TensorRTBackend
    if name == "coreml":
        from hilbench_agent.backends.coreml import CoreMLBackend
        return CoreMLBackend
    raise AgentError("backend", "unknown backend %r (known: %s)" % (name, ", ".join(sorted(SETTINGS))))


def validate_settings(name, settings):
    """Return a list of one-line problems with ``settings`` for backend ``name``."""
    name = canonical_name(name)
    schema = SETTINGS.get(name)
    if schema is None:
        return ["unknown backend %r (known: %s)" % (name, ", ".join(sorted(SETTINGS)))]
    problems = []
    for key, value in sorted(settings.items()):
        if key not in schema:
            problems.append("unknown setting %r for backend %s (known: %s)" % (key, name, ", ".join(sorted(schema))))
            continue
        types = schema[key][0]
        if isinstance(value, bool) and bool not in types:
            problems.append("setting %r must be %s, not a boolean" % (key, "/".join(t.__name__ for t in types)))
        elif not isinstance(value, types):
            problems.append("setting %r must be %s, not %s" % (key, "/".join(t.__name__ for t in types), type(value).__name__))
    return problems


def probe_all():
    """Probe every backend; returns {name: {available, version, reason, ...}}."""
    return probe_some(sorted(SETTINGS))


def probe_some(names):
    """Probe the named backends (unknown names are left out)."""
    found = {}
    for name in sorted(set(canonical_name(n) for n in names if canonical_name(n) in SETTINGS)):
        try:
            found[name] = get_backend_class(name).probe()
        except Exception as exc:  # a probe must never take the agent down
            found[name] = {"available": False, "reason": "probe failed: %s" % _first_line(exc)}
    return found


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]
