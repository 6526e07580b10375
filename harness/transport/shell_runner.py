"""Vendor runners on SSH and local targets: ``trtexec``, ``benchmark_model`` or ``onnxruntime_perf_test`` on the
device, driven through the transport's shell (:meth:`~harness.transport.base.Transport.run_shell`) in the agent's
place, for the jobs of the backend each runs.

A target names its runners in ``[runners]`` (:data:`harness.config.targets.RUNNER_BACKENDS`)::

    [runners]
    trtexec = true                                   # /usr/src/tensorrt/bin/trtexec (every JetPack)
    benchmark_model = "/opt/litert/benchmark_model"

and every job of that target whose backend the runner serves (tensorrt, litert, onnxruntime) runs through it:
a Jetson without TensorRT's Python bindings still gets TensorRT's numbers. The driver is the Android runner's
(:class:`harness.transport.adb.vendor_runner.RunnerProcess`), generalised: the same protocol lines (``hello`` with
``clock = "host"``, ``idle``, ``runner``, ``load``/``first``/``warmup``/``timed`` phases from the tool's own
figures, ``telemetry``, ``result`` with ``aggregate_only``, ``aggregates`` and the ``offload`` verdict of
:mod:`harness.runners.placement`), the same parsers, the same timed window on the host's clock and the same
energy figure. What differs is how the runner is reached:

* it runs through one ``run_shell`` call: a small ``sh`` script starts it in the background in its own folder
  under the target's ``workdir`` with the target's ``env`` (pinned with ``taskset`` when the job has an affinity),
  records its pid (so :meth:`ShellRunnerProcess.kill` can end it), waits for it and prints its output bounded on
  the device: the first :data:`OUTPUT_HEAD_LINES` and the last :data:`OUTPUT_TAIL_LINES` lines, each cut to
  :data:`LINE_MAX` characters, then its exit status behind a random marker the runner cannot forge;
* per-iteration times come from the runner's own files, read back bounded (:data:`TIMES_MAX` bytes) and removed:
  ``onnxruntime_perf_test``'s result file, ``trtexec --exportTimes``; ``benchmark_model`` keeps none, so its runs
  are aggregate-only;
* telemetry is read by a host thread over the same shell (:class:`ShellTelemetry`: thermal zones and cpufreq
  clusters, the Android runner's parsers) and by the target's ``telemetry.meter_command`` on the host, both
  stamped with the host's monotonic clock, the runner's time line.

Nothing the runner prints is executed or used as a path on the host; every figure passes the parsers and the
session's message checks.
"""

from __future__ import annotations

import re
import shlex
import time
from typing import Any, cast

from harness import __version__
from harness.config.targets import RUNNER_BACKENDS, shell_env
from harness.errors import HilbenchError, TransportError
from harness.transport.adb.vendor_runner import (
    TELEMETRY_SCRIPT,
    HostMeter,
    RunnerProcess,
    _cpufreq_readings,
    _Launch,
    _Markers,
    _Output,
    _Poller,
    _Samplers,
    _sections,
    _thermal_readings,
    affinity_mask,
    benchmark_model_args,
    perf_test_args,
)
from harness.transport.base import AgentProcess

__all__ = ["runner_for_job", "start_shell_runner", "trtexec_args", "ShellRunnerProcess", "ShellTelemetry",
           "OUTPUT_HEAD_LINES", "OUTPUT_TAIL_LINES", "LINE_MAX", "TIMES_MAX"]

#: What the device sends back of a runner's output: its first and last lines, each cut to LINE_MAX characters (at
#: most ~11 MB, under the SSH transport's cap on one command's output).
OUTPUT_HEAD_LINES = 500
OUTPUT_TAIL_LINES = 5000
LINE_MAX = 2048
#: The most read back of a runner's per-iteration file (ORT's result file, trtexec's --exportTimes JSON).
TIMES_MAX = 12 * 1024 * 1024
#: The longest a runner may run through one shell call: the session's policy.timeout_s ends it sooner (kill()).
RUN_LIMIT_S = 7 * 24 * 3600.0
#: The Linux part of the phone's telemetry script: thermal zones and cpufreq (no dumpsys on a Linux board).
LINUX_TELEMETRY_SCRIPT = TELEMETRY_SCRIPT[TELEMETRY_SCRIPT.index("echo @@zones"):]
_ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def runner_for_job(target: Any, payload: dict[str, Any]) -> tuple[str, str] | None:
    """(runner, its path on the device) when ``target``'s ``[runners]`` names one for the job's backend."""
    backend = payload.get("backend")
    for runner, path in (getattr(target, "runners", None) or {}).items():
        if RUNNER_BACKENDS.get(runner, ("",))[0] == backend:
            return runner, path
    return None


def trtexec_args(model: str, settings: dict[str, Any], warmup: dict[str, Any], timed: dict[str, Any],
                 times_file: str) -> list[str]:
    """``trtexec`` flags for a TensorRT job: ``--onnx`` (a build) or ``--loadEngine``, the builder flags the
    backend's settings name (``fp16``, ``int8``, ``dla_core`` with GPU fallback unless ``gpu_fallback = false``,
    ``device``, ``builder_optimization_level``, ``cuda_graph``), the warm-up (``--warmUp`` ms, from ``warmup.min_s``;
    without it trtexec's own 200 ms) and timed run (``--iterations``, ``--duration``), and ``--exportTimes`` for the
    per-query times. Settings trtexec has no flag for (``workspace_mb``, ``engine_cache``...) are not passed."""
    args = [("--loadEngine=" if model.lower().endswith(_ENGINE_SUFFIXES) else "--onnx=") + model]
    if settings.get("fp16"):
        args.append("--fp16")
    if settings.get("int8"):
        args.append("--int8")
    if settings.get("dla_core") is not None:
        args.append(f"--useDLACore={int(settings['dla_core'])}")
        if settings.get("gpu_fallback", True):
            args.append("--allowGPUFallback")
    if settings.get("device") is not None:
        args.append(f"--device={int(settings['device'])}")
    if settings.get("builder_optimization_level") is not None:
        args.append(f"--builderOptimizationLevel={int(settings['builder_optimization_level'])}")
    if settings.get("cuda_graph"):
        args.append("--useCudaGraph")
    if warmup.get("min_s") is not None:  # trtexec warms up by time only (default 200 ms); a count has no flag
        args.append(f"--warmUp={int(round(float(warmup['min_s']) * 1000))}")
    if timed.get("count") is not None:
        args.append(f"--iterations={int(timed['count'])}")
    args.append(f"--duration={float(timed.get('min_s') or 0):g}")
    args.append(f"--exportTimes={times_file}")
    return args


class ShellTelemetry(_Poller):
    """A host thread that reads a Linux device's thermal zones and CPU clusters over the transport's shell every
    ``interval_s`` (host clock), as :class:`~harness.transport.adb.vendor_runner.PhoneTelemetry` reads a phone.
    A board has no battery: its energy comes from the target's meter command."""

    charging = False
    #: why there is no energy figure from the device itself (for the result)
    power_reason = ("the device's shell reports no power reading: set telemetry.meter_command to a power meter "
                    "on this computer (docs/runners.md)")

    def __init__(self, transport: Any, emit: Any, interval_s: float = 1.0) -> None:
        self.transport = transport
        self.emit = emit
        self.interval_s = max(0.5, interval_s)
        super().__init__("hilbench-shell-telemetry")

    def read_once(self) -> list[dict[str, Any]]:
        """One snapshot (thermal zones, cpufreq clusters), stamped when the read began."""
        t_ns = time.monotonic_ns()
        _code, out = self.transport.run_shell(LINUX_TELEMETRY_SCRIPT, timeout=15.0, step="telemetry")
        sec = _sections(out)
        readings = _thermal_readings({"zones": sec.get("zones", "")}) + _cpufreq_readings(sec.get("cpufreq", ""))
        for r in readings:
            r["t_ns"] = t_ns
        return readings


class ShellRunnerProcess(RunnerProcess):
    """A vendor runner on an SSH or local target, seen by the session as an agent (see the module docstring)."""

    def __init__(self, transport: Any, payload: dict[str, Any], runner: str, path: str) -> None:
        self.runner_name = runner
        self.runner_path = path
        self.pidfile: str | None = None
        super().__init__(transport, payload)

    # ------------------------------------------------------------------ the steps
    def _run(self) -> int:
        runner, path = self.runner_name, self.runner_path
        self._put("hello", **self._shell_hello(runner, path))
        launch = self._shell_launch(runner, path)
        if launch is None:
            return 2
        samplers = self._start_telemetry()
        if self.killed.is_set():
            samplers.stop()
            return -9
        out = self._execute_shell(launch, samplers)
        if out is None:
            samplers.stop()
            return -9 if self.killed.is_set() else 2
        return self._finish(launch, samplers, out)

    def _shell_hello(self, runner: str, path: str) -> dict[str, Any]:
        code, uname = self.transport.run_shell("uname -s -r -m 2>/dev/null", step="hello")
        parts = uname.split() if code == 0 else []
        backend = self.payload.get("backend")
        return {
            "agent_version": f"hilbench-shell-runner {__version__}", "protocol": 1, "clock": "host", "python": None,
            "os": parts[0] if parts else None, "os_release": parts[1] if len(parts) > 1 else None,
            "machine": parts[2] if len(parts) > 2 else None, "emulated": None,
            "runner": runner, "runner_path": path,
            "backends": {backend: {"available": True, "runner": runner}},
        }

    def _shell_launch(self, runner: str, path: str) -> _Launch | None:
        """The runner's flags and the script that runs it; None after an ``error`` line (no model)."""
        t, payload = self.transport, self.payload
        model = (payload.get("model") or {}).get("path")
        if not model:
            self._put("error", category="model", message=f"{runner} needs a model file; this job has none")
            return None
        run_id = re.sub(r"[^A-Za-z0-9_.-]", "_", str(payload.get("job_id") or "run"))[:80]
        jdir = f"{t.journal_path(run_id).rsplit('/', 1)[0]}/runner-{run_id}"
        times_file = f"{jdir}/times.txt"
        settings = dict(payload.get("settings") or {})
        warmup, timed = dict(payload.get("warmup") or {}), dict(payload.get("timed") or {})
        if runner == "trtexec":
            args = trtexec_args(model, settings, warmup, timed, times_file)
        elif runner == "benchmark_model":
            args = benchmark_model_args(model, settings, warmup, timed)
        else:
            args = perf_test_args(model, settings, timed, times_file)
        affinity = list(payload.get("affinity") or [])
        try:
            env = shell_env(t.target.env)
        except ValueError as exc:
            self._put("error", category="transport", message=f"{exc}: fix env in {t.target.source}")
            return None
        prefix = (env + " " if env else "") + (f"taskset {affinity_mask(affinity)} " if affinity else "")
        markers = _Markers.new()
        self.pidfile = f"{jdir}/runner.pid"
        q = shlex.quote
        cmdline = " ".join(q(a) for a in [path, *args])
        cut = f"cut -c1-{LINE_MAX}"
        keep = OUTPUT_HEAD_LINES + OUTPUT_TAIL_LINES
        script = (
            f"mkdir -p -m 700 {q(jdir)} && cd {q(jdir)} || exit 97\n"
            f"{prefix}{cmdline} > out.txt 2>&1 < /dev/null &\n"
            f"pid=$!\necho $pid > runner.pid\nwait $pid\nrc=$?\nrm -f runner.pid\n"
            f"n=$(wc -l < out.txt)\n"
            f"if [ \"$n\" -gt {keep} ]; then head -n {OUTPUT_HEAD_LINES} out.txt | {cut}; "
            f"echo {markers.pg}$((n - {keep})); tail -n {OUTPUT_TAIL_LINES} out.txt | {cut}; "
            f"else {cut} out.txt; fi\n"
            f"rm -f out.txt\necho {markers.rc}$rc\n"
            f"cd / && rmdir {q(jdir)} 2>/dev/null\n"  # kept while the runner's times file is there (read next)
            "exit 0\n"
        )
        return _Launch(runner=runner, device_runner=path, args=args, affinity=affinity,
                       pinned_by=str(payload.get("pinned_by") or "job") if affinity else None,
                       result_file=times_file, command=script, markers=markers)

    def _start_telemetry(self) -> _Samplers:
        """The device sampler over the shell and the host's meter, after the idle baseline (when asked)."""
        tel_cfg = self.payload.get("telemetry") or {}
        samplers = _Samplers()
        if not tel_cfg.get("enabled"):
            return samplers
        interval = 1.0 / float(tel_cfg.get("rate_hz") or 1.0)
        device = ShellTelemetry(self.transport, self._emit_tel, interval_s=interval)
        samplers.phone = cast(Any, device)  # the device's sampler, in the slot the phone's has
        if tel_cfg.get("meter_command"):
            samplers.meter = HostMeter(list(tel_cfg["meter_command"]), self._emit_tel, interval_s=interval)
        samplers.idle = self._idle(cast(Any, device), samplers.meter, float(self.payload.get("idle_s") or 0))
        return samplers

    def _execute_shell(self, launch: _Launch, samplers: _Samplers) -> _Output | None:
        """Run the script (phase ``runner``) and keep its output; None after an ``error`` line or when killed."""
        self._put("phase", phase="runner", event="begin", runner=launch.runner)
        out = _Output(launch.runner, t_start=time.monotonic_ns())
        try:
            code, text = self.transport.run_shell(launch.command, timeout=RUN_LIMIT_S, step=f"run {launch.runner}")
        except TransportError as exc:
            if not self.killed.is_set():
                self._put("error", category="transport", message=str(exc))
            return None
        out.t_end = time.monotonic_ns()
        self._put("phase", phase="runner", event="end", duration_ns=out.t_end - out.t_start)
        if self.killed.is_set():
            return None
        m = launch.markers
        for line in text.splitlines():
            if line.startswith(m.rc) and re.fullmatch(r"[0-9]{1,9}", line[len(m.rc):]):
                out.rc = int(line[len(m.rc):])
            elif line.startswith(m.pg) and re.fullmatch(r"[0-9]{1,12}", line[len(m.pg):]):
                out.dropped = int(line[len(m.pg):])
            else:
                out.keep(line, out.t_end)
                if len(line) >= LINE_MAX:
                    out.cut += 1
        out.timed_end = None  # every line came at the end: the timed window ends when the runner exited
        if out.rc is None:
            why = "the device shell could not start the runner" if code == 97 else f"exit status {code}"
            self._put("error", category="transport", message=f"{self.transport.target.name}: {launch.runner}: no "
                      f"exit status came back ({why}): {(text.strip().splitlines() or ['no output'])[-1][:300]}")
            return None
        self.output_cut = out.cut_note()
        self._tail[:] = out.lines[-200:]
        return out

    # ------------------------------------------------------------------ the hooks RunnerProcess calls
    def _lost_connection(self, runner: str, err: str) -> int:
        self._put("error", category="transport", message=f"{self.transport.target.name}: the connection was lost "
                  f"while {runner} ran")
        return 2

    def _parse_output(self, launch: _Launch, text: str) -> Any:
        """The report from the output and the runner's per-iteration file (read bounded, then removed)."""
        from harness.runners import parse_runner_output
        from harness.runners.trtexec import parse_export_times

        times = ""
        if launch.runner in ("onnxruntime_perf_test", "trtexec"):
            q = shlex.quote(launch.result_file)
            folder = shlex.quote(launch.result_file.rsplit("/", 1)[0])
            try:
                _code, times = self.transport.run_shell(f"head -c {TIMES_MAX} {q} 2>/dev/null; rm -f {q}; "
                                                        f"rmdir {folder} 2>/dev/null; true",
                                                        timeout=120.0, step="read runner times")
            except TransportError:
                times = ""
        try:
            if launch.runner == "onnxruntime_perf_test":
                return parse_runner_output(text + ("\n" + times if times.strip() else ""), runner=launch.runner)
            report = parse_runner_output(text, runner=launch.runner)
        except (HilbenchError, ValueError) as exc:
            self._put("error", category="backend", message=f"cannot read {launch.runner}'s output: {exc}")
            return None
        if launch.runner == "trtexec" and times.strip():
            try:
                per_query = parse_export_times(times)
            except (HilbenchError, ValueError):
                return report
            if per_query.samples_ms:
                from dataclasses import replace

                warnings = list(report.warnings)
                if len(times.encode()) >= TIMES_MAX:
                    warnings.append(f"trtexec --exportTimes was read to its first {TIMES_MAX // 2**20} MiB: "
                                    f"{len(per_query.samples_ms)} queries kept")
                return replace(report, samples_ms=per_query.samples_ms, aggregate_only=False, warnings=warnings)
        return report

    def _runner_files(self) -> dict[str, Any]:
        return {"runner_path": self.runner_path, "transport": self.transport.target.transport}

    def _device_fields(self, samplers: _Samplers) -> dict[str, Any]:
        return {}

    def kill(self) -> None:
        """Stop the runner on the device (its pid, recorded by the script); the shell call then returns."""
        self.killed.set()
        if self.pidfile is None:
            return
        q = shlex.quote(self.pidfile)
        try:
            self.transport.run_shell(f"p=$(head -c 20 {q} 2>/dev/null); case \"$p\" in ''|*[!0-9]*) ;; "
                                     "*) kill -9 \"$p\" 2>/dev/null;; esac", timeout=10.0, step="kill runner")
        except TransportError as exc:
            self.kill_failed = str(exc)


def start_shell_runner(transport: Any, payload: dict[str, Any], runner: str, path: str) -> AgentProcess:
    """Start ``runner`` (at ``path`` on the device) for ``payload`` through ``transport``'s shell."""
    return ShellRunnerProcess(transport, payload, runner, path)

