"""One job's run, from protocol messages to its row: what the agent says is decoded and checked
(:func:`take_line`), collected (:class:`JobRun`: samples, telemetry, phases, result, error) and turned into
the row of the runs table and the samples and telemetry tables. The orchestration around it (transports,
recovery, the session) is :mod:`harness.run.session`."""

from __future__ import annotations

import datetime as dt
import platform
import time
from array import array
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from harness import __version__
from harness.agent.bundle import agent_bundle
from harness.agent.protocol import decode_line
from harness.agent.validate import ITEM_OUTPUT_VALUES, MAX_OUTPUT_VALUES, Limits, MessageChecker
from harness.config.plan import Job
from harness.errors import ProtocolError
from harness.transport import Transport

__all__ = ["Progress", "JobRun", "take_line", "host_facts", "now_utc"]


class Progress:
    """Receives progress events; the CLI draws them. Methods may be called from worker threads.

    ``job_started`` comes before the job's files are shipped (its first ``phase`` event comes once the
    agent runs), ``job_finished`` after its row is stored; a job stored as a failure without running
    gets both."""

    def session_started(self, session_id: str, jobs: list[Job], skipped: int) -> None: ...

    def job_started(self, job: Job, run_id: str) -> None: ...

    def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None: ...

    def device_lock(self, job: Job, event: str, info: dict[str, Any]) -> None:
        """The job's agent waits for the device (``wait``: ``info["holder"]`` has it, again when the holder
        changes) or got it (``acquired``: ``info["waited_ns"]``, ``info["waited_for"]``)."""

    def job_finished(self, job: Job, row: dict[str, Any]) -> None: ...


def host_facts() -> dict[str, Any]:
    return {
        "hilbench_version": __version__,
        "python": platform.python_version(),
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
        "hostname": platform.node(),
    }


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)



class _Samples:
    """One job's samples: per phase (in the order the phases came), int64 chunks as validated, 16 bytes a
    sample; the iteration is the index within the phase (the checker makes batches arrive in order)."""

    def __init__(self) -> None:
        self._lat: dict[str, list[np.ndarray]] = {}
        self._t: dict[str, list[np.ndarray]] = {}
        #: per chunk, its GPU times (CUDA events) or None where the batch carried none
        self._gpu: dict[str, list[np.ndarray | None]] = {}

    def add(self, phase: str, latency_ns: np.ndarray, t_ns: np.ndarray, gpu_ns: np.ndarray | None = None) -> None:
        self._lat.setdefault(phase, []).append(latency_ns)
        self._t.setdefault(phase, []).append(t_ns)
        self._gpu.setdefault(phase, []).append(gpu_ns)

    def _gpu_column(self, lat: list[np.ndarray], gpu: list[np.ndarray | None]) -> pa.Array:
        """The optional gpu_ns column: the chunks' GPU times, null where a chunk had none."""
        if all(g is None for g in gpu):
            return pa.nulls(sum(len(c) for c in lat), pa.int64())
        return pa.concat_arrays([pa.array(g, pa.int64()) if g is not None else pa.nulls(len(c), pa.int64())
                                 for c, g in zip(lat, gpu, strict=True)])

    def __len__(self) -> int:
        return sum(len(c) for chunks in self._lat.values() for c in chunks)

    def latencies(self, phase: str) -> np.ndarray:
        chunks = self._lat.get(phase)
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)

    def columns(self) -> dict[str, Any]:
        """phase, latency_ns and t_ns as columns (the phase a list of shared strings, 8 bytes a row)."""
        phase: list[str] = []
        for name, chunks in self._lat.items():
            phase.extend([name] * sum(len(c) for c in chunks))
        if not phase:
            return {"phase": [], "latency_ns": [], "t_ns": []}
        return {"phase": phase, "latency_ns": np.concatenate([c for cs in self._lat.values() for c in cs]),
                "t_ns": np.concatenate([c for cs in self._t.values() for c in cs])}

    def table(self, run_id: str, first: tuple[int, int, int | None] | None = None) -> pa.Table | None:
        """The samples table of ``run_id`` (None when empty), built in Arrow: no Python object per row.
        ``first`` (latency, start, GPU time or None) leads as phase "first"."""
        names = [(name, sum(len(c) for c in chunks)) for name, chunks in self._lat.items()]
        lat = [c for chunks in self._lat.values() for c in chunks]
        t_ns = [c for chunks in self._t.values() for c in chunks]
        gpu = [g for chunks in self._gpu.values() for g in chunks]
        if first is not None:
            names.insert(0, ("first", 1))
            lat.insert(0, np.array([first[0]], dtype=np.int64))
            t_ns.insert(0, np.array([first[1]], dtype=np.int64))
            gpu.insert(0, np.array([first[2]], dtype=np.int64) if first[2] is not None else None)
        n = sum(k for _, k in names)
        if not n:
            return None
        return pa.table({
            "run_id": pa.repeat(run_id, n),
            "phase": pa.concat_arrays([pa.repeat(name, k) for name, k in names]),
            "iteration": np.concatenate([np.arange(k, dtype=np.int64) for _, k in names]),
            "latency_ns": np.concatenate(lat),
            "t_ns": np.concatenate(t_ns),
            "gpu_ns": self._gpu_column(lat, gpu),
        })


class _Telemetry:
    """One job's telemetry readings: times and values in arrays, names shared (the checker interns them)."""

    def __init__(self) -> None:
        self.t_ns = array("q")
        self.value = array("d")  # NaN where the reading had none (the agent never sends NaN)
        self.sensor: list[str | None] = []
        self.unit: list[str | None] = []
        self.source: list[str | None] = []

    def add(self, msg: dict[str, Any]) -> None:
        self.t_ns.extend(msg["t_ns"])
        self.value.extend(msg["value"])
        self.sensor.extend(msg["sensor"])
        self.unit.extend(msg["unit"])
        self.source.extend(msg["source"])

    def __len__(self) -> int:
        return len(self.t_ns)

    def columns(self) -> dict[str, Any]:
        """The telemetry table's columns (without run_id); ``value`` a float Series whose NaN are nulls."""
        return {"t_ns": np.frombuffer(self.t_ns, dtype=np.int64).copy(),
                "sensor": self.sensor, "unit": self.unit, "source": self.source,
                "value": pd.Series(np.frombuffer(self.value, dtype=np.float64).copy(), dtype="float64")}


class JobRun:
    """Collects one job's protocol messages into store rows. Every message passes the job's
    :class:`~harness.agent.validate.MessageChecker` first; :meth:`handle` raises MessageError for an invalid one."""

    def __init__(self, job: Job, run_id: str) -> None:
        self.job = job
        self.run_id = run_id
        self.hello: dict[str, Any] = {}
        self.result: dict[str, Any] | None = None
        self.error: tuple[str, str] | None = None
        self.samples = _Samples()
        self.telemetry = _Telemetry()
        #: the first inference: (latency, start, GPU time or None)
        self.first: tuple[int, int, int | None] | None = None
        self.phase_begin_t: dict[str, int] = {}
        #: the phase the agent is in and when (host monotonic clock) it began, for per-phase timeouts
        self.current: tuple[str, float] | None = None
        self.accuracy: dict[str, list[Any]] = {"index": [], "label": [], "prediction": [], "top5": [], "score": [],
                                               "output": []}
        #: bytes this job shipped to the device (its prepare and uploads); None when it never reached one
        self.bytes_sent: int | None = None
        #: the device's doctor facts, probed once per session (harness.doctor.checks.device_facts)
        self.device_facts: dict[str, Any] | None = None
        #: connections restored after a drop during this job, and how its result came back after one:
        #: "journal" (read from the agent's journal on the device) or "rerun" (the job ran again)
        self.reconnects = 0
        self.recovery: str | None = None
        self._checker: MessageChecker | None = None  # made at the first message (it may read the eval file)
        #: the device lock as the agent reported it: path, acquired, waited_s, waited_for (the runs column)
        self.lock: dict[str, Any] | None = None
        #: host monotonic time the agent began waiting for the device lock, and the seconds it waited once it
        #: got it (the job's timeout does not run meanwhile)
        self.lock_wait_began: float | None = None
        self.lock_waited_s = 0.0
        #: the offload verdict an error message carried (a run require_offload failed), checked
        self.error_offload: dict[str, Any] | None = None

    def handle(self, msg: dict[str, Any], progress: Progress) -> None:
        if self._checker is None:
            self._checker = MessageChecker(Limits.for_job(self.job))
        msg = self._checker.check(msg)
        kind = msg["type"]
        if kind == "sample":
            self.samples.add(msg["phase"], msg["latency_ns"], msg["t_ns_each"], msg.get("gpu_ns"))
        elif kind == "telemetry":
            self.telemetry.add(msg)
        elif kind == "phase":
            phase = msg["phase"]
            t_ns = msg.get("t_ns") or 0
            if msg["event"] == "begin":
                self.phase_begin_t[phase] = t_ns
                self.current = (phase, time.monotonic())
            else:
                self.current = None
                if phase == "first":
                    self.first = (msg["duration_ns"], self.phase_begin_t.get("first", t_ns), msg.get("gpu_ns"))
            progress.phase(self.job, phase, msg["event"], msg)
        elif kind == "accuracy":
            a = self.accuracy
            tops = msg["top"]
            a["index"].extend(msg["index"])
            a["label"].extend(msg["label"])
            a["top5"].extend(tops)
            a["prediction"].extend(t[0] if t else None for t in tops)
            a["score"].extend(msg["score"])
            a["output"].extend(msg["output"])
        elif kind == "lock":
            self._lock(msg, progress)
        elif kind == "hello":
            self.hello = msg
        elif kind == "result":
            self.result = msg
            self._require_offload(msg)
        elif kind == "error":
            self.error = (msg["category"], msg["message"])
            if msg.get("offload") is not None:
                self.error_offload = msg["offload"]

    def _require_offload(self, result: dict[str, Any]) -> None:
        """``require_offload``: the agent fails a partly offloaded run itself; this catches what it could not (an
        older agent that reports no verdict, a vendor runner's output) and fails the run the same way."""
        from harness.analysis.offload import normalize, required_problem

        if self.error is None and self.job.require_offload:
            problem = required_problem(normalize(result.get("offload")))
            if problem:
                self.error = ("backend", problem)

    def _lock(self, msg: dict[str, Any], progress: Progress) -> None:
        now = time.monotonic()
        event = msg["event"]
        lock = self.lock or {"path": msg.get("path"), "acquired": False, "waited_s": 0.0, "waited_for": None}
        lock["path"] = msg.get("path") or lock["path"]
        if event == "wait":
            if self.lock_wait_began is None:
                self.lock_wait_began = now
            lock["waited_for"] = msg.get("holder")
            lock["held_s"] = msg.get("held_s")
            lock["waited_s"] = round(now - self.lock_wait_began, 3)
        else:
            lock["acquired"] = True
            # When the measurement could begin: the device's clock (that of the samples) and the host's.
            lock["acquired_t_ns"] = msg.get("t_ns")
            lock["acquired_at"] = now_utc().isoformat()
            lock["waited_s"] = round(msg["waited_ns"] / 1e9, 3)
            lock["waited_for"] = msg.get("waited_for") if msg["waited_ns"] else None
            if self.lock_wait_began is not None:
                self.lock_waited_s = now - self.lock_wait_began
            self.lock_wait_began = None
        self.lock = lock
        progress.device_lock(self.job, event, msg)

    @property
    def lock_waiting(self) -> bool:
        """The agent is waiting for the device lock now."""
        return self.lock_wait_began is not None

    def lock_paused_s(self, now: float) -> float:
        """Seconds this attempt's timeout stood still: the wait for the device lock, so far or in all."""
        return self.lock_waited_s + (now - self.lock_wait_began if self.lock_wait_began is not None else 0.0)

    def _verdict(self, res: dict[str, Any], derived: dict[str, Any] | None) -> dict[str, Any] | None:
        """The stability verdict of an ok run with samples (harness/analysis/stability.py), with the warnings
        of its telemetry and of output vectors not kept; None for a failed or aggregate-only run."""
        from harness.analysis.stability import assess

        job = self.job
        if self.result is None or self.error is not None or res.get("aggregate_only"):
            return None  # a vendor runner that prints only aggregates (LiteRT benchmark_model): nothing to assess
        verdict = assess(self.samples.latencies("timed"), first_inference_ns=res.get("first_ns"),
                         requested_percentiles=job.policy.percentiles,
                         settings={"warmup": job.policy.warmup, "timed": job.policy.timed,
                                   "timed_stop": (res.get("timed") or {}).get("stop_reason"),
                                   "affinity": list(job.policy.affinity), "backend": job.backend,
                                   **job.settings}).to_dict()
        extra = list((derived or {}).get("warnings") or []) + self._outputs_warning(res) + self._reconnect_warning()
        if extra:
            verdict["warnings"] = list(verdict.get("warnings") or []) + extra
        return verdict

    def _reconnect_warning(self) -> list[dict[str, Any]]:
        """A warning when the connection dropped during the job and was restored: the run says so."""
        n = self.reconnects
        if not n:
            return []
        how = {"journal": "the result was read back from the agent's journal on the device, where the job ran on",
               "rerun": "the agent did not finish on the device, so the job ran again from the start"}
        return [{"code": "reconnected",
                 "message": f"the connection to the device dropped {n} time{'s' if n != 1 else ''} during this run "
                            f"and was restored; {how.get(self.recovery or '', 'the job went on')}",
                 "remedy": "check the device's network and power (cable, Wi-Fi power saving); rerun the job if "
                           "what dropped the connection may also have disturbed the device"}]

    def _outputs_warning(self, res: dict[str, Any]) -> list[dict[str, Any]]:
        """A warning when output vectors were not kept: past the host's cap on a job's values, or (the agent's
        count) one item's too large for a protocol line."""
        checker = self._checker
        accuracy = res.get("accuracy")
        agent_dropped = accuracy.get("outputs_not_kept") if isinstance(accuracy, dict) else 0
        dropped = (checker.outputs_dropped if checker is not None else 0) + (
            agent_dropped if type(agent_dropped) is int and agent_dropped > 0 else 0)
        if not dropped:
            return []
        cap = checker.limits.output_values if checker else MAX_OUTPUT_VALUES
        return [{"code": "outputs_not_kept",
                 "message": f"the output vectors of {dropped} evaluation items were not kept (too large: a job's "
                            f"outputs are kept up to {cap:,} values, one item's up to {ITEM_OUTPUT_VALUES:,}); "
                            "their top-k and scores were",
                 "remedy": "set keep_outputs = false, or a smaller limit in [models.eval], unless a scorer or "
                           "fidelity needs every output"}]

    def rows(self, *, session_id: str, labels: dict[str, str], started: dt.datetime, transport: Transport | None,
             stderr_tail: str = "") -> dict[str, Any]:
        """The run's row of the runs table (harness/store.py has its schema)."""
        from harness.analysis.usage import usage_columns

        job = self.job
        res = self.result or {}
        hello = {k: v for k, v in self.hello.items() if k not in ("v", "type", "t_ns")}
        warm = res.get("warmup") or {}
        timed = res.get("timed") or {}
        mem = res.get("memory") or {}
        status = "ok" if self.result is not None and self.error is None else "error"
        derived = self._derived()
        verdict = self._verdict(res, derived)
        category, message = self.error if self.error else (None, None)
        return {
            "run_id": self.run_id,
            "session_id": session_id,
            "job_key": job.key,
            "plan": job.plan,
            "model": job.model.name,
            "model_path": str(job.model.path) if job.model.path else None,
            "model_sha256": job.model.sha256,
            "model_format": job.model.format,
            "model_tags": job.model.tags,
            "target": job.target.name,
            "transport": job.target.transport,
            "backend": job.backend,
            "settings": job.settings,
            "effective_settings": res.get("effective_settings"),
            "policy": job.policy.to_dict(),
            "status": status,
            "error_category": category,
            "error_message": message,
            "started_at": started,
            "finished_at": now_utc(),
            "hilbench_version": __version__,
            "agent_version": hello.get("agent_version"),
            "agent_sha256": agent_bundle().sha256,
            "python": hello.get("python"),
            "os": f"{hello.get('os', '')} {hello.get('os_release', '')}".strip() or None,
            "machine": hello.get("machine"),
            "cpu_model": hello.get("cpu_model"),
            "device_model": hello.get("device_model"),
            "emulated": bool(hello.get("emulated")) if hello else None,
            "emulation": hello.get("emulated"),
            # A run through the fake transport is a replayed script, not a measurement.
            "stand_in": job.backend == "synthetic" or job.target.transport == "fake",
            "device": hello or None,
            "host": host_facts(),
            "target_facts": job.target.public_dict(),
            "labels": {**labels, "ab": job.arm} if job.arm else labels,
            "load_ns": res.get("load_ns"),
            "first_ns": res.get("first_ns"),
            "warmup_count": warm.get("count"),
            "warmup_ns": warm.get("duration_ns"),
            "warmup_stop": warm.get("stop_reason"),
            "timed_count": timed.get("count"),
            "timed_ns": timed.get("duration_ns"),
            "timed_stop": timed.get("stop_reason"),
            "rate_hz": timed.get("rate_hz"),
            "deadline_misses": timed.get("deadline_misses"),
            "dropped_frames": timed.get("dropped_frames"),
            "rss_before_load_kb": mem.get("rss_before_load_kb"),
            "rss_after_load_kb": mem.get("rss_after_load_kb"),
            "hwm_kb": mem.get("hwm_kb"),
            "valid": bool(verdict["valid"]) if verdict is not None else None,
            "verdict": verdict,
            "result": {k: v for k, v in res.items() if k not in ("v", "type", "t_ns")} or None,
            "bytes_sent": self.bytes_sent,
            "aggregate_only": bool(res.get("aggregate_only")) if self.result is not None else None,
            "runner": res.get("runner"),
            "stderr_tail": stderr_tail[-4000:] if status != "ok" and stderr_tail else None,
            "derived": derived,
            "device_facts": self.device_facts,
            "eval_sha256": job.model.eval.get("sha256") if job.model.eval else None,
            "device_lock": self._lock_column(),
            "reconnects": self.reconnects,
            "lab": transport.lab_record() if transport is not None else None,
            "offload": self._offload(res),
            "process": job.process or None,
            "processes": job.policy.processes if job.process else None,
            **usage_columns(res, failed=status != "ok"),
        }

    def _offload(self, res: dict[str, Any]) -> dict[str, Any]:
        """The runs row's ``offload`` verdict (harness/analysis/offload.py), as checked with the result (or the
        error that require_offload raised); a run whose agent sent none says why it is unknown."""
        from harness.analysis.offload import normalize, not_reported

        if self.result is None:
            if self.error_offload is not None:
                return self.error_offload
            return not_reported("the run ended before the agent reported its offload")
        return normalize(res.get("offload")) if res.get("offload") is not None else not_reported()

    def _lock_column(self) -> dict[str, Any] | None:
        """The runs row's ``device_lock``: where the lock was, whether the job got it, how long it waited and
        for whom; None where the agent sent no ``lock`` message (a vendor runner without flock, a replay)."""
        if self.lock is None:
            return None
        lock = dict(self.lock)
        if not lock["acquired"] and self.lock_wait_began is not None:
            lock["waited_s"] = round(time.monotonic() - self.lock_wait_began, 3)
        return lock

    def _derived(self) -> dict[str, Any] | None:
        """Telemetry-derived figures (harness/analysis/derive.py); a bug there never loses the run."""
        from harness.analysis.derive import derive_run

        try:
            return derive_run(self.result, self.hello, self.samples.columns(), self.telemetry.columns())
        except Exception as exc:  # noqa: BLE001 - the run's own data is stored either way
            return {"version": 1, "error": f"{type(exc).__name__}: {exc}"}


def take_line(run: JobRun, line: str | dict[str, Any], where: str, progress: Progress) -> str | None:
    """Decode (unless already decoded), validate and collect one protocol line into ``run``. Returns None,
    or the one-line reason the job ends as an ``agent`` error: the line breaks the protocol, or (a hilbench
    bug) handling it raised; neither escapes, so one job's bad message never ends the session."""
    kind = "?"
    try:
        msg = decode_line(line, where=where) if isinstance(line, str) else line
        kind = str(msg.get("type"))
        run.handle(msg, progress)
    except ProtocolError as exc:
        text = str(exc)
        return text if text.startswith(where) else f"{where}: {text}"
    except Exception as exc:  # noqa: BLE001 - a bug here must cost one job, not the session
        detail = " ".join(str(exc).split())[:500]
        return f"{where}: hilbench failed on a {kind[:40]} message (a bug, please report it): {type(exc).__name__}: {detail}"
    return None
