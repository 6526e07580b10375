"""The on-device runner for Android phones without a Python: the platform's own benchmark binary.

:func:`start_runner` pushes LiteRT's ``benchmark_model`` (backend ``litert``) or
ONNX Runtime's ``onnxruntime_perf_test`` (backend ``onnxruntime``) from the host
path the target names, runs it over ``adb shell`` (pinned with ``taskset`` when
the job asks for an affinity or the target names big cores), parses its output
with :mod:`harness.runners`, and speaks the ordinary agent protocol to the
session: ``hello`` (from ``getprop``), ``phase``, ``sample`` (only where the
runner wrote per-iteration times), ``telemetry``, then ``result`` or ``error``.

Where the runner gives only aggregates, the result says ``aggregate_only: true``
and carries them under ``aggregates`` (ns); no sample is ever made up.

Every ``t_ns`` here is the *host's* monotonic clock (``hello.clock = "host"``):
the runner reports no device timestamps, and the telemetry sampler reads the
phone from the host, so one clock keeps them on one time line.

Phone telemetry (:class:`PhoneTelemetry`) is read over the same ADB connection by
a host thread: battery current and voltage (units and sign normalised: current
is mA, positive into the battery; ``power.battery`` is mW drawn from it),
charging state, the live thermal HAL block of ``dumpsys thermalservice``, thermal
zones and cpufreq per cluster. While the phone charges, battery power says
nothing about the model: ``power.battery`` is recorded as unavailable with the
reason, and the result carries a warning with the remedy.
"""

from __future__ import annotations

import queue
import re
import shlex
import subprocess
import threading
import time
from typing import Any

from hilbench_agent.telemetry.android import parse_dumpsys_battery, parse_dumpsys_thermalservice
from hilbench_agent.telemetry.linux import parse_power_supply_uevent

from harness import __version__
from harness.errors import HilbenchError, TransportError
from harness.transport.base import AgentProcess, LineTimeout

__all__ = ["RUNNER_FOR_BACKEND", "start_runner", "benchmark_model_args", "perf_test_args", "PhoneTelemetry",
           "parse_snapshot", "affinity_mask", "TELEMETRY_SCRIPT"]

#: backend -> the runner binary that serves it on a phone without Python.
RUNNER_FOR_BACKEND = {"litert": "benchmark_model", "onnxruntime": "onnxruntime_perf_test"}
_PID_MARK = "__HILBENCH_PID="
_RC_MARK = "__HILBENCH_RC="
_ORT_EP = {"cpuexecutionprovider": "cpu", "nnapiexecutionprovider": "nnapi", "qnnexecutionprovider": "qnn",
           "xnnpackexecutionprovider": "xnnpack", "cpu": "cpu", "nnapi": "nnapi", "qnn": "qnn", "xnnpack": "xnnpack"}
_ORT_OPT = {"disable": "0", "basic": "1", "extended": "2", "all": "99"}


def _b(value: bool) -> str:
    return "true" if value else "false"


def benchmark_model_args(model: str, settings: dict[str, Any], warmup: dict[str, Any],
                         timed: dict[str, Any]) -> list[str]:
    """``benchmark_model`` flags for a LiteRT job. ``delegate`` is ``gpu``, ``nnapi``, ``xnnpack`` or the
    path of an external delegate library (QNN, ...), with ``delegate_options`` passed as ``k:v;k:v``."""
    args = [f"--graph={model}"]
    if settings.get("threads") is not None:
        args.append(f"--num_threads={int(settings['threads'])}")
    delegate = settings.get("delegate")
    xnnpack = bool(settings.get("xnnpack", True))
    if delegate == "gpu":
        args.append("--use_gpu=true")
    elif delegate == "nnapi":
        args.append("--use_nnapi=true")
    elif delegate == "xnnpack":
        xnnpack = True
    elif delegate:
        args.append(f"--external_delegate_path={delegate}")
        opts = settings.get("delegate_options") or {}
        if opts:
            args.append("--external_delegate_options=" + ";".join(f"{k}:{v}" for k, v in opts.items()))
    args.append(f"--use_xnnpack={_b(xnnpack)}")
    if warmup.get("count") is not None:
        args.append(f"--warmup_runs={int(warmup['count'])}")
    args.append(f"--warmup_min_secs={float(warmup.get('min_s') or 0):g}")
    if timed.get("count") is not None:
        args.append(f"--num_runs={int(timed['count'])}")
    args.append(f"--min_secs={float(timed.get('min_s') or 0):g}")
    if timed.get("max_s") is not None:
        args.append(f"--max_secs={float(timed['max_s']):g}")
    return args


def perf_test_args(model: str, settings: dict[str, Any], timed: dict[str, Any], result_file: str) -> list[str]:
    """``onnxruntime_perf_test`` flags for an ONNX Runtime job: ``-e`` from the first non-CPU provider,
    ``-x``/``-y`` threads, ``-o`` optimisation level, ``-m times -r N``, ``-I`` generated inputs."""
    args: list[str] = []
    providers = [str(p) for p in settings.get("providers") or []]
    ep = "cpu"
    for p in providers:
        name = _ORT_EP.get(p.lower(), p.lower().replace("executionprovider", ""))
        if name != "cpu":
            ep = name
            break
    args += ["-e", ep]
    options = settings.get("provider_options") or []
    if options and isinstance(options[0], dict) and options[0]:
        args += ["-i", " ".join(f"{k}|{v}" for k, v in options[0].items())]
    if settings.get("intra_op_threads") is not None:
        args += ["-x", str(int(settings["intra_op_threads"]))]
    if settings.get("inter_op_threads") is not None:
        args += ["-y", str(int(settings["inter_op_threads"]))]
    if settings.get("graph_optimization"):
        args += ["-o", _ORT_OPT.get(str(settings["graph_optimization"]), "99")]
    if settings.get("execution_mode") == "parallel":
        args.append("-P")
    args += ["-m", "times", "-r", str(int(timed.get("count") or 100)), "-I", model, result_file]
    return args


def affinity_mask(cpus: list[int] | tuple[int, ...]) -> str:
    """The hexadecimal ``taskset`` mask of ``cpus``."""
    mask = 0
    for c in cpus:
        mask |= 1 << int(c)
    return f"{mask:x}"


# ---------------------------------------------------------------------------------------- telemetry
TELEMETRY_SCRIPT = (
    "echo @@battery; dumpsys battery 2>/dev/null; "
    "echo @@uevent; cat /sys/class/power_supply/battery/uevent 2>/dev/null; "
    "echo @@thermalservice; dumpsys thermalservice 2>/dev/null; "
    "echo @@zones; for z in /sys/class/thermal/thermal_zone*; do "
    "[ -r $z/temp ] && echo \"$(cat $z/type 2>/dev/null) $(cat $z/temp 2>/dev/null)\"; done; "
    "echo @@cpufreq; for c in /sys/devices/system/cpu/cpu[0-9]*; do "
    "[ -r $c/cpufreq/scaling_cur_freq ] && echo \"${c##*/} $(cat $c/cpufreq/scaling_cur_freq) "
    "$(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null)\"; done; true"
)


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def parse_snapshot(text: str, *, current_unit: str | None = None,
                   current_sign: int | None = None) -> list[dict[str, Any]]:
    """Readings (protocol dicts without ``t_ns``) from one :data:`TELEMETRY_SCRIPT` output.

    Battery: ``battery.current`` mA (positive into the battery, vendor units and
    signs normalised by the uevent parser), ``battery.voltage`` mV,
    ``battery.charging`` 0/1 and ``power.battery`` mW drawn from the battery
    (None while charging: it would be the charger's story, not the model's)."""
    sec = _sections(text)
    readings: list[dict[str, Any]] = []

    def add(sensor: str, value: float | None, unit: str, source: str, reason: str | None = None) -> None:
        d: dict[str, Any] = {"sensor": sensor, "value": value, "unit": unit, "source": source}
        if value is None:
            d["reason"] = reason or "unavailable"
        readings.append(d)

    battery = parse_dumpsys_battery(sec.get("battery", ""))
    by = {r.sensor: r for r in battery}
    powered = any(by[k].value for k in ("battery.ac_powered", "battery.usb_powered", "battery.wireless_powered")
                  if k in by and by[k].value is not None)
    status = by.get("battery.status")
    for r in battery:
        if r.sensor in ("battery.level", "battery.temp", "battery.status"):
            d = r.to_dict()
            readings.append(d)
    uevent = parse_power_supply_uevent(sec.get("uevent", ""), "sysfs:power_supply", current_unit, current_sign)
    ue = {r.sensor.rsplit(".", 1)[-1]: r for r in uevent}
    ue_status = ue.get("status")
    charging = powered or (status is not None and status.value == 2) or (
        ue_status is not None and ue_status.value == 2)
    add("battery.charging", 1.0 if charging else 0.0, "", "dumpsys-battery")
    cur = ue.get("current")
    volt = ue.get("voltage")
    if volt is None and "battery.voltage" in by:
        volt = by["battery.voltage"]
    if cur is not None:
        add("battery.current", cur.value, "mA", "sysfs:power_supply", cur.reason)
    if volt is not None:
        add("battery.voltage", volt.value, "mV", volt.source, volt.reason)
    if cur is not None and volt is not None:
        if charging:
            add("power.battery", None, "mW", "sysfs:power_supply",
                "charging: battery power is not the phone's consumption (unplug, or use a meter command)")
        elif cur.value is not None and volt.value is not None:
            add("power.battery", -cur.value * volt.value / 1000.0, "mW", "sysfs:power_supply")
    for r in parse_dumpsys_thermalservice(sec.get("thermalservice", "")):
        if r.sensor.startswith(("temp.", "thermal.status")):
            readings.append(r.to_dict())
    for line in sec.get("zones", "").splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]):
            raw = int(parts[1])
            # Most zones are millidegrees; a few vendors write whole degrees.
            add(f"zone.{parts[0]}", raw / 1000.0 if abs(raw) > 500 else float(raw), "C", "sysfs:thermal")
    clusters: dict[int, list[tuple[int, float]]] = {}
    for line in sec.get("cpufreq", "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("cpu") and parts[1].isdigit():
            cpu = int(parts[0][3:])
            max_khz = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
            clusters.setdefault(max_khz, []).append((cpu, int(parts[1]) / 1000.0))
    for i, max_khz in enumerate(sorted(clusters)):
        members = clusters[max_khz]
        cpus = [c for c, _ in members]
        # CPUs of one cluster share a clock; the highest reading stands for it.
        add(f"freq.cluster{i}", max(v for _, v in members), "MHz", f"sysfs:cpufreq cpu{min(cpus)}-{max(cpus)}")
    return readings


class PhoneTelemetry:
    """A host thread that reads the phone over ADB every ``interval_s`` and hands readings to ``emit``."""

    def __init__(self, transport: Any, emit: Any, interval_s: float = 1.0) -> None:
        self.transport = transport
        self.emit = emit
        self.interval_s = max(0.5, interval_s)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="hilbench-phone-telemetry")
        self.power_mw: list[float] = []
        self.charging: bool | None = None
        self.errors = 0

    def read_once(self) -> list[dict[str, Any]]:
        t_ns = time.monotonic_ns()
        res = self.transport.shell(TELEMETRY_SCRIPT, step="telemetry", timeout=15.0)
        readings = parse_snapshot(res.stdout)
        for r in readings:
            r["t_ns"] = t_ns
            if r["sensor"] == "power.battery" and r["value"] is not None:
                self.power_mw.append(float(r["value"]))
            if r["sensor"] == "battery.charging":
                self.charging = bool(r["value"]) or bool(self.charging)
        return readings

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                readings = self.read_once()
            except TransportError:
                self.errors += 1
                readings = []
            if readings:
                self.emit(readings)
            self.stop_event.wait(self.interval_s)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(5.0)


# ---------------------------------------------------------------------------------------- the runner
def _line(kind: str, **fields: Any) -> str:
    import json

    return json.dumps({"v": 1, "type": kind, "t_ns": time.monotonic_ns(), **fields})


def _ns(ms: float | None) -> int | None:
    return int(round(ms * 1e6)) if ms is not None else None


def _emulation(props: dict[str, str]) -> str | None:
    """Why this "phone" is not real hardware, or None: the Android emulator, or the tests' adbd stand-in."""
    if props.get("ro.hilbench.stand_in"):
        return "hilbench adbd stand-in (tests/adbd_standin.py): recorded outputs, not a phone"
    if props.get("ro.kernel.qemu") == "1" or props.get("ro.boot.qemu") == "1":
        return "Android emulator (qemu)"
    return None


class RunnerProcess(AgentProcess):
    """A vendor benchmark binary on the phone, seen by the session as an agent."""

    def __init__(self, transport: Any, payload: dict[str, Any]) -> None:
        self.transport = transport
        self.payload = payload
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen[bytes] | None = None
        self.remote_pid: int | None = None
        self.code: int | None = None
        self.killed = threading.Event()
        self._tail: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True, name="hilbench-adb-runner")
        self.thread.start()

    # AgentProcess
    def next_line(self, timeout: float | None) -> str | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise LineTimeout() from None

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.done.wait(timeout):
            return None
        return self.code

    def kill(self) -> None:
        self.killed.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.remote_pid is not None:
            try:
                self.transport.shell(f"kill -9 {self.remote_pid} 2>/dev/null", step="kill runner", timeout=5.0)
            except TransportError:
                pass

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._tail[-40:])

    # the work
    def _put(self, kind: str, **fields: Any) -> None:
        self.queue.put(_line(kind, **fields))

    def _main(self) -> None:
        try:
            self.code = self._run()
        except TransportError as exc:
            self._put("error", category="transport", message=str(exc))
            self.code = 2
        except Exception as exc:  # noqa: BLE001 - a bug here must still end the job with a message
            self._put("error", category="agent", message=f"android runner driver failed: {type(exc).__name__}: {exc}")
            self.code = 3
        finally:
            self.queue.put(None)
            self.done.set()

    def _hello(self, runner: str, device_runner: str) -> dict[str, Any]:
        props = self.transport.getprops()
        cores = self.transport.shell("cat /sys/devices/system/cpu/possible 2>/dev/null", step="hello").stdout.strip()
        hello = {
            "agent_version": f"hilbench-adb-runner {__version__}",
            "protocol": 1,
            "clock": "host",
            "python": None,
            "os": "Android",
            "os_release": props.get("ro.build.version.release"),
            "sdk": props.get("ro.build.version.sdk"),
            "machine": props.get("ro.product.cpu.abi"),
            "cpu_model": props.get("ro.soc.model") or props.get("ro.hardware"),
            "soc_manufacturer": props.get("ro.soc.manufacturer"),
            "device_model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "cpus_possible": cores or None,
            "big_cores": list(self.transport.target.adb.big_cores),
            "emulated": _emulation(props),
            "runner": runner,
            "runner_path": device_runner,
            "backends": {self.payload.get("backend"): {"available": True, "runner": runner}},
        }
        return hello

    def _run(self) -> int:
        t = self.transport
        payload = self.payload
        backend = str(payload.get("backend"))
        runner = RUNNER_FOR_BACKEND.get(backend)
        if runner is None:
            self._put("error", category="backend", message=(
                f"backend {backend!r} cannot run on an Android phone without Python (use litert or onnxruntime, "
                "or set python = \"...\" in the target for Termux)"))
            return 2
        host_binary = getattr(t.target.adb, runner)
        if not host_binary:
            self._put("error", category="backend", message=(
                f"{t.target.source}: adb.{runner} is not set: build {runner} for the phone's ABI "
                f"({t.getprops().get('ro.product.cpu.abi', '?')}) and name its host path there (docs/android.md)"))
            return 2
        device_runner = t.ensure_runner(runner, host_binary)
        self._put("hello", **self._hello(runner, device_runner))
        model = (payload.get("model") or {}).get("path")
        if not model:
            self._put("error", category="model", message=f"{runner} needs a model file; this job has none")
            return 2
        settings = dict(payload.get("settings") or {})
        warmup = dict(payload.get("warmup") or {})
        timed = dict(payload.get("timed") or {})
        run_id = str(payload.get("job_id") or "run")
        result_file = f"{t.journal_path(run_id).rsplit('.', 1)[0]}.ort.txt"
        if runner == "benchmark_model":
            args = benchmark_model_args(model, settings, warmup, timed)
        else:
            args = perf_test_args(model, settings, timed, result_file)
        affinity = list(payload.get("affinity") or [])
        pinned_by = str(payload.get("pinned_by") or "job") if affinity else None
        prefix = ""
        if affinity:
            prefix = f"taskset {affinity_mask(affinity)} "
        cmdline = " ".join(shlex.quote(a) for a in [device_runner, *args])
        jdir = result_file.rsplit("/", 1)[0]
        command = (f"mkdir -p {shlex.quote(jdir)} && cd {shlex.quote(jdir)} && {{ {prefix}{cmdline} 2>&1 & "
                   f"pid=$!; echo {_PID_MARK}$pid; wait $pid; echo {_RC_MARK}$?; }}")
        tel_cfg = payload.get("telemetry") or {}
        sampler: PhoneTelemetry | None = None
        idle: list[float] = []
        if tel_cfg.get("enabled"):
            sampler = PhoneTelemetry(t, lambda rs: self._put("telemetry", readings=rs),
                                     interval_s=1.0 / float(tel_cfg.get("rate_hz") or 1.0))
            try:
                # The idle baseline, read just before the runner starts (DESIGN.md: energy per inference).
                first = sampler.read_once()
                self._put("telemetry", readings=first)
                idle = list(sampler.power_mw)
                sampler.power_mw.clear()
            except TransportError:
                pass
            sampler.start()
        self._put("phase", phase="load", event="begin")
        t_start = time.monotonic_ns()
        self.proc = t.popen_shell(command)
        out_lines: list[str] = []
        rc: int | None = None
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(_PID_MARK):
                try:
                    self.remote_pid = int(line[len(_PID_MARK):])
                except ValueError:
                    pass
                continue
            if line.startswith(_RC_MARK):
                try:
                    rc = int(line[len(_RC_MARK):])
                except ValueError:
                    pass
                continue
            out_lines.append(line)
            self._tail.append(line)
            del self._tail[:-200]
        self.proc.wait()
        t_end = time.monotonic_ns()
        err = self.proc.stderr.read().decode("utf-8", "replace") if self.proc.stderr else ""
        if sampler is not None:
            sampler.stop()
        if self.killed.is_set():
            return -9
        if rc is None:
            from harness.transport.adb import explain_adb_error

            why = explain_adb_error(err, t.serial) or (err.strip().splitlines() or ["no exit status came back"])[-1]
            self._put("error", category="transport", message=(
                f"{t.target.name}: run: the connection to the phone was lost while {runner} ran ({why}); "
                "the device is waited for before the next job"))
            try:
                t.recover("run")
            except TransportError:
                pass
            return 2
        text = "\n".join(out_lines)
        if rc != 0:
            last = next((ln.strip() for ln in reversed(out_lines) if ln.strip()), "no output")
            self._put("error", category="backend", message=f"{runner} exited with status {rc}: {last}")
            return 2
        if runner == "onnxruntime_perf_test":
            res = t.shell(f"cat {shlex.quote(result_file)} 2>/dev/null; rm -f {shlex.quote(result_file)}",
                          step="read result file")
            if res.stdout.strip():
                text = text + "\n" + res.stdout
        from harness.runners import parse_runner_output

        try:
            report = parse_runner_output(text, runner=runner)
        except (HilbenchError, ValueError) as exc:
            self._put("error", category="backend", message=f"cannot read {runner}'s output: {exc}")
            return 2
        self._emit_report(report, runner, args, affinity, pinned_by, t_start, t_end, sampler, idle)
        return 0

    def _emit_report(self, report: Any, runner: str, args: list[str], affinity: list[int], pinned_by: str | None,
                     t_start: int, t_end: int, sampler: PhoneTelemetry | None, idle: list[float]) -> None:
        timed = report.timed
        load_ns = _ns(report.init_ms)
        self._put("phase", phase="load", event="end", duration_ns=load_ns)
        first_ns = _ns(report.first_inference_ms)
        if first_ns is not None:
            self._put("phase", phase="first", event="begin")
            self._put("phase", phase="first", event="end", duration_ns=first_ns)
        warm = report.warmup
        if warm is not None and not warm.is_empty():
            self._put("phase", phase="warmup", event="end", count=warm.count,
                      duration_ns=None, mean_ns=_ns(warm.mean_ms))
        self._put("phase", phase="timed", event="begin")
        samples = report.samples_ms
        if samples:
            lat = [int(round(v * 1e6)) for v in samples]
            for i in range(0, len(lat), 5000):
                self._put("sample", phase="timed", start=i, t0_ns=t_start, latency_ns=lat[i:i + 5000])
        count = (len(samples) if samples else None) or (timed.count if timed is not None else None)
        self._put("phase", phase="timed", event="end", count=count, duration_ns=None, stop_reason="runner")
        aggregates = None
        if timed is not None:
            aggregates = {
                "count": timed.count, "mean_ns": _ns(timed.mean_ms), "std_ns": _ns(timed.std_ms),
                "min_ns": _ns(timed.min_ms), "max_ns": _ns(timed.max_ms), "p50_ns": _ns(timed.p50_ms),
                "p90_ns": _ns(timed.p90_ms), "p95_ns": _ns(timed.p95_ms), "p99_ns": _ns(timed.p99_ms),
                "p999_ns": _ns(timed.p999_ms), "throughput_per_s": timed.throughput_per_s,
            }
        warnings = list(report.warnings)
        energy: dict[str, Any] = {}
        if sampler is not None:
            if sampler.charging:
                warnings.append("the phone was charging: battery power is meaningless for energy; unplug it (adb "
                                "over Wi-Fi: `adb tcpip 5555`) or set telemetry.meter_command to a power meter")
                energy = {"energy_source": "none (charging)"}
            elif sampler.power_mw and timed is not None and timed.mean_ms is not None:
                mean_mw = sum(sampler.power_mw) / len(sampler.power_mw)
                idle_mw = sum(idle) / len(idle) if idle else None
                net = mean_mw - idle_mw if idle_mw is not None else mean_mw
                energy = {"energy_source": "battery", "power_mw_mean": mean_mw, "idle_power_mw": idle_mw,
                          "energy_basis": "above idle" if idle_mw is not None else "board",
                          "energy_per_inference_mj": net * timed.mean_ms / 1000.0}
        mem = report.memory or {}
        self._put(
            "result",
            runner=runner,
            runner_version=report.version,
            aggregate_only=bool(report.aggregate_only),
            aggregates=aggregates,
            load_ns=load_ns,
            first_ns=first_ns,
            warmup={"count": warm.count if warm is not None else None, "duration_ns": None,
                    "stop_reason": "runner"},
            timed={"count": count, "duration_ns": None, "stop_reason": "runner"},
            wall_ns=t_end - t_start,
            effective_settings={"runner": runner, "args": args, "runner_settings": report.settings},
            affinity={"cpus": affinity, "pinned_by": pinned_by, "tool": "taskset" if affinity else None},
            memory={"init_mb": mem.get("init_mb"), "overall_mb": mem.get("overall_mb"),
                    "peak_mb": mem.get("peak_mb")},
            warnings=warnings,
            **energy,
        )


def start_runner(transport: Any, payload: dict[str, Any], journal: str) -> AgentProcess:
    """Start the vendor runner for ``payload`` on the phone behind ``transport`` (an ADBTransport).

    A job without its own affinity is pinned to the target's ``adb.big_cores`` when there are any."""
    payload = dict(payload)
    if not payload.get("affinity") and transport.target.adb.big_cores:
        payload["affinity"] = list(transport.target.adb.big_cores)
        payload["pinned_by"] = "target adb.big_cores"
    return RunnerProcess(transport, payload)
