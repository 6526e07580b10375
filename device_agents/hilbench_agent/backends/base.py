"""The backend contract and the input generation shared by every backend."""

import os

from hilbench_agent.protocol import AgentError


class InputSpec(object):
    """One model input: name, shape (ints; None or a name for a dynamic dimension; the shape itself None
    when the model does not say even its rank, as a bare TorchScript file), dtype name (numpy's), and
    quantisation (scale, zero_point) or None."""

    def __init__(self, name, shape, dtype, quantization=None):
        self.name = name
        self.shape = list(shape) if shape is not None else None
        self.dtype = dtype
        self.quantization = quantization

    def is_dynamic(self):
        return self.shape is None or any(not isinstance(d, int) or d < 0 for d in self.shape)

    def to_dict(self):
        out = {"name": self.name, "shape": self.shape, "dtype": self.dtype}
        if self.quantization:
            out["quantization"] = list(self.quantization)
        return out


class Setting(object):
    """One job setting a backend accepts: the Python types a plan may give, a description, and where the
    value is bounded, the values it may take (``choices``) or its smallest value (``minimum``). The host
    checks plans against these before anything starts; the agent checks jobs against the same."""

    def __init__(self, types, description, choices=None, minimum=None):
        self.types = tuple(types)
        self.description = description
        self.choices = tuple(choices) if choices is not None else None
        self.minimum = minimum

    def problem(self, key, value):
        """One line saying what is wrong with ``value`` for this setting, or None."""
        names = "/".join(t.__name__ for t in self.types)
        if isinstance(value, bool) and bool not in self.types:
            return "setting %r must be %s, not a boolean" % (key, names)
        if not isinstance(value, self.types):
            return "setting %r must be %s, not %s" % (key, names, type(value).__name__)
        if self.choices is not None and value not in self.choices:
            return "setting %r must be one of %s, not %r" % (key, ", ".join(map(str, self.choices)), value)
        if self.minimum is not None and not isinstance(value, bool) and value < self.minimum:
            return "setting %r must be at least %s, not %r" % (key, self.minimum, value)
        return None


#: Settings every backend takes (the registry adds them to each backend's own).
COMMON_SETTINGS = {
    "require_offload": Setting((bool,), "fail the run unless the accelerator ran every node (overrides the "
                               "policy's require_offload)"),
}


def offload_verdict(accelerator, total=None, accelerated=None, cpu=None, partitions=None, cpu_ops=(), source="",
                    **extra):
    """The per-run offload verdict (docs/backends.md, "Offload verdicts"): the dict the agent sends as the result's
    ``offload``; counts None where the runtime cannot tell, and ``source`` saying where they came from or why not.
    ``cpu_ops``: op types in graph order (distinct, at most 32 of at most 64 characters are kept)."""
    ops = []
    for op in cpu_ops:
        op = str(op)[:64]
        if op not in ops:
            ops.append(op)
        if len(ops) >= 32:
            break
    out = {"accelerator": accelerator, "nodes_total": total, "nodes_accelerated": accelerated, "nodes_cpu": cpu,
           "partitions": partitions, "cpu_ops": ops, "source": source}
    out.update((k, v) for k, v in extra.items() if v is not None)
    return out


def offload_problem(offload):
    """Why a run with ``require_offload`` fails (one line), or None: the agent's copy of the host's rule
    (harness/analysis/offload.py ``required_problem``)."""
    offload = offload or {}
    accelerator = offload.get("accelerator")
    if accelerator == "cpu":
        return None
    source = offload.get("source") or "no source given"
    if accelerator is None:
        return "require_offload: the offload could not be verified (%s)" % source
    total, acc, cpu = offload.get("nodes_total"), offload.get("nodes_accelerated"), offload.get("nodes_cpu")
    ops = offload.get("cpu_ops") or []
    if cpu:
        first = "; the first op left on the CPU is %s" % ops[0] if ops else ""
        return "require_offload: %d of %s nodes ran on the CPU, not on %s%s (%s)" % (
            cpu, total if total is not None else "?", accelerator, first, source)
    if total is None or acc is None:
        return "require_offload: how much of the model %s ran could not be verified (%s)" % (accelerator, source)
    if acc < total:
        return "require_offload: only %d of %d nodes ran on %s (%s)" % (acc, total, accelerator, source)
    return None


class Backend(object):
    """Life cycle: ``probe()`` (class method, never raises) -> ``load(model, settings)``
    -> ``input_specs()`` -> ``set_inputs({name: array})`` -> ``invoke()`` many times
    -> ``outputs()`` -> ``close()``. Failures raise ``AgentError`` with category
    ``backend``, ``model`` or ``input``.

    A backend declares itself in its class, and nowhere else: the agent's registry
    (:mod:`hilbench_agent.backends`) finds every ``Backend`` subclass in this package, and the
    host derives plan defaults and the validation of settings from these attributes."""

    #: the name plans and stored runs use
    name = "base"
    #: other names a plan may write (``ort`` for ``onnxruntime``)
    aliases = ()
    #: model file suffixes it opens; ``None`` when it needs no model file (the synthetic stand-in)
    model_suffixes = ()
    #: the suffixes it runs by default when a plan names no backend for a model
    default_for = ()
    #: {setting: Setting}: every job setting it accepts
    settings = {}
    #: what to install on the device when ``probe`` finds it missing (doctor's remedy)
    install_hint = ""
    needs_model = True

    @classmethod
    def probe(cls):
        raise NotImplementedError

    def prepare(self, model_path, settings, shapes=None):
        """Build or compile the model ahead of ``load`` where the runtime does (a TensorRT engine, a compiled
        Core ML model), using the backend's cache on the device. The agent times it apart from ``load``.
        ``shapes``: the job's input shapes ({name: [dims]}, or None), which a build may specialise for.
        Returns None (nothing to build) or ``{"cache": "hit" | "miss" | "off", ...}``: what was built and
        whether the cache had it. The default builds nothing."""
        return None

    def load(self, model_path, settings):
        raise NotImplementedError

    def input_specs(self):
        raise NotImplementedError

    def set_inputs(self, arrays):
        raise NotImplementedError

    def invoke(self):
        raise NotImplementedError

    def outputs(self):
        raise NotImplementedError

    def effective_settings(self):
        """Settings as the runtime applied them (threads, providers, delegates)."""
        return {}

    def offload(self, after_run=False):
        """The offload verdict (:func:`offload_verdict`): how much of the model the accelerator runs. The agent
        asks after ``set_inputs`` (before the first inference; ``require_offload`` fails the run there) and, where
        that answer was None (a runtime that can tell only from a run, off the timed loop), again with
        ``after_run`` after the measured loops. The default says the backend does not tell."""
        return offload_verdict(None, source="the %s backend does not report where its nodes run" % self.name)

    def take_gpu_ns(self):
        """The accelerator time (ns, CUDA events) of every ``invoke`` since the last call, in order, and forget
        them; None for a backend that times nothing on an accelerator (the default). The agent calls it after
        each loop and sends the times beside the host latencies (``gpu_ns``)."""
        return None

    def close(self):
        pass


def check_model_file(path, suffixes):
    if not path:
        raise AgentError("model", "the job names no model file")
    if not os.path.exists(path):
        raise AgentError("model", "model file not found: %s" % path)
    if not os.path.isfile(path) and not path.endswith(".mlpackage"):
        raise AgentError("model", "model path is not a file: %s" % path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise AgentError("model", "model file is empty: %s" % path)
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise AgentError("model", "%s is not a %s model" % (path, " or ".join(suffixes)))


def resolve_shape(spec, shapes):
    """The concrete shape of ``spec``: the job's shape where given, else the model's
    (which must then be static)."""
    given = shapes.get(spec.name) if shapes else None
    if spec.shape is None:
        if given is None:
            raise AgentError("input", "the model does not say the shape of input %r: give it in the plan "
                             "([models.inputs] shapes = { %s = [...] })" % (spec.name, spec.name))
        return [int(d) for d in given]
    if given is not None:
        given = [int(d) for d in given]
        if len(given) != len(spec.shape):
            raise AgentError("input", "input %r: the job gives shape %s but the model's input has rank %d (%s)"
                             % (spec.name, given, len(spec.shape), spec.shape))
        for want, got in zip(spec.shape, given):
            if isinstance(want, int) and want >= 0 and want != got:
                raise AgentError("input", "input %r: the job gives shape %s but the model fixes it to %s"
                                 % (spec.name, given, spec.shape))
        return given
    if spec.is_dynamic():
        raise AgentError("input", "input %r has a dynamic shape %s: give its shape in the plan "
                         "([models.inputs] shapes = { %s = [...] })" % (spec.name, spec.shape, spec.name))
    return list(spec.shape)


def check_shape_names(specs, shapes):
    """Every input the job's ``shapes`` names must be one of the model's: a typo would otherwise be ignored
    (and the input it meant generated at the model's own shape, or refused as dynamic)."""
    names = [s.name for s in specs]
    unknown = sorted(str(k) for k in (shapes or {}) if k not in names)
    if unknown:
        raise AgentError("input", "[models.inputs] shapes names %s %s, which the model does not have (its inputs: %s)"
                         % ("input" if len(unknown) == 1 else "inputs", ", ".join(repr(u) for u in unknown),
                            ", ".join(names) or "none"))


def generate_inputs(specs, shapes=None, seed=0):
    """Arrays for every input from the model's declared shapes, dtypes and quantisation."""
    check_shape_names(specs, shapes)
    import numpy as np

    rng = np.random.RandomState(seed)
    arrays = {}
    for spec in specs:
        shape = resolve_shape(spec, shapes or {})
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            raise AgentError("input", "input %r has dtype %r, which cannot be generated" % (spec.name, spec.dtype))
        if dtype.kind == "f":
            arr = rng.random_sample(shape).astype(dtype)
        elif dtype.kind in "iu":
            if spec.quantization and spec.quantization[0]:
                # Quantise uniform [0, 1) data the way a real preprocessor would.
                scale, zero_point = spec.quantization
                info = np.iinfo(dtype)
                real = rng.random_sample(shape)
                arr = np.clip(np.round(real / scale + zero_point), info.min, info.max).astype(dtype)
            elif dtype.itemsize >= 4:
                arr = rng.randint(0, 100, size=shape).astype(dtype)
            else:
                info = np.iinfo(dtype)
                arr = rng.randint(info.min, info.max + 1, size=shape).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.randint(0, 2, size=shape).astype(dtype)
        else:
            raise AgentError("input", "input %r has dtype %s, which cannot be generated; give an inputs file"
                             % (spec.name, dtype))
        arrays[spec.name] = arr
    return arrays


def load_inputs(path, specs, shapes=None):
    """Arrays read from a user's .npy (single-input models) or .npz (keyed by input name)."""
    check_shape_names(specs, shapes)
    import numpy as np

    if not os.path.isfile(path):
        raise AgentError("input", "inputs file not found: %s" % path)
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise AgentError("input", "inputs file %s cannot be read: %s" % (path, str(exc).splitlines()[0] if str(exc) else exc))
    if isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise AgentError("input", "inputs file %s holds one array but the model has %d inputs (%s): use an .npz keyed by input name"
                             % (path, len(specs), ", ".join(s.name for s in specs)))
        found = {specs[0].name: data}
    else:
        keys = list(data.keys())
        if len(specs) == 1 and len(keys) == 1:
            found = {specs[0].name: data[keys[0]]}
        else:
            missing = [s.name for s in specs if s.name not in keys]
            if missing:
                raise AgentError("input", "inputs file %s has no array for input(s) %s (it has %s)"
                                 % (path, ", ".join(missing), ", ".join(keys)))
            found = dict((s.name, data[s.name]) for s in specs)
    arrays = {}
    for spec in specs:
        arr = found[spec.name]
        want = np.dtype(spec.dtype)
        if arr.dtype != want:
            if arr.dtype.kind == want.kind == "f":
                arr = arr.astype(want)
            else:
                raise AgentError("input", "inputs file %s: array %r is %s but the model expects %s"
                                 % (path, spec.name, arr.dtype, want))
        try:
            resolve_shape(spec, {spec.name: list(arr.shape)})
        except AgentError:
            raise AgentError("input", "inputs file %s: array %r has shape %s but the model expects %s"
                             % (path, spec.name, list(arr.shape), spec.shape))
        arrays[spec.name] = np.ascontiguousarray(arr)
    return arrays
