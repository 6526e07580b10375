"""Targets: the devices a plan runs on, described as data in ``targets/*.toml``.

A target file names a transport (``local``, ``ssh`` or ``adb``) and its address,
the device's Python, the runtimes it has, tags, and the facts a buyer compares
(SoC, accelerator, TOPS, price). See docs/reference.md for every key.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilbench_agent.backends import BACKENDS, canonical_name

from harness.config.toml import TableReader, load_toml
from harness.errors import ConfigError

__all__ = ["Target", "SSHSettings", "ADBSettings", "LabgridSettings", "load_target", "load_targets", "LOCAL", "parse_target_spec",
           "BATTERY_CURRENT_UNITS", "BATTERY_CURRENT_SIGNS", "ENV_KEY", "shell_env"]

TRANSPORTS = ("local", "ssh", "adb", "labgrid")
#: What a target's ``env`` key must be: a shell variable name (it is written unquoted into device shell commands).
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FACT_KEYS: dict[str, tuple[type, ...]] = {
    "vendor": (str,),
    "model": (str,),
    "soc": (str,),
    "cpu": (str,),
    "gpu": (str,),
    "accelerator": (str,),
    "tops": (int, float),
    "memory_gb": (int, float),
    "price_usd": (int, float),
    "tdp_w": (int, float),
    "os": (str,),
    "notes": (str,),
}


@dataclass(frozen=True)
class SSHSettings:
    """How to reach an SSH target. Host keys are verified against known_hosts
    unless ``accept_new_host_keys`` is set (trust on first use, off by default)."""

    identity_file: str | None = None
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    connect_timeout_s: float = 15.0
    command_timeout_s: float = 60.0
    keepalive_s: float = 15.0
    proxy_jump: str | None = None
    password_env: str | None = None
    use_ssh_config: bool = True


#: ``[adb] battery_current_unit``: the unit of the phone's ``CURRENT_NOW`` (``auto``: told from its size).
BATTERY_CURRENT_UNITS = ("auto", "uA", "mA")
#: ``[adb] battery_current_sign``: which sign ``CURRENT_NOW`` has while the phone runs on battery.
BATTERY_CURRENT_SIGNS = ("auto", "discharge-negative", "discharge-positive")


@dataclass(frozen=True)
class ADBSettings:
    """How to reach an Android phone and what runs there (docs/android.md).

    ``benchmark_model`` / ``onnxruntime_perf_test`` and ``libraries`` are host paths
    (relative to the target file), pushed by content into one folder on the phone,
    which is the runners' ``LD_LIBRARY_PATH``. ``battery_current_unit`` and
    ``battery_current_sign`` calibrate the battery current where the phone breaks the
    kernel's convention (µA, negative while discharging)."""

    serial: str | None = None
    adb_path: str = "adb"
    benchmark_model: str | None = None
    onnxruntime_perf_test: str | None = None
    big_cores: tuple[int, ...] = ()
    libraries: tuple[str, ...] = ()
    battery_current_unit: str = "auto"
    battery_current_sign: str = "auto"


#: A labgrid tag key, as labgrid's coordinator checks it (labgrid.remote.common.TAG_KEY).
LAB_TAG_KEY = re.compile(r"[a-z][a-z0-9_]+")


@dataclass(frozen=True)
class LabgridSettings:
    """A target that is a labgrid place (docs/lab.md): reserved through ``coordinator`` (None: ``$LG_COORDINATOR``
    when the run starts) by the tags in ``reserve`` or by the place's ``place`` name, reached over SSH at what its
    ``resource`` (a NetworkService, by class or resource name) says, waiting at most ``wait_s`` for it."""

    coordinator: str | None = None
    reserve: tuple[tuple[str, str], ...] = ()
    place: str | None = None
    resource: str = "NetworkService"
    wait_s: float = 600.0

    def filters(self) -> dict[str, str]:
        """The reservation's filter: the tags, or the place's name (labgrid's scheduler matches ``name``)."""
        return {"name": self.place} if self.place else dict(self.reserve)

    def wanted(self) -> str:
        """What is asked for, in words: ``place rpi5-1`` or ``a place tagged board=rpi5``."""
        if self.place:
            return f"place {self.place}"
        return "a place tagged " + " ".join(f"{k}={v}" for k, v in self.reserve)


@dataclass(frozen=True)
class Target:
    """One device. ``facts`` holds what a buyer compares; ``tags`` select targets."""

    name: str
    transport: str = "local"
    host: str | None = None
    user: str | None = None
    port: int | None = None
    python: str = ""
    workdir: str = "~/.cache/hilbench"
    description: str = ""
    runtimes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
    ssh: SSHSettings = field(default_factory=SSHSettings)
    adb: ADBSettings = field(default_factory=ADBSettings)
    source: str = "built-in"
    #: set for a labgrid place (transport ``labgrid``): host, port and user come from the place's resource
    labgrid: LabgridSettings | None = None
    #: ``[runners]``: vendor benchmark binaries on the device (runner -> its path there) that run this target's
    #: jobs of their backend in the agent's place (harness/transport/shell_runner.py; docs/runners.md)
    runners: dict[str, str] = field(default_factory=dict)

    def public_dict(self) -> dict[str, Any]:
        """What is stored with every run: no secrets (only the *name* of a password variable)."""
        return {
            "name": self.name,
            "transport": self.transport,
            "host": self.host,
            "user": self.user,
            "port": self.port,
            "python": self.python,
            "description": self.description,
            "tags": list(self.tags),
            "facts": dict(self.facts),
            "source": self.source,
            **({"labgrid": {"coordinator": self.labgrid.coordinator, "reserve": dict(self.labgrid.reserve),
                            "place": self.labgrid.place, "resource": self.labgrid.resource}}
               if self.labgrid else {}),
        }


#: The built-in default: this machine, the agent as a subprocess. ``targets/local.toml`` says the same.
LOCAL = Target(
    name="local",
    transport="local",
    description="This machine: the agent runs as a subprocess of hilbench",
    tags=("local",),
)


def load_target(path: Path) -> Target:
    data = load_toml(path)
    r = TableReader(data, path)
    name = r.get("name", str, path.stem)
    labgrid = _labgrid_settings(r.table("labgrid")) if "labgrid" in r.data else None
    transport = r.get("transport", str, "labgrid" if labgrid else "local", choices=TRANSPORTS)
    if labgrid and transport not in ("labgrid", "ssh"):
        raise r.error("transport", f"a [labgrid] target is reached over SSH at its place's resource, not {transport}")
    if labgrid:
        transport = "labgrid"
        for key in ("address", "host", "port"):
            if key in r.data:
                raise r.error(key, "a [labgrid] target takes its host and port from the place's resource "
                                   "(labgrid.resource): remove it")
    elif transport == "labgrid":
        raise r.error("labgrid", "transport = \"labgrid\" needs a [labgrid] table (coordinator, reserve or place)")
    address = r.get("address", str, None)
    host = r.get("host", str, None)
    user = r.get("user", str, None)
    port = r.get("port", int, None)
    if address:
        if host:
            raise r.error("address", "give either address or host, not both")
        user_a, host, port_a = _split_address(address, r)
        user = user or user_a
        port = port or port_a
    if transport == "ssh" and not host:
        raise r.error("host", "an ssh target needs host (or address = \"user@host:port\")")
    if host and not address and host_problem(host):
        raise r.error("host", str(host_problem(host)))
    if user and user_problem(user):
        raise r.error("user", str(user_problem(user)))
    if port is not None and not 0 < port < 65536:
        raise r.error("port", f"must be 1-65535, not {port}")
    facts_r = r.table("facts")
    facts = {key: facts_r.get(key, types, None) for key, types in _FACT_KEYS.items()}
    facts_r.done()
    tel_r = r.table("telemetry")
    telemetry = {
        "enabled": tel_r.get("enabled", bool, True),
        # None: the plan's policy.telemetry_rate_hz decides (default 10 Hz).
        "rate_hz": _opt_float(tel_r.number("rate_hz", None, above=0, most=1000, unit="Hz")),
        "meter_command": tel_r.str_list("meter_command", None),
        "board_rail": tel_r.get("board_rail", str, None),
    }
    tel_r.done()
    ssh_r = r.table("ssh")
    ssh = SSHSettings(
        identity_file=ssh_r.get("identity_file", str, None),
        known_hosts=ssh_r.get("known_hosts", str, None),
        accept_new_host_keys=ssh_r.get("accept_new_host_keys", bool, False),
        connect_timeout_s=float(ssh_r.number("connect_timeout_s", 15.0, above=0, most=3600, unit="s")),
        command_timeout_s=float(ssh_r.number("command_timeout_s", 60.0, above=0, most=86400, unit="s")),
        keepalive_s=float(ssh_r.number("keepalive_s", 15.0, least=0, most=3600, unit="s")),  # 0: no keepalive
        proxy_jump=ssh_r.get("proxy_jump", str, None),
        password_env=ssh_r.get("password_env", str, None),
        use_ssh_config=ssh_r.get("use_ssh_config", bool, True),
    )
    for forbidden in ("password", "passphrase"):
        if forbidden in ssh_r.data:
            raise ssh_r.error(forbidden, "passwords do not belong in target files: set password_env to the name of an environment variable")
    ssh_r.done()
    adb = _adb_settings(r.table("adb"))
    runners = _runner_settings(r.table("runners"), transport)
    env = r.get("env", dict, {})
    for key, value in env.items():
        if not ENV_KEY.fullmatch(key):
            raise r.error("env", f"key {key!r} is not a shell variable name (letters, digits and _, not starting "
                                 "with a digit)")
        if not isinstance(value, str):
            raise r.error(f"env.{key}", "expected a string")
    python = r.get("python", str, "")
    if transport == "adb" and python.startswith(("/data/data/", "/data/user/")):
        # adb's shell user cannot enter an app's private folder (Termux lives in one) on a phone that is not rooted.
        raise r.error("python", f"{python} is inside an app's private folder, which `adb shell` cannot enter: "
                                "reach Termux over SSH instead (transport = \"ssh\", port 8022; docs/android.md)")
    target = Target(
        name=name,
        transport=transport,
        host=host,
        user=user,
        port=port,
        python=python,
        workdir=r.get("workdir", str, "~/.cache/hilbench"),
        description=r.get("description", str, ""),
        runtimes=_runtimes(r),
        tags=tuple(r.str_list("tags", [])),
        env=dict(env),
        facts={k: v for k, v in facts.items() if v is not None},
        telemetry=telemetry,
        ssh=ssh,
        adb=adb,
        source=str(path),
        labgrid=labgrid,
        runners=runners,
    )
    r.done()
    return target


def _labgrid_settings(t: TableReader) -> LabgridSettings:
    """The ``[labgrid]`` table: ``coordinator``, ``reserve`` (tags) or ``place``, ``resource``, ``wait_s``."""
    coordinator = t.get("coordinator", str, None)
    if coordinator is not None and not re.fullmatch(r"[A-Za-z0-9_.:\[\]-]+", coordinator):
        raise t.error("coordinator", f"{coordinator!r} is not HOST[:PORT]")
    place = t.get("place", str, None)
    reserve = t.get("reserve", dict, None)
    if (place is None) == (reserve is None):
        raise t.error("reserve", "give either reserve = { TAG = \"VALUE\", ... } or place = \"NAME\" (one of them)")
    tags: list[tuple[str, str]] = []
    for key, value in (reserve or {}).items():
        if not LAB_TAG_KEY.fullmatch(key):
            raise t.error(f"reserve.{key}", "a labgrid tag is lower-case letters, digits and _ (at least two, "
                                            "starting with a letter)")
        if not isinstance(value, str) or not value or any(c.isspace() or c == "=" for c in value):
            raise t.error(f"reserve.{key}", f"expected a tag value (a string without spaces or '='), got {value!r}")
        tags.append((key, value))
    if reserve is not None and not tags:
        raise t.error("reserve", "name at least one tag")
    if place is not None and not re.fullmatch(r"[A-Za-z0-9_.:+-]+", place):
        raise t.error("place", f"{place!r} is not a labgrid place name")
    resource = t.get("resource", str, "NetworkService")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", resource):
        raise t.error("resource", f"{resource!r} is not a resource class or name")
    settings = LabgridSettings(coordinator=coordinator, reserve=tuple(sorted(tags)), place=place, resource=resource,
                               wait_s=float(t.number("wait_s", 600.0, least=0, most=7 * 86400, unit="s")))
    t.done()
    return settings


def shell_env(env: dict[str, str]) -> str:
    """``env`` as ``K='v' K2='v2'`` for a device shell command: values quoted, keys checked (a key that is
    not a shell variable name raises ValueError, even for a Target built without :func:`load_target`)."""
    for key in env:
        if not isinstance(key, str) or not ENV_KEY.fullmatch(key):
            raise ValueError(f"env key {key!r} is not a shell variable name")
    return " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())


def _runtimes(r: TableReader) -> tuple[str, ...]:
    """The target's ``runtimes``, each a backend's name (aliases such as ``tflite`` read as their backend)."""
    names = tuple(canonical_name(n) for n in r.str_list("runtimes", []))
    for name in names:
        if name not in BACKENDS:
            raise r.error("runtimes", f"unknown runtime {name!r} (known: {', '.join(sorted(BACKENDS))})")
    return names


#: ``[runners]`` keys: the vendor runner, the backend whose jobs it runs, and its default path on the device (None:
#: the path must be given). trtexec ships with every JetPack at /usr/src/tensorrt/bin/trtexec.
RUNNER_BACKENDS: dict[str, tuple[str, str | None]] = {
    "trtexec": ("tensorrt", "/usr/src/tensorrt/bin/trtexec"),
    "benchmark_model": ("litert", None),
    "onnxruntime_perf_test": ("onnxruntime", None),
}


def _runner_settings(t: TableReader, transport: str) -> dict[str, str]:
    """``[runners]``: runner -> its path on the device (``true``: the runner's default path)."""
    out: dict[str, str] = {}
    for name in list(t.data):
        if name not in RUNNER_BACKENDS:
            raise t.error(name, f"unknown runner (known: {', '.join(RUNNER_BACKENDS)})")
        value = t.get(name, (str, bool), None)
        default = RUNNER_BACKENDS[name][1]
        if value is True and default:
            out[name] = default
        elif isinstance(value, str) and value.strip() and "\n" not in value and "\x00" not in value:
            out[name] = value
        elif value is not False:
            raise t.error(name, "expected the runner's path on the device" + (" or true (its default path)"
                                                                             if default else ""))
    t.done()
    if out and transport not in ("ssh", "local", "labgrid"):
        raise t.error(next(iter(out)), "[runners] is for ssh, labgrid and local targets (an Android phone names its runners "
                                       "under [adb]: docs/android.md)")
    return out


def _adb_settings(a: TableReader) -> ADBSettings:
    cores = a.get("big_cores", list, [])
    for c in cores:
        if not isinstance(c, int) or isinstance(c, bool) or c < 0:
            raise a.error("big_cores", f"expected CPU numbers (integers >= 0), got {c!r}")
    settings = ADBSettings(
        serial=a.get("serial", str, None),
        adb_path=a.get("adb_path", str, "adb"),
        benchmark_model=a.get("benchmark_model", str, None),
        onnxruntime_perf_test=a.get("onnxruntime_perf_test", str, None),
        big_cores=tuple(cores),
        libraries=tuple(a.str_list("libraries", [])),
        battery_current_unit=a.get("battery_current_unit", str, "auto", choices=BATTERY_CURRENT_UNITS),
        battery_current_sign=a.get("battery_current_sign", str, "auto", choices=BATTERY_CURRENT_SIGNS),
    )
    a.done()
    return settings


def _opt_float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


#: A host name, an IPv4 address or an ~/.ssh/config alias: letters, digits, ``.``, ``_``, ``-``, not starting
#: with ``-`` (an IPv6 address is checked by :mod:`ipaddress`).
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*", re.ASCII)
#: A user name: no whitespace, control characters, ``/`` or ``:``, not starting with ``-``.
_USER_NAME = re.compile(r"[^\s/:\x00-\x1f\x7f-\x9f-][^\s/:\x00-\x1f\x7f-\x9f]*")


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name, IP address or ssh alias (one line, no ``: ``); None when it is one."""
    if _HOST_NAME.fullmatch(host) or _ipv6(host):
        return None
    return f"host {host!r} is not a host name or address (letters, digits, '.', '_', '-'; IPv6 in [brackets])"


def user_problem(user: str) -> str | None:
    """Why ``user`` is not a login name (whitespace, control characters, '/', ':'); None when it is one."""
    if _USER_NAME.fullmatch(user):
        return None
    return f"user {user!r} is not a user name (no spaces, control characters, '/' or ':', not starting with '-')"


def _split_address(address: str, r: TableReader) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` or ``[user@][IPv6][:port]``, each part checked."""
    user = None
    rest = address
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if user and user_problem(user):
            raise r.error("address", str(user_problem(user)))
    port = None
    if rest.startswith("["):  # [ipv6]:port
        host, closed, tail = rest[1:].partition("]")
        if not closed:
            raise r.error("address", f"no closing ']' after the IPv6 address in {address!r}")
        if not _ipv6(host):
            raise r.error("address", f"{host!r} in brackets is not an IPv6 address")
        if tail.startswith(":"):
            port = _port(tail[1:], r)
        elif tail:
            raise r.error("address", f"unexpected {tail!r} after ']' in {address!r}")
    elif rest.count(":") == 1:
        host, _, p = rest.partition(":")
        port = _port(p, r)
    else:
        host = rest
    if not host:
        raise r.error("address", f"no host in {address!r}")
    problem = host_problem(host)
    if problem:
        raise r.error("address", problem)
    return user or None, host, port


def _port(text: str, r: TableReader) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise r.error("address", f"port {text!r} is not a number")
    return int(text)


def parse_target_spec(spec: str, identity: str | None = None, known_hosts: str | None = None,
                      accept_new_host_keys: bool = False) -> Target:
    """A target named inline: ``local`` or ``ssh://user@host[:port]`` (the port 1-65535)."""
    if spec == "local":
        return LOCAL
    if spec.startswith("ssh://"):
        address = spec[6:].rstrip("/")
        r = TableReader({"address": address}, "--target")
        try:
            user, host, port = _split_address(address, r)
        except ConfigError as exc:
            why = str(exc).removeprefix(f"{r.where('address')}: ")
            raise ConfigError(f"--target {spec}: {why} (expected ssh://user@host[:port])") from None
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"--target {spec}: port must be 1-65535, not {port}")
        return Target(
            name=address,
            transport="ssh",
            host=host,
            user=user,
            port=port,
            ssh=SSHSettings(identity_file=identity, known_hosts=known_hosts,
                            accept_new_host_keys=accept_new_host_keys),
            source="--target",
        )
    raise ConfigError(f"--target {spec}: not a target name, 'local' or ssh://user@host[:port]")


def load_targets(dirs: list[Path], errors: list[ConfigError] | None = None) -> dict[str, Target]:
    """The built-in ``local`` plus every ``*.toml`` in ``dirs``; names must be unique. The first bad file
    raises its ConfigError, or, with ``errors``, every bad file's error is appended there and the
    valid targets are returned."""
    found: dict[str, Target] = {"local": LOCAL}
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                target = load_target(path)
                if target.name in found and found[target.name].source != "built-in":
                    raise ConfigError(f"{path}: name: target {target.name!r} is also defined in "
                                      f"{found[target.name].source}")
            except ConfigError as exc:
                if errors is None:
                    raise
                errors.append(exc)
                continue
            found[target.name] = target
    return found
