"""FakeTransport: a stand-in device that replays a script. For tests: hilbench's own, and your tests of plans.

Nothing runs and nothing is measured. Each job's "agent" is a :class:`FakeScript`: the protocol lines it
writes (dicts, or raw strings sent as they are), pauses between them (:class:`Delay`), and faults: the
connection drops after N lines (the agent may run on and finish on the "device", where its journal holds
what it wrote), the agent dies with an exit status, the device refuses the next k connection attempts.
The real session (``run_jobs`` / ``Runner``) reads it through the transport contract
(:mod:`harness.transport.base`), so reruns, recovery from the journal, timeouts and Ctrl-C are tested
in milliseconds; the real sshd/adb/qemu tests stay the end-to-end layer.

Runs stored through it are marked as what they are: ``transport`` is ``"fake"`` and ``stand_in`` is true.
A target file cannot name this transport (it needs its script): build the target with :func:`fake_target`
and hand the transport to ``run_jobs``::

    target = fake_target("bench")
    fake = FakeTransport(target, [FakeScript(agent_run(timed=20)),
                                  FakeScript(agent_run(timed=20), drop_after=3, finished_on_device=True)])
    jobs = expand_jobs(plan, {}, only_targets=[target])
    run_jobs(jobs, store, plan=plan, transports=lambda t: fake)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.config.targets import Target
from harness.errors import TransportError
from harness.transport.base import AgentProcess, LineTimeout, Transport

__all__ = ["FakeTransport", "FakeAgentProcess", "FakeScript", "Delay", "fake_target", "agent_run"]


@dataclass(frozen=True)
class Delay:
    """A pause in a script: the next line comes ``seconds`` after the one before it (a slow phase)."""

    seconds: float


Line = dict[str, Any] | str | Delay


@dataclass
class FakeScript:
    """What one job's agent does on the fake device.

    ``lines``: protocol messages (a dict is sent as JSON, a string as it is) and :class:`Delay` pauses.
    ``exit_code``: its exit status once the lines are out (negative: killed by that signal), with
    ``stderr`` as the tail of its stderr. ``drop_after``: the connection drops once that many lines reached
    the host (0: before the first); the device keeps the journal of what was written, every line when
    ``finished_on_device`` (the agent ran to its end without the host), and the agent still runs there for
    ``runs_on_s`` seconds. ``refuse_reconnects``: after the drop, that many connection attempts are refused."""

    lines: Sequence[Line] = ()
    exit_code: int = 0
    stderr: str = ""
    drop_after: int | None = None
    finished_on_device: bool = False
    runs_on_s: float = 0.0
    refuse_reconnects: int = 0


def _text(item: dict[str, Any] | str) -> str:
    return json.dumps(item) if isinstance(item, dict) else item


def fake_target(name: str = "fake", **fields: Any) -> Target:
    """A target for a :class:`FakeTransport` (``transport = "fake"``), named as the stand-in it is."""
    fields.setdefault("description", "a FakeTransport stand-in device: replays a script, measures nothing")
    fields.setdefault("source", "FakeTransport")
    return Target(name=name, transport="fake", **fields)


def agent_run(*, warmup: int = 5, timed: int = 20, latency_ns: int = 1_000_000, backend: str = "synthetic",
              extra: Sequence[Line] = ()) -> list[Line]:
    """The lines of a plausible, complete agent run (hello, load, warmup, timed samples, result) for a plan
    with ``warmup`` and ``timed`` counts; ``extra`` goes before the result. Made-up numbers, not a measurement."""
    t = 1_000_000_000

    def phase(name: str, event: str, **more: Any) -> dict[str, Any]:
        return {"v": 1, "type": "phase", "t_ns": t, "phase": name, "event": event, **more}

    lines: list[Line] = [
        {"v": 1, "type": "hello", "t_ns": t, "agent_version": "0.0.0-fake", "protocol": 1, "python": "3.11.0",
         "os": "Linux", "os_release": "fake", "machine": "fake", "cpu_model": "FakeTransport stand-in",
         "cpu_count": 1, "device_model": "FakeTransport stand-in", "emulated": None,
         "backends": {backend: {"available": True, "version": "fake", "stand_in": True}}},
        phase("load", "begin"), phase("load", "end", duration_ns=1000),
        phase("warmup", "begin"), phase("warmup", "end", duration_ns=warmup * latency_ns),
        phase("timed", "begin"),
        {"v": 1, "type": "sample", "t_ns": t, "phase": "timed", "start": 0, "t0_ns": t,
         "latency_ns": [latency_ns] * timed, "offset_ns": [i * latency_ns for i in range(timed)]},
        phase("timed", "end", duration_ns=timed * latency_ns),
        *extra,
        {"v": 1, "type": "result", "t_ns": t, "load_ns": 1000, "first_ns": latency_ns,
         "warmup": {"count": warmup, "duration_ns": warmup * latency_ns, "stop_reason": "count"},
         "timed": {"count": timed, "duration_ns": timed * latency_ns, "stop_reason": "count"},
         "memory": {}, "effective_settings": {}},
    ]
    return lines


class FakeAgentProcess(AgentProcess):
    """One replayed agent: hands out its script's lines at their times, then its exit status."""

    def __init__(self, transport: FakeTransport, script: FakeScript, journal: str) -> None:
        self.transport = transport
        self.script = script
        self.journal = journal
        self._items = list(script.lines)
        self._i = 0  # next item
        self._sent = 0  # protocol lines handed out
        self._ready_at = time.monotonic()  # when the pending line may go out
        self._killed = threading.Event()
        self._lost = False
        self._ended = False

    def _drop(self) -> None:
        self._lost = True
        rest = [_text(x) for x in self._items[self._i:] if not isinstance(x, Delay)]
        self.transport._dropped(self.journal, rest if self.script.finished_on_device else [], self.script)

    def next_line(self, timeout: float | None) -> str | None:
        drop = self.script.drop_after
        if drop is not None and self._sent >= drop and not self._lost and not self._killed.is_set():
            self._drop()
        if self._lost or self._killed.is_set() or self._ended:
            return None
        while self._i < len(self._items):
            item = self._items[self._i]
            if not isinstance(item, Delay):
                break
            self._ready_at += item.seconds
            self._i += 1
        if self._i >= len(self._items):
            self._ended = True
            return None
        wait = self._ready_at - time.monotonic()
        if wait > 0:
            if timeout is not None and wait > timeout:
                self._killed.wait(max(timeout, 0.0))
                if self._killed.is_set():
                    return None
                raise LineTimeout()
            if self._killed.wait(wait):
                return None
        item = self._items[self._i]
        assert not isinstance(item, Delay)
        self._i += 1
        self._sent += 1
        self._ready_at = time.monotonic()
        text = _text(item)
        self.transport.journals.setdefault(self.journal, []).append(text)
        return text + "\n"

    def wait(self, timeout: float | None = None) -> int | None:
        if self._killed.is_set():
            return -9
        if self._lost:
            return None
        if self._ended:
            return self.script.exit_code
        self._killed.wait(timeout)
        return -9 if self._killed.is_set() else None

    def kill(self) -> None:
        self._killed.set()

    @property
    def connection_lost(self) -> bool:
        return self._lost and not self._killed.is_set()

    @property
    def stderr_tail(self) -> str:
        return self.script.stderr


class FakeTransport(Transport):
    """A stand-in transport for tests: replays :class:`FakeScript`\\ s instead of reaching a device.

    ``scripts`` answers each agent start in turn (a rerun takes the next one; the last one repeats), or is a
    function of the job payload. ``refuse_connects``: the first that many connection attempts are refused.
    What happened is kept for assertions: :attr:`started` (the payloads), :attr:`journals` (journal path ->
    lines on the "device"), :attr:`killed` (journals whose agent was killed after a drop), :attr:`connects`."""

    name = "fake"
    can_reconnect = True
    #: attempts per :meth:`reconnect`, waiting ``reconnect_backoff_s`` x 2^n between them (no waiting: fast tests)
    reconnect_attempts = 3
    reconnect_backoff_s = 0.0

    def __init__(self, target: Target, scripts: Sequence[FakeScript] | Callable[[dict[str, Any]], FakeScript], *,
                 refuse_connects: int = 0) -> None:
        super().__init__(target)
        self.scripts = scripts
        self.started: list[dict[str, Any]] = []
        self.journals: dict[str, list[str]] = {}
        self.killed: list[str] = []
        self.connects = 0
        self._refuse = refuse_connects
        self._up = False
        self._running: dict[str, tuple[float, list[str]]] = {}  # journal -> (runs until, lines still to come)
        self._lock = threading.Lock()

    def _err(self, message: str, step: str) -> TransportError:
        return TransportError(message, target=self.target.name, step=step)

    def connect(self) -> None:
        with self._lock:
            if self._refuse > 0:
                self._refuse -= 1
                raise self._err("connection refused (a FakeTransport fault)", "connect")
            self._up = True
            self.connects += 1

    def close(self) -> None:
        self._up = False

    @property
    def is_alive(self) -> bool:
        return self._up

    def reconnect(self, *, stop: threading.Event | None = None, attempts: int | None = None,
                  first_delay_s: float | None = None) -> None:
        """The base class's backoff loop, as SSH's (nothing is final here: every refusal is retried)."""
        self._connect_with_backoff(stop=stop, attempts=attempts, first_delay_s=first_delay_s, final=lambda exc: False)

    def prepare(self, files: dict[str, tuple[str, str]]) -> dict[str, str]:
        if not self._up:
            raise self._err("not connected (the connection dropped)", "prepare")
        out = {role: f"/fake/blobs/{sha}" for role, (_path, sha) in files.items()}
        out["agent"] = "/fake/agent.pyz"
        return out

    def _script(self, payload: dict[str, Any]) -> FakeScript:
        if callable(self.scripts):
            return self.scripts(payload)
        if not self.scripts:
            raise self._err("the FakeTransport has no script for this job", "start agent")
        n = len(self.started) - 1
        return self.scripts[min(n, len(self.scripts) - 1)]

    def start_agent(self, payload: dict[str, Any], journal: str, args: list[str] | None = None) -> FakeAgentProcess:
        if not self._up:
            raise self._err("not connected (the connection dropped)", "start agent")
        self.started.append(payload)
        script = self._script(payload)
        self.journals[journal] = []
        return FakeAgentProcess(self, script, journal)

    def _dropped(self, journal: str, rest: list[str], script: FakeScript) -> None:
        """The connection dropped under the agent of ``journal``; ``rest`` is what it still writes there."""
        with self._lock:
            self._up = False
            self._refuse += script.refuse_reconnects
            self._running[journal] = (time.monotonic() + script.runs_on_s, rest)

    def agent_alive(self, journal: str) -> bool:
        with self._lock:
            entry = self._running.get(journal)
            if entry is None:
                return False
            until, rest = entry
            if time.monotonic() < until:
                return True
            del self._running[journal]
            self.journals.setdefault(journal, []).extend(rest)
            return False

    def kill_agent(self, journal: str) -> None:
        with self._lock:
            self._running.pop(journal, None)
            self.killed.append(journal)

    def fetch_journal(self, path: str) -> list[str] | None:
        self.agent_alive(path)  # an agent whose time is up has written its rest
        lines = self.journals.get(path)
        return None if lines is None else [line for line in lines if line.strip()]
