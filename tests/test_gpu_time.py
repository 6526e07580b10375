"""GPU time beside host time: the agent sends ``gpu_ns`` with each sample batch (clamped to its host latency),
the host refuses a batch that breaks that rule, the store keeps the optional column (null where a run had no
GPU timing, and in stores written before it existed), and a backend's build is timed apart from its load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hilbench_agent import main as agent_main
from support.helpers import pyenv_python, run_agent, write_agent

from harness import open_store
from harness.agent.validate import MessageChecker, MessageError
from harness.cli import main


def _sample(**extra):
    return {"type": "sample", "phase": "timed", "start": 0, "t0_ns": 10, "latency_ns": [100, 200, 300],
            "offset_ns": [0, 150, 400], **extra}


def test_gpu_ns_beside_the_latencies_is_kept():
    out = MessageChecker().check(_sample(gpu_ns=[90, 200, 0]))
    assert out["gpu_ns"].tolist() == [90, 200, 0] and out["gpu_ns"].dtype == np.int64
    assert "gpu_ns" not in MessageChecker().check(_sample())


@pytest.mark.parametrize("gpu, problem", [
    ([90, 201, 10], "gpu_ns holds a GPU time longer than its host latency"),
    ([90, -1, 10], "gpu_ns holds a negative time"),
    ([90, 10], "gpu_ns has 2 values, latency_ns 3"),
    ([90, 1.5, 10], "gpu_ns must be a list of integers"),
    ("90", "gpu_ns must be a list of integers, not str"),
])
def test_a_bad_gpu_ns_batch_is_refused(gpu, problem):
    with pytest.raises(MessageError, match=problem):
        MessageChecker().check(_sample(gpu_ns=gpu))


def test_a_first_inference_gpu_time_longer_than_it_is_refused():
    checker = MessageChecker()
    assert checker.check({"type": "phase", "phase": "first", "event": "end", "duration_ns": 50,
                          "gpu_ns": 40})["gpu_ns"] == 40
    with pytest.raises(MessageError, match="gpu_ns is longer than duration_ns"):
        checker.check({"type": "phase", "phase": "first", "event": "end", "duration_ns": 50, "gpu_ns": 51})


def test_the_agent_clamps_gpu_times_to_their_host_latency_and_counts_them():
    info: dict = {}
    assert agent_main._gpu_beside([5, 12, -3, 10], [10, 10, 10, 10], info) == [5, 10, 0, 10]
    assert info["gpu_clamped"] == 2
    info = {}
    assert agent_main._gpu_beside([5, 6], [10, 10, 10], info) is None
    assert info["gpu_ns_missing"] == "2 GPU times for 3 invokes"
    assert agent_main._gpu_beside(None, [1], {}) is None


def _plan(tmp: Path, settings: str) -> Path:
    path = tmp / "plan.toml"
    path.write_text(f"""
name = "gpu"
[[models]]
name = "stand-in"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = 0.2
{settings}
[policy]
warmup = 5
timed = {{ count = 40 }}
percentiles = [50]
telemetry = false
""")
    return path


@pytest.mark.slow
def test_gpu_times_are_stored_beside_host_latencies(tmp_path):
    """Through the real agent (a child process) and the real Parquet store: the stand-in reports 40% of each
    latency as GPU time, and 250% in a second run, which the agent clamps to the host latency."""
    store_dir = tmp_path / "res"
    assert main(["run", str(_plan(tmp_path, "gpu_fraction = [0.4, 2.5]")), "--store", str(store_dir), "--quiet"]) == 0
    store = open_store(store_dir)
    runs = store.runs()
    assert list(runs["status"]) == ["ok", "ok"]
    for _, run in runs.iterrows():
        fraction = json.loads(run["settings"])["gpu_fraction"]
        samples = store.samples([run["run_id"]])
        assert set(samples["phase"]) == {"first", "warmup", "timed"}
        gpu, lat = samples["gpu_ns"].to_numpy(), samples["latency_ns"].to_numpy()
        assert samples["gpu_ns"].notna().all()
        assert (gpu <= lat).all() and (gpu > 0).all()
        timed = json.loads(run["result"])["timed"]
        if fraction < 1:
            assert (gpu < lat).all() and timed["gpu_clamped"] == 0
            assert np.median(gpu / 0.4) == pytest.approx(200_000, rel=0.01)  # the stand-in's own delay
        else:  # 2.5 x the stand-in's 0.2 ms: longer than every latency but one the host stretched past 0.5 ms
            assert (gpu == np.minimum(lat, 500_000)).all()
            t_lat = samples[samples["phase"] == "timed"]["latency_ns"]
            assert timed["gpu_clamped"] == int((t_lat < 500_000).sum()) > 0


@pytest.mark.slow
def test_without_gpu_timing_the_column_is_null(tmp_path):
    assert main(["run", str(_plan(tmp_path, "")), "--store", str(tmp_path / "res"), "--quiet"]) == 0
    samples = open_store(tmp_path / "res").samples()
    assert len(samples) == 46 and samples["gpu_ns"].isna().all()


def test_a_store_written_before_gpu_ns_still_reads(tmp_path):
    store = open_store(tmp_path / "res")
    store.ensure_writable()
    store.write_table("samples", "r1", {"run_id": ["r1"], "phase": ["timed"], "iteration": [0],
                                        "latency_ns": [7], "t_ns": [1]})
    old = pa.schema([("run_id", pa.string()), ("phase", pa.string()), ("iteration", pa.int64()),
                     ("latency_ns", pa.int64()), ("t_ns", pa.int64())])
    # the file as an older hilbench wrote it: no gpu_ns column at all
    pq.write_table(pa.table({"run_id": ["r1", "r1"], "phase": ["timed", "timed"], "iteration": [0, 1],
                             "latency_ns": [7, 8], "t_ns": [1, 9]}, schema=old), tmp_path / "res" / "samples" / "r1.parquet")
    store.write_table("runs", "r1", [{"run_id": "r1", "status": "ok"}])
    samples = open_store(tmp_path / "res").samples()
    assert samples["latency_ns"].tolist() == [7, 8] and samples["gpu_ns"].isna().all()


@pytest.mark.slow
def test_the_agent_under_python37_sends_gpu_ns(tmp_path):
    python = pyenv_python("3.7") or sys.executable
    job = {"v": 1, "job_id": "g1", "backend": "synthetic", "settings": {"latency_ms": 0.1, "gpu_fraction": 0.5},
           "warmup": {"count": 2}, "timed": {"count": 7}}
    code, msgs, err = run_agent(python, write_agent(tmp_path), job)
    assert code == 0, err
    timed = [m for m in msgs if m["type"] == "sample" and m["phase"] == "timed"]
    assert len(timed) == 1 and len(timed[0]["gpu_ns"]) == 7
    assert all(0 < g <= lat for g, lat in zip(timed[0]["gpu_ns"], timed[0]["latency_ns"], strict=True))
    first = [m for m in msgs if m["type"] == "phase" and m["phase"] == "first" and m["event"] == "end"]
    assert 0 < first[0]["gpu_ns"] <= first[0]["duration_ns"]
