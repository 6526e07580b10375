"""``hilbench doctor`` checks for Android targets: what must be true before a phone can be measured.

:func:`doctor_android` returns one :class:`Check` per question (adb found, device
authorized, ABI, Android version, SoC, runner binaries present, loadable and
their versions, a ``python`` the shell user can run, big/little cores, thermal
status, power source). It never raises for a failed check: a check that cannot
be made is a ``fail`` with the fix.
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from harness.config.targets import Target
from harness.doctor.base import Check
from harness.errors import TransportError

if TYPE_CHECKING:
    from harness.transport.adb.transport import ADBTransport

__all__ = ["Check", "doctor_android", "big_little", "runner_failure"]

_ABIS = ("arm64-v8a", "armeabi-v7a", "x86_64", "x86")

#: What the shell or Android's dynamic linker prints when a binary cannot start (wrong ABI, missing library,
#: not a binary at all), as opposed to the runner's own usage text.
_LOADER_ERRORS = re.compile(
    r"not executable|cannot execute|exec format error|invalid elf|no such file|not found|syntax error|"
    r"cannot link executable|is (?:32|64)-bit instead of|unexpected e_machine|permission denied|"
    r"illegal instruction|segmentation fault|bus error", re.IGNORECASE)


def runner_failure(code: int, output: str) -> str | None:
    """Why a runner's ``--help`` shows that it cannot run on the phone, or None when it ran.

    The runners exit non-zero after their usage text (``benchmark_model --help`` 1,
    ``onnxruntime_perf_test -h`` 255), so the status alone says nothing; 126/127 (the shell
    could not execute or find it), a signal (>= 128 that is not 255), a loader message or no
    output at all does."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    # the shell and the linker speak before the program does: a usage text further down may say anything
    bad = next((ln for ln in lines[:3] if _LOADER_ERRORS.search(ln)), None)
    if code in (126, 127) or 128 <= code < 255:
        return bad or f"exit status {code}" + (f": {lines[-1]}" if lines else "")
    if code != 0 and bad is not None:
        return bad
    if not lines:
        return f"it printed nothing (exit status {code})"
    return None


def _digits(text: str) -> bool:
    """``text`` is a decimal number ``int()`` reads: ASCII digits only (``"²".isdigit()`` is true too), and not
    thousands of them (``int()`` refuses over 4,300)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def big_little(max_khz: dict[int, int]) -> tuple[list[int], list[int]]:
    """(big cores, other cores) from each CPU's ``cpuinfo_max_freq``: the big ones run fastest."""
    if not max_khz:
        return [], []
    top = max(max_khz.values())
    big = sorted(c for c, f in max_khz.items() if f == top)
    return big, sorted(c for c in max_khz if c not in big)


def doctor_android(target: Target) -> list[Check]:
    """The Android checks for ``target`` (an ``adb`` target), in order; stops after a check the rest need."""
    from harness.transport.adb.transport import ADBTransport

    checks = [_adb_check(target)]
    if checks[-1].status == "fail":
        return checks
    t = ADBTransport(target)
    checks.append(_device_check(t))
    if checks[-1].status == "fail":
        return checks
    try:
        props = t.getprops()
    except TransportError as exc:
        checks.append(Check("getprop", "fail", str(exc), "check `adb shell getprop` by hand"))
        return checks
    checks += _property_checks(props)
    abi = props.get("ro.product.cpu.abi", "")
    checks += [_runner_check(t, target, name, abi) for name in ("benchmark_model", "onnxruntime_perf_test")]
    if target.python:
        checks.append(_python_check(t, target))
    checks.append(_cores_check(t, target))
    checks += _thermal_and_power_checks(t, target)
    return checks


def _adb_check(target: Target) -> Check:
    """``adb``: the client is found and tells its version (a ``fail`` stops the checks)."""
    adb_path = target.adb.adb_path or "adb"
    found = shutil.which(adb_path)
    if found is None:
        return Check("adb", "fail", f"{adb_path!r} not found",
                     "install Android platform-tools (Debian: apt-get install adb) or set adb.adb_path")
    try:
        version = subprocess.run([found, "version"], capture_output=True, text=True, timeout=15).stdout
        first = version.splitlines()[0] if version else "unknown version"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("adb", "fail", f"{found}: {exc}", "reinstall platform-tools")
    return Check("adb", "ok", f"{found} ({first})")


def _device_check(t: ADBTransport) -> Check:
    """``device authorized``: the phone is connected and in state ``device`` (a ``fail`` stops the checks)."""
    try:
        t.connect()
    except TransportError as exc:
        return Check("device authorized", "fail", str(exc), "see the message; docs/android.md")
    return Check("device authorized", "ok", f"{t.serial} is in state 'device'")


def _property_checks(props: dict[str, str]) -> list[Check]:
    """``ABI``, ``Android version`` and ``SoC`` from the phone's properties."""
    abi = props.get("ro.product.cpu.abi", "")
    release = props.get("ro.build.version.release", "")
    sdk = props.get("ro.build.version.sdk", "")
    old = _digits(sdk) and int(sdk) < 27
    soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware") or ""
    return [
        Check("ABI", "ok" if abi in _ABIS else "warn", abi or "unknown",
              "" if abi in _ABIS else "build the runners for the ABI `adb shell getprop ro.product.cpu.abi` shows"),
        Check("Android version", "warn" if old else "ok", f"Android {release} (SDK {sdk or '?'})",
              "NNAPI needs Android 8.1 (SDK 27) or newer" if old else ""),
        Check("SoC", "ok" if soc else "warn",
              " ".join(x for x in (props.get("ro.soc.manufacturer"), soc) if x) or "unknown",
              "" if soc else "ro.soc.model is empty before Android 12: set facts.soc in the target file"),
    ]


def _runner_check(t: ADBTransport, target: Target, name: str, abi: str) -> Check:
    """``runner <name>``: the target names the binary, it is on the phone and its help text runs there."""
    host = getattr(target.adb, name)
    if not host:
        return Check(f"runner {name}", "warn", "not configured",
                     f"set adb.{name} to a {name} built for {abi or 'the phone'} to run "
                     f"{'LiteRT' if name == 'benchmark_model' else 'ONNX Runtime'} jobs")
    try:
        device_path = t.ensure_runner(name, host)
        flag = "--help" if name == "benchmark_model" else "-h"
        # with the runner's environment (LD_LIBRARY_PATH: its libraries), as a job starts it
        res = t.shell(f"{t.runner_env(device_path)}{shlex.quote(device_path)} {flag} 2>&1", step="doctor",
                      timeout=20)
    except TransportError as exc:
        return Check(f"runner {name}", "fail", str(exc), f"rebuild {name} for {abi or 'the phone'}")
    return _runner_verdict(name, host, device_path, res.code, res.stdout, abi)


def _runner_verdict(name: str, host: str, device_path: str, code: int, output: str, abi: str) -> Check:
    """The ``runner <name>`` check from its help run: ``ok`` with its version, or ``fail`` with the fix."""
    why = runner_failure(code, output)
    if why is None:
        m = re.search(r"(?:version|Version)[:\s]+v?([\w.\-]+)", output)
        return Check(f"runner {name}", "ok", f"{device_path}" + (f" (version {m.group(1)})" if m else ""))
    missing = re.search(r'library "([^"]+)" not found', why)
    fix = (f"add {missing.group(1)} to adb.libraries in the target file" if missing else
           f"build {name} for {abi or 'the phone'} (`adb shell getprop ro.product.cpu.abi`) and set "
           f"adb.{name} to it")
    return Check(f"runner {name}", "fail", f"{host} cannot run on the phone: {why}", fix)


def _python_check(t: ADBTransport, target: Target) -> Check:
    """``python``: the target's ``python`` runs as adb's shell user."""
    try:
        t.check_python()
    except TransportError as exc:
        return Check("python", "fail", str(exc), "for Termux use an SSH target (port 8022, docs/android.md)")
    return Check("python", "ok", f"{target.python} runs as adb's shell user")


def _cores_check(t: ADBTransport, target: Target) -> Check:
    """``big/little cores``: the fastest cores by ``cpuinfo_max_freq``, against the target's ``adb.big_cores``."""
    try:
        res = t.shell("for c in /sys/devices/system/cpu/cpu[0-9]*; do [ -r $c/cpufreq/cpuinfo_max_freq ] && "
                      "echo \"${c##*/} $(cat $c/cpufreq/cpuinfo_max_freq)\"; done", step="doctor")
    except TransportError as exc:
        return Check("big/little cores", "warn", str(exc), "cpufreq is not readable")
    freqs = {int(a[3:]): int(b) for a, b in (ln.split() for ln in res.stdout.splitlines() if len(ln.split()) == 2)
             if _digits(a[3:]) and _digits(b)}
    big, little = big_little(freqs)
    named = list(target.adb.big_cores)
    status, fix = "ok", ""
    if named and sorted(named) != big:
        status, fix = "warn", f"adb.big_cores is {named} but the fastest cores are {big}"
    elif not named and big and little:
        status, fix = "warn", f"set adb.big_cores = {big} to pin runs to the big cores"
    return Check("big/little cores", status,
                 f"big {big} ({max(freqs.values()) // 1000 if freqs else 0} MHz), others {little}", fix)


def _thermal_and_power_checks(t: ADBTransport, target: Target) -> list[Check]:
    """``thermal status`` and ``power source`` from one telemetry snapshot (only the first when it cannot
    be read)."""
    from harness.transport.adb.vendor_runner import TELEMETRY_SCRIPT, parse_snapshot

    try:
        text = t.shell(TELEMETRY_SCRIPT, step="doctor").stdout
    except TransportError as exc:
        return [Check("thermal status", "warn", str(exc), "dumpsys thermalservice is not readable")]
    readings = {d["sensor"]: d for d in parse_snapshot(text, current_unit=target.adb.battery_current_unit,
                                                       current_sign=target.adb.battery_current_sign)}
    return [_thermal_check(readings), _power_source_check(readings, target)]


def _thermal_check(readings: dict[str, dict[str, Any]]) -> Check:
    """``thermal status``: the thermal HAL's status level (``warn`` when throttling) and the hottest sensor."""
    status_r = readings.get("thermal.status")
    value = status_r["value"] if status_r else None
    level = int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    detail = f"thermal status {level if level is not None else 'unknown'}"
    temps = [d["value"] for k, d in readings.items() if isinstance(k, str) and k.startswith("temp.")
             and isinstance(d["value"], (int, float)) and math.isfinite(d["value"])]
    if temps:
        detail += f", hottest sensor {max(temps):.1f} C"
    return Check("thermal status", "ok" if not level else "warn", detail,
                 "" if not level else "the phone is throttling: let it cool before measuring")


def _power_source_check(readings: dict[str, dict[str, Any]], target: Target) -> Check:
    """``power source``: on battery, or charging (a ``warn`` unless a meter command gives the energy)."""
    charging = readings.get("battery.charging", {}).get("value")
    meter = target.telemetry.get("meter_command")
    if charging and meter:
        return Check("power source", "ok", "charging; energy from the meter command (on this computer)")
    return Check("power source", "warn" if charging else "ok", "charging" if charging else "on battery",
                 "battery power is meaningless while charging: unplug (adb over Wi-Fi: "
                 "`adb tcpip 5555`) or set telemetry.meter_command" if charging else "")
