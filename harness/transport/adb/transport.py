"""The ADB transport: an Android phone through the ``adb`` command-line client.

Every device operation is one ``adb`` invocation (``adb -s SERIAL ...``), so it
works with whatever adb the user has (platform-tools, Debian's ``adb``) and
with devices on USB or over TCP (``serial = "host:port"``: hilbench runs
``adb disconnect`` then ``adb connect``, since a stale TCP session blocks).

Device layout, under :data:`DEVICE_ROOT` (``/data/local/tmp/hilbench``)::

    blobs/<sha256><suffix>     models and inputs, content-addressed
    bin/<set-sha256>/<name>    a runner binary (benchmark_model, onnxruntime_perf_test) with the target's
                               ``adb.libraries`` beside it; the folder is named for the set's content
    agents/<sha256>.pyz        the regular agent, for a Python the shell user can run (rooted phone)
    journal/<run_id>.jsonl     the agent's journal

A file is pushed to a temporary name, its sha256 checked on the device
(``sha256sum``, or ``toybox sha256sum``), then renamed, so a dropped cable never
leaves a half-written file under a cache name. A file already there with the
right hash is not sent again.

Shell commands return their real exit status: every command is followed by an
``echo`` of a marker with ``$?``, which works with and without adb's shell
protocol v2. Each command first echoes its process group (adbd starts every
shell in a session of its own): a command that outlives its timeout is killed
there with its children (adbd itself only sends SIGHUP to the shell, and a
child such as ``sleep`` would run on). adb's own failures (device offline, unauthorized, not found, no
permissions) become one-line :class:`TransportError` messages that say how to
fix them; a device that drops is waited for (``adb wait-for-device`` / reconnect)
for ``recover_timeout_s`` before giving up.
"""

from __future__ import annotations

import os
import re
import selectors
import shlex
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.agent.bundle import agent_bundle
from harness.config.targets import Target, shell_env
from harness.errors import TransportError
from harness.transport import base as _base
from harness.transport.adb.shell import STATE_FIXES, explain_adb_error, new_nonce, parse_devices, valid_pgid
from harness.transport.adb.vendor_runner import start_runner
from harness.transport.base import AgentProcess, SubprocessAgentProcess, Transport

__all__ = ["ADBTransport", "ShellResult", "DEVICE_ROOT", "OutputCapped", "COMMAND_OUTPUT_MAX", "JOURNAL_MAX"]

DEVICE_ROOT = "/data/local/tmp/hilbench"
RC_MARK = "__HILBENCH_RC="
PG_MARK = "__HILBENCH_PG="
#: The most one adb invocation may print (stdout and stderr together): more is a one-line error, the adb
#: client is killed (and the shell command with it on the device), so host memory stays bounded.
COMMAND_OUTPUT_MAX = 16 * 1024 * 1024
#: The largest journal read back for recovery (a long job's samples and telemetry are a few MB).
JOURNAL_MAX = _base.JOURNAL_MAX
#: hilbench's folders under DEVICE_ROOT, made 0700 (DEVICE_ROOT too)
_ROOT_DIRS = ("agents", "blobs", "bin", "journal")

@dataclass(frozen=True)
class ShellResult:
    """A device shell command's exit status and output."""

    code: int
    stdout: str
    stderr: str


class OutputCapped(TransportError):
    """A device command printed more than the most hilbench reads from it (the command was stopped)."""


class _TooMuchOutput(Exception):
    def __init__(self, stdout: bytes) -> None:
        super().__init__("too much output")
        self.stdout = stdout


def _capture(cmd: list[str], input_bytes: bytes | None, timeout: float, limit: int) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run(cmd, capture_output=True, timeout=timeout)`` that reads at most ``limit`` bytes
    (stdout and stderr together): raises :class:`subprocess.TimeoutExpired` (with the stdout so far) or
    :class:`_TooMuchOutput`, the process killed either way."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    if input_bytes is not None:
        def feed() -> None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(input_bytes)
                proc.stdin.close()
            except OSError:
                pass

        threading.Thread(target=feed, daemon=True).start()
    bufs = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    out, err = bufs[proc.stdout.fileno()], bufs[proc.stderr.fileno()]
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            sel.register(proc.stderr, selectors.EVENT_READ)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    proc.kill()
                    proc.wait()
                    raise subprocess.TimeoutExpired(cmd, timeout, output=bytes(out), stderr=bytes(err))
                for key, _events in sel.select(left):
                    data = os.read(key.fd, 1 << 16)
                    if not data:
                        sel.unregister(key.fileobj)
                        continue
                    bufs[key.fd] += data
                    if len(out) + len(err) > limit:
                        proc.kill()
                        proc.wait()
                        raise _TooMuchOutput(bytes(out[:1 << 16]))
        try:
            code = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(cmd, timeout, output=bytes(out), stderr=bytes(err)) from None
        return subprocess.CompletedProcess(cmd, code, bytes(out), bytes(err))
    finally:
        for f in (proc.stdout, proc.stderr):
            f.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _tail(text: str, lines: int = 1) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _brief(command: str, limit: int = 60) -> str:
    """A command on one line, shortened: for messages."""
    one = " ".join(command.split())
    return one if len(one) <= limit else one[:limit - 3] + "..."


class ADBTransport(Transport):
    """Reaches an Android phone through ``adb``. ``target.adb`` holds the serial, the adb path and the host
    paths of the runner binaries; :mod:`harness.transport.adb.vendor_runner` drives those runners on the phone."""

    name = "adb"
    connect_timeout_s = 15.0
    command_timeout_s = 60.0
    recover_timeout_s = 20.0
    unauthorized_grace_s = 2.0

    @classmethod
    def device_key(cls, target: Target) -> tuple[Any, ...]:
        """``("adb", serial)``: one phone (the serial is empty when adb picks the only one attached)."""
        return ("adb", target.adb.serial or "")

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.adb_path = os.path.expanduser(target.adb.adb_path or "adb")
        self.serial: str | None = target.adb.serial
        self._props: dict[str, str] | None = None
        self._sha_tool: str | None = None
        self._known: set[str] = set()  # device paths verified during this connection

    # ------------------------------------------------------------------ adb invocations
    def _err(self, message: str, step: str, stderr_tail: str = "") -> TransportError:
        return TransportError(message, target=self.target.name, step=step, stderr_tail=stderr_tail)

    def adb_command(self, *args: str, device: bool = True) -> list[str]:
        """The adb command line for ``args`` (with ``-s SERIAL`` for device commands)."""
        cmd = [self.adb_path]
        if device and self.serial:
            cmd += ["-s", self.serial]
        return cmd + list(args)

    def _run(self, args: list[str], *, step: str, timeout: float | None = None, device: bool = True,
             input_bytes: bytes | None = None, what: str | None = None,
             on_timeout: Any = None, limit: int = COMMAND_OUTPUT_MAX) -> subprocess.CompletedProcess[bytes]:
        """One adb invocation, reading at most ``limit`` bytes of output. ``what`` names it in a timeout
        message; ``on_timeout(stdout_so_far)`` runs before the timeout (or too-much-output) error and returns
        what to add to its message."""
        cmd = self.adb_command(*args, device=device)
        timeout = self.command_timeout_s if timeout is None else timeout
        what = what or "`adb " + _brief(" ".join(args), 80) + "`"
        try:
            return _capture(cmd, input_bytes, timeout, limit)
        except _TooMuchOutput as exc:
            extra = on_timeout(exc.stdout) if on_timeout is not None else None
            raise OutputCapped(f"{what} sent more than {limit // 2**20} MB of output (the most hilbench reads from "
                               f"one command){extra or ': stopped reading'}", target=self.target.name,
                               step=step) from None
        except FileNotFoundError as exc:
            raise self._err(f"adb not found ({self.adb_path!r}): install Android platform-tools (Debian: "
                            "apt-get install adb) or set adb.adb_path in the target file", step) from exc
        except PermissionError as exc:
            raise self._err(f"cannot run adb at {self.adb_path!r}: permission denied", step) from exc
        except subprocess.TimeoutExpired as exc:
            extra = on_timeout(exc.stdout or b"") if on_timeout is not None else None
            raise self._err(f"{what} did not finish within {timeout:g} s{extra or ''}: is the device responsive "
                            "(`adb devices`)?", step) from exc
        except OSError as exc:
            raise self._err(f"cannot run adb: {exc.strerror or exc}", step) from exc

    def _fail(self, proc: subprocess.CompletedProcess[bytes], step: str, what: str) -> TransportError:
        err = proc.stderr.decode("utf-8", "replace") + proc.stdout.decode("utf-8", "replace")
        fix = explain_adb_error(err, self.serial)
        msg = fix or f"{what} failed (adb exit status {proc.returncode}): {_tail(err) or 'no message'}"
        return self._err(msg, step, _tail(err, 10))

    # ------------------------------------------------------------------ connection
    @property
    def is_tcp(self) -> bool:
        return bool(self.serial) and ":" in (self.serial or "") and not (self.serial or "").startswith("usb:")

    def devices(self) -> dict[str, str]:
        """serial -> state, as the adb server sees them now."""
        proc = self._run(["devices"], step="connect", device=False, timeout=self.connect_timeout_s)
        if proc.returncode != 0:
            raise self._fail(proc, "connect", "`adb devices`")
        return parse_devices(proc.stdout.decode("utf-8", "replace"))

    def state(self) -> str:
        """This device's state (``device`` when usable), ``not found`` when adb does not list it."""
        devs = self.devices()
        if self.serial:
            return devs.get(self.serial, "not found")
        return next(iter(devs.values())) if len(devs) == 1 else "not found"

    def connect(self) -> None:
        if self.is_tcp:
            assert self.serial is not None
            # A stale TCP session blocks a fresh one: drop it first (an error here means there was none).
            self._run(["disconnect", self.serial], step="connect", device=False, timeout=self.connect_timeout_s)
            proc = self._run(["connect", self.serial], step="connect", device=False, timeout=self.connect_timeout_s)
            out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
            # adb connect says "failed"/"unable" with exit status 0 in some versions: read the words.
            if re.search(r"authenticate|unauthorized", out, re.IGNORECASE):
                raise self._err(f"device {self.serial} is unauthorized: {STATE_FIXES['unauthorized']}", "connect")
            if proc.returncode != 0 or re.search(r"failed|unable|cannot|error", out, re.IGNORECASE):
                raise self._err(f"cannot connect to {self.serial}: {_tail(out) or 'no answer'}; is the phone on "
                                "the network with `adb tcpip 5555` done (or wireless debugging paired)?", "connect")
        elif not self.serial:
            devs = self.devices()
            ready = [s for s, st in devs.items() if st == "device"]
            if len(devs) > 1:
                raise self._err("more than one device is attached (" + ", ".join(sorted(devs)) + "): set "
                                "adb.serial in the target file", "connect")
            if not devs:
                raise self._err(f"no device attached: {STATE_FIXES['not found']}", "connect")
            self.serial = ready[0] if ready else next(iter(devs))
        self.wait_ready(self.connect_timeout_s, step="connect")
        self._known.clear()

    def wait_ready(self, timeout: float, *, step: str) -> None:
        """Until the device's state is ``device``; a state that says what is wrong fails early with its fix."""
        deadline = time.monotonic() + timeout
        bad_since: dict[str, float] = {}
        state = "not found"
        while True:
            state = self.state()
            if state == "device":
                return
            now = time.monotonic()
            first = bad_since.setdefault(state, now)
            if state in ("unauthorized", "no permissions") and now - first >= self.unauthorized_grace_s:
                break
            if now >= deadline:
                break
            time.sleep(0.2)
        who = f"device {self.serial}" if self.serial else "the device"
        fix = STATE_FIXES.get(state, f"state {state!r}")
        raise self._err(f"{who} is {state}: {fix}" if state != "not found" else f"{who} not found: {fix}", step)

    def recover(self, step: str) -> None:
        """After a drop: reconnect (TCP) or ``adb wait-for-device`` (USB), within ``recover_timeout_s``."""
        deadline = time.monotonic() + self.recover_timeout_s
        last: TransportError | None = None
        saved = self.connect_timeout_s
        while time.monotonic() < deadline:
            try:
                if self.is_tcp:
                    # no attempt may outlast the recovery window
                    self.connect_timeout_s = max(1.0, min(saved, deadline - time.monotonic()))
                    try:
                        self.connect()
                    finally:
                        self.connect_timeout_s = saved
                else:
                    self._run(["wait-for-device"], step=step, timeout=max(1.0, deadline - time.monotonic()))
                    self.wait_ready(max(1.0, deadline - time.monotonic()), step=step)
                return
            except TransportError as exc:
                last = exc
                time.sleep(0.5)
        raise self._err(f"the device did not come back within {self.recover_timeout_s:g} s"
                        + (f" ({last})" if last else ""), step)

    def close(self) -> None:
        """Nothing to close: adb keeps no session per transport (a TCP device stays connected for the next run)."""

    # ------------------------------------------------------------------ shell
    def shell(self, command: str, *, step: str = "shell", timeout: float | None = None, check: bool = False,
              retry: bool = False, input_bytes: bytes | None = None, limit: int = COMMAND_OUTPUT_MAX,
              what: str | None = None) -> ShellResult:
        """Run ``command`` with ``sh`` on the device; its real exit status comes back in ``code``.

        ``check`` raises on a non-zero status; ``retry`` waits for a dropped device once and runs it again
        (only for commands that can safely run twice). A command still running after ``timeout`` (default
        :attr:`command_timeout_s`) is killed on the device with its children, and a one-line
        :class:`TransportError` says so; so is one that prints more than ``limit`` bytes.

        The markers carry a random tag of this call (the command's own output cannot fake them); only the
        first line can be the process group, only the last the exit status."""
        nonce = new_nonce()
        pg_re = re.compile(re.escape(f"{PG_MARK}{nonce}:") + r"(\d+)\r?\n")
        rc_re = re.compile(re.escape(f"{RC_MARK}{nonce}:") + r"([0-9]{1,9})\r?\n?$")  # an exit status int() reads
        wrapped = f"echo \"{PG_MARK}{nonce}:$$\"; ( {command}\n); echo \"{RC_MARK}{nonce}:$?\""
        proc = self._run(["shell", wrapped], step=step, timeout=timeout, input_bytes=input_bytes,
                         what=what or f"`{_brief(command)}`", limit=limit,
                         on_timeout=lambda so_far: self._kill_timed_out(so_far, pg_re))
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        pg = pg_re.match(out)
        if pg is not None:
            out = out[pg.end():]
        m = rc_re.search(out)
        if m is None:
            # No marker: adb itself failed (or the connection dropped before the command ended).
            if retry:
                self.recover(step)
                return self.shell(command, step=step, timeout=timeout, check=check, retry=False,
                                  input_bytes=input_bytes, limit=limit, what=what)
            raise self._fail(proc, step, f"`{_brief(command)}`")
        result = ShellResult(int(m.group(1)), out[:m.start()], err)
        if check and result.code != 0:
            raise self._err(f"`{_brief(command, 80)}` exited with status {result.code}: "
                            f"{_tail(result.stderr or result.stdout) or 'no message'}", step,
                            _tail(result.stderr + result.stdout, 10))
        return result

    def _kill_timed_out(self, stdout: bytes, pg_re: re.Pattern[str]) -> str:
        """Kill the process group a timed-out :meth:`shell` command echoed first; the message's addition."""
        m = pg_re.match(stdout.decode("utf-8", "replace"))
        pgid = valid_pgid(m.group(1)) if m is not None else None
        if pgid is None:
            return " (it may still be running on the device: it never reported its process group)"
        if self.kill_group(pgid):
            return " and was stopped on the device"
        return f" (it may still be running on the device: `kill -9 -{pgid}` failed)"

    def kill_group(self, pgid: int) -> bool:
        """SIGKILL to the device's process group ``pgid`` (a shell and its children); True when sent. A pgid
        that is not an integer > 1 is refused (False): ``kill -9 -1`` would end every process of the user."""
        group = valid_pgid(pgid)
        if group is None:
            return False
        nonce = new_nonce()
        try:
            proc = self._run(["shell", f"kill -9 -{group} 2>/dev/null; echo {RC_MARK}{nonce}:$?"], step="kill",
                             timeout=10.0, limit=1 << 16)
        except TransportError:
            return False
        return f"{RC_MARK}{nonce}:0" in proc.stdout.decode("utf-8", "replace")

    def getprops(self) -> dict[str, str]:
        """All system properties (``getprop``), read once per connection."""
        if self._props is None:
            res = self.shell("getprop", step="getprop", retry=True, check=True)
            props: dict[str, str] = {}
            for line in res.stdout.splitlines():
                m = re.match(r"^\[([^\]]+)\]: \[(.*)\]\s*$", line)
                if m:
                    props[m.group(1)] = m.group(2)
            self._props = props
        return self._props

    # ------------------------------------------------------------------ files
    def _sha_cmd(self) -> str:
        if self._sha_tool is None:
            res = self.shell("command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo toybox sha256sum",
                             step="prepare", retry=True)
            self._sha_tool = res.stdout.strip() or "sha256sum"
        return self._sha_tool

    def remote_sha256(self, paths: list[str], *, step: str = "prepare") -> dict[str, str]:
        """device path -> sha256 for those of ``paths`` that exist."""
        if not paths:
            return {}
        res = self.shell(f"{self._sha_cmd()} {' '.join(shlex.quote(p) for p in paths)} 2>/dev/null", step=step,
                         retry=True)
        out: dict[str, str] = {}
        for line in res.stdout.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
                out[parts[1].strip()] = parts[0]
        return out

    def push(self, host_path: str, device_path: str, *, step: str = "upload") -> None:
        """``adb push`` one file as is (no cache); counts ``bytes_sent``."""
        proc = self._run(["push", host_path, device_path], step=step, timeout=max(self.command_timeout_s, 300.0))
        if proc.returncode != 0:
            raise self._fail(proc, step, f"adb push {Path(host_path).name}")
        try:
            self.bytes_sent += os.path.getsize(host_path)
        except OSError:
            pass

    def pull(self, device_path: str, host_path: str, *, step: str = "download") -> None:
        """``adb pull`` one file from the device (for files too large to read through :meth:`shell`)."""
        proc = self._run(["pull", device_path, host_path], step=step, timeout=max(self.command_timeout_s, 300.0))
        if proc.returncode != 0:
            raise self._fail(proc, step, f"adb pull {device_path}")

    def ensure(self, host_path: str, sha256: str, device_path: str, *, mode: str = "644",
               step: str = "upload") -> bool:
        """Make ``device_path`` hold the file with ``sha256``; True when it had to be sent."""
        if device_path in self._known:
            return False
        if self.remote_sha256([device_path], step=step).get(device_path) == sha256:
            self._known.add(device_path)
            return False
        self._push_verified(host_path, sha256, device_path, mode=mode, step=step)
        return True

    def _push_verified(self, host_path: str, sha256: str, device_path: str, *, mode: str, step: str) -> None:
        if not os.path.isfile(host_path):
            raise self._err(f"{host_path}: no such file to send to the device", step)
        parent = device_path.rsplit("/", 1)[0]
        tmp = f"{device_path}.tmp-{os.getpid()}-{int(time.monotonic_ns() % 10**9)}"
        self.ensure_root(step)
        self.shell(f"mkdir -p -m 700 {shlex.quote(parent)}", step=step, check=True, retry=True)
        try:
            self.push(host_path, tmp, step=step)
        except TransportError:
            self.recover(step)
            self.push(host_path, tmp, step=step)
        got = self.remote_sha256([tmp], step=step).get(tmp)
        if got != sha256:
            self.shell(f"rm -f {shlex.quote(tmp)}", step=step)
            raise self._err(f"{Path(host_path).name} arrived corrupted (sha256 {got or 'missing'} on the device, "
                            f"{sha256[:12]}... here): retry; check free space with `adb shell df /data`", step)
        self.shell(f"chmod {mode} {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(device_path)}",
                   step=step, check=True)
        self._known.add(device_path)

    def ensure_root(self, step: str) -> None:
        """:data:`DEVICE_ROOT` and its folders exist, private to adb's shell user (0700); once per connection."""
        if "root:0700" in self._known:
            return
        dirs = " ".join(shlex.quote(d) for d in [DEVICE_ROOT, *(f"{DEVICE_ROOT}/{sub}" for sub in _ROOT_DIRS)])
        self.shell(f"mkdir -p {dirs} && {{ chmod 700 {dirs} 2>/dev/null; true; }}", step=step, check=True,
                   retry=True)
        self._known.add("root:0700")

    def blob_path(self, sha256: str, host_path: str) -> str:
        suffix = Path(host_path).suffix if re.fullmatch(r"\.[A-Za-z0-9_]{1,12}", Path(host_path).suffix) else ""
        return f"{DEVICE_ROOT}/blobs/{sha256}{suffix}"

    def prepare(self, files: dict[str, tuple[str, str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for role, (host_path, sha256) in files.items():
            out[role] = self.blob_path(sha256, host_path)
            self.ensure(host_path, sha256, out[role])
        if self.target.python:
            self.check_python()
            out["agent"] = self._ensure_agent()
        return out

    def _host_file(self, host_path: str) -> Path:
        """A host path the target file names: ``~`` expanded, relative to the target file."""
        path = Path(os.path.expanduser(host_path))
        if not path.is_absolute() and self.target.source not in ("", "built-in", "--target"):
            path = Path(self.target.source).parent / path
        return path

    def _file_sha(self, path: Path, what: str, fix: str) -> str:
        import hashlib

        if path.is_dir():
            raise self._err(f"{what} ({path}) is a folder: name its files one by one", "prepare")
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise self._err(f"{what} ({path}) cannot be read: {exc.strerror or exc}; {fix}", "prepare") from exc

    def ensure_runner(self, name: str, host_path: str) -> str:
        """Push a runner binary and the target's ``adb.libraries`` (by content) into one folder; return the
        runner's device path. The folder (:meth:`runner_env` puts it on ``LD_LIBRARY_PATH``) is named for the
        set's content, so a changed binary or library gets a new folder and nothing half-updated is run."""
        import hashlib

        path = self._host_file(host_path)
        sha = self._file_sha(path, f"the {name} binary the target names",
                             f"build it for the phone's ABI and set adb.{name}")
        files = [(name, str(path), sha, "755")]
        for lib in self.target.adb.libraries:
            lpath = self._host_file(lib)
            lsha = self._file_sha(lpath, "a library in adb.libraries", "fix the path in the target file")
            files.append((lpath.name, str(lpath), lsha, "755"))
        names = [f[0] for f in files]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise self._err(f"two files named {dup} would land in the runner's folder: rename one in "
                            "adb.libraries", "prepare")
        folder = hashlib.sha256("".join(f"{n}\0{h}\n" for n, _, h, _ in sorted(files)).encode()).hexdigest()
        device_dir = f"{DEVICE_ROOT}/bin/{folder}"
        for fname, host, fsha, mode in files:
            self.ensure(host, fsha, f"{device_dir}/{fname}", mode=mode, step="prepare")
        return f"{device_dir}/{name}"

    def runner_env(self, device_runner: str) -> str:
        """The ``K=V ...`` prefix that starts a runner with the target's ``env``, its own folder first on
        ``LD_LIBRARY_PATH`` (``libonnxruntime.so``, external delegates) and, when the target lists
        libraries, on ``ADSP_LIBRARY_PATH`` (QNN's DSP skeletons). ``{runner_dir}`` in an env value is
        that folder."""
        folder = device_runner.rsplit("/", 1)[0]
        env = {k: v.replace("{runner_dir}", folder) for k, v in self.target.env.items()}
        ld = env.pop("LD_LIBRARY_PATH", None)
        parts = [f"LD_LIBRARY_PATH={shlex.quote(folder + (':' + ld if ld else ''))}"
                 "${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"]
        if self.target.adb.libraries and "ADSP_LIBRARY_PATH" not in env:
            env["ADSP_LIBRARY_PATH"] = f"{folder};/vendor/dsp/cdsp;/vendor/lib/rfsa/adsp;/system/lib/rfsa/adsp;/dsp"
        parts.append(self._env(env, "start runner"))
        return " ".join(p for p in parts if p) + " "

    def _env(self, env: dict[str, str], step: str) -> str:
        """``env`` as shell assignments, values quoted; a key that is not a shell variable name is refused."""
        try:
            return shell_env(env)
        except ValueError as exc:
            raise self._err(f"{exc}: fix env in {self.target.source}", step) from None

    def check_python(self) -> None:
        """That the target's ``python`` runs as adb's shell user (once per connection); else a one-line error
        pointing Termux users to an SSH target."""
        python = self.target.python
        if f"python:{python}" in self._known:
            return
        res = self.shell(f"{shlex.quote(python)} -c 'import sys; print(sys.version_info[0] * 100 + "
                         f"sys.version_info[1])' 2>&1", step="prepare", timeout=30.0, retry=True)
        version = res.stdout.strip().splitlines()[-1:] or [""]
        if res.code != 0 or not version[0].isdigit():
            raise self._err(f"the target's python ({python}) does not run as adb's shell user "
                            f"({_tail(res.stdout) or f'exit status {res.code}'}): name a Python the shell user "
                            "can run (a rooted phone, or one under /data/local/tmp), or reach Termux over SSH "
                            "(docs/android.md)", "prepare")
        if int(version[0]) < 307:
            raise self._err(f"the target's python ({python}) is Python {int(version[0]) // 100}."
                            f"{int(version[0]) % 100}: the agent needs 3.7 or newer", "prepare")
        self._known.add(f"python:{python}")

    def _ensure_agent(self) -> str:
        bundle = agent_bundle()
        device_path = f"{DEVICE_ROOT}/agents/{bundle.sha256}.pyz"
        if device_path in self._known:
            return device_path
        if self.remote_sha256([device_path]).get(device_path) == bundle.sha256:
            self._known.add(device_path)
            return device_path
        fd, tmp = tempfile.mkstemp(suffix=".pyz")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(bundle.data)
            self._push_verified(tmp, bundle.sha256, device_path, mode="644", step="upload agent")
        finally:
            os.unlink(tmp)
        return device_path

    def journal_path(self, run_id: str) -> str:
        return f"{DEVICE_ROOT}/journal/{run_id}.jsonl"

    def fetch_journal(self, path: str) -> list[str] | None:
        """The journal's lines; None when it cannot be read. One over :data:`JOURNAL_MAX` bytes is refused with
        a one-line :class:`TransportError` (reading stops there: host memory stays bounded)."""
        try:
            res = self.shell(f"cat {shlex.quote(path)}", step="fetch journal", retry=True, limit=JOURNAL_MAX,
                             what=f"the journal {path}")
        except OutputCapped:
            raise self._err(f"the journal {path} on the device is over {JOURNAL_MAX // 2**20} MB, more than "
                            "any job writes: not read, so this job cannot be recovered from it",
                            "fetch journal") from None
        except TransportError:
            return None
        return self.journal_lines(res.stdout.encode(), path) if res.code == 0 else None

    # ------------------------------------------------------------------ running
    def popen_shell(self, command: str, *, stdin: bool = False) -> subprocess.Popen[bytes]:
        """``adb shell command`` as a streaming subprocess (stdout, stderr pipes). Closing it does not stop
        the command on the device: have it echo ``$$`` and use :meth:`kill_group`."""
        cmd = self.adb_command("shell", command)
        try:
            return subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise self._err(f"cannot run adb ({self.adb_path!r}): {exc.strerror or exc}", "start agent") from exc

    def start_agent(self, payload: dict[str, Any], journal: str, args: list[str] | None = None) -> AgentProcess:
        """The regular agent where the target names a Python that adb's shell user can run (a rooted phone, or
        one under /data/local/tmp; Termux's is out of its reach: use an SSH target); otherwise the phone's own
        benchmark binary, driven by :mod:`harness.transport.adb.vendor_runner`."""
        self.ensure_root("start agent")
        if self.target.python:
            return self._start_python_agent(payload, journal, args)
        return start_runner(self, payload, journal)

    def _start_python_agent(self, payload: dict[str, Any], journal: str, args: list[str] | None) -> AgentProcess:
        import json

        self.check_python()
        agent = self._ensure_agent()
        env = self._env(self.target.env, "start agent")
        jdir = journal.rsplit("/", 1)[0]
        argv = args if args is not None else ["--job", "-"]
        command = (f"mkdir -p -m 700 {shlex.quote(jdir)} && {env + ' ' if env else ''}{shlex.quote(self.target.python)} "
                   f"{shlex.quote(agent)} --journal {shlex.quote(journal)} {' '.join(shlex.quote(a) for a in argv)}")
        proc = self.popen_shell(command, stdin=True)
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(payload).encode() + b"\n")
            proc.stdin.close()
        except OSError:
            pass
        return SubprocessAgentProcess(proc)
