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

The module reads in layers, top to bottom: the runner's arguments and the shell command that starts it;
phone telemetry (the snapshot parser and the sampler threads); the runner's output, kept bounded; the
protocol's figures (pure functions of the runner's report and the host clock); and :class:`RunnerProcess`,
which runs the steps and emits the lines. The energy figure itself is
:func:`harness.analysis.metrics.energy_figures`' over the telemetry the job recorded.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import queue
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hilbench_agent.telemetry.android import (
    detect_current_unit,
    parse_dumpsys_battery,
    parse_dumpsys_thermalservice,
    parse_uevent,
)

from harness import __version__
from harness.agent.lock import ANDROID_LOCK_DIR, LOCK_NAME, describe_holder
from harness.errors import HilbenchError, InputError, TransportError
from harness.transport.adb.shell import explain_adb_error, new_nonce, valid_pgid
from harness.transport.base import AgentProcess, LineTimeout

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RUNNER_FOR_BACKEND", "start_runner", "benchmark_model_args", "perf_test_args", "PhoneTelemetry",
           "HostMeter", "parse_snapshot", "affinity_mask", "TELEMETRY_SCRIPT", "CURRENT_SIGNS"]

_LOG = logging.getLogger("hilbench.android")

#: backend -> the runner binary that serves it on a phone without Python.
RUNNER_FOR_BACKEND = {"litert": "benchmark_model", "onnxruntime": "onnxruntime_perf_test"}
_PID_MARK = "__HILBENCH_PID="
_PG_MARK = "__HILBENCH_PG="
_RC_MARK = "__HILBENCH_RC="
_LOCK_MARK = "__HILBENCH_LOCK="
#: The runner starts this long after the host's idle baseline would end (its shell sleeps idle_s plus this), so
#: the idle window on the host's clock never holds the runner's first moments.
IDLE_MARGIN_S = 0.5
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
                                                   r"Average inference time cost)"), "first"),
              "trtexec": (re.compile(r"Timing trace has \d+ queries|=== Performance summary ==="), "first")}


# ---------------------------------------------------------------------------------------- the runner's arguments
def _b(value: bool) -> str:
    """A flag's boolean as the runners write it."""
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


def _runner_args(runner: str, model: str, payload: dict[str, Any], result_file: str) -> list[str]:
    """The flags of ``runner`` for the job ``payload`` (its ``settings``, ``warmup`` and ``timed``)."""
    settings = dict(payload.get("settings") or {})
    warmup = dict(payload.get("warmup") or {})
    timed = dict(payload.get("timed") or {})
    if runner == "benchmark_model":
        return benchmark_model_args(model, settings, warmup, timed)
    return perf_test_args(model, settings, timed, result_file)


@dataclass(frozen=True)
class _Markers:
    """The lines the shell wraps the runner in, each with this run's random tag, so the runner's own output
    cannot pass for them: the process group is taken from the first line only, the pid from its first marker,
    the exit status from the last."""

    pg: str
    pid: str
    rc: str
    #: the device lock's state lines (``WAIT <owner record>``, ``BUSY``, ``LOCKED``, ``NOLOCK <why>``), read only
    #: before the runner starts
    lock: str = ""

    @classmethod
    def new(cls) -> _Markers:
        """Markers with a fresh tag."""
        tag = new_nonce()
        pg, pid, rc, lock = (f"{m}{tag}:" for m in (_PG_MARK, _PID_MARK, _RC_MARK, _LOCK_MARK))
        return cls(pg=pg, pid=pid, rc=rc, lock=lock)


def _shell_command(prefix: str, device_runner: str, args: list[str], jdir: str, markers: _Markers,
                   lock: str = "") -> str:
    """The ``adb shell`` command that runs ``device_runner`` with ``args`` in ``jdir`` behind ``prefix`` (its
    environment, ``taskset``) and echoes the markers; ``lock`` (:func:`_lock_script`) first takes the device
    lock. The shell's $$ is its process group (adbd starts each shell in its own session):
    :meth:`RunnerProcess.kill` ends it all."""
    cmdline = " ".join(shlex.quote(a) for a in [device_runner, *args])
    run = f"{{ {prefix}{cmdline} 2>&1 & pid=$!; echo {markers.pid}$pid; wait $pid; echo {markers.rc}$?; }}"
    if lock:
        run = f"{{ {lock}; {run}; rc=$?; [ -n \"$held\" ] && : > \"$L\"; exit $rc; }}"
    return f"echo {markers.pg}$$; mkdir -p -m 700 {shlex.quote(jdir)} && cd {shlex.quote(jdir)} && {run}"


def _lock_script(markers: _Markers, path: str, wait_s: float, owner: dict[str, Any], sleep_s: float) -> str:
    """Shell code (toybox's or util-linux's ``flock FD``) that takes the phone's device lock, the file the agent
    takes there too. It says ``WAIT <owner record>`` when another run holds it and blocks until it is free (the
    host stops it at its wait), or with ``wait_s`` 0 says ``BUSY`` and exits 75; then it writes its own owner
    record, says ``LOCKED`` and sleeps ``sleep_s`` (the idle baseline, read by the host meanwhile). File
    descriptor 9 stays open in the shell and in the runner it starts, so the lock holds while either lives and
    the kernel releases it when both are gone. Without ``flock`` (an old phone) or a usable file it says
    ``NOLOCK <why>`` and goes on. ``$held`` tells the command's end to empty the owner record."""
    m, q = markers.lock, shlex.quote
    head = json.dumps(owner, sort_keys=True)[:-1]  # the shell adds pid, since and user, and the closing brace
    record = ("printf '%s,\"pid\":%s,\"since\":%s,\"user\":\"%s\"}\\n' " + q(head)
              + ' "$$" "$(date +%s)" "$(id -un 2>/dev/null)" > "$L"')
    busy = f"echo {m}BUSY; exit 75" if wait_s <= 0 else "flock 9 || exit 97"
    script = (
        f'L={q(path)}; held=; '
        f'if [ -L "$L" ] || {{ [ -e "$L" ] && [ ! -f "$L" ]; }}; then echo "{m}NOLOCK $L is not a regular file"; '
        f'elif ! command -v flock >/dev/null 2>&1; then echo "{m}NOLOCK the phone has no flock command"; '
        f'elif {{ [ -e "$L" ] || touch "$L" 2>/dev/null; }} && [ -r "$L" ] && [ -w "$L" ]; then '
        f'exec 9<>"$L"; chmod 666 "$L" 2>/dev/null; '
        f'if ! flock -n 9; then echo "{m}WAIT $(head -c 4096 "$L" | head -n 1)"; {busy}; fi; '
        f'{record}; held=1; echo {m}LOCKED; '
        f'else echo "{m}NOLOCK cannot open $L"; fi'
    )
    return script + (f"; sleep {sleep_s:.3f}" if sleep_s > 0 else "")


@dataclass(frozen=True)
class _Launch:
    """One job's runner on the phone: its name and path there, its flags, the CPUs it is pinned to (and who
    asked), the file ``onnxruntime_perf_test`` writes its times to, and the shell command that starts it."""

    runner: str
    device_runner: str
    args: list[str]
    affinity: list[int]
    pinned_by: str | None
    result_file: str
    command: str
    markers: _Markers
    #: the device lock: its file on the phone, how long to wait for it (s), what set that (for the message)
    lock_path: str | None = None
    wait_s: float = 0.0
    wait_setting: str = "policy.lock_wait_s"
    #: how long the shell sleeps between taking the lock and starting the runner (the idle baseline), s
    sleep_s: float = 0.0


# ---------------------------------------------------------------------------------------- phone telemetry
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
    """The ``@@name`` sections of a :data:`TELEMETRY_SCRIPT` output, by name."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _reading(sensor: str, value: float | None, unit: str, source: str, reason: str | None = None) -> dict[str, Any]:
    """One reading as a protocol dict (no ``t_ns``); one without a value says why."""
    d: dict[str, Any] = {"sensor": sensor, "value": value, "unit": unit, "source": source}
    if value is None:
        d["reason"] = reason or "unavailable"
    return d


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
    readings = _battery_readings(sec, current_unit, current_sign)
    readings += _thermal_readings(sec)
    readings += _cpufreq_readings(sec.get("cpufreq", ""))
    return readings


def _battery_readings(sec: dict[str, str], current_unit: str | None, current_sign: int | None) -> list[dict[str, Any]]:
    """``battery.level``/``temp``/``status`` from ``dumpsys battery``, ``battery.charging``, then the current,
    voltage and battery power (:func:`_power_readings`)."""
    battery = parse_dumpsys_battery(sec.get("battery", ""))
    by = {r.sensor: r for r in battery}
    readings = [r.to_dict() for r in battery if r.sensor in ("battery.level", "battery.temp", "battery.status")]
    uevent = parse_uevent(sec.get("uevent", ""), "sysfs:power_supply", current_unit, current_sign)
    ue = {r.sensor.rsplit(".", 1)[-1]: r for r in uevent}
    charging = _charging(by, ue)
    readings.append(_reading("battery.charging", 1.0 if charging else 0.0, "", "dumpsys-battery"))
    volt = ue.get("voltage")
    if volt is None and "battery.voltage" in by:
        volt = by["battery.voltage"]
    return readings + _power_readings(ue.get("current"), volt, charging)


def _charging(battery: dict[str, Any], uevent: dict[str, Any]) -> bool:
    """Whether the phone charges: a charger is plugged in, or ``dumpsys battery`` or the uevent says so."""
    powered = any(battery[k].value for k in ("battery.ac_powered", "battery.usb_powered", "battery.wireless_powered")
                  if k in battery and battery[k].value is not None)
    status = battery.get("battery.status")
    ue_status = uevent.get("status")
    return bool(powered or (status is not None and status.value == 2) or (
        ue_status is not None and ue_status.value == 2))


def _power_readings(cur: Any, volt: Any, charging: bool) -> list[dict[str, Any]]:
    """``battery.current`` (with how its raw value was read), ``battery.voltage`` and ``power.battery`` (mW
    drawn from the battery; None while charging)."""
    readings = []
    if cur is not None:
        d = _reading("battery.current", cur.value, "mA", "sysfs:power_supply", cur.reason)
        d["extra"] = {k: v for k, v in cur.extra.items() if k in ("raw", "raw_unit", "sign_flipped", "unit_basis")}
        readings.append(d)
    if volt is not None:
        readings.append(_reading("battery.voltage", volt.value, "mV", volt.source, volt.reason))
    if cur is not None and volt is not None:
        if charging:
            readings.append(_reading(
                "power.battery", None, "mW", "sysfs:power_supply",
                "charging: battery power is not the phone's consumption (unplug, or use a meter command)"))
        elif cur.value is not None and volt.value is not None:
            mw = -cur.value * volt.value / 1000.0
            readings.append(_reading("power.battery", mw if math.isfinite(mw) else None, "mW", "sysfs:power_supply",
                                     f"current x voltage ({cur.value:g} mA x {volt.value:g} mV) is out of range"))
    return readings


def _thermal_readings(sec: dict[str, str]) -> list[dict[str, Any]]:
    """The thermal HAL's live temperatures and status (``dumpsys thermalservice``), then the thermal zones."""
    readings = [r.to_dict() for r in parse_dumpsys_thermalservice(sec.get("thermalservice", ""))
                if r.sensor.startswith(("temp.", "thermal.status"))]
    for line in sec.get("zones", "").splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"-?[0-9]{1,12}", parts[1]):  # ASCII digits int() reads, a float holds
            raw = int(parts[1])
            # Most zones are millidegrees; a few vendors write whole degrees.
            readings.append(_reading(f"zone.{parts[0]}", raw / 1000.0 if abs(raw) > 500 else float(raw), "C",
                                     "sysfs:thermal"))
    return readings


def _cpufreq_readings(text: str) -> list[dict[str, Any]]:
    """``freq.cluster<i>`` MHz: the CPUs grouped by their top clock, slowest cluster first."""
    clusters: dict[int, list[tuple[int, float]]] = {}
    for line in text.splitlines():
        parts = line.split()
        # ASCII digits only ("²".isdigit() is true too, and int() refuses it) and few enough for int()
        if len(parts) >= 2 and re.fullmatch(r"cpu[0-9]{1,6}", parts[0]) and re.fullmatch(r"[0-9]{1,12}", parts[1]):
            cpu = int(parts[0][3:])
            max_khz = int(parts[2]) if len(parts) > 2 and re.fullmatch(r"[0-9]{1,12}", parts[2]) else 0
            clusters.setdefault(max_khz, []).append((cpu, int(parts[1]) / 1000.0))
    readings = []
    for i, max_khz in enumerate(sorted(clusters)):
        members = clusters[max_khz]
        cpus = [c for c, _ in members]
        # CPUs of one cluster share a clock; the highest reading stands for it.
        readings.append(_reading(f"freq.cluster{i}", max(v for _, v in members), "MHz",
                                 f"sysfs:cpufreq cpu{min(cpus)}-{max(cpus)}"))
    return readings


class _Poller:
    """A daemon thread that calls ``read_once`` every ``interval_s`` and hands non-empty readings to
    ``emit``, until :meth:`stop`. Subclasses set ``emit``, ``interval_s`` and ``join_s``."""

    emit: Any
    interval_s: float
    join_s = 20.0

    def __init__(self, name: str) -> None:
        self.errors = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def read_once(self) -> list[dict[str, Any]]:
        """One set of readings, stamped with the host's clock."""
        raise NotImplementedError

    def _read(self) -> list[dict[str, Any]]:
        """:meth:`read_once` for the thread: a device read that fails (TransportError) is counted in ``errors``
        and skipped."""
        try:
            return self.read_once()
        except TransportError:
            self.errors += 1
            return []

    def _loop(self) -> None:
        """The thread: read, hand on, wait, until stopped."""
        while not self.stop_event.is_set():
            readings = self._read()
            if readings:
                self.emit(readings)
            self.stop_event.wait(self.interval_s)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (at most ``join_s``)."""
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
        self.charging: bool | None = None
        adb = getattr(getattr(transport, "target", None), "adb", None)
        self.unit_setting = str(getattr(adb, "battery_current_unit", "auto") or "auto")
        self.sign_setting = str(getattr(adb, "battery_current_sign", "auto") or "auto")
        #: the unit in use: the target's, or the one detected (None while ``auto`` has not told yet)
        self.current_unit: str | None = None if self.unit_setting == "auto" else self.unit_setting
        self.unit_basis = f"target adb.battery_current_unit = {self.unit_setting!r}"
        #: the last reason ``power.battery`` had no value (charging, no current reading...)
        self.power_reason: str | None = None

    def read_once(self) -> list[dict[str, Any]]:
        """One snapshot of the phone (:func:`parse_snapshot`), stamped when the read began; raises
        :class:`TransportError` when the phone cannot be read."""
        t_ns = time.monotonic_ns()
        res = self.transport.shell(TELEMETRY_SCRIPT, step="telemetry", timeout=15.0)
        if self.current_unit is None:
            self._detect_unit(res.stdout)
        readings = parse_snapshot(res.stdout, current_unit=self.current_unit or "auto",
                                  current_sign=CURRENT_SIGNS[self.sign_setting])
        for r in readings:
            r["t_ns"] = t_ns
        self._note(readings)
        return readings

    def _detect_unit(self, snapshot: str) -> None:
        """Keep the battery current's unit once a discharging reading tells it."""
        found = detect_current_unit(_sections(snapshot).get("uevent", ""))
        if found is not None:
            self.current_unit = found
            self.unit_basis = f"detected: |CURRENT_NOW| while discharging says {found}"

    def _note(self, readings: list[dict[str, Any]]) -> None:
        """Remember whether the phone charged (at any reading) and why battery power had no value."""
        have_power = False
        for r in readings:
            if r["sensor"] == "power.battery":
                have_power = True
                if r["value"] is None:
                    self.power_reason = r.get("reason")
            if r["sensor"] == "battery.charging":
                self.charging = bool(r["value"]) or bool(self.charging)
        if not have_power and self.power_reason is None:
            self.power_reason = ("the phone reports no battery current or voltage (no CURRENT_NOW/VOLTAGE_NOW in "
                                 "/sys/class/power_supply/battery/uevent)")


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
        """One run of the meter command: its readings, or one without a value saying why it failed."""
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

@dataclass
class _Samplers:
    """One job's telemetry: the phone sampler (None: telemetry off), the host's power meter, the idle
    baseline's window and the notices given before the runner started."""

    phone: PhoneTelemetry | None = None
    meter: HostMeter | None = None
    idle: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)

    def stop(self, emit: Any = None) -> None:
        """Stop both threads; with ``emit``, hand it one last reading of each (the meter's first)."""
        for sampler in (self.phone, self.meter):
            if sampler is not None:
                sampler.stop()
        if emit is None:
            return
        if self.meter is not None:
            emit(self.meter.read_once())
        if self.phone is not None:
            try:
                emit(self.phone.read_once())
            except TransportError:
                self.phone.errors += 1


def _power_frame(readings: list[dict[str, Any]]) -> pd.DataFrame:
    """The ``power.*`` readings as the telemetry frame (t_ns, sensor, value) that
    :func:`harness.analysis.metrics.energy_figures` reads."""
    import pandas as pd

    rows = [(int(r["t_ns"]), str(r["sensor"]), float(r["value"]) if r.get("value") is not None else None)
            for r in readings if str(r.get("sensor", "")).startswith("power.")]
    tel = pd.DataFrame(rows, columns=["t_ns", "sensor", "value"])
    if not tel.empty:
        tel["value"] = pd.to_numeric(tel["value"], errors="coerce")
    return tel


# ---------------------------------------------------------------------------------------- the runner's output
def _n(count: int, noun: str) -> str:
    """``count`` ``noun``\\ s, in words."""
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


@dataclass
class _Output:
    """What is kept of one run of ``runner``: its first and last lines (:data:`OUTPUT_HEAD_LINES`,
    :data:`OUTPUT_TAIL_LINES`), how many were dropped or shortened, when its timed loop ended and its exit
    status (host clock, ns: ``t_start`` when it was started, ``t_end`` when it exited), and adb's last
    words on stderr."""

    runner: str
    t_start: int
    t_end: int = 0
    head: list[str] = field(default_factory=list)
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=OUTPUT_TAIL_LINES))
    dropped: int = 0
    cut: int = 0
    timed_end: int | None = None
    rc: int | None = None
    err: str = ""

    def keep(self, line: str, arrived: int) -> None:
        """Keep one line of the runner's own output that arrived at ``arrived``."""
        end_re, which = _TIMED_END[self.runner]
        if end_re.search(line) and (which == "last" or self.timed_end is None):
            self.timed_end = arrived
        if len(self.head) < OUTPUT_HEAD_LINES:
            self.head.append(line)
        else:
            if len(self.tail) == self.tail.maxlen:
                self.dropped += 1
            self.tail.append(line)

    @property
    def lines(self) -> list[str]:
        """The lines kept, in order."""
        return self.head + list(self.tail)

    def cut_note(self) -> str | None:
        """How the output was cut to fit, for the result's warnings; None when it was kept whole."""
        if not (self.dropped or self.cut):
            return None
        what = ([f"{_n(self.dropped, 'line')} dropped between its first {OUTPUT_HEAD_LINES} and last "
                 f"{OUTPUT_TAIL_LINES}"] if self.dropped else [])
        what += [f"{_n(self.cut, 'line')} longer than {OUTPUT_LINE_MAX} bytes shortened"] if self.cut else []
        return f"{self.runner}'s output was cut to fit ({', '.join(what)}): the figures come from what was kept"

# ---------------------------------------------------------------------------------------- the protocol's figures
def _owner_record(text: str) -> dict[str, Any] | None:
    """The owner record the phone's lock file held (one JSON line, any user's text): a dict, None when empty,
    ``{"unreadable": ...}`` otherwise. The session checks it like any message field."""
    text = text.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {"unreadable": "not an owner record"}
    return record if isinstance(record, dict) else {"unreadable": "not an owner record"}


def _line(kind: str, **fields: Any) -> str:
    """One protocol line of type ``kind``, stamped with the host's clock."""
    return json.dumps({"v": 1, "type": kind, "t_ns": time.monotonic_ns(), **fields})


def _whole_ns(ms: float, what: str) -> int:
    """Milliseconds as whole nanoseconds; :class:`InputError` naming ``what`` when no int64 clock holds them (a
    runner that prints 1e307 us printed garbage, not a time)."""
    ns = ms * 1e6
    if not math.isfinite(ns) or abs(ns) >= 2**63:
        raise InputError(f"{what} ({ms:g} ms) is beyond any clock")
    return int(round(ns))


def _ns(ms: float | None, what: str = "a time it reports") -> int | None:
    """Milliseconds as whole nanoseconds (None stays None); :class:`InputError` beyond any clock."""
    return _whole_ns(ms, what) if ms is not None else None


def _emulation(props: dict[str, str]) -> str | None:
    """Why this "phone" is not real hardware, or None: the Android emulator, or the tests' adbd stand-in."""
    if props.get("ro.hilbench.stand_in"):
        return "hilbench adbd stand-in (tests/support/adbd_standin.py): recorded outputs, not a phone"
    if props.get("ro.kernel.qemu") == "1" or props.get("ro.boot.qemu") == "1":
        return "Android emulator (qemu)"
    return None


def _timed_duration_ns(report: Any) -> tuple[int | None, str | None]:
    """The timed phase's duration by the runner's own figures, and how it was found."""
    for key in ("total_run_time_s", "total_host_walltime_s"):  # ORT's total run time, trtexec's host walltime
        total_s = (report.extra or {}).get(key)
        if isinstance(total_s, (int, float)) and total_s > 0:
            return _whole_ns(total_s * 1e3, "its total run time"), "the runner's total run time"
    if report.samples_ms:
        return _whole_ns(sum(report.samples_ms), "the sum of its per-run times"), \
            "the sum of the runner's per-run times"
    timed = report.timed
    if timed is not None and timed.count and timed.mean_ms:
        # (a count of 400 digits is no float: beyond 2**63 it is beyond any clock anyway)
        return _whole_ns(min(timed.count, 2**63) * timed.mean_ms, "its count x mean"), "the runner's count x mean"
    return None, None


@dataclass(frozen=True)
class _TimedWindow:
    """The timed phase on the host's clock: its inferences, its duration (by the runner) and how that was
    found, its start (None without a duration) and why there, and its end ``t1``."""

    count: int | None
    duration_ns: int | None
    basis: str | None
    t0: int | None
    t0_basis: str | None
    t1: int


def _timed_window(report: Any, out: _Output) -> _TimedWindow:
    """Place the timed phase on the host's clock. The runner keeps no clock we can read: its timed phase ended
    when its summary line arrived, or (output buffered until exit) when it exited, within its teardown; it
    began its own timed duration earlier (never before the runner started)."""
    samples = report.samples_ms
    timed = report.timed
    count = (len(samples) if samples else None) or (timed.count if timed is not None else None)
    timed_ns, basis = _timed_duration_ns(report)
    t1 = out.timed_end if out.timed_end is not None else out.t_end
    t0 = max(out.t_start, t1 - timed_ns) if timed_ns else None
    t0_basis = None
    if t0 is not None:
        arrived = out.timed_end is not None and out.t_end - out.timed_end > 20_000_000
        t0_basis = ("the runner's timed duration, ending when " + ("its timed summary line arrived"
                    if arrived else "it exited") + " (host clock)")
    return _TimedWindow(count=count, duration_ns=timed_ns, basis=basis, t0=t0, t0_basis=t0_basis, t1=t1)


def _sample_messages(samples_ms: list[float], base: int, chunk: int = 5000) -> list[dict[str, Any]]:
    """The ``sample`` lines' fields for the runner's per-run times, placed back to back from ``base``."""
    lat = [_whole_ns(v, "a per-run time") for v in samples_ms]
    offsets, acc = [], 0
    for v in lat:
        offsets.append(acc)
        acc += v
    return [{"phase": "timed", "start": i, "t0_ns": base + offsets[i], "latency_ns": lat[i:i + chunk],
             "offset_ns": [o - offsets[i] for o in offsets[i:i + chunk]]} for i in range(0, len(lat), chunk)]


def _aggregates(timed: Any) -> dict[str, Any] | None:
    """The runner's own timed statistics in ns (None without any)."""
    if timed is None:
        return None
    return {
        "count": timed.count, "mean_ns": _ns(timed.mean_ms), "std_ns": _ns(timed.std_ms),
        "min_ns": _ns(timed.min_ms), "max_ns": _ns(timed.max_ms), "p50_ns": _ns(timed.p50_ms),
        "p90_ns": _ns(timed.p90_ms), "p95_ns": _ns(timed.p95_ms), "p99_ns": _ns(timed.p99_ms),
        "p999_ns": _ns(timed.p999_ms), "throughput_per_s": timed.throughput_per_s,
        # the coefficient of variation from the tool's own std and mean
        "cv": (timed.std_ms / timed.mean_ms) if timed.std_ms is not None and timed.mean_ms else None,
    }


def _memory(memory: dict[str, Any] | None) -> dict[str, Any]:
    """The result's ``memory``: peak_mb is LiteRT's memory monitor, or ORT's peak working set (decimal MB);
    hwm_kb ORT's peak RSS."""
    mem = memory or {}
    peak_bytes = mem.get("peak_working_set_bytes")
    return {"init_mb": mem.get("init_mb"), "overall_mb": mem.get("overall_mb"),
            "peak_mb": mem.get("peak_mb", mem.get("peak_working_set_mb")),
            "hwm_kb": int(peak_bytes // 1024) if isinstance(peak_bytes, (int, float)) else None}


def _battery_current(phone: PhoneTelemetry | None) -> dict[str, Any] | None:
    """How the battery current was read (unit and sign), for the result; None with telemetry off."""
    if phone is None:
        return None
    return {"unit": phone.current_unit or "uA", "unit_basis": phone.unit_basis, "sign": phone.sign_setting}


def _energy_fields(fig: dict[str, Any], timed_ns: int, count: int) -> dict[str, Any]:
    """The result's energy fields from :func:`harness.analysis.metrics.energy_figures`: the mean power over
    the timed window (above idle where measured) x the runner's own timed duration / inferences."""
    energy_mj = fig["mean_power_mw"] * timed_ns / 1e9 / count
    return {"energy_source": "meter" if fig["sensor"] == "power.meter" else "battery",
            "energy_sensor": fig["sensor"], "power_mw_mean": fig["timed_mw"], "idle_power_mw": fig["idle_mw"],
            "energy_basis": fig["energy_basis"], "energy_per_inference_mj": energy_mj, "energy_reason": None}


def _no_energy(phone: PhoneTelemetry | None) -> dict[str, Any]:
    """The result's energy fields when there is no figure, with the reason (and the remedy)."""
    if phone is None:
        return {"energy_source": "none (telemetry off)", "energy_reason": "telemetry is off for this job"}
    if phone.charging:
        return {"energy_source": "none (charging)", "energy_reason": (
            "the phone was charging: battery power is meaningless for energy; unplug it (adb over Wi-Fi: "
            "`adb tcpip 5555`) or set telemetry.meter_command to a power meter on this computer")}
    why = phone.power_reason or "no power reading around the timed phase"
    return {"energy_source": "none (no battery reading)", "energy_reason": f"no energy figure: {why}"}


def _warnings(report: Any, output_cut: str | None, energy: dict[str, Any], meter: HostMeter | None) -> list[str]:
    """The result's warnings: the parser's, a cut output, no energy (unless telemetry was off), a silent meter."""
    warnings = list(report.warnings)
    if output_cut:
        warnings.append(output_cut)
    if energy.get("energy_reason") and not energy["energy_source"].startswith("none (telemetry"):
        warnings.append(energy["energy_reason"])
    if meter is not None and meter.values == 0:
        warnings.append(f"the power meter gave no reading ({meter.error}): check the command by hand on "
                        "this computer; it must print watts")
    return warnings

# ---------------------------------------------------------------------------------------- the runner, as an agent
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
        """The next protocol line; None after the last."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            raise LineTimeout() from None

    def wait(self, timeout: float | None = None) -> int | None:
        """The driver's exit code once it is done, else None after ``timeout``."""
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
        """The runner's last output lines."""
        return "\n".join(self._tail[-40:])

    # protocol emission
    def _put(self, kind: str, **fields: Any) -> None:
        """Queue one protocol line for the session."""
        self.queue.put(_line(kind, **fields))

    def _emit_tel(self, readings: list[dict[str, Any]]) -> None:
        """Keep ``readings`` (for the energy figure) and send them as a ``telemetry`` line."""
        with self._tel_lock:
            self._tel.extend(readings)
        self._put("telemetry", readings=readings)

    def _main(self) -> None:
        """The driver thread: :meth:`_run`, its failures as ``error`` lines, then the end of the lines."""
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

    # the work, step by step
    def _run(self) -> int:
        """The job: the runner, ``hello``, telemetry and the idle baseline, the run, then its report. Returns
        the exit code (0, 2 after an ``error`` line, -9 when killed)."""
        picked = self._pick_runner()
        if picked is None:
            return 2
        runner, device_runner = picked
        self._put("hello", **self._hello(runner, device_runner))
        launch = self._launch(runner, device_runner)
        if launch is None:
            return 2
        self._start_shell(launch)
        if not self._take_lock(launch):
            return -9 if self.killed.is_set() else 2
        samplers = self._start_telemetry()
        if self.killed.is_set():
            samplers.stop()
            return -9
        out = self._execute(launch)
        return self._finish(launch, samplers, out)

    def _pick_runner(self) -> tuple[str, str] | None:
        """The runner binary for the job's backend, put on the phone: (its name, its path there); None after
        an ``error`` line when the backend has none or the target names no binary."""
        t = self.transport
        backend = str(self.payload.get("backend"))
        runner = RUNNER_FOR_BACKEND.get(backend)
        if runner is None:
            self._put("error", category="backend", message=(
                f"backend {backend!r} cannot run on an Android phone without Python (use litert or onnxruntime, "
                "or reach a Python on the phone over SSH: docs/android.md)"))
            return None
        host_binary = getattr(t.target.adb, runner)
        if not host_binary:
            self._put("error", category="backend", message=(
                f"{t.target.source}: adb.{runner} is not set: build {runner} for the phone's ABI "
                f"({t.getprops().get('ro.product.cpu.abi', '?')}) and name its host path there (docs/android.md)"))
            return None
        return runner, t.ensure_runner(runner, host_binary)

    def _hello(self, runner: str, device_runner: str) -> dict[str, Any]:
        """The ``hello`` line's fields: the phone (from ``getprop``) and the runner standing in for the agent."""
        props = self.transport.getprops()
        cores = self.transport.shell("cat /sys/devices/system/cpu/possible 2>/dev/null", step="hello").stdout.strip()
        return {
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

    def _launch(self, runner: str, device_runner: str) -> _Launch | None:
        """How this job's runner is started (flags, pinning, the shell command); None after an ``error`` line
        when the job has no model."""
        t, payload = self.transport, self.payload
        model = (payload.get("model") or {}).get("path")
        if not model:
            self._put("error", category="model", message=f"{runner} needs a model file; this job has none")
            return None
        run_id = str(payload.get("job_id") or "run")
        result_file = f"{t.journal_path(run_id).rsplit('.', 1)[0]}.ort.txt"
        args = _runner_args(runner, model, payload, result_file)
        affinity = list(payload.get("affinity") or [])
        pinned_by = str(payload.get("pinned_by") or "job") if affinity else None
        prefix = t.runner_env(device_runner)
        if affinity:
            prefix += f"taskset {affinity_mask(affinity)} "
        markers = _Markers.new()
        raw_lock = payload.get("lock")
        lock_cfg: dict[str, Any] = raw_lock if isinstance(raw_lock, dict) else {}
        lock_path = f"{t.target.env.get('HILBENCH_LOCK_DIR') or ANDROID_LOCK_DIR}/{LOCK_NAME}"
        wait_s = max(0.0, float(lock_cfg.get("wait_s", 600.0)))
        owner = {k: v for k, v in (lock_cfg.get("owner") or {}).items() if k in ("host", "host_pid", "session", "target")}
        owner.update(v=1, run_id=run_id, runner=runner)
        tel = payload.get("telemetry") or {}
        idle_s = float(payload.get("idle_s") or 0) if tel.get("enabled") else 0.0
        sleep_s = idle_s + IDLE_MARGIN_S if idle_s > 0 else 0.0
        lock = _lock_script(markers, lock_path, wait_s, owner, sleep_s)
        command = _shell_command(prefix, device_runner, args, result_file.rsplit("/", 1)[0], markers, lock)
        return _Launch(runner=runner, device_runner=device_runner, args=args, affinity=affinity, pinned_by=pinned_by,
                       result_file=result_file, command=command, markers=markers, lock_path=lock_path, wait_s=wait_s,
                       wait_setting=str(lock_cfg.get("setting") or "policy.lock_wait_s")[:40], sleep_s=sleep_s)

    def _start_telemetry(self) -> _Samplers:
        """Start the job's samplers (none with telemetry off) after the idle baseline's first reading; a
        charging phone without a meter gets a notice."""
        tel_cfg = self.payload.get("telemetry") or {}
        samplers = _Samplers()
        if not tel_cfg.get("enabled"):
            return samplers
        interval = 1.0 / float(tel_cfg.get("rate_hz") or 1.0)
        samplers.phone = PhoneTelemetry(self.transport, self._emit_tel, interval_s=interval)
        if tel_cfg.get("meter_command"):
            samplers.meter = HostMeter(list(tel_cfg["meter_command"]), self._emit_tel, interval_s=interval)
        samplers.idle = self._idle(samplers.phone, samplers.meter, float(self.payload.get("idle_s") or 0))
        if samplers.phone.charging and samplers.meter is None:
            samplers.notices.append(self._charging_notice())
        return samplers

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

    def _charging_notice(self) -> str:
        """The notice that a charging phone without a meter records no energy, logged as a warning."""
        t = self.transport
        notice = (f"{t.target.name}: the phone is charging and no power meter is set, so this run records "
                  "no energy: unplug it (adb over Wi-Fi: `adb tcpip 5555`) or set telemetry.meter_command "
                  f"in {t.target.source}")
        # Runs are unattended: a notice, never a prompt. The CLI shows the logger's warnings on stderr.
        _LOG.warning("hilbench: notice: %s", notice)
        return notice

    def _start_shell(self, launch: _Launch) -> None:
        """Start the job's shell on the phone (it takes the device lock, waits out the idle baseline, then runs
        the runner) and read its first line, the process group it runs in (any other first line is output)."""
        #: on the host clock, the earliest the runner can have started: the shell's start; after a wait for the
        #: device lock, when the lock was got; after an idle baseline, when the runner's pid arrives
        self._runner_from = time.monotonic_ns()
        self.proc = self.transport.popen_shell(launch.command)
        assert self.proc.stdout is not None
        self._err_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._err_thread = threading.Thread(target=_drain_lines, args=(self.proc.stderr, self._err_tail), daemon=True)
        self._err_thread.start()
        lines = _bounded_lines(self.proc.stdout)
        #: the shell sleeps out the idle baseline after taking the lock (the runner starts after it)
        self._slept = launch.sleep_s > 0
        first = next(lines, None)
        if first is not None and first[0].startswith(launch.markers.pg):
            self.remote_pg = valid_pgid(first[0][len(launch.markers.pg):])
            first = None
        self._lines: Any = itertools.chain([first] if first is not None else [], lines)

    def _take_lock(self, launch: _Launch) -> bool:
        """Read the shell's device-lock lines as ``lock`` messages: ``wait`` (with the holder's owner record) while
        another run holds the phone, ``acquired`` once it is this job's. The host ends a wait at ``wait_s``
        (the shell's flock has no timeout: its process group is killed). False after a ``busy`` error line or
        when killed; True once the runner may start: after ``LOCKED``, after ``NOLOCK`` (a phone without flock,
        said once in the log; the run has no ``device_lock``), or when the shell goes on without a word of the
        lock (its lines then go to the runner's output, as they come)."""
        m = launch.markers.lock
        began = time.monotonic_ns()
        holder: dict[str, Any] | None = None
        waited = False
        busy = False
        seen: list[tuple[str, bool]] = []  # lines that are not the lock's, handed on to the runner's output
        gave_up = threading.Event()

        def give_up() -> None:
            gave_up.set()
            pg = valid_pgid(self.remote_pg)
            if pg is not None:
                self.transport.kill_group(pg)
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()

        timer: threading.Timer | None = None
        try:
            for item in self._lines:
                line = item[0]
                if not line.startswith(m):
                    seen.append(item)
                    if line.startswith((launch.markers.pid, launch.markers.rc)) or len(seen) >= OUTPUT_HEAD_LINES:
                        break  # the shell is past the lock step without a word of it
                    continue
                state, _, rest = line[len(m):].partition(" ")
                if state == "WAIT":
                    waited = True
                    holder = _owner_record(rest)
                    since = holder.get("since") if holder else None
                    self._put("lock", event="wait", path=launch.lock_path, holder=holder, wait_s=launch.wait_s,
                              waited_ns=time.monotonic_ns() - began,
                              held_s=max(0.0, time.time() - since) if isinstance(since, (int, float)) else None)
                    if timer is None and launch.wait_s > 0:
                        timer = threading.Timer(launch.wait_s, give_up)
                        timer.daemon = True
                        timer.start()
                elif state == "LOCKED":
                    if waited:
                        self._runner_from = time.monotonic_ns()
                    self._put("lock", event="acquired", path=launch.lock_path,
                              waited_ns=time.monotonic_ns() - began if waited else 0, waited_for=holder if waited else None)
                    break
                elif state == "NOLOCK":
                    _LOG.warning("hilbench: notice: %s: no device lock on the phone (%s): a run from another host "
                                 "may measure there at the same time", self.transport.target.name, rest[:200])
                    break
                elif state == "BUSY":
                    busy = True
                    break
            else:
                busy = waited  # the stream ended during a wait: given up (or killed)
        finally:
            if timer is not None:
                timer.cancel()
        self._lines = itertools.chain(seen, self._lines)
        if self.killed.is_set():
            return False
        if busy or gave_up.is_set():
            for line, _whole in seen:
                self._tail.append(line)
            tail = (f"gave up after {launch.wait_s:g} s ({launch.wait_setting})" if launch.wait_s > 0
                    else f"not waiting ({launch.wait_setting})")
            self._put("error", category="busy", message=f"the device is in use by {describe_holder(holder)}: {tail}")
            return False
        return True

    def _execute(self, launch: _Launch) -> _Output:
        """Let the runner run (phase ``runner``) and read its output until it exits."""
        self._put("phase", phase="runner", event="begin", runner=launch.runner)
        out = _Output(launch.runner, t_start=self._runner_from)
        assert self.proc is not None
        self._read_output(self._lines, launch.markers, out)
        self.proc.wait()
        self._err_thread.join(5.0)
        out.t_end = time.monotonic_ns()
        self._put("phase", phase="runner", event="end", duration_ns=out.t_end - out.t_start)
        self.output_cut = out.cut_note()
        out.err = "\n".join(self._err_tail)
        return out

    def _read_output(self, lines: Any, markers: _Markers, out: _Output) -> None:
        """Read the runner's output as it arrives (``lines``: the shell's, after its first line and the device
        lock's): the shell's markers give the pid (first marker; after an idle baseline the runner starts then,
        which begins its window on the host clock) and the exit status (the last one stands: the shell echoes it after the
        runner ended); the rest goes to ``out`` and the stderr tail."""
        for line, whole in lines:
            arrived = time.monotonic_ns()
            if not whole:
                out.cut += 1
            if line.startswith(markers.pid) and self.remote_pid is None:
                self.remote_pid = valid_pgid(line[len(markers.pid):])
                if self._slept:
                    out.t_start = arrived  # the shell slept out the idle baseline: the runner started just now
                continue
            if line.startswith(markers.rc) and re.fullmatch(r"[0-9]{1,9}", line[len(markers.rc):]):
                out.rc = int(line[len(markers.rc):])
                continue
            out.keep(line, arrived)
            self._tail.append(line)
            del self._tail[:-200]

    def _finish(self, launch: _Launch, samplers: _Samplers, out: _Output) -> int:
        """After the runner exited: -9 when killed; 2 after an ``error`` line for a lost connection, a failed
        runner or output that cannot be read; else 0 after its report."""
        if self.killed.is_set():
            samplers.stop()
            return -9
        if out.rc is None:
            samplers.stop()
            return self._lost_connection(launch.runner, out.err)
        # One reading after the runner, so the end of the timed window has readings on both sides.
        samplers.stop(self._emit_tel)
        lines = out.lines
        if out.rc != 0:
            last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "no output")
            self._put("error", category="backend", message=f"{launch.runner} exited with status {out.rc}: {last}")
            return 2
        text = "\n".join(lines)
        report = self._parse_output(launch, text)
        if report is None:
            return 2
        try:
            self._emit_report(report, launch, samplers, out, text)
        except InputError as exc:  # a time no clock holds: its output is garbage
            self._put("error", category="backend", message=f"cannot read {launch.runner}'s output: {exc}")
            return 2
        return 0

    def _lost_connection(self, runner: str, err: str) -> int:
        """The ``error`` line for a run whose exit status never came back, then wait for the phone; 2."""
        t = self.transport
        why = explain_adb_error(err, t.serial) or (err.strip().splitlines() or ["no exit status came back"])[-1]
        self._put("error", category="transport", message=(
            f"{t.target.name}: run: the connection to the phone was lost while {runner} ran ({why}); "
            "the device is waited for before the next job"))
        try:
            t.recover("run")
        except TransportError:
            pass
        return 2

    def _parse_output(self, launch: _Launch, text: str) -> Any:
        """The runner's report (:func:`harness.runners.parse_runner_output`) from its output and, for
        ``onnxruntime_perf_test``, its result file (read and removed); None after an ``error`` line."""
        if launch.runner == "onnxruntime_perf_test":
            quoted = shlex.quote(launch.result_file)
            res = self.transport.shell(f"cat {quoted} 2>/dev/null; rm -f {quoted}", step="read result file")
            if res.stdout.strip():
                text = text + "\n" + res.stdout
        from harness.runners import parse_runner_output

        try:
            return parse_runner_output(text, runner=launch.runner)
        except (HilbenchError, ValueError) as exc:
            self._put("error", category="backend", message=f"cannot read {launch.runner}'s output: {exc}")
            return None

    def _emit_report(self, report: Any, launch: _Launch, samplers: _Samplers, out: _Output, text: str = "") -> None:
        """The phases the runner timed itself (``load``, ``first``, ``warmup``, ``timed`` with its samples),
        then the ``result``, with the offload verdict the runner's output gives (``text``: that output)."""
        from harness.runners.placement import runner_offload

        load_ns, first_ns = self._emit_setup_phases(report)
        window = _timed_window(report, out)
        self._emit_timed(report.samples_ms, window, out.t_start)
        energy = self._energy(samplers, window)
        warm = report.warmup
        self._put(
            "result",
            runner=launch.runner,
            runner_version=report.version,
            aggregate_only=bool(report.aggregate_only),
            aggregates=_aggregates(report.timed),
            load_ns=load_ns,
            first_ns=first_ns,
            warmup={"count": warm.count if warm is not None else None, "duration_ns": None,
                    "stop_reason": "runner"},
            timed={"count": window.count, "duration_ns": window.duration_ns, "duration_basis": window.basis,
                   "t0_ns": window.t0, "t0_basis": window.t0_basis, "stop_reason": "runner"},
            wall_ns=out.t_end - out.t_start,
            idle=samplers.idle,
            effective_settings={"runner": launch.runner, "args": launch.args, "runner_settings": report.settings,
                                **self._runner_files()},
            affinity={"cpus": launch.affinity, "pinned_by": launch.pinned_by,
                      "tool": "taskset" if launch.affinity else None},
            memory=_memory(report.memory),
            **self._device_fields(samplers),
            notices=samplers.notices,
            offload=runner_offload(report, text),
            warnings=_warnings(report, self.output_cut, energy, samplers.meter),
            **energy,
        )

    def _runner_files(self) -> dict[str, Any]:
        """What the result's ``effective_settings`` says of the files beside the runner: the phone's libraries."""
        return {"libraries": list(self.transport.target.adb.libraries)}

    def _device_fields(self, samplers: _Samplers) -> dict[str, Any]:
        """The result's fields about the device's own sensors: how the phone's battery current was read."""
        return {"battery_current": _battery_current(samplers.phone)}

    def _emit_setup_phases(self, report: Any) -> tuple[int | None, int | None]:
        """The ``load``, ``first`` and ``warmup`` phases by the runner's own durations; (load_ns, first_ns)."""
        load_ns = _ns(report.init_ms, "its load time")
        if load_ns is not None:
            self._put("phase", phase="load", event="begin")
            self._put("phase", phase="load", event="end", duration_ns=load_ns)
        first_ns = _ns(report.first_inference_ms, "its first inference")
        if first_ns is not None:
            self._put("phase", phase="first", event="begin")
            self._put("phase", phase="first", event="end", duration_ns=first_ns)
        warm = report.warmup
        if warm is not None and not warm.is_empty():
            self._put("phase", phase="warmup", event="end", count=warm.count,
                      duration_ns=None, mean_ns=_ns(warm.mean_ms))
        return load_ns, first_ns

    def _emit_timed(self, samples_ms: list[float] | None, window: _TimedWindow, t_start: int) -> None:
        """The ``timed`` phase: its per-run samples where the runner wrote them, placed from its start."""
        self._put("phase", phase="timed", event="begin")
        if samples_ms:
            base = window.t0 if window.t0 is not None else t_start
            for fields in _sample_messages(samples_ms, base):
                self._put("sample", **fields)
        self._put("phase", phase="timed", event="end", count=window.count, duration_ns=window.duration_ns,
                  stop_reason="runner")

    def _energy(self, samplers: _Samplers, window: _TimedWindow) -> dict[str, Any]:
        """``energy_source`` ("meter", "battery", "none (...)") and the energy per inference: the mean power
        over the timed window (above the idle baseline where there is one) x the runner's own timed duration /
        inferences, by :func:`harness.analysis.metrics.energy_figures` (the meter preferred over the battery)."""
        if samplers.phone is None:
            return _no_energy(None)
        if window.t0 is not None and window.duration_ns and window.count:
            from harness.analysis.metrics import energy_figures

            with self._tel_lock:
                readings = list(self._tel)
            tel = _power_frame(readings)
            if not tel.empty:
                idle = samplers.idle
                fig = energy_figures(tel, timed_t0_ns=window.t0, timed_t1_ns=window.t1, count=window.count,
                                     idle_window=(idle["t0_ns"], idle["t1_ns"]) if idle else None)
                if fig is not None:
                    return _energy_fields(fig, window.duration_ns, window.count)
        return _no_energy(samplers.phone)


def start_runner(transport: Any, payload: dict[str, Any], journal: str) -> AgentProcess:
    """Start the vendor runner for ``payload`` on the phone behind ``transport`` (an ADBTransport).

    A job without its own affinity is pinned to the target's ``adb.big_cores`` when there are any."""
    payload = dict(payload)
    if not payload.get("affinity") and transport.target.adb.big_cores:
        payload["affinity"] = list(transport.target.adb.big_cores)
        payload["pinned_by"] = "target adb.big_cores"
    return RunnerProcess(transport, payload)
