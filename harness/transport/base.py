"""The transport contract: how the host reaches a device and starts the agent.

A transport is a context manager. Its life cycle::

    with make_transport(target) as t:          # connect(); close() on exit
        paths = t.prepare(job)                  # agent + model on the device, by sha256
        proc = t.start_agent(payload, journal)  # an AgentProcess streaming protocol lines
        for line in proc.lines(timeout): ...
        proc.wait(timeout)

Every method raises :class:`harness.errors.TransportError` (with target and step)
for anything that goes wrong reaching the device; third-party exceptions never
leave a transport.
"""

from __future__ import annotations

import collections
import queue
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import IO, Any

from harness.targets import Target

__all__ = ["Transport", "AgentProcess", "PipeAgentProcess", "SubprocessAgentProcess", "LineTimeout"]


class LineTimeout(Exception):
    """No protocol line arrived within the time asked for."""


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

    Two daemon threads drain the streams so neither can fill up and block the agent."""

    def __init__(self, stdout: IO[bytes], stderr: IO[bytes] | None, tail_lines: int = 40) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._out = threading.Thread(target=self._pump_out, args=(stdout,), daemon=True)
        self._out.start()
        self._err: threading.Thread | None = None
        if stderr is not None:
            self._err = threading.Thread(target=self._pump_err, args=(stderr,), daemon=True)
            self._err.start()

    def _pump_out(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                self._queue.put(raw.decode("utf-8", "replace"))
        except (OSError, ValueError, EOFError):
            pass
        finally:
            self._queue.put(None)

    def _pump_err(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                self._tail.append(raw.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError, EOFError):
            pass

    def next_line(self, timeout: float | None) -> str | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise LineTimeout() from None

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
    """Reaches one target. Subclasses: LocalTransport, SSHTransport, ADBTransport."""

    def __init__(self, target: Target) -> None:
        self.target = target
        #: bytes shipped to the device since connect (agent, models, inputs)
        self.bytes_sent = 0

    def __enter__(self) -> Transport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the connection (no-op for local)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Close the connection; never raises."""

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
