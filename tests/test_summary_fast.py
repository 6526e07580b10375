"""The large-store path of Store.summary: summarize_fast equals summarize, and the per-file
reader gives the same table as the whole-table one (mixed phases, missing files, stray files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.analysis.stats import SUMMARY_COLUMNS, summarize, summarize_fast, summarize_frame
from harness.store import Store


@pytest.mark.parametrize("n", [1, 2, 3, 4, 11, 100, 101, 662, 5000])
@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_summarize_fast_equals_summarize(n, dtype):
    rng = np.random.default_rng(n)
    for x in (1e6 * np.exp(0.3 * rng.standard_normal(n)), np.round(rng.random(n) * 10) * 1000):  # ties too
        x = x.astype(dtype)
        a, b = summarize(x, duration_ns=10**9), summarize_fast(x, duration_ns=10**9)
        for key in SUMMARY_COLUMNS:
            assert b[key] == pytest.approx(a[key], rel=1e-12, nan_ok=True), key
    assert summarize_fast([])["count"] == 0


def write_run(store: Store, run_id: str, lat: np.ndarray, phases: list[str] | None = None) -> None:
    phases = phases or ["timed"] * len(lat)
    store.write_table("samples", run_id, {"run_id": [run_id] * len(lat), "phase": phases,
                                          "iteration": list(range(len(lat))), "latency_ns": lat.tolist(),
                                          "t_ns": list(range(len(lat)))})
    store.write_table("runs", run_id, [{"run_id": run_id, "status": "ok", "timed_ns": int(lat.sum()),
                                        "started_at": pd.Timestamp("2026-11-01", tz="UTC"), "model": "m"}])


def test_per_file_summary_matches_the_whole_table(tmp_path):
    store = Store(tmp_path)
    store.ensure_writable()
    rng = np.random.default_rng(0)
    write_run(store, "a", rng.integers(10**5, 10**6, 700))
    lat = rng.integers(10**5, 10**6, 300)
    write_run(store, "b", lat, ["first"] + ["warmup"] * 49 + ["timed"] * 250)
    write_run(store, "c", rng.integers(10**5, 10**6, 5), ["warmup"] * 5)  # no timed samples
    store.write_table("runs", "d", [{"run_id": "d", "status": "error", "started_at": pd.Timestamp("2026-11-01", tz="UTC")}])
    fast = store.summary().set_index("run_id")
    samples = store.samples()
    runs = store.runs()
    slow = summarize_frame(samples, durations_ns=dict(zip(runs["run_id"], runs["timed_ns"], strict=True)))
    for run_id in ("a", "b"):
        for key in SUMMARY_COLUMNS:
            assert fast.loc[run_id, key] == pytest.approx(slow.loc[run_id, key], rel=1e-12, nan_ok=True)
    assert fast.loc["b", "count"] == 250
    assert np.isnan(fast.loc["c", "count"]) and np.isnan(fast.loc["d", "count"])
    assert set(store.samples(["b"])["run_id"]) == {"b"} and len(store.samples(["b"], phase="timed")) == 250
    # A samples file named for no run falls back to reading the whole table, with the same answer.
    store.write_table("samples", "stray", {"run_id": ["a"], "phase": ["warmup"], "iteration": [9999],
                                           "latency_ns": [1], "t_ns": [0]})
    again = store.summary().set_index("run_id")
    pd.testing.assert_frame_equal(again[list(SUMMARY_COLUMNS)], fast[list(SUMMARY_COLUMNS)], rtol=1e-12)
