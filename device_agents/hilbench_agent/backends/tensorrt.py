"""TensorRT backend (NVIDIA Jetson and dGPUs), with pycuda or cuda-python for buffers.

Loads a serialized engine (.engine/.plan/.trt) or builds one from ONNX (FP16/INT8
flags). The timed call is one ``execute_async_v3`` (TensorRT >= 8.5) or
``execute_v2`` plus the stream synchronisation: H2D and D2H copies happen once in
``set_inputs`` and ``outputs`` and are not part of the timed invoke.
"""

from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file
from hilbench_agent.protocol import AgentError


def _import():
    import tensorrt as trt  # noqa: F401
    try:
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as cuda
        return trt, cuda
    except ImportError:
        raise ImportError("pycuda is not installed")


class TensorRTBackend(Backend):
    name = "tensorrt"
    aliases = ("trt",)
    model_suffixes = (".onnx", ".engine", ".plan", ".trt")
    default_for = (".engine", ".plan", ".trt")
    install_hint = "TensorRT comes with JetPack (python3-libnvinfer); pycuda: pip install pycuda"
    settings = {
        "fp16": Setting((bool,), "allow FP16 kernels when building from ONNX"),
        "int8": Setting((bool,), "allow INT8 kernels when building from ONNX (needs a calibrated/QDQ model)"),
        "workspace_mb": Setting((int,), "builder workspace limit in MiB", minimum=1),
        "device": Setting((int,), "CUDA device index", minimum=0),
    }

    @classmethod
    def probe(cls):
        try:
            import tensorrt as trt
        except Exception as exc:
            return {"available": False, "reason": "tensorrt is not installed (%s)" % str(exc).splitlines()[0]}
        info = {"available": True, "version": trt.__version__}
        try:
            import pycuda.driver as cuda
            cuda.init()
            if cuda.Device.count() == 0:
                return dict(info, available=False, reason="no CUDA device found")
            info["gpu"] = cuda.Device(0).name()
        except Exception as exc:
            return dict(info, available=False, reason="pycuda cannot reach a GPU (%s)" % str(exc).splitlines()[0])
        return info

    def load(self, model_path, settings):
        check_model_file(model_path, (".onnx", ".engine", ".plan", ".trt"))
        try:
            trt, cuda = _import()
        except Exception as exc:
            raise AgentError("backend", "TensorRT is not usable on this device: %s" % str(exc).splitlines()[0])
        self.trt, self.cuda = trt, cuda
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        if model_path.lower().endswith(".onnx"):
            engine_bytes = self._build_from_onnx(trt, logger, model_path, settings)
        else:
            with open(model_path, "rb") as f:
                engine_bytes = f.read()
        self.engine = runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise AgentError("model", "TensorRT cannot deserialize %s (built for another TensorRT version or GPU?)" % model_path)
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self._settings = dict(settings)
        self._names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

    def _build_from_onnx(self, trt, logger, model_path, settings):
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        with open(model_path, "rb") as f:
            if not parser.parse(f.read()):
                errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise AgentError("model", "TensorRT cannot parse %s: %s" % (model_path, errors))
        config = builder.create_builder_config()
        if settings.get("workspace_mb"):
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mb"]) << 20)
        if settings.get("fp16"):
            config.set_flag(trt.BuilderFlag.FP16)
        if settings.get("int8"):
            config.set_flag(trt.BuilderFlag.INT8)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise AgentError("backend", "TensorRT failed to build an engine from %s" % model_path)
        return bytes(serialized)

    def input_specs(self):
        import numpy as np
        trt = self.trt
        specs = []
        for name in self._names:
            if self.engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                continue
            shape = [d if d >= 0 else None for d in self.engine.get_tensor_shape(name)]
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).name
            specs.append(InputSpec(name, shape, dtype))
        return specs

    def set_inputs(self, arrays):
        import numpy as np
        trt, cuda = self.trt, self.cuda
        self._host = {}
        self._device = {}
        for name in self._names:
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.context.set_input_shape(name, arrays[name].shape)
        for name in self._names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = trt.nptype(self.engine.get_tensor_dtype(name))
            host = np.ascontiguousarray(arrays[name]) if name in arrays else cuda.pagelocked_empty(shape, dtype)
            dev = cuda.mem_alloc(max(1, host.nbytes))
            self._host[name], self._device[name] = host, dev
            self.context.set_tensor_address(name, int(dev))
            if name in arrays:
                cuda.memcpy_htod(dev, host)
        context, stream = self.context, self.stream
        handle = stream.handle

        def invoke():
            context.execute_async_v3(handle)
            stream.synchronize()

        self.invoke = invoke

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def outputs(self):
        trt, cuda = self.trt, self.cuda
        out = []
        for name in self._names:
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                cuda.memcpy_dtoh(self._host[name], self._device[name])
                out.append(self._host[name].copy())
        return out

    def effective_settings(self):
        return {"fp16": bool(self._settings.get("fp16")), "int8": bool(self._settings.get("int8")),
                "tensorrt": self.trt.__version__}
