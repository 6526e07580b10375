"""The Parquet results store: atomic, append-only, schema-versioned."""

from __future__ import annotations

import datetime as dt
import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.errors import StoreError
from harness.store import SCHEMA_VERSION, open_store


def _run_row(run_id: str, **extra):
    now = dt.datetime.now(dt.timezone.utc)
    row = {"run_id": run_id, "session_id": "s1", "model": "m", "target": "local", "backend": "synthetic",
           "status": "ok", "started_at": now, "finished_at": now, "settings": {"latency_ms": 1}, "timed_ns": 10**9}
    row.update(extra)
    return row


def test_round_trip_and_summary(tmp_path):
    store = open_store(tmp_path / "res")
    store.ensure_writable()
    lat = list(range(1_000_000, 1_000_000 + 1000 * 100, 100))
    store.write_table("samples", "r1", {"run_id": ["r1"] * 1000, "phase": ["timed"] * 1000,
                                        "iteration": list(range(1000)), "latency_ns": lat, "t_ns": lat})
    store.write_table("runs", "r1", [_run_row("r1")])
    runs = store.runs()
    assert list(runs["run_id"]) == ["r1"]
    assert json.loads(runs.loc[0, "settings"]) == {"latency_ms": 1}
    samples = store.samples()
    assert samples["latency_ns"].dtype == "int64" and len(samples) == 1000
    summary = store.summary()
    assert summary.loc[0, "count"] == 1000
    assert summary.loc[0, "p50_ns"] == pytest.approx(pd.Series(lat).median())
    assert summary.loc[0, "throughput_per_s"] == pytest.approx(1000.0)
    assert summary.loc[0, "p50_ci_low_ns"] <= summary.loc[0, "p50_ns"] <= summary.loc[0, "p50_ci_high_ns"]
    # every file carries its schema version
    meta = pq.read_schema(tmp_path / "res" / "samples" / "r1.parquet").metadata
    assert meta[b"hilbench.schema_version"] == str(SCHEMA_VERSION).encode()


def test_uncommitted_samples_are_invisible(tmp_path):
    """Samples written without their runs row (a crash in between) never show up."""
    store = open_store(tmp_path)
    store.ensure_writable()
    store.write_table("samples", "orphan", {"run_id": ["orphan"], "phase": ["timed"], "iteration": [0],
                                            "latency_ns": [5], "t_ns": [0]})
    assert store.samples().empty
    assert store.summary().empty


def test_no_temporary_files_left(tmp_path):
    store = open_store(tmp_path)
    store.ensure_writable()
    store.write_table("runs", "r1", [_run_row("r1")])
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_empty_store_reads_as_empty_frames(tmp_path):
    store = open_store(tmp_path / "nothing-here")
    assert store.runs().empty and store.samples().empty and store.telemetry().empty and store.accuracy().empty
    assert store.summary().empty


def test_newer_schema_is_refused(tmp_path):
    (tmp_path / "hilbench-store.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(StoreError, match="newer than this hilbench"):
        open_store(tmp_path)


def test_unwritable_store_fails_before_anything(tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits: a file where the folder should be does the job
        blocker = tmp_path / "res"
        blocker.write_text("a file, not a folder")
        store = open_store(blocker)
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        store = open_store(ro / "res")
    with pytest.raises(StoreError, match="not writable"):
        store.ensure_writable()


def test_run_lookup_by_prefix(tmp_path):
    store = open_store(tmp_path)
    store.ensure_writable()
    store.write_table("runs", "20261124T000000-aaaaaa", [_run_row("20261124T000000-aaaaaa")])
    store.write_table("runs", "20261124T000000-aabbbb", [_run_row("20261124T000000-aabbbb")])
    assert store.run("20261124T000000-aaaa")["run_id"] == "20261124T000000-aaaaaa"
    with pytest.raises(StoreError, match="ambiguous"):
        store.run("20261124T000000-aa")
    with pytest.raises(StoreError, match="no run"):
        store.run("zzz")


def test_many_files_are_read_some_at_a_time_with_the_same_rows(tmp_path, monkeypatch):
    """A store never compacted has a file per run and table: readers read them in groups (each group one
    dataset, its chunks joined) to bound memory; the rows, their order and every reader's answer are the same
    as reading them all at once."""
    from support import fake_lab

    import harness.store as hs

    fake_lab.build(tmp_path / "lab", nights=3, n=30, eval_items=0, telemetry=False)
    at_once = open_store(tmp_path / "lab")
    runs, summary = at_once.runs(), at_once.summary()
    samples = at_once.samples(phase="timed")
    assert len(at_once.location.files("runs")) > 7
    monkeypatch.setattr(hs, "_FILES_PER_READ", 3)
    grouped = open_store(tmp_path / "lab")
    pd.testing.assert_frame_equal(grouped.runs(), runs)
    pd.testing.assert_frame_equal(grouped.summary(), summary)
    pd.testing.assert_frame_equal(grouped.samples(phase="timed"), samples)
    some = list(runs["run_id"][::4])
    pd.testing.assert_frame_equal(grouped.samples(some).reset_index(drop=True),
                                  at_once.samples(some).reset_index(drop=True))
