"""PyTorch backend: TorchScript (``.pt``, ``torch.jit.save``) and exported programs (``.pt2``,
``torch.export.save``), on the CPU or a CUDA GPU.

Neither format runs arbitrary pickles: ``torch.jit.load`` and ``torch.export.load`` read their own archives
(never ``torch.load``). Input shapes and dtypes come from the exported program's signature; a TorchScript file
carries none, so they come from a ``hilbench.json`` extra file where the model has one (``scripts/build_models.py``
writes it: ``torch.jit.save(m, f, _extra_files={"hilbench.json": ...})``), else from the plan's ``shapes``
(float32 inputs).

On CUDA the inputs are copied to the GPU once, in ``set_inputs``; the timed call is the forward pass and
the synchronisation that waits for it (``sync``: the CUDA event after the pass, or the whole device).
With ``gpu_time`` (the default on CUDA) each invoke records two CUDA events on the current stream around
the forward pass and reads their elapsed time after the synchronisation: a few microseconds of the host
latency are the events themselves. ``cuda_graph`` captures the forward pass once and replays the graph.
"""

import json

from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file, offload_verdict
from hilbench_agent.protocol import AgentError

_SUFFIXES = (".pt", ".pt2")
#: the extra file of a TorchScript archive that says its inputs: {"inputs": [{name, shape, dtype}]}
EXTRA_FILE = "hilbench.json"


def _one_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


class PyTorchBackend(Backend):
    name = "pytorch"
    aliases = ("torch",)
    model_suffixes = _SUFFIXES
    default_for = _SUFFIXES
    install_hint = ("pip install torch (on a Jetson: the JetPack wheel of torch from NVIDIA's "
                    "'PyTorch for Jetson' index, which has CUDA)")
    settings = {
        "device": Setting((str,), "cpu, cuda or cuda:N"),
        "threads": Setting((int,), "intra-op threads, torch.set_num_threads (0 = runtime default)", minimum=0),
        "gpu_time": Setting((bool,), "time each invoke with CUDA events too (CUDA only; default true there)"),
        "cuda_graph": Setting((bool,), "capture the forward pass in a CUDA graph and replay it (CUDA only)"),
        "sync": Setting((str,), "how the timed call waits for the GPU: event (the event after the pass) or "
                        "device (torch.cuda.synchronize)", choices=("event", "device")),
    }

    @classmethod
    def probe(cls):
        try:
            import torch
        except Exception as exc:
            return {"available": False, "reason": "torch is not installed (%s)" % _one_line(exc)}
        info = {"available": True, "version": torch.__version__, "cuda": False}
        try:
            if torch.cuda.is_available():
                info.update(cuda=True, cuda_version=torch.version.cuda, gpu=torch.cuda.get_device_name(0),
                            gpu_count=torch.cuda.device_count())
        except Exception as exc:  # a broken CUDA install leaves the CPU usable
            info["cuda_reason"] = _one_line(exc)
        return info

    # ------------------------------------------------------------------ load
    def load(self, model_path, settings):
        check_model_file(model_path, _SUFFIXES)
        try:
            import torch
        except ImportError as exc:
            raise AgentError("backend", "torch is not installed on this device: %s" % exc)
        self.torch = torch
        self._settings = dict(settings)
        self.device = self._device(torch, settings.get("device", "cpu"))
        cuda = self.device.type == "cuda"
        for key in ("cuda_graph", "gpu_time"):
            if settings.get(key) and not cuda:
                raise AgentError("backend", "setting %s = true needs a CUDA device; this job runs on %s "
                                 "(set device = \"cuda\")" % (key, self.device))
        threads = settings.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        torch.set_grad_enabled(False)
        if model_path.lower().endswith(".pt2"):
            self.format = "exported_program"
            self.module, self._specs = self._load_exported(torch, model_path)
        else:
            self.format = "torchscript"
            self.module, self._specs = self._load_torchscript(torch, model_path)
        self._gpu_time = cuda and settings.get("gpu_time", True)
        self._graph = bool(settings.get("cuda_graph")) and cuda
        self._sync = settings.get("sync", "event")
        self._gpu = []
        self._out = None

    def _device(self, torch, name):
        try:
            device = torch.device(name)
        except (RuntimeError, ValueError) as exc:
            raise AgentError("backend", "setting device = %r is not a torch device (cpu, cuda, cuda:N): %s"
                             % (name, _one_line(exc)))
        if device.type == "cpu":
            return device
        if device.type != "cuda":
            raise AgentError("backend", "setting device = %r: hilbench's PyTorch backend runs on cpu or cuda" % name)
        if not torch.cuda.is_available():
            raise AgentError("backend", "setting device = %r but torch on this device has no CUDA (torch %s): "
                             "install a CUDA build of torch, or set device = \"cpu\"" % (name, torch.__version__))
        index = device.index if device.index is not None else 0
        if index >= torch.cuda.device_count():
            raise AgentError("backend", "setting device = %r but this device has %d CUDA device(s)"
                             % (name, torch.cuda.device_count()))
        return torch.device("cuda", index)

    def _load_torchscript(self, torch, path):
        extra = {EXTRA_FILE: ""}
        try:
            module = torch.jit.load(path, map_location=self.device, _extra_files=extra)
        except Exception as exc:
            raise AgentError("model", "torch cannot load %s as TorchScript (torch.jit.save): %s"
                             % (path, _one_line(exc)))
        module.eval()
        specs = None
        if extra.get(EXTRA_FILE):
            try:
                declared = json.loads(extra[EXTRA_FILE])["inputs"]
                specs = [InputSpec(str(i["name"]), [d if isinstance(d, int) and d >= 0 else None for d in i["shape"]],
                                   str(i.get("dtype", "float32"))) for i in declared]
            except (ValueError, KeyError, TypeError) as exc:
                raise AgentError("model", "%s: its %s extra file is not {\"inputs\": [{name, shape, dtype}]}: %s"
                                 % (path, EXTRA_FILE, _one_line(exc)))
        if specs is None:
            try:
                args = module.forward.schema.arguments[1:]  # the first is self
                names = [a.name for a in args]
            except Exception:
                names = ["input"]
            # No shapes: the plan gives them (resolve_shape says so, naming the input).
            specs = [InputSpec(n, None, "float32") for n in names]
        return module, specs

    def _load_exported(self, torch, path):
        try:
            program = torch.export.load(path)
        except Exception as exc:
            raise AgentError("model", "torch cannot load %s as an exported program (torch.export.save): %s"
                             % (path, _one_line(exc)))
        user = list(program.graph_signature.user_inputs)
        specs = []
        for node in program.graph.nodes:
            if node.op != "placeholder" or node.name not in user:
                continue
            val = node.meta.get("val")
            if val is None or not hasattr(val, "shape"):
                raise AgentError("model", "%s: input %r is not a tensor; hilbench feeds tensors only" % (path, node.name))
            shape = [int(d) if isinstance(d, int) else None for d in val.shape]
            specs.append(InputSpec(node.name, shape, str(val.dtype).replace("torch.", "")))
        try:
            module = program.module().to(self.device)
        except Exception as exc:
            raise AgentError("model", "%s: cannot move the exported program to %s: %s" % (path, self.device, _one_line(exc)))
        return module, specs

    # ------------------------------------------------------------------ run
    def input_specs(self):
        return list(self._specs)

    def set_inputs(self, arrays):
        torch = self.torch
        try:
            tensors = [torch.from_numpy(arrays[s.name]).to(self.device) for s in self._specs]
        except KeyError as exc:
            raise AgentError("input", "no array for input %s" % exc)
        module = self.module
        self._tensors = tensors
        if self.device.type == "cpu":
            def invoke():
                return module(*tensors)
            self.invoke = invoke
            return
        torch.cuda.set_device(self.device)
        forward = self._capture(torch, module, tensors) if self._graph else (lambda: module(*tensors))
        stream = torch.cuda.current_stream(self.device)
        sync_device = self._sync == "device"
        if self._gpu_time:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            gpu = self._gpu

            def invoke():
                start.record(stream)
                out = forward()
                end.record(stream)
                if sync_device:
                    torch.cuda.synchronize(self.device)
                else:
                    end.synchronize()
                gpu.append(int(start.elapsed_time(end) * 1e6))  # ms -> ns
                return out
        else:
            done = torch.cuda.Event()

            def invoke():
                out = forward()
                if sync_device:
                    torch.cuda.synchronize(self.device)
                else:
                    done.record(stream)
                    done.synchronize()
                return out
        self.invoke = invoke

    def _capture(self, torch, module, tensors):
        """The forward pass captured in a CUDA graph (PyTorch's documented recipe: warm up on a side stream,
        capture, then replay); the graph's outputs live in static tensors that each replay overwrites."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        try:
            with torch.cuda.stream(side):
                for _ in range(3):
                    module(*tensors)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = module(*tensors)
        except Exception as exc:
            raise AgentError("backend", "cannot capture this model in a CUDA graph (cuda_graph = true): %s; "
                             "run it with cuda_graph = false" % _one_line(exc))
        self._graph_obj = graph

        def replay():
            graph.replay()
            return static_out
        return replay

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def outputs(self):
        out = self.invoke()
        self._gpu[:] = []
        return [t.detach().cpu().numpy() for t in _tensors(self.torch, out)]

    def take_gpu_ns(self):
        if not getattr(self, "_gpu_time", False):
            return None
        taken = list(self._gpu)
        self._gpu[:] = []
        return taken

    def offload(self, after_run=False):
        """PyTorch runs every op on the device the module and its inputs were moved to; it keeps no placement
        record to count from (an op may still copy to the CPU inside the model), so the counts stay null."""
        if self.device.type == "cpu":
            return offload_verdict("cpu", source="PyTorch on the CPU: no accelerator was asked for")
        return offload_verdict("cuda", source="PyTorch on %s: the module and inputs were moved there; PyTorch keeps "
                               "no per-op placement record, so hilbench does not count nodes" % self.device)

    def effective_settings(self):
        torch = self.torch
        out = {"torch": torch.__version__, "format": self.format, "device": str(self.device),
               "threads": torch.get_num_threads()}
        if self.device.type == "cuda":
            out.update(gpu=torch.cuda.get_device_name(self.device), cuda=torch.version.cuda,
                       cuda_graph=self._graph, gpu_time="cuda_events" if self._gpu_time else None,
                       sync=self._sync)
        return out

    def close(self):
        self.module = None
        self._tensors = None
        self._graph_obj = None


def _tensors(torch, out):
    """Every tensor of a forward pass's result (a tensor, or tuples, lists and dicts of them), in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in out for t in _tensors(torch, out[k])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(torch, item)]
    return []
