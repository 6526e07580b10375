"""The SSH transport: a Jetson, Raspberry Pi, Coral board or Mac reached over SSH (paramiko).

How a target is reached (the way ``ssh`` would): the target's host, user, port and
``[ssh]`` settings first, then ``~/.ssh/config`` (``Host`` aliases, ``HostName``,
``User``, ``Port``, ``IdentityFile``, ``ProxyJump``, ``UserKnownHostsFile``),
then defaults. Authentication tries the identity files named, else the usual
``~/.ssh/id_*`` keys, and the ssh-agent; a password only ever comes from the
environment variable the target names in ``password_env``.

Host keys are verified against ``~/.ssh/known_hosts`` and the target's
``known_hosts`` file. An unknown or changed key is refused with a
:class:`~harness.errors.HostKeyError` that says how to trust it; with
``accept_new_host_keys = true`` an *unknown* key is written to the known_hosts
file (trust on first use) while a *changed* one is still refused.

Device layout, under the target's ``workdir`` (default ``~/.cache/hilbench``)::

    agents/<sha256>.pyz        the agent zipapp, by content
    blobs/<sha256><suffix>     models, evaluation sets and input files, by content
    journal/<run_id>.jsonl     every protocol line an agent wrote (recovery after a drop)
    journal/<run_id>.pid       "<session pid> <agent pid>" while that agent runs
    probe/doctor-<id>.jsonl    the session's device probe (harness.doctor.checks.device_facts)

A file is uploaded over SFTP to a temporary name, its sha256 computed *on the
device* by the device's Python, and only then renamed to its cache name: a run
never uses a half-copied or corrupted file, and a file already there with the
right hash is never sent again (what was verified is remembered per connection).

Faults: every paramiko and socket exception becomes a
:class:`~harness.errors.TransportError` naming the target and the step.
:meth:`SSHTransport.reconnect`, :meth:`SSHTransport.agent_alive` and
:meth:`SSHTransport.kill_agent` let the session recover a job whose connection
dropped (the agent keeps running and journaling on the device).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import getpass
import hashlib
import io
import json
import locale
import logging
import os
import select
import shlex
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import paramiko

from harness.agent.bundle import MIN_PYTHON, agent_bundle
from harness.config.targets import Target, shell_env
from harness.errors import ConfigError, HilbenchError, HostKeyError, TransportError
from harness.files import read_utf8, utf8_problem
from harness.transport import base as _base
from harness.transport.base import AgentProcess, PipeAgentProcess, Transport

__all__ = ["SSHTransport", "SSHAgentProcess", "Endpoint", "resolve_endpoint", "USER_SSH_DIR", "SetupError",
           "identity_problem", "known_hosts_problem"]

# paramiko logs a failed handshake as an ERROR with a traceback ("Exception (client): Error reading SSH
# protocol banner"); with no handler of its own, Python's last-resort handler prints that on stderr.
# Its failures reach the user as our one-line errors instead; the CLI's --debug shows its log.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

#: The user's OpenSSH folder (config, known_hosts, default keys). Tests point it elsewhere.
USER_SSH_DIR = "~/.ssh"

#: Disk kept free on the device beyond what an upload needs.
DISK_MARGIN_BYTES = 16 * 1024 * 1024

_CHUNK = 256 * 1024

#: How long a port may stay silent before hilbench asks it, on a second connection, what it speaks: an SSH
#: server greets at once; an HTTP server waits for a request, and answers an SSH greeting with an HTTP error.
GREETING_GRACE_S = 2.0
#: The identification line sent on that second connection (RFC 4253, 4.2).
_PROBE_GREETING = b"SSH-2.0-hilbench_probe\r\n"


class SetupError(TransportError):
    """A connection that retrying cannot help: a file on this side (identity, known_hosts, ~/.ssh/config) that
    cannot be used, or a port where no SSH server listens. Neither the first connection nor a reconnect
    retries it."""


def identity_problem(path: str) -> str | None:
    """Why the private key file ``path`` cannot log in, as the end of a sentence (``is a public key: give the
    private key /k``); None when paramiko reads it as a private key (an encrypted one too: ssh-agent may hold it,
    and login says what to do otherwise). A ``-cert.pub`` certificate names its key without the suffix."""
    key_path = path[: -len("-cert.pub")] if path.endswith("-cert.pub") else path
    p = Path(key_path)
    if not p.exists():
        return "not found"
    if p.is_dir():
        return "is a folder, not a key file"
    try:
        with p.open("rb") as f:
            f.read(1)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        paramiko.PKey.from_path(key_path)
        return None
    except (paramiko.PasswordRequiredException, TypeError):  # encrypted (cryptography says so with a TypeError)
        return None
    except Exception:  # noqa: BLE001 - the key classes below may still read it, as SSHClient.connect would
        pass
    for klass in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            klass.from_private_key_file(key_path)
            return None
        except paramiko.PasswordRequiredException:
            return None
        except Exception:  # noqa: BLE001 - not this kind of key
            continue
    try:
        paramiko.PublicBlob.from_file(key_path)
    except Exception:  # noqa: BLE001 - not a public key either
        return "is not a private key (an OpenSSH or PEM Ed25519, ECDSA or RSA key)"
    private = key_path[: -len(".pub")] if key_path.endswith(".pub") else ""
    if private and os.path.isfile(private):
        return f"is a public key: give the private key {private}"
    return "is a public key: give the private key (the file without .pub)"


def known_hosts_problem(path: str) -> str | None:
    """Why the known_hosts file ``path`` cannot be read (``is not UTF-8 text (byte 0xe9 on line 3)``), as the end
    of a sentence; None when paramiko reads it (a missing file is not a problem: nothing is known yet)."""
    if not os.path.exists(path):
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    # paramiko opens it as text in the locale's encoding (UTF-8 here, and in Python's UTF-8 mode)
    encoding = codecs.lookup(locale.getpreferredencoding(False)).name
    problem = utf8_problem(data, encoding)
    if problem:
        return (f"is {problem}: paramiko reads known_hosts as {'UTF-8' if encoding == 'utf-8' else encoding}; "
                "remove or re-encode that line (an accented comment is enough)")
    try:
        paramiko.HostKeys(path)
    except (OSError, ValueError, paramiko.SSHException) as exc:
        return f"cannot be read ({exc})"
    return None

#: The most a helper command (:meth:`SSHTransport.run`) may send back, stdout and stderr together: a device that
#: sends more is cut off with a one-line error, so host memory stays bounded whatever it does.
COMMAND_OUTPUT_MAX = 16 * 1024 * 1024
#: The largest journal read back for recovery (a long job's samples and telemetry are a few MB).
JOURNAL_MAX = _base.JOURNAL_MAX

# Device-side snippets run with the device's Python; they must run on Python 2.7 and 3.x
# (the version check runs before anything is known about the interpreter).
_PY_VERSION = (
    "import os, sys; sys.stdout.write('%d.%d.%d\\n%s\\n' % (sys.version_info[0], sys.version_info[1], "
    "sys.version_info[2], os.path.expanduser('~')))"
)

_PY_HASHES = """
import hashlib, json, os, sys
req = json.loads(sys.stdin.readline())
out = {}
for p in req["paths"]:
    try:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[p] = h.hexdigest()
    except (IOError, OSError):
        pass
free = None
for i, d in enumerate(req["dirs"]):
    try:
        os.makedirs(d, 0o700)
    except OSError:
        pass
    if i:  # hilbench's own folders (agents, blobs, journal): private to the user; the workdir 0700 when new
        try:
            os.chmod(d, 0o700)
        except OSError:
            pass
try:
    st = os.statvfs(req["dirs"][0])
    free = st.f_bavail * st.f_frsize
except (OSError, AttributeError, IndexError):
    pass
sys.stdout.write(json.dumps({"sha256": out, "free": free}) + "\\n")
"""

_PY_COMMIT = """
import hashlib, os, sys
tmp, final, want = sys.argv[1:4]
h = hashlib.sha256()
try:
    with open(tmp, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    got = h.hexdigest()
except (IOError, OSError):
    got = "missing"
if got == want:
    os.chmod(tmp, 0o644)
    os.rename(tmp, final)
else:
    try:
        os.remove(tmp)
    except OSError:
        pass
sys.stdout.write(got + "\\n")
"""

# Reads the pid file the agent's wrapper writes; "alive" or "gone", and with "kill" kills the
# wrapper's whole process group (the agent, its children, the wrapper) with SIGKILL.
_PY_AGENT = """
import os, signal, sys
pidfile, action = sys.argv[1:3]
try:
    with open(pidfile) as f:
        shell_pid, agent_pid = [int(x) for x in f.read().split()[:2]]
except (IOError, OSError, ValueError):
    sys.stdout.write("gone\\n"); sys.exit(0)
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError as exc:
        return exc.errno == 1
state = "alive" if alive(agent_pid) else "gone"
if action == "kill":
    try:
        pgid = os.getpgid(agent_pid)
    except OSError:
        pgid = None
    if pgid is not None and pgid != os.getpgid(0):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for pid in (agent_pid, shell_pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.remove(pidfile)
    except OSError:
        pass
sys.stdout.write(state + "\\n")
"""


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _brief(command: str, limit: int = 60) -> str:
    """A device command for a message: what runs (``python3 -c ...`` without its code), on one line."""
    one = " ".join(command.split(" -c ")[0].split())
    return one if len(one) <= limit else one[:limit - 3] + "..."


def _hostspec(host: str, port: int) -> str:
    """How known_hosts names ``host`` at ``port``."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to log in, after ``~/.ssh/config`` is applied."""

    alias: str
    host: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    proxy_jump: str | None
    known_hosts_files: tuple[str, ...]


def _ssh_dir() -> Path:
    return Path(os.path.expanduser(USER_SSH_DIR))


def resolve_endpoint(alias: str, *, user: str | None = None, port: int | None = None,
                     identity_file: str | None = None, proxy_jump: str | None = None,
                     known_hosts: str | None = None, use_ssh_config: bool = True) -> Endpoint:
    """``alias`` as ``ssh`` would resolve it: explicit values first, then ``~/.ssh/config``, then defaults."""
    host = alias
    identities: list[str] = [identity_file] if identity_file else []
    files: list[str] = [known_hosts] if known_hosts else []
    config_path = _ssh_dir() / "config"
    if use_ssh_config and config_path.is_file():
        try:
            cfg = paramiko.SSHConfig.from_text(read_utf8(config_path)).lookup(alias)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SetupError(f"cannot read {config_path}: {why}", target=alias, step="ssh config") from exc
        host = cfg.get("hostname", alias)
        user = user or cfg.get("user")
        if port is None and cfg.get("port"):
            try:
                port = int(cfg["port"])
            except ValueError:
                raise SetupError(f"{config_path}: Port {cfg['port']!r} for {alias} is not a number",
                                 target=alias, step="ssh config") from None
        identities += [os.path.expanduser(p) for p in cfg.get("identityfile", []) if p]
        if not proxy_jump and cfg.get("proxyjump") and cfg["proxyjump"].lower() != "none":
            proxy_jump = cfg["proxyjump"]
        files += [os.path.expanduser(p) for p in str(cfg.get("userknownhostsfile", "")).split() if p]
    files.append(str(_ssh_dir() / "known_hosts"))
    return Endpoint(alias=alias, host=host, port=port or 22, user=user or getpass.getuser(),
                    identity_files=tuple(dict.fromkeys(os.path.expanduser(p) for p in identities)),
                    proxy_jump=proxy_jump, known_hosts_files=tuple(dict.fromkeys(os.path.expanduser(f) for f in files)))


class _Policy(paramiko.MissingHostKeyPolicy):
    """Unknown host key: refuse with the fix, or (accept_new) write it to the known_hosts file."""

    def __init__(self, target: str, endpoint: Endpoint, write_to: str, accept_new: bool, inline: bool = False) -> None:
        self.target = target
        self.endpoint = endpoint
        self.write_to = write_to
        self.accept_new = accept_new
        self.inline = inline

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.accept_new:
            try:
                path = Path(self.write_to)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="ascii") as f:
                    f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
                with contextlib.suppress(OSError):
                    path.chmod(0o600)
            except OSError as exc:
                raise HostKeyError(f"cannot record the new host key of {hostname} in {self.write_to}: "
                                   f"{exc.strerror or exc}", target=self.target, step="host key") from exc
            return
        ep = self.endpoint
        port = f"-p {ep.port} " if ep.port != 22 else ""
        raise HostKeyError(
            f"the host key of {hostname} ({key.get_name()} {_fingerprint(key)}) is unknown: check that fingerprint "
            f"on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then trust it with "
            f"`ssh-keyscan {port}{ep.host} >> {self.write_to}` or "
            + ("pass --accept-new-host-keys" if self.inline else "set accept_new_host_keys = true in the target's "
               "[ssh] table"), target=self.target, step="host key")


def _changed_key_error(target: str, endpoint: Endpoint, exc: paramiko.BadHostKeyException,
                       files: tuple[str, ...]) -> HostKeyError:
    spec = _hostspec(endpoint.host, endpoint.port)
    where = next((f for f in files if os.path.isfile(f)), files[0] if files else "~/.ssh/known_hosts")
    return HostKeyError(
        f"the host key of {spec} has CHANGED (now {exc.key.get_name()} {_fingerprint(exc.key)}, known_hosts has "
        f"{_fingerprint(exc.expected_key)}): someone may be intercepting the connection; if the device was "
        f"reinstalled, remove the old key with `ssh-keygen -R '{spec}' -f {where}` and trust the new one",
        target=target, step="host key")


class SSHAgentProcess(PipeAgentProcess):
    """The agent on the device, streaming over one SSH exec channel.

    The remote wrapper records the agent's pid, waits for it and exits with its
    status (a signal shows as 128 + n, read back as ``-n``)."""

    def __init__(self, transport: SSHTransport, channel: paramiko.Channel, pidfile: str) -> None:
        self.transport = transport
        self.channel = channel
        self.pidfile = pidfile
        self._killed = False
        self._ssh = channel.get_transport()
        super().__init__(channel.makefile("rb"), channel.makefile_stderr("rb"))

    def _status(self) -> int | None:
        """The wrapper's exit status once it arrived (paramiko keeps -1 for "none came")."""
        if self.channel.status_event.is_set() and self.channel.exit_status != -1:
            return int(self.channel.exit_status)
        return None

    @property
    def connection_lost(self) -> bool:
        """The connection dropped before the agent's exit status arrived (the agent may still run)."""
        if self._killed or self._status() is not None:
            return False
        return self._ssh is None or not self._ssh.is_active()

    def wait(self, timeout: float | None = None) -> int | None:
        """The agent's exit status (a signal as its negative number); -9 after :meth:`kill`; None while it
        runs at the timeout, or when the connection dropped or the session ended without a status."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._killed:
                return -9
            code = self._status()
            if code is not None:
                self.join_stderr()
                return -(code - 128) if 128 < code < 128 + 65 else code
            if self.channel.status_event.is_set() or self.connection_lost:
                return None  # closed without a status: dropped, or the session itself was killed
            if end is not None and time.monotonic() >= end:
                return None
            self.channel.status_event.wait(0.05)

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        if not self.channel.exit_status_ready():
            try:
                self.transport.kill_agent_pidfile(self.pidfile)
            except TransportError as exc:
                self.kill_failed = str(exc)
        with contextlib.suppress(Exception):
            self.channel.close()


def _where(target: Target, what: str) -> str:
    """Where the user named a target's identity or known_hosts file: the command line or the target file's key."""
    if target.source == "--target":
        return f"--{what.replace('_', '-')}"
    return f"{target.source}: ssh.{'identity_file' if what == 'identity' else what}:"


def _refused(exc: TransportError) -> bool:
    """A refused host key or login, a file here that cannot be used, a port where no SSH server listens:
    retrying cannot help (connecting and reconnecting give up at once)."""
    return isinstance(exc, (HostKeyError, SetupError)) or isinstance(exc.__cause__, paramiko.AuthenticationException)


class SSHTransport(Transport):
    """Reaches a device over SSH. See the module docstring for resolution, host keys and the cache."""

    name = "ssh"
    can_reconnect = True
    probes_device = True

    @classmethod
    def device_key(cls, target: Target) -> tuple[Any, ...]:
        """``("ssh", host, port)`` after ~/.ssh/config; the address as written while it cannot be resolved
        (connecting will say what is wrong)."""
        port = target.port
        host = target.host
        try:
            s = target.ssh
            ep = resolve_endpoint(target.host or "", user=target.user, port=target.port,
                                  identity_file=s.identity_file, proxy_jump=s.proxy_jump,
                                  known_hosts=s.known_hosts, use_ssh_config=s.use_ssh_config)
            host, port = ep.host, ep.port
        except HilbenchError:
            pass  # connecting will say what is wrong; until then the address as written identifies it
        return ("ssh", str(host).lower(), port or 22)

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        if not target.host:
            raise TransportError("an ssh target needs a host", target=target.name, step="connect")
        self.settings = target.ssh
        self.python = target.python or "python3"
        self.endpoint: Endpoint | None = None
        self.python_version: tuple[int, int, int] | None = None
        self.home: str | None = None
        self._client: paramiko.SSHClient | None = None
        self._jumps: list[paramiko.SSHClient] = []
        self._sftp: paramiko.SFTPClient | None = None
        self._known: dict[str, str] = {}  # device path -> sha256 verified on this connection
        self._lock = threading.Lock()
        self._upload_sent = 0

    @classmethod
    def preflight(cls, target: Target) -> None:
        """What this host can check before anything runs, each failure a ConfigError naming the file and where it
        was named: ~/.ssh/config readable, the identity file named (``ssh.identity_file`` / ``--identity``) a
        private key, every known_hosts file readable."""
        s = target.ssh
        try:
            ep = resolve_endpoint(target.host or "", user=target.user, port=target.port, identity_file=s.identity_file,
                                  proxy_jump=s.proxy_jump, known_hosts=s.known_hosts, use_ssh_config=s.use_ssh_config)
        except TransportError as exc:
            raise ConfigError(str(exc)) from exc
        if s.identity_file:
            path = os.path.expanduser(s.identity_file)
            problem = identity_problem(path)
            if problem:
                raise ConfigError(f"{_where(target, 'identity')} {path}: {problem}")
        named = os.path.expanduser(s.known_hosts) if s.known_hosts else None
        for path in ep.known_hosts_files:
            problem = known_hosts_problem(path)
            if problem:
                where = _where(target, "known_hosts") + " " if path == named else "known_hosts file "
                raise ConfigError(f"{where}{path}: {problem}")

    def _identity_where(self) -> str:
        return "fix --identity" if self.target.source == "--target" else f"fix ssh.identity_file in {self.target.source}"

    # ------------------------------------------------------------------ errors
    def _err(self, message: str, step: str, stderr_tail: str = "") -> TransportError:
        return TransportError(message, target=self.target.name, step=step, stderr_tail=stderr_tail)

    @contextlib.contextmanager
    def _translating(self, step: str, endpoint: Endpoint | None = None) -> Iterator[None]:
        """The one boundary between paramiko/sockets and hilbench: a TransportError passes through as it is,
        any other exception leaves as :meth:`_translate`'s one line, ``from`` the original."""
        try:
            yield
        except TransportError:
            raise
        except Exception as exc:  # noqa: BLE001 - translated
            raise self._translate(exc, step, endpoint) from exc

    def _translate(self, exc: BaseException, step: str, endpoint: Endpoint | None = None) -> TransportError:
        """A paramiko or socket exception as one line that says what to do."""
        ep = endpoint or self.endpoint
        where = f"{ep.host}:{ep.port}" if ep else str(self.target.host)
        timeout = self.settings.connect_timeout_s if step == "connect" else self.settings.command_timeout_s
        if isinstance(exc, TransportError):
            return exc
        if isinstance(exc, paramiko.PasswordRequiredException):
            return self._err(f"the private key is encrypted: add it to ssh-agent (`ssh-add {exc}`) or use a key "
                             "without a passphrase", step)
        if isinstance(exc, paramiko.AuthenticationException):
            user = ep.user if ep else "?"
            keys = ", ".join(ep.identity_files) if ep and ep.identity_files else "the default keys and ssh-agent"
            return self._err(f"login as {user} at {where} refused (tried {keys}): put the public key in the device's "
                             f"~{user}/.ssh/authorized_keys (`ssh-copy-id -i KEY.pub {user}@{ep.host if ep else ''}`) "
                             "or set ssh.identity_file / --identity", step)
        if isinstance(exc, TimeoutError):
            return self._err(f"no answer from {where} within {timeout:g} s: is the device on and reachable "
                             "(network, VPN, firewall)?", step)
        if isinstance(exc, ConnectionRefusedError):
            return self._err(f"connection refused at {where}: is sshd running on the device, and is the port right?",
                             step)
        if isinstance(exc, socket.gaierror):
            return self._err(f"unknown host {ep.host if ep else self.target.host!r}: check the name (or its ssh "
                             "config Host entry) and DNS", step)
        if isinstance(exc, paramiko.ChannelException):
            return self._err(f"the SSH server refused a channel ({exc.text or exc.code}); check sshd's MaxSessions "
                             "and AllowTcpForwarding (ProxyJump)", step)
        if isinstance(exc, (EOFError, ConnectionResetError, BrokenPipeError)):
            return self._err(f"the connection to {where} was closed by the device", step)
        if isinstance(exc, paramiko.SSHException):
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            if step.startswith("connect"):
                if "banner" in text.lower() or text == "No existing session":
                    text = f"no complete answer within {timeout:g} s"
                return self._err(f"the SSH handshake with {where} failed ({text}): is a working SSH server on that "
                                 "port? (`hilbench --debug` shows the SSH library's log)", step)
            return self._err(f"SSH error talking to {where}: {text}", step)
        if isinstance(exc, OSError):
            return self._err(f"network error with {where}: {exc.strerror or exc}", step)
        return self._err(f"{exc.__class__.__name__}: {exc}", step)

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Log in (within ``connect_timeout_s``), then check the device's Python (>= 3.7)."""
        self.login()
        self.check_python()

    def login(self) -> None:
        """Open the SSH connection: resolve, verify the host key, authenticate. No remote command."""
        self.close()
        s = self.settings
        assert self.target.host is not None
        endpoint = resolve_endpoint(self.target.host, user=self.target.user, port=self.target.port,
                                    identity_file=s.identity_file, proxy_jump=s.proxy_jump, known_hosts=s.known_hosts,
                                    use_ssh_config=s.use_ssh_config)
        self.endpoint = endpoint
        # ProxyJump a,b: this host -> a, a's tunnel -> b, b's tunnel -> the target. Each hop's host key is
        # verified under that hop's own name; only the target is offered the password_env password.
        hops: list[Endpoint] = []
        for hop in (endpoint.proxy_jump or "").split(","):
            hop = hop.strip()
            if not hop:
                continue
            user, _, rest = hop.rpartition("@")
            host, port = rest, None
            if rest.count(":") == 1:
                host, _, p = rest.partition(":")
                port = int(p) if p.isdigit() else None
            hops.append(resolve_endpoint(host, user=user or None, port=port, known_hosts=s.known_hosts,
                                         identity_file=s.identity_file, use_ssh_config=s.use_ssh_config))
        sock: Any = None
        for i, jump_ep in enumerate(hops):
            try:
                jump = self._open_client(jump_ep, sock, step="connect (ProxyJump)", password_ok=False)
            except TransportError:
                self.close()
                raise
            self._jumps.append(jump)
            transport = jump.get_transport()
            assert transport is not None
            nxt = hops[i + 1] if i + 1 < len(hops) else endpoint
            try:
                sock = transport.open_channel("direct-tcpip", (nxt.host, nxt.port), ("127.0.0.1", 0),
                                              timeout=s.connect_timeout_s)
            except Exception as exc:  # noqa: BLE001 - translated
                self.close()
                raise self._translate(exc, "connect (ProxyJump)", jump_ep) from exc
        try:
            self._client = self._open_client(endpoint, sock, step="connect")
        except TransportError:
            self.close()
            raise
        self._known.clear()

    def _open_client(self, ep: Endpoint, sock: Any, *, step: str, password_ok: bool = True) -> paramiko.SSHClient:
        s = self.settings
        named = os.path.expanduser(s.identity_file) if s.identity_file else None
        keys = []
        for key in ep.identity_files:
            problem = identity_problem(key)
            if problem and key == named:
                raise SetupError(f"identity file {key} {problem} ({self._identity_where()})", target=self.target.name,
                                 step=step)
            if not problem:
                keys.append(key)  # an IdentityFile of ~/.ssh/config that is missing or unreadable is skipped, as ssh does
        password = None
        if s.password_env and password_ok:
            password = os.environ.get(s.password_env)
            if password is None:
                raise self._err(f"the target takes its password from ${s.password_env}, which is not set: export it "
                                "(or use a key)", step)
        client = paramiko.SSHClient()
        for path in ep.known_hosts_files:
            if os.path.isfile(path):
                problem = known_hosts_problem(path)
                try:
                    if problem is None:
                        client.load_system_host_keys(path)
                except (OSError, ValueError, paramiko.SSHException) as exc:
                    problem = f"cannot be read ({exc})"
                if problem:
                    raise SetupError(f"known_hosts file {path} {problem}", target=self.target.name, step=step)
        write_to = os.path.expanduser(s.known_hosts) if s.known_hosts else ep.known_hosts_files[-1]
        client.set_missing_host_key_policy(_Policy(self.target.name, ep, write_to, s.accept_new_host_keys,
                                                  inline=self.target.source == "--target"))
        if sock is None:
            try:
                sock = socket.create_connection((ep.host, ep.port), timeout=s.connect_timeout_s)
            except Exception as exc:  # noqa: BLE001 - translated
                raise self._translate(exc, step, ep) from exc
            self._tune_socket(sock)
            try:
                self.greeting(sock, ep, step)
            except TransportError:
                with contextlib.suppress(OSError):
                    sock.close()
                raise
        try:
            client.connect(ep.host, ep.port, username=ep.user, password=password, key_filename=keys or None,
                           allow_agent=True, look_for_keys=not keys, timeout=s.connect_timeout_s,
                           banner_timeout=s.connect_timeout_s, auth_timeout=s.connect_timeout_s,
                           channel_timeout=s.connect_timeout_s, sock=sock)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise _changed_key_error(self.target.name, ep, exc, ep.known_hosts_files) from exc
        except HostKeyError:
            client.close()
            raise
        except Exception as exc:  # noqa: BLE001 - translated
            client.close()
            raise self._translate(exc, step, ep) from exc
        transport = client.get_transport()
        if transport is not None and s.keepalive_s > 0:
            transport.set_keepalive(max(1, int(s.keepalive_s)))
        return client

    def greeting(self, sock: socket.socket, ep: Endpoint, step: str) -> str:
        """The server's first line on ``sock``, read without consuming it (``connect_timeout_s``), so that a port
        where nothing speaks SSH is one clear error, not a handshake failing deep inside paramiko: "" for a server
        that speaks SSH only once spoken to. A port silent for :data:`GREETING_GRACE_S` is asked what it speaks on a
        second connection (an HTTP server waits for a request: it is told apart in seconds, not after the timeout)."""
        where = f"{ep.host}:{ep.port}"
        timeout = self.settings.connect_timeout_s
        start = time.monotonic()
        seen, state = self._peek_line(sock, start + min(GREETING_GRACE_S, timeout / 2), step, ep)
        if state == "silent":
            answer = self._ask_greeting(ep, step, start + timeout)
            if answer.startswith(b"SSH-"):
                return ""  # an SSH server that waits for the client's line: paramiko sends it
            if answer:
                first = answer.split(b"\n", 1)[0].decode("ascii", "replace").strip()
                raise SetupError(f"{where} is not an SSH server (it said nothing until spoken to, then answered "
                                 f"an SSH greeting with {first[:40]!r}): check the port", target=self.target.name,
                                 step=step)
            seen, state = self._peek_line(sock, start + timeout, step, ep)
        if state == "silent":
            raise self._err(f"no answer from {where} within {timeout:g} s: the port accepts connections but "
                            "nothing there speaks SSH (sshd hung or overloaded, or the wrong port?)", step)
        if not seen:
            raise self._err(f"{where} closed the connection without an SSH greeting: is sshd healthy there (its "
                            "MaxStartups, its log), and is the port right?", step)
        first = seen.split(b"\n", 1)[0].decode("ascii", "replace").strip()
        if not seen.startswith(b"SSH-"):
            raise SetupError(f"{where} is not an SSH server (it said {first[:40]!r}): check the port",
                             target=self.target.name, step=step)
        return first

    def _peek_line(self, sock: socket.socket, end: float, step: str, ep: Endpoint) -> tuple[bytes, str]:
        """What ``sock`` holds by ``end`` (monotonic), up to its first line, left unread; and ``"line"`` (a line or
        255 bytes), ``"closed"`` (the peer closed) or ``"silent"`` (no byte yet)."""
        seen = b""
        try:
            while b"\n" not in seen and len(seen) < 255:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError()
                sock.settimeout(left)
                data = sock.recv(256, socket.MSG_PEEK)
                if not data:
                    return seen, "closed"
                if data == seen:  # nothing new yet: wait a little for the rest of the line
                    time.sleep(0.01)
                seen = data
        except TimeoutError:
            return seen, "line" if seen else "silent"
        except OSError as exc:
            raise self._translate(exc, step, ep) from exc
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self.settings.connect_timeout_s)
        return seen, "line"

    def _ask_greeting(self, ep: Endpoint, step: str, end: float) -> bytes:
        """On a second connection, send an SSH identification line and return the first line answered by ``end``
        (b"" when none came or the server closed it)."""
        data = b""
        try:
            with socket.create_connection((ep.host, ep.port), timeout=max(0.1, end - time.monotonic())) as probe:
                probe.sendall(_PROBE_GREETING)
                while b"\n" not in data and len(data) < 255:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    probe.settimeout(left)
                    chunk = probe.recv(256)
                    if not chunk:
                        break
                    data += chunk
        except OSError:  # refused, reset or timed out: what arrived is the answer (the main socket is still read)
            pass
        return data

    def _tune_socket(self, sock: socket.socket) -> None:
        """No Nagle delay on small requests; notice a dead peer within about 3 keepalive intervals,
        not the kernel's 15 minutes."""
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ka = self.settings.keepalive_s
        if ka <= 0:
            return
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(ka)))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(ka)))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
            if hasattr(socket, "TCP_USER_TIMEOUT"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(ka * 3 * 1000))

    def check_python(self) -> tuple[int, int, int]:
        """The device Python's version (and the home folder); refuses one older than 3.7."""
        code, out, err = self.run(f"{shlex.quote(self.python)} -c {shlex.quote(_PY_VERSION)}", step="check python")
        lines = out.decode("utf-8", "replace").splitlines()
        if code != 0 or len(lines) < 2:
            detail = err.decode("utf-8", "replace").strip().splitlines()
            if code == 127 or any("not found" in d for d in detail):
                raise self._err(f"no {self.python} on the device: install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ "
                                "or set python = \"/path/to/python3\" in the target file", "check python")
            raise self._err(f"`{self.python}` on the device failed (status {code}): "
                            f"{detail[-1] if detail else 'no message'}", "check python")
        try:
            version = tuple(int(x) for x in lines[0].split("."))
        except ValueError:
            raise self._err(f"cannot read the version of {self.python} on the device: {lines[0]!r}",
                            "check python") from None
        found = ((*version, 0, 0, 0)[0], (*version, 0, 0, 0)[1], (*version, 0, 0, 0)[2])
        self.python_version = found
        self.home = lines[1].strip() or None
        if found[:2] < MIN_PYTHON:
            raise self._err(f"the device's Python {lines[0]} ({self.python}) is too old: hilbench's agent needs "
                            f"Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; install one and set python in the "
                            "target file", "check python")
        return found

    @property
    def is_alive(self) -> bool:
        """The connection is up (as far as this side knows)."""
        t = self._client.get_transport() if self._client else None
        return bool(t and t.is_active())

    def reconnect(self, *, stop: threading.Event | None = None, attempts: int | None = None,
                  first_delay_s: float | None = None) -> None:
        """Log in again after a drop, with backoff; raises the last TransportError when the device stays away.
        Host key and login refusals are not retried. A set ``stop`` (Ctrl-C) ends the waiting at once."""
        self._connect_with_backoff(stop=stop, attempts=attempts, first_delay_s=first_delay_s, final=_refused)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._sftp is not None:
                self._sftp.close()
        self._sftp = None
        for client in [self._client, *reversed(self._jumps)]:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._client = None
        self._jumps = []

    # ------------------------------------------------------------------ commands
    def _transport(self, step: str) -> paramiko.Transport:
        t = self._client.get_transport() if self._client else None
        if t is None or not t.is_active():
            raise self._err("not connected (the connection dropped)", step)
        return t

    def run_shell(self, command: str, timeout: float = 20.0, *, step: str = "doctor") -> tuple[int, str]:
        code, out, _err = self.run("sh -c " + shlex.quote(command), step=step, timeout=timeout)
        return code, out.decode("utf-8", "replace")

    def open_channel(self, step: str) -> paramiko.Channel:
        with self._translating(step):
            return self._transport(step).open_session(timeout=self.settings.connect_timeout_s)

    def run(self, command: str, *, step: str, timeout: float | None = None,
            stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run ``command`` on the device; (exit status, stdout, stderr). Bounded by ``command_timeout_s``, and
        by :data:`COMMAND_OUTPUT_MAX` bytes of output (more is a one-line error: the channel is closed)."""
        timeout = self.settings.command_timeout_s if timeout is None else timeout
        chan = self.open_channel(step)
        try:
            with self._translating(step):
                try:
                    chan.settimeout(timeout)
                    chan.exec_command(command)
                    if stdin is not None:
                        chan.sendall(stdin)
                    chan.shutdown_write()
                    end = time.monotonic() + timeout
                    out, err = self._drain(chan, command, step, end)
                    while not chan.status_event.wait(0.02):
                        t = self._client.get_transport() if self._client else None
                        if t is None or not t.is_active() or chan.closed:
                            raise EOFError()
                        if time.monotonic() > end:
                            raise TimeoutError()
                    return chan.recv_exit_status(), out, err
                except TimeoutError as exc:
                    raise self._err(f"`{command.split(' -c ')[0][:60]}` did not finish within {timeout:g} s "
                                    "(ssh.command_timeout_s)", step) from exc
        finally:
            with contextlib.suppress(Exception):
                chan.close()

    def _drain(self, chan: paramiko.Channel, command: str, step: str, end: float) -> tuple[bytes, bytes]:
        """stdout and stderr of ``chan`` to their ends, read side by side (a device that fills one while the
        other is read cannot stall it), at most :data:`COMMAND_OUTPUT_MAX` bytes together."""
        out, err = bytearray(), bytearray()
        open_out = open_err = True
        while open_out or open_err:
            moved = False
            if open_out and (chan.recv_ready() or chan.eof_received or chan.closed):
                data = chan.recv(_CHUNK)
                open_out = bool(data)
                out += data
                moved = True
            if open_err and (chan.recv_stderr_ready() or chan.eof_received or chan.closed):
                data = chan.recv_stderr(_CHUNK)
                open_err = bool(data)
                err += data
                moved = True
            if len(out) + len(err) > COMMAND_OUTPUT_MAX:
                raise self._err(f"`{_brief(command)}` sent more than {COMMAND_OUTPUT_MAX // 2**20} MB of output, "
                                "the most a helper command may: stopped reading (the device's shell or python "
                                "prints far more than asked: check the target's python and the login scripts)",
                                step)
            if not moved:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError()
                select.select([chan], [], [], min(left, 0.5))
        return bytes(out), bytes(err)

    def python_snippet(self, code: str, *args: str, step: str, stdin: bytes | None = None,
                       timeout: float | None = None) -> str:
        """Run ``code`` with the device's Python; its stdout (raises on a non-zero status)."""
        command = " ".join([shlex.quote(self.python), "-c", shlex.quote(code), *map(shlex.quote, args)])
        status, out, err = self.run(command, step=step, stdin=stdin, timeout=timeout)
        if status != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise self._err(f"a helper command failed on the device (status {status}): "
                            f"{lines[-1] if lines else 'no message'}", step, "\n".join(lines[-10:]))
        return out.decode("utf-8", "replace")

    # ------------------------------------------------------------------ files
    @property
    def workdir(self) -> str:
        """The cache folder on the device, ``~`` expanded (SFTP does not expand it)."""
        w = self.target.workdir.rstrip("/") or "/"
        if w == "~" or w.startswith("~/"):
            if self.home is None:
                self.check_python()
            w = (self.home or ".") + w[1:]
        return w

    def _sftp_client(self, step: str) -> paramiko.SFTPClient:
        """The connection's SFTP session, opened step by step so that each step is bounded by
        ``command_timeout_s`` (``SFTPClient.from_transport`` waits for the server without a limit)."""
        if self._sftp is not None:
            return self._sftp
        timeout = self.settings.command_timeout_s
        chan = self.open_channel(step)
        # invoke_subsystem waits for sshd's reply with no limit of its own: a timer closes the channel
        # (which ends that wait) if the whole opening takes longer than the timeout.
        # The flag is set before the close, so the wait it ends always sees it (the timer's thread
        # may still be inside chan.close() when the failed negotiation reaches the except below).
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            chan.close()

        watchdog = threading.Timer(timeout, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            chan.settimeout(timeout)
            chan.invoke_subsystem("sftp")
            sftp = paramiko.SFTPClient(chan)
        except Exception as exc:  # noqa: BLE001 - translated
            expired = fired.is_set()
            with contextlib.suppress(Exception):
                chan.close()
            if expired or isinstance(exc, TimeoutError):
                raise self._err(f"the device's SFTP server did not answer within {timeout:g} s "
                                "(ssh.command_timeout_s): check sshd's `Subsystem sftp` line and the device's load",
                                step) from exc
            if isinstance(exc, paramiko.SSHException) and "subsystem" in str(exc).lower():
                raise self._err("the device's sshd offers no SFTP (enable `Subsystem sftp` in sshd_config)",
                                step) from exc
            raise self._translate(exc, step) from exc
        finally:
            watchdog.cancel()
        self._sftp = sftp
        return sftp

    def blob_path(self, sha256: str, host_path: str) -> str:
        suffix = Path(host_path).suffix
        ok = 1 < len(suffix) <= 13 and suffix[1:].replace("_", "").isalnum()
        return f"{self.workdir}/blobs/{sha256}{suffix if ok else ''}"

    def agent_path(self) -> str:
        return f"{self.workdir}/agents/{agent_bundle().sha256}.pyz"

    def prepare(self, files: dict[str, tuple[str, str]]) -> dict[str, str]:
        """The agent and ``files`` in the device's cache, by sha256. Sends only what is missing there."""
        bundle = agent_bundle()
        wanted: dict[str, tuple[str | None, str, int]] = {}  # device path -> (host path or None for agent, sha, size)
        out: dict[str, str] = {}
        for role, (host_path, sha256) in files.items():
            device = self.blob_path(sha256, host_path)
            out[role] = device
            try:
                size = os.path.getsize(host_path)
            except OSError as exc:
                raise self._err(f"{host_path}: cannot read the file to send ({exc.strerror or exc})", "prepare") from exc
            wanted[device] = (host_path, sha256, size)
        out["agent"] = self.agent_path()
        wanted[out["agent"]] = (None, bundle.sha256, len(bundle.data))
        with self._lock:
            unknown = [p for p, (_h, sha, _s) in wanted.items() if self._known.get(p) != sha]
            if not unknown:
                return out
            w = self.workdir
            req = {"paths": unknown, "dirs": [w, f"{w}/agents", f"{w}/blobs", f"{w}/journal"]}
            text = self.python_snippet(_PY_HASHES, step="prepare", stdin=json.dumps(req).encode() + b"\n")
            try:
                state = json.loads(text.strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise self._err(f"unexpected answer from the device's cache check: {text[:80]!r}", "prepare") from None
            have: dict[str, str] = state.get("sha256") or {}
            missing = [p for p in unknown if have.get(p) != wanted[p][1]]
            for p in unknown:
                if p not in missing:
                    self._known[p] = wanted[p][1]
            need = sum(wanted[p][2] for p in missing)
            free = state.get("free")
            if missing and isinstance(free, int) and free < need + DISK_MARGIN_BYTES:
                raise self._err(f"not enough free disk on the device: {need / 1e6:.1f} MB to send, "
                                f"{free / 1e6:.1f} MB free under {w}: free some space or set workdir to a bigger disk",
                                "prepare")
            for p in missing:
                source, sha, size = wanted[p]
                self._send(p, source, sha, size, bundle.data if source is None else None)
        return out

    def _send(self, device_path: str, host_path: str | None, sha256: str, size: int, data: bytes | None) -> None:
        """Upload to a temporary name, verify the hash on the device, rename; one retry on a bad hash."""
        name = Path(host_path).name if host_path else "the agent"
        step = "upload agent" if host_path is None else "upload"
        got = ""
        for _attempt in range(2):
            tmp = f"{device_path}.tmp-{uuid.uuid4().hex[:12]}"
            try:
                with (io.BytesIO(data) if data is not None else open(host_path or "", "rb")) as f:
                    self._put(f, tmp, size, step)
            except OSError as exc:
                if isinstance(exc, TimeoutError):
                    raise self._err(f"sending {name} stalled for {self.settings.command_timeout_s:g} s "
                                    "(ssh.command_timeout_s)", step) from exc
                raise self._translate(exc, step) from exc
            got = self.python_snippet(_PY_COMMIT, tmp, device_path, sha256, step=step).strip()
            if got == sha256:
                self._known[device_path] = sha256
                return
        raise self._err(f"{name} arrived corrupted twice (sha256 {got[:16]}... on the device, {sha256[:16]}... here): "
                        "check the device's storage and free space, then retry", step)

    def _put(self, f: IO[bytes], remote: str, size: int, step: str) -> None:
        """SFTP upload of ``f``; counts what went out in ``bytes_sent`` (a failed upload's bytes too)."""
        sftp = self._sftp_client(step)

        def count(sent: int, _total: int) -> None:
            self._upload_sent = sent

        self._upload_sent = 0
        try:
            sftp.putfo(f, remote, file_size=size, callback=count, confirm=True)
        except TimeoutError:
            raise  # _send says which file stalled
        except OSError as exc:
            if exc.errno == 28:
                raise self._err("the device's disk filled up during the upload: free space or move workdir",
                                step) from exc
            if exc.errno:
                raise self._err(f"cannot write {remote} on the device: {exc.strerror or exc}", step) from exc
            raise self._translate(exc, step) from exc
        except Exception as exc:  # noqa: BLE001 - translated
            raise self._translate(exc, step) from exc
        finally:
            self.bytes_sent += self._upload_sent

    # ------------------------------------------------------------------ the agent
    def journal_path(self, run_id: str) -> str:
        return f"{self.workdir}/journal/{run_id}.jsonl"

    @staticmethod
    def pidfile_for(journal: str) -> str:
        return (journal[: -len(".jsonl")] if journal.endswith(".jsonl") else journal) + ".pid"

    def start_agent(self, payload: dict[str, Any], journal: str, args: list[str] | None = None) -> AgentProcess:
        from harness.transport.shell_runner import runner_for_job, start_shell_runner

        picked = runner_for_job(self.target, payload) if args is None else None
        if picked is not None:  # the target's [runners] runs this backend's jobs (docs/runners.md)
            return start_shell_runner(self, payload, *picked)
        agent = self.prepare({})["agent"]
        pidfile = self.pidfile_for(journal)
        try:
            env = shell_env(self.target.env)
        except ValueError as exc:
            raise self._err(f"{exc}: fix env in {self.target.source}", "start agent") from None
        argv = args if args is not None else ["--job", "-"]
        q = shlex.quote
        # The wrapper: the agent in the background (stdin handed over explicitly), its pid recorded so a
        # later connection can see or kill it, then its exit status passed on. The session sshd makes is
        # its own process group, so a kill reaches the agent's children too.
        script = (
            f"mkdir -p -m 700 {q(journal.rsplit('/', 1)[0])} || exit 97\n"
            f"cd {q(self.workdir)} 2>/dev/null || cd\n"
            "exec 3<&0\n"
            f"{env + ' ' if env else ''}{q(self.python)} {q(agent)} --journal {q(journal)} "
            f"{' '.join(q(a) for a in argv)} <&3 3<&- &\n"
            "pid=$!\nexec 3<&-\n"
            f"echo \"$$ $pid\" > {q(pidfile)}\n"
            "wait $pid\nrc=$?\n"
            f"rm -f {q(pidfile)}\n"
            "exit $rc\n"
        )
        chan = self.open_channel("start agent")
        try:
            chan.exec_command("sh -c " + q(script))
            if args is None or "-" in argv:
                chan.sendall(json.dumps(payload).encode() + b"\n")
            chan.shutdown_write()
        except Exception as exc:  # noqa: BLE001 - translated
            with contextlib.suppress(Exception):
                chan.close()
            raise self._translate(exc, "start agent") from exc
        return SSHAgentProcess(self, chan, pidfile)

    def agent_alive(self, journal: str) -> bool:
        """Whether the agent of ``journal`` still runs on the device (after a reconnect)."""
        return self.python_snippet(_PY_AGENT, self.pidfile_for(journal), "check",
                                   step="recover").strip() == "alive"

    def kill_agent(self, journal: str) -> None:
        """Kill the agent of ``journal`` and everything it started (SIGKILL to its process group)."""
        self.kill_agent_pidfile(self.pidfile_for(journal))

    def kill_agent_pidfile(self, pidfile: str) -> None:
        self.python_snippet(_PY_AGENT, pidfile, "kill", step="kill agent", timeout=10.0)

    def fetch_journal(self, path: str) -> list[str] | None:
        """The journal's lines; None when it cannot be read. A journal over :data:`JOURNAL_MAX` bytes is refused
        with a one-line :class:`TransportError` (nothing that large is read into the host's memory)."""
        try:
            sftp = self._sftp_client("fetch journal")
            with sftp.open(path, "rb") as f:
                size = f.stat().st_size
                data = bytearray()
                if size is None or size <= JOURNAL_MAX:
                    while len(data) <= JOURNAL_MAX:  # the file may still grow while it is read
                        chunk = f.read(min(_CHUNK, JOURNAL_MAX + 1 - len(data)))
                        if not chunk:
                            break
                        data += chunk
        except (TransportError, OSError, paramiko.SSHException, EOFError):
            return None
        if len(data) > JOURNAL_MAX or (size is not None and size > JOURNAL_MAX):
            raise self._err(f"the journal {path} on the device is over {JOURNAL_MAX // 2**20} MB "
                            f"({max(size or 0, len(data)) / 2**20:.0f} MB or more), more than any job writes: "
                            "not read, so this job cannot be recovered from it", "fetch journal")
        return self.journal_lines(bytes(data), path)
