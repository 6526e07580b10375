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

from harness.config.targets import Target
from harness.doctor.base import Check
from harness.errors import TransportError

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
    """``text`` is a decimal number ``int()`` reads: ASCII digits only (``"²".isdigit()`` is true too)."""
    return text.isascii() and text.isdigit()


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

    checks: list[Check] = []
    adb_path = target.adb.adb_path or "adb"
    found = shutil.which(adb_path)
    if found is None:
        checks.append(Check("adb", "fail", f"{adb_path!r} not found",
                            "install Android platform-tools (Debian: apt-get install adb) or set adb.adb_path"))
        return checks
    try:
        version = subprocess.run([found, "version"], capture_output=True, text=True, timeout=15).stdout
        first = version.splitlines()[0] if version else "unknown version"
    except (OSError, subprocess.TimeoutExpired) as exc:
        checks.append(Check("adb", "fail", f"{found}: {exc}", "reinstall platform-tools"))
        return checks
    checks.append(Check("adb", "ok", f"{found} ({first})"))
    t = ADBTransport(target)
    try:
        t.connect()
    except TransportError as exc:
        checks.append(Check("device authorized", "fail", str(exc), "see the message; docs/android.md"))
        return checks
    checks.append(Check("device authorized", "ok", f"{t.serial} is in state 'device'"))
    try:
        props = t.getprops()
    except TransportError as exc:
        checks.append(Check("getprop", "fail", str(exc), "check `adb shell getprop` by hand"))
        return checks
    abi = props.get("ro.product.cpu.abi", "")
    checks.append(Check("ABI", "ok" if abi in _ABIS else "warn", abi or "unknown",
                        "" if abi in _ABIS else "build the runners for the ABI `adb shell getprop ro.product.cpu.abi` shows"))
    release = props.get("ro.build.version.release", "")
    sdk = props.get("ro.build.version.sdk", "")
    old = _digits(sdk) and int(sdk) < 27
    checks.append(Check("Android version", "warn" if old else "ok", f"Android {release} (SDK {sdk or '?'})",
                        "NNAPI needs Android 8.1 (SDK 27) or newer" if old else ""))
    soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware") or ""
    checks.append(Check("SoC", "ok" if soc else "warn",
                        " ".join(x for x in (props.get("ro.soc.manufacturer"), soc) if x) or "unknown",
                        "" if soc else "ro.soc.model is empty before Android 12: set facts.soc in the target file"))
    for name in ("benchmark_model", "onnxruntime_perf_test"):
        host = getattr(target.adb, name)
        if not host:
            checks.append(Check(f"runner {name}", "warn", "not configured",
                                f"set adb.{name} to a {name} built for {abi or 'the phone'} to run "
                                f"{'LiteRT' if name == 'benchmark_model' else 'ONNX Runtime'} jobs"))
            continue
        try:
            device_path = t.ensure_runner(name, host)
            flag = "--help" if name == "benchmark_model" else "-h"
            # with the runner's environment (LD_LIBRARY_PATH: its libraries), as a job starts it
            res = t.shell(f"{t.runner_env(device_path)}{shlex.quote(device_path)} {flag} 2>&1", step="doctor",
                          timeout=20)
            m = re.search(r"(?:version|Version)[:\s]+v?([\w.\-]+)", res.stdout)
            why = runner_failure(res.code, res.stdout)
            if why is None:
                checks.append(Check(f"runner {name}", "ok",
                                    f"{device_path}" + (f" (version {m.group(1)})" if m else "")))
            else:
                missing = re.search(r'library "([^"]+)" not found', why)
                fix = (f"add {missing.group(1)} to adb.libraries in the target file" if missing else
                       f"build {name} for {abi or 'the phone'} (`adb shell getprop ro.product.cpu.abi`) and set "
                       f"adb.{name} to it")
                checks.append(Check(f"runner {name}", "fail", f"{host} cannot run on the phone: {why}", fix))
        except TransportError as exc:
            checks.append(Check(f"runner {name}", "fail", str(exc), f"rebuild {name} for {abi or 'the phone'}"))
    if target.python:
        try:
            t.check_python()
            checks.append(Check("python", "ok", f"{target.python} runs as adb's shell user"))
        except TransportError as exc:
            checks.append(Check("python", "fail", str(exc),
                                "for Termux use an SSH target (port 8022, docs/android.md)"))
    try:
        res = t.shell("for c in /sys/devices/system/cpu/cpu[0-9]*; do [ -r $c/cpufreq/cpuinfo_max_freq ] && "
                      "echo \"${c##*/} $(cat $c/cpufreq/cpuinfo_max_freq)\"; done", step="doctor")
        freqs = {int(a[3:]): int(b) for a, b in (ln.split() for ln in res.stdout.splitlines() if len(ln.split()) == 2)
                 if _digits(a[3:]) and _digits(b)}
        big, little = big_little(freqs)
        named = list(target.adb.big_cores)
        status, fix = "ok", ""
        if named and sorted(named) != big:
            status, fix = "warn", f"adb.big_cores is {named} but the fastest cores are {big}"
        elif not named and big and little:
            status, fix = "warn", f"set adb.big_cores = {big} to pin runs to the big cores"
        checks.append(Check("big/little cores", status,
                            f"big {big} ({max(freqs.values()) // 1000 if freqs else 0} MHz), others {little}", fix))
    except TransportError as exc:
        checks.append(Check("big/little cores", "warn", str(exc), "cpufreq is not readable"))
    try:
        from harness.transport.adb.vendor_runner import TELEMETRY_SCRIPT, parse_snapshot

        readings = {d["sensor"]: d for d in parse_snapshot(t.shell(TELEMETRY_SCRIPT, step="doctor").stdout,
                                                           current_unit=target.adb.battery_current_unit,
                                                           current_sign=target.adb.battery_current_sign)}
        status_r = readings.get("thermal.status")
        value = status_r["value"] if status_r else None
        level = int(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        charging = readings.get("battery.charging", {}).get("value")
        detail = f"thermal status {level if level is not None else 'unknown'}"
        temps = [d["value"] for k, d in readings.items() if isinstance(k, str) and k.startswith("temp.")
                 and isinstance(d["value"], (int, float)) and math.isfinite(d["value"])]
        if temps:
            detail += f", hottest sensor {max(temps):.1f} C"
        checks.append(Check("thermal status", "ok" if not level else "warn", detail,
                            "" if not level else "the phone is throttling: let it cool before measuring"))
        meter = target.telemetry.get("meter_command")
        if charging and meter:
            checks.append(Check("power source", "ok", "charging; energy from the meter command (on this computer)"))
        else:
            checks.append(Check("power source", "warn" if charging else "ok",
                                "charging" if charging else "on battery",
                                "battery power is meaningless while charging: unplug (adb over Wi-Fi: "
                                "`adb tcpip 5555`) or set telemetry.meter_command" if charging else ""))
    except TransportError as exc:
        checks.append(Check("thermal status", "warn", str(exc), "dumpsys thermalservice is not readable"))
    return checks
