"""One row per configuration where a session ran it in several agent processes (harness/analysis/processes.py):
the `run`/`results` table, the report and its figures fold a configuration's processes; CSV, JSON and
``Store.summary()`` stay one row per run. Measured with the synthetic backend (a stand-in: a busy-wait of
``latency_ms``, no model)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.analysis.processes import by_configuration
from harness.cli import main
from harness.cli.commands import format_summary
from harness.store import open_store

PLAN = """name = "pp"
targets = ["local"]
[[models]]
name = "a"
backends = ["synthetic"]
[[models]]
name = "b"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = 0.2
spin = true
[policy]
warmup = 3
timed = {{ count = 40 }}
telemetry = false
idle_s = 0
processes = {k}
"""


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one session of two configurations, three agent processes each."""
    folder = tmp_path_factory.mktemp("three")
    plan = folder / "pp.toml"
    plan.write_text(PLAN.format(k=3), encoding="utf-8")
    assert main(["run", str(plan), "--store", str(folder / "res"), "--quiet"]) == 0
    return folder / "res"


@pytest.mark.slow
def test_folded_row_pools_the_processes_samples(three: Path):
    store = open_store(three)
    summary = store.summary()
    assert len(summary) == 6 and set(summary["processes"]) == {3} and sorted(summary["process"]) == [1, 1, 2, 2, 3, 3]
    folded = by_configuration(summary)
    pd.testing.assert_frame_equal(folded, store.configurations())
    assert list(folded["model"]) == ["a", "b"] and list(folded["processes"]) == [3, 3]
    assert list(folded["failed"]) == [0, 0]
    for _, row in folded.iterrows():
        ids = row["run_ids"].split(",")
        assert len(ids) == 3 and ids[0] == row["run_id"]
        mine = summary[summary["run_id"].isin(ids)]
        assert sorted(mine["process"]) == [1, 2, 3] and set(mine["model"]) == {row["model"]}
        lat = store.samples(ids, phase="timed")["latency_ns"].to_numpy(dtype=np.float64)
        # count, mean and standard deviation are those of all the processes' samples together (exact)
        assert row["count"] == lat.size == 120
        assert math.isclose(row["mean_ns"], lat.mean(), rel_tol=1e-9)
        assert math.isclose(row["std_ns"], lat.std(ddof=1), rel_tol=1e-9)
        assert math.isclose(row["cv"], lat.std(ddof=1) / lat.mean(), rel_tol=1e-9)
        assert row["min_ns"] == lat.min() and row["max_ns"] == lat.max()
        # quantiles: the geometric mean of the processes' own (what compare tests); the interval is Student's t
        p50 = mine["p50_ns"].to_numpy(dtype=np.float64)
        assert math.isclose(row["p50_ns"], float(stats.gmean(p50)), rel_tol=1e-9)
        logs = np.log(p50)
        half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
        assert math.isclose(row["p50_ci_low_ns"], math.exp(logs.mean() - half), rel_tol=1e-9)
        assert math.isclose(row["p50_ci_high_ns"], math.exp(logs.mean() + half), rel_tol=1e-9)
        seconds = (mine["count"] / mine["throughput_per_s"]).sum()
        assert math.isclose(row["throughput_per_s"], 120 / seconds, rel_tol=1e-9)


@pytest.mark.slow
def test_results_table_is_one_row_per_configuration_and_data_one_per_run(three: Path, capsys):
    assert main(["results", "--store", str(three)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [ln for ln in lines[1:] if ln.strip()]
    assert len(rows) == 2 and all(" x3 " in ln and " 120 " in ln for ln in rows), lines
    assert main(["results", "--store", str(three), "--per-process"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 6 and sorted(ln.split()[1] for ln in rows) == ["p1/3"] * 2 + ["p2/3"] * 2 + ["p3/3"] * 2
    assert main(["results", "--store", str(three), "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 7  # header + one line per run


@pytest.mark.slow
def test_a_failed_process_is_said_on_its_configuration_row(three: Path):
    summary = open_store(three).summary()
    failed = summary.index[(summary["model"] == "a") & (summary["process"] == 2)][0]
    summary.loc[failed, "status"] = "error"
    summary.loc[failed, ["count", "mean_ns", "std_ns", "p50_ns"]] = [0, np.nan, np.nan, np.nan]
    folded = by_configuration(summary).set_index("model")
    assert folded.loc["a", "failed"] == 1 and folded.loc["a", "count"] == 80 and folded.loc["a", "status"] == "ok"
    assert folded.loc["b", "failed"] == 0
    text = format_summary(summary, "table")
    (line,) = [ln for ln in text.splitlines() if " a " in ln]
    assert "(1 of 3 failed)" in line and " 80 " in line
    # every process failed: the configuration's row is an error
    summary.loc[summary["model"] == "a", "status"] = "error"
    assert by_configuration(summary).set_index("model").loc["a", "status"] == "error"


def test_one_process_runs_pass_through_unchanged():
    summary = pd.DataFrame({
        "run_id": ["r1", "r2"], "session_id": ["s", "s"], "plan": ["p", "p"], "model": ["m", "m"],
        "model_tags": ["{}", "{}"], "target": ["t", "t"], "backend": ["b", "b"], "settings": ["{}", "{}"],
        "process": [None, None], "processes": [None, None], "status": ["ok", "ok"], "count": [10.0, 20.0],
        "p50_ns": [1.0, 2.0], "started_at": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
    })
    folded = by_configuration(summary)
    assert list(folded["run_id"]) == ["r1", "r2"] and list(folded["count"]) == [10.0, 20.0]
    assert list(folded["processes"]) == [1, 1] and list(folded["run_ids"]) == ["r1", "r2"]


@pytest.mark.slow
def test_report_folds_the_processes(three: Path, tmp_path: Path):
    from harness.report.html import ranking_table

    table = ranking_table(open_store(three)).set_index("model")
    assert list(table["processes"]) == [3, 3] and list(table["count"]) == [120, 120]
    assert all(len(v.split(",")) == 3 for v in table["run_ids"])
    out = tmp_path / "r.html"
    assert main(["report", "--store", str(three), "--output", str(out), "--no-plots"]) == 0
    assert out.read_text(encoding="utf-8").count("3 processes</small>") == 2


@pytest.mark.slow
def test_show_says_which_process_a_run_was_and_names_the_others(three: Path, capsys):
    summary = open_store(three).summary()
    mine = summary[summary["model"] == "a"].sort_values("process")
    ids = list(mine["run_id"])
    assert main(["show", ids[1], "--store", str(three)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"  process   2 of 3 (policy.processes); the others: {ids[0]}, {ids[2]}", out[:3]
