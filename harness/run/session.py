"""Running a plan: jobs to agents to the store, one session per `hilbench run` (each job's messages become
its row in :mod:`harness.run.jobrun`).

Jobs on different targets run in parallel (one worker thread per target); jobs
on one target run one at a time, so two measurements never share a device.
Each job's results are written to the store as soon as it ends, so stopping at
any moment keeps every finished job.

Stopping (docs/reliability.md, "Signals and faults during a run"): Ctrl-C (SIGINT), SIGTERM and SIGHUP
end a run alike when :func:`run_jobs` runs in the main thread: the agents in flight are killed (their
process groups), their jobs stored as ``interrupted``, the session row closed as ``interrupted``, and
:class:`Stopped` (a KeyboardInterrupt) tells the caller which signal it was. Off the main thread no
handler is installed (Python allows none there): stop such a run with :meth:`Runner.interrupt` (the
``on_runner`` callback hands the runner over). A store that stops taking writes mid-run ends the job it
was writing as a stored ``store`` error where anything can still be written, stops the run, and
:func:`run_jobs` raises a one-line StoreError saying what was kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.agent.protocol import decode_line
from harness.config.plan import Job, Plan
from harness.config.targets import Target
from harness.errors import ConfigError, HilbenchError, ProtocolError, StoreError, TransportError
from harness.run.jobrun import JobRun, Progress, host_facts, now_utc, take_line
from harness.storage import mask_argv
from harness.store import Store, new_id
from harness.transport import LineTimeout, Transport, make_transport, transport_class

__all__ = ["Progress", "SessionResult", "Stopped", "run_jobs", "host_facts", "device_key", "STOP_SIGNALS"]

_log = logging.getLogger("hilbench")

#: The signals that end a run like Ctrl-C (in the main thread): the exit status is 128 + the signal's number.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A run was stopped by ``signum`` (SIGTERM, SIGHUP; a plain KeyboardInterrupt is Ctrl-C). It is a
    KeyboardInterrupt, so whatever stops on Ctrl-C stops on it too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def signal_name(signum: int) -> str:
    """``Ctrl-C`` for SIGINT, else the signal's name (``SIGTERM``)."""
    if signum == signal.SIGINT:
        return "Ctrl-C"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass
class SessionResult:
    session_id: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    interrupted: bool = False
    #: the signal that stopped the run (SIGINT for Ctrl-C), None when nothing did
    signal: int | None = None
    #: jobs still being stored (as interrupted) when the session closed: a second Ctrl-C stopped the waiting
    unfinished: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] != "ok"]


def _interrupted_message(why: str) -> str:
    return f"the run was interrupted ({why})"


#: Beyond a job's lock wait the host gives the agent this long to say it gave up, then stops it itself.
LOCK_GRACE_S = 30.0


def device_key(target: Any) -> tuple[Any, ...]:
    """What one physical device is, whatever the target is called: the transport and its resolved endpoint
    (host and port after ~/.ssh/config, the adb serial). Two targets with the same key never measure at once.
    Each transport says what one device is (:meth:`Transport.device_key`)."""
    try:
        cls = transport_class(target)
    except ConfigError:
        return (target.transport, target.name)  # running it will say what is wrong
    return cls.device_key(target)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == 9 else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


class _SerialProgress(Progress):
    """Passes events on one at a time: worker threads of several targets never interleave a display. A
    display that can no longer be written (its terminal closed: SIGHUP) goes quiet; it never costs a job."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self._lock = threading.RLock()
        self._gone = False

    def _show(self, event: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._gone:
                return
            try:
                event(*args)
            except OSError:
                self._gone = True

    def session_started(self, session_id: str, jobs: list[Job], skipped: int) -> None:
        self._show(self.inner.session_started, session_id, jobs, skipped)

    def job_started(self, job: Job, run_id: str) -> None:
        self._show(self.inner.job_started, job, run_id)

    def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None:
        self._show(self.inner.phase, job, phase, event, info)

    def device_lock(self, job: Job, event: str, info: dict[str, Any]) -> None:
        self._show(self.inner.device_lock, job, event, info)

    def job_finished(self, job: Job, row: dict[str, Any]) -> None:
        self._show(self.inner.job_finished, job, row)


class Runner:
    """Runs jobs through transports into a store. Use :func:`run_jobs`."""

    def __init__(self, store: Store, session_id: str, labels: dict[str, str], progress: Progress, *,
                 transports: Callable[[Target], Transport] | None = None, no_wait: bool = False) -> None:
        self.store = store
        #: ``--no-wait``: a job whose device is busy (another run holds its lock) fails at once, and the
        #: device's later jobs are stored as busy without starting
        self.no_wait = no_wait
        self._busy_devices: dict[tuple[Any, ...], str] = {}  # device key -> why its jobs are not started (--no-wait)
        #: builds each target's transport (``make_transport``; tests pass FakeTransports)
        self.make_transport = transports or make_transport
        self.session_id = session_id
        self.labels = labels
        self.progress = progress if isinstance(progress, _SerialProgress) else _SerialProgress(progress)
        self.stop = threading.Event()
        self._lock = threading.RLock()
        self._active: set[Any] = set()
        self._unreachable: dict[int, str] = {}  # id(transport) -> why it did not come back
        self._facts: dict[int, dict[str, Any] | None] = {}  # id(transport) -> its device facts
        self._carry: dict[int, int] = {}  # id(transport) -> bytes sent before its first job (the probe's agent)
        self._reconnects: dict[int, int] = {}  # id(transport) -> connections restored after a drop
        self.rows: list[dict[str, Any]] = []
        #: why the run stopped, as stored with its interrupted jobs ("Ctrl-C", "SIGTERM", ...)
        self.stop_reason = "Ctrl-C"
        #: the first write the store refused (the run stops there), and the jobs whose results it lost
        self.store_error: StoreError | None = None
        self.lost: list[str] = []
        self._open: dict[int, Job] = {}  # id(job) -> job, for jobs started and not yet stored
        self._busy = 0  # workers in run_device
        self._session: tuple[Store, dict[str, Any]] | None = None  # the session row once closed (late jobs update it)
        #: room kept in the store (Store.reserve) so that a disk that fills up mid-run still takes the job's
        #: error row and the closed session row
        self.reserve: Path | None = None

    #: ``--no-wait`` and the session's id (see __init__)
    no_wait = False
    session_id = ""
    #: how often a job whose connection dropped (and whose agent did not finish) is run again
    max_reruns = 2
    #: connection attempts at the start of a target's jobs, waiting ``connect_backoff_s`` x 2^n between them
    connect_attempts = 3
    connect_backoff_s = 0.5
    #: probe each target once per session for the facts doctor shows (stored with every run)
    probe_devices = True
    #: bytes kept free in the store for the session's last rows: a job's error row (~60 kB) and the session row
    reserve_bytes = 256 * 1024

    def release_reserve(self) -> bool:
        """Give the store's reserved room back; True when there was some to give."""
        with self._lock:
            path, self.reserve = self.reserve, None
        if path is None:
            return False
        with contextlib.suppress(OSError):
            os.unlink(path)
        return True

    def run_device(self, groups: list[list[Job]]) -> None:
        """Run the job lists of targets that are one device (one endpoint), one target after another."""
        with self._lock:
            self._busy += 1
        try:
            for jobs in groups:
                if self.stop.is_set():
                    return
                self.run_target(jobs)
        finally:
            with self._lock:
                self._busy -= 1

    def busy(self) -> bool:
        """Whether a worker is in :meth:`run_device` (one that has not begun yet sees :attr:`stop` first)."""
        with self._lock:
            return self._busy > 0

    def _connect(self, transport: Transport) -> None:
        """Open ``transport`` with a few bounded, stop-aware retries, so that a blip at start-up does not fail
        every job of the device. Host key and login refusals are not retried (the SSH transport knows them)."""
        if not transport.can_reconnect:
            transport.connect()
            return
        transport.reconnect(stop=self.stop, attempts=self.connect_attempts, first_delay_s=self.connect_backoff_s)

    def _probe_facts(self, transport: Transport, target: Any) -> None:
        if not self.probe_devices or not transport.probes_device or self.stop.is_set():
            self._facts[id(transport)] = None
            return
        from harness.doctor.checks import device_facts

        try:
            facts: dict[str, Any] | None = device_facts(transport, target)
        except Exception as exc:  # noqa: BLE001 - the facts are context: never lose a job for them
            facts = {"version": 1, "error": f"{type(exc).__name__}: {exc}"}
        self._facts[id(transport)] = facts

    def run_target(self, jobs: list[Job]) -> None:
        """Run ``jobs`` (all on one target) one after another. A target that cannot be reached gets every
        job stored as a ``transport`` error; a connection that drops is re-opened before the next job."""
        transport: Transport | None = None
        try:
            transport = self.make_transport(jobs[0].target)
            self._connect(transport)
        except Exception as exc:  # noqa: BLE001 - a bug while connecting costs this device's jobs, stored
            if transport is not None:
                transport.close()
            why = str(exc) if isinstance(exc, HilbenchError) else (
                f"{jobs[0].target.name}: hilbench failed to connect (a bug, please report it): "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
            # A labgrid place held past its wait is "busy", like a device lock; its rows say which place it asked
            # for (harness/transport/labgrid.py).
            category = exc.category if isinstance(exc, TransportError) else "transport"
            lab = transport if transport is not None and transport.lab_record() is not None else None
            for job in jobs:
                if self.stop.is_set():
                    break
                self._store_failure(job, new_id(), now_utc(), category, why, lab)
            return
        unreachable: str | None = None
        try:
            self._probe_facts(transport, jobs[0].target)
            # The probe shipped the agent; those bytes are counted with the device's first job.
            self._carry[id(transport)] = transport.bytes_sent
            device = device_key(jobs[0].target)
            for job in jobs:
                if self.stop.is_set():
                    break
                if unreachable is None and not transport.is_alive:
                    unreachable = self._reconnect(transport)
                if unreachable is not None:
                    self._store_failure(job, new_id(), now_utc(), "transport", unreachable, transport)
                    continue
                if device in self._busy_devices:
                    self._store_failure(job, new_id(), now_utc(), "busy", f"not started: {self._busy_devices[device]}",
                                        transport)
                    continue
                try:
                    row = self.run_one(job, transport)
                except Exception as exc:  # noqa: BLE001 - a bug costs this job, not the device's other jobs
                    detail = " ".join(str(exc).split())[:500]
                    row = self._store_failure(job, new_id(), now_utc(), "agent", f"{job.target.name}: hilbench failed "
                                              f"on this job (a bug, please report it): {type(exc).__name__}: {detail}",
                                              transport)
                if self.no_wait and row["error_category"] == "busy":
                    self._busy_devices[device] = str(row["error_message"])
                unreachable = self._unreachable.get(id(transport))
                if unreachable is None and row["error_category"] == "transport" and not transport.is_alive:
                    unreachable = self._reconnect(transport)
        finally:
            transport.close()

    def _reconnect(self, transport: Transport) -> str | None:
        """Re-open a dropped connection (the transport backs off and retries); None when it is back,
        else the one-line reason."""
        try:
            transport.reconnect(stop=self.stop)
        except TransportError as exc:
            if transport.can_reconnect:  # one that cannot says so each time it is asked
                self._unreachable[id(transport)] = str(exc)
            return str(exc)
        self._unreachable.pop(id(transport), None)
        with self._lock:
            n = self._reconnects[id(transport)] = self._reconnects.get(id(transport), 0) + 1
        # Never silent: the run says so now, and the job's row counts it (JobRun.reconnects).
        _log.warning("%s: the connection dropped and was restored (%d time%s this session)",
                     transport.target.name, n, "" if n == 1 else "s")
        return None

    def reconnects(self, transport: Transport) -> int:
        """How often ``transport``'s connection was restored after a drop, this session."""
        with self._lock:
            return self._reconnects.get(id(transport), 0)

    def _store_failure(self, job: Job, run_id: str, started: dt.datetime, category: str, message: str,
                       transport: Transport | None, stderr_tail: str = "") -> dict[str, Any]:
        run = JobRun(job, run_id)
        run.error = (category, message)
        if transport is not None:
            run.bytes_sent = 0
        self._opened(job)
        self.progress.job_started(job, run_id)
        return self._commit(run, started, transport, stderr_tail)

    def _opened(self, job: Job) -> None:
        with self._lock:
            self._open[id(job)] = job

    def _commit(self, run: JobRun, started: dt.datetime, transport: Transport | None, stderr_tail: str,
                sent_before: int | None = None) -> dict[str, Any]:
        if transport is not None:
            if sent_before is not None:
                run.bytes_sent = transport.bytes_sent - sent_before
            run.device_facts = self._facts.get(id(transport))
        row = run.rows(session_id=self.session_id, labels=self.labels, started=started, transport=transport,
                       stderr_tail=stderr_tail)
        written: list[Path | str] = []
        try:
            samples = run.samples.table(run.run_id, run.first if row["status"] == "ok" else None)
            if samples is not None:
                written.append(self.store.write_table("samples", run.run_id, samples))
            k = len(run.accuracy["index"])
            if k and row["status"] == "ok":
                written.append(self.store.write_table("accuracy", run.run_id,
                                                      dict(run.accuracy, run_id=[run.run_id] * k)))
            m = len(run.telemetry)
            if m:
                written.append(self.store.write_table("telemetry", run.run_id,
                                                      dict(run.telemetry.columns(), run_id=[run.run_id] * m)))
            # The runs row goes last: it commits the run.
            self.store.write_table("runs", run.run_id, [row])
        except StoreError as exc:
            stored = self._store_refused(run, exc, written, started, transport, stderr_tail)
            self._closed(run.job, stored)
            row = stored or dict(row, status="error", error_category="store",
                                 error_message=f"not stored: {exc}")
        else:
            self._closed(run.job, row)
        self.progress.job_finished(run.job, row)
        return row

    def _store_refused(self, run: JobRun, exc: StoreError, written: list[Path | str], started: dt.datetime,
                       transport: Transport | None, stderr_tail: str) -> dict[str, Any] | None:
        """The store refused a write of ``run``: its files written so far go (a samples file without its runs
        row would be an orphan), the run stops, and the job is stored as a ``store`` error when the store still
        takes its small runs row. Returns that row, or None when nothing of the job could be kept."""
        for path in written:
            self.store.discard(path)
        with self._lock:
            first = self.store_error is None
            if first:
                self.store_error = exc
        if first:
            self.interrupt("the results store stopped taking writes")
        self.release_reserve()  # a full disk: the room kept for the rows that say so
        kept = "its measurements are lost" if run.result is not None else "it had no result to keep"
        run.error = ("store", f"the results store could not keep this job ({exc}): {kept}; the run stopped here")
        row = run.rows(session_id=self.session_id, labels=self.labels, started=started, transport=transport,
                       stderr_tail=stderr_tail)
        try:
            self.store.write_table("runs", run.run_id, [row])
        except StoreError:
            with self._lock:
                self.lost.append(run.job.describe())
            return None
        return row

    def _closed(self, job: Job, row: dict[str, Any] | None) -> None:
        """``job`` is done (``row`` stored, or None: lost); a session already closed (a second Ctrl-C did not
        wait for this job) has its row written again with the counts that now hold."""
        with self._lock:
            self._open.pop(id(job), None)
            if row is not None:
                self.rows.append(row)
            if self._session is not None:
                store, session_row = self._session
                session_row.update(self.counts())
                with contextlib.suppress(StoreError):
                    store.write_table("sessions", session_row["session_id"], [session_row])

    def counts(self) -> dict[str, int]:
        """The session row's job counts: a job still being stored counts as failed (it ends interrupted)."""
        return {"jobs_ok": sum(1 for r in self.rows if r["status"] == "ok"),
                "jobs_failed": sum(1 for r in self.rows if r["status"] != "ok") + len(self._open)}

    def payload(self, job: Job, run_id: str, paths: dict[str, str]) -> dict[str, Any]:
        inputs = dict(job.model.inputs)
        inputs.pop("file_sha256", None)
        if "inputs" in paths:
            inputs["file"] = paths["inputs"]
        telemetry: dict[str, Any] = {"enabled": False}
        if job.policy.telemetry and job.target.telemetry.get("enabled", True):
            telemetry = {
                "enabled": True,
                "rate_hz": job.target.telemetry.get("rate_hz") or job.policy.telemetry_rate_hz,
                "meter_command": job.target.telemetry.get("meter_command"),
                "board_rail": job.target.telemetry.get("board_rail"),
            }
            if job.target.telemetry.get("root"):
                telemetry["root"] = job.target.telemetry["root"]  # a fake sysfs tree (tests)
        return {
            "v": 1,
            "job_id": run_id,
            "backend": job.backend,
            "settings": job.settings,
            "model": {"path": paths.get("model"), "sha256": job.model.sha256, "name": job.model.name},
            "inputs": inputs,
            "warmup": job.policy.warmup,
            "timed": job.policy.timed,
            "affinity": list(job.policy.affinity) or None,
            "telemetry": telemetry,
            "idle_s": job.policy.idle_s if telemetry["enabled"] else 0,
            "sustained": job.policy.sustained,
            "require_offload": job.require_offload,
            "cooldown": dict(job.policy.cooldown, root=job.target.telemetry.get("root")) if job.policy.cooldown else None,
            **({"eval": dict(job.model.eval, path=paths.get("eval"))} if job.model.eval else {}),
            "lock": {"wait_s": self.lock_wait_s(job), "setting": "--no-wait" if self.no_wait else "policy.lock_wait_s",
                     "owner": {"host": platform.node(), "host_pid": os.getpid(), "session": self.session_id,
                               "target": job.target.name}},
        }

    def lock_wait_s(self, job: Job) -> float:
        """How long ``job`` waits for its device's lock: 0 with ``--no-wait``, else ``policy.lock_wait_s``
        (default: the job's ``timeout_s``)."""
        if self.no_wait:
            return 0.0
        wait = job.policy.lock_wait_s
        return float(job.policy.timeout_s if wait is None else wait)

    def run_one(self, job: Job, transport: Transport) -> dict[str, Any]:
        """Run one job and store it. A connection that drops mid-job is re-opened; the job's result is then
        taken from the agent's journal on the device when it finished there, else the job runs again
        (at most :attr:`max_reruns` times). Ends with a stored result or a stored error, never nothing."""
        run_id = new_id()
        started = now_utc()
        files: dict[str, tuple[str, str]] = {}
        if job.model.path is not None and job.model.sha256:
            files["model"] = (str(job.model.path), job.model.sha256)
        if job.model.eval.get("path"):
            files["eval"] = (job.model.eval["path"], job.model.eval["sha256"])
        if job.model.inputs.get("file"):
            files["inputs"] = (job.model.inputs["file"], job.model.inputs["file_sha256"])
        # Bytes are counted per job: what this job's prepare and uploads sent (the transport's count runs on).
        sent0 = transport.bytes_sent - self._carry.pop(id(transport), 0)
        reconnects0 = self.reconnects(transport)
        self._opened(job)
        self.progress.job_started(job, run_id)

        def commit(run: JobRun, tail: str, recovery: str | None = None) -> dict[str, Any]:
            # A connection restored during the job is said in its row (reconnects, and a verdict warning).
            run.reconnects = self.reconnects(transport) - reconnects0
            run.recovery = recovery
            return self._commit(run, started, transport, tail, sent0)

        try:
            paths = self._prepare(transport, files)
        except TransportError as exc:
            run = JobRun(job, run_id)
            run.error = self._unless_stopped("transport", str(exc))
            return commit(run, exc.stderr_tail)
        deadline = time.monotonic() + job.policy.timeout_s
        drops = 0
        while True:
            run = JobRun(job, run_id)
            journal = transport.journal_path(run_id)
            outcome, tail = self._attempt(job, run, transport, paths, journal, deadline)
            deadline += run.lock_paused_s(time.monotonic())  # the timeout runs only while the device is held
            if outcome != "lost":
                return commit(run, tail, "rerun" if drops else None)
            if self.stop.is_set():
                run.result = None
                run.error = ("interrupted", _interrupted_message(self.stop_reason) + "; the connection to the device "
                             "was down, so its agent may run on there until its job ends")
                return commit(run, tail)
            drops += 1
            why = self._reconnect(transport)
            if why is not None:
                run.error = self._unless_stopped(
                    "transport", f"the connection dropped during the job and did not come back: {why}")
                return commit(run, tail)
            try:
                recovered = self._recover(job, transport, journal, deadline)
            except TransportError as exc:
                run.error = ("transport", f"the connection dropped during the job; recovering it failed: {exc}")
                return commit(run, tail)
            if recovered is not None:
                return commit(recovered, tail, "journal")
            if drops > self.max_reruns:
                run.error = ("transport", f"the connection dropped during the job {drops} times (the agent's journal "
                             "held no result): check the device's network and power")
                return commit(run, tail)
            # The agent did not finish on the device: the job runs again, as a new run with its own journal.
            run_id = new_id()
            try:
                paths = self._prepare(transport, files)
            except TransportError as exc:
                run.error = ("transport", str(exc))
                return commit(run, exc.stderr_tail)

    def _unless_stopped(self, category: str, message: str) -> tuple[str, str]:
        """The error ``(category, message)``, or "interrupted" when a stop (Ctrl-C, SIGTERM) caused it."""
        return ("interrupted", _interrupted_message(self.stop_reason)) if self.stop.is_set() else (category, message)

    def _prepare(self, transport: Transport, files: dict[str, tuple[str, str]]) -> dict[str, str]:
        """``transport.prepare`` with one reconnect when the connection dropped during it."""
        try:
            return transport.prepare(files)
        except TransportError:
            if transport.is_alive or self._reconnect(transport) is not None:
                raise
        return transport.prepare(files)

    def _attempt(self, job: Job, run: JobRun, transport: Transport, paths: dict[str, str], journal: str,
                 deadline: float) -> tuple[str, str]:
        """Start the agent and read its lines into ``run``. Returns ("done" | "lost", stderr tail); "lost"
        when the connection dropped before the agent's end (the agent may still be running on the device)."""
        if self.stop.is_set():  # stopped while the files were shipped: no agent is started
            run.error = ("interrupted", _interrupted_message(self.stop_reason))
            return "done", ""
        try:
            proc = transport.start_agent(self.payload(job, run.run_id, paths), journal)
        except TransportError as exc:
            if not transport.is_alive:
                return "lost", exc.stderr_tail
            run.error = ("transport", str(exc))
            return "done", exc.stderr_tail
        with self._lock:
            self._active.add(proc)
        try:
            while True:
                if self.stop.is_set():
                    proc.kill()
                    left = f"; the agent could not be stopped on the device ({proc.kill_failed}): it may run on " \
                        "there until its job ends" if proc.kill_failed else ""
                    run.error = ("interrupted", _interrupted_message(self.stop_reason) + left)
                    break
                now = time.monotonic()
                if run.lock_waiting and run.lock_wait_began is not None:
                    # The agent waits for the device lock and gives up itself at its wait; past that (and a
                    # grace) it is stopped here. The job's timeout does not run while it waits.
                    wait_left = run.lock_wait_began + self.lock_wait_s(job) + LOCK_GRACE_S - now
                    if wait_left <= 0:
                        proc.kill()
                        setting = "--no-wait" if self.no_wait else "policy.lock_wait_s"
                        run.error = ("busy", f"{job.target.name}: the agent went on waiting for the device lock past "
                                     f"the job's wait of {self.lock_wait_s(job):g} s ({setting}): stopped")
                        break
                    remaining = min(wait_left, 0.5)
                else:
                    remaining = deadline + run.lock_paused_s(now) - now
                if remaining <= 0:
                    proc.kill()
                    run.error = ("timeout", f"the job exceeded its timeout of {job.policy.timeout_s:g} s "
                                 "(policy.timeout_s)")
                    break
                phase_limit = job.policy.phase_timeouts.get(run.current[0]) if run.current else None
                if run.current and phase_limit is not None:
                    phase_left = run.current[1] + phase_limit - now
                    if phase_left <= 0:
                        proc.kill()
                        run.error = ("timeout", f"the {run.current[0]} phase exceeded its timeout of "
                                     f"{phase_limit:g} s (policy.timeouts.{run.current[0]}_s)")
                        break
                    remaining = min(remaining, phase_left)
                try:
                    line = proc.next_line(min(remaining, 0.5))
                except LineTimeout:
                    if proc.connection_lost and not self.stop.is_set():
                        return "lost", proc.stderr_tail
                    continue
                except ProtocolError as exc:  # a line over the reader's limit: the stream ends there
                    proc.kill()
                    run.error = ("agent", f"{job.target.name}: {exc}")
                    break
                if line is None:
                    break
                if not line.strip():
                    continue
                problem = take_line(run, line, f"{job.target.name}: agent", self.progress)
                if problem is not None:
                    proc.kill()
                    run.error = ("agent", problem)
                    break
            code = proc.wait(5.0)
            if run.result is None and run.error is None and self.stop.is_set():
                # Ctrl-C: interrupt() killed the agent, so its stream ended before the loop saw the stop.
                run.error = ("interrupted", _interrupted_message(self.stop_reason))
            if code is None and proc.connection_lost and run.error is None:
                return "lost", proc.stderr_tail
            if code is None:
                proc.kill()
                code = proc.wait(5.0)
        finally:
            with self._lock:
                self._active.discard(proc)
            proc.close()  # drop what is still queued from it, and stop its reader
        if run.result is None and run.error is None:
            tail = proc.stderr_tail.strip().splitlines()
            last = f": {tail[-1].strip()}" if tail else ""
            run.error = ("agent", f"the agent {_describe_exit(code)} before reporting a result{last}")
        return "done", proc.stderr_tail

    def _recover(self, job: Job, transport: Transport, journal: str, deadline: float) -> JobRun | None:
        """After a reconnect: wait for the agent if it still runs on the device, then rebuild the job from
        its journal. None when the journal holds no end (the agent died with the connection): run it again."""
        while transport.agent_alive(journal):
            if self.stop.is_set() or time.monotonic() >= deadline:
                transport.kill_agent(journal)
                run = self._replay(job, journal, transport.fetch_journal(journal) or [])
                run.result = None
                run.error = self._unless_stopped(
                    "timeout", f"the job exceeded its timeout of {job.policy.timeout_s:g} s (policy.timeout_s)")
                return run
            time.sleep(0.2)
        lines = transport.fetch_journal(journal)
        if not lines:
            return None
        run = self._replay(job, journal, lines)
        if run.result is None and run.error is None:
            return None
        return run

    def _replay(self, job: Job, journal: str, lines: list[str]) -> JobRun:
        run_id = journal.rsplit("/", 1)[-1].removesuffix(".jsonl")
        run = JobRun(job, run_id)
        quiet = Progress()
        where = f"{job.target.name}: journal"
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                msg = decode_line(line, where=where)
            except ProtocolError as exc:
                if i != last:  # only the last line can be cut short by a drop; one before it is broken
                    run.error = ("agent", str(exc))
                break  # a line cut short by the drop: what came before it stands
            problem = take_line(run, msg, where, quiet)
            if problem is not None:
                run.error = ("agent", problem)
                break
        return run

    def interrupt(self, reason: str = "Ctrl-C") -> None:
        """Stop the run: no job starts, the agents in flight are killed (on the device, their process group)
        and their jobs stored as ``interrupted`` with ``reason`` ("Ctrl-C", "SIGTERM", ...). Any thread may
        call it; the first reason given is the one stored."""
        with self._lock:
            if not self.stop.is_set():
                self.stop_reason = reason
            self.stop.set()
            active = list(self._active)
        for proc in active:
            try:
                proc.kill()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass


def run_jobs(
    jobs: list[Job],
    store: Store,
    *,
    plan: Plan | None = None,
    labels: dict[str, str] | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    argv: list[str] | None = None,
    on_runner: Callable[[Runner], None] | None = None,
    transports: Callable[[Target], Transport] | None = None,
    no_wait: bool = False,
) -> SessionResult:
    """Run ``jobs`` and store every result. Raises StoreError before anything runs
    when the store is not writable, and (one line saying what was kept) when it stops taking writes mid-run.
    ``resume`` skips jobs already stored as ok. ``transports`` builds
    each target's transport (default :func:`make_transport`; tests pass :class:`FakeTransport` ones).
    ``no_wait``: a job whose device another run holds fails at once (``busy``) instead of waiting.

    In the main thread, SIGTERM and SIGHUP (where their handler is the default one) stop the run as Ctrl-C
    does; the result's ``signal`` says which. A second signal while the run stops ends the waiting for the
    agents to be killed. Called from another thread no handler is installed: stop the run with
    :meth:`Runner.interrupt` (``on_runner`` hands the runner over)."""
    store.ensure_writable()
    with _stop_on_signals():
        return _run_session(jobs, store, plan=plan, labels=labels, progress=progress, resume=resume, argv=argv,
                            on_runner=on_runner, transports=transports, no_wait=no_wait)


def _run_session(jobs: list[Job], store: Store, *, plan: Plan | None, labels: dict[str, str] | None,
                 progress: Progress | None, resume: bool, argv: list[str] | None,
                 on_runner: Callable[[Runner], None] | None,
                 transports: Callable[[Target], Transport] | None, no_wait: bool = False) -> SessionResult:
    progress = progress or Progress()
    labels = dict(labels or {})
    session_id = new_id("s")
    skipped = 0
    if resume:
        runs = store.runs()
        done = set(runs.loc[runs["status"] == "ok", "job_key"])
        kept = [j for j in jobs if j.key not in done]
        skipped = len(jobs) - len(kept)
        jobs = kept
    started = now_utc()
    plan_text = plan.raw_text if plan else ""
    session_row: dict[str, Any] = {
        "session_id": session_id,
        "started_at": started,
        "plan": plan.name if plan else None,
        "plan_path": str(plan.path) if plan and plan.path else None,
        "plan_sha256": hashlib.sha256(plan_text.encode()).hexdigest() if plan else None,
        "plan_text": plan_text or None,
        "labels": labels,
        "hilbench_version": __version__,
        "host": host_facts(),
        "argv": mask_argv(argv if argv is not None else sys.argv[1:]),  # no credential of an s3:// URL
        "jobs": len(jobs),
        "status": "running",
    }
    runner = Runner(store, session_id, labels, progress, transports=transports, no_wait=no_wait)
    runner.reserve = store.reserve("sessions", session_id, runner.reserve_bytes)  # StoreError: no room to start
    try:
        return _run_workers(jobs, store, session_row, runner, progress, skipped, on_runner)
    finally:
        runner.release_reserve()


def _run_workers(jobs: list[Job], store: Store, session_row: dict[str, Any], runner: Runner, progress: Progress,
                 skipped: int, on_runner: Callable[[Runner], None] | None) -> SessionResult:
    """The session proper: its row, one worker per device, and the row closed on every way out."""
    session_id = session_row["session_id"]
    result = SessionResult(session_id=session_id, skipped=skipped)
    pool: ThreadPoolExecutor | None = None
    futures: list[Any] = []
    failures: list[BaseException] = []  # what a worker raised (a bug): re-raised once the session row is written
    try:
        # Inside the try: a signal from here on leaves a closed session row, never a running one.
        store.write_table("sessions", session_id, [session_row])
        progress.session_started(session_id, jobs, skipped)
        if on_runner:
            on_runner(runner)
        by_target: dict[str, list[Job]] = {}
        for job in jobs:
            by_target.setdefault(job.target.name, []).append(job)
        # One worker per device, not per target name: two target files (or a file and an ssh:// spec) for
        # the same board still measure one at a time.
        by_device: dict[tuple[Any, ...], list[list[Job]]] = {}
        for target_jobs in by_target.values():
            by_device.setdefault(device_key(target_jobs[0].target), []).append(target_jobs)
        pool = ThreadPoolExecutor(max_workers=max(1, len(by_device)), thread_name_prefix="hilbench-device")
        futures = [pool.submit(runner.run_device, groups) for groups in by_device.values()]
        for fut in futures:
            while True:
                try:
                    fut.result(timeout=0.2)
                    break
                except TimeoutError:
                    continue
                except Exception as exc:  # noqa: BLE001 - re-raised once the session row is written
                    failures.append(exc)
                    break
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Stopped) else int(signal.SIGINT)
        result.interrupted = True
        result.signal = signum
        # From here on a stop signal is counted, not raised: a second one stops the waiting for the workers
        # (they kill their agents and store their jobs as interrupted, which takes a moment), and none can
        # leave the session row unwritten (marked running).
        with _signals_counted() as presses:
            runner.interrupt(signal_name(signum))
            # The workers, not the futures: the signal may have come while they were being submitted.
            while runner.busy() and not presses:
                time.sleep(0.05)
            if pool is not None:
                pool.shutdown(wait=not presses, cancel_futures=True)
            _finish_session(store, session_row, result, runner)
        return result
    except BaseException:
        # Anything else on the way out (SystemExit, a bug here): the session row is still closed.
        result.interrupted = True
        runner.interrupt("hilbench stopped")
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with _signals_counted():
            _finish_session(store, session_row, result, runner)
        raise
    pool.shutdown(wait=True)
    if runner.store_error is not None:
        with _signals_counted():
            raise StoreError(_store_stopped(store, session_row, result, runner))
    with _signals_counted() as presses:
        _finish_session(store, session_row, result, runner)
    if presses:
        raise Stopped(presses[0])
    if failures:
        raise failures[0]
    return result


def _finish_session(store: Store, session_row: dict[str, Any], result: SessionResult, runner: Runner,
                    status: str | None = None) -> None:
    """Close the session row. Jobs still being stored (a second Ctrl-C did not wait for them) count as failed;
    each one stored later writes the row again (:meth:`Runner._closed`)."""
    with runner._lock:
        result.runs = list(runner.rows)
        result.unfinished = len(runner._open)
        session_row.update(finished_at=now_utc(), status=status or ("interrupted" if result.interrupted else "finished"),
                           **runner.counts())
        runner._session = (store, session_row)
        try:
            store.write_table("sessions", session_row["session_id"], [session_row])
        except StoreError:
            if not runner.release_reserve():  # the disk filled up since the last job: the room kept for this row
                raise
            store.write_table("sessions", session_row["session_id"], [session_row])


def _store_stopped(store: Store, session_row: dict[str, Any], result: SessionResult, runner: Runner) -> str:
    """The session closed as ``failed`` where the store still takes it, and the one line that says what the
    store kept, what it lost and how to complete the plan."""
    try:
        _finish_session(store, session_row, result, runner, status="failed")
        closed = "the session is closed as failed"
    except StoreError:
        result.runs = list(runner.rows)
        closed = "the session row could not be closed either"
    ok = sum(1 for r in result.runs if r["status"] == "ok")
    errors = len(result.runs) - ok
    not_run = int(session_row["jobs"]) - len(result.runs) - len(runner.lost)
    kept = f"kept {ok} finished job{'s' if ok != 1 else ''}" + (
        f" and {errors} stored as errors" if errors else "")
    lost = f"; lost the results of {', '.join(runner.lost)}" if runner.lost else ""
    return (f"{store.root}: the results store stopped taking writes during the run ({runner.store_error}): {kept}"
            f"{lost}; {not_run} job{'s' if not_run != 1 else ''} not run; {closed}; "
            + ("when the endpoint takes writes again, " if store.location.remote
               else "make room (or fix the folder's permissions), then ")
            + "`hilbench run --resume` runs what is missing")


class _StopHandler:
    """The handler of the stop signals during a run: the first one raises :class:`Stopped` (in the main
    thread, between two bytecodes, as Ctrl-C raises KeyboardInterrupt); from then on, and while it is disarmed
    (:func:`_signals_counted`), each is only counted, so no second signal can cut the stopping short."""

    def __init__(self) -> None:
        self.armed = True
        self.counted: list[int] = []

    def __call__(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            self.counted = []
            raise Stopped(signum)
        self.counted.append(signum)


_handler: _StopHandler | None = None  # the main thread's, while run_jobs runs there


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Within the block (main thread only), Ctrl-C, SIGTERM and SIGHUP raise :class:`Stopped` once, then are
    counted (:class:`_StopHandler`). Only a signal whose handler is Python's default is taken over (SIGTERM and
    SIGHUP would end the process mid-write, its agents left running); a handler someone else installed, or
    an ignored signal, is left alone."""
    global _handler
    if threading.current_thread() is not threading.main_thread() or _handler is not None:
        yield
        return
    handler = _StopHandler()
    installed: dict[signal.Signals, Any] = {}
    for signum in STOP_SIGNALS:
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        try:
            if signal.getsignal(signum) is default:
                installed[signum] = signal.signal(signum, handler)
        except (ValueError, OSError):  # not the main interpreter, or a platform without it
            continue
    _handler = handler
    try:
        yield
    finally:
        _handler = None
        for num, previous in installed.items():
            signal.signal(num, previous)


@contextlib.contextmanager
def _signals_counted() -> Iterator[list[int]]:
    """Within the block, a stop signal (one :func:`_stop_on_signals` took over) is appended to the yielded list
    instead of raising; so is one that came since the first signal of the run was raised. Off the main thread,
    or where no handler was taken over, an empty list."""
    handler = _handler
    if handler is None or threading.current_thread() is not threading.main_thread():
        yield []
        return
    rearm = handler.armed
    if rearm:
        handler.armed = False
        handler.counted = []
    try:
        yield handler.counted
    finally:
        if rearm:
            handler.armed = True
