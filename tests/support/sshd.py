"""Real OpenSSH servers on loopback ports as test devices (Debian's openssh-server).

Each :class:`SSHServer` is ``/usr/sbin/sshd -D -e -f <config>`` run as a child of the test, with a
generated ed25519 host key, an ``authorized_keys`` file of its own, and a ``known_hosts`` file that
trusts exactly its host key. Nothing outside the server's folder is touched, except that sshd needs
its privilege-separation folder ``/run/sshd`` (created when missing).

    keys = UserKeys.make(tmp)                 # a client key pair (reuse it across servers)
    with start_sshd(tmp / "dev1", keys) as dev:
        dev.target_toml("dev1", python=sys.executable)   # an ssh target for hilbench
        dev.kill_connections()                # as when the network drops (agents keep running)
        dev.restart()                         # same port, same host key

Used by tests/test_ssh.py, tests/test_emulated.py and benchmarks/fleet.py.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SSHD", "SSHServer", "UserKeys", "sshd_unavailable", "start_sshd", "free_port", "keygen"]

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                          "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")


def sshd_unavailable() -> str | None:
    """Why real-sshd tests cannot run here, or None when they can."""
    if not os.path.exists(SSHD):
        return f"{SSHD} not found (Debian: apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not found (Debian: apt-get install openssh-client)"
    if os.geteuid() != 0:
        return "sshd as a test device needs root here (it logs in as the current user through privilege separation)"
    if _sftp_server() is None:
        return "no sftp-server binary found (openssh-sftp-server)"
    return None


def _sftp_server() -> str | None:
    return next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), None)


def keygen(path: Path, comment: str = "hilbench-tests") -> Path:
    """An ed25519 key pair without a passphrase at ``path`` (and ``path.pub``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, Path(str(path) + ".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class UserKeys:
    """A client key pair: ``identity`` (private) and its ``.pub``."""

    identity: Path

    @classmethod
    def make(cls, folder: Path) -> UserKeys:
        return cls(keygen(folder / "id_ed25519"))

    @property
    def public(self) -> str:
        return Path(str(self.identity) + ".pub").read_text()


@dataclass
class SSHServer:
    """One sshd. ``host``:``port`` answers for ``user`` with ``keys``; ``known_hosts`` trusts its host key."""

    folder: Path
    keys: UserKeys
    host: str = "127.0.0.1"
    port: int = 0
    user: str = field(default_factory=getpass.getuser)
    proc: subprocess.Popen[bytes] | None = None
    #: the ``Subsystem sftp`` command (default: the real sftp-server)
    sftp_command: str | None = None
    #: sshd_config lines that replace the defaults of the same keywords (sshd takes a keyword's first value)
    extra_config: str = ""

    @property
    def host_key(self) -> Path:
        return self.folder / "ssh_host_ed25519_key"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def config(self) -> Path:
        return self.folder / "sshd_config"

    @property
    def log(self) -> Path:
        return self.folder / "sshd.log"

    @property
    def lock_dir(self) -> Path:
        """Where this device's agents keep the device lock (``HILBENCH_LOCK_DIR``, set by sshd for each login)."""
        return self.folder / "device-lock"

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def spec(self) -> str:
        """How known_hosts and ``ssh-keygen -R`` name this server."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def known_hosts_line(self) -> str:
        kind, blob = Path(str(self.host_key) + ".pub").read_text().split()[:2]
        return f"{self.spec} {kind} {blob}\n"

    def setup(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        if not self.host_key.exists():
            keygen(self.host_key, "hilbench-test-device")
        auth = self.folder / "authorized_keys"
        auth.write_text(self.keys.public)
        auth.chmod(0o600)
        self.config.write_text(
            self.extra_config + ("\n" if self.extra_config and not self.extra_config.endswith("\n") else "") +
            f"Port {self.port}\nListenAddress {self.host}\nHostKey {self.host_key}\n"
            f"PidFile {self.folder / 'sshd.pid'}\nAuthorizedKeysFile {auth}\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n"
            f"Subsystem sftp {self.sftp_command or _sftp_server()}\nAllowTcpForwarding yes\nLogLevel VERBOSE\n"
            "MaxStartups 100:30:200\nMaxSessions 100\nPrintMotd no\nPrintLastLog no\n"
            # bash reads ~/.bashrc for ssh commands at shell level 1 (this host's runs pyenv init: 0.3 s a
            # command); a device's own bashrc is its business, the test devices start at level 2.
            # Each server is one device: its agents take the device lock in its own folder (not this machine's /tmp).
            f"SetEnv SHLVL=1 HILBENCH_LOCK_DIR={self.lock_dir}\n"
        )
        self.lock_dir.mkdir(exist_ok=True)
        self.known_hosts.write_text(self.known_hosts_line())

    def start(self, timeout_s: float = 10.0) -> SSHServer:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        if not self.config.exists():
            self.setup()
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with status {self.proc.returncode}: {self.log.read_text()[-800:]}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-2.0"):
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not answer at {self.host}:{self.port}: {self.log.read_text()[-800:]}")
            time.sleep(0.02)

    def _sessions(self) -> list[int]:
        """Pids of the per-connection sshd processes this server forked (not the programs they run)."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        names: dict[int, str] = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                comm = stat[stat.index("(") + 1: stat.rindex(")")]
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
            names[int(d.name)] = comm
        found: list[int] = []
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child in children.get(pid, []):
                if names.get(child, "").startswith("sshd"):
                    found.append(child)
                    todo.append(child)
        return found

    def kill_connections(self) -> int:
        """SIGKILL every connection's sshd (as when the network drops); what they started keeps running."""
        pids = self._sessions()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        """Kill the listener and every connection (the programs sessions started are left to the test)."""
        self.kill_connections()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> SSHServer:
        self.stop()
        return self.start()

    def __enter__(self) -> SSHServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def target_toml(self, name: str, *, python: str = "", workdir: str | None = None,
                    extra_ssh: str = "", extra: str = "") -> str:
        """An ssh target file for hilbench that reaches this server, host key verified."""
        lines = [f"name = {json.dumps(name)}", 'transport = "ssh"', f'address = "{self.address}"']
        if python:
            lines.append(f"python = {json.dumps(python)}")
        lines.append(f"workdir = {json.dumps(str(workdir or self.folder / 'device-cache'))}")
        if extra:
            lines.append(extra)
        lines += ["[ssh]", f"identity_file = {json.dumps(str(self.keys.identity))}",
                  f"known_hosts = {json.dumps(str(self.known_hosts))}", "use_ssh_config = false",
                  "connect_timeout_s = 5", "command_timeout_s = 30", "keepalive_s = 2"]
        if extra_ssh:
            lines.append(extra_ssh)
        return "\n".join(lines) + "\n"


def start_sshd(folder: Path, keys: UserKeys, host: str = "127.0.0.1", port: int = 0, *,
               sftp_command: str | None = None, extra_config: str = "") -> SSHServer:
    """Set up and start one server in ``folder`` (``sftp_command`` and ``extra_config``: see SSHServer)."""
    server = SSHServer(folder=folder, keys=keys, host=host, port=port, sftp_command=sftp_command,
                       extra_config=extra_config)
    server.setup()
    return server.start()



def agents_of(server: SSHServer) -> list[int]:
    """Pids of agents started under this server's device cache."""
    cache = str(server.folder / "device-cache").encode()
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if cache in cmd and b".pyz" in cmd:
                pids.append(int(d.name))
    return pids


def kill_agents(server: SSHServer) -> None:
    for pid in agents_of(server):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
