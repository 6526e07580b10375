"""The results store: a folder of Parquet files, append-only, written atomically.

Layout (schema version 1)::

    results/
      hilbench-store.json          {"schema_version": 1}
      sessions/<session_id>.parquet one row per `hilbench run` invocation
      runs/<run_id>.parquet         one row per job (status ok or error)
      samples/<run_id>.parquet      every iteration: run_id, phase, iteration, latency_ns, t_ns
      telemetry/<run_id>.parquet    run_id, t_ns, sensor, value, unit, source
      accuracy/<run_id>.parquet     run_id, index, label, prediction, ...

Every file is written to a temporary name and renamed, so a crash or two
concurrent writers never leave a half-written file. A run's ``runs`` row is
written last: samples whose run has no row (a crash in between) are ignored by
every reader. DuckDB, Polars or Spark read the same files directly.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.errors import StoreError

__all__ = ["Store", "open_store", "SCHEMA_VERSION", "new_id", "SCHEMAS"]

SCHEMA_VERSION = 1
MARKER = "hilbench-store.json"
TABLES = ("sessions", "runs", "samples", "telemetry", "accuracy")

_J = pa.string()  # JSON-encoded columns
SCHEMAS: dict[str, pa.Schema] = {
    "sessions": pa.schema([
        ("session_id", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")), ("plan", pa.string()), ("plan_path", pa.string()),
        ("plan_sha256", pa.string()), ("plan_text", pa.string()), ("labels", _J), ("hilbench_version", pa.string()),
        ("host", _J), ("argv", _J), ("jobs", pa.int64()), ("jobs_ok", pa.int64()), ("jobs_failed", pa.int64()),
        ("status", pa.string()),
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
    ]),
    "samples": pa.schema([
        ("run_id", pa.string()), ("phase", pa.string()), ("iteration", pa.int64()),
        ("latency_ns", pa.int64()), ("t_ns", pa.int64()),
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
}
_JSON_NAMES = {"labels", "host", "argv", "model_tags", "settings", "effective_settings", "policy", "device",
               "target_facts", "verdict", "result", "derived", "device_facts", "usage_sources", "usage_missing", "device_lock"}
#: Columns that hold JSON text; ``Store.run`` decodes them.
JSON_COLUMNS = {name: [f.name for f in schema if f.name in _JSON_NAMES] for name, schema in SCHEMAS.items()}


def new_id(prefix: str = "") -> str:
    """Sortable, unique id: UTC time plus random bits, e.g. ``20261124T135001-3f9a2c``."""
    return prefix + time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """A results folder. Writers append whole files; readers return pandas DataFrames."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        marker = self.root / MARKER
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text())
                version = int(meta["schema_version"])
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise StoreError(f"{marker}: not a hilbench store marker ({exc})") from exc
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.root}: store schema v{version} is newer than this hilbench (v{SCHEMA_VERSION}): upgrade hilbench"
                )
            self.schema_version = version

    # ---------------------------------------------------------------- writing
    def ensure_writable(self) -> None:
        """Create the store if needed and prove it is writable, before any job runs."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for table in TABLES:
                (self.root / table).mkdir(exist_ok=True)
            marker = self.root / MARKER
            if not marker.exists():
                self._atomic_write_bytes(marker, json.dumps({"schema_version": SCHEMA_VERSION}).encode() + b"\n")
            probe = tempfile.NamedTemporaryFile(dir=self.root / "runs", prefix=".probe-", delete=True)
            probe.close()
        except OSError as exc:
            raise StoreError(f"{self.root}: results store is not writable ({exc.strerror or exc})") from exc

    def reserve(self, table: str, name: str, size: int) -> Path:
        """Keep ``size`` bytes of room in the store for the later write of ``table``/``name``: a hidden file
        named as that write's temporary (``.<name>.parquet....tmp``), of bytes no file system compresses away.
        Unlinking it makes room for that write when the disk has filled up meanwhile (a run closes its
        session row so). Raises StoreError when there is not that much room now."""
        folder = self.root / table
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.parquet", suffix=".reserve.tmp")
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

    def _atomic_write_bytes(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink_quiet(tmp)
            raise

    def write_table(self, table: str, name: str, rows: pa.Table | Iterable[dict[str, Any]] | dict[str, list[Any]]) -> Path:
        """Write one file of ``table`` atomically; ``rows`` are dicts, columns or an Arrow table."""
        schema = SCHEMAS[table]
        if isinstance(rows, pa.Table):
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
        arrow = arrow.replace_schema_metadata({"hilbench.schema_version": str(SCHEMA_VERSION), "hilbench.table": table})
        path = self.root / table / f"{name}.parquet"
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
        except OSError as exc:  # a folder that became read-only (or vanished) mid-run: one line, as any write
            raise StoreError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        os.close(fd)
        try:
            pq.write_table(arrow, tmp, compression="zstd")
            _fsync(tmp)  # the data is on disk before its name is: a crash leaves the old state or the new
            os.replace(tmp, path)
        except OSError as exc:
            _unlink_quiet(tmp)
            raise StoreError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        except BaseException:
            _unlink_quiet(tmp)
            raise
        return path

    # ---------------------------------------------------------------- reading
    def _read(self, table: str, columns: list[str] | None = None, filter_runs: bool = True,
              only: set[str] | None = None) -> pd.DataFrame:
        folder = self.root / table
        schema = SCHEMAS[table]
        files = sorted(str(p) for p in folder.glob("*.parquet")) if folder.is_dir() else []
        known: set[str] | None = None
        if only is not None and files and table not in ("runs", "sessions"):
            # One file per run (<run_id>.parquet): read just the runs asked for, unless a file
            # named for no run could hold anyone's rows.
            known = set(self._read("runs", ["run_id"])["run_id"])
            if all(Path(f).stem in known for f in files):
                files = [f for f in files if Path(f).stem in only]
        if not files:
            return schema.empty_table().to_pandas() if columns is None else schema.empty_table().select(columns).to_pandas()
        try:
            dataset = ds.dataset(files, schema=schema, format="parquet")
            arrow = dataset.to_table(columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"{folder}: cannot read ({exc})") from exc
        df = arrow.to_pandas()
        if filter_runs and table not in ("runs", "sessions") and "run_id" in df.columns:
            committed = known if known is not None else set(self._read("runs", ["run_id"])["run_id"])
            df = df[df["run_id"].isin(committed)].reset_index(drop=True)
        return df

    def sessions(self) -> pd.DataFrame:
        return self._read("sessions").sort_values("started_at", kind="stable").reset_index(drop=True)

    def runs(self) -> pd.DataFrame:
        """One row per job run, ok or error, oldest first."""
        return self._read("runs").sort_values(["started_at", "run_id"], kind="stable").reset_index(drop=True)

    def samples(self, run_ids: Iterable[str] | None = None, phase: str | None = None,
                columns: list[str] | None = None) -> pd.DataFrame:
        """Every iteration: run_id, phase (first/warmup/timed), iteration, latency_ns, t_ns."""
        if run_ids is not None:
            run_ids = set(run_ids)
        df = self._read("samples", columns, only=run_ids)
        if run_ids is not None:
            df = df[df["run_id"].isin(set(run_ids))]
        if phase is not None:
            df = df[df["phase"] == phase]
        return df.reset_index(drop=True)

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

    def summary(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per run: identity columns plus the latency summary of its timed phase
        (count, mean, std, min, p50 ... p99.9, max, IQR, MAD, CV, throughput, median CI).
        Statistics are in nanoseconds; see docs/methodology.md."""
        from harness.analysis.stats import SUMMARY_COLUMNS, summarize_frame

        runs = self.runs()
        all_ids = runs["run_id"]
        if run_ids is not None:
            runs = runs[runs["run_id"].isin(set(run_ids))]
        ident = runs[["run_id", "session_id", "plan", "model", "model_tags", "target", "backend", "settings",
                      "status", "valid", "emulated", "stand_in", "timed_ns", "started_at"]].copy()
        ident.insert(ident.columns.get_loc("valid") + 1, "warnings",
                     [",".join(w["code"] for w in json.loads(v).get("warnings", [])) if isinstance(v, str) else ""
                      for v in runs["verdict"]])
        durations = dict(zip(ident["run_id"], ident["timed_ns"], strict=False))
        stats = self._summaries_by_file(durations, set(all_ids))
        if stats is None:
            samples = self._read("samples", ["run_id", "phase", "latency_ns"])
            samples = samples[(samples["phase"] == "timed") & samples["run_id"].isin(set(ident["run_id"]))]
            if samples.empty:
                stats = pd.DataFrame({c: pd.Series(dtype="float64") for c in SUMMARY_COLUMNS},
                                     index=pd.Index([], name="run_id"))
            else:
                stats = summarize_frame(samples, by="run_id", durations_ns=durations)
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

    def _summaries_by_file(self, durations: dict[str, Any], known: set[str]) -> pd.DataFrame | None:
        """Per-run summaries read one ``samples/<run_id>.parquet`` at a time (two columns,
        on a thread per core), so memory stays flat however large the store grows.
        None when the folder does not follow the one-file-per-run layout (then the
        caller reads the whole table)."""
        from concurrent.futures import ThreadPoolExecutor

        from harness.analysis.stats import SUMMARY_COLUMNS, summarize_fast

        folder = self.root / "samples"
        files = {p.stem: p for p in folder.glob("*.parquet")} if folder.is_dir() else {}
        if any(stem not in known for stem in files):
            return None  # a file named for no run: it may hold any run's samples
        wanted = [r for r in durations if r in files]

        def one(run_id: str) -> list[float]:
            try:
                pf = pq.ParquetFile(files[run_id], read_dictionary=["phase"])
                if _all_timed(pf):  # the column statistics say so: no need to read the phases
                    lat = pf.read(columns=["latency_ns"], use_threads=False).column("latency_ns").to_numpy()
                else:
                    table = pf.read(columns=["phase", "latency_ns"], use_threads=False)
                    lat = table.column("latency_ns").to_numpy()
                    phase = table.column("phase").combine_chunks()
                    names = phase.dictionary.to_pylist()
                    codes = phase.indices.to_numpy(zero_copy_only=False)
                    lat = lat[codes == names.index("timed")] if "timed" in names else lat[:0]
            except (pa.ArrowException, OSError) as exc:
                raise StoreError(f"{files[run_id]}: cannot read ({exc})") from exc
            duration = durations.get(run_id)
            duration = duration if isinstance(duration, (int, float)) and duration == duration and duration > 0 \
                else None
            summary = summarize_fast(lat, duration_ns=duration)
            return [summary[c] for c in SUMMARY_COLUMNS]

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            values = list(pool.map(one, wanted))
        stats = pd.DataFrame(values, columns=list(SUMMARY_COLUMNS), index=pd.Index(wanted, name="run_id"),
                             dtype="float64")
        return stats[stats["count"] > 0]

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


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quiet(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
