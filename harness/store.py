"""The results store: a folder of Parquet files, append-only, written atomically.

Layout (schema version 2)::

    results/
      hilbench-store.json          {"schema_version": 2}
      sessions/<session_id>.parquet one row per `hilbench run` invocation
      runs/<run_id>.parquet         one row per job (status ok or error)
      samples/<run_id>.parquet      every iteration: run_id, phase, iteration, latency_ns, t_ns, gpu_ns
      telemetry/<run_id>.parquet    run_id, t_ns, sensor, value, unit, source
      accuracy/<run_id>.parquet     run_id, index, label, prediction, ...
      summaries/<run_id>.parquet    the run's timed-latency summary (count, mean, quantiles, CIs ...), written
                                    with its runs row (schema v2; `hilbench store migrate` adds it to v1 stores)
      <table>/session=<id>.parquet  a closed session's per-run files merged by `hilbench store compact`
                                    (harness/storecompact.py); its footer lists the runs it holds, and a
                                    per-run file of a run it holds is ignored by every reader

A reader needs no summary file: a run without one (a v1 store, a failed summary write) is summarised from
its samples, as before schema v2, to the same figures.

Every file is written to a temporary name and renamed, so a crash or two
concurrent writers never leave a half-written file. The same layout can live
under ``s3://bucket/prefix`` (an object appears whole once uploaded: no temporary
names); every read and write goes through the store's location
(harness/storage.py), a local folder or an object store. A run's ``runs`` row is
written last: samples whose run has no row (a crash in between) are ignored by
every reader. DuckDB, Polars or Spark read the same files directly.

A file that cannot be read (truncated, empty, another table's) is skipped by every
reader with a one-line warning naming it; ``hilbench store check --repair``
(harness/storecheck.py) moves it into ``quarantine/``. A session row says who runs it
(host, pid, process identity; harness/liveness.py) and is rewritten with a heartbeat
while it runs, so :meth:`Store.sessions` shows a session whose process is gone as
``abandoned``. Temporary files left by a killed writer are removed by the next
``ensure_writable`` (every ``hilbench run``) and by ``store check --repair``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.errors import StoreError
from harness.liveness import (
    HEARTBEAT_S,
    STALE_AFTER_S,
    TEMP_GRACE_S,
    lock_free,
    machine_tag,
    owner_state,
    pid_alive,
    this_process,
)
from harness.safetext import safe
from harness.storage import (  # noqa: F401  (_temp_for, _fsync, _write_failure: kept importable from here)
    LocalFolder,
    ObjectStore,
    _fsync,
    _temp_for,
    _unlink_quiet,
    _write_failure,
    open_location,
)

__all__ = ["Store", "open_store", "SCHEMA_VERSION", "new_id", "SCHEMAS", "KEY_COLUMNS", "file_problem",
           "schema_problem", "REPAIR_HINT"]

_LOG = logging.getLogger("hilbench.store")

SCHEMA_VERSION = 2
MARKER = "hilbench-store.json"
TABLES = ("sessions", "runs", "samples", "telemetry", "accuracy", "summaries")
#: The columns of a run's summary (harness/analysis/stats.py SUMMARY_COLUMNS; a test keeps them equal).
SUMMARY_FIELDS: tuple[str, ...] = (
    "count", "mean_ns", "std_ns", "min_ns", "p50_ns", "p90_ns", "p95_ns", "p99_ns", "p999_ns", "max_ns", "iqr_ns",
    "mad_ns", "cv", "jitter_ns", "throughput_per_s", "p50_ci_low_ns", "p50_ci_high_ns", "p99_ci_low_ns",
    "p99_ci_high_ns")
#: A closed session's merged file of a per-run table: ``<table>/session=<session_id>.parquet``.
COMPACT_PREFIX = "session="
#: The footer key of a merged file that lists (JSON) the run ids whose per-run files it holds.
COVERS_KEY = b"hilbench.runs"

_J = pa.string()  # JSON-encoded columns
SCHEMAS: dict[str, pa.Schema] = {
    "sessions": pa.schema([
        ("session_id", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")), ("plan", pa.string()), ("plan_path", pa.string()),
        ("plan_sha256", pa.string()), ("plan_text", pa.string()), ("labels", _J), ("hilbench_version", pa.string()),
        ("host", _J), ("argv", _J), ("jobs", pa.int64()), ("jobs_ok", pa.int64()), ("jobs_failed", pa.int64()),
        ("status", pa.string()),
        # Who runs the session (harness/liveness.py) and when it last said so; null in older sessions.
        ("owner_host", pa.string()), ("owner_pid", pa.int64()), ("owner_process", pa.string()),
        ("heartbeat_at", pa.timestamp("us", tz="UTC")),
    ]),
    "runs": pa.schema([
        ("run_id", pa.string()), ("session_id", pa.string()), ("job_key", pa.string()), ("plan", pa.string()),
        ("model", pa.string()), ("model_path", pa.string()), ("model_sha256", pa.string()),
        ("model_format", pa.string()), ("model_tags", _J), ("target", pa.string()), ("transport", pa.string()),
        ("backend", pa.string()), ("settings", _J), ("effective_settings", _J), ("policy", _J),
        ("status", pa.string()), ("error_category", pa.string()), ("error_message", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")), ("finished_at", pa.timestamp("us", tz="UTC")),
        ("hilbench_version", pa.string()), ("agent_version", pa.string()), ("agent_sha256", pa.string()),
        ("python", pa.string()), ("os", pa.string()), ("machine", pa.string()), ("cpu_model", pa.string()),
        ("device_model", pa.string()), ("emulated", pa.bool_()), ("emulation", pa.string()),
        ("stand_in", pa.bool_()), ("device", _J), ("host", _J), ("target_facts", _J), ("labels", _J),
        ("load_ns", pa.int64()), ("first_ns", pa.int64()), ("warmup_count", pa.int64()),
        ("warmup_ns", pa.int64()), ("warmup_stop", pa.string()), ("timed_count", pa.int64()),
        ("timed_ns", pa.int64()), ("timed_stop", pa.string()), ("rate_hz", pa.float64()),
        ("deadline_misses", pa.int64()), ("dropped_frames", pa.int64()),
        ("rss_before_load_kb", pa.int64()), ("rss_after_load_kb", pa.int64()), ("hwm_kb", pa.int64()),
        ("valid", pa.bool_()), ("verdict", _J), ("result", _J), ("bytes_sent", pa.int64()),
        ("aggregate_only", pa.bool_()), ("runner", pa.string()),
        ("stderr_tail", pa.string()),
        # Figures derived from telemetry and samples (harness/analysis/derive.py); null in older runs.
        ("derived", _J),
        # What `hilbench doctor` shows about the device, probed once per session per target; null in older runs.
        ("device_facts", _J),
        # The evaluation file's sha256 as the host computed it from the plan (never the device's echo); null
        # for runs without an accuracy phase and in older runs.
        ("eval_sha256", pa.string()),
        # The agent's memory and CPU figures and where each came from (harness/analysis/usage.py); null in older
        # runs, and where a run lacks a figure usage_missing says why.
        ("timed_peak_rss_kb", pa.int64()), ("rss_growth_kb", pa.int64()), ("cpu_user_s", pa.float64()),
        ("cpu_system_s", pa.float64()), ("cpu_busy_cores", pa.float64()), ("footprint_kb", pa.int64()),
        ("footprint_growth_kb", pa.int64()), ("unified_used_kb", pa.int64()), ("unified_growth_kb", pa.int64()),
        ("usage_sources", _J), ("usage_missing", _J),
        # The device's lock (docs/reliability.md): path, acquired, waited_s and waited_for (the owner record of the
        # run it waited for); null in older runs and where the device has no lock (a phone without flock).
        ("device_lock", _J),
        # Connections to the device restored after a drop during the run (its verdict warns "reconnected");
        # null in older runs.
        ("reconnects", pa.int64()),
        # The labgrid place the run held (docs/lab.md): coordinator, place, exporter, resource, reservation,
        # endpoint, waited_s, lost; null for other targets and in older runs.
        ("lab", _J),
        # How much of the model the accelerator ran (harness/analysis/offload.py): accelerator, node counts,
        # partitions, the ops left on the CPU and where the counts came from; null in older runs.
        ("offload", _J),
        # policy.processes (docs/analysis.md): which of the configuration's agent processes this run was (1-based)
        # and how many the session ran; null for one-process plans and in older runs (each run is one process).
        ("process", pa.int64()), ("processes", pa.int64()),
    ]),
    "samples": pa.schema([
        ("run_id", pa.string()), ("phase", pa.string()), ("iteration", pa.int64()),
        ("latency_ns", pa.int64()), ("t_ns", pa.int64()),
        # GPU time of the same invoke (CUDA events), never above latency_ns; null where the backend times
        # nothing on a GPU, and in stores written before it existed (read as null).
        ("gpu_ns", pa.int64()),
    ]),
    "telemetry": pa.schema([
        ("run_id", pa.string()), ("t_ns", pa.int64()), ("sensor", pa.string()), ("value", pa.float64()),
        ("unit", pa.string()), ("source", pa.string()),
    ]),
    "accuracy": pa.schema([
        ("run_id", pa.string()), ("index", pa.int64()), ("label", pa.int64()), ("prediction", pa.int64()),
        ("top5", pa.list_(pa.int64())), ("score", pa.float64()), ("reference_prediction", pa.int64()),
        ("output_error", pa.float64()),
        # The item's whole output vector (dequantised), for fidelity and user scorers; null when not kept.
        ("output", pa.list_(pa.float32())),
    ]),
    # One row per run, written with its runs row (schema v2) where it has its own samples file: the summary of
    # its timed latencies, as Store.summary() computes it from the samples (`store migrate`: count 0 where the
    # run stored no samples).
    "summaries": pa.schema([("run_id", pa.string()), *[(c, pa.float64()) for c in SUMMARY_FIELDS]]),
}
_JSON_NAMES = {"labels", "host", "argv", "model_tags", "settings", "effective_settings", "policy", "device",
               "target_facts", "verdict", "result", "derived", "device_facts", "usage_sources", "usage_missing", "device_lock",
               "lab", "offload"}
#: Columns that hold JSON text; ``Store.run`` decodes them.
JSON_COLUMNS = {name: [f.name for f in schema if f.name in _JSON_NAMES] for name, schema in SCHEMAS.items()}
#: Columns every row of a table has: a file without one is not of that table (another table's, or foreign).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": ("session_id", "started_at"), "runs": ("run_id", "status"),
    "samples": ("run_id", "phase", "latency_ns"), "telemetry": ("run_id", "t_ns", "sensor"),
    "accuracy": ("run_id", "index"), "summaries": ("run_id", "count"),
}
#: Runs without a stored summary from which a reader notes that `hilbench store migrate` would help.
_NOTE_UNSUMMARISED = 200
#: From how many runs in per-run files (runs/<run_id>.parquet) `Store.summary` suggests `store compact`.
_NOTE_UNCOMPACTED = 500
#: Rows a compacted file's row group gathers before it is written (harness/storecompact.py).
_GROUP_ROWS = 32_768
#: What a reader's warning about a skipped file tells the user to run.
REPAIR_HINT = "hilbench store check --repair --store {root}"
#: Temporary files: ``.<file name>.<machine tag>-<pid>.<random>.tmp`` (older versions: no tag and pid).
_TEMP_RE = re.compile(r"^\.(?P<target>.+?)\.(?P<tag>[0-9a-f]{8})-(?P<pid>[0-9]+)\.[^.]*(\.reserve)?\.tmp$")
#: The room a running session keeps (:meth:`Store.reserve`): ``.<session>.parquet....reserve.tmp``.
_RESERVE_RE = re.compile(r"^\.(?P<session>.+?)\.parquet.*\.reserve\.tmp$")


def new_id(prefix: str = "") -> str:
    """Sortable, unique id: UTC time plus random bits, e.g. ``20261124T135001-3f9a2c``."""
    return prefix + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """A results store (a folder, or ``s3://bucket/prefix``). Writers append whole files; readers return pandas
    DataFrames."""

    def __init__(self, root: Path | str, *, check_marker: bool = True) -> None:
        """``root``: a folder, or ``s3://bucket/prefix`` (harness/storage.py). ``check_marker=False``
        (``store check``): open a store whose marker file is unreadable."""
        #: where the files live (harness/storage.py): every read and write goes through it
        self.location: LocalFolder | ObjectStore = open_location(root)
        #: the folder's Path, or an object store's URL with its credentials masked (what messages show)
        self.root: Any = self.location.root
        marker = f"{self.root}/{MARKER}" if self.location.remote else self.location.path(MARKER)
        text = self.location.read_text(MARKER)
        if text is not None:
            try:
                meta = json.loads(text)
                version = int(meta["schema_version"])
            except (ValueError, KeyError, TypeError) as exc:
                if not check_marker:
                    version = SCHEMA_VERSION
                else:
                    raise StoreError(f"{marker}: not a hilbench store marker ({exc}); "
                                     f"`{REPAIR_HINT.format(root=self.root)}` writes a new one") from exc
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.root}: store schema v{version} is newer than this hilbench (v{SCHEMA_VERSION}): upgrade hilbench"
                )
            self.schema_version = version
        #: files a reader skipped (path -> why), each warned about once
        self.skipped: dict[str, str] = {}
        self._checked: dict[str, tuple[tuple[int, int], str | None]] = {}  # path -> ((size, mtime), problem)
        self._covered: dict[str, tuple[tuple[int, int], frozenset[str] | None]] = {}  # compacted file -> its runs
        self._runs_cache: tuple[tuple[tuple[str, int, int], ...], pa.Table] | None = None  # (files' stamp, table)
        self._warn_lock = threading.Lock()
        self._session_lock = threading.RLock()
        self._beating: dict[str, pa.Table] = {}  # running sessions written here: name -> their row
        self._beat_thread: threading.Thread | None = None

    #: seconds between the heartbeats of a running session's row (harness/liveness.py)
    heartbeat_s = HEARTBEAT_S

    # ---------------------------------------------------------------- writing
    def ensure_writable(self) -> None:
        """Create the store if needed and prove it is writable, before any job runs; remove the temporary
        files that killed writers left (:meth:`stale_temps`)."""
        fresh = not hasattr(self, "schema_version")  # no marker when opened: prepare writes a current one
        self.location.prepare(TABLES, MARKER,
                              json.dumps({"schema_version": SCHEMA_VERSION}).encode() + b"\n")
        if fresh:
            self.schema_version = SCHEMA_VERSION
        if getattr(self, "schema_version", SCHEMA_VERSION) < SCHEMA_VERSION:
            try:
                self.migrate()
            except ImportError:  # a host without the analysis extra (scipy) stores runs and leaves the rest
                _LOG.info("hilbench: %s stays at schema v1 until `hilbench store migrate` (needs scipy)", self.root)
        for path, why in self.stale_temps():
            if _unlink_quiet(path):
                _LOG.info("hilbench: removed %s (%s)", path, why)

    def reserve(self, table: str, name: str, size: int) -> Path | None:
        """Keep ``size`` bytes of room in the store for the later write of ``table``/``name``: a hidden file
        named as that write's temporary (``.<name>.parquet....tmp``), of bytes no file system compresses away.
        Unlinking it makes room for that write when the disk has filled up meanwhile (a run closes its
        session row so). Raises StoreError when there is not that much room now. None in an object store,
        whose room does not run out under a run."""
        if self.location.remote:
            return None
        folder = self.root / table
        try:
            # Named for this machine and process, as every temporary file (stale_temps); held by no lock, as
            # unlinking it must free its room at once.
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.parquet.{machine_tag()}-{os.getpid()}.",
                                       suffix=".reserve.tmp")
        except OSError as exc:
            raise StoreError(f"{folder}: cannot write ({exc.strerror or exc})") from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(size))
        except OSError as exc:
            _unlink_quiet(tmp)
            raise StoreError(f"{self.root}: the results store has no room left ({exc.strerror or exc}): make room "
                             "before running") from exc
        except BaseException:
            _unlink_quiet(tmp)
            raise
        return Path(tmp)

    def discard(self, path: Path | str) -> bool:
        """Remove one file this process wrote (a run's samples whose runs row could not follow)."""
        return self.location.delete(path)

    def write_table(self, table: str, name: str,
                    rows: pa.Table | Iterable[dict[str, Any]] | dict[str, list[Any]]) -> Path | str:
        """Write one file of ``table`` atomically; ``rows`` are dicts, columns or an Arrow table. Raises
        StoreError (naming the folder; nothing of the file written) when the disk is full or not writable.
        A ``sessions`` row gets its owner (this process) and a heartbeat while its status is ``running``."""
        schema = SCHEMAS[table]
        if isinstance(rows, pa.Table):
            # A column the table lacks (a nullable one added since its writer was written: gpu_ns) is null.
            for f in schema:
                if f.name not in rows.column_names and f.nullable:
                    rows = rows.append_column(f.name, pa.nulls(rows.num_rows, type=f.type))
            arrow = rows.select(schema.names).cast(schema)
        elif isinstance(rows, dict):
            arrow = pa.table({f.name: pa.array(rows.get(f.name, [None] * _len(rows)), type=f.type) for f in schema},
                             schema=schema)
        else:
            rows = list(rows)
            json_cols = set(JSON_COLUMNS[table])
            cols = {f.name: [(_dumps(r.get(f.name)) if f.name in json_cols else r.get(f.name)) for r in rows]
                    for f in schema}
            arrow = pa.table({k: pa.array(v, type=schema.field(k).type) for k, v in cols.items()}, schema=schema)
        if table == "runs":
            self._write_summaries(name, arrow)  # before the runs row, which commits the run
        if table != "sessions":
            return self._write_file(table, name, arrow)
        arrow = _with_owner(arrow)
        with self._session_lock:
            try:
                path = self._write_file(table, name, arrow)
            except StoreError:
                self._beating.pop(name, None)  # its row is not what this process says any more: no beat for it
                raise
            if "running" in arrow.column("status").to_pylist():
                self._beating[name] = arrow
                if self._beat_thread is None:
                    self._beat_thread = threading.Thread(target=self._heartbeats, name="hilbench-heartbeat",
                                                         daemon=True)
                    self._beat_thread.start()
            else:
                self._beating.pop(name, None)
        return path

    def _write_file(self, table: str, name: str, arrow: pa.Table) -> Path | str:
        """One whole file, atomically (the location's way: harness/storage.py); StoreError, nothing written."""
        arrow = arrow.replace_schema_metadata({"hilbench.schema_version": str(SCHEMA_VERSION), "hilbench.table": table})
        path = self.location.put_parquet(f"{table}/{name}.parquet", arrow)
        self.skipped.pop(str(path), None)  # a new file under a name a reader skipped
        return path

    def _heartbeats(self) -> None:
        """Rewrite each running session's row with a fresh ``heartbeat_at`` every :attr:`heartbeat_s`, until
        none is left (the last write of each says it finished). A failed beat is skipped: the owner's
        pid still says it is alive on its own machine, and elsewhere the beat is late."""
        while True:
            time.sleep(self.heartbeat_s)
            with self._session_lock:
                if not self._beating:
                    self._beat_thread = None
                    return
                for name, arrow in list(self._beating.items()):
                    beat = pa.array([_now()] * arrow.num_rows, type=SCHEMAS["sessions"].field("heartbeat_at").type)
                    arrow = arrow.set_column(arrow.schema.get_field_index("heartbeat_at"), "heartbeat_at", beat)
                    try:
                        self._write_file("sessions", name, arrow)
                    except StoreError as exc:
                        _LOG.debug("heartbeat of session %s not written: %s", name, exc)
                        continue
                    self._beating[name] = arrow

    def temp_files(self) -> list[Path]:
        """Every temporary file in the store: the writers' ``.*.tmp`` (and older versions' ``.probe-*``); none in
        an object store."""
        return self.location.temp_files(TABLES)

    def stale_temps(self) -> list[tuple[Path, str]]:
        """Temporary files whose writer is gone, each with why it is taken for gone. A file a live writer
        holds (its ``flock``), or one just made by a live process here, is never among them; one from
        another machine, or from an older hilbench, only once no one holds it and it is
        :data:`~harness.liveness.TEMP_GRACE_S` old."""
        out = []
        statuses: dict[str, str] | None = None
        for path in self.temp_files():
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                continue
            if not lock_free(path):
                continue
            m = _TEMP_RE.match(path.name)
            reserve = _RESERVE_RE.match(path.name) if path.parent.name == "sessions" else None
            if m and m["tag"] == machine_tag() and not pid_alive(int(m["pid"])):
                out.append((path, f"left by process {m['pid']}, which is gone"))
            elif reserve:  # a running session's room (no lock): its session says whether it still runs
                if statuses is None:
                    sessions = self.sessions()
                    statuses = dict(zip(sessions["session_id"].astype(str), sessions["status"], strict=True))
                status = statuses.get(reserve["session"])
                if status is not None and status != "running":
                    out.append((path, f"room kept by session {reserve['session']}, which is {status}"))
                elif status is None and age > TEMP_GRACE_S:
                    out.append((path, f"room kept by session {reserve['session']}, which has no row, "
                                      f"{age / 60:.0f} min old"))
            elif age > TEMP_GRACE_S:
                out.append((path, f"no writer holds it and it is {age / 60:.0f} min old"))
        return out

    # ---------------------------------------------------------------- reading
    def _read(self, table: str, columns: list[str] | None = None, filter_runs: bool = True,
              only: set[str] | None = None) -> pd.DataFrame:
        arrow, known, found = self._read_arrow(table, columns, only)
        if not found:
            return arrow.to_pandas()
        df = arrow.to_pandas()
        if filter_runs and table not in ("runs", "sessions") and "run_id" in df.columns:
            committed = known if known is not None else set(self._read("runs", ["run_id"])["run_id"])
            df = df[df["run_id"].isin(committed)].reset_index(drop=True)
        return df

    def _read_arrow(self, table: str, columns: list[str] | None = None, only: set[str] | None = None,
                    _relisted: bool = False) -> tuple[pa.Table, set[str] | None, bool]:
        """``table`` read as Arrow (``columns``; with ``only``, at least the rows of those runs), the stored run
        ids when it read them, and whether any file was read (rows of uncommitted runs are still there)."""
        folder = self.location.path(table)
        schema = SCHEMAS[table]
        listed = self._table_files(table)
        files = [f for f, _ in listed]
        known: set[str] | None = None
        if only is not None and files and table not in ("runs", "sessions"):
            # One file per run (<run_id>.parquet) or a compacted session's file that lists its runs: read just
            # the runs asked for, unless a file named for no run could hold anyone's rows.
            known = set(self._read("runs", ["run_id"])["run_id"])
            if all(covers is not None or _stem(f) in known for f, covers in listed):
                files = [f for f, covers in listed if (_stem(f) in only if covers is None else covers & only)]
        if table == "sessions":  # few files, and a runs file among them would pass the key check below
            files = [f for f in files if self._usable(table, f, None)]
        keys = KEY_COLUMNS[table]
        wanted = None if columns is None else list(dict.fromkeys([*columns, *keys]))
        if not files:
            empty = schema.empty_table()
            return (empty if columns is None else empty.select(columns)), known, False
        stamp = _stamp(self.location, files) if table == "runs" else None
        if stamp is not None and self._runs_cache is not None and self._runs_cache[0] == stamp:
            # The runs table as this Store read it last, unchanged since (every file's name, size and mtime).
            whole_runs = self._runs_cache[1]
            return (whole_runs if columns is None else whole_runs.select(columns)), known, True
        try:
            arrow = _read_files(self.location, files, schema, wanted, only)
            whole = all(arrow.column(k).null_count == 0 for k in keys)
        except (pa.ArrowException, OSError) as exc:
            if not _relisted and any(not self.location.present(f) for f in files):
                # A file went since the listing (`store compact` merged it): list again, once.
                return self._read_arrow(table, columns, only, _relisted=True)
            self.location.check(exc)  # an endpoint that fails is an error, not a store of corrupt files
            whole = False
        if not whole:
            # A file that does not read, or rows without their keys (another table's file): find it, file by
            # file, and read the rest (each skipped file is named in a warning).
            files = [f for f in files if self._usable(table, f, wanted or schema.names)]
            try:
                arrow = (_read_files(self.location, files, schema, wanted, only) if files
                         else (schema.empty_table() if wanted is None else schema.empty_table().select(wanted)))
            except (pa.ArrowException, OSError) as exc:
                self.location.check(exc)
                raise StoreError(f"{folder}: cannot read ({exc})") from exc
        if stamp is not None and whole and wanted is None:
            self._runs_cache = (stamp, arrow)
        if columns is not None:
            arrow = arrow.select(columns)
        return arrow, known, True

    def _usable(self, table: str, path: str, columns: list[str] | None) -> bool:
        """Whether ``path`` reads as a file of ``table`` (its footer, schema and, given ``columns``, their
        data); one that does not is skipped from then on, with a warning."""
        stamp = self.location.stamp(path)
        if stamp is None:
            return False  # gone since the listing (quarantined by a `store check --repair`)
        cached = self._checked.get(path)
        if cached is not None and cached[0] == stamp and (cached[1] is not None or columns is None):
            problem = cached[1]
        else:
            problem = file_problem(table, path, read=columns, location=self.location)
            self._checked[path] = (stamp, problem)
        if problem is not None:
            self._skip(path, problem)
        return problem is None

    def _skip(self, path: str | Path, problem: str) -> None:
        with self._warn_lock:
            if str(path) in self.skipped:
                return
            self.skipped[str(path)] = problem
        # One line, whatever the file's name holds (a shared store's names are not trusted).
        _LOG.warning("%s", safe(f"hilbench: warning: skipped {path}: {problem} (fix: "
                                f"{REPAIR_HINT.format(root=self.root)})", None))

    def sessions(self, judge: bool = True) -> pd.DataFrame:
        """One row per ``hilbench run``. A session whose row says ``running`` but whose process is gone (killed,
        its machine rebooted) reads as ``abandoned``; ``status_detail`` says why (or who runs it).
        ``judge=False``: the statuses as stored."""
        df = self._read("sessions").sort_values("started_at", kind="stable").reset_index(drop=True)
        df["status_detail"] = pd.Series([None] * len(df), dtype="object")
        df.loc[df["status"] == "abandoned", "status_detail"] = "closed by `hilbench store check --repair`: its " \
                                                               "process was gone"
        running = df.index[df["status"] == "running"] if judge else pd.Index([])
        if len(running):
            last_runs: dict[str, Any] = {}
            if df.loc[running, "heartbeat_at"].isna().any():  # older sessions: their last stored run is the beat
                runs = self._read("runs", ["session_id", "finished_at"])
                last_runs = runs.groupby("session_id")["finished_at"].max().to_dict() if not runs.empty else {}
            for i in running:
                status, detail = _judge_session(df.loc[i], last_runs)
                df.loc[i, "status"] = status
                df.loc[i, "status_detail"] = detail
        return df

    def runs(self) -> pd.DataFrame:
        """One row per job run, ok or error, oldest first."""
        return self._read("runs").sort_values(["started_at", "run_id"], kind="stable").reset_index(drop=True)

    def samples(self, run_ids: Iterable[str] | None = None, phase: str | None = None,
                columns: list[str] | None = None) -> pd.DataFrame:
        """Every iteration: run_id, phase (first/warmup/timed), iteration, latency_ns, t_ns, gpu_ns (null without
        GPU timing, and in runs stored before the column existed)."""
        if run_ids is not None:
            run_ids = set(run_ids)
        df = self._read("samples", columns, only=run_ids)
        if run_ids is not None:
            df = df[df["run_id"].isin(set(run_ids))]
        if phase is not None:
            df = df[df["phase"] == phase]
        return df.reset_index(drop=True)

    def timed_latencies(self, run_ids: Iterable[str]) -> dict[str, npt.NDArray[Any]]:
        """Run id -> its timed latencies (ns) in iteration order, for the stored runs among ``run_ids``
        that have any: what :meth:`samples` gives, but read file by file as Arrow: only those runs' files,
        and of a compacted session's file only the row groups whose ``run_id`` statistics may hold them."""
        wanted = set(run_ids)
        committed = set(self._read("runs", ["run_id"])["run_id"])
        targets = wanted & committed
        listed = self._table_files("samples")
        if any(c is None and _stem(f) not in committed for f, c in listed):
            return _latencies_by_run(self.samples(targets, phase="timed",
                                                  columns=["run_id", "phase", "iteration", "latency_ns"]))
        from concurrent.futures import ThreadPoolExecutor

        chunks: dict[str, list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]] = {}
        paths = [path for path, covers in listed if (_stem(path) in targets if covers is None else covers & targets)]

        def one(path: str) -> dict[str, list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]] | None:
            try:
                return _file_timed_latencies(self.location, path, targets)
            except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
                self.location.check(exc)  # an endpoint that fails is an error (StoreError)
                return None

        # An object store's files a few at once (its requests wait on the network); a local folder's one by one
        # (reading two at once saved little and cost ~30 MB of peak memory on the 100 M-sample store).
        at_once = max(1, min(len(paths), 4)) if self.location.remote else 1
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            for found in pool.map(one, paths):
                if found is None:  # not as this reader expects: the general reader names what is wrong
                    return _latencies_by_run(self.samples(targets, phase="timed",
                                                          columns=["run_id", "phase", "iteration", "latency_ns"]))
                for run_id, parts in found.items():
                    chunks.setdefault(run_id, []).extend(parts)
        out: dict[str, npt.NDArray[Any]] = {}
        for run_id in sorted(chunks):
            iteration = np.concatenate([i for i, _ in chunks[run_id]])
            lat = np.concatenate([v for _, v in chunks[run_id]])
            out[run_id] = lat[np.argsort(iteration, kind="stable")]
        return out

    def telemetry(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        wanted = set(run_ids) if run_ids is not None else None
        df = self._read("telemetry", only=wanted)
        if wanted is not None:
            df = df[df["run_id"].isin(wanted)]
        return df.reset_index(drop=True)

    def accuracy(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        wanted = set(run_ids) if run_ids is not None else None
        df = self._read("accuracy", only=wanted)
        if wanted is not None:
            df = df[df["run_id"].isin(wanted)]
        return df.reset_index(drop=True)

    def summary(self, run_ids: Iterable[str] | None = None, *, from_samples: bool = False) -> pd.DataFrame:
        """One row per run: identity columns plus the latency summary of its timed phase
        (count, mean, std, min, p50 ... p99.9, max, IQR, MAD, CV, throughput, median CI).
        Statistics are in nanoseconds; see docs/methodology.md.

        Each run's statistics come from its stored summary (schema v2: written with its runs row), or, where it
        has none, from its samples; ``from_samples=True`` recomputes every run from its samples (the same
        figures: a check of the stored ones)."""
        from harness.analysis.stats import SUMMARY_COLUMNS, summarize_frame

        runs = self.runs()
        all_ids = runs["run_id"]
        if run_ids is not None:
            runs = runs[runs["run_id"].isin(set(run_ids))]
        ident = runs[["run_id", "session_id", "plan", "model", "model_tags", "target", "backend", "settings",
                      "status", "valid", "emulated", "stand_in", "timed_ns", "started_at"]].copy()
        # policy.processes: which of its configuration's agent processes the run was, of how many (null: one)
        ident.insert(ident.columns.get_loc("settings") + 1, "process", runs["process"])
        ident.insert(ident.columns.get_loc("process") + 1, "processes", runs["processes"])
        ident.insert(ident.columns.get_loc("valid") + 1, "warnings",
                     [",".join(w["code"] for w in json.loads(v).get("warnings", [])) if isinstance(v, str) else ""
                      for v in runs["verdict"]])
        from harness.analysis.offload import from_column, label, share

        offload = [from_column(v) for v in runs["offload"]]
        ident.insert(ident.columns.get_loc("backend") + 1, "offload", [label(d, short=True) for d in offload])
        ident.insert(ident.columns.get_loc("offload") + 1, "offload_share", [share(d) for d in offload])
        durations = dict(zip(ident["run_id"], ident["timed_ns"], strict=False))
        stats = self._stored_summaries(set(durations)) if not from_samples else None
        missing = {r: d for r, d in durations.items() if stats is None or r not in stats.index}
        if stats is not None:
            stats = stats[stats["count"] > 0]  # a run without samples has no statistics, as from its samples
        if missing and not from_samples:
            self._note_unsummarised(len(missing))
        self._note_uncompacted()
        computed = self._summaries_by_file(missing, set(all_ids)) if missing else None
        if missing and computed is None:
            samples = self._read("samples", ["run_id", "phase", "latency_ns"], only=set(missing))
            samples = samples[(samples["phase"] == "timed") & samples["run_id"].isin(set(missing))]
            if samples.empty:
                computed = pd.DataFrame({c: pd.Series(dtype="float64") for c in SUMMARY_COLUMNS},
                                        index=pd.Index([], name="run_id"))
            else:
                computed = summarize_frame(samples, by="run_id", durations_ns=durations)
        if stats is None or stats.empty:
            stats = computed if computed is not None else stats
        elif computed is not None and not computed.empty:
            stats = pd.concat([stats, computed])
        out = ident.merge(stats, how="left", left_on="run_id", right_index=True)
        # Vendor runners that print only aggregates (no samples): their own numbers, marked as such.
        agg_only = runs["aggregate_only"].eq(True).to_numpy()
        out.insert(out.columns.get_loc("warnings") + 1, "aggregate_only", agg_only)
        for i in np.flatnonzero(agg_only):
            res = runs["result"].iloc[i]
            aggregates = (json.loads(res) if isinstance(res, str) else {}).get("aggregates") or {}
            for col in SUMMARY_COLUMNS:
                if isinstance(aggregates.get(col), (int, float)):
                    out.loc[out.index[i], col] = float(aggregates[col])
        return out.drop(columns=["timed_ns"]).reset_index(drop=True)

    def configurations(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """:meth:`summary` with the agent processes (``policy.processes``) of each configuration of a session
        folded into one row, as ``hilbench results`` prints them: count, mean and standard deviation of all their
        samples, quantiles the geometric mean of the processes' own, the 95% t interval across them; adds
        ``processes``, ``failed`` and ``run_ids`` (:func:`harness.analysis.processes.by_configuration`)."""
        from harness.analysis.processes import by_configuration

        return by_configuration(self.summary(run_ids))

    def _summaries_by_file(self, durations: dict[str, Any], known: set[str]) -> pd.DataFrame | None:
        """Per-run summaries computed from the samples, one run's file at a time (two columns, on a thread per
        core), so memory stays flat however large the store grows. None when the folder does not follow the
        one-file-per-run layout (then the caller reads the whole table)."""
        from harness.analysis.stats import SUMMARY_COLUMNS

        found = self._summarize_runs(durations, known)
        if found is None:
            return None
        kept = [(r, v) for r, v in found.items() if v is not None]
        stats = pd.DataFrame([v for _, v in kept], columns=list(SUMMARY_COLUMNS),
                             index=pd.Index([r for r, _ in kept], name="run_id"), dtype="float64")
        return stats[stats["count"] > 0]

    # ------------------------------------------------------- summaries (schema v2) and compacted files
    def _summarize_runs(self, durations: dict[str, Any], known: set[str] | None) -> dict[str, list[float] | None] | None:
        """Run id -> the summary (:data:`SUMMARY_FIELDS` values) of its timed samples, for every run of
        ``durations`` (run id -> timed_ns); count 0 where it stored no samples, None where its file is skipped.
        The samples are read a run at a time: from its own file, or its rows of a compacted session's file.
        None when ``known`` (the stored runs) is given and a samples file is named for none of them (it may
        hold any run's samples: the caller reads the whole table)."""
        from concurrent.futures import ThreadPoolExecutor

        listed = self._table_files("samples")
        if known is not None and any(c is None and _stem(f) not in known for f, c in listed):
            return None
        loose = {_stem(f): f for f, c in listed if c is None}
        merged = {r: f for f, c in listed if c is not None for r in c}

        def one(run_id: str) -> list[float] | None:
            path = loose.get(run_id)
            if path is None and run_id in merged:
                path = merged[run_id]
            if path is None:
                return _summary_values(np.zeros(0, dtype=np.int64), durations.get(run_id))
            lat: npt.NDArray[Any]
            try:
                if path == loose.get(run_id):
                    found = _run_file_latencies(self.location, path)
                    if isinstance(found, str):
                        self._skip(path, found)
                        return None
                    lat = found
                else:
                    table = pq.read_table(path, columns=["phase", "latency_ns"], filters=[("run_id", "=", run_id)],
                                          use_threads=False, filesystem=self.location.filesystem)
                    timed = pc.fill_null(pc.equal(table.column("phase"), "timed"), False)
                    lat = table.column("latency_ns").to_numpy()[timed.to_numpy(zero_copy_only=False)]
            except (pa.ArrowException, OSError) as exc:
                self.location.check(exc)
                self._skip(path, file_problem("samples", path, location=self.location) or _unreadable(exc))
                return None
            if path in self.skipped:
                return None
            return _summary_values(lat, durations.get(run_id))

        wanted = list(durations)
        with ThreadPoolExecutor(max_workers=self.location.readers) as pool:
            return dict(zip(wanted, pool.map(one, wanted), strict=True))

    def _note_uncompacted(self) -> None:
        """Say once, where many runs are still in per-run files, what makes every reader faster."""
        if getattr(self, "_noted_compact", False):
            return
        self._noted_compact = True
        loose = sum(1 for _, covers in self._table_files("runs") if covers is None)
        if loose >= _NOTE_UNCOMPACTED:
            _LOG.warning("%s", safe(f"hilbench: note: {loose} runs in {self.root} are in per-run files: `hilbench "
                                    f"store compact --store {self.root}` merges closed sessions' files into one per "
                                    "session, and every reader is faster after (docs/lab.md#history-at-scale)", None))

    def _note_unsummarised(self, count: int) -> None:
        """Say once, where many runs have no stored summary, what makes every reader faster."""
        if count < _NOTE_UNSUMMARISED or getattr(self, "_noted", False):
            return
        self._noted = True
        _LOG.warning("%s", safe(f"hilbench: note: {count} runs in {self.root} have no stored summary (a store "
                                f"written before schema v2): `hilbench store migrate --store {self.root}` stores "
                                "them once, and every reader is faster after", None))

    def stored_summaries(self, run_ids: Iterable[str]) -> pd.DataFrame:
        """The stored summaries (:data:`SUMMARY_FIELDS`, indexed by run id) of the committed runs among ``run_ids``
        that have one: the summaries table alone, no samples; count 0 where a run stored no samples. Runs without
        one (a store not yet migrated) are absent: :meth:`summary` computes theirs."""
        return self._stored_summaries(set(run_ids))

    def _stored_summaries(self, wanted: set[str]) -> pd.DataFrame:
        """The stored summaries of the committed runs in ``wanted`` (one row per run, indexed by run id;
        runs without one are absent)."""
        df = self._read("summaries", only=wanted)
        df = df[df["run_id"].isin(wanted)].drop_duplicates("run_id", keep="last")
        if df.empty:
            return pd.DataFrame({c: pd.Series(dtype="float64") for c in SUMMARY_FIELDS},
                                index=pd.Index([], name="run_id"))
        return df.set_index("run_id").astype("float64")

    def _write_summaries(self, name: str, runs: pa.Table) -> None:
        """Write ``summaries/<name>.parquet``: the summary of every run in ``runs`` (a runs table about to be
        written) from its samples file. A failure is logged and left: readers summarise a run without one
        from its samples."""
        rows = runs.select(["run_id", "timed_ns"]).to_pylist()
        values: dict[str, list[Any]] = {f: [] for f in SCHEMAS["summaries"].names}
        try:
            for row in rows:
                run_id = row["run_id"]
                path = self.location.path(f"samples/{run_id}.parquet")
                if not self.location.present(path):
                    # No samples file of its own (an error run, or samples a file named otherwise holds): no
                    # summary, the readers look for its samples as before.
                    continue
                lat = _run_file_latencies(self.location, path)
                if isinstance(lat, str):
                    continue  # the reader says what is wrong with it (and `store check` finds it)
                values["run_id"].append(run_id)
                for col, v in zip(SUMMARY_FIELDS, _summary_values(lat, row["timed_ns"]), strict=True):
                    values[col].append(v)
            if values["run_id"]:
                self._write_file("summaries", name, pa.table(values, schema=SCHEMAS["summaries"]))
        except (StoreError, pa.ArrowException, OSError, ValueError, ImportError) as exc:
            # ImportError: a host without the analysis extra (scipy) stores runs; readers summarise them later.
            _LOG.info("hilbench: summary of run %s not stored (%s): readers compute it from its samples",
                      safe(name, 80), _short(exc))

    def migrate(self) -> int:
        """Bring the store to schema v2: store the summary of every stored run that has none (one file per
        session, ``summaries/session=<id>.parquet``), then write the v2 marker. Resumable; returns how many
        runs it summarised. Raises StoreError when it cannot write."""
        self.ensure_folders()
        runs = self._read("runs", ["run_id", "session_id", "timed_ns"])
        have = set(self._read("summaries", ["run_id"])["run_id"])
        todo = runs[~runs["run_id"].isin(have)]
        durations = dict(zip(todo["run_id"], todo["timed_ns"], strict=True))
        # None where a samples file is named for no run (it may hold any run's rows): nothing is stored, and the
        # readers summarise from the whole table as before.
        found = self._summarize_runs(durations, set(runs["run_id"])) or {}
        for session, group in todo.groupby(todo["session_id"].fillna(""), sort=True):
            ids = [r for r in group["run_id"] if found.get(r) is not None]
            if not ids:
                continue
            cols: dict[str, list[Any]] = {"run_id": ids}
            for i, col in enumerate(SUMMARY_FIELDS):
                cols[col] = [found[r][i] for r in ids]  # type: ignore[index]
            self.write_merged("summaries", str(session) or "none", [pa.table(cols, schema=SCHEMAS["summaries"])],
                              set(ids))
        try:
            self.location.put_bytes(MARKER, json.dumps({"schema_version": SCHEMA_VERSION}).encode() + b"\n")
        except OSError as exc:  # a local folder's (an object store's failure is a StoreError already)
            raise StoreError(_write_failure(Path(self.location.path(MARKER)), exc)) from exc
        self.schema_version = SCHEMA_VERSION
        return sum(1 for v in found.values() if v is not None)

    def ensure_folders(self) -> None:
        """Create any table folder the store lacks (an older store has no ``summaries/``); nothing in an object
        store, which has no folders."""
        if self.location.remote:
            return
        try:
            for table in TABLES:
                (self.root / table).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.root}: results store is not writable ({exc.strerror or exc})") from exc

    def write_merged(self, table: str, session: str, parts: list[pa.Table], covers: set[str]) -> Path | str:
        """Write ``<table>/session=<session>.parquet`` atomically (the location's way: harness/storage.py):
        ``parts`` (each cast to the table's schema, one row group or more each) plus the rows of the file it
        replaces, whose runs it keeps covering; its footer lists ``covers``, the runs whose per-run files it
        supersedes (every reader ignores those)."""
        schema = SCHEMAS[table]
        rel = f"{table}/{COMPACT_PREFIX}{session}.parquet"
        path = self.location.path(rel)
        before = self._covers(path) if self.location.present(path) else None
        if before:
            parts = [self.location.read_table(path, schema=schema)] + parts
            covers = set(covers) | set(before)
        meta = {b"hilbench.schema_version": str(SCHEMA_VERSION).encode(), b"hilbench.table": table.encode(),
                COVERS_KEY: json.dumps(sorted(covers)).encode()}

        def write(sink: Any) -> None:
            with pq.ParquetWriter(sink, schema.with_metadata(meta), compression="zstd",
                                  write_page_checksum=True) as writer:
                # Row groups of about _GROUP_ROWS rows: a run of many samples is one (or more) of its own,
                # so a reader of some runs skips the others'; runs of few rows share one.
                group: list[pa.Table] = []
                for part in parts:
                    group.append(_conform(part, schema).replace_schema_metadata(meta))
                    if sum(t.num_rows for t in group) >= _GROUP_ROWS:
                        writer.write_table(pa.concat_tables(group), row_group_size=1 << 30)
                        group = []
                if group:
                    writer.write_table(pa.concat_tables(group), row_group_size=1 << 30)

        written = self.location.put_with(rel, write)
        self.skipped.pop(str(written), None)
        return written

    def _covers(self, path: str) -> frozenset[str] | None:
        """The runs a compacted session's file holds (its footer's list), or None when it lists none."""
        stamp = self.location.stamp(path)
        if stamp is None:
            return None
        cached = self._covered.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            meta = self.location.parquet_file(path).metadata.metadata or {}
            value = meta.get(COVERS_KEY)
            covers = frozenset(str(r) for r in json.loads(value)) if value is not None else None
        except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
            self.location.check(exc)  # an endpoint that fails is an error, not a file without a list
            covers = None
        self._covered[path] = (stamp, covers)
        return covers

    def _table_files(self, table: str) -> list[tuple[str, frozenset[str] | None]]:
        """The files of ``table`` every reader reads, in run order, each with the runs it covers (a compacted
        session's file) or None (a per-run file, or any other). A per-run file whose run a compacted file
        covers is left out: a `store compact` that stopped before deleting it leaves each row read once."""
        loose: list[str] = []
        merged: list[tuple[str, frozenset[str]]] = []
        for f in self.location.files(table):
            if f in self.skipped:
                continue
            name = PurePosixPath(f).name
            covers = self._covers(f) if name.startswith(COMPACT_PREFIX) and table != "sessions" else None
            if covers is not None:
                merged.append((f, covers))
            else:
                loose.append(f)
        held = frozenset().union(*(c for _, c in merged))
        out: list[tuple[str, frozenset[str] | None]] = [(f, None) for f in loose if _stem(f) not in held]
        out += merged
        return sorted(out, key=lambda fc: (min(fc[1]) if fc[1] else _stem(fc[0]), fc[0]))

    def session_run_ids(self, session: str) -> list[str]:
        """The run ids of one session, named by its id, a unique-enough prefix of it, or ``last``. Raises
        StoreError when no stored run belongs to such a session (a typo is an error, never every run)."""
        runs = self.runs()
        sessions = runs["session_id"].dropna().unique().tolist()
        wanted = sessions[-1] if session == "last" and sessions else session
        ids = runs.loc[runs["session_id"].astype(str).str.startswith(wanted), "run_id"].astype(str).tolist()
        if not ids:
            raise StoreError(f"--session {session}: no such session in {self.root}")
        return ids

    def sql(self, query: str) -> pd.DataFrame:
        """The result of a DuckDB ``query`` over the store's tables as views (runs, samples, telemetry, sessions,
        accuracy, summaries; compacted files as every reader reads them), local or ``s3://`` alike; needs the
        ``sql`` extra (harness/sql.py)."""
        from harness.sql import run_sql

        return run_sql(self, query, SCHEMAS)

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's row as a dict with JSON columns decoded; a unique prefix or suffix
        (the table's ``run`` column) is enough."""
        runs = self._read("runs")
        ids = runs["run_id"].astype(str)
        match = runs[ids.str.startswith(run_id) | ids.str.endswith(run_id)]
        if match.empty:
            raise StoreError(f"{self.root}: no run {run_id!r}")
        if len(match) > 1:
            raise StoreError(f"{self.root}: run id prefix {run_id!r} is ambiguous ({len(match)} runs)")
        row = {k: (None if _is_missing(v) else v) for k, v in match.iloc[0].to_dict().items()}
        for col in JSON_COLUMNS["runs"]:
            value = row.get(col)
            if isinstance(value, str):
                row[col] = json.loads(value)
        return row


def file_problem(table: str, path: str | Path, *, read: list[str] | None | bool = None,
                 verify_checksums: bool = False, location: LocalFolder | ObjectStore | None = None) -> str | None:
    """What is wrong with ``path`` as a file of ``table`` (None: nothing). Its footer and schema always;
    ``read``: a list of columns to read too, or True for every page (``verify_checksums``: and their CRCs).
    ``location``: the store's (harness/storage.py; default a local file), whose endpoint failing is a
    StoreError rather than a problem of the file."""
    where = location if location is not None else LocalFolder(Path("."))
    if location is None or not location.remote:
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            return f"cannot be opened ({exc.strerror or exc})"
    else:
        stamp = location.stamp(str(path))
        if stamp is None:
            return "cannot be opened (no such file)"
        size = stamp[0]
    if size == 0:
        return "empty (0 bytes)"
    try:
        pf = where.parquet_file(str(path), page_checksum_verification=verify_checksums)
    except (pa.ArrowException, OSError) as exc:
        where.check(exc)
        return f"not a readable Parquet file ({_short(exc)})"
    try:
        problem = schema_problem(table, pf.schema_arrow)
        if problem is not None or not read:
            return problem
        if read is True:
            for _ in pf.iter_batches(batch_size=65536, use_threads=False):
                pass
        else:
            pf.read(columns=[c for c in read if c in pf.schema_arrow.names], use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        where.check(exc)
        return _unreadable(exc)
    finally:
        pf.close()
    return None


def schema_problem(table: str, schema: pa.Schema) -> str | None:
    """Why a file of ``schema`` is not a file of ``table`` (another table's, a key column missing, a column
    of another type), or None."""
    meta = schema.metadata or {}
    other = meta.get(b"hilbench.table", b"").decode("utf-8", "replace")
    if other and other != table:
        return f"a {other} file, not {table} (wrong schema)"
    missing = [k for k in KEY_COLUMNS[table] if k not in schema.names]
    if missing:
        return f"wrong schema for {table}: no column {', '.join(missing)}"
    want = SCHEMAS[table]
    for field in schema:
        if field.name in want.names and not _compatible(field.type, want.field(field.name).type):
            return f"wrong schema for {table}: column {field.name} is {field.type}, not {want.field(field.name).type}"
    return None


def _compatible(got: pa.DataType, want: pa.DataType) -> bool:
    """Whether a column of type ``got`` reads as ``want`` (the same kind: any integer width, a dictionary of
    strings as strings, any timestamp unit)."""
    if pa.types.is_dictionary(got):
        got = got.value_type
    if got == want or pa.types.is_null(got):
        return True
    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_timestamp, pa.types.is_boolean,
             lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
             lambda t: pa.types.is_list(t) or pa.types.is_large_list(t))
    return any(kind(got) and kind(want) for kind in kinds)


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(exc: BaseException) -> str:
    return f"unreadable data ({_short(exc)})"


def _judge_session(row: pd.Series, last_runs: dict[str, Any]) -> tuple[str, str]:
    """(status, detail) of a session whose row says running: ``abandoned`` when its process is gone (certain
    on its own machine) or, seen from elsewhere, its heartbeat is :data:`STALE_AFTER_S` old."""
    host = row.get("owner_host") if isinstance(row.get("owner_host"), str) else None
    pid = int(row["owner_pid"]) if not _is_missing(row.get("owner_pid")) else None
    process = row.get("owner_process") if isinstance(row.get("owner_process"), str) else None
    who = f"hilbench (pid {pid} on {host})" if pid is not None else "an older hilbench"
    state = owner_state(host, pid, process)
    if state == "gone":
        return "abandoned", f"its process, {who}, is gone"
    if state == "alive":
        return "running", f"{who} is running it"
    beats = [v for v in (row.get("heartbeat_at"), last_runs.get(row["session_id"]), row.get("started_at"))
             if not _is_missing(v)]
    last = max(pd.Timestamp(v) for v in beats) if beats else None
    if last is None:
        return "abandoned", f"{who} never said it was alive"
    age = (pd.Timestamp(_now()) - last).total_seconds()
    since = f"{last:%Y-%m-%d %H:%M} UTC"
    if age > STALE_AFTER_S:
        return "abandoned", f"no heartbeat from {who} since {since} ({age / 60:.0f} min)"
    return "running", f"{who} last said it was alive at {since}"


def _all_timed(pf: pq.ParquetFile) -> bool:
    """True when every row group's ``phase`` statistics are min == max == "timed"."""
    md = pf.metadata
    try:
        col = md.schema.names.index("phase")
    except ValueError:
        return False
    for i in range(md.num_row_groups):
        stats = md.row_group(i).column(col).statistics
        if stats is None or not stats.has_min_max or stats.min != "timed" or stats.max != "timed" \
                or stats.null_count:
            return False
    return md.num_row_groups > 0


def _run_file_latencies(location: LocalFolder | ObjectStore, path: str) -> npt.NDArray[Any] | str:
    """The timed latencies of one run's samples file, in stored order, or what is wrong with the file (StoreError
    when ``location``'s endpoint fails)."""
    try:
        try:
            pf = location.parquet_file(path, read_dictionary=["phase"])
        except KeyError:  # no phase column: the file says what it is instead
            pf = location.parquet_file(path)
        problem = schema_problem("samples", pf.schema_arrow)
        if problem is not None:
            return problem
        if _all_timed(pf):  # the column statistics say so: no need to read the phases
            return pf.read(columns=["latency_ns"], use_threads=False).column("latency_ns").to_numpy()
        table = pf.read(columns=["phase", "latency_ns"], use_threads=False)
        lat = table.column("latency_ns").to_numpy()
        phase = table.column("phase").combine_chunks()
        names = phase.dictionary.to_pylist()
        codes = phase.indices.to_numpy(zero_copy_only=False)
        return lat[codes == names.index("timed")] if "timed" in names else lat[:0]
    except (pa.ArrowException, OSError) as exc:
        location.check(exc)
        return file_problem("samples", path, location=location) or _unreadable(exc)


def _stamp(location: LocalFolder | ObjectStore, files: list[str]) -> tuple[tuple[str, int, int], ...] | None:
    """Each file's (name, size, mtime): what says a table read before is still the same; None when a file went.
    In an object store, as just listed (no request per file)."""
    out = []
    for f in files:
        st = location.stamp(f)
        if st is None:
            return None
        out.append((f, st[0], st[1]))
    return tuple(out)


def _latencies_by_run(samples: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """Run id -> latencies in iteration order, from a samples frame."""
    samples = samples.sort_values(["run_id", "iteration"], kind="stable")
    return {rid: g["latency_ns"].to_numpy() for rid, g in samples.groupby("run_id", sort=False)}


#: Row groups of a samples file read (and, from an object store, fetched) in one go by :meth:`Store.timed_latencies`:
#: a compacted session's run is one row group (of ~50,000 samples here); more at once costs memory (8: +75 MB on
#: the 100 M-sample store of benchmarks/store_scale.py) for few fewer requests.
_GROUPS_PER_READ = 2


def _file_timed_latencies(location: LocalFolder | ObjectStore, path: str, targets: set[str]
                          ) -> dict[str, list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]] | None:
    """Run id -> [(iterations, latencies)] of the timed rows of ``targets`` in one samples file, skipping the
    row groups whose ``run_id`` statistics rule them out; None when the file is not a plain samples file."""
    # pre_buffer: the column chunks of the row groups read together are fetched in coalesced ranges (one request
    # for several row groups from an object store, instead of one per column chunk).
    pf = location.parquet_file(path, read_dictionary=["run_id", "phase"], pre_buffer=True)
    names = pf.schema_arrow.names
    if schema_problem("samples", pf.schema_arrow) is not None or "iteration" not in names:
        return None
    col = pf.metadata.schema.names.index("run_id")
    low, high = min(targets), max(targets)
    wanted: list[int] = []
    for i in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(i).column(col).statistics
        if stats is not None and stats.has_min_max and not stats.null_count and (
                stats.max < low or stats.min > high
                or not any(stats.min <= t <= stats.max for t in targets)):
            continue
        wanted.append(i)
    out: dict[str, list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]] = {}
    for start in range(0, len(wanted), _GROUPS_PER_READ):
        t = pf.read_row_groups(wanted[start:start + _GROUPS_PER_READ],
                               columns=["run_id", "phase", "iteration", "latency_ns"], use_threads=False)
        if t.column("latency_ns").null_count or t.column("iteration").null_count:
            return None
        for batch in t.to_batches():  # a batch's dictionaries are its row group's own
            run, phase = batch.column("run_id"), batch.column("phase")
            if not pa.types.is_dictionary(run.type) or not pa.types.is_dictionary(phase.type):
                return None
            pnames = phase.dictionary.to_pylist()
            if "timed" not in pnames:
                continue
            timed = phase.indices.to_numpy(zero_copy_only=False) == pnames.index("timed")
            codes = run.indices.to_numpy(zero_copy_only=False)
            iteration = batch.column("iteration").to_numpy()
            lat = batch.column("latency_ns").to_numpy()
            for code, run_id in enumerate(run.dictionary.to_pylist()):
                if run_id in targets:
                    keep = timed & (codes == code)
                    if keep.any():
                        out.setdefault(run_id, []).append((iteration[keep], lat[keep]))
    return out


def _summary_values(lat: npt.NDArray[Any], duration: Any) -> list[float]:
    """A run's summary (:data:`SUMMARY_FIELDS` order) from its timed latencies and its runs row's timed_ns:
    the one computation behind the stored summaries and the readers' fallback, so both give the same figures."""
    from harness.analysis.stats import SUMMARY_COLUMNS, summarize_fast

    duration = duration if isinstance(duration, (int, float)) and duration == duration and duration > 0 else None
    summary = summarize_fast(lat, duration_ns=duration)
    return [summary[c] for c in SUMMARY_COLUMNS]


#: Files :func:`_read_files` reads as one dataset.
_FILES_PER_READ = 128


def _read_files(location: LocalFolder | ObjectStore, files: list[str], schema: pa.Schema, columns: list[str] | None,
                only: set[str] | None) -> pa.Table:
    """``files`` (of ``location``) read as one table of ``schema``; with a compacted session's file among them and
    ``only``, the rows of those runs alone (row groups of other runs are skipped by their statistics)."""
    merged = any(PurePosixPath(f).name.startswith(COMPACT_PREFIX) for f in files)
    selective = only is not None and merged and "run_id" in schema.names
    keep = pc.field("run_id").isin(sorted(only or ())) if selective else None

    def part(chunk: list[str]) -> pa.Table:
        whole = location.read_whole(chunk, schema, columns)  # small objects of an object store: one request each
        if whole is not None:
            table = whole.filter(keep) if keep is not None else whole
        else:
            table = location.dataset(chunk, schema).to_table(columns=columns, filter=keep)
        return table.combine_chunks()

    if len(files) <= _FILES_PER_READ:
        return part(files)
    # Many files (a store that was never compacted): a dataset keeps each file's Parquet metadata while it lives,
    # and a table keeps a chunk per file, so thousands of small files cost far more memory than their rows (the
    # runs table of 2,000 per-run files: +510 MB read at once, +60 MB this way). Read them some at a time.
    return pa.concat_tables([part(files[i:i + _FILES_PER_READ]) for i in range(0, len(files), _FILES_PER_READ)])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns and types (a nullable column it lacks is null)."""
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, type=f.type))
    return table.select(schema.names).cast(schema)


def open_store(path: Path | str = "results") -> Store:
    """Open a results store for reading (and writing). A missing folder is an empty store."""
    return Store(path)


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists, arrays
        return False


def _len(columns: dict[str, list[Any]]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _stem(path: str | Path) -> str:
    """A file's name without ``.parquet``: the run id of a per-run file (a local path or an object key)."""
    return PurePosixPath(str(path)).stem


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _with_owner(arrow: pa.Table) -> pa.Table:
    """A sessions table whose rows name an owner (this process where none is named) and beat now."""
    me = this_process()
    n = arrow.num_rows
    for col, value in (("owner_host", me["host"]), ("owner_pid", me["pid"]), ("owner_process", me["process"])):
        current = arrow.column(col)
        if current.null_count:
            filled = [v if v is not None else value for v in current.to_pylist()]
            arrow = arrow.set_column(arrow.schema.get_field_index(col), col, pa.array(filled, type=current.type))
    beat = pa.array([_now()] * n, type=arrow.schema.field("heartbeat_at").type)
    return arrow.set_column(arrow.schema.get_field_index("heartbeat_at"), "heartbeat_at", beat)
