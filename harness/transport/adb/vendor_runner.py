"""The on-device runner for Android phones without a Python: the platform's own benchmark binary.

:func:`start_runner` pushes LiteRT's ``benchmark_model`` (backend ``litert``) or
ONNX Runtime's ``onnxruntime_perf_test`` (backend ``onnxruntime``) from the host
path the target names, with the target's ``adb.libraries`` beside it, runs it over
``adb shell`` with the target's ``env`` and its own folder on ``LD_LIBRARY_PATH``
(pinned with ``taskset`` when the job asks for an affinity or the target names big
cores), parses its output with :mod:`harness.runners`, and speaks the ordinary
agent protocol to the session: ``hello`` (from ``getprop``), ``phase``, ``sample``
(only where the runner wrote per-iteration times), ``telemetry``, then ``result``
or ``error``.

Phases: ``idle`` (the power baseline, with telemetry on), then ``runner`` for as
long as the binary runs: it loads, warms up and times in one process and says how
long each took only when it exits, so the session's per-phase timeouts
(``policy.timeouts.*``) never bound it; ``policy.timeout_s`` does. The ``load``,
``first``, ``warmup`` and ``timed`` phases follow with the tool's own durations.

Where the runner gives only aggregates, the result says ``aggregate_only: true``
and carries them under ``aggregates`` (ns); no sample is ever made up.

Every ``t_ns`` here is the *host's* monotonic clock (``hello.clock = "host"``):
the runner reports no device timestamps, and the telemetry samplers read the
phone (and a power meter on the host) from the host, so one clock keeps them on
one time line. The timed phase is placed on it by the runner's own timed duration,
ending when the runner exited (``result.timed.t0_basis``); per-run times of
``onnxruntime_perf_test`` are placed back to back in that window.

Phone telemetry (:class:`PhoneTelemetry`) is read over the same ADB connection by
a host thread: battery current and voltage (units and sign normalised: current
is mA, positive into the battery; ``power.battery`` is mW drawn from it),
charging state, the live thermal HAL block of ``dumpsys thermalservice``, thermal
zones and cpufreq per cluster. The target's ``telemetry.meter_command`` runs on
the *host* (:class:`HostMeter`: the meter is attached to the computer), giving
``power.meter``. Energy per inference comes from the meter when there is one, else
from the battery; while the phone charges battery power says nothing about the
model: ``power.battery`` is recorded as unavailable with the reason, a one-line
notice goes to the ``hilbench.android`` logger (stderr, for the CLI) before the
job, and the result says ``energy_source = "none (charging)"`` with the remedy.
"""

from __future__ import annotations

import collections
import logging
import queue
import re
import shlex
import subprocess
import threading
import time
from typing import Any

from hilbench_agent.telemetry.android import (
    detect_current_unit,
    parse_dumpsys_battery,
    parse_dumpsys_thermalservice,
    parse_uevent,
)

from harness import __version__
from harness.errors import HilbenchError, TransportError
from harness.transport.adb.shell import explain_adb_error, new_nonce, valid_pgid
from harness.transport.base import AgentProcess, LineTimeout

__all__ = ["RUNNER_FOR_BACKEND", "start_runner", "benchmark_model_args", "perf_test_args", "PhoneTelemetry",
           "HostMeter", "parse_snapshot", "affinity_mask", "TELEMETRY_SCRIPT", "CURRENT_SIGNS"]

_LOG = logging.getLogger("hilbench.android")

#: backend -> the runner binary that serves it on a phone without Python.
RUNNER_FOR_BACKEND = {"litert": "benchmark_model", "onnxruntime": "onnxruntime_perf_test"}
_PID_MARK = "__HILBENCH_PID="
_PG_MARK = "__HILBENCH_PG="
_RC_MARK = "__HILBENCH_RC="
#: What is kept of a runner's output for the parsers: its first and last lines, each cut to a length. Their
#: summaries come at the end, their settings at the start; more is dropped (and said so in the result).
OUTPUT_HEAD_LINES = 500
OUTPUT_TAIL_LINES = 5000
OUTPUT_LINE_MAX = 8192
#: ``adb.battery_current_sign`` -> the ``current_sign`` of the uevent parser (None: told from the status).
CURRENT_SIGNS: dict[str, int | None] = {"auto": None, "discharge-negative": 1, "discharge-positive": -1}
_ORT_EP = {"cpuexecutionprovider": "cpu", "nnapiexecutionprovider": "nnapi", "qnnexecutionprovider": "qnn",
           "xnnpackexecutionprovider": "xnnpack", "cpu": "cpu", "nnapi": "nnapi", "qnn": "qnn", "xnnpack": "xnnpack"}
_ORT_OPT = {"disable": "0", "basic": "1", "extended": "2", "all": "99"}
#: The line each runner prints as its timed loop ends (``benchmark_model``: the last ``count=`` line; ORT: the
#: first line of its summary). Where it arrives before the runner exits (LiteRT logs unbuffered) its arrival
#: on the host clock ends the timed window; a buffered output arrives at exit, which then ends it.
_TIMED_END = {"benchmark_model": (re.compile(r"\bcount=\d+"), "last"),
              "onnxruntime_perf_test": (re.compile(r"^(?:Session creation time cost|Total inference|"
                                                   r"Average inference time cost)"), "first")}


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


def parse_snapshot(text: str, *, current_unit: str | None = "auto",
                   current_sign: int | str | None = None) -> list[dict[str, Any]]:
    """Readings (protocol dicts without ``t_ns``) from one :data:`TELEMETRY_SCRIPT` output.

    Battery: ``battery.current`` mA (positive into the battery, vendor units and
    signs normalised by the uevent parser), ``battery.voltage`` mV,
    ``battery.charging`` 0/1 and ``power.battery`` mW drawn from the battery
    (None while charging: it would be the charger's story, not the model's).
    ``current_unit`` is ``"uA"``, ``"mA"`` or ``"auto"`` (told from the size of a
    discharging reading, see :func:`hilbench_agent.telemetry.android.detect_current_unit`);
    ``current_sign`` is a key of :data:`CURRENT_SIGNS` (or +1/-1/None)."""
    if isinstance(current_sign, str):
        current_sign = CURRENT_SIGNS[current_sign]
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
    uevent = parse_uevent(sec.get("uevent", ""), "sysfs:power_supply", current_unit, current_sign)
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
        readings[-1]["extra"] = {k: v for k, v in cur.extra.items() if k in ("raw", "raw_unit", "sign_flipped",
                                                                             "unit_basis")}
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


class _Poller:
    """A daemon thread that calls ``read_once`` every ``interval_s`` and hands non-empty readings to
    ``emit``, until :meth:`stop`. Subclasses set ``emit``, ``interval_s`` and ``join_s``."""

    emit: Any
    interval_s: float
    join_s = 20.0

    def __init__(self, name: str) -> None:
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def read_once(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _read(self) -> list[dict[str, Any]]:
        return self.read_once()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            readings = self._read()
            if readings:
                self.emit(readings)
            self.stop_event.wait(self.interval_s)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(self.join_s)


class PhoneTelemetry(_Poller):
    """A host thread that reads the phone over ADB every ``interval_s`` and hands readings to ``emit``.

    The battery current's unit and sign come from the target (``adb.battery_current_unit`` /
    ``adb.battery_current_sign``); with ``auto`` the first unit told from a discharging reading is kept
    for the rest of the job (``current_unit``), since a charging reading cannot tell."""

    def __init__(self, transport: Any, emit: Any, interval_s: float = 1.0) -> None:
        self.transport = transport
        self.emit = emit
        self.interval_s = max(0.5, interval_s)
        super().__init__("hilbench-phone-telemetry")
        self.power_mw: list[float] = []
        self.charging: bool | None = None
        self.errors = 0
        adb = getattr(getattr(transport, "target", None), "adb", None)
        self.unit_setting = str(getattr(adb, "battery_current_unit", "auto") or "auto")
        self.sign_setting = str(getattr(adb, "battery_current_sign", "auto") or "auto")
        #: the unit in use: the target's, or the one detected (None while ``auto`` has not told yet)
        self.current_unit: str | None = None if self.unit_setting == "auto" else self.unit_setting
        self.unit_basis = f"target adb.battery_current_unit = {self.unit_setting!r}"
        #: the last reason ``power.battery`` had no value (charging, no current reading...)
        self.power_reason: str | None = None

    def read_once(self) -> list[dict[str, Any]]:
        t_ns = time.monotonic_ns()
        res = self.transport.shell(TELEMETRY_SCRIPT, step="telemetry", timeout=15.0)
        if self.current_unit is None:
            found = detect_current_unit(_sections(res.stdout).get("uevent", ""))
            if found is not None:
                self.current_unit = found
                self.unit_basis = f"detected: |CURRENT_NOW| while discharging says {found}"
        readings = parse_snapshot(res.stdout, current_unit=self.current_unit or "auto",
                                  current_sign=CURRENT_SIGNS[self.sign_setting])
        have_power = False
        for r in readings:
            r["t_ns"] = t_ns
            if r["sensor"] == "power.battery":
                have_power = True
                if r["value"] is not None:
                    self.power_mw.append(float(r["value"]))
                else:
                    self.power_reason = r.get("reason")
            if r["sensor"] == "battery.charging":
                self.charging = bool(r["value"]) or bool(self.charging)
        if not have_power and self.power_reason is None:
            self.power_reason = ("the phone reports no battery current or voltage (no CURRENT_NOW/VOLTAGE_NOW in "
                                 "/sys/class/power_supply/battery/uevent)")
        return readings

    def _read(self) -> list[dict[str, Any]]:
        try:
            return self.read_once()
        except TransportError:
            self.errors += 1
            return []


class HostMeter(_Poller):
    """The target's ``telemetry.meter_command`` run on the *host* every ``interval_s``: a power meter
    attached to the computer that the phone's supply goes through. Its first number is watts
    (:class:`hilbench_agent.telemetry.discover.ExternalMeterSource`); readings are ``power.meter`` in mW,
    stamped on the host's monotonic clock (the middle of the command's run), the phone sampler's time line."""

    def __init__(self, argv: list[str], emit: Any, interval_s: float = 1.0) -> None:
        from hilbench_agent.telemetry.discover import ExternalMeterSource

        self.argv = list(argv)
        self.source = ExternalMeterSource(self.argv, timeout_s=max(5.0, interval_s * 2))
        self.emit = emit
        self.interval_s = max(0.1, interval_s)
        self.join_s = self.source.timeout_s + 1.0
        super().__init__("hilbench-host-meter")
        self.values = 0
        #: the last failure (command missing, non-zero exit, no number), for the run's record
        self.error: str | None = None

    def read_once(self) -> list[dict[str, Any]]:
        t0 = time.monotonic_ns()
        try:
            found = self.source.read()
        except (OSError, RuntimeError) as exc:
            self.error = f"meter command {' '.join(self.argv)!r} failed: {exc}"
            return [{"sensor": "power.meter", "value": None, "unit": "mW", "source": "meter (host)",
                     "reason": self.error, "t_ns": (t0 + time.monotonic_ns()) // 2}]
        t_ns = (t0 + time.monotonic_ns()) // 2
        out = []
        for r in found:
            d = r.to_dict()
            d.update(t_ns=t_ns, source="meter (host)")
            if d.get("value") is None:
                self.error = f"meter command {' '.join(self.argv)!r}: {d.get('reason')}"
            else:
                self.values += 1
            out.append(d)
        return out



# ---------------------------------------------------------------------------------------- the runner
def _line(kind: str, **fields: Any) -> str:
    import json

    return json.dumps({"v": 1, "type": kind, "t_ns": time.monotonic_ns(), **fields})


def _ns(ms: float | None) -> int | None:
    return int(round(ms * 1e6)) if ms is not None else None


def _emulation(props: dict[str, str]) -> str | None:
    """Why this "phone" is not real hardware, or None: the Android emulator, or the tests' adbd stand-in."""
    if props.get("ro.hilbench.stand_in"):
        return "hilbench adbd stand-in (tests/support/adbd_standin.py): recorded outputs, not a phone"
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
        self.remote_pg: int | None = None
        self.code: int | None = None
        self.killed = threading.Event()
        self._tail: list[str] = []
        #: how the runner's output was cut to fit (it is kept bounded), for the result's warnings
        self.output_cut: str | None = None
        self._tel: list[dict[str, Any]] = []
        self._tel_lock = threading.Lock()
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
        """Stop the runner: the local adb client, then the runner's process group on the phone (closing adb
        would leave it running there)."""
        self.killed.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        pg, pid = valid_pgid(self.remote_pg), valid_pgid(self.remote_pid)
        if pg is not None:
            self.transport.kill_group(pg)
        elif pid is not None:
            try:
                self.transport.shell(f"kill -9 {pid} 2>/dev/null", step="kill runner", timeout=5.0)
            except TransportError:
                pass

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._tail[-40:])

    # the work
    def _put(self, kind: str, **fields: Any) -> None:
        self.queue.put(_line(kind, **fields))

    def _emit_tel(self, readings: list[dict[str, Any]]) -> None:
        with self._tel_lock:
            self._tel.extend(readings)
        self._put("telemetry", readings=readings)

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
            "runner_libraries": [p.rsplit("/", 1)[-1] for p in self.transport.target.adb.libraries],
            "backends": {self.payload.get("backend"): {"available": True, "runner": runner}},
        }
        return hello

    def _idle(self, phone: PhoneTelemetry, meter: HostMeter | None, idle_s: float) -> dict[str, Any] | None:
        """Start the samplers; with ``idle_s`` > 0 measure the idle baseline first (phase ``idle``)."""
        if idle_s > 0:
            self._put("phase", phase="idle", event="begin")
        t0 = time.monotonic_ns()
        try:
            # read at once, not by the thread: whether the phone charges must be known before the runner starts
            self._emit_tel(phone.read_once())
        except TransportError:
            phone.errors += 1
        if meter is not None:
            self._emit_tel(meter.read_once())
            meter.start()
        phone.start()
        if idle_s <= 0:
            return None
        self.killed.wait(idle_s)
        t1 = time.monotonic_ns()
        self._put("phase", phase="idle", event="end", duration_ns=t1 - t0, t0_ns=t0, t1_ns=t1)
        return {"t0_ns": t0, "t1_ns": t1, "duration_ns": t1 - t0}

    def _run(self) -> int:
        t = self.transport
        payload = self.payload
        backend = str(payload.get("backend"))
        runner = RUNNER_FOR_BACKEND.get(backend)
        if runner is None:
            self._put("error", category="backend", message=(
                f"backend {backend!r} cannot run on an Android phone without Python (use litert or onnxruntime, "
                "or reach a Python on the phone over SSH: docs/android.md)"))
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
        prefix = t.runner_env(device_runner)
        if affinity:
            prefix += f"taskset {affinity_mask(affinity)} "
        cmdline = " ".join(shlex.quote(a) for a in [device_runner, *args])
        jdir = result_file.rsplit("/", 1)[0]
        # The shell's $$ is its process group (adbd starts each shell in its own session): kill() ends it all.
        # The markers carry this run's random tag; the runner's own output cannot pass for them: the process
        # group is taken from the first line only, the pid from its first marker, the exit status from the last.
        tag = new_nonce()
        pg_mark, pid_mark, rc_mark = (f"{m}{tag}:" for m in (_PG_MARK, _PID_MARK, _RC_MARK))
        command = (f"echo {pg_mark}$$; mkdir -p -m 700 {shlex.quote(jdir)} && cd {shlex.quote(jdir)} && "
                   f"{{ {prefix}{cmdline} 2>&1 & pid=$!; echo {pid_mark}$pid; wait $pid; echo {rc_mark}$?; }}")
        tel_cfg = payload.get("telemetry") or {}
        phone: PhoneTelemetry | None = None
        meter: HostMeter | None = None
        idle: dict[str, Any] | None = None
        notices: list[str] = []
        if tel_cfg.get("enabled"):
            interval = 1.0 / float(tel_cfg.get("rate_hz") or 1.0)
            phone = PhoneTelemetry(t, self._emit_tel, interval_s=interval)
            if tel_cfg.get("meter_command"):
                meter = HostMeter(list(tel_cfg["meter_command"]), self._emit_tel, interval_s=interval)
            idle = self._idle(phone, meter, float(payload.get("idle_s") or 0))
            if phone.charging and meter is None:
                notice = (f"{t.target.name}: the phone is charging and no power meter is set, so this run records "
                          "no energy: unplug it (adb over Wi-Fi: `adb tcpip 5555`) or set telemetry.meter_command "
                          f"in {t.target.source}")
                # Runs are unattended: a notice, never a prompt. The CLI shows the logger's warnings on stderr.
                _LOG.warning("hilbench: notice: %s", notice)
                notices.append(notice)
        if self.killed.is_set():
            self._stop_samplers(phone, meter)
            return -9
        self._put("phase", phase="runner", event="begin", runner=runner)
        t_start = time.monotonic_ns()
        self.proc = t.popen_shell(command)
        head: list[str] = []
        tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        dropped = cut = 0
        timed_end: int | None = None
        end_re, which = _TIMED_END[runner]
        rc: int | None = None
        first = True
        assert self.proc.stdout is not None
        err_tail: collections.deque[str] = collections.deque(maxlen=20)
        err_thread = threading.Thread(target=_drain_lines, args=(self.proc.stderr, err_tail), daemon=True)
        err_thread.start()
        for line, whole in _bounded_lines(self.proc.stdout):
            arrived = time.monotonic_ns()
            if not whole:
                cut += 1
            if first:
                first = False
                if line.startswith(pg_mark):
                    self.remote_pg = valid_pgid(line[len(pg_mark):])
                    continue
            if line.startswith(pid_mark) and self.remote_pid is None:
                self.remote_pid = valid_pgid(line[len(pid_mark):])
                continue
            if line.startswith(rc_mark) and re.fullmatch(r"[0-9]{1,9}", line[len(rc_mark):]):
                rc = int(line[len(rc_mark):])  # the last one stands: the shell echoes it after the runner ended
                continue
            if end_re.search(line) and (which == "last" or timed_end is None):
                timed_end = arrived
            if len(head) < OUTPUT_HEAD_LINES:
                head.append(line)
            else:
                if len(tail) == tail.maxlen:
                    dropped += 1
                tail.append(line)
            self._tail.append(line)
            del self._tail[:-200]
        self.proc.wait()
        err_thread.join(5.0)
        t_end = time.monotonic_ns()
        self._put("phase", phase="runner", event="end", duration_ns=t_end - t_start)
        out_lines = head + list(tail)
        if dropped or cut:
            what = ([f"{_n(dropped, 'line')} dropped between its first {OUTPUT_HEAD_LINES} and last "
                     f"{OUTPUT_TAIL_LINES}"] if dropped else [])
            what += [f"{_n(cut, 'line')} longer than {OUTPUT_LINE_MAX} bytes shortened"] if cut else []
            self.output_cut = f"{runner}'s output was cut to fit ({', '.join(what)}): the figures come from what was kept"
        err = "\n".join(err_tail)
        if self.killed.is_set():
            self._stop_samplers(phone, meter)
            return -9
        if rc is None:
            self._stop_samplers(phone, meter)
            why = explain_adb_error(err, t.serial) or (err.strip().splitlines() or ["no exit status came back"])[-1]
            self._put("error", category="transport", message=(
                f"{t.target.name}: run: the connection to the phone was lost while {runner} ran ({why}); "
                "the device is waited for before the next job"))
            try:
                t.recover("run")
            except TransportError:
                pass
            return 2
        # One reading after the runner, so the end of the timed window has readings on both sides.
        self._stop_samplers(phone, meter, closing=True)
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
        self._emit_report(report, runner, args, affinity, pinned_by, t_start, t_end, timed_end, phone, meter, idle,
                          notices)
        return 0

    def _stop_samplers(self, phone: PhoneTelemetry | None, meter: HostMeter | None, closing: bool = False) -> None:
        for sampler in (phone, meter):
            if sampler is not None:
                sampler.stop()
        if not closing:
            return
        if meter is not None:
            self._emit_tel(meter.read_once())
        if phone is not None:
            try:
                self._emit_tel(phone.read_once())
            except TransportError:
                phone.errors += 1

    def _emit_report(self, report: Any, runner: str, args: list[str], affinity: list[int], pinned_by: str | None,
                     t_start: int, t_end: int, timed_end: int | None, phone: PhoneTelemetry | None,
                     meter: HostMeter | None, idle: dict[str, Any] | None, notices: list[str]) -> None:
        timed = report.timed
        load_ns = _ns(report.init_ms)
        if load_ns is not None:
            self._put("phase", phase="load", event="begin")
            self._put("phase", phase="load", event="end", duration_ns=load_ns)
        first_ns = _ns(report.first_inference_ms)
        if first_ns is not None:
            self._put("phase", phase="first", event="begin")
            self._put("phase", phase="first", event="end", duration_ns=first_ns)
        warm = report.warmup
        if warm is not None and not warm.is_empty():
            self._put("phase", phase="warmup", event="end", count=warm.count,
                      duration_ns=None, mean_ns=_ns(warm.mean_ms))
        samples = report.samples_ms
        count = (len(samples) if samples else None) or (timed.count if timed is not None else None)
        timed_ns, basis = _timed_duration_ns(report)
        # The runner keeps no clock we can read: its timed phase ended when its summary line arrived, or (output
        # buffered until exit) when it exited, within its teardown.
        t1 = timed_end if timed_end is not None else t_end
        t0 = max(t_start, t1 - timed_ns) if timed_ns else None
        t0_basis = None
        if t0 is not None:
            t0_basis = ("the runner's timed duration, ending when " + ("its timed summary line arrived"
                        if timed_end is not None and t_end - timed_end > 20_000_000 else "it exited") + " (host clock)")
        self._put("phase", phase="timed", event="begin")
        if samples:
            lat = [int(round(v * 1e6)) for v in samples]
            offsets, acc = [], 0
            for v in lat:
                offsets.append(acc)
                acc += v
            base = t0 if t0 is not None else t_start
            for i in range(0, len(lat), 5000):
                self._put("sample", phase="timed", start=i, t0_ns=base + offsets[i],
                          latency_ns=lat[i:i + 5000], offset_ns=[o - offsets[i] for o in offsets[i:i + 5000]])
        self._put("phase", phase="timed", event="end", count=count, duration_ns=timed_ns, stop_reason="runner")
        aggregates = None
        if timed is not None:
            aggregates = {
                "count": timed.count, "mean_ns": _ns(timed.mean_ms), "std_ns": _ns(timed.std_ms),
                "min_ns": _ns(timed.min_ms), "max_ns": _ns(timed.max_ms), "p50_ns": _ns(timed.p50_ms),
                "p90_ns": _ns(timed.p90_ms), "p95_ns": _ns(timed.p95_ms), "p99_ns": _ns(timed.p99_ms),
                "p999_ns": _ns(timed.p999_ms), "throughput_per_s": timed.throughput_per_s,
                # the coefficient of variation from the tool's own std and mean
                "cv": (timed.std_ms / timed.mean_ms) if timed.std_ms is not None and timed.mean_ms else None,
            }
        warnings = list(report.warnings)
        if self.output_cut:
            warnings.append(self.output_cut)
        energy = self._energy(phone, meter, idle, t0, t1, timed_ns, count)
        if energy.get("energy_reason") and not energy["energy_source"].startswith("none (telemetry"):
            warnings.append(energy["energy_reason"])
        if meter is not None and meter.values == 0:
            warnings.append(f"the power meter gave no reading ({meter.error}): check the command by hand on "
                            "this computer; it must print watts")
        mem = report.memory or {}
        peak_bytes = mem.get("peak_working_set_bytes")
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
            timed={"count": count, "duration_ns": timed_ns, "duration_basis": basis, "t0_ns": t0,
                   "t0_basis": t0_basis,
                   "stop_reason": "runner"},
            wall_ns=t_end - t_start,
            idle=idle,
            effective_settings={"runner": runner, "args": args, "runner_settings": report.settings,
                                "libraries": list(self.transport.target.adb.libraries)},
            affinity={"cpus": affinity, "pinned_by": pinned_by, "tool": "taskset" if affinity else None},
            # peak_mb: LiteRT's memory monitor, or ORT's peak working set (decimal MB); hwm_kb: ORT's peak RSS
            memory={"init_mb": mem.get("init_mb"), "overall_mb": mem.get("overall_mb"),
                    "peak_mb": mem.get("peak_mb", mem.get("peak_working_set_mb")),
                    "hwm_kb": int(peak_bytes // 1024) if isinstance(peak_bytes, (int, float)) else None},
            battery_current=({"unit": phone.current_unit or "uA", "unit_basis": phone.unit_basis,
                              "sign": phone.sign_setting} if phone is not None else None),
            notices=notices,
            warnings=warnings,
            **energy,
        )

    def _energy(self, phone: PhoneTelemetry | None, meter: HostMeter | None, idle: dict[str, Any] | None,
                t0: int | None, t1: int, timed_ns: int | None, count: int | None) -> dict[str, Any]:
        """``energy_source`` ("meter", "battery", "none (...)") and the energy per inference: the mean power
        over the timed window (above the idle baseline where there is one) x the runner's own timed duration /
        inferences, by :func:`harness.analysis.metrics.energy_figures` (the meter preferred over the battery)."""
        if phone is None:
            return {"energy_source": "none (telemetry off)", "energy_reason": "telemetry is off for this job"}
        fig = None
        if t0 is not None and timed_ns and count:
            import pandas as pd

            from harness.analysis.metrics import energy_figures

            with self._tel_lock:
                rows = [(int(r["t_ns"]), str(r["sensor"]), float(r["value"]) if r.get("value") is not None else None)
                        for r in self._tel if str(r.get("sensor", "")).startswith("power.")]
            tel = pd.DataFrame(rows, columns=["t_ns", "sensor", "value"])
            if not tel.empty:
                tel["value"] = pd.to_numeric(tel["value"], errors="coerce")
                fig = energy_figures(tel, timed_t0_ns=t0, timed_t1_ns=t1, count=count,
                                     idle_window=(idle["t0_ns"], idle["t1_ns"]) if idle else None)
        if fig is not None:
            energy_mj = fig["mean_power_mw"] * timed_ns / 1e9 / count
            return {"energy_source": "meter" if fig["sensor"] == "power.meter" else "battery",
                    "energy_sensor": fig["sensor"], "power_mw_mean": fig["timed_mw"], "idle_power_mw": fig["idle_mw"],
                    "energy_basis": fig["energy_basis"], "energy_per_inference_mj": energy_mj, "energy_reason": None}
        if phone.charging:
            return {"energy_source": "none (charging)", "energy_reason": (
                "the phone was charging: battery power is meaningless for energy; unplug it (adb over Wi-Fi: "
                "`adb tcpip 5555`) or set telemetry.meter_command to a power meter on this computer")}
        why = phone.power_reason or "no power reading around the timed phase"
        return {"energy_source": "none (no battery reading)", "energy_reason": f"no energy figure: {why}"}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _bounded_lines(stream: Any, limit: int = OUTPUT_LINE_MAX) -> Any:
    """``(line, whole)`` for each line of ``stream`` (bytes), decoded, without its end, at most ``limit``
    characters: the rest of a longer line is read and dropped (``whole`` False), never held."""
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        whole = True
        if len(raw) > limit and not raw.endswith(b"\n"):
            whole = False
            while True:  # skip to the end of this line
                rest = stream.readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
        yield raw[:limit].decode("utf-8", "replace").rstrip("\r\n"), whole


def _drain_lines(stream: Any, keep: collections.deque[str]) -> None:
    """Read ``stream`` to its end, keeping its last lines (each cut) in ``keep``: a flood never blocks the
    runner or fills the host's memory."""
    if stream is None:
        return
    try:
        for line, _whole in _bounded_lines(stream, 1000):
            keep.append(line)
    except (OSError, ValueError):
        pass


def _timed_duration_ns(report: Any) -> tuple[int | None, str | None]:
    """The timed phase's duration by the runner's own figures, and how it was found."""
    total_s = (report.extra or {}).get("total_run_time_s")
    if isinstance(total_s, (int, float)) and total_s > 0:
        return int(round(total_s * 1e9)), "the runner's total run time"
    if report.samples_ms:
        return int(round(sum(report.samples_ms) * 1e6)), "the sum of the runner's per-run times"
    timed = report.timed
    if timed is not None and timed.count and timed.mean_ms:
        return int(round(timed.count * timed.mean_ms * 1e6)), "the runner's count x mean"
    return None, None


def start_runner(transport: Any, payload: dict[str, Any], journal: str) -> AgentProcess:
    """Start the vendor runner for ``payload`` on the phone behind ``transport`` (an ADBTransport).

    A job without its own affinity is pinned to the target's ``adb.big_cores`` when there are any."""
    payload = dict(payload)
    if not payload.get("affinity") and transport.target.adb.big_cores:
        payload["affinity"] = list(transport.target.adb.big_cores)
        payload["pinned_by"] = "target adb.big_cores"
    return RunnerProcess(transport, payload)
