"""CUDA for the agent's GPU backends: device buffers, a stream, CUDA events (GPU time per invoke) and CUDA graphs,
through cuda-python (NVIDIA's bindings, ``cuda.bindings.runtime``; ``from cuda import cudart`` before 12.6)
first, and pycuda where cuda-python is missing.

Both speak the CUDA runtime's semantics; this module gives them one face (:class:`Cuda`). Calls follow
the documented Python signatures: cuda-python returns ``(cudaError_t, result...)`` tuples
(``cudaMalloc(size) -> (err, ptr)``, ``cudaEventElapsedTime(start, end) -> (err, ms)``,
``cudaStreamEndCapture(stream) -> (err, graph)``, ``cudaGraphInstantiate(graph, flags) -> (err, exec)``);
pycuda raises ``pycuda.driver.Error`` and has ``Event.time_since`` (milliseconds). pycuda is used without
``pycuda.autoinit``: the context is made on the device the job names.
"""

from hilbench_agent.protocol import AgentError

CHOICES = ("auto", "cuda-python", "pycuda")


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


def import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (cuda-python >= 12.6, 13), else the older
    ``cuda.cudart``; and its version."""
    try:
        from cuda.bindings import runtime as cudart
        try:
            from cuda import bindings
            version = getattr(bindings, "__version__", None)
        except ImportError:
            version = None
        return cudart, version
    except ImportError:
        import cuda
        from cuda import cudart  # cuda-python < 12.6
        return cudart, getattr(cuda, "__version__", None)


def open_cuda(which="auto"):
    """A :class:`Cuda` through ``which`` (auto: cuda-python, else pycuda); AgentError saying what to install."""
    tried = []
    if which in ("auto", "cuda-python"):
        try:
            cudart, version = import_cudart()
            return CudaPython(cudart, version)
        except ImportError as exc:
            tried.append("cuda-python (%s)" % _first_line(exc))
    if which in ("auto", "pycuda"):
        try:
            import pycuda
            import pycuda.driver as driver
            return PyCuda(driver, getattr(pycuda, "VERSION_TEXT", None))
        except ImportError as exc:
            tried.append("pycuda (%s)" % _first_line(exc))
    raise AgentError("backend", "no CUDA bindings for Python on this device: %s; install cuda-python "
                     "(pip install cuda-python, the version of the device's CUDA) or pycuda" % "; ".join(tried))


class Cuda(object):
    """What a GPU backend needs from CUDA. ``name``/``version`` say which bindings run."""

    name = "none"
    version = None
    supports_graphs = False

    def device_count(self):
        raise NotImplementedError

    def use_device(self, index):
        """Make ``index`` the current device (raises AgentError naming how many there are)."""
        raise NotImplementedError

    def properties(self, index):
        """{"name", "compute_capability": "8.7", "total_memory_bytes"} of device ``index``."""
        raise NotImplementedError

    def memory_used(self):
        """Bytes of the current device's memory in use (total - free), or None."""
        raise NotImplementedError


class CudaPython(Cuda):
    name = "cuda-python"
    supports_graphs = True

    def __init__(self, cudart, version=None):
        self.rt = cudart
        self.version = version
        self._ok = cudart.cudaError_t.cudaSuccess
        self._buffers = []

    def check(self, result, what):
        """The value(s) of a cuda-python call's ``(err, ...)`` tuple; AgentError on an error."""
        err = result[0]
        if err != self._ok:
            raise AgentError("backend", "CUDA %s failed: %s" % (what, self.error_text(err)))
        rest = result[1:]
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else rest

    def error_text(self, err):
        try:
            res = self.rt.cudaGetErrorString(err)
            text = res[1] if isinstance(res, tuple) else res
            return text.decode() if isinstance(text, bytes) else str(text)
        except Exception:
            return str(err)

    def device_count(self):
        return int(self.check(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def use_device(self, index):
        count = self.device_count()
        if index >= count:
            raise AgentError("backend", "setting device = %d but this device has %d CUDA device(s)" % (index, count))
        self.check(self.rt.cudaSetDevice(index), "cudaSetDevice(%d)" % index)

    def properties(self, index):
        prop = self.check(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = prop.name
        if isinstance(name, bytes):
            name = name.split(b"\0")[0].decode("utf-8", "replace")
        return {"name": str(name), "compute_capability": "%d.%d" % (prop.major, prop.minor),
                "total_memory_bytes": int(prop.totalGlobalMem)}

    def memory_used(self):
        free, total = self.check(self.rt.cudaMemGetInfo(), "cudaMemGetInfo")
        return int(total) - int(free)

    # -- buffers, streams
    def stream(self):
        return self.check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream):
        return int(stream)

    def malloc(self, nbytes):
        ptr = int(self.check(self.rt.cudaMalloc(max(1, int(nbytes))), "cudaMalloc(%d)" % nbytes))
        self._buffers.append(ptr)
        return ptr

    def htod(self, ptr, array):
        self.check(self.rt.cudaMemcpy(ptr, array.ctypes.data, array.nbytes,
                                      self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy to the GPU")

    def dtoh(self, array, ptr):
        self.check(self.rt.cudaMemcpy(array.ctypes.data, ptr, array.nbytes,
                                      self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost), "cudaMemcpy from the GPU")

    # -- the timed call
    def runner(self, enqueue, stream, gpu=None, sync="stream"):
        """A zero-argument call that enqueues the work (``enqueue()``, which returns False on failure) and
        waits for it: ``sync`` "stream" (cudaStreamSynchronize) or "event" (cudaEventSynchronize on an event
        recorded after the work). With ``gpu`` (a list) it records CUDA events around the work and appends
        their elapsed time in ns after the wait."""
        rt, ok = self.rt, self._ok
        record, stream_sync, event_sync = rt.cudaEventRecord, rt.cudaStreamSynchronize, rt.cudaEventSynchronize
        elapsed = rt.cudaEventElapsedTime
        start = self.check(rt.cudaEventCreate(), "cudaEventCreate")
        end = self.check(rt.cudaEventCreate(), "cudaEventCreate")
        self._events = getattr(self, "_events", []) + [start, end]
        by_event = sync == "event"

        def fail(what, err=None):
            raise AgentError("backend", "inference failed: %s%s" % (what, (": " + self.error_text(err)) if err is not None else ""))

        if gpu is not None:
            add = gpu.append

            def run():
                record(start, stream)
                if not enqueue():
                    fail("TensorRT could not enqueue the inference")
                record(end, stream)
                err = (event_sync(end) if by_event else stream_sync(stream))[0]
                if err != ok:
                    fail("CUDA synchronisation", err)
                err, ms = elapsed(start, end)
                if err != ok:
                    fail("cudaEventElapsedTime", err)
                add(int(ms * 1e6))
        else:
            def run():
                if not enqueue():
                    fail("TensorRT could not enqueue the inference")
                if by_event:
                    record(end, stream)
                    err = event_sync(end)[0]
                else:
                    err = stream_sync(stream)[0]
                if err != ok:
                    fail("CUDA synchronisation", err)
        return run

    def capture(self, enqueue, stream):
        """``enqueue`` captured once into a CUDA graph on ``stream``; returns a zero-argument call that launches
        the graph (True on success), for :meth:`runner`."""
        rt = self.rt
        self.check(rt.cudaStreamBeginCapture(stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal),
                   "cudaStreamBeginCapture")
        enqueued = enqueue()
        graph = self.check(rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        if not enqueued:
            raise AgentError("backend", "TensorRT could not enqueue the inference while capturing a CUDA graph; "
                             "run with cuda_graph = false")
        exec_ = self.check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        self._graph = (graph, exec_)
        launch, ok = rt.cudaGraphLaunch, self._ok

        def replay():
            return launch(exec_, stream)[0] == ok
        return replay

    def close(self):
        rt = self.rt
        for ptr in self._buffers:
            rt.cudaFree(ptr)
        self._buffers = []
        for ev in getattr(self, "_events", ()):
            rt.cudaEventDestroy(ev)
        self._events = []
        graph = getattr(self, "_graph", None)
        if graph:
            rt.cudaGraphExecDestroy(graph[1])
            rt.cudaGraphDestroy(graph[0])
            self._graph = None


class PyCuda(Cuda):
    name = "pycuda"
    supports_graphs = False

    def __init__(self, driver, version=None):
        self.drv = driver
        self.version = version
        self.context = None
        self._buffers = []
        try:
            driver.init()
        except Exception as exc:
            raise AgentError("backend", "pycuda cannot initialise CUDA: %s" % _first_line(exc))

    def device_count(self):
        return int(self.drv.Device.count())

    def use_device(self, index):
        count = self.device_count()
        if index >= count:
            raise AgentError("backend", "setting device = %d but this device has %d CUDA device(s)" % (index, count))
        if self.context is None:
            self.context = self.drv.Device(index).make_context()

    def properties(self, index):
        dev = self.drv.Device(index)
        major, minor = dev.compute_capability()
        return {"name": str(dev.name()), "compute_capability": "%d.%d" % (major, minor),
                "total_memory_bytes": int(dev.total_memory())}

    def memory_used(self):
        free, total = self.drv.mem_get_info()
        return int(total) - int(free)

    def stream(self):
        return self.drv.Stream()

    def stream_handle(self, stream):
        return int(stream.handle)

    def malloc(self, nbytes):
        buf = self.drv.mem_alloc(max(1, int(nbytes)))
        self._buffers.append(buf)  # pycuda frees an allocation when its object goes
        return int(buf)

    def htod(self, ptr, array):
        self.drv.memcpy_htod(ptr, array)

    def dtoh(self, array, ptr):
        self.drv.memcpy_dtoh(array, ptr)

    def runner(self, enqueue, stream, gpu=None, sync="stream"):
        start, end = self.drv.Event(), self.drv.Event()
        by_event = sync == "event"

        def fail():
            raise AgentError("backend", "inference failed: TensorRT could not enqueue the inference")

        if gpu is not None:
            add = gpu.append

            def run():
                start.record(stream)
                if not enqueue():
                    fail()
                end.record(stream)
                if by_event:
                    end.synchronize()
                else:
                    stream.synchronize()
                add(int(end.time_since(start) * 1e6))
        else:
            def run():
                if not enqueue():
                    fail()
                if by_event:
                    end.record(stream)
                    end.synchronize()
                else:
                    stream.synchronize()
        return run

    def capture(self, enqueue, stream):
        raise AgentError("backend", "cuda_graph = true needs cuda-python (pip install cuda-python); this device "
                         "has pycuda only")

    def close(self):
        self._buffers = []
        if self.context is not None:
            self.context.pop()
            self.context = None
