"""Stand-ins for TensorRT, cuda-python and pycuda, shaped like each supported API level, so the TensorRT
backend's every method runs on a machine without a GPU.

* :func:`fake_tensorrt` builds a ``tensorrt`` module for one version from tests/support/tensorrt_api.py: an enum
  member, module name or class attribute that version lacks raises AttributeError, as the real bindings do,
  and every name the backend touches is recorded (``module.used``: (where, name) pairs).
* :class:`FakeGPU` is the device: memory (real host memory behind the pointers, so copies move real bytes), a
  GPU clock that each inference advances by ``kernel_ns``, CUDA events that read that clock, stream capture
  into CUDA graphs, and a log of calls.
* :func:`fake_cudart` is cuda-python's runtime module (``(err, value...)`` tuples, ``cudaError_t``,
  ``cudaMemcpyKind``, ``cudaStreamCaptureMode``), installed as ``cuda.bindings.runtime`` (cuda-python >= 12.6)
  or as the older ``cuda.cudart``; :func:`fake_pycuda` is ``pycuda.driver`` (``Device``, ``Stream``, ``Event``
  with ``time_since``, ``mem_alloc``, ``memcpy_htod``/``memcpy_dtoh``, ``mem_get_info``).

The fake engine is JSON (``FAKETRT`` header): what the builder was asked for, the TensorRT version and compute
capability it was built for (a mismatch is refused at deserialize, with TensorRT's own wording), and its
layers; "inference" writes, into every output element, the sum of the first input's elements.
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import types
from typing import Any

import numpy as np

from support.tensorrt_api import API, has

HEADER = b"FAKETRT\n"
_ONNX_TYPES = {1: "FLOAT", 10: "HALF", 6: "INT32", 7: "INT64", 3: "INT8", 2: "UINT8", 9: "BOOL", 16: "BF16"}
_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "INT8": np.int8,
       "UINT8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16}


class FakeGPU:
    """The fake device: ``gpus`` CUDA devices of ``name``/``cc`` and ``dla_cores`` DLA cores; each inference
    takes ``kernel_ns`` of GPU clock."""

    def __init__(self, name: str = "Orin", cc: tuple[int, int] = (8, 7), gpus: int = 1, dla_cores: int = 2,
                 kernel_ns: int = 180_000, total: int = 8 << 30) -> None:
        self.name, self.cc, self.gpus, self.dla_cores, self.kernel_ns = name, cc, gpus, dla_cores, kernel_ns
        self.total = total
        self.clock = 0
        self.calls: list[str] = []
        self.buffers: dict[int, Any] = {}
        self.engine_memory = 0
        self.current = 0
        self.capturing: list | None = None

    def used(self) -> int:
        return sum(len(b) for b in self.buffers.values()) + self.engine_memory

    def alloc(self, n: int) -> int:
        buf = ctypes.create_string_buffer(n)
        ptr = ctypes.addressof(buf)
        self.buffers[ptr] = buf
        return ptr

    def run(self, work) -> None:
        """An inference enqueued on a stream: captured into a graph, or run now (it advances the GPU clock)."""
        if self.capturing is not None:
            self.capturing.append(work)
            self.calls.append("captured")
            return
        work()
        self.clock += self.kernel_ns


# ---------------------------------------------------------------------- tensorrt
class _Member(int):
    def __new__(cls, value: int, name: str, enum_name: str) -> _Member:
        obj = int.__new__(cls, value)
        obj.name = name  # type: ignore[attr-defined]
        obj.enum = enum_name  # type: ignore[attr-defined]
        return obj

    def __repr__(self) -> str:
        return f"{self.enum}.{self.name}"  # type: ignore[attr-defined]


class _Enum:
    def __init__(self, name: str, members: list[str], used: set) -> None:
        self._name, self._used = name, used
        self._members = {m: _Member(i, m, name) for i, m in enumerate(members)}

    def __getattr__(self, item: str) -> _Member:
        if item.startswith("_"):
            raise AttributeError(item)
        if item not in self._members:
            raise AttributeError(f"type object 'tensorrt.{self._name}' has no attribute '{item}'")
        self._used.add((self._name, item))
        return self._members[item]


class _Strict:
    """Public attributes exist only where the version's table lists them for ``_api`` (the class's name)."""

    _api = ""

    def __getattribute__(self, item: str) -> Any:
        if not item.startswith("_"):
            mod = object.__getattribute__(self, "_trt")
            if not has(mod.__version__, type(self)._api, item):
                raise AttributeError(f"'tensorrt.{type(self)._api}' object has no attribute '{item}' "
                                     f"(TensorRT {mod.__version__})")
            mod.used.add((type(self)._api, item))
        return object.__getattribute__(self, item)

    def __setattr__(self, item: str, value: Any) -> None:
        if not item.startswith("_"):
            mod = object.__getattribute__(self, "_trt")
            if not has(mod.__version__, type(self)._api, item):
                raise AttributeError(f"'tensorrt.{type(self)._api}' object has no attribute '{item}'")
            mod.used.add((type(self)._api, item))
        object.__setattr__(self, item, value)


class FakeTRT(types.ModuleType):
    """``tensorrt`` of one version (see :func:`fake_tensorrt`)."""

    def __init__(self, version: str, gpu: FakeGPU) -> None:
        super().__init__("tensorrt")
        object.__setattr__(self, "used", set())
        object.__setattr__(self, "gpu", gpu)
        object.__setattr__(self, "log", [])  # (what, details) the builder and runtime were asked
        api = API[version]
        object.__setattr__(self, "_names", set(api["module"]))
        self.__dict__["__version__"] = version
        for name, members in api["enums"].items():
            if name != "Severity":
                self.__dict__[name] = _Enum(name, members, self.used)
        severity = _Enum("Severity", api["enums"]["Severity"], self.used)
        self.__dict__["ILogger"] = type("ILogger", (), {"Severity": severity, "__init__": lambda s: None,
                                                        "log": lambda s, sev, msg: None})
        self.__dict__["Logger"] = type("Logger", (self.__dict__["ILogger"],), {"WARNING": severity.WARNING})
        self.__dict__["Builder"] = _bind(FakeBuilder, self)
        self.__dict__["Runtime"] = _bind(FakeRuntime, self)
        self.__dict__["OnnxParser"] = FakeOnnxParser
        self.__dict__["volume"] = lambda shape: int(np.prod(list(shape)))
        self.__dict__["nptype"] = _nptype

    def __getattribute__(self, item: str) -> Any:
        if not item.startswith("_") and item not in ("used", "gpu", "log", "error"):
            names = object.__getattribute__(self, "_names")
            if item not in names:
                raise AttributeError(f"module 'tensorrt' has no attribute '{item}'")
            object.__getattribute__(self, "used").add(("module", item))
        return object.__getattribute__(self, item)

    def error(self, logger: Any, message: str) -> None:
        logger.log(self.ILogger.Severity.ERROR, message)


def _nptype(dt: Any) -> Any:
    if dt.name not in _NP or dt.name == "BF16":
        raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. {dt!r}")
    return _NP[dt.name]


def _bind(cls: type, trt: FakeTRT) -> type:
    return type(cls.__name__, (cls,), {"_trt": trt})


class FakeTensor(_Strict):
    _api = "ITensor"

    def __init__(self, trt: FakeTRT, name: str, shape: list[int], dtype: str) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "shape", list(shape))
        object.__setattr__(self, "dtype", trt.DataType.__getattr__(dtype))


class FakeNetwork(_Strict):
    _api = "INetworkDefinition"

    def __init__(self, trt: FakeTRT, flags: int) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_flags", flags)
        object.__setattr__(self, "_inputs", [])
        object.__setattr__(self, "_outputs", [])
        object.__setattr__(self, "_symbols", {})
        object.__setattr__(self, "_has_qdq", False)

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    @property
    def num_layers(self) -> int:
        return 3

    def get_input(self, i: int) -> FakeTensor:
        return self._inputs[i]

    def get_output(self, i: int) -> FakeTensor:
        return self._outputs[i]


class FakeOnnxParser(_Strict):
    _api = "OnnxParser"

    def __init__(self, network: FakeNetwork, logger: Any) -> None:
        object.__setattr__(self, "_trt", network._trt)
        object.__setattr__(self, "_network", network)
        object.__setattr__(self, "_errors", [])

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, i: int) -> str:
        return self._errors[i]

    def parse(self, data: bytes, path: str | None = None) -> bool:
        raise AssertionError("the backend parses with parse_from_file")

    def parse_from_file(self, path: str) -> bool:
        import onnx
        from onnx import numpy_helper

        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as exc:
            self._errors.append(f"ModelImporter.cpp:773: Failed to parse ONNX model from file: {path} ({exc})")
            return False
        inits = {t.name: t for t in model.graph.initializer}
        names = set(inits)
        net = self._network
        for node in model.graph.node:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                object.__setattr__(net, "_has_qdq", True)
                if len(node.input) > 2 and node.input[2] in inits:
                    zp = numpy_helper.to_array(inits[node.input[2]])
                    if zp.dtype.itemsize == 1 and zp.any():
                        # onnx-tensorrt's importer, in its own words
                        self._errors.append(
                            f"In node {node.name} (importQuantizeLinear): INVALID_NODE: Assertion failed: "
                            "shiftIsAllZeros(zeroPoint) && \"TensorRT only supports symmetric quantization. The zero "
                            "point for the QuantizeLinear/DequantizeLinear operator must be all zeros.\"")
                        return False
        for which, values in (("_inputs", model.graph.input), ("_outputs", model.graph.output)):
            for vi in values:
                if vi.name in names:
                    continue
                t = vi.type.tensor_type
                dims = []
                for axis, d in enumerate(t.shape.dim):
                    if d.dim_param or not d.dim_value:
                        dims.append(-1)
                        if which == "_inputs":
                            net._symbols.setdefault(d.dim_param or f"?{axis}", (vi.name, axis))
                        else:
                            net._symbols.setdefault("out:" + vi.name + f":{axis}", d.dim_param)
                    else:
                        dims.append(int(d.dim_value))
                getattr(net, which).append(FakeTensor(self._trt, vi.name, dims, _ONNX_TYPES.get(t.elem_type, "FLOAT")))
        return True


class FakeProfile(_Strict):
    _api = "IOptimizationProfile"

    def __init__(self, trt: FakeTRT) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_shapes", {})

    def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
        self._trt.log.append(("set_shape", name, list(lo), list(opt), list(hi)))
        self._shapes[name] = [list(lo), list(opt), list(hi)]

    def get_shape(self, name: str) -> list:
        return self._shapes[name]


class FakeConfig(_Strict):
    _api = "IBuilderConfig"

    def __init__(self, trt: FakeTRT) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_flags", set())
        object.__setattr__(self, "_profiles", [])
        object.__setattr__(self, "_pools", {})
        object.__setattr__(self, "default_device_type", trt.DeviceType.GPU)
        object.__setattr__(self, "DLA_core", -1)
        object.__setattr__(self, "profiling_verbosity", trt.ProfilingVerbosity.LAYER_NAMES_ONLY)
        object.__setattr__(self, "builder_optimization_level", 3)

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self._pools[pool.name] = size

    def get_memory_pool_limit(self, pool: Any) -> int:
        return self._pools.get(pool.name, 0)

    def set_flag(self, flag: Any) -> None:
        self._flags.add(flag.name)

    def get_flag(self, flag: Any) -> bool:
        return flag.name in self._flags

    def clear_flag(self, flag: Any) -> None:
        self._flags.discard(flag.name)

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1


class FakeBuilder(_Strict):
    _api = "Builder"

    def __init__(self, logger: Any) -> None:
        object.__setattr__(self, "_logger", logger)

    @property
    def num_DLA_cores(self) -> int:
        return self._trt.gpu.dla_cores

    @property
    def platform_has_fast_fp16(self) -> bool:
        return True

    @property
    def platform_has_fast_int8(self) -> bool:
        return True

    def create_network(self, flags: int = 0) -> FakeNetwork:
        trt = self._trt
        names = API[trt.__version__]["enums"]["NetworkDefinitionCreationFlag"]
        set_flags = [n for i, n in enumerate(names) if flags & (1 << i)]
        trt.log.append(("create_network", set_flags))
        if trt.__version__.startswith("8.") and "EXPLICIT_BATCH" not in set_flags:
            trt.error(self._logger, "Network must have explicit batch dimension (ONNX parser requires it in 8.x)")
        return FakeNetwork(trt, flags)

    def create_builder_config(self) -> FakeConfig:
        return FakeConfig(self._trt)

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile(self._trt)

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes | None:
        trt = self._trt
        names = API[trt.__version__]["enums"]["NetworkDefinitionCreationFlag"]
        strongly = trt.__version__.startswith("11.") or (
            "STRONGLY_TYPED" in names and network._flags & (1 << names.index("STRONGLY_TYPED")))
        flags = sorted(config._flags)
        trt.log.append(("build", flags, config.default_device_type.name, config.DLA_core,
                        config.profiling_verbosity.name))
        dynamic = [t for t in network._inputs if any(d < 0 for d in t.shape)]
        if dynamic and not config._profiles:
            trt.error(self._logger, "Network has dynamic or shape inputs, but no optimization profile has been defined.")
            return None
        dla = config.default_device_type.name == "DLA"
        if dla and not strongly and not ({"FP16", "INT8"} & set(flags)):
            trt.error(self._logger, "DLA requires FP16 or INT8 precision")
            return None
        if network._has_qdq and not strongly and "INT8" not in flags:
            precision = "FP16" if "FP16" in flags else "FP32"
        elif "INT8" in flags or (strongly and network._has_qdq):
            precision = "INT8"
        elif "FP16" in flags:
            precision = "FP16"
        else:
            precision = "FP32"
        fmt = {"FP32": "Row major linear FP32", "FP16": "Channel major FP16 format where channel % 8 == 0",
               "INT8": "Channel major INT8 format where channel % 16 == 0"}[precision]
        if dla:
            layers = [{"Name": "input to nvm", "LayerType": "Reformat", "Outputs": [{"Format/Datatype": fmt}]},
                      {"Name": "{ForeignNode[conv1...relu2]}", "LayerType": "ForeignNode",
                       "Outputs": [{"Format/Datatype": fmt}]},
                      {"Name": "fc", "LayerType": "CaskGemm", "TacticName": "sm87_xmma_gemm",
                       "Outputs": [{"Format/Datatype": fmt}]}]
        else:
            layers = [{"Name": "conv1", "LayerType": "CaskConvolution", "TacticName": "sm87_xmma_fprop",
                       "Outputs": [{"Format/Datatype": fmt}]},
                      {"Name": "fc", "LayerType": "CaskGemm", "TacticName": "sm87_xmma_gemm",
                       "Outputs": [{"Format/Datatype": "Row major linear FP32"}]}]
        profiles = config._profiles[0]._shapes if config._profiles else {}
        plan = {
            "trt": trt.__version__, "cc": list(trt.gpu.cc), "verbosity": config.profiling_verbosity.name,
            "layers": layers, "symbols": network._symbols, "device_memory": 3 << 20,
            "inputs": [{"name": t.name, "shape": t.shape, "dtype": t.dtype.name, "profile": profiles.get(t.name)}
                       for t in network._inputs],
            "outputs": [{"name": t.name, "shape": t.shape, "dtype": t.dtype.name} for t in network._outputs],
        }
        return bytearray(HEADER + json.dumps(plan).encode())


class FakeRuntime(_Strict):
    _api = "Runtime"

    def __init__(self, logger: Any) -> None:
        object.__setattr__(self, "_logger", logger)
        object.__setattr__(self, "DLA_core", -1)

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        trt = self._trt
        data = bytes(data)
        if not data.startswith(HEADER):
            trt.error(self._logger, "1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization "
                                    "(Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")
            return None
        plan = json.loads(data[len(HEADER):])
        if plan["trt"] != trt.__version__:
            trt.error(self._logger, "6: The engine plan file is not compatible with this version of TensorRT, "
                                    f"expecting library version {trt.__version__} got {plan['trt']}, please rebuild.")
            return None
        if tuple(plan["cc"]) != trt.gpu.cc:
            trt.error(self._logger, "6: The engine plan file is generated on an incompatible device, expecting compute "
                                    f"{trt.gpu.cc[0]}.{trt.gpu.cc[1]} got compute {plan['cc'][0]}.{plan['cc'][1]}, "
                                    "please rebuild.")
            return None
        trt.log.append(("deserialize", self.DLA_core))
        trt.gpu.engine_memory += plan["device_memory"]
        return FakeEngine(trt, plan)


class FakeEngine(_Strict):
    _api = "ICudaEngine"

    def __init__(self, trt: FakeTRT, plan: dict) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "_io", plan["inputs"] + plan["outputs"])

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    @property
    def num_layers(self) -> int:
        return len(self._plan["layers"])

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    @property
    def device_memory_size(self) -> int:
        return self._plan["device_memory"]

    @property
    def device_memory_size_v2(self) -> int:
        return self._plan["device_memory"]

    def _tensor(self, name: str) -> dict:
        for t in self._io:
            if t["name"] == name:
                return t
        raise KeyError(name)

    def get_tensor_name(self, i: int) -> str:
        return self._io[i]["name"]

    def get_tensor_mode(self, name: str) -> Any:
        mode = "INPUT" if any(t["name"] == name for t in self._plan["inputs"]) else "OUTPUT"
        return getattr(self._trt.TensorIOMode, mode)

    def get_tensor_shape(self, name: str) -> list[int]:
        return list(self._tensor(name)["shape"])

    def get_tensor_dtype(self, name: str) -> Any:
        return getattr(self._trt.DataType, self._tensor(name)["dtype"])

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[list[int]]:
        shapes = self._tensor(name).get("profile")
        if not shapes:
            shape = self._tensor(name)["shape"]
            return [shape, shape, shape]
        return shapes

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self._trt, self)

    def create_engine_inspector(self) -> FakeInspector:
        return FakeInspector(self._trt, self)


class FakeContext(_Strict):
    _api = "IExecutionContext"

    def __init__(self, trt: FakeTRT, engine: FakeEngine) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_shapes", {})
        object.__setattr__(self, "_addresses", {})

    def set_input_shape(self, name: str, shape: Any) -> bool:
        t = self._engine._tensor(name)
        shape = [int(d) for d in shape]
        lo, _, hi = self._engine.get_tensor_profile_shape(name, 0)
        if len(shape) != len(t["shape"]) or any(s < a or s > b for s, a, b in zip(shape, lo, hi, strict=True)):
            return False
        self._shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> list[int]:
        t = self._engine._tensor(name)
        if name in self._shapes:
            return self._shapes[name]
        out = []
        for axis, d in enumerate(t["shape"]):
            if d >= 0:
                out.append(d)
                continue
            symbol = self._engine._plan["symbols"].get(f"out:{name}:{axis}")
            source = self._engine._plan["symbols"].get(symbol) if symbol else None
            out.append(self._shapes[source[0]][source[1]] if source and source[0] in self._shapes else -1)
        return out

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self._addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        trt, engine = self._trt, self._engine
        trt.gpu.calls.append("execute_async_v3")
        first = engine._plan["inputs"][0]
        outputs = engine._plan["outputs"]
        addresses = dict(self._addresses)
        in_shape = self.get_tensor_shape(first["name"])
        out_shapes = {o["name"]: self.get_tensor_shape(o["name"]) for o in outputs}

        def work() -> None:
            x = _view(addresses[first["name"]], in_shape, _NP[first["dtype"]])
            total = float(np.asarray(x, dtype=np.float64).sum())
            for o in outputs:
                _view(addresses[o["name"]], out_shapes[o["name"]], _NP[o["dtype"]])[...] = total

        trt.gpu.run(work)
        return True

    def execute_v2(self, bindings: list) -> bool:
        raise AssertionError("the backend runs execute_async_v3")

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        return index == 0


def _view(ptr: int, shape: list[int], dtype: Any) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_char * n).from_address(ptr), dtype=dtype).reshape(shape)


class FakeInspector(_Strict):
    _api = "IEngineInspector"

    def __init__(self, trt: FakeTRT, engine: FakeEngine) -> None:
        object.__setattr__(self, "_trt", trt)
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "execution_context", None)

    def get_engine_information(self, fmt: Any) -> str:
        plan = self._engine._plan
        if fmt.name != "JSON":
            return "\n".join(layer["Name"] for layer in plan["layers"])
        layers: list[Any] = plan["layers"] if plan["verbosity"] == "DETAILED" else [
            layer["Name"] for layer in plan["layers"]]
        io_key = "I/O Tensors" if self._trt.__version__.startswith("11.") else "Bindings"
        return json.dumps({"Layers": layers, io_key: [t["name"] for t in self._engine._io]})

    def get_layer_information(self, index: int, fmt: Any) -> str:
        return json.dumps(self._engine._plan["layers"][index])


def fake_tensorrt(version: str, gpu: FakeGPU) -> FakeTRT:
    return FakeTRT(version, gpu)


def engine_bytes(version: str, cc: tuple[int, int], verbosity: str = "DETAILED") -> bytes:
    """A serialized fake engine (one static input [1, 4] float32, one output [1, 2]) built by ``version`` for
    compute capability ``cc``: what a prebuilt .engine file holds."""
    plan = {"trt": version, "cc": list(cc), "verbosity": verbosity, "symbols": {}, "device_memory": 1 << 20,
            "layers": [{"Name": "fc", "LayerType": "CaskGemm", "Outputs": [{"Format/Datatype": "Row major linear FP32"}]}],
            "inputs": [{"name": "x", "shape": [1, 4], "dtype": "FLOAT", "profile": None}],
            "outputs": [{"name": "y", "shape": [1, 2], "dtype": "FLOAT"}]}
    return HEADER + json.dumps(plan).encode()


# ---------------------------------------------------------------------- cuda-python
class cudaError_t(enum.IntEnum):  # noqa: N801 - cuda-python's name
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevice = 101


class _Handle:
    """cudaStream_t / cudaEvent_t / cudaGraph_t: an object with ``__int__``, as cuda-python's are."""

    _next = 0x1000

    def __init__(self, kind: str) -> None:
        _Handle._next += 0x10
        self.kind, self.value, self.t = kind, _Handle._next, None

    def __int__(self) -> int:
        return self.value


def fake_cudart(gpu: FakeGPU) -> types.ModuleType:
    rt = types.ModuleType("cuda.bindings.runtime")
    ok = (cudaError_t.cudaSuccess,)
    rt.cudaError_t = cudaError_t
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    rt.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeGlobal=0)
    log = gpu.calls.append

    def get_device_count():
        return (cudaError_t.cudaSuccess, gpu.gpus)

    def set_device(i):
        log(f"cudaSetDevice {i}")
        if i >= gpu.gpus:
            return (cudaError_t.cudaErrorInvalidDevice,)
        gpu.current = i
        return ok

    def properties(i):
        prop = types.SimpleNamespace(name=(f"{gpu.name} #{i}" if i else gpu.name).encode().ljust(256, b"\0"),
                                     major=gpu.cc[0], minor=gpu.cc[1], totalGlobalMem=gpu.total)
        return (cudaError_t.cudaSuccess, prop)

    def malloc(n):
        return (cudaError_t.cudaSuccess, gpu.alloc(n))

    def memcpy(dst, src, n, kind):
        log("cudaMemcpy " + ("HtoD" if kind == 1 else "DtoH"))
        ctypes.memmove(int(dst), int(src), n)
        return ok

    def event_record(ev, stream):
        log("cudaEventRecord")
        ev.t = gpu.clock
        return ok

    def elapsed(a, b):
        return (cudaError_t.cudaSuccess, (b.t - a.t) / 1e6)

    def begin_capture(stream, mode):
        log("cudaStreamBeginCapture")
        gpu.capturing = []
        return ok

    def end_capture(stream):
        log("cudaStreamEndCapture")
        graph = _Handle("graph")
        graph.works, gpu.capturing = gpu.capturing, None  # type: ignore[attr-defined]
        return (cudaError_t.cudaSuccess, graph)

    def instantiate(graph, flags):
        log("cudaGraphInstantiate")
        exec_ = _Handle("graphExec")
        exec_.works = graph.works  # type: ignore[attr-defined]
        return (cudaError_t.cudaSuccess, exec_)

    def launch(exec_, stream):
        log("cudaGraphLaunch")
        for work in exec_.works:
            gpu.run(work)
        return ok

    def record(name, result=ok):
        def call(*args):
            log(name)
            return result
        return call

    rt.cudaGetDeviceCount = get_device_count
    rt.cudaSetDevice = set_device
    rt.cudaGetDeviceProperties = properties
    rt.cudaMemGetInfo = lambda: (cudaError_t.cudaSuccess, gpu.total - gpu.used(), gpu.total)
    rt.cudaGetErrorString = lambda err: (cudaError_t.cudaSuccess, cudaError_t(err).name.encode())
    rt.cudaStreamCreate = lambda: (cudaError_t.cudaSuccess, _Handle("stream"))
    rt.cudaMalloc = malloc
    rt.cudaFree = lambda ptr: (gpu.buffers.pop(int(ptr), None), ok)[1]
    rt.cudaMemcpy = memcpy
    rt.cudaEventCreate = lambda: (cudaError_t.cudaSuccess, _Handle("event"))
    rt.cudaEventRecord = event_record
    rt.cudaEventSynchronize = record("cudaEventSynchronize")
    rt.cudaStreamSynchronize = record("cudaStreamSynchronize")
    rt.cudaEventElapsedTime = elapsed
    rt.cudaEventDestroy = record("cudaEventDestroy")
    rt.cudaStreamBeginCapture = begin_capture
    rt.cudaStreamEndCapture = end_capture
    rt.cudaGraphInstantiate = instantiate
    rt.cudaGraphLaunch = launch
    rt.cudaGraphExecDestroy = record("cudaGraphExecDestroy")
    rt.cudaGraphDestroy = record("cudaGraphDestroy")
    return rt


def install_cuda_python(monkeypatch: Any, gpu: FakeGPU, layout: str = "bindings") -> types.ModuleType:
    """cuda-python in ``sys.modules``: ``layout`` "bindings" (cuda.bindings.runtime, cuda-python >= 12.6) or
    "cudart" (``from cuda import cudart``, older releases, where cuda.bindings does not exist)."""
    rt = fake_cudart(gpu)
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []  # a package
    if layout == "bindings":
        bindings = types.ModuleType("cuda.bindings")
        bindings.__path__ = []
        bindings.__version__ = "12.6.2"
        bindings.runtime = rt
        cuda.bindings = bindings
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", rt)
    else:
        cuda.__version__ = "12.2.0"
        rt.__name__ = "cuda.cudart"
        cuda.cudart = rt
        monkeypatch.setitem(sys.modules, "cuda.bindings", None)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
        monkeypatch.setitem(sys.modules, "cuda.cudart", rt)
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    return rt


# ---------------------------------------------------------------------- pycuda
def install_pycuda(monkeypatch: Any, gpu: FakeGPU) -> types.ModuleType:
    """pycuda in ``sys.modules`` (and no cuda-python)."""
    drv = types.ModuleType("pycuda.driver")
    log = gpu.calls.append

    class Device:
        def __init__(self, i: int) -> None:
            self.i = i

        @staticmethod
        def count() -> int:
            return gpu.gpus

        def name(self) -> str:
            return f"{gpu.name} #{self.i}" if self.i else gpu.name

        def compute_capability(self) -> tuple[int, int]:
            return gpu.cc

        def total_memory(self) -> int:
            return gpu.total

        def make_context(self) -> Any:
            log(f"make_context {self.i}")
            return types.SimpleNamespace(pop=lambda: log("context.pop"))

    class Stream:
        handle = 0x2000

        def synchronize(self) -> None:
            log("Stream.synchronize")

    class Event:
        t = None

        def record(self, stream: Any = None) -> None:
            log("Event.record")
            self.t = gpu.clock

        def synchronize(self) -> None:
            log("Event.synchronize")

        def time_since(self, other: Event) -> float:
            return (self.t - other.t) / 1e6

    class Allocation:
        def __init__(self, n: int) -> None:
            self.ptr = gpu.alloc(n)

        def __int__(self) -> int:
            return self.ptr

    drv.init = lambda: log("cuInit")
    drv.Device = Device
    drv.Stream = Stream
    drv.Event = Event
    drv.mem_alloc = Allocation
    drv.memcpy_htod = lambda ptr, arr: ctypes.memmove(int(ptr), arr.ctypes.data, arr.nbytes)
    drv.memcpy_dtoh = lambda arr, ptr: ctypes.memmove(arr.ctypes.data, int(ptr), arr.nbytes)
    drv.mem_get_info = lambda: (gpu.total - gpu.used(), gpu.total)
    pycuda = types.ModuleType("pycuda")
    pycuda.__path__ = []
    pycuda.VERSION_TEXT = "2024.1"
    pycuda.driver = drv
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    monkeypatch.setitem(sys.modules, "cuda", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    return drv
