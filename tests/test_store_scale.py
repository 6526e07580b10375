"""History at scale (issue 15, item 3): each run's summary is stored with its runs row (schema v2) and equals
what the readers computed from the samples before; `hilbench store migrate` brings a v1 store there; `hilbench
store compact` merges closed sessions' per-run files without losing or duplicating a row, at every crash point,
and every reader gives the same output before and after. Real Parquet files and real `hilbench run` sessions;
the speed is measured in benchmarks/store_scale.py, never here."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.helpers import SYNTH

from harness.cli import main
from harness.errors import StoreError
from harness.store import COMPACT_PREFIX, MARKER, SCHEMA_VERSION, SCHEMAS, SUMMARY_FIELDS, Store
from harness.storecheck import check_store
from harness.storecompact import COMPACTED_TABLES, compact_store, maintenance_lock

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "device_agents"),
                                                    os.environ.get("PYTHONPATH", "")])}
T0 = dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone.utc)


def _write_v1(root: Path, sessions: int = 3, per_session: int = 3, n: int = 120, running: bool = False) -> Path:
    """A store as hilbench wrote it before schema v2 (per-run files, no summaries): ``sessions`` closed nightly
    sessions of ``per_session`` runs (one an error run without samples, one with warm-up rows, telemetry and
    accuracy), and with ``running`` a last session whose owner (this process) is still running."""
    rng = np.random.default_rng(7)
    for table in ("sessions", "runs", "samples", "telemetry", "accuracy"):
        (root / table).mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(json.dumps({"schema_version": 1}) + "\n")
    for s in range(sessions + (1 if running else 0)):
        sid = f"s{s:03d}"
        start = T0 + dt.timedelta(days=s)
        for j in range(per_session):
            rid = f"2026010{s}T010000-{s:02d}{j:04x}"
            error = j == per_session - 1 and s % 2 == 1
            timed = n + j
            if not error:
                lat = (1e6 * (1 + j) * np.exp(0.05 * rng.standard_normal(timed + 5))).astype(np.int64)
                phase = ["warmup"] * 5 + ["timed"] * timed
                pq.write_table(pa.table({"run_id": [rid] * (timed + 5), "phase": phase,
                                         "iteration": list(range(5)) + list(range(timed)),
                                         "latency_ns": lat, "t_ns": np.cumsum(lat)}),
                               root / "samples" / f"{rid}.parquet")
                pq.write_table(pa.table({"run_id": [rid] * 3, "t_ns": [1, 2, 3], "sensor": ["temp"] * 3,
                                         "value": [40.0, 41.0, 42.0], "unit": ["C"] * 3, "source": ["x"] * 3}),
                               root / "telemetry" / f"{rid}.parquet")
                if j == 0:
                    pq.write_table(pa.table({"run_id": [rid] * 2, "index": [0, 1], "label": [1, 2],
                                             "prediction": [1, 3]}), root / "accuracy" / f"{rid}.parquet")
            row = {"run_id": rid, "session_id": sid, "plan": "p", "model": f"m{j}", "target": "t",
                   "backend": "synthetic", "settings": "{}", "status": "error" if error else "ok",
                   "started_at": start + dt.timedelta(seconds=j), "finished_at": start + dt.timedelta(seconds=j),
                   "timed_count": None if error else timed,
                   "timed_ns": None if error or j == 1 else int(1e6 * (1 + j) * timed), "valid": not error,
                   "hwm_kb": 1000 + j, "labels": json.dumps({"git": f"g{s}"})}
            pq.write_table(pa.table({f.name: [row.get(f.name)] for f in SCHEMAS["runs"]}, schema=SCHEMAS["runs"]),
                           root / "runs" / f"{rid}.parquet")
        live = running and s == sessions
        srow = {"session_id": sid, "started_at": start, "plan": "p", "status": "running" if live else "ok",
                "jobs": per_session, "owner_host": None, "owner_pid": None}
        table = pa.table({f.name: [srow.get(f.name)] for f in SCHEMAS["sessions"]}, schema=SCHEMAS["sessions"])
        if live:
            Store(root).write_table("sessions", sid, table)  # owned by this (live) process
        else:
            pq.write_table(table, root / "sessions" / f"{sid}.parquet")
    return root


def _api(root: Path, light: bool = False) -> dict[str, Any]:
    """What every reader of the API gives (rows in a stable order where the API promises none); ``light``:
    the tables alone."""
    store = Store(root)
    runs = store.runs()
    if light:
        return {"runs": runs, "summary": store.summary(),
                "samples": store.samples().sort_values(["run_id", "phase", "iteration"]).reset_index(drop=True),
                "telemetry": store.telemetry().sort_values(["run_id", "t_ns"]).reset_index(drop=True),
                "accuracy": store.accuracy().sort_values(["run_id", "index"]).reset_index(drop=True)}
    return {
        "summary": store.summary(), "from_samples": store.summary(from_samples=True), "runs": runs,
        "sessions": store.sessions().drop(columns=["heartbeat_at", "status_detail"]),
        "samples": store.samples().sort_values(["run_id", "phase", "iteration"]).reset_index(drop=True),
        "timed": store.samples(runs["run_id"][:2], phase="timed").reset_index(drop=True),
        "telemetry": store.telemetry().sort_values(["run_id", "t_ns"]).reset_index(drop=True),
        "accuracy": store.accuracy().sort_values(["run_id", "index"]).reset_index(drop=True),
        "latencies": store.timed_latencies(runs["run_id"]),
    }


def _cli(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = {}
    for args in (["results"], ["history", "--format", "json"], ["compare", "--format", "json"],
                 ["compare", "s000", "s002"], ["report", "--output", os.devnull, "--no-plots"]):
        code = main([*args, "--store", str(root)])
        out[" ".join(args)] = (code, capsys.readouterr().out)
    return out


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], pd.DataFrame):
            pd.testing.assert_frame_equal(a[key], b[key], check_exact=True, obj=key)
        elif key == "latencies":
            assert a[key].keys() == b[key].keys() and a[key]
            for rid in a[key]:
                np.testing.assert_array_equal(a[key][rid], b[key][rid])
        else:
            assert a[key] == b[key], key


def _loose(root: Path, table: str) -> list[str]:
    return sorted(p.stem for p in (root / table).glob("*.parquet") if not p.name.startswith(COMPACT_PREFIX))


def test_summary_fields_are_the_statistics_columns():
    from harness.analysis.stats import SUMMARY_COLUMNS

    assert SUMMARY_FIELDS == SUMMARY_COLUMNS
    assert SCHEMAS["summaries"].names == ["run_id", *SUMMARY_COLUMNS]


@pytest.mark.slow
def test_a_run_stores_its_summary_equal_to_the_one_from_its_samples(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH)
    assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == 0
    store = Store(tmp_path / "res")
    assert json.loads((tmp_path / "res" / MARKER).read_text()) == {"schema_version": SCHEMA_VERSION}
    runs = store.runs()
    assert sorted(p.stem for p in (tmp_path / "res" / "summaries").glob("*.parquet")) == sorted(runs["run_id"])
    stored = store._stored_summaries(set(runs["run_id"]))
    assert list(stored.index) == sorted(runs["run_id"]) and (stored["count"] == 80).all()
    pd.testing.assert_frame_equal(store.summary(), store.summary(from_samples=True), check_exact=True)


@pytest.mark.slow
def test_v1_store_reads_the_same_before_and_after_migrate(tmp_path, capsys):
    root = _write_v1(tmp_path / "res")
    before = _api(root)
    # The old path (no summaries) and the stored path give the same figures, including runs without samples
    # (an error run), without timed_ns (throughput from the mean) and with warm-up rows.
    _assert_same({"s": before["summary"]}, {"s": before["from_samples"]})
    assert before["summary"]["count"].isna().sum() == 1
    cli_before = _cli(root, capsys)
    assert main(["store", "migrate", "--store", str(root)]) == 0
    assert "stored the summaries of 9 runs" in capsys.readouterr().out
    assert json.loads((root / MARKER).read_text()) == {"schema_version": SCHEMA_VERSION}
    assert sorted(p.name for p in (root / "summaries").iterdir()) == [f"{COMPACT_PREFIX}s00{i}.parquet"
                                                                       for i in range(3)]
    _assert_same(before, _api(root))
    _assert_same(cli_before, _cli(root, capsys))
    assert main(["store", "migrate", "--store", str(root)]) == 0  # again: nothing left to do
    assert "stored the summaries of 0 runs" in capsys.readouterr().out


def test_the_first_write_access_migrates_a_v1_store(tmp_path):
    root = _write_v1(tmp_path / "res", sessions=1)
    Store(root).ensure_writable()
    assert json.loads((root / MARKER).read_text()) == {"schema_version": SCHEMA_VERSION}
    assert len(Store(root)._stored_summaries({r for r in _loose(root, "runs")})) == 3


@pytest.mark.slow
def test_compact_merges_closed_sessions_and_every_reader_reads_the_same(tmp_path, capsys):
    root = _write_v1(tmp_path / "res", running=True)
    before, cli_before = _api(root), _cli(root, capsys)
    running = [r for r in _loose(root, "runs") if r.startswith("20260103")]
    assert main(["store", "compact", "--store", str(root)]) == 0
    out = capsys.readouterr().out
    assert "migrated to schema v2" in out and "compacted 3 closed sessions" in out
    for table in COMPACTED_TABLES:  # the running session's files are left alone; the closed ones' merged
        assert [r for r in _loose(root, table) if not r.startswith("20260103")] == [], table
    assert _loose(root, "runs") == running
    assert sorted(p.name for p in (root / "samples").glob(f"{COMPACT_PREFIX}*")) == [
        f"{COMPACT_PREFIX}s00{i}.parquet" for i in range(3)]
    _assert_same(before, _api(root))
    _assert_same(cli_before, _cli(root, capsys))
    assert [f for f in check_store(Store(root)) if f.problem] == []
    # A late run of a compacted session (a writer that outlived its judgement) is a per-run file no merged file
    # covers: read once, and the next compaction merges it into the session's file (a superset of the old one).
    late = "20260101T010000-late01"
    shutil.copy(root / "runs" / f"{running[0]}.parquet", tmp_path / "late.parquet")
    row = pq.read_table(tmp_path / "late.parquet").to_pylist()[0]
    row.update(run_id=late, session_id="s001")
    pq.write_table(pa.Table.from_pylist([row], schema=SCHEMAS["runs"]), root / "runs" / f"{late}.parquet")
    assert (Store(root).runs()["run_id"] == late).sum() == 1
    with_late = _api(root)
    assert main(["store", "compact", "--store", str(root)]) == 0
    capsys.readouterr()
    assert _loose(root, "runs") == running
    _assert_same(with_late, _api(root))


def _steps(root: Path) -> list[str]:
    seen: list[str] = []
    compact_store(Store(root), fail_at=seen.append)
    return seen


@pytest.mark.slow
def test_a_compaction_stopped_at_any_step_leaves_each_row_once_and_resumes(tmp_path):
    base = _write_v1(tmp_path / "base", sessions=1, per_session=2, n=40)
    Store(base).migrate()
    expected = _api(base, light=True)
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    steps = _steps(probe)
    assert steps[0] == "write samples" and steps[-1] == "delete runs" and "written runs" in steps
    # Before and after each kind of step (the first of each; the deletes of one table are alike), and the last.
    points = sorted({steps.index(name) for name in steps} | {len(steps) - 1})

    class Stop(Exception):
        pass

    for k in points:
        root = tmp_path / f"crash{k}"
        shutil.copytree(base, root)
        calls = iter(range(len(steps)))

        def fail(name: str, k: int = k, calls: Any = calls) -> None:
            if next(calls) == k:
                raise Stop(name)

        with pytest.raises(Stop):
            compact_store(Store(root), fail_at=fail)
        _assert_same(expected, _api(root, light=True))  # stopped there: every row once
        assert Store(root).temp_files() == []
        compact_store(Store(root))  # resumed: done, and still every row once
        _assert_same(expected, _api(root, light=True))
        for table in COMPACTED_TABLES:
            assert _loose(root, table) == [], (k, steps[k], table)


@pytest.mark.slow
def test_a_killed_compaction_leaves_each_row_once_and_resumes(tmp_path):
    """A real kill (os._exit: no cleanup) between the merged files' rename and the deletes, and in the middle
    of the deletes."""
    base = _write_v1(tmp_path / "base", sessions=1, per_session=2, n=40)
    Store(base).migrate()
    expected = _api(base, light=True)
    for at in ("written runs", "delete runs"):
        root = tmp_path / at.replace(" ", "-")
        shutil.copytree(base, root)
        code = ("import os, sys\nfrom harness.store import Store\nfrom harness.storecompact import compact_store\n"
                f"compact_store(Store(sys.argv[1]), fail_at=lambda name: name == {at!r} and os._exit(9))\n")
        proc = subprocess.run([sys.executable, "-c", code, str(root)], env=ENV, timeout=120, capture_output=True)
        assert proc.returncode == 9, proc.stderr
        assert any(p.name.startswith(COMPACT_PREFIX) for p in (root / "runs").iterdir())
        assert _loose(root, "samples") or at == "delete runs"
        _assert_same(expected, _api(root, light=True))
        compact_store(Store(root))
        _assert_same(expected, _api(root, light=True))
        assert _loose(root, "runs") == []


def test_one_compaction_at_a_time_and_unsafe_ids_are_never_paths(tmp_path, capsys):
    root = _write_v1(tmp_path / "res", sessions=1, per_session=2)
    Store(root).migrate()
    with maintenance_lock(root):
        assert main(["store", "compact", "--store", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another `hilbench store compact` or `store migrate` is running" in err
    # A shared store's rows are not trusted as paths: a run id or session id that is not a plain name is left.
    outside = tmp_path / "outside.parquet"
    shutil.copy(root / "samples" / f"{_loose(root, 'samples')[0]}.parquet", outside)
    bad = {"run_id": "../../outside", "session_id": "s000", "status": "ok"}
    pq.write_table(pa.table({f.name: [bad.get(f.name)] for f in SCHEMAS["runs"]}, schema=SCHEMAS["runs"]),
                   root / "runs" / "evil.parquet")
    srow = {"session_id": "../up", "started_at": T0, "status": "ok"}
    pq.write_table(pa.table({f.name: [srow.get(f.name)] for f in SCHEMAS["sessions"]}, schema=SCHEMAS["sessions"]),
                   root / "sessions" / "up.parquet")
    assert main(["store", "compact", "--store", str(root)]) == 0
    capsys.readouterr()
    assert outside.is_file() and (root / "runs" / "evil.parquet").is_file()
    assert not any(p.name.startswith(COMPACT_PREFIX + "..") for t in COMPACTED_TABLES for p in (root / t).iterdir())


def test_a_failed_summary_write_leaves_the_run_stored_and_readers_compute_it(tmp_path, monkeypatch):
    store = Store(tmp_path / "res")
    store.ensure_writable()
    lat = list(range(1000, 1100))
    store.write_table("samples", "r1", {"run_id": ["r1"] * 100, "phase": ["timed"] * 100,
                                        "iteration": list(range(100)), "latency_ns": lat, "t_ns": lat})
    real = store._write_file

    def refuse(table: str, name: str, arrow: pa.Table) -> Path:
        if table == "summaries":
            raise StoreError("disk full (a stand-in failure)")
        return real(table, name, arrow)

    monkeypatch.setattr(store, "_write_file", refuse)
    store.write_table("runs", "r1", [{"run_id": "r1", "session_id": "s", "status": "ok", "timed_ns": 10**6}])
    assert not (tmp_path / "res" / "summaries" / "r1.parquet").exists()
    summary = Store(tmp_path / "res").summary()
    assert summary.loc[0, "count"] == 100 and summary.loc[0, "p50_ns"] == pytest.approx(1049.5)


def test_samples_in_a_file_named_for_no_run_are_summarised_as_before(tmp_path):
    """A store written by hand (one samples file for two runs): no stored summary hides them, before or after
    migrate."""
    store = Store(tmp_path / "res")
    store.ensure_writable()
    lat = list(range(1000, 1200))
    store.write_table("samples", "batch", {"run_id": ["r1"] * 100 + ["r2"] * 100, "phase": ["timed"] * 200,
                                           "iteration": list(range(100)) * 2, "latency_ns": lat, "t_ns": lat})
    store.write_table("runs", "both", [{"run_id": r, "session_id": "s", "status": "ok", "timed_ns": 10**6}
                                       for r in ("r1", "r2")])
    store.migrate()
    summary = Store(tmp_path / "res").summary()
    assert list(summary["count"]) == [100, 100] and summary.loc[1, "p50_ns"] == pytest.approx(1149.5)
    pd.testing.assert_frame_equal(summary, Store(tmp_path / "res").summary(from_samples=True), check_exact=True)


def test_many_runs_in_per_run_files_get_one_note_naming_store_compact(tmp_path, monkeypatch, caplog):
    import harness.store as hs

    root = _write_v1(tmp_path / "res", running=False)
    assert main(["store", "migrate", "--store", str(root)]) == 0
    n = len(list((root / "runs").glob("*.parquet")))
    monkeypatch.setattr(hs, "_NOTE_UNCOMPACTED", n)
    store = Store(root)
    with caplog.at_level("WARNING", logger="hilbench.store"):
        store.summary()
        store.summary()
    notes = [r.getMessage() for r in caplog.records if "per-run files" in r.getMessage()]
    assert len(notes) == 1 and f"{n} runs in {root}" in notes[0]
    assert f"hilbench store compact --store {root}" in notes[0] and "\n" not in notes[0]
    caplog.clear()
    assert main(["store", "compact", "--store", str(root)]) == 0
    with caplog.at_level("WARNING", logger="hilbench.store"):
        Store(root).summary()
    assert not [r for r in caplog.records if "per-run files" in r.getMessage()]
