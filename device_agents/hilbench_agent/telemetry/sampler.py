"""The telemetry sampler: a daemon thread that reads sources at a fixed rate and emits batches.

Life cycle::

    sampler = Sampler(sources, rate_hz=10.0, emit=send_batch)
    sampler.start()        # starts the daemon thread; a first read happens at once
    ...                    # the timed loop runs; the sampler never touches it
    sampler.stop()         # stops, joins, flushes what is buffered, closes the sources

or ``with Sampler(...) as sampler:``. ``emit(batch)`` is called from the
sampler thread (and from ``stop()``) with a list of dicts
``{"t_ns", "sensor", "value", "unit", "source"}`` (+ ``"reason"`` when the value
is None), every ``flush_interval_s`` and at stop.

``t_ns`` comes from ``clock`` (default ``time.monotonic_ns``), the same clock
the agent times inferences with, taken just before each source is read.

A source may declare ``min_interval_s`` (slow commands such as vcgencmd): it is
read at most that often. A source that raises ``max_failures`` times in a row
is disabled, and that is reported once, as a reading of sensor
``source.<name>`` with value None and the error as the reason. Nothing here
raises into the caller's thread; ``emit`` errors are counted in ``emit_errors``.
"""

import threading
import time

__all__ = ["Sampler"]

_thread_time = getattr(time, "thread_time", time.process_time)


class Sampler(object):
    """Reads ``sources`` at ``rate_hz`` in a daemon thread and hands batches of readings to ``emit``."""

    def __init__(self, sources, rate_hz=10.0, emit=None, clock=None, flush_interval_s=1.0, max_failures=3):
        if not rate_hz or rate_hz <= 0:
            raise ValueError("rate_hz must be positive, not %r" % (rate_hz,))
        self.sources = list(sources)
        self.rate_hz = float(rate_hz)
        self.period_ns = int(round(1e9 / self.rate_hz))
        self.emit = emit if emit is not None else (lambda batch: None)
        self.clock = clock if clock is not None else time.monotonic_ns
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self.max_failures = int(max_failures)
        self.failures = {}
        self.disabled = {}
        self.ticks = 0
        self.overruns = 0
        self.emit_errors = 0
        self.last_emit_error = None
        self.cpu_time_s = 0.0
        self._last_read = {}
        self._buffer = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._stopped = False

    # -- one step, usable without the thread (tests drive it with a fake clock) --

    def tick(self):
        """Read every source that is due once; returns the number of readings buffered."""
        count = 0
        for source in self.sources:
            name = getattr(source, "name", type(source).__name__)
            if name in self.disabled:
                continue
            t_ns = self.clock()
            min_ns = int(getattr(source, "min_interval_s", 0.0) * 1e9)
            last = self._last_read.get(name)
            # Half a period of slack keeps a 1 s source at 1 s rather than 1 s + one period.
            if last is not None and min_ns and t_ns - last < min_ns - self.period_ns // 2:
                continue
            self._last_read[name] = t_ns
            try:
                readings = source.read()
            except Exception as exc:  # any failure of a source is data, never a crash
                self._failed(name, t_ns, exc)
                continue
            self.failures[name] = 0
            batch = []
            for r in readings or ():
                if isinstance(r, dict):
                    d = dict(r)
                    d.setdefault("t_ns", t_ns)
                else:
                    d = r.to_dict(t_ns)
                batch.append(d)
            if batch:
                with self._lock:
                    self._buffer.extend(batch)
                count += len(batch)
        self.ticks += 1
        return count

    def _failed(self, name, t_ns, exc):
        n = self.failures.get(name, 0) + 1
        self.failures[name] = n
        if n >= self.max_failures:
            reason = "disabled after %d consecutive failures: %s: %s" % (n, type(exc).__name__, exc)
            self.disabled[name] = reason
            with self._lock:
                self._buffer.append({"t_ns": int(t_ns), "sensor": "source." + name, "value": None, "unit": "",
                                     "source": name, "reason": reason})

    def flush(self):
        """Emit what is buffered (nothing when the buffer is empty)."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            self.emit(batch)
        except Exception as exc:  # the host link may be gone; the journal has the rest
            self.emit_errors += 1
            self.last_emit_error = "%s: %s" % (type(exc).__name__, exc)
        return len(batch)

    # -- the thread --

    def start(self):
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._thread = threading.Thread(target=self._run, name="hilbench-telemetry", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        cpu0 = _thread_time()
        next_t = self.clock()
        last_flush = next_t
        try:
            while not self._stop.is_set():
                self.tick()
                now = self.clock()
                if now - last_flush >= self.flush_interval_ns:
                    self.flush()
                    last_flush = now
                next_t += self.period_ns
                if next_t <= now:
                    missed = (now - next_t) // self.period_ns + 1
                    self.overruns += missed
                    next_t += missed * self.period_ns
                self._stop.wait((next_t - now) / 1e9)
        finally:
            self.cpu_time_s = _thread_time() - cpu0

    def stop(self, timeout_s=5.0):
        """Stop the thread, wait for it, emit what is left and close the sources. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush()
        for source in self.sources:
            close = getattr(source, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
