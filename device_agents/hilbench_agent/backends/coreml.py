"""Core ML backend (macOS), through coremltools' MLModel.predict."""

import sys

from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file
from hilbench_agent.protocol import AgentError

_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
_FEATURE_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32"}


class CoreMLBackend(Backend):
    name = "coreml"
    model_suffixes = (".mlmodel", ".mlpackage")
    default_for = (".mlmodel", ".mlpackage")
    install_hint = "pip install coremltools (macOS)"
    settings = {
        "compute_units": Setting((str,), "ALL | CPU_ONLY | CPU_AND_GPU | CPU_AND_NE", choices=_UNITS),
    }

    @classmethod
    def probe(cls):
        if sys.platform != "darwin":
            return {"available": False, "reason": "Core ML runs on macOS only"}
        try:
            import coremltools as ct
        except Exception as exc:
            return {"available": False, "reason": "coremltools is not installed (%s)" % str(exc).splitlines()[0]}
        return {"available": True, "version": ct.__version__}

    def load(self, model_path, settings):
        check_model_file(model_path, (".mlmodel", ".mlpackage"))
        if sys.platform != "darwin":
            raise AgentError("backend", "Core ML runs on macOS only; this device is %s" % sys.platform)
        try:
            import coremltools as ct
        except ImportError as exc:
            raise AgentError("backend", "coremltools is not installed on this device: %s" % exc)
        units = settings.get("compute_units", "ALL")
        if units not in _UNITS:
            raise AgentError("backend", "compute_units must be one of %s, not %r" % ("|".join(_UNITS), units))
        try:
            self.model = ct.models.MLModel(model_path, compute_units=getattr(ct.ComputeUnit, units))
        except Exception as exc:
            raise AgentError("model", "Core ML cannot load %s: %s" % (model_path, str(exc).splitlines()[0]))
        self._units = units

    def input_specs(self):
        specs = []
        for inp in self.model.get_spec().description.input:
            arr = inp.type.multiArrayType
            dtype = _FEATURE_DTYPES.get(arr.dataType, "float32")
            specs.append(InputSpec(inp.name, list(arr.shape), dtype))
        return specs

    def set_inputs(self, arrays):
        predict = self.model.predict
        feeds = arrays

        def invoke():
            return predict(feeds)

        self._feeds = feeds
        self.invoke = invoke

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def outputs(self):
        return list(self.model.predict(self._feeds).values())

    def effective_settings(self):
        return {"compute_units": self._units}
