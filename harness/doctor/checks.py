"""``hilbench doctor``: what must be true before a target can be measured, one check per question.

:func:`doctor` returns one :class:`Check` per question, in order: reachability,
login, the device's Python (>= 3.7), then what the agent's ``--probe`` hello
says (runtimes and versions, execution providers and delegates, sensors, free
disk and memory, CPU governor, emulation), then platform states read with simple
commands where they exist (Jetson power mode, Raspberry Pi throttling). A check
that later checks need (reachable, login, Python, agent) ends the list when it
fails. :func:`doctor` never raises for a failed check: it becomes a ``fail``
with the fix. Android targets are handled by :mod:`harness.doctor.android`.

The same facts are stored with every run: :func:`device_facts` probes each target once per
session, into the ``device_facts`` column of the ``runs`` table (the job's own hello, which probes
only its backend, is the ``device`` column).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

from hilbench_agent.backends import BACKENDS, canonical_name

from harness.config.targets import Target
from harness.doctor.android import doctor_android
from harness.doctor.base import STATUSES, Check, Shell
from harness.doctor.lab import doctor_labgrid
from harness.errors import ConfigError, HilbenchError, HostKeyError, TransportError
from harness.safetext import safe
from harness.transport.base import Transport

__all__ = ["Check", "doctor", "format_checks", "device_facts", "hello_checks", "clean_hello", "STATUSES", "DOCTORS"]

_MIN_FREE_DISK = 200 * 1024 * 1024
_LOW_FREE_DISK = 1024 * 1024 * 1024
_LOW_MEMORY_KB = 256 * 1024

# Raspberry Pi `vcgencmd get_throttled` bits: now (low) and since boot (<< 16).
_THROTTLE_BITS = {0x1: "under-voltage", 0x2: "ARM frequency capped", 0x4: "throttled", 0x8: "soft temperature limit"}


def doctor(target: Target) -> list[Check]:
    """The checks for ``target`` (local, ssh or adb), in order."""
    return DOCTORS[target.transport](target)


def format_checks(target: Target, checks: list[Check]) -> str:
    """One line per check (with its fix hint), under a line naming the target. Every line is made safe to
    print (:func:`harness.safetext.safe`): checks quote what the device said (its hello, an SSH banner, an
    error), and a control character in it is shown as an escape, never sent to the terminal as it is."""
    where = target.transport
    if target.host:
        where += " " + (f"{target.user}@" if target.user else "") + target.host + (f":{target.port}" if target.port else "")
    failed = sum(1 for c in checks if c.status == "fail")
    warned = sum(1 for c in checks if c.status == "warn")
    summary = ", ".join(x for x in (f"{failed} failed" if failed else "", f"{warned} warnings" if warned else "") if x)
    lines = [safe(f"{target.name} ({where}): {summary or 'ok'}")]
    marks = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "info": "info"}
    width = max((len(c.name) for c in checks), default=0)
    for c in checks:
        line = f"  {marks.get(c.status, c.status):4}  {c.name:<{width}}  {c.detail}"
        if c.fix and c.status in ("warn", "fail"):
            line += f"  -> {c.fix}"
        lines.append(safe(line.rstrip(), 2000))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- ssh


def _doctor_ssh(target: Target) -> list[Check]:
    from harness.transport.ssh import SetupError, SSHTransport, resolve_endpoint

    checks: list[Check] = []
    s = target.ssh
    try:
        t = SSHTransport(target)
        assert target.host is not None
        ep = resolve_endpoint(target.host, user=target.user, port=target.port, identity_file=s.identity_file,
                              proxy_jump=s.proxy_jump, known_hosts=s.known_hosts, use_ssh_config=s.use_ssh_config)
    except HilbenchError as exc:
        return [Check("reachable", "fail", str(exc), "fix the target file or ~/.ssh/config")]
    try:  # this host's own files first: the device is not to blame for them
        SSHTransport.preflight(target)
    except ConfigError as exc:
        return [Check("ssh files", "fail", str(exc), "fix or name another file (the message says which and where)")]
    where = f"{ep.host}:{ep.port}"
    if ep.proxy_jump:
        checks.append(Check("reachable", "info", f"{where} through ProxyJump {ep.proxy_jump} (checked at login)"))
    else:
        try:
            with socket.create_connection((ep.host, ep.port), timeout=s.connect_timeout_s) as sock:
                banner = t.greeting(sock, ep, "connect")
        except Exception as exc:  # noqa: BLE001 - reported as a check
            err = t._translate(exc, "connect", ep)
            fix = ("check the port (target file or ~/.ssh/config)" if isinstance(err, SetupError) else
                   "check the device is on and on the network, and its address and port (target file or "
                   "~/.ssh/config)")
            return [Check("reachable", "fail", str(err), fix)]
        checks.append(Check("reachable", "ok", f"{where} answers ({banner[:60] or 'SSH, once spoken to'})"))
    try:
        t.login()
    except HostKeyError as exc:
        checks.append(Check("host key", "fail", str(exc), _host_key_fix(target, ep)))
        return checks
    except TransportError as exc:
        checks.append(Check("login", "fail", str(exc), _login_fix(target, ep, exc)))
        return checks
    try:
        keys = ", ".join(ep.identity_files) or "default keys / ssh-agent"
        checks.append(Check("host key", "ok", "verified against known_hosts"))
        checks.append(Check("login", "ok", f"{ep.user}@{ep.host} ({keys})"))
        try:
            version = t.check_python()
        except TransportError as exc:
            checks.append(Check("python", "fail", str(exc),
                                "install Python 3.7+ on the device and set python = \"/path/to/python3\" in the target"))
            return checks
        checks.append(Check("python", "ok", f"Python {'.'.join(map(str, version))} ({t.python})"))
        checks += _probe_checks(t, target)
        checks += _platform_checks(t.run_shell)
        if t.bytes_sent:
            checks.append(Check("agent upload", "info", f"{t.bytes_sent} bytes sent to {t.workdir}/agents"))
    finally:
        t.close()
    return checks


def _host_key_fix(target: Target, ep: Any) -> str:
    """The command that fixes a refused host key: remove a changed key, or record an unknown one."""
    import os

    import paramiko

    spec = ep.host if ep.port == 22 else f"[{ep.host}]:{ep.port}"
    known = None
    for path in ep.known_hosts_files:
        if os.path.isfile(path):
            with contextlib.suppress(OSError, ValueError, paramiko.SSHException):
                if paramiko.HostKeys(path).lookup(spec):
                    known = path
                    break
    write_to = os.path.expanduser(target.ssh.known_hosts) if target.ssh.known_hosts else ep.known_hosts_files[-1]
    port = f"-p {ep.port} " if ep.port != 22 else ""
    if known:
        return (f"if the device was reinstalled: ssh-keygen -R '{spec}' -f {known}, then "
                f"ssh-keyscan {port}{ep.host} >> {write_to} (compare the fingerprint with the device's console first)")
    trust = ("or rerun with --accept-new-host-keys" if target.source == "--target"
             else "or set accept_new_host_keys = true in the target's [ssh] table")
    return (f"compare the fingerprint with the device's (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then "
            f"ssh-keyscan {port}{ep.host} >> {write_to} {trust}")


def _login_fix(target: Target, ep: Any, exc: TransportError) -> str:
    """What to do about a refused login: which keys were tried, and where to name another."""
    import os

    text = str(exc)
    if "refused" not in text or "login as" not in text:
        return "check the address, ~/.ssh/config and the device's sshd log (journalctl -u ssh)"
    tried = [k for k in ep.identity_files if os.path.isfile(k)]
    if tried:
        keys = "tried " + ", ".join(tried) + " and ssh-agent"
    else:
        keys = "tried the default ~/.ssh/id_* keys and ssh-agent"
    where = ("--identity FILE" if target.source == "--target" else
             f"identity_file in the [ssh] table of {target.source}")
    first = tried[0] if tried else "~/.ssh/id_ed25519"
    port = f"-p {ep.port} " if ep.port != 22 else ""
    return f"{keys}: ssh-copy-id -i {first}.pub {port}{ep.user}@{ep.host}, or name the key the device accepts with {where}"


# -------------------------------------------------------------------------------------------- local


def _doctor_local(target: Target) -> list[Check]:
    from harness.transport.local import LocalTransport

    checks = [Check("reachable", "info", "this machine (the agent runs as a subprocess)")]
    t = LocalTransport(target)
    try:
        out = subprocess.run([t.python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=30)
        version = tuple(int(x) for x in out.stdout.strip().split("."))
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        checks.append(Check("python", "fail", f"{t.python}: {exc}", "set python in the target to a Python 3.7+"))
        return checks
    if version[:2] < (3, 7):
        checks.append(Check("python", "fail", f"Python {out.stdout.strip()} ({t.python}) is too old: the agent needs "
                            "3.7 or newer", "set python in the target to a Python 3.7+"))
        return checks
    checks.append(Check("python", "ok", f"Python {out.stdout.strip()} ({t.python})"))
    checks += _probe_checks(t, target)
    checks += _platform_checks(t.run_shell)
    return checks


# ------------------------------------------------------------------------------------- shared checks


def _probe(t: Any, timeout_s: float = 120.0, folder: str | None = None) -> dict[str, Any]:
    """The agent's hello from ``--probe`` (ships the agent when needed); its journal goes to the
    transport's journal folder, or to ``folder`` (a sibling of it) when given."""
    from harness.agent.protocol import decode_line
    from harness.agent.validate import sanitize_hello
    from harness.transport.base import LineTimeout

    journal = t.journal_path(f"doctor-{uuid.uuid4().hex[:12]}")
    if folder is not None:
        journal = journal.rsplit("/", 2)[0] + f"/{folder}/" + journal.rsplit("/", 1)[1]
    proc = t.start_agent({}, journal, ["--probe"])
    hello: dict[str, Any] = {}
    error = ""
    code: int | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                line = proc.next_line(max(0.1, deadline - time.monotonic()))
            except LineTimeout:
                break
            if line is None:
                break
            if not line.strip():
                continue
            msg = decode_line(line, where="agent")
            if msg["type"] == "hello":
                hello = sanitize_hello(msg)  # nesting, int64, string caps; clean_hello judges the types
            elif msg["type"] == "error":
                error = str(msg.get("message"))
        code = proc.wait(10)
    finally:
        with contextlib.suppress(Exception):
            proc.kill()
    if not hello:
        tail = proc.stderr_tail.strip().splitlines()
        raise TransportError(error or f"the agent said nothing (exit status {code}){': ' + tail[-1] if tail else ''}",
                             step="probe")
    return hello


def device_facts(t: Transport, target: Target, timeout_s: float = 60.0) -> dict[str, Any]:
    """What doctor shows about a connected device, as data stored with every run of a session: the full
    ``--probe`` hello (every runtime with its version, providers and delegates, sensors, disk, memory,
    governor) and the checks doctor derives from it plus the platform states (Jetson power mode,
    throttling). Raises HilbenchError when the agent cannot be probed."""
    # Its journal and pid file go to <workdir>/probe/, apart from the jobs' (which recovery and tests read).
    hello = _probe(t, timeout_s=timeout_s, folder="probe")
    checks = hello_checks(hello, target)
    checks += _platform_checks(t.run_shell)
    return {
        "version": 1,
        # Stored cleaned (each field of the type readers expect), so a later reader of the store never trips on it.
        "probe": {k: v for k, v in clean_hello(hello)[0].items() if k not in ("v", "type", "t_ns")},
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in checks],
    }


def _probe_checks(t: Any, target: Target) -> list[Check]:
    try:
        hello = _probe(t)
    except HilbenchError as exc:
        return [Check("agent", "fail", str(exc), "run the agent by hand: python3 agent.pyz --probe (see docs/ssh.md)")]
    return hello_checks(hello, target)


#: The hello fields doctor reads and the JSON types they must have; a field of another type is ignored (and said).
_HELLO_TYPES: dict[str, tuple[type, ...]] = {
    "agent_version": (str,), "os": (str,), "machine": (str,), "python": (str,), "cpu_model": (str,),
    "cpu_count": (int,), "backends": (dict,), "sensors": (dict,), "free_disk_bytes": (int,), "memory_kb": (dict,),
    "cpu_governor": (str,), "usage_sources": (dict,)}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    for types, name in ((dict, "an object"), (list, "a list"), (str, "a string"), (int, "an integer"),
                        (float, "a number")):
        if isinstance(value, types):
            return name
    return "null" if value is None else type(value).__name__


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def clean_hello(hello: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``hello`` with every field :func:`hello_checks` reads of the type it expects, and what was wrong: a field
    of another type is dropped, as are backends that are not objects, provider lists that are not lists, sensor
    names that are not strings and memory figures that are not numbers. A device's hello is never trusted."""
    problems: list[str] = []
    out = dict(hello)
    for key, types in _HELLO_TYPES.items():
        value = out.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            want = {"dict": "an object", "str": "a string", "int": "an integer"}[types[0].__name__]
            problems.append(f"{key} is {_json_type(value)}, not {want}")
            out[key] = None
    backends = {}
    for name, b in (out.get("backends") or {}).items():
        if not isinstance(b, dict):
            problems.append(f"backends.{name} is {_json_type(b)}, not an object")
            continue
        b = dict(b)
        for key in ("providers", "delegates", "execution_providers"):
            if b.get(key) is not None and not isinstance(b[key], list):
                problems.append(f"backends.{name}.{key} is {_json_type(b[key])}, not a list")
                b[key] = None
        backends[str(name)] = b
    out["backends"] = backends
    sensors = dict(out.get("sensors") or {})
    for key in ("sources", "missing"):
        items = sensors.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            problems.append(f"sensors.{key} is {_json_type(items)}, not a list")
            sensors[key] = []
        elif not all(isinstance(x, str) for x in items):
            problems.append(f"sensors.{key} holds items that are not strings")
            sensors[key] = [x for x in items if isinstance(x, str)]
    out["sensors"] = sensors
    mem = dict(out.get("memory_kb") or {})
    for key in ("MemTotal", "MemAvailable"):
        if mem.get(key) is not None and not _number(mem[key]):
            problems.append(f"memory_kb.{key} is {_json_type(mem[key])}, not a number")
            mem[key] = None
    out["memory_kb"] = mem
    usage = dict(out.get("usage_sources") or {})
    for key in ("sources", "missing"):
        items = usage.get(key)
        if items is not None and (not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values())):
            problems.append(f"usage_sources.{key} is not an object of strings")
            usage[key] = {}
    for key in ("psutil", "psutil_missing", "remedy", "error"):
        if usage.get(key) is not None and not isinstance(usage[key], str):
            problems.append(f"usage_sources.{key} is {_json_type(usage[key])}, not a string")
            usage[key] = None
    out["usage_sources"] = usage
    return out, problems


def _install_hints(names: Any) -> str:
    """What to install on a device for the backends ``names``, from each backend's own declaration."""
    hints = [BACKENDS[canonical_name(n)].install_hint for n in names if canonical_name(n) in BACKENDS]
    return "; ".join(h for h in hints if h) or "see docs/reference.md, backends"


def hello_checks(hello: dict[str, Any], target: Target) -> list[Check]:
    """The checks that the agent's hello answers (pure: tested on recorded hellos). Fields of the wrong type
    are ignored and named in one ``hello`` warning (:func:`clean_hello`)."""
    hello, problems = clean_hello(hello)
    cpus = hello.get("cpu_count")
    checks: list[Check] = [Check("agent", "ok", f"agent {hello.get('agent_version')} on {hello.get('os')} "
                                 f"{hello.get('machine')}, {cpus if cpus is not None else '?'} CPUs "
                                 f"({hello.get('cpu_model') or 'unknown CPU'})")]
    if problems:
        checks.append(Check("hello", "warn", "malformed fields ignored: " + "; ".join(problems),
                            "the device's agent is not the one hilbench ships, or is damaged: rerun doctor "
                            "to ship it again"))
    backends: dict[str, Any] = hello["backends"]
    real = {n: b for n, b in backends.items() if b.get("available") and not b.get("stand_in")}
    found = ", ".join(f"{n} {b.get('version') or ''}".strip() for n, b in sorted(real.items()))
    declared = [r for r in target.runtimes if r not in real]
    if declared:
        reasons = "; ".join(f"{r}: {(backends.get(r) or {}).get('reason', 'not found')}" for r in declared)
        checks.append(Check("runtimes", "fail", f"the target lists {', '.join(declared)} but the device lacks it "
                            f"({reasons}); found: {found or 'none'}",
                            f"install it for {hello.get('python')} on the device ({_install_hints(declared)}) "
                            "or drop it from runtimes"))
    elif real:
        checks.append(Check("runtimes", "ok", found))
    else:
        checks.append(Check("runtimes", "warn", "no inference runtime found (only the synthetic stand-in)",
                            "install one for the device's Python: " + _install_hints(("onnxruntime", "litert"))))
    providers = []
    for name, b in sorted(real.items()):
        for key in ("providers", "delegates", "execution_providers"):
            items = b.get(key)
            if items:
                providers.append(f"{name}: {', '.join(map(str, items))}")
    checks.append(Check("execution providers", "info", "; ".join(providers) or "none reported"))
    sensors = hello["sensors"]
    sources = sensors.get("sources") or []
    missing = sensors.get("missing") or []
    power = [s for s in sources if any(w in s.lower() for w in ("power", "ina", "rapl", "hwmon", "meter"))]
    if sources:
        checks.append(Check("sensors", "ok" if power else "warn", "; ".join(sources),
                            "" if power else "no power sensor: energy per inference needs one (a board rail or an "
                            "external meter: telemetry.meter_command)"))
    else:
        checks.append(Check("sensors", "warn", str(sensors.get("error") or "none found"),
                            "; ".join(missing[:2]) or "telemetry will be empty"))
    disk = hello.get("free_disk_bytes")
    if isinstance(disk, int):
        status = "fail" if disk < _MIN_FREE_DISK else "warn" if disk < _LOW_FREE_DISK else "ok"
        checks.append(Check("free disk", status, f"{disk / 1e9:.1f} GB free in the home folder",
                            "" if status == "ok" else "free space on the device (models are cached under workdir)"))
    else:
        checks.append(Check("free disk", "info", "not reported"))
    mem = hello["memory_kb"]
    if mem.get("MemTotal"):
        avail = mem.get("MemAvailable")
        low = avail is not None and avail < _LOW_MEMORY_KB
        checks.append(Check("memory", "warn" if low else "ok",
                            f"{(avail or 0) / 1048576:.1f} GiB available of {mem['MemTotal'] / 1048576:.1f} GiB",
                            "stop other programs on the device: a model that swaps measures the disk" if low else ""))
    else:
        checks.append(Check("memory", "info", "not reported (no /proc/meminfo)"))
    checks.append(usage_check(hello["usage_sources"]))
    gov = hello.get("cpu_governor")
    if gov is None:
        checks.append(Check("CPU governor", "info", "not exposed (no cpufreq: a VM, or a fixed clock)"))
    elif gov == "performance":
        checks.append(Check("CPU governor", "ok", gov))
    else:
        checks.append(Check("CPU governor", "warn", f"{gov}: clocks change under load, so latencies drift",
                            "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"))
    if hello.get("emulated"):
        checks.append(Check("emulation", "warn", str(hello["emulated"]),
                            "timings are the emulator's, not the board's: use the real device for numbers"))
    return checks


def usage_check(usage: dict[str, Any]) -> Check:
    """Which memory and CPU sources the device offers (the hello's ``usage_sources``, hilbench_agent.memory), with
    the remedy (psutil on the device) where it would add figures."""
    if not usage:
        return Check("memory/CPU sources", "info", "not reported (an agent older than the memory/CPU sources)")
    if usage.get("error"):
        return Check("memory/CPU sources", "warn", f"the agent could not tell: {usage['error']}")
    sources, missing = usage.get("sources") or {}, usage.get("missing") or {}
    psutil = f"psutil {usage['psutil']}" if usage.get("psutil") else f"no psutil ({usage.get('psutil_missing') or '?'})"
    detail = ", ".join(f"{k} from {v}" for k, v in sources.items()) or "none"
    if missing:
        detail += "; none for " + ", ".join(f"{k} ({v})" for k, v in missing.items())
    lacking = [k for k in ("rss", "peak", "cpu") if k not in sources]
    remedy = str(usage.get("remedy") or "")
    if lacking:
        return Check("memory/CPU sources", "warn", f"{psutil}: {detail}; runs will lack {', '.join(lacking)}",
                     remedy or "the device's OS offers no source hilbench reads for these")
    return Check("memory/CPU sources", "ok", f"{psutil}: {detail}" + (f" (optional: {remedy})" if remedy else ""))


def _platform_checks(shell: Shell) -> list[Check]:
    """Jetson power mode and Raspberry Pi throttling, where those tools exist."""
    checks: list[Check] = []
    with contextlib.suppress(HilbenchError):
        code, out = shell("command -v nvpmodel >/dev/null 2>&1 && nvpmodel -q 2>/dev/null")
        if code == 0 and out.strip():
            mode = " ".join(line.strip() for line in out.strip().splitlines() if line.strip())
            checks.append(Check("Jetson power mode", "info", mode,
                                "for the highest clocks: sudo nvpmodel -m 0 && sudo jetson_clocks (record which mode "
                                "you measure in)"))
        code, out = shell("command -v tegrastats >/dev/null 2>&1 && timeout 2 tegrastats --interval 500 "
                          "2>/dev/null | head -n 1")
        if code == 0 and out.strip():
            checks.append(Check("Jetson state", "info", out.strip().splitlines()[0][:160]))
    with contextlib.suppress(HilbenchError):
        code, out = shell("command -v vcgencmd >/dev/null 2>&1 && vcgencmd get_throttled 2>/dev/null")
        if code == 0 and "throttled=" in out:
            checks.append(throttle_check(out))
    return checks


def throttle_check(text: str) -> Check:
    """A Raspberry Pi's ``vcgencmd get_throttled`` answer as a check."""
    try:
        value = int(text.strip().split("=", 1)[1], 16)
    except (IndexError, ValueError):
        return Check("throttling", "info", text.strip()[:80])
    now = [name for bit, name in _THROTTLE_BITS.items() if value & bit]
    past = [name for bit, name in _THROTTLE_BITS.items() if value & (bit << 16)]
    if now:
        return Check("throttling", "fail", f"now: {', '.join(now)} ({hex(value)})",
                     "use the official power supply and a heatsink/fan; let the board cool before measuring")
    if past:
        return Check("throttling", "warn", f"since boot: {', '.join(past)} ({hex(value)})",
                     "check the power supply and cooling; reboot to clear the flags")
    return Check("throttling", "ok", f"none ({hex(value)})")


#: transport name -> the checks ``hilbench doctor`` runs for a target of that transport (one per name a
#: target file may give, :data:`harness.config.targets.TRANSPORTS`; tests/test_registry.py checks it)
DOCTORS: dict[str, Callable[[Target], list[Check]]] = {"local": _doctor_local, "ssh": _doctor_ssh,
                                                       "adb": doctor_android,
                                                       "labgrid": lambda t: doctor_labgrid(t, _doctor_ssh)}
