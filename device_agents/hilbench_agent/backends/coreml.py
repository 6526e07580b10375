"""Core ML backend (macOS): .mlmodel and .mlpackage through coremltools.

``prepare`` compiles the model to an ``.mlmodelc`` with ``coremltools.models.utils.compile_model`` and keeps it
in the build cache on the device (:mod:`hilbench_agent.buildcache`: keyed by the model's sha256, coremltools and
macOS versions and the machine), so compile time is stored apart from load time and the second run loads the
compiled model (``build.cache = hit``); ``load`` opens it with ``CompiledMLModel``. A coremltools without
``compile_model``/``CompiledMLModel`` (before 7.0) compiles inside ``MLModel``: then compile and load are one
``load_ns`` and ``build`` says so.

Inputs come from the model's spec (``coremltools.utils.load_spec``, which also runs on Linux): multi-arrays by
their shape and data type, images by their width, height and colour space (an RGB or BGR image is
height x width x 3 uint8, a grayscale one height x width uint8, GRAYSCALE_FLOAT16 float16), handed to
``predict`` as PIL images as Core ML wants them.

Where macOS and coremltools offer it (``MLComputePlan``: macOS 14.4+, coremltools 8+), the compute plan says per
operation which compute unit Core ML prefers (CPU, GPU or Neural Engine) and its estimated share of the work:
the effective settings report it (a plan Core ML makes before running, not a trace of what ran).
"""

import os
import platform
import sys

from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file, offload_verdict
from hilbench_agent.protocol import AgentError

_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
_SUFFIXES = (".mlmodel", ".mlpackage")
#: ArrayFeatureType.ArrayDataType -> numpy dtype name (Core ML's FeatureTypes.proto)
_FEATURE_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}
#: ImageFeatureType.ColorSpace
_GRAYSCALE, _RGB, _BGR, _GRAYSCALE_FLOAT16 = 10, 20, 30, 40
#: MLComputeDevice subclasses -> the unit's name in stored runs
_DEVICES = {"MLCPUComputeDevice": "CPU", "MLGPUComputeDevice": "GPU", "MLNeuralEngineComputeDevice": "NE"}
MAX_OPS_LISTED = 1000


def _one_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


def spec_inputs(spec):
    """(InputSpec list, {name: image colour space}) from a Core ML model spec."""
    specs, images = [], {}
    for inp in spec.description.input:
        kind = inp.type.WhichOneof("Type")
        if kind == "imageType":
            img = inp.type.imageType
            height, width = int(img.height), int(img.width)
            space = int(img.colorSpace)
            if space in (_RGB, _BGR):
                shape, dtype = [height, width, 3], "uint8"
            elif space == _GRAYSCALE:
                shape, dtype = [height, width], "uint8"
            elif space == _GRAYSCALE_FLOAT16:
                shape, dtype = [height, width], "float16"
            else:
                raise AgentError("input", "image input %r has colour space %d, which hilbench cannot generate"
                                 % (inp.name, space))
            specs.append(InputSpec(inp.name, [d if d > 0 else None for d in shape], dtype))
            images[inp.name] = space
        elif kind == "multiArrayType":
            arr = inp.type.multiArrayType
            dtype = _FEATURE_DTYPES.get(arr.dataType)
            if dtype is None:
                raise AgentError("input", "input %r has multi-array data type %d, which hilbench cannot generate"
                                 % (inp.name, arr.dataType))
            shape = [int(d) for d in arr.shape]
            if not shape:  # flexible: the model gives ranges or enumerated shapes and no default
                ranges = list(arr.shapeRange.sizeRanges)
                shape = [int(r.lowerBound) if r.upperBound == r.lowerBound else None for r in ranges] or None
            specs.append(InputSpec(inp.name, shape, dtype))
        else:
            raise AgentError("input", "input %r is a %s, which hilbench cannot generate (multi-arrays and images "
                             "only); give an inputs file" % (inp.name, kind))
    return specs, images


class CoreMLBackend(Backend):
    name = "coreml"
    model_suffixes = _SUFFIXES
    default_for = _SUFFIXES
    install_hint = "pip install coremltools pillow (macOS)"
    settings = {
        "compute_units": Setting((str,), "ALL | CPU_ONLY | CPU_AND_GPU | CPU_AND_NE", choices=_UNITS),
        "model_cache": Setting((bool,), "keep compiled models (.mlmodelc) on the device and reuse them (default true)"),
        "cache_dir": Setting((str,), "where the compiled-model cache lives (default ~/.cache/hilbench/coreml)"),
        "compute_plan": Setting((bool,), "read Core ML's compute plan (MLComputePlan, macOS 14.4+; default true)"),
    }

    @classmethod
    def probe(cls):
        if sys.platform != "darwin":
            return {"available": False, "reason": "Core ML runs on macOS only"}
        try:
            import coremltools as ct
        except Exception as exc:
            return {"available": False, "reason": "coremltools is not installed (%s)" % _one_line(exc)}
        info = {"available": True, "version": ct.__version__, "macos": platform.mac_ver()[0]}
        info["compile_apart"] = _compiler(ct) is not None
        return info

    def _setup(self, model_path, settings):
        check_model_file(model_path, _SUFFIXES)
        if sys.platform != "darwin":
            raise AgentError("backend", "Core ML runs on macOS only; this device is %s" % sys.platform)
        if getattr(self, "ct", None) is not None:
            return
        try:
            import coremltools as ct
        except ImportError as exc:
            raise AgentError("backend", "coremltools is not installed on this device: %s" % exc)
        units = settings.get("compute_units", "ALL")
        if units not in _UNITS:
            raise AgentError("backend", "compute_units must be one of %s, not %r" % ("|".join(_UNITS), units))
        self.ct, self._units, self._settings = ct, units, dict(settings)
        self._compiled = None
        self._build = None

    # ------------------------------------------------------------------ compile (cached) and load
    def prepare(self, model_path, settings, shapes=None):
        self._setup(model_path, settings)
        ct = self.ct
        compiler = _compiler(ct)
        if compiler is None:
            self._build = {"cache": "off", "what": "core ml compiled model",
                           "note": "coremltools %s compiles inside MLModel: compile and load are timed together "
                                   "(coremltools 7+ compiles apart)" % ct.__version__}
            return None
        compile_model, _ = compiler
        from hilbench_agent.buildcache import BuildCache, model_sha256

        fields = {"model_sha256": model_sha256(model_path), "coremltools": ct.__version__,
                  "macos": platform.mac_ver()[0], "machine": platform.machine()}
        use_cache = settings.get("model_cache", True)
        cache = BuildCache("coreml", ".mlmodelc", root=settings.get("cache_dir"))
        key = cache.key(fields)
        if use_cache:
            hit = cache.get(key)
            if hit:
                self._compiled, self._cache = hit, (cache, key)
                self._build = {"cache": "hit", "what": "core ml compiled model", "key": key[:16], "path": hit}
                return self._build
        import tempfile
        work = tempfile.mkdtemp(prefix="hilbench-coreml-")
        try:
            compiled = compile_model(model_path, os.path.join(work, "model.mlmodelc"))
        except Exception as exc:
            raise AgentError("model", "Core ML cannot compile %s: %s" % (os.path.basename(model_path), _one_line(exc)))
        info = {"cache": "miss" if use_cache else "off", "what": "core ml compiled model"}
        if use_cache:
            compiled = cache.put_dir(key, compiled, fields)
            info.update(key=key[:16], path=compiled)
            self._cache = (cache, key)
        else:
            self._cache = None
        self._compiled = compiled
        self._build = info
        return info

    def load(self, model_path, settings):
        self._setup(model_path, settings)
        ct = self.ct
        units = getattr(ct.ComputeUnit, self._units)
        try:
            spec = ct.utils.load_spec(model_path)
        except Exception as exc:
            raise AgentError("model", "coremltools cannot read the spec of %s: %s" % (model_path, _one_line(exc)))
        self._specs, self._images = spec_inputs(spec)
        compiler = _compiler(ct)
        try:
            if self._compiled and compiler is not None:
                self.model = compiler[1](self._compiled, compute_units=units)
            else:
                self.model = ct.models.MLModel(model_path, compute_units=units)
        except Exception as exc:
            if self._compiled and getattr(self, "_cache", None):
                self._cache[0].drop(self._cache[1])  # a compiled model this macOS refuses: compile it again
            raise AgentError("model", "Core ML cannot load %s: %s" % (model_path, _one_line(exc)))
        self._plan = self._compute_plan(units) if settings.get("compute_plan", True) else None

    def _compute_plan(self, units):
        """Core ML's compute plan of the compiled model (preferred unit and estimated cost per operation), or
        why there is none."""
        ct = self.ct
        try:
            from coremltools.models.compute_plan import MLComputePlan
        except ImportError:
            return {"available": False, "reason": "coremltools %s has no MLComputePlan (coremltools 8+)" % ct.__version__}
        if not self._compiled:
            return {"available": False, "reason": "the model was not compiled apart (no .mlmodelc to plan)"}
        try:
            plan = MLComputePlan.load_from_path(self._compiled, compute_units=units)
            structure = plan.model_structure
        except Exception as exc:
            return {"available": False, "reason": "MLComputePlan needs macOS 14.4+ (%s)" % _one_line(exc)}
        ops = []
        if structure.program is not None:
            for fname, function in structure.program.functions.items():
                for op in function.block.operations:
                    usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
                    cost = plan.get_estimated_cost_for_mlprogram_operation(op)
                    ops.append((op.operator_name, [o.name for o in op.outputs], usage, cost))
        elif structure.neuralnetwork is not None:
            for layer in structure.neuralnetwork.layers:
                usage = plan.get_compute_device_usage_for_neuralnetwork_layer(layer)
                ops.append((layer.type, [layer.name], usage, None))
        else:
            return {"available": False, "reason": "the compute plan covers ML programs and neural networks only"}
        by_unit, weight, listed = {}, {}, []
        for kind, outputs, usage, cost in ops:
            unit = _DEVICES.get(type(usage.preferred_compute_device).__name__, "other") if usage is not None else None
            by_unit[unit or "unknown"] = by_unit.get(unit or "unknown", 0) + 1
            if cost is not None and unit:
                weight[unit] = weight.get(unit, 0.0) + float(cost.weight)
            if len(listed) < MAX_OPS_LISTED:
                supported = sorted(set(_DEVICES.get(type(d).__name__, "other")
                                       for d in (usage.supported_compute_devices if usage is not None else ())))
                listed.append({"op": str(kind)[:80], "output": (outputs[0] if outputs else "")[:200], "unit": unit,
                               "supported": supported, "cost": round(float(cost.weight), 6) if cost is not None else None})
        return {"available": True, "operations": len(ops), "ops_by_unit": by_unit,
                "cost_by_unit": dict((k, round(v, 6)) for k, v in weight.items()) or None,
                "ops": listed, "basis": "MLComputePlan: Core ML's preferred unit per operation before running"}

    # ------------------------------------------------------------------ run
    def input_specs(self):
        return list(self._specs)

    def set_inputs(self, arrays):
        feeds = {}
        for name, array in arrays.items():
            space = self._images.get(name)
            feeds[name] = _image(array, space) if space is not None else array
        predict = self.model.predict

        def invoke():
            return predict(feeds)

        self._feeds = feeds
        self.invoke = invoke

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def outputs(self):
        import numpy as np

        return [np.asarray(v) for v in self.model.predict(self._feeds).values()]

    def offload(self, after_run=False):
        return plan_offload(self._plan, self._units)

    def effective_settings(self):
        out = {"compute_units": self._units, "coremltools": self.ct.__version__, "macos": platform.mac_ver()[0],
               "compiled": "cache" if (self._build or {}).get("cache") == "hit" else (
                   "compiled" if self._compiled else "inside MLModel")}
        if self._plan is not None:
            out["compute_plan"] = self._plan
        if self._images:
            out["image_inputs"] = sorted(self._images)
        return out

    def close(self):
        self.model = None


def _compiler(ct):
    """(compile_model, CompiledMLModel) where this coremltools has them (7.0+), else None."""
    try:
        from coremltools.models import CompiledMLModel
        from coremltools.models.utils import compile_model
    except ImportError:
        return None
    return compile_model, CompiledMLModel


def _image(array, space):
    """A generated image array as the PIL image Core ML's predict takes for an image input."""
    try:
        from PIL import Image
    except ImportError:
        raise AgentError("backend", "the model has image inputs and Pillow is not installed on this device: "
                         "pip install pillow")
    if space in (_RGB, _BGR):
        return Image.fromarray(array, "RGB")  # Core ML reorders to BGR itself where the model says BGR
    if space == _GRAYSCALE:
        return Image.fromarray(array, "L")
    return Image.fromarray(array.astype("float32"), "F")


#: compute_units -> (the accelerator in the verdict, the plan's units that count as it)
_ACCELERATORS = {"CPU_ONLY": ("cpu", ()), "CPU_AND_GPU": ("GPU", ("GPU",)), "CPU_AND_NE": ("ANE", ("NE",)),
                 "ALL": ("ANE+GPU", ("NE", "GPU"))}


def plan_offload(plan, units):
    """The offload verdict from Core ML's compute plan (:meth:`CoreMLBackend._compute_plan`'s dict): operations
    whose preferred unit is the Neural Engine or the GPU (as ``compute_units`` allows) are accelerated, those on the
    CPU are not. A plan is Core ML's intent before running, not a trace, and the source says so."""
    accelerator, counted = _ACCELERATORS.get(units, (units, ()))
    if plan is None:
        return offload_verdict(accelerator, source="compute_plan = false: Core ML's compute plan was not read")
    if not plan.get("available"):
        return offload_verdict(accelerator, source="no Core ML compute plan: %s" % plan.get("reason", "unknown"))
    by_unit = plan.get("ops_by_unit") or {}
    total = int(plan.get("operations") or 0)
    source = "Core ML compute plan (MLComputePlan): each operation's preferred compute unit, before running"
    if accelerator == "cpu":
        return offload_verdict("cpu", total, 0, by_unit.get("CPU", 0), 0, (), source + "; compute_units = CPU_ONLY",
                               devices=by_unit)
    listed = plan.get("ops") or []
    partitions, inside = 0, False
    for op in listed:
        here = op.get("unit") in counted
        if here and not inside:
            partitions += 1
        inside = here
    accelerated = sum(by_unit.get(u, 0) for u in counted)
    cpu_ops = [op.get("op", "?") for op in listed if op.get("unit") == "CPU"]
    return offload_verdict(accelerator, total, accelerated, by_unit.get("CPU", 0),
                           partitions if len(listed) == total else None, cpu_ops, source, devices=by_unit)
