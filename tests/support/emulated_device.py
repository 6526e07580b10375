"""An emulated Raspberry Pi for the test suite: Debian bookworm arm64 under qemu-user, reached over SSH.

What it is, honestly: a Debian bookworm arm64 root folder (the base of Raspberry Pi OS bookworm),
made by ``debootstrap`` from Debian's own packages, whose programs run on this x86 machine through
``qemu-user-static`` registered with binfmt_misc. It has the distribution's Python 3.11, a virtual
environment with the aarch64 wheels of onnxruntime, LiteRT and numpy from PyPI, and its own OpenSSH
server. It is not a virtual machine: the kernel, /proc/cpuinfo and the clocks are the host's, and every
latency measured in it is an emulator's, not a board's.

Life cycle::

    rootfs = build()                 # minutes the first time, then reused from the cache
    with start(rootfs, workdir) as dev:
        dev.target_toml("pi5-emulated")   # an ssh target file for hilbench
        ...                               # sshd answers at dev.host:dev.port

``build`` keeps the finished root folder under ``$HILBENCH_EMULATED_CACHE`` (default
``/var/cache/hilbench/arm64-device``) in a folder named by the hash of the recipe below, so a change of
recipe builds a new one and an unchanged one is reused. ``start`` lays a fresh overlay over the cached
root (the cache is never written), mounts /proc and /dev (never /sys: onnxruntime's CPU detection
crashes under qemu when it sees the host's /sys), starts the device's own sshd in a network namespace
of its own (a veth pair with TEST-NET-2 addresses), or on a loopback port where namespaces are not
allowed, and takes a second or two. ``stop`` kills every process in the root, unmounts and deletes
the namespace.

Missing support (not root, no debootstrap, no qemu-aarch64, no binfmt_misc) raises
:class:`EmulationUnavailable` with the reason, so the tests can skip locally and fail in CI.

Command line (used by ``.ci/emulated-device.sh``)::

    python3 tests/support/emulated_device.py check    # can this machine build and run it?
    python3 tests/support/emulated_device.py build    # build or reuse; prints the root folder and the time
    python3 tests/support/emulated_device.py start    # start it, print the target file, wait for Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EmulationUnavailable",
    "EmulatedDevice",
    "RECIPE_VERSION",
    "build",
    "cache_dir",
    "check_host",
    "reap_stale",
    "recipe_key",
    "start",
]

#: Bump when the recipe changes in a way the hash below does not see (e.g. a new build step).
RECIPE_VERSION = "1"
SUITE = "bookworm"
ARCH = "arm64"
DEB_PACKAGES = ("python3", "python3-venv", "openssh-server", "ca-certificates")
#: Pinned so a cached device is the same device; these are the versions the host's tests use too.
WHEELS = ("onnxruntime==1.32.0", "ai-edge-litert==2.3.0", "numpy==2.4.6")
VENV = "/opt/hilbench-venv"
DEVICE_PYTHON = VENV + "/bin/python"
DEFAULT_CACHE = "/var/cache/hilbench/arm64-device"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_ENTRY = BINFMT_DIR / "qemu-aarch64"
#: TEST-NET-2 (RFC 5737): documentation addresses, routed nowhere, used only inside our own namespace.
TEST_NET = ipaddress.ip_network("198.51.100.0/24")

#: Where started devices are recorded, so a later start can clean up after a test run that was killed.
REGISTRY = Path("/run/hilbench-emulated")

Log = Callable[[str], None]
_started = 0


class EmulationUnavailable(Exception):
    """This machine cannot build or run the emulated device; the message says why and what to install."""


def _stderr_log(msg: str) -> None:
    print(f"emulated-device: {msg}", file=sys.stderr, flush=True)


def recipe_key() -> str:
    """Short hash of everything that decides what the built root contains."""
    recipe = json.dumps([RECIPE_VERSION, SUITE, ARCH, DEB_PACKAGES, WHEELS, VENV])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    return Path(os.environ.get("HILBENCH_EMULATED_CACHE") or DEFAULT_CACHE)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (so the build reaches the same registry), else Debian's CDN."""
    env = os.environ.get("HILBENCH_DEBIAN_MIRROR")
    if env:
        return env
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(path.read_text())
    for text in texts:
        for m in re.finditer(r"(?m)^\s*(?:URIs:|deb(?:\s+\[[^\]]*\])?)\s+(\S+)", text):
            uri = m.group(1).rstrip("/")
            # The main archive, not -security, and not snapshot archives pinned to a date.
            if uri.endswith("/debian") and "snapshot." not in uri:
                return uri
    return DEFAULT_MIRROR


# ---------------------------------------------------------------------------------------------------
# Host support


def _run(cmd: list[str], log: Log | None = None, **kw) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure raise RuntimeError with the command and the tail of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited {proc.returncode}:\n" + "\n".join(tail))
    return proc


def ensure_binfmt(log: Log = _stderr_log) -> None:
    """Mount binfmt_misc where it is not mounted and enable qemu-aarch64; raise EmulationUnavailable if impossible."""
    if not (BINFMT_DIR / "status").exists():
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise EmulationUnavailable(f"binfmt_misc is not mounted at {BINFMT_DIR} and mounting it failed: "
                                       f"{proc.stderr.strip()}")
    if not BINFMT_ENTRY.exists() or "enabled" not in BINFMT_ENTRY.read_text():
        if not shutil.which("update-binfmts"):
            raise EmulationUnavailable("qemu-aarch64 is not registered with binfmt_misc and update-binfmts is "
                                       "missing: apt-get install binfmt-support qemu-user-static")
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True, text=True)
        if not BINFMT_ENTRY.exists():
            raise EmulationUnavailable("update-binfmts --enable qemu-aarch64 did not register it: "
                                       "apt-get install qemu-user-static")
    if "enabled" not in BINFMT_ENTRY.read_text():
        raise EmulationUnavailable(f"{BINFMT_ENTRY} is registered but disabled")


def _binfmt_interpreter() -> tuple[str, bool]:
    """(interpreter path, whether the kernel opened it at registration: the F flag)."""
    text = BINFMT_ENTRY.read_text()
    interp = re.search(r"(?m)^interpreter (\S+)", text)
    flags = re.search(r"(?m)^flags: (\S*)", text)
    return (interp.group(1) if interp else ""), bool(flags and "F" in flags.group(1))


def _which(tool: str) -> str | None:
    """``tool``'s path; also looks in /usr/sbin, which a non-login PATH may lack."""
    found = shutil.which(tool)
    if not found and Path("/usr/sbin", tool).exists():
        found = str(Path("/usr/sbin", tool))
    return found


def check_host(log: Log = _stderr_log) -> None:
    """Raise EmulationUnavailable unless this machine can build and run the device."""
    if sys.platform != "linux":
        raise EmulationUnavailable(f"needs Linux (binfmt_misc, chroot), not {sys.platform}")
    if os.geteuid() != 0:
        raise EmulationUnavailable("needs root (debootstrap, chroot, mount, network namespaces)")
    missing = [tool for tool in ("debootstrap", "qemu-aarch64-static", "chroot", "mount", "ssh-keygen")
               if not _which(tool)]
    if missing:
        raise EmulationUnavailable(f"missing {', '.join(missing)}: "
                                   "apt-get install qemu-user-static binfmt-support debootstrap openssh-client")
    ensure_binfmt(log)


# ---------------------------------------------------------------------------------------------------
# Build


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``, so two processes never build the same device at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mount_api(root: Path) -> list[Path]:
    """Mount /proc and /dev (with /dev/pts) into ``root``; never /sys (see the module docstring)."""
    mounted: list[Path] = []
    try:
        for target, cmd in (
            (root / "proc", ["mount", "-t", "proc", "proc"]),
            (root / "dev", ["mount", "--bind", "/dev"]),
            (root / "dev/pts", ["mount", "--bind", "/dev/pts"]),
        ):
            target.mkdir(parents=True, exist_ok=True)
            _run([*cmd, str(target)])
            mounted.append(target)
    except Exception:
        _unmount(mounted)
        raise
    return mounted


def _unmount(mounted: list[Path]) -> None:
    for target in reversed(mounted):
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _chroot(root: Path, *cmd: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return _run(["chroot", str(root), *cmd], env=env, timeout=timeout)


def _ensure_interpreter_in_root(root: Path) -> None:
    """Without binfmt's F flag the kernel looks the interpreter up inside the chroot: put it there."""
    interp, fixed = _binfmt_interpreter()
    if fixed or not interp:
        return
    dest = root / interp.lstrip("/")
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shutil.which("qemu-aarch64-static") or interp, dest)


def build(cache: Path | None = None, log: Log = _stderr_log, force: bool = False) -> Path:
    """The cached device root for the current recipe: reused when present, built (minutes) otherwise.

    Returns the root folder. Raises EmulationUnavailable when this machine cannot build it, and
    RuntimeError (with the failing step's output) when a build step fails."""
    check_host(log)
    cache = cache or cache_dir()
    final = cache / f"{SUITE}-{ARCH}-{recipe_key()}"
    root = final / "rootfs"
    with _locked(cache / ".build.lock"):
        if (final / "build.json").exists() and not force:
            _ensure_interpreter_in_root(root)
            return root
        partial = cache / f".{final.name}.partial"
        for stale in (partial, final):
            if stale.exists():
                _unmount_all_under(stale)
                if _mounts_under(stale):
                    raise RuntimeError(f"cannot rebuild: {stale} still has mounts: {_mounts_under(stale)}")
                shutil.rmtree(stale)
        proot = partial / "rootfs"
        proot.parent.mkdir(parents=True)
        steps: dict[str, float] = {}
        mirror = debian_mirror()
        t0 = time.monotonic()
        log(f"debootstrap {SUITE} {ARCH} from {mirror} into {proot} (a few minutes)")
        _run(["debootstrap", f"--arch={ARCH}", "--variant=minbase", "--include=" + ",".join(DEB_PACKAGES),
              SUITE, str(proot), mirror], timeout=3600)
        steps["debootstrap_s"] = round(time.monotonic() - t0, 1)
        _ensure_interpreter_in_root(proot)

        t1 = time.monotonic()
        uname = _chroot(proot, "uname", "-m").stdout.strip()
        if uname != "aarch64":
            raise RuntimeError(f"chroot {proot} uname -m says {uname!r}, not aarch64: binfmt is not running qemu")
        # The wheels are fetched by the host's pip (fast, native) for the device's platform and installed
        # inside by the device's own pip, offline: the device needs no DNS during the build.
        wheels = partial / "wheels"
        log("downloading aarch64 wheels: " + " ".join(WHEELS))
        _run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.11",
              "--implementation", "cp", "--platform", "manylinux_2_28_aarch64", "--platform",
              "manylinux_2_27_aarch64", "--platform", "manylinux2014_aarch64", "--platform",
              "manylinux_2_17_aarch64", "--platform", "linux_aarch64", "-d", str(wheels), *WHEELS],
             timeout=1200)
        shutil.copytree(wheels, proot / "tmp/wheels")
        steps["wheels_download_s"] = round(time.monotonic() - t1, 1)

        t2 = time.monotonic()
        log(f"creating {VENV} and installing the wheels under qemu (about a minute)")
        mounted = _mount_api(proot)
        try:
            _chroot(proot, "python3", "-m", "venv", VENV)
            _chroot(proot, DEVICE_PYTHON, "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    "/tmp/wheels", *WHEELS)
            # Fail the build, not the tests, when a runtime cannot even be imported under qemu.
            versions = _chroot(proot, DEVICE_PYTHON, "-c",
                               "import json, platform, sys, numpy, onnxruntime, ai_edge_litert.interpreter;"
                               "print(json.dumps({'python': platform.python_version(),"
                               "'machine': platform.machine(), 'numpy': numpy.__version__,"
                               "'onnxruntime': onnxruntime.__version__}))").stdout
        finally:
            _unmount(mounted)
        steps["venv_s"] = round(time.monotonic() - t2, 1)
        shutil.rmtree(proot / "tmp/wheels")
        shutil.rmtree(wheels)
        for leftover in (proot / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        (proot / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
        steps["total_s"] = round(time.monotonic() - t0, 1)
        info = {"recipe": recipe_key(), "recipe_version": RECIPE_VERSION, "suite": SUITE, "arch": ARCH,
                "mirror": mirror, "packages": list(DEB_PACKAGES), "wheels": list(WHEELS),
                "device": json.loads(versions.strip().splitlines()[-1]), "built_at": time.time(), **steps}
        (partial / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        partial.rename(final)
        log(f"built {root} in {steps['total_s']} s ({steps})")
        return root


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                mounts.append(point)
    return mounts


def _unmount_all_under(path: Path) -> None:
    """Unmount whatever a crashed run left mounted under ``path`` (deepest first)."""
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


# ---------------------------------------------------------------------------------------------------
# Start and stop


@dataclass
class EmulatedDevice:
    """A started device: its sshd answers at ``host:port`` for ``user`` with ``identity_file``."""

    root: Path
    workdir: Path
    host: str
    port: int
    identity_file: Path
    known_hosts: Path
    netns: str | None
    user: str = "root"
    python: str = DEVICE_PYTHON
    sshd: subprocess.Popen[bytes] | None = None
    _mounts: list[Path] = field(default_factory=list)
    _veth: str | None = None
    start_s: float = 0.0

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def target_toml(self, name: str = "pi5-emulated", *, tags: tuple[str, ...] = ("arm64", "emulated")) -> str:
        """An ssh target file for hilbench that reaches this device, host key verified."""
        tag_list = ", ".join(json.dumps(t) for t in tags)
        return (
            f'name = "{name}"\n'
            'transport = "ssh"\n'
            f'address = "{self.address}"\n'
            f'python = "{self.python}"\n'
            'description = "Debian bookworm arm64 under qemu-user (an emulated Raspberry Pi 5: not its timings)"\n'
            'runtimes = ["onnxruntime", "litert"]\n'
            f"tags = [{tag_list}]\n\n"
            "[facts]\n"
            'vendor = "emulated"\nmodel = "Raspberry Pi 5 (emulated)"\nsoc = "none: qemu-user on the host CPU"\n'
            'os = "Debian 12 bookworm arm64"\n\n'
            "[ssh]\n"
            f'identity_file = "{self.identity_file}"\n'
            f'known_hosts = "{self.known_hosts}"\n'
            "use_ssh_config = false\n"
            "connect_timeout_s = 20\n"
            "command_timeout_s = 120\n"
        )

    def ssh_command(self, *remote: str) -> list[str]:
        """An OpenSSH client command line that reaches the device (for tests and debugging)."""
        return ["ssh", "-F", "/dev/null", "-i", str(self.identity_file), "-p", str(self.port),
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", f"{self.user}@{self.host}", *remote]

    def processes(self) -> list[int]:
        """Pids of every process whose root is this device's root (sshd, its sessions, agents)."""
        found = []
        want = str(self.root.resolve())
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "root") == want:
                        found.append(int(entry.name))
        return found

    def kill(self, pids: list[int] | None = None, sig: int = signal.SIGKILL) -> list[int]:
        """Kill ``pids`` (default: every process in the root but sshd itself, as when a board's programs
        die under a benchmark); returns the pids signalled."""
        keep = {self.sshd.pid} if self.sshd else set()
        chosen = [pid for pid in (self.processes() if pids is None else pids) if pid not in keep]
        for pid in chosen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return chosen

    def power_off(self) -> list[int]:
        """SIGKILL everything in the root, sshd's listener too, as when a board loses power mid-run."""
        found = self.processes()
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.sshd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.sshd.pid, signal.SIGKILL)
            self.sshd.wait(10)
        return found

    def kill_connections(self) -> list[int]:
        """SIGKILL every SSH connection's sshd but keep the listener and what the sessions started, as when
        a board's network drops; returns the pids killed."""
        conns = []
        for pid in self.processes():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().startswith("sshd"):
                    conns.append(pid)
        return self.kill(conns)

    def stop(self) -> None:
        """Kill sshd and everything in the root, unmount, delete the namespace and the session folder."""
        if self.sshd and self.sshd.poll() is None:
            self.sshd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sshd.wait(5)
        for _ in range(3):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        if self.sshd:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sshd.wait(5)
        _unmount(self._mounts)
        self._mounts = []
        _unmount_all_under(self.workdir)
        if self._veth:
            subprocess.run(["ip", "link", "del", self._veth], capture_output=True)
            self._veth = None
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            self.netns = None
        if _mounts_under(self.workdir):
            # Never delete through a mount: the root has the host's /dev bound into it.
            _stderr_log(f"left {self.workdir} in place: still mounted under it: {_mounts_under(self.workdir)}")
            return
        shutil.rmtree(self.workdir, ignore_errors=True)
        (REGISTRY / f"{self.workdir.name}.json").unlink(missing_ok=True)

    def _register(self) -> None:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        (REGISTRY / f"{self.workdir.name}.json").write_text(json.dumps({
            "pid": os.getpid(), "root": str(self.root), "workdir": str(self.workdir), "netns": self.netns,
            "veth": self._veth}))

    def __enter__(self) -> EmulatedDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup_netns(name: str, veth: str, log: Log) -> tuple[str, str, str] | None:
    """A namespace with a veth pair in a free /30 of TEST-NET-2: (host-side link, host address, device address).

    None where namespaces cannot be made here (no CAP_NET_ADMIN, no iproute2)."""
    if not shutil.which("ip"):
        return None
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    subnets = list(TEST_NET.subnets(new_prefix=30))
    start = os.getpid() % len(subnets)
    subnet = next((s for s in subnets[start:] + subnets[:start]
                   if not any(str(h) in used for h in s.hosts())), None)
    if subnet is None:
        return None
    host_ip, dev_ip = (str(h) for h in subnet.hosts())
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", veth],
        ["ip", "link", "set", veth, "up"],
        ["ip", "-n", name, "addr", "add", f"{dev_ip}/30", "dev", "eth0"],
        ["ip", "-n", name, "link", "set", "eth0", "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"network namespace unavailable ({' '.join(cmd)}: {proc.stderr.strip()}); using loopback")
            subprocess.run(["ip", "link", "del", veth], capture_output=True)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            return None
    return veth, host_ip, dev_ip


def _overlay(lower: Path, workdir: Path) -> tuple[Path, list[Path]]:
    """A writable copy of ``lower`` for one session: an overlay where the kernel allows it, a copy otherwise."""
    merged = workdir / "root"
    upper, work = workdir / "upper", workdir / "work"
    for d in (merged, upper, work):
        d.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                           f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return merged, [merged]
    merged.rmdir()
    _run(["cp", "-a", "--reflink=auto", str(lower), str(merged)])
    return merged, []


def _wait_for_banner(host: str, port: int, sshd: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if sshd.poll() is not None:
            err = sshd.stderr.read().decode(errors="replace") if sshd.stderr else ""
            raise RuntimeError(f"the device's sshd exited {sshd.returncode}: {err.strip()[-800:]}")
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(64).startswith(b"SSH-2.0"):
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"the device's sshd did not answer at {host}:{port} within {timeout_s:.0f} s ({last})")


def reap_stale(log: Log = _stderr_log) -> int:
    """Stop devices whose starting process is gone (a test run killed before its teardown); returns how many."""
    reaped = 0
    for entry in sorted(REGISTRY.glob("*.json")) if REGISTRY.is_dir() else []:
        try:
            state = json.loads(entry.read_text())
            os.kill(int(state["pid"]), 0)
            continue  # its owner is alive: not ours to stop
        except ProcessLookupError:
            pass
        except (OSError, ValueError, KeyError):
            continue
        dev = EmulatedDevice(root=Path(state["root"]), workdir=Path(state["workdir"]), host="", port=0,
                             identity_file=Path(), known_hosts=Path(), netns=state.get("netns"))
        dev._veth = state.get("veth")
        log(f"cleaning up a device left running by process {state['pid']} ({dev.workdir})")
        dev.stop()
        entry.unlink(missing_ok=True)
        reaped += 1
    return reaped


def start(rootfs: Path, workdir: Path | None = None, *, use_netns: bool = True,
          log: Log = _stderr_log) -> EmulatedDevice:
    """Start the device from a built root: a fresh overlay, /proc and /dev, its own sshd. Seconds.

    The returned device is a context manager; ``stop()`` undoes everything. Keys are made fresh for each
    start: the client key is authorized for root, and the host key is written to a known_hosts file."""
    global _started
    check_host(log)
    reap_stale(log)
    t0 = time.monotonic()
    _started += 1
    workdir = Path(tempfile.mkdtemp(prefix="hilbench-emu-", dir=workdir))
    merged, mounts = _overlay(rootfs, workdir)
    dev = EmulatedDevice(root=merged, workdir=workdir, host="127.0.0.1", port=0,
                         identity_file=workdir / "id_ed25519", known_hosts=workdir / "known_hosts", netns=None)
    dev._mounts = mounts
    try:
        dev._register()
        _ensure_interpreter_in_root(merged)
        dev._mounts += _mount_api(merged)
        host_key = merged / "etc/ssh/hilbench_host_ed25519_key"
        for key, comment in ((host_key, "emulated-device"), (dev.identity_file, "hilbench-tests")):
            key.unlink(missing_ok=True)
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        ssh_dir = merged / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(Path(str(dev.identity_file) + ".pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        (merged / "run/sshd").mkdir(parents=True, exist_ok=True)

        netns = f"hbemu-{os.getpid()}-{_started}" if use_netns else None
        net = _setup_netns(netns, f"hbe{os.getpid() % 100000}x{_started % 100}", log) if netns else None
        if net:
            dev._veth, _host_ip, dev.host = net
            dev.netns, dev.port = netns, 22
            prefix = ["ip", "netns", "exec", netns]
        else:
            dev.host, dev.port, prefix = "127.0.0.1", _free_port(), []
        (merged / "etc/ssh/hilbench_sshd_config").write_text(
            f"Port {dev.port}\nListenAddress {dev.host}\n"
            "HostKey /etc/ssh/hilbench_host_ed25519_key\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n"
            "AuthorizedKeysFile .ssh/authorized_keys\nPidFile /run/hilbench-sshd.pid\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\nAcceptEnv LANG LC_*\nLogLevel VERBOSE\n"
            "MaxStartups 50\nMaxSessions 50\n"
        )
        pub = (Path(str(host_key) + ".pub").read_text().split()[:2])
        hostspec = dev.host if dev.port == 22 else f"[{dev.host}]:{dev.port}"
        dev.known_hosts.write_text(f"{hostspec} {pub[0]} {pub[1]}\n")
        dev.sshd = subprocess.Popen(
            [*prefix, "chroot", str(merged), "/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/hilbench_sshd_config"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(workdir / "sshd.log", "wb"),
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}, start_new_session=True)
        dev._register()
        _wait_for_banner(dev.host, dev.port, dev.sshd, timeout_s=60)
    except BaseException:
        log_tail = ""
        with contextlib.suppress(OSError):
            log_tail = (workdir / "sshd.log").read_text()[-800:]
        dev.stop()
        if log_tail:
            log("sshd log: " + log_tail)
        raise
    dev.start_s = round(time.monotonic() - t0, 2)
    log(f"started at {dev.address} in {dev.start_s} s (root {merged})")
    return dev


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("check", "build", "start"))
    ap.add_argument("--force", action="store_true", help="rebuild even when the cache has this recipe")
    ap.add_argument("--loopback", action="store_true", help="start on a loopback port, not in a namespace")
    args = ap.parse_args(argv)
    try:
        if args.command == "check":
            check_host()
            print(f"ok: this machine can build and run the emulated device (cache {cache_dir()})")
            return 0
        t0 = time.monotonic()
        root = build(force=args.force)
        print(f"{root}\t{time.monotonic() - t0:.1f} s")
        if args.command == "start":
            with start(root, use_netns=not args.loopback) as dev:
                print(dev.target_toml())
                print("# ssh: " + " ".join(dev.ssh_command()))
                with contextlib.suppress(KeyboardInterrupt):
                    signal.pause()
        return 0
    except EmulationUnavailable as exc:
        print(f"emulated-device: unavailable: {exc}", file=sys.stderr)
        return 3
    except RuntimeError as exc:
        print(f"emulated-device: failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
