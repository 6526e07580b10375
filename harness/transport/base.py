"""The transport contract: how the host reaches a device and starts the agent.

A transport is a context manager. Its life cycle::

    with make_transport(target) as t:          # connect(); close() on exit
        paths = t.prepare(job)                  # agent + model on the device, by sha256
        proc = t.start_agent(payload, journal)  # an AgentProcess streaming protocol lines
        for line in proc.lines(timeout): ...
        proc.wait(timeout)

This module is the whole contract the session uses (docs/protocol.md, "Transport contract"). What a
transport cannot do has a safe default here: a connection that is always up (:attr:`Transport.is_alive`),
no reconnecting (:attr:`Transport.can_reconnect` False; :meth:`Transport.reconnect` raises), no agent
left running after a drop (:meth:`Transport.agent_alive` False), no journal to recover from
(:meth:`Transport.fetch_journal` None). The session calls these methods directly, never probes for them.

Every method raises :class:`harness.errors.TransportError` (with target and step)
for anything that goes wrong reaching the device; third-party exceptions never
leave a transport.
"""

from __future__ import annotations

import collections
import re
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import IO, Any, ClassVar

from harness.agent.protocol import MAX_LINE_BYTES
from harness.config.targets import Target
from harness.errors import ProtocolError, TransportError

__all__ = ["Transport", "AgentProcess", "PipeAgentProcess", "SubprocessAgentProcess", "LineTimeout",
           "JOURNAL_MAX", "JOURNAL_MAX_LINES"]

#: The most a journal read back after a drop may weigh (bytes); the transports stop reading there.
JOURNAL_MAX = 64 * 1024 * 1024
#: The most lines taken from a journal: a job writes a few thousand (5,000 samples a line, telemetry about
#: once a second); millions of tiny lines would cost the host far more memory than their bytes.
JOURNAL_MAX_LINES = 200_000
_NONBLANK = re.compile(rb"[^\r\n]+")


class LineTimeout(TransportError):
    """No protocol line arrived within the time asked for. Callers of ``next_line`` catch it to poll again;
    one that escapes reads as a transport error."""

    def __init__(self, message: str = "no protocol line arrived within the time asked for") -> None:
        super().__init__(message)


class AgentProcess(ABC):
    """A running agent: its protocol lines, exit status and the tail of its stderr."""

    @abstractmethod
    def next_line(self, timeout: float | None) -> str | None:
        """The next protocol line, ``None`` at the end of the stream; raises
        :class:`LineTimeout` when nothing came within ``timeout`` seconds."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """Exit status (negative: killed by that signal); ``None`` if still running at the timeout."""

    @abstractmethod
    def kill(self) -> None: ...

    #: why :meth:`kill` could not reach the agent (the connection was down), None when it did or was not asked:
    #: the agent may then still run on the device, and the job's stored error says so
    kill_failed: str | None = None

    def close(self) -> None:  # noqa: B027 - optional hook
        """The session is done with this agent's lines (after :meth:`wait`): free what is buffered.
        Default: nothing to free."""

    @property
    def connection_lost(self) -> bool:
        """The connection to the device dropped before the agent's exit status arrived (the agent may still
        run there, writing its journal). Default False: a transport without a connection never loses it."""
        return False

    @property
    @abstractmethod
    def stderr_tail(self) -> str: ...

    def lines(self, timeout: float | None = None) -> Iterator[str]:
        while True:
            line = self.next_line(timeout)
            if line is None:
                return
            yield line


class PipeAgentProcess(AgentProcess):
    """An agent whose stdout and stderr are file objects (a subprocess, an SSH channel).

    Two daemon threads drain the streams so neither can fill up and block the agent. What a device
    writes is bounded on the host: a protocol line is read with a limit (``max_line_bytes``; a longer one
    is never held whole: the stream ends there and :meth:`next_line` raises ProtocolError), the lines
    waiting for the session hold at most ``max_queued_bytes`` (beyond that the pump stops reading, so a
    flood back-pressures the pipe), and a stderr line is kept to its first :attr:`STDERR_LINE` bytes."""

    #: the longest stderr line kept (the rest of a longer line is dropped), x ``tail_lines`` lines
    STDERR_LINE = 4096

    def __init__(self, stdout: IO[bytes], stderr: IO[bytes] | None, tail_lines: int = 40, *,
                 max_line_bytes: int | None = None, max_queued_bytes: int | None = None) -> None:
        self.max_line_bytes = max_line_bytes or MAX_LINE_BYTES
        self.max_queued_bytes = max(max_queued_bytes or self.max_line_bytes, 1)
        self._lines: collections.deque[str | None | ProtocolError] = collections.deque()
        self._queued = 0  # characters of the lines in _lines
        self._closed = False
        self._cond = threading.Condition()
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._out = threading.Thread(target=self._pump_out, args=(stdout,), daemon=True)
        self._out.start()
        self._err: threading.Thread | None = None
        if stderr is not None:
            self._err = threading.Thread(target=self._pump_err, args=(stderr,), daemon=True)
            self._err.start()

    def _put(self, item: str | None | ProtocolError) -> bool:
        """Queue ``item``, waiting while the queue is full; False once :meth:`close` was called."""
        size = len(item) if isinstance(item, str) else 0
        with self._cond:
            while self._queued and self._queued + size > self.max_queued_bytes and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return False
            self._lines.append(item)
            self._queued += size
            self._cond.notify_all()
            return True

    def _pump_out(self, stream: IO[bytes]) -> None:
        limit = self.max_line_bytes
        end: None | ProtocolError = None
        try:
            while True:
                raw = stream.readline(limit + 1)
                if not raw:
                    break
                if len(raw) > limit and not raw.endswith(b"\n"):
                    end = ProtocolError(f"agent: a protocol line longer than {limit} bytes")
                    break
                if not self._put(raw.decode("utf-8", "replace")):
                    return
        except (OSError, ValueError, EOFError):
            pass
        finally:
            if end is not None:
                self._put(end)
            self._put(None)

    def _pump_err(self, stream: IO[bytes]) -> None:
        cap = self.STDERR_LINE
        skipping = False  # inside a line longer than cap: its rest is dropped
        try:
            for raw in iter(lambda: stream.readline(cap), b""):
                whole = raw.endswith(b"\n")
                if not skipping:
                    text = raw.decode("utf-8", "replace").rstrip("\n")
                    self._tail.append(text if whole else text + " [...]")
                skipping = not whole
        except (OSError, ValueError, EOFError):
            pass

    def next_line(self, timeout: float | None) -> str | None:
        """The next line; None at the end of the stream. Raises LineTimeout, or ProtocolError where the agent
        wrote a line longer than ``max_line_bytes`` (the stream ends there)."""
        with self._cond:
            if not self._lines and not self._cond.wait_for(lambda: bool(self._lines), timeout):
                raise LineTimeout()
            item = self._lines.popleft()
            if isinstance(item, str):
                self._queued -= len(item)
            elif item is not None:
                self._lines.appendleft(item)  # the stream stays ended: it says so again
            self._cond.notify_all()
        if isinstance(item, ProtocolError):
            raise item
        return item

    def close(self) -> None:
        """Done reading: drop what is queued and let the pump thread go (it stops reading)."""
        with self._cond:
            self._closed = True
            self._lines.clear()
            self._queued = 0
            self._cond.notify_all()

    def join_stderr(self, timeout: float = 2.0) -> None:
        if self._err is not None:
            self._err.join(timeout)

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._tail)


class SubprocessAgentProcess(PipeAgentProcess):
    """An agent reached through a local child process (the agent itself, ``adb shell``, ...)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        super().__init__(proc.stdout, proc.stderr)
        self.proc = proc

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.join_stderr()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Transport(ABC):
    """Reaches one target. Subclasses: LocalTransport, SSHTransport, ADBTransport, FakeTransport (tests)."""

    #: the name target files and stored runs use (``transport = "ssh"``); the registry
    #: (:data:`harness.transport.TRANSPORT_CLASSES`) maps it back to the class
    name: ClassVar[str] = ""
    #: whether :meth:`reconnect` can re-open a dropped connection; when False the session opens the
    #: transport with one :meth:`connect` and treats a drop as final
    can_reconnect: ClassVar[bool] = False
    #: whether a session probes the device through this transport before its first job (the agent's
    #: ``--probe`` hello and :meth:`run_shell` platform checks, stored with every run)
    probes_device: ClassVar[bool] = False

    @classmethod
    def device_key(cls, target: Target) -> tuple[Any, ...]:
        """What one physical device is, whatever the target is called (two targets with the same key never
        measure at once). Default: the transport's name and the target's name."""
        return (target.transport, target.name)

    @classmethod
    def preflight(cls, target: Target) -> None:
        """Check what this host can before anything runs (files the target names: an SSH identity, known_hosts);
        raises ConfigError naming the file and where it was named. Default: nothing to check."""
        return None

    def __init__(self, target: Target) -> None:
        self.target = target
        #: bytes shipped to the device since connect (agent, models, inputs)
        self.bytes_sent = 0
        #: whether a connection was ever open: a failed first connection says ``connect``, a later one ``reconnect``
        self.was_connected = False

    def __enter__(self) -> Transport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the connection (no-op for local)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Close the connection; never raises."""

    @property
    def is_alive(self) -> bool:
        """Whether the connection is up, as far as this side knows. Default True (nothing to lose)."""
        return True

    def reconnect(self, *, stop: threading.Event | None = None, attempts: int | None = None,
                  first_delay_s: float | None = None) -> None:
        """Open the connection again after a drop: ``attempts`` tries, waiting ``first_delay_s`` and then
        twice as long before each next one; a set ``stop`` (Ctrl-C) ends the waiting at once. Raises the
        last TransportError when the device stays away. Only where :attr:`can_reconnect`; the default
        raises a TransportError saying this transport cannot reconnect."""
        raise TransportError("the connection dropped and this transport cannot reconnect", target=self.target.name)

    #: reconnect attempts after a drop, waiting ``reconnect_backoff_s`` x 2^n (at most 8 s) between them
    reconnect_attempts = 6
    reconnect_backoff_s = 0.5

    def _connect_with_backoff(self, *, stop: threading.Event | None, attempts: int | None,
                              first_delay_s: float | None, final: Callable[[TransportError], bool]) -> None:
        """:meth:`reconnect` for transports that can: :meth:`connect` up to ``attempts`` times with backoff,
        stop-aware. An error for which ``final(error)`` is true (a refused host key or login) is not retried."""
        attempts = self.reconnect_attempts if attempts is None else attempts
        delay = self.reconnect_backoff_s if first_delay_s is None else first_delay_s
        step = "reconnect" if self.was_connected else "connect"
        last: TransportError | None = None
        for attempt in range(attempts):
            if attempt:
                if stop is not None:
                    stop.wait(delay)
                else:
                    time.sleep(delay)
                delay = min(delay * 2, 8.0)
            if stop is not None and stop.is_set():
                raise TransportError(f"interrupted (Ctrl-C) while {step}ing", target=self.target.name,
                                     step=step) from last
            try:
                self.connect()
            except TransportError as exc:
                if final(exc):
                    raise
                last = exc
                continue
            self.was_connected = True
            return
        assert last is not None
        if attempts == 1:
            raise last
        # the last error without its own "target: step: " when the step is the one named here
        detail = last.detail if last.step in ("", step, "connect") else f"{last.step}: {last.detail}"
        raise TransportError(f"no connection after {attempts} attempts: {detail}", target=self.target.name,
                             step=step) from last

    def lab_record(self) -> dict[str, Any] | None:
        """The lab place this transport holds (a labgrid place: coordinator, place, exporter, reservation), stored
        with each run; None where the target is not a lab place."""
        return None

    def run_shell(self, command: str, timeout: float = 20.0, *, step: str = "doctor") -> tuple[int, str]:
        """Run an ``sh`` command on the device for doctor's platform checks (power mode, throttling) and the vendor
        runners (harness/transport/shell_runner.py): (exit status, stdout); ``step`` names it in errors. Default:
        status 127 and no output, as a device without a shell would answer."""
        return 127, ""

    def agent_alive(self, journal: str) -> bool:
        """Whether the agent that writes ``journal`` still runs on the device (asked after a reconnect).
        Default False: no agent outlives its connection."""
        return False

    def kill_agent(self, journal: str) -> None:  # noqa: B027 - optional hook
        """Kill the agent that writes ``journal`` (and what it started) on the device. Default: nothing
        to kill (see :meth:`agent_alive`)."""

    @abstractmethod
    def prepare(self, files: dict[str, tuple[str, str]]) -> dict[str, str]:
        """Make ``files`` (role -> (host path, sha256)) and the agent available on the device.
        Returns role -> device path, with ``agent`` for the agent itself."""

    @abstractmethod
    def start_agent(self, payload: dict[str, Any], journal: str, args: list[str] | None = None) -> AgentProcess:
        """Start the agent with ``payload`` as its job (``args`` replaces ``--job -``)."""

    def journal_path(self, run_id: str) -> str:
        """Where the agent journals ``run_id`` on the device."""
        return f"{self.target.workdir.rstrip('/')}/journal/{run_id}.jsonl"

    def fetch_journal(self, path: str) -> list[str] | None:
        """The journal's lines, or None when it cannot be read (used to recover a run)."""
        return None

    def journal_lines(self, data: bytes, path: str) -> list[str]:
        """The non-blank lines of a journal's bytes (at most :data:`JOURNAL_MAX` of them, as read), up to the
        first line longer than the protocol allows (what came before it stands, as for a line cut short).
        Raises a one-line TransportError when it holds more than :data:`JOURNAL_MAX_LINES` lines."""
        lines: list[str] = []
        for m in _NONBLANK.finditer(data):
            if m.end() - m.start() > MAX_LINE_BYTES:
                break
            if len(lines) >= JOURNAL_MAX_LINES:
                raise TransportError(f"the journal {path} on the device holds more than {JOURNAL_MAX_LINES} lines, "
                                     "more than any job writes: not read, so this job cannot be recovered from it",
                                     target=self.target.name, step="fetch journal")
            lines.append(m.group().decode("utf-8", "replace"))
        return lines
