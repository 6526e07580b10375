"""The progress display of ``hilbench run``: one line per finished job (:class:`LineProgress`, for logs and
pipes) or, on a terminal, a live block with one line per device (:class:`LiveProgress`)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, TextIO

from harness.agent.lock import describe_holder
from harness.config.plan import Job
from harness.run.session import Progress
from harness.safetext import safe
from harness.text import key_values

__all__ = ["LineProgress", "LiveProgress", "NoteHandler", "make_progress", "LINE_LIMIT"]

#: The longest line a progress display, ``show`` or an error prints (device text is cut there, with ``…``).
LINE_LIMIT = 2000


def _finished_text(job: Job, row: dict[str, Any]) -> str:
    if row["status"] == "ok":
        verdict = "VALID" if row.get("valid") else "INVALID"
        result = row.get("result") or {}
        timed = result.get("timed") or {}
        count = timed.get("count", 0)
        dur = (timed.get("duration_ns") or 0) / 1e9
        tail = f"ok: {count} timed runs in {dur:.1f} s, {verdict}"
        if row.get("stand_in"):
            tail += " (synthetic stand-in)"
    else:
        tail = f"FAILED ({row['error_category']}): {row['error_message']}"
    lock = row.get("device_lock") or {}
    if lock.get("acquired") and lock.get("waited_s"):
        tail += f" (waited {lock['waited_s']:.1f} s for the device)"
    return f"{job.describe()}: {tail}"


def _waiting_text(job: Job, info: dict[str, Any]) -> str:
    """What a job waiting for its device's lock says: who holds it, and how long this job will wait."""
    wait = info.get("wait_s")
    until = f"; waiting up to {wait:g} s (policy.lock_wait_s; --no-wait fails at once)" if wait else ""
    return f"{job.target.name}: waiting for the device, in use by {describe_holder(info.get('holder'), info.get('held_s'))}{until}"


def _acquired_text(job: Job, info: dict[str, Any]) -> str:
    waited = (info.get("waited_ns") or 0) / 1e9
    return f"{job.target.name}: got the device after waiting {waited:.1f} s for {describe_holder(info.get('waited_for'))}"


def _session_text(session_id: str, jobs: list[Job], skipped: int) -> str:
    extra = f", {skipped} already stored (--resume)" if skipped else ""
    targets = sorted({j.target.name for j in jobs})
    return f"session {session_id}: {len(jobs)} jobs on {', '.join(targets) or 'no targets'}{extra}"


class LineProgress(Progress):
    """Plain output for logs and pipes: one line per finished job on the stream, nothing redrawn."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.total = 0
        self.done = 0

    def _write(self, text: str) -> None:
        if not self.quiet:
            self.note(text)

    def session_started(self, session_id: str, jobs: list[Job], skipped: int) -> None:
        self.total = len(jobs)
        self._write(_session_text(session_id, jobs, skipped))

    def job_finished(self, job: Job, row: dict[str, Any]) -> None:
        self.done += 1
        self._write(f"[{self.done}/{self.total}] {_finished_text(job, row)}")

    def device_lock(self, job: Job, event: str, info: dict[str, Any]) -> None:
        """A line when a job starts waiting for its device (again when the holder changes), and when it got it
        after a wait; nothing for a device that was free."""
        if event == "wait":
            self._write(_waiting_text(job, info))
        elif info.get("waited_ns"):
            self._write(_acquired_text(job, info))

    def note(self, text: str) -> None:
        """A warning line (shown with --quiet too). Every line of this display is written here, made safe:
        device text in it (an error message, a phase name) is shown, its control characters never executed."""
        self.stream.write(safe(text, LINE_LIMIT) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Nothing to tidy up (the live display's counterpart)."""


class LiveProgress(Progress):
    """On a terminal: one line per target, redrawn in place with ANSI cursor movement, each saying that
    device's current job (i/n), model/backend, phase and elapsed time, then its final state. Each finished
    job also leaves a permanent line above the block. Events may come from several worker threads; a
    ticker thread keeps the elapsed times moving. Call :meth:`close` at the end."""

    def __init__(self, stream: TextIO, *, clock: Any = None, columns: int | None = None,
                 tick_s: float | None = 0.5) -> None:
        import time

        self.stream = stream
        self.clock = clock or time.monotonic
        self.columns = columns
        self.tick_s = tick_s
        self._lock = threading.RLock()
        self._devices: dict[str, dict[str, Any]] = {}
        self._drawn = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ---------------------------------------------------------------- events
    def session_started(self, session_id: str, jobs: list[Job], skipped: int) -> None:
        with self._lock:
            for job in jobs:
                d = self._devices.setdefault(job.target.name, {"total": 0, "done": 0, "ok": 0, "failed": 0,
                                                               "job": None, "phase": "starting", "since": None})
                d["total"] += 1
            self._render([_session_text(session_id, jobs, skipped)])
        if self.tick_s and self._devices and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="hilbench-progress", daemon=True)
            self._ticker.start()

    def job_started(self, job: Job, run_id: str) -> None:
        with self._lock:
            d = self._device(job)
            d.update(job=job, phase="preparing", since=self.clock())
            self._render()

    def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None:
        if event != "begin":
            return
        with self._lock:
            self._device(job)["phase"] = phase
            self._render()

    def device_lock(self, job: Job, event: str, info: dict[str, Any]) -> None:
        """The device's line says whom the job waits for while it waits; a line above the block when it got
        the device after a wait."""
        with self._lock:
            d = self._device(job)
            if event == "wait":
                d["phase"] = f"waiting for the device, in use by {describe_holder(info.get('holder'), info.get('held_s'))}"
                self._render()
            else:
                d["phase"] = "starting"
                self._render([_acquired_text(job, info)] if info.get("waited_ns") else None)

    def job_finished(self, job: Job, row: dict[str, Any]) -> None:
        with self._lock:
            d = self._device(job)
            d["done"] += 1
            d["ok" if row["status"] == "ok" else "failed"] += 1
            d.update(job=None, phase="waiting", since=None)
            self._render([f"[{job.target.name} {d['done']}/{d['total']}] {_finished_text(job, row)}"])

    def note(self, text: str) -> None:
        """A warning line, printed above the live block (so the cursor arithmetic holds)."""
        with self._lock:
            self._render([text])

    def close(self) -> None:
        """Stop the ticker and draw the final state."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2.0)
        with self._lock:
            self._render()

    # ---------------------------------------------------------------- drawing
    def _device(self, job: Job) -> dict[str, Any]:
        return self._devices.setdefault(job.target.name, {"total": 1, "done": 0, "ok": 0, "failed": 0, "job": None,
                                                          "phase": "waiting", "since": None})

    def _tick(self) -> None:
        assert self.tick_s
        while not self._stop.wait(self.tick_s):
            with self._lock:
                if any(d["job"] is not None for d in self._devices.values()):
                    self._render()

    def line(self, name: str) -> str:
        """The live line of target ``name``."""
        d = self._devices[name]
        width = max(len(n) for n in self._devices)
        head = f"{name:<{width}}  "
        job = d["job"]
        if job is not None:
            settings = key_values(job.settings)
            elapsed = self.clock() - d["since"]
            return (f"{head}{d['done'] + 1}/{d['total']}  {job.model.name}/{job.backend}"
                    f"{' ' + settings if settings else ''}  {d['phase']}  {elapsed:.1f} s")
        if d["done"] >= d["total"]:
            failed = f", {d['failed']} failed" if d["failed"] else ""
            return f"{head}{d['done']}/{d['total']}  finished: {d['ok']} ok{failed}"
        return f"{head}{d['done']}/{d['total']}  {d['phase']}"

    def _render(self, permanent: list[str] | None = None) -> None:
        """Move up over the block drawn last, print ``permanent`` lines there (they scroll away), then
        draw the block again below them. Block lines are cut to the terminal width: a wrapped line would
        break the cursor arithmetic. Every line is made safe before the display's own cursor movement is
        added: the only control sequences written are the display's."""
        import shutil

        cols = self.columns or shutil.get_terminal_size((100, 24)).columns
        out = [f"\r\x1b[{self._drawn}A"] if self._drawn else []
        for text in permanent or []:
            out.append(f"\x1b[2K{safe(text, LINE_LIMIT)}\x1b[K\n")
        block = [safe(self.line(name), cols)[: max(10, cols - 1)] for name in self._devices]
        out += [f"\x1b[2K{text}\n" for text in block]
        self._drawn = len(block)
        self.stream.write("".join(out))
        self.stream.flush()


class NoteHandler(logging.Handler):
    """hilbench's own warnings during a run (a charging phone, say) go through the progress display."""

    def __init__(self, progress: LineProgress | LiveProgress) -> None:
        super().__init__(logging.WARNING)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.note(record.getMessage())


def make_progress(stream: TextIO, quiet: bool = False) -> LineProgress | LiveProgress:
    """The live per-device display on a terminal, else plain lines (logs, pipes, TERM=dumb)."""
    if not quiet and stream.isatty() and os.environ.get("TERM", "") != "dumb":
        return LiveProgress(stream)
    return LineProgress(stream, quiet=quiet)
