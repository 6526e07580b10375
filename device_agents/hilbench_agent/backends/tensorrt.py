"""TensorRT backend (NVIDIA Jetson and GPUs): TensorRT 8.5/8.6 (JetPack 5, JetPack 6.0), 10.x (JetPack 6.1+) and 11.

A model is a serialized engine (``.engine``/``.plan``/``.trt``, loaded as it is) or an ONNX file, which
``prepare`` builds into an engine on the device and keeps in the engine cache (:mod:`hilbench_agent.buildcache`),
keyed by the model's sha256, the TensorRT version, the GPU and its compute capability, the build options
and the optimization profile: the second run of the same job loads the cached engine (``build.cache = hit``),
and the build is timed apart from the load.

The builder calls follow each version's Python API:

* 8.5/8.6: explicit-batch networks (``1 << NetworkDefinitionCreationFlag.EXPLICIT_BATCH``), precision by
  builder flags (``fp16``/``int8``; INT8 needs a Q/DQ model: hilbench sets up no calibrator);
* 10.x: networks are always explicit batch (the flag is ignored, so it is not passed); precision by builder
  flags (deprecated from 10.12) or, with ``strongly_typed = true``, by the model's own types and Q/DQ nodes;
* 11: only strongly typed networks: the precision flags are gone, so ``fp16``/``int8`` are refused before
  anything runs: the model carries its precision (an FP16 ONNX, Q/DQ INT8).

Inputs with dynamic dimensions get an optimization profile from the plan's input shapes (``[models.inputs]
shapes``; min = opt = max) or the ``profile`` setting (min and max per input; opt is the plan's shape). TensorRT
accepts only symmetric INT8 (every Q/DQ zero point 0): an ONNX model with another zero point is refused
before the build, where ``onnx`` is installed on the device (the host checks it too, before anything runs).

CUDA comes from cuda-python (``cuda.bindings``), else pycuda (:mod:`hilbench_agent.gpu`), on the ``device`` the
job names. Inputs are copied to the GPU once, in ``set_inputs``, outputs back in ``outputs``: the timed call is
one ``execute_async_v3`` (or a CUDA graph launch of it, ``cuda_graph = true``) and the wait for it (``sync``:
the stream, or an event after the work), with CUDA events around the work for the GPU time of every invoke
(``gpu_time``, default on). Precision and layer placement (GPU or DLA) are read from the built engine
(``IEngineInspector``), never echoed from the request; the engine's device memory and the GPU memory the
load took are reported with the effective settings.
"""

import json
import os
import time

from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file, offload_verdict
from hilbench_agent.protocol import AgentError

_ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
_SUFFIXES = (".onnx",) + _ENGINE_SUFFIXES
#: The oldest TensorRT this backend drives: execute_async_v3 and the name-based tensor API came with 8.5.
MIN_VERSION = (8, 5)
#: TensorRT DataType name -> (numpy dtype name the agent generates and reads, bytes per element). Types numpy
#: has no dtype for are moved as raw bytes (bf16 as uint16, fp8 as uint8) and cannot be generated as inputs.
DTYPES = {
    "FLOAT": ("float32", 4), "HALF": ("float16", 2), "INT8": ("int8", 1), "INT32": ("int32", 4),
    "BOOL": ("bool", 1), "UINT8": ("uint8", 1), "INT64": ("int64", 8),
    "BF16": ("bfloat16", 2), "FP8": ("float8", 1), "INT4": ("int4", 0.5), "FP4": ("float4", 0.5),
}
_RAW = {"bfloat16": "uint16", "float8": "uint8", "int4": "uint8", "float4": "uint8"}
#: Layers listed one by one in the effective settings (the counts cover every layer).
MAX_LAYERS_LISTED = 1000


def version_tuple(text):
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


def _dtype_name(dt):
    name = getattr(dt, "name", None) or str(dt).rsplit(".", 1)[-1]
    return str(name).upper()


def _volume(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


class TensorRTBackend(Backend):
    name = "tensorrt"
    aliases = ("trt",)
    model_suffixes = _SUFFIXES
    default_for = _ENGINE_SUFFIXES
    install_hint = ("TensorRT comes with JetPack (python3-libnvinfer, or pip install tensorrt on a dGPU); "
                    "CUDA bindings: pip install cuda-python (or pycuda)")
    settings = {
        "fp16": Setting((bool,), "allow FP16 kernels when building from ONNX (builder flag; TensorRT 8.5-10.x)"),
        "int8": Setting((bool,), "allow INT8 kernels when building from ONNX (builder flag; TensorRT 8.5-10.x; "
                        "needs a symmetric Q/DQ model)"),
        "strongly_typed": Setting((bool,), "build a strongly typed network: precision from the model's types and "
                                  "Q/DQ nodes (TensorRT 10+; always so in 11)"),
        "workspace_mb": Setting((int,), "builder workspace limit in MiB", minimum=1),
        "builder_optimization_level": Setting((int,), "builder optimization level 0-5 (TensorRT 8.6+)",
                                              choices=(0, 1, 2, 3, 4, 5)),
        "profile": Setting((dict,), "optimization profile ranges: {input = {min = [...], max = [...]}}; opt is "
                           "the plan's shape ([models.inputs] shapes)"),
        "device": Setting((int,), "CUDA device index", minimum=0),
        "dla_core": Setting((int,), "run on this DLA core (Jetson AGX/NX Orin, Xavier)", minimum=0),
        "gpu_fallback": Setting((bool,), "with dla_core: layers the DLA cannot run go to the GPU (default true)"),
        "engine_cache": Setting((bool,), "keep built engines on the device and reuse them (default true)"),
        "cache_dir": Setting((str,), "where the engine cache lives (default ~/.cache/hilbench/tensorrt)"),
        "cuda_graph": Setting((bool,), "capture the inference in a CUDA graph and launch the graph (cuda-python)"),
        "gpu_time": Setting((bool,), "time each invoke with CUDA events too (default true)"),
        "sync": Setting((str,), "how the timed call waits: stream (cudaStreamSynchronize) or event "
                        "(an event recorded after the work)", choices=("stream", "event")),
        "cuda": Setting((str,), "CUDA bindings: auto (cuda-python, else pycuda), cuda-python or pycuda",
                        choices=("auto", "cuda-python", "pycuda")),
    }

    @classmethod
    def probe(cls):
        try:
            import tensorrt as trt
        except Exception as exc:
            return {"available": False, "reason": "tensorrt is not installed (%s)" % _first_line(exc)}
        info = {"available": True, "version": trt.__version__}
        if version_tuple(trt.__version__)[:2] < MIN_VERSION:
            return dict(info, available=False, reason="TensorRT %s is older than 8.5, the oldest hilbench drives "
                        "(JetPack 5.1+ has 8.5)" % trt.__version__)
        from hilbench_agent.gpu import open_cuda
        try:
            cuda = open_cuda("auto")
            count = cuda.device_count()
            if count == 0:
                return dict(info, available=False, reason="no CUDA device found")
            props = cuda.properties(0)
            info.update(gpu=props["name"], compute_capability=props["compute_capability"], gpu_count=count,
                        cuda_bindings="%s %s" % (cuda.name, cuda.version or ""))
        except AgentError as exc:
            return dict(info, available=False, reason=exc.message)
        except Exception as exc:
            return dict(info, available=False, reason="CUDA cannot reach a GPU (%s)" % _first_line(exc))
        return info

    # ------------------------------------------------------------------ setup shared by prepare and load
    def _setup(self, settings):
        if getattr(self, "trt", None) is not None:
            return
        try:
            import tensorrt as trt
        except Exception as exc:
            raise AgentError("backend", "TensorRT is not usable on this device: %s" % _first_line(exc))
        self.trt = trt
        self.version = version_tuple(trt.__version__)
        if self.version[:2] < MIN_VERSION:
            raise AgentError("backend", "TensorRT %s is older than 8.5, the oldest hilbench drives" % trt.__version__)
        self._settings = dict(settings)
        self._check_settings(settings)
        from hilbench_agent.gpu import open_cuda
        self.cuda = open_cuda(settings.get("cuda", "auto"))
        self.device = int(settings.get("device", 0))
        self.cuda.use_device(self.device)
        self.gpu = self.cuda.properties(self.device)
        self.logger = _make_logger(trt)
        self._cache = self._cache_key = None
        self._engine_bytes = None
        self._engine_source = None
        self._build_info = None

    def _check_settings(self, settings):
        """One-line errors for settings this TensorRT cannot honour, before anything is built or loaded."""
        v = self.version
        precision = [k for k in ("fp16", "int8") if settings.get(k)]
        if v[0] >= 11 and precision:
            raise AgentError("backend", "TensorRT %s builds strongly typed networks only: %s = true has no builder "
                             "flag there; give a model that carries its precision (an FP16 ONNX, or symmetric Q/DQ "
                             "INT8) and drop %s" % (self.trt.__version__, " and ".join(precision),
                                                    "/".join(precision)))
        if settings.get("strongly_typed") is False and v[0] >= 11:
            raise AgentError("backend", "TensorRT %s has no weakly typed networks: drop strongly_typed = false"
                             % self.trt.__version__)
        if settings.get("strongly_typed") and v[0] < 10:
            raise AgentError("backend", "strongly_typed = true needs TensorRT 10 or newer (this device has %s): "
                             "use fp16/int8 instead" % self.trt.__version__)
        if settings.get("strongly_typed") and precision:
            raise AgentError("backend", "strongly_typed = true takes the precision from the model: drop %s"
                             % " and ".join(precision))
        if settings.get("builder_optimization_level") is not None and v[:2] < (8, 6):
            raise AgentError("backend", "builder_optimization_level needs TensorRT 8.6 or newer (this device has %s)"
                             % self.trt.__version__)
        if settings.get("gpu_fallback") is not None and settings.get("dla_core") is None:
            raise AgentError("backend", "gpu_fallback applies to DLA builds only: set dla_core too, or drop it")

    def _strongly_typed(self):
        return self.version[0] >= 11 or bool(self._settings.get("strongly_typed"))

    # ------------------------------------------------------------------ build (ONNX) with the engine cache
    def prepare(self, model_path, settings, shapes=None):
        check_model_file(model_path, _SUFFIXES)
        self._setup(settings)
        if not model_path.lower().endswith(".onnx"):
            return None  # a serialized engine: nothing to build
        from hilbench_agent.buildcache import BuildCache, model_sha256

        profile = self._profile_request(shapes or {}, settings.get("profile"))
        fields = {
            "model_sha256": model_sha256(model_path), "tensorrt": self.trt.__version__,
            "gpu": self.gpu["name"], "compute_capability": self.gpu["compute_capability"],
            "options": self._build_options(settings), "profile": profile,
        }
        use_cache = settings.get("engine_cache", True)
        cache = BuildCache("tensorrt", ".engine", root=settings.get("cache_dir"))
        key = cache.key(fields)
        self._cache, self._cache_key = (cache, key) if use_cache else (None, None)
        if use_cache:
            hit = cache.get(key)
            if hit:
                with open(hit, "rb") as f:
                    self._engine_bytes = f.read()
                self._engine_source = "cache"
                self._build_info = {"cache": "hit", "what": "tensorrt engine", "key": key[:16], "path": hit}
                return self._build_info
        t0 = time.monotonic()
        data = self._build(model_path, settings, profile)
        fields["build_s"] = round(time.monotonic() - t0, 3)
        self._engine_bytes = data
        self._engine_source = "built"
        info = {"cache": "miss" if use_cache else "off", "what": "tensorrt engine", "engine_bytes": len(data)}
        if use_cache:
            info.update(key=key[:16], path=cache.put_bytes(key, data, fields))
        self._build_info = info
        return info

    def _build_options(self, settings):
        return {
            "strongly_typed": self._strongly_typed(), "fp16": bool(settings.get("fp16")),
            "int8": bool(settings.get("int8")), "workspace_mb": settings.get("workspace_mb"),
            "builder_optimization_level": settings.get("builder_optimization_level"),
            "dla_core": settings.get("dla_core"),
            "gpu_fallback": settings.get("gpu_fallback", True) if settings.get("dla_core") is not None else None,
        }

    @staticmethod
    def _profile_request(shapes, ranges):
        """{input: {"min", "opt", "max"}} from the plan's shapes (opt; min and max too unless the ``profile``
        setting widens them)."""
        out = {}
        ranges = ranges or {}
        for name in sorted(set(shapes) | set(ranges)):
            opt = shapes.get(name)
            spec = ranges.get(name) or {}
            if not isinstance(spec, dict):
                raise AgentError("backend", "setting profile.%s must be a table {min = [...], max = [...]}" % name)
            lo, hi = spec.get("min", opt), spec.get("max", opt)
            opt = opt if opt is not None else spec.get("opt", hi)
            if lo is None or hi is None or opt is None:
                raise AgentError("backend", "setting profile.%s needs min and max (and the plan's shape for opt)" % name)
            try:
                lo, opt, hi = [[int(d) for d in s] for s in (lo, opt, hi)]
            except (TypeError, ValueError):
                raise AgentError("backend", "setting profile.%s: min, opt and max must be lists of integers" % name)
            if not (len(lo) == len(opt) == len(hi)) or any(a > b or b > c for a, b, c in zip(lo, opt, hi)):
                raise AgentError("backend", "profile of input %r: need min <= opt <= max of one rank, got min %s, "
                                 "opt %s, max %s" % (name, lo, opt, hi))
            out[name] = {"min": lo, "opt": opt, "max": hi}
        return out

    def _build(self, model_path, settings, profile):
        trt, v = self.trt, self.version
        builder = trt.Builder(self.logger)
        flags = 0
        if v[0] < 10:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        elif v[0] == 10 and self._strongly_typed():
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        _check_symmetric_onnx(model_path)
        if not parser.parse_from_file(model_path):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise AgentError("model", _parse_error(model_path, errors))
        config = builder.create_builder_config()
        if settings.get("workspace_mb"):
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mb"]) << 20)
        if settings.get("builder_optimization_level") is not None:
            config.builder_optimization_level = int(settings["builder_optimization_level"])
        # Layer precisions and placement are read back from the engine: the inspector needs detailed verbosity.
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        if not self._strongly_typed():
            if settings.get("fp16"):
                config.set_flag(trt.BuilderFlag.FP16)
            if settings.get("int8"):
                config.set_flag(trt.BuilderFlag.INT8)
        dla = settings.get("dla_core")
        if dla is not None:
            cores = builder.num_DLA_cores
            if dla >= cores:
                raise AgentError("backend", "setting dla_core = %d but this device has %d DLA core(s)%s"
                                 % (dla, cores, " (none: DLA is on Jetson AGX/NX Orin and Xavier)" if not cores else ""))
            if not self._strongly_typed() and not (settings.get("fp16") or settings.get("int8")):
                raise AgentError("backend", "dla_core needs fp16 = true or int8 = true: the DLA runs no FP32 layers")
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = int(dla)
            if settings.get("gpu_fallback", True):
                config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        self._add_profile(builder, network, config, profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise AgentError("backend", "TensorRT %s failed to build an engine from %s: %s" % (
                trt.__version__, model_path, self.logger.last_error() or "no reason given (see the agent's log)"))
        return bytes(serialized)

    def _add_profile(self, builder, network, config, profile):
        """One optimization profile for the network's dynamic inputs; a dynamic input without a shape is an
        error before the build, saying what to write in the plan."""
        dynamic = []
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            shape = [int(d) for d in tensor.shape]
            if any(d < 0 for d in shape):
                dynamic.append((tensor.name, shape))
        unknown = sorted(set(profile) - set(n for n, _ in dynamic) - set(
            network.get_input(i).name for i in range(network.num_inputs)))
        if unknown:
            raise AgentError("input", "the plan gives shapes for %s, which the model has no input named"
                             % ", ".join(repr(u) for u in unknown))
        if not dynamic:
            return
        missing = [(n, s) for n, s in dynamic if n not in profile]
        if missing:
            name, shape = missing[0]
            raise AgentError("input", "input %r has a dynamic shape %s and TensorRT needs an optimization profile "
                             "for it: give its shape in the plan ([models.inputs] shapes = { %s = [...] }), or a "
                             "range (backends.tensorrt profile = { %s = { min = [...], max = [...] } })"
                             % (name, shape, name, name))
        opt_profile = builder.create_optimization_profile()
        for name, shape in dynamic:
            p = profile[name]
            for label in ("min", "opt", "max"):
                if len(p[label]) != len(shape) or any(s >= 0 and s != d for s, d in zip(shape, p[label])):
                    raise AgentError("input", "input %r: the profile's %s shape %s does not fit the model's %s"
                                     % (name, label, p[label], shape))
            opt_profile.set_shape(name, p["min"], p["opt"], p["max"])
        config.add_optimization_profile(opt_profile)

    # ------------------------------------------------------------------ load
    def load(self, model_path, settings):
        check_model_file(model_path, _SUFFIXES)
        self._setup(settings)
        trt = self.trt
        if self._engine_bytes is None:
            if model_path.lower().endswith(".onnx"):
                self.prepare(model_path, settings)
            else:
                with open(model_path, "rb") as f:
                    self._engine_bytes = f.read()
                self._engine_source = "file"
        used_before = self.cuda.memory_used()
        runtime = trt.Runtime(self.logger)
        if settings.get("dla_core") is not None:
            runtime.DLA_core = int(settings["dla_core"])
        self.logger.clear()
        engine = runtime.deserialize_cuda_engine(self._engine_bytes)
        if engine is None and self._engine_source == "cache" and self._cache is not None:
            # A cached engine this TensorRT refuses (a driver update, a corrupt file): build it again.
            self._cache.drop(self._cache_key)
            self._engine_bytes = None
            self._build_info = None
            raise AgentError("backend", "the cached TensorRT engine for %s could not be loaded (%s) and was removed "
                             "from the cache: run again to rebuild it" % (model_path, self.logger.last_error()))
        if engine is None:
            raise AgentError("model", _deserialize_error(trt, model_path, self.gpu, self.logger.last_error()))
        self.runtime, self.engine = runtime, engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise AgentError("resource", "TensorRT cannot create an execution context for %s (out of GPU memory?)"
                             % model_path)
        self.stream = self.cuda.stream()
        self._names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in self._names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        used_after = self.cuda.memory_used()
        self._memory = {
            "engine_device_memory_bytes": int(engine.device_memory_size_v2 if self.version[:2] >= (10, 1)
                                              else engine.device_memory_size),
            "load_gpu_memory_bytes": (used_after - used_before) if used_before is not None and used_after is not None
            else None,
        }
        self._layers = _engine_layers(trt, engine, settings.get("dla_core") is not None)
        self._gpu_ns = [] if settings.get("gpu_time", True) else None
        self._host = {}

    # ------------------------------------------------------------------ run
    def input_specs(self):
        engine = self.engine
        specs = []
        for name in self._inputs:
            shape = [int(d) if int(d) >= 0 else None for d in engine.get_tensor_shape(name)]
            dtype = DTYPES.get(_dtype_name(engine.get_tensor_dtype(name)), (None, 0))[0]
            if dtype is None:
                raise AgentError("input", "input %r has TensorRT type %s, which hilbench cannot feed"
                                 % (name, _dtype_name(engine.get_tensor_dtype(name))))
            specs.append(InputSpec(name, shape, dtype))
        return specs

    def set_inputs(self, arrays):
        import numpy as np

        engine, context, cuda = self.engine, self.context, self.cuda
        for name in self._inputs:
            if name not in arrays:
                raise AgentError("input", "no array for input %r" % name)
            shape = tuple(int(d) for d in arrays[name].shape)
            if any(int(d) < 0 for d in engine.get_tensor_shape(name)):
                lo, _, hi = [list(s) for s in engine.get_tensor_profile_shape(name, 0)]
                if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
                    raise AgentError("input", "input %r: shape %s is outside the engine's optimization profile (min "
                                     "%s, max %s): give a shape in that range, or rebuild with a wider profile"
                                     % (name, list(shape), lo, hi))
            if not context.set_input_shape(name, shape):
                raise AgentError("input", "TensorRT refuses shape %s for input %r" % (list(shape), name))
        for name in self._names:
            if name in arrays:
                host = np.ascontiguousarray(arrays[name])
            else:
                shape = [int(d) for d in context.get_tensor_shape(name)]
                if any(d < 0 for d in shape):
                    raise AgentError("backend", "output %r has a data-dependent shape %s: hilbench sets up no output "
                                     "allocator for it" % (name, shape))
                kind = DTYPES.get(_dtype_name(engine.get_tensor_dtype(name)), ("uint8", 1))[0]
                host = np.empty(shape, dtype=_RAW.get(kind, kind))
            ptr = cuda.malloc(host.nbytes)
            if not context.set_tensor_address(name, ptr):
                raise AgentError("backend", "TensorRT refuses the device buffer of tensor %r" % name)
            if name in arrays:
                cuda.htod(ptr, host)
            self._host[name] = (host, ptr)
        handle = cuda.stream_handle(self.stream)
        execute = context.execute_async_v3

        def enqueue():
            return execute(handle)

        self._graph = False
        if self._settings.get("cuda_graph"):
            # One plain run first (TensorRT allocates what it needs outside the capture), then the capture.
            self.cuda.runner(enqueue, self.stream)()
            enqueue = self.cuda.capture(enqueue, self.stream)
            self._graph = True
        self._sync = self._settings.get("sync", "stream")
        self.invoke = self.cuda.runner(enqueue, self.stream, self._gpu_ns, self._sync)

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def outputs(self):
        out = []
        for name in self._names:
            if name in self._inputs:
                continue
            host, ptr = self._host[name]
            self.cuda.dtoh(host, ptr)
            out.append(_as_numpy(host, DTYPES.get(_dtype_name(self.engine.get_tensor_dtype(name)), ("", 0))[0]))
        return out

    def take_gpu_ns(self):
        if self._gpu_ns is None:
            return None
        taken = list(self._gpu_ns)
        del self._gpu_ns[:]
        return taken

    def offload(self, after_run=False):
        """The offload verdict from the engine inspector's layers: TensorRT runs every layer on the GPU or a DLA
        core, never on the CPU; with ``dla_core`` the DLA's share is the layers it runs (each DLA subgraph one
        foreign-node layer), the rest having fallen back to the GPU."""
        return engine_offload(self._layers, self._settings.get("dla_core"))

    def effective_settings(self):
        layers = self._layers
        out = {
            "tensorrt": self.trt.__version__,
            "cuda_bindings": ("%s %s" % (self.cuda.name, self.cuda.version or "")).strip(),
            "device": self.device, "gpu": self.gpu["name"], "compute_capability": self.gpu["compute_capability"],
            "engine": self._engine_source, "strongly_typed": self._strongly_typed() if self._engine_source != "file"
            else None,
            "dla_core": self._settings.get("dla_core"),
            "gpu_fallback": (self._settings.get("gpu_fallback", True) if self._settings.get("dla_core") is not None
                             else None),
            "cuda_graph": self._graph, "gpu_time": "cuda_events" if self._gpu_ns is not None else None,
            "sync": self._sync,
        }
        out.update(self._memory)
        out.update(layers)
        return out

    def close(self):
        try:
            self.cuda.close()
        except Exception:
            pass
        self.context = self.engine = self.runtime = None


# ---------------------------------------------------------------------- helpers
def _make_logger(trt):
    """A TensorRT logger (an ``ILogger`` subclass, as the Python API documents) that keeps the errors, so a failed
    deserialize or build can say why in one line."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(str(msg).strip().splitlines()[0] if str(msg).strip() else "")

        def last_error(self):
            return self.errors[-1] if self.errors else ""

        def clear(self):
            self.errors = []

    return Logger()


def _deserialize_error(trt, model_path, gpu, reason):
    return ("TensorRT %s cannot load the engine %s: it was built by another TensorRT version or for another GPU "
            "(this device: %s, compute capability %s)%s. Rebuild it on this device, or give hilbench the .onnx: it "
            "builds the engine here and caches it" % (trt.__version__, os.path.basename(model_path), gpu["name"],
                                                      gpu["compute_capability"], ": " + reason if reason else ""))


def _parse_error(model_path, errors):
    text = "; ".join(e for e in errors if e) or "no reason given"
    low = text.lower()
    if "zero point" in low or "zero_point" in low or "symmetric" in low:
        return ("%s has asymmetric INT8 quantization (a Q/DQ zero point is not 0), which TensorRT refuses: quantize it "
                "symmetrically on the host (`hilbench variants MODEL.onnx --calibration DATA.npz --for tensorrt`) and "
                "run again (TensorRT: %s)" % (os.path.basename(model_path), text))
    return "TensorRT cannot parse %s: %s" % (os.path.basename(model_path), text)


def asymmetric_zero_points(model_path):
    """The names of the QuantizeLinear/DequantizeLinear nodes of an ONNX model whose INT8 zero point is not 0
    (TensorRT takes symmetric quantization only), read with the ``onnx`` package; None where it is missing
    (the check is then TensorRT's own, at parse time)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    model = onnx.load(model_path, load_external_data=False)
    consts = dict((t.name, t) for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t
    bad = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3 or not node.input[2]:
            continue
        tensor = consts.get(node.input[2])
        if tensor is None:
            continue
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind in "iu" and values.dtype.itemsize == 1 and values.any():
            bad.append(node.name or node.output[0])
    return bad


def _check_symmetric_onnx(model_path):
    try:
        bad = asymmetric_zero_points(model_path)
    except Exception:
        return  # onnx cannot read it: TensorRT's parser says why
    if bad:
        raise AgentError("model", "%s has asymmetric INT8 quantization (%d Q/DQ node(s) with a zero point other than "
                         "0, e.g. %r), which TensorRT refuses: quantize it symmetrically on the host "
                         "(`hilbench variants MODEL.onnx --calibration DATA.npz --for tensorrt`) and run again"
                         % (os.path.basename(model_path), len(bad), bad[0]))


def _as_numpy(host, kind):
    import numpy as np

    if kind == "bfloat16":  # the upper half of a float32
        return (host.astype(np.uint32) << 16).view(np.float32)
    return host.copy()


_PRECISION_WORDS = (("bfloat16", "BF16"), ("bf16", "BF16"), ("fp8", "FP8"), ("fp16", "FP16"), ("half", "FP16"),
                    ("fp32", "FP32"), ("float", "FP32"), ("int8", "INT8"), ("int32", "INT32"), ("int64", "INT64"),
                    ("uint8", "UINT8"), ("bool", "BOOL"), ("int4", "INT4"), ("fp4", "FP4"))


def _precision(region):
    """A layer output's precision from the inspector's "Format/Datatype" text ("Row major linear FP32",
    "Channel major FP16 format where channel % 8 == 0", "Int8 ...")."""
    text = str(region.get("Format/Datatype", "")).lower() if isinstance(region, dict) else ""
    for word, name in _PRECISION_WORDS:
        if word in text:
            return name
    return None


def _engine_layers(trt, engine, dla_requested):
    """Precision and placement read from the engine (IEngineInspector, JSON): counts by precision and by device,
    and the first MAX_LAYERS_LISTED layers. An engine built without detailed profiling verbosity lists names
    only: then the precisions are unknown and say so. A layer is on the DLA where the inspector says so (its
    type or tactic names the DLA), or, in a DLA build, where it is a foreign node (TensorRT runs each DLA
    subgraph as one ``{ForeignNode[...]}`` layer between copies to and from the DLA's memory)."""
    try:
        inspector = engine.create_engine_inspector()
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as exc:
        return {"layer_info": "the engine inspector failed: %s" % _first_line(exc)}
    layers = info.get("Layers") or []
    listed, by_precision, by_device = [], {}, {}
    detailed = bool(layers) and isinstance(layers[0], dict)
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        name = str(layer.get("Name", ""))
        kind = str(layer.get("LayerType", ""))
        outputs = layer.get("Outputs") or []
        precision = _precision(outputs[0]) if outputs else None
        words = (kind + " " + str(layer.get("TacticName", ""))).lower()
        device = "DLA" if ("dla" in words or (dla_requested and "foreignnode" in name.replace(" ", "").lower())) \
            else "GPU"
        by_device[device] = by_device.get(device, 0) + 1
        if precision:
            by_precision[precision] = by_precision.get(precision, 0) + 1
        if len(listed) < MAX_LAYERS_LISTED:
            listed.append({"name": name[:200], "type": kind[:80], "precision": precision, "device": device})
    out = {"layers": len(layers), "layer_precisions": by_precision if detailed else None,
           "layer_devices": by_device if detailed else None, "layer_placement": listed if detailed else None}
    if not detailed:
        out["layer_info"] = ("the engine lists layer names only: build it with detailed profiling verbosity "
                             "(trtexec --profilingVerbosity=detailed) to see precisions and placement")
    return out


def engine_offload(layers, dla_core=None):
    """The offload verdict of an engine's inspected layers (:func:`_engine_layers`' dict)."""
    total = layers.get("layers")
    devices = layers.get("layer_devices")
    precisions = layers.get("layer_precisions")
    source = "TensorRT engine inspector (IEngineInspector, JSON layer information)"
    if total is None:
        return offload_verdict("DLA:%d" % dla_core if dla_core is not None else "GPU",
                               source="%s: %s" % (source, layers.get("layer_info", "no layer information")))
    if dla_core is None:
        return offload_verdict("GPU", total, total, 0, 1 if total else 0, (), source + ": TensorRT runs every layer "
                               "on the GPU", precisions=precisions, devices=devices)
    accelerator = "DLA:%d" % dla_core
    if devices is None:
        return offload_verdict(accelerator, total, None, 0, None, (), "%s: %s" % (
            source, layers.get("layer_info", "the engine does not say which layers run on the DLA")))
    on_dla = devices.get("DLA", 0)
    placement = layers.get("layer_placement") or []
    # Reformat layers move tensors to and from the DLA's memory formats: plumbing, not the model's layers.
    plumbing = sum(1 for e in placement if e.get("device") != "DLA" and "reformat" in str(e.get("type", "")).lower())
    total -= plumbing
    gpu = [e for e in placement if e.get("device") != "DLA" and "reformat" not in str(e.get("type", "")).lower()]
    how = "%d of %d layers on %s (each DLA subgraph is one layer; %d reformat layers not counted)" % (
        on_dla, total, accelerator, plumbing)
    if total > on_dla:
        how += "; %d fell back to the GPU%s" % (total - on_dla, " (first: %s %s)" % (gpu[0]["type"], gpu[0]["name"])
                                                 if gpu else "")
    return offload_verdict(accelerator, total, on_dla, 0, on_dla, (), "%s: %s" % (source, how),
                           precisions=precisions, devices=devices)
