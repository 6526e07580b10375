"""Running a plan: jobs to agents to the store, one session per `hilbench run` (each job's messages become
its row in :mod:`harness.run.jobrun`).

Jobs on different targets run in parallel (one worker thread per target); jobs
on one target run one at a time, so two measurements never share a device.
Each job's results are written to the store as soon as it ends, so stopping at
any moment keeps every finished job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from harness import __version__
from harness.agent.protocol import decode_line
from harness.config.plan import Job, Plan
from harness.config.targets import Target
from harness.errors import ConfigError, HilbenchError, ProtocolError, TransportError
from harness.run.jobrun import JobRun, Progress, host_facts, now_utc, take_line
from harness.store import Store, new_id
from harness.transport import LineTimeout, Transport, make_transport, transport_class

__all__ = ["Progress", "SessionResult", "run_jobs", "host_facts", "device_key"]


@dataclass
class SessionResult:
    session_id: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    interrupted: bool = False

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] != "ok"]


_INTERRUPTED = "the run was interrupted (Ctrl-C)"
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
    """Passes events on one at a time: worker threads of several targets never interleave a display."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self._lock = threading.RLock()

    def session_started(self, session_id: str, jobs: list[Job], skipped: int) -> None:
        with self._lock:
            self.inner.session_started(session_id, jobs, skipped)

    def job_started(self, job: Job, run_id: str) -> None:
        with self._lock:
            self.inner.job_started(job, run_id)

    def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None:
        with self._lock:
            self.inner.phase(job, phase, event, info)

    def device_lock(self, job: Job, event: str, info: dict[str, Any]) -> None:
        with self._lock:
            self.inner.device_lock(job, event, info)

    def job_finished(self, job: Job, row: dict[str, Any]) -> None:
        with self._lock:
            self.inner.job_finished(job, row)


class Runner:
    """Runs jobs through transports into a store. Use :func:`run_jobs`."""

    def __init__(self, store: Store, session_id: str, labels: dict[str, str], progress: Progress, *,
                 transports: Callable[[Target], Transport] | None = None, no_wait: bool = False) -> None:
        self.store = store
        #: ``--no-wait``: a job whose device is busy (another run holds its lock) fails at once, and the
        #: device's later jobs are stored as busy without starting
        self.no_wait = no_wait
        self._busy: dict[tuple[Any, ...], str] = {}  # device key -> why its jobs are not started (--no-wait)
        #: builds each target's transport (``make_transport``; tests pass FakeTransports)
        self.make_transport = transports or make_transport
        self.session_id = session_id
        self.labels = labels
        self.progress = progress if isinstance(progress, _SerialProgress) else _SerialProgress(progress)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._active: set[Any] = set()
        self._unreachable: dict[int, str] = {}  # id(transport) -> why it did not come back
        self._facts: dict[int, dict[str, Any] | None] = {}  # id(transport) -> its device facts
        self._carry: dict[int, int] = {}  # id(transport) -> bytes sent before its first job (the probe's agent)
        self.rows: list[dict[str, Any]] = []

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

    def run_device(self, groups: list[list[Job]]) -> None:
        """Run the job lists of targets that are one device (one endpoint), one target after another."""
        for jobs in groups:
            if self.stop.is_set():
                return
            self.run_target(jobs)

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
        except HilbenchError as exc:
            if transport is not None:
                transport.close()
            for job in jobs:
                if self.stop.is_set():
                    break
                self._store_failure(job, new_id(), now_utc(), "transport", str(exc), None)
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
                if device in self._busy:
                    self._store_failure(job, new_id(), now_utc(), "busy", f"not started: {self._busy[device]}",
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
                    self._busy[device] = str(row["error_message"])
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
        return None

    def _store_failure(self, job: Job, run_id: str, started: dt.datetime, category: str, message: str,
                       transport: Transport | None, stderr_tail: str = "") -> dict[str, Any]:
        run = JobRun(job, run_id)
        run.error = (category, message)
        if transport is not None:
            run.bytes_sent = 0
        self.progress.job_started(job, run_id)
        return self._commit(run, started, transport, stderr_tail)

    def _commit(self, run: JobRun, started: dt.datetime, transport: Transport | None, stderr_tail: str,
                sent_before: int | None = None) -> dict[str, Any]:
        if transport is not None:
            if sent_before is not None:
                run.bytes_sent = transport.bytes_sent - sent_before
            run.device_facts = self._facts.get(id(transport))
        row = run.rows(session_id=self.session_id, labels=self.labels, started=started, transport=transport,
                       stderr_tail=stderr_tail)
        samples = run.samples.table(run.run_id, run.first if row["status"] == "ok" else None)
        if samples is not None:
            self.store.write_table("samples", run.run_id, samples)
        k = len(run.accuracy["index"])
        if k and row["status"] == "ok":
            self.store.write_table("accuracy", run.run_id, dict(run.accuracy, run_id=[run.run_id] * k))
        m = len(run.telemetry)
        if m:
            self.store.write_table("telemetry", run.run_id, dict(run.telemetry.columns(), run_id=[run.run_id] * m))
        # The runs row goes last: it commits the run.
        self.store.write_table("runs", run.run_id, [row])
        with self._lock:
            self.rows.append(row)
        self.progress.job_finished(run.job, row)
        return row

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
        self.progress.job_started(job, run_id)
        try:
            paths = self._prepare(transport, files)
        except TransportError as exc:
            run = JobRun(job, run_id)
            run.error = self._unless_stopped("transport", str(exc))
            return self._commit(run, started, transport, exc.stderr_tail, sent0)
        deadline = time.monotonic() + job.policy.timeout_s
        drops = 0
        while True:
            run = JobRun(job, run_id)
            journal = transport.journal_path(run_id)
            outcome, tail = self._attempt(job, run, transport, paths, journal, deadline)
            deadline += run.lock_paused_s(time.monotonic())  # the timeout runs only while the device is held
            if outcome != "lost":
                return self._commit(run, started, transport, tail, sent0)
            if self.stop.is_set():
                run.result = None
                run.error = ("interrupted", _INTERRUPTED)
                return self._commit(run, started, transport, tail, sent0)
            drops += 1
            why = self._reconnect(transport)
            if why is not None:
                run.error = self._unless_stopped(
                    "transport", f"the connection dropped during the job and did not come back: {why}")
                return self._commit(run, started, transport, tail, sent0)
            try:
                recovered = self._recover(job, transport, journal, deadline)
            except TransportError as exc:
                run.error = ("transport", f"the connection dropped during the job; recovering it failed: {exc}")
                return self._commit(run, started, transport, tail, sent0)
            if recovered is not None:
                return self._commit(recovered, started, transport, tail, sent0)
            if drops > self.max_reruns:
                run.error = ("transport", f"the connection dropped during the job {drops} times (the agent's journal "
                             "held no result): check the device's network and power")
                return self._commit(run, started, transport, tail, sent0)
            # The agent did not finish on the device: the job runs again, as a new run with its own journal.
            run_id = new_id()
            try:
                paths = self._prepare(transport, files)
            except TransportError as exc:
                run.error = ("transport", str(exc))
                return self._commit(run, started, transport, exc.stderr_tail, sent0)

    def _unless_stopped(self, category: str, message: str) -> tuple[str, str]:
        """The error ``(category, message)``, or "interrupted" when Ctrl-C caused it."""
        return ("interrupted", _INTERRUPTED) if self.stop.is_set() else (category, message)

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
                    run.error = ("interrupted", _INTERRUPTED)
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
                run.error = ("interrupted", _INTERRUPTED)
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

    def interrupt(self) -> None:
        self.stop.set()
        with self._lock:
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
    when the store is not writable. ``resume`` skips jobs already stored as ok. ``transports`` builds
    each target's transport (default :func:`make_transport`; tests pass :class:`FakeTransport` ones).
    ``no_wait``: a job whose device another run holds fails at once (``busy``) instead of waiting."""
    store.ensure_writable()
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
        "argv": argv if argv is not None else sys.argv[1:],
        "jobs": len(jobs),
        "status": "running",
    }
    store.write_table("sessions", session_id, [session_row])
    progress.session_started(session_id, jobs, skipped)
    runner = Runner(store, session_id, labels, progress, transports=transports, no_wait=no_wait)
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
    result = SessionResult(session_id=session_id, skipped=skipped)
    pool = ThreadPoolExecutor(max_workers=max(1, len(by_device)), thread_name_prefix="hilbench-device")
    futures = [pool.submit(runner.run_device, groups) for groups in by_device.values()]
    failures: list[BaseException] = []  # what a worker raised (a store that stopped taking writes): after the row
    try:
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
    except KeyboardInterrupt:
        result.interrupted = True
        # From here on Ctrl-C is counted, not raised: a second press stops the waiting for the workers (they
        # kill their agents and store their jobs as interrupted, which takes a moment), and no press can
        # leave the session row unwritten (marked running).
        with _sigint_counted() as presses:
            runner.interrupt()
            while not all(f.done() for f in futures) and not presses:
                time.sleep(0.05)
            pool.shutdown(wait=not presses, cancel_futures=True)
            _finish_session(store, session_row, result, runner)
        return result
    except BaseException:
        # Anything else on the way out (SystemExit, a bug here): the session row is still closed.
        result.interrupted = True
        runner.interrupt()
        pool.shutdown(wait=True, cancel_futures=True)
        with _sigint_counted():
            _finish_session(store, session_row, result, runner)
        raise
    pool.shutdown(wait=True)
    with _sigint_counted() as presses:
        _finish_session(store, session_row, result, runner)
    if presses:
        raise KeyboardInterrupt()
    if failures:
        raise failures[0]
    return result


def _finish_session(store: Store, session_row: dict[str, Any], result: SessionResult, runner: Runner) -> None:
    result.runs = list(runner.rows)
    session_row.update(
        finished_at=now_utc(),
        jobs_ok=sum(1 for r in result.runs if r["status"] == "ok"),
        jobs_failed=sum(1 for r in result.runs if r["status"] != "ok"),
        status="interrupted" if result.interrupted else "finished",
    )
    store.write_table("sessions", session_row["session_id"], [session_row])


@contextlib.contextmanager
def _sigint_counted() -> Iterator[list[int]]:
    """Within the block, Ctrl-C (SIGINT, in the main thread) is appended to the yielded list instead of
    raising KeyboardInterrupt. Off the main thread it is left alone (an empty list)."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    except ValueError:
        yield got
        return
    try:
        yield got
    finally:
        signal.signal(signal.SIGINT, previous)
