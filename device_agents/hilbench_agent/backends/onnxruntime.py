"""ONNX Runtime backend: any execution provider, thread and optimisation settings.

Where the nodes run (the offload verdict, docs/backends.md "Offload verdicts") comes from the session itself:
ONNX Runtime 1.24+ records each execution provider's subgraphs when the session is made
(``session.record_ep_graph_assignment_info``, read with ``get_provider_graph_assignment_info``); an older one
tells only from a run, so a second session with profiling on runs the bound inputs once after the measured
loops (its node events carry ``provider``) and is thrown away. A requested provider the session runs without
is an error, never a silent fallback: ONNX Runtime's own Python fallback to the CPU is switched off
(``disable_fallback``), and with ``require_offload`` the CPU provider is dropped and
``session.disable_cpu_ep_fallback`` set, so a node only the CPU can run fails the session, named.
"""

import json
import os
import shutil
import tempfile

from hilbench_agent.backends.base import Backend, InputSpec, Setting, check_model_file, offload_verdict
from hilbench_agent.protocol import AgentError

# ONNX tensor type strings -> numpy dtype names.
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}
_OPT_LEVELS = ("disable", "basic", "extended", "all")
CPU_EP = "CPUExecutionProvider"
#: providers whose tensors live in device memory: OrtValue device names for IO binding
_DEVICE_EPS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda", "NvTensorRTRTXExecutionProvider": "cuda"}
_NO_CPU_FALLBACK = "session.disable_cpu_ep_fallback"
_RECORD_ASSIGNMENT = "session.record_ep_graph_assignment_info"


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
        "io_binding": Setting((bool,), "bind inputs and outputs in the provider's memory once (default: on for "
                              "CUDA and TensorRT, off otherwise), so the timed call copies nothing"),
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

    def _options(self, ort, settings):
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
        return opts

    def _session(self, ort, model_path, opts, providers, provider_options):
        if provider_options is not None:
            return ort.InferenceSession(model_path, sess_options=opts, providers=providers,
                                        provider_options=provider_options)
        return ort.InferenceSession(model_path, sess_options=opts, providers=providers)

    def load(self, model_path, settings):
        check_model_file(model_path, (".onnx", ".ort"))
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise AgentError("backend", "onnxruntime is not installed on this device: %s" % exc)
        self.ort = ort
        opts = self._options(ort, settings)
        providers = list(settings.get("providers") or [CPU_EP])
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise AgentError("backend", "execution provider %s is not available on this device (available: %s): "
                             "install the onnxruntime build that has it (e.g. onnxruntime-gpu for CUDA and TensorRT, "
                             "NVIDIA's JetPack wheel on a Jetson) or leave it out of providers"
                             % (", ".join(missing), ", ".join(available)))
        provider_options = settings.get("provider_options")
        if provider_options is not None and len(provider_options) != len(providers):
            raise AgentError("backend", "provider_options has %d entries but providers has %d"
                             % (len(provider_options), len(providers)))
        #: the accelerator: the first provider asked for that is not the CPU's
        self.accelerator = next((p for p in providers if p != CPU_EP), "cpu")
        strict = bool(settings.get("require_offload")) and self.accelerator != "cpu"
        if strict:
            # ONNX Runtime refuses the CPU provider named together with no CPU fallback: drop it, and a node only
            # the CPU can run fails the session instead of running there.
            keep = [i for i, p in enumerate(providers) if p != CPU_EP]
            providers = [providers[i] for i in keep]
            if provider_options is not None:
                provider_options = [provider_options[i] for i in keep]
            opts.add_session_config_entry(_NO_CPU_FALLBACK, "1")
        self._records = _records_assignment(ort)
        if self._records:
            opts.add_session_config_entry(_RECORD_ASSIGNMENT, "1")
        try:
            self.session = self._session(ort, model_path, opts, providers, provider_options)
        except Exception as exc:
            if strict and "fallback to cpu ep has been explicitly disabled" in str(exc).lower():
                raise self._refused(model_path, settings, providers, provider_options)
            raise AgentError("model", "onnxruntime cannot load %s: %s" % (model_path, _one_line(exc)))
        # No silent fallback: ONNX Runtime's Python layer would otherwise rebuild a failing CUDA/TensorRT session,
        # or rerun a failing inference, on the CPU and say so only on stdout.
        if hasattr(self.session, "disable_fallback"):
            self.session.disable_fallback()
        running = list(self.session.get_providers())
        lost = [p for p in providers if p not in running]
        if lost:
            raise AgentError("backend", "execution provider %s was requested but the session runs without it (on %s): "
                             "install what it needs on the device (its libraries, e.g. CUDA and cuDNN for the CUDA "
                             "provider) or leave it out of providers" % (", ".join(lost), ", ".join(running)))
        self._settings = dict(settings)
        self._opts = opts
        self._model_path = model_path
        self._providers = providers
        self._provider_options = provider_options
        self._feeds = None
        self._binding = None
        self._outputs = None
        self._placement = _assignment(self.session) if self._records else None

    def _refused(self, model_path, settings, providers, provider_options):
        """The error for a session that ``session.disable_cpu_ep_fallback`` refused, naming the first op only the
        CPU runs (from a second session made without it, where this ONNX Runtime records placement)."""
        ort = self.ort
        offload = None
        if _records_assignment(ort):
            opts = self._options(ort, settings)
            opts.add_session_config_entry(_RECORD_ASSIGNMENT, "1")
            try:
                session = self._session(ort, model_path, opts, providers, provider_options)
                offload = _verdict(self.accelerator, _assignment(session), "ONNX Runtime graph assignment "
                                   "(get_provider_graph_assignment_info) of the session without the CPU fallback "
                                   "switched off")
            except Exception:
                offload = None
        if offload is not None and offload.get("cpu_ops"):
            exc = AgentError("backend", "require_offload: %d of %d nodes can run only on the CPU, not on %s; the first "
                             "is %s (ONNX Runtime refused the session with %s)"
                             % (offload["nodes_cpu"], offload["nodes_total"], self.accelerator, offload["cpu_ops"][0],
                                _NO_CPU_FALLBACK))
            exc.offload = offload
            return exc
        return AgentError("backend", "require_offload: ONNX Runtime refused the session (%s): some nodes can run only "
                          "on the CPU, not on %s; onnxruntime %s cannot say which at load (1.24+ can): run without "
                          "require_offload to see them in the stored offload verdict"
                          % (_NO_CPU_FALLBACK, self.accelerator, ort.__version__))

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
        binding = self._io_binding(arrays)
        if binding is not None:
            run_bound = self.session.run_with_iobinding

            def invoke_bound():
                return run_bound(binding)

            self.invoke = invoke_bound
            return
        run = self.session.run
        feeds = arrays

        def invoke():
            return run(None, feeds)

        # A closure keeps the timed call to the runtime call and nothing else.
        self.invoke = invoke

    def invoke(self):
        raise AgentError("agent", "set_inputs() must come before invoke()")

    def _io_binding(self, arrays):
        """An IO binding with the inputs copied to the accelerator's memory once and the outputs left there (the
        ``io_binding`` setting; default on for a provider whose tensors live on a GPU), or None."""
        device = _DEVICE_EPS.get(self.accelerator, "cpu")
        if not self._settings.get("io_binding", self.accelerator in _DEVICE_EPS):
            return None
        index = 0
        if self._provider_options and self.accelerator in self._providers:
            opts = self._provider_options[self._providers.index(self.accelerator)] or {}
            index = int(opts.get("device_id", 0) or 0)
        binding = self.session.io_binding()
        try:
            for name, array in arrays.items():
                value = self.ort.OrtValue.ortvalue_from_numpy(array, device, index)
                binding.bind_ortvalue_input(name, value)
            for out in self.session.get_outputs():
                binding.bind_output(out.name, device, index)
        except Exception as exc:
            raise AgentError("backend", "cannot bind inputs and outputs on %s:%d for %s (io_binding): %s; set "
                             "io_binding = false" % (device, index, self.accelerator, _one_line(exc)))
        self._binding = (binding, device, index)
        return binding

    def outputs(self):
        if self._binding is not None:
            return list(self._binding[0].copy_outputs_to_cpu())
        return self.session.run(None, self._feeds)

    def offload(self, after_run=False):
        if self._placement is not None:
            return _verdict(self.accelerator, self._placement, "ONNX Runtime graph assignment "
                            "(get_provider_graph_assignment_info) of the session that ran: nodes as assigned to "
                            "providers at session creation")
        if not after_run:
            return None  # this ONNX Runtime tells only from a run: after the measured loops
        return self._profiled()

    def _profiled(self):
        """Placement from a profiled run of the bound inputs in a second session (ONNX Runtime before 1.24)."""
        if self._feeds is None:
            return offload_verdict(None, source="no inputs were bound, so no profiled run could say the placement")
        folder = tempfile.mkdtemp(prefix="hilbench-ort-")
        try:
            opts = self._options(self.ort, self._settings)
            if self._settings.get("require_offload") and self.accelerator != "cpu":
                opts.add_session_config_entry(_NO_CPU_FALLBACK, "1")
            opts.enable_profiling = True
            opts.profile_file_prefix = os.path.join(folder, "profile")
            session = self._session(self.ort, self._model_path, opts, self._providers, self._provider_options)
            session.run(None, self._feeds)
            path = session.end_profiling()
            with open(path) as f:
                events = json.load(f)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        nodes = _profiled_placement(events)
        if not nodes:
            return offload_verdict(self.accelerator, source="onnxruntime %s's profile names no provider for its node "
                                   "events: where the nodes ran is unknown" % self.ort.__version__)
        return _verdict(self.accelerator, nodes,
                        "ONNX Runtime profiling (node events' provider) of one run in a second session after the "
                        "measured loops: the kernels it executed, after fusions")

    def effective_settings(self):
        out = {
            "providers": self.session.get_providers(),
            "intra_op_threads": self._opts.intra_op_num_threads,
            "inter_op_threads": self._opts.inter_op_num_threads,
            "graph_optimization": self._settings.get("graph_optimization", "all"),
            "io_binding": ("%s:%d" % self._binding[1:]) if self._binding is not None else False,
        }
        if self._settings.get("require_offload") and self.accelerator != "cpu":
            out["cpu_ep_fallback"] = False
        try:
            # The provider options as the session applied them (every option, defaults included), read back.
            applied = self.session.get_provider_options()
            out["provider_options"] = dict((str(k), dict((str(a), str(b)) for a, b in dict(v).items()))
                                           for k, v in dict(applied).items())
        except Exception as exc:
            out["provider_options"] = "not readable: %s" % _one_line(exc)
        return out

    def close(self):
        self.session = None


def _one_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if len(lines) > 1 and len(lines[0]) < 20 else lines[0]


def _records_assignment(ort):
    """Whether this ONNX Runtime records each provider's subgraphs at session creation (1.24+, onnxruntime PR 26781)."""
    return hasattr(getattr(ort, "InferenceSession", None), "get_provider_graph_assignment_info")


def _assignment(session):
    """[(provider, op type, subgraph number)] of every node, from the session's recorded graph assignment."""
    nodes = []
    for number, subgraph in enumerate(session.get_provider_graph_assignment_info()):
        for node in subgraph.get_nodes():
            nodes.append((str(subgraph.ep_name), str(node.op_type), number))
    return nodes


def _profiled_placement(events):
    """[(provider, op type, None)] of every node a profiled run executed, in the order they ran (one entry per
    node: its ``*_kernel_time`` event)."""
    nodes, seen = [], set()
    for event in sorted((e for e in events if isinstance(e, dict) and e.get("cat") == "Node"),
                        key=lambda e: e.get("ts", 0)):
        name = str(event.get("name", ""))
        args = event.get("args") or {}
        if not name.endswith("_kernel_time") or "provider" not in args or name in seen:
            continue
        seen.add(name)
        nodes.append((str(args["provider"]), str(args.get("op_name", "?")), None))
    return nodes


def _verdict(accelerator, nodes, source):
    """The offload verdict of ``nodes`` ([(provider, op type, subgraph)]) for ``accelerator``."""
    total = len(nodes)
    on_cpu = [op for provider, op, _ in nodes if provider == CPU_EP]
    devices = {}
    for provider, _, _ in nodes:
        devices[provider] = devices.get(provider, 0) + 1
    if accelerator == "cpu":
        return offload_verdict("cpu", total, 0, len(on_cpu), 0, (), source + "; no accelerator was asked for",
                               devices=devices if len(devices) <= 16 else None)
    subgraphs = set(sub for provider, _, sub in nodes if provider != CPU_EP and sub is not None)
    partitions = len(subgraphs) if nodes and nodes[0][2] is not None else None
    return offload_verdict(accelerator, total, total - len(on_cpu), len(on_cpu), partitions, on_cpu,
                           source + ("; each provider subgraph is a partition" if partitions is not None else ""),
                           devices=devices if len(devices) <= 16 else None)
