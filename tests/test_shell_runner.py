"""Vendor runners on SSH and local targets (harness/transport/shell_runner.py): a target's ``[runners]`` runs its
jobs of that backend through the device's shell, with telemetry on the host's clock and the offload verdict
from the runner's output.

The runners here are STAND-INS (tests/support/runner_standins.py): ``sh`` scripts that print trtexec- and
benchmark_model-shaped output with fixed, made-up figures; no TensorRT or LiteRT runs. What is real: the
transports (a local shell, a real OpenSSH server), the session, the parsers and the Parquet store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support.runner_standins import BENCHMARK_MODEL, TRTEXEC, write_standin

from harness import open_store
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import load_target, load_targets
from harness.errors import ConfigError
from harness.run.session import run_jobs
from harness.transport.shell_runner import trtexec_args


def _plan(tmp: Path, target: str, backend: str, model: Path, settings: str = "", policy: str = "") -> Path:
    path = tmp / "plan.toml"
    path.write_text(
        f'targets = ["{target}"]\n'
        f'[[models]]\nname = "m"\npath = "{model}"\nbackends = ["{backend}"]\n'
        + (f"[backends.{backend}]\n{settings}\n" if settings else "")
        + "[policy]\nwarmup = 3\ntimed = 5\nidle_s = 0\n" + policy)
    return path


def _local_target(tdir: Path, runners: str, extra: str = "") -> None:
    tdir.mkdir(exist_ok=True)
    (tdir / "board.toml").write_text(f'name = "board"\ntransport = "local"\npython = "{sys.executable}"\n'
                                     f'workdir = "{tdir.parent / "device-cache"}"\n{extra}[runners]\n{runners}\n')


@pytest.fixture(autouse=True)
def _no_device_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's device probe (doctor's facts, the agent's --probe: seconds of imports) is context stored with
    every run and tested elsewhere; these tests are about the runner path."""
    monkeypatch.setattr("harness.run.session.Runner.probe_devices", False)


def _run(tmp: Path, tdir: Path, plan: Path) -> tuple[dict[str, Any], Any]:
    store = open_store(tmp / "results")
    result = run_jobs(expand_jobs(load_plan(plan), load_targets([tdir])), store, plan=load_plan(plan))
    (row,) = result.runs
    return row, store


@pytest.mark.slow
def test_trtexec_on_a_local_target_gives_samples_offload_and_telemetry_on_one_clock(tmp_path: Path) -> None:
    """The STAND-IN trtexec writes 5 per-query times (--exportTimes) and a DLA placement: the run has those samples,
    the DLA offload verdict, and the device's telemetry around the timed window on the same (host) clock."""
    standin = write_standin(tmp_path / "bin", "trtexec", TRTEXEC)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07 not read by the stand-in")
    tdir = tmp_path / "targets"
    _local_target(tdir, f'trtexec = "{standin}"', extra="[telemetry]\nrate_hz = 4\n")
    row, store = _run(tmp_path, tdir, _plan(tmp_path, "board", "tensorrt", model, "dla_core = 0\nfp16 = true",
                                           policy="telemetry = true\n"))
    assert row["status"] == "ok", row["error_message"]
    assert row["runner"] == "trtexec" and row["aggregate_only"] is False
    run = store.run(row["run_id"])
    args = run["effective_settings"]["args"]
    assert f"--onnx={model}" in args[0] or args[0].startswith("--onnx=")
    assert {"--fp16", "--useDLACore=0", "--allowGPUFallback", "--iterations=5"} <= set(args)
    assert not any(a.startswith("--warmUp") for a in args)  # a warm-up count: trtexec's own 200 ms warm-up
    assert any(a.startswith("--exportTimes=") for a in args)
    samples = store.samples([row["run_id"]], phase="timed")
    assert sorted(samples["latency_ns"]) == [2_000_000, 2_250_000, 2_250_000, 2_500_000, 3_000_000]
    assert run["offload"]["accelerator"] == "DLA:0"
    assert (run["offload"]["nodes_total"], run["offload"]["nodes_accelerated"]) == (2, 1)
    assert run["offload"]["cpu_ops"] == ["SOFTMAX"]
    assert run["device"]["clock"] == "host" and run["device"]["runner_path"] == str(standin)
    assert not list((tmp_path / "device-cache" / "journal").glob("runner-*"))  # its folder on the device is gone
    tel = store.telemetry([row["run_id"]])
    if tel.empty:  # a machine without thermal zones or cpufreq: the runner still ran; the clock check needs readings
        pytest.skip("this machine exposes no thermal zones or cpufreq to read")
    # one clock: readings before (idle read) and after (the last read) the timed samples
    assert tel["t_ns"].min() <= samples["t_ns"].min() and tel["t_ns"].max() >= samples["t_ns"].max()


@pytest.mark.slow
def test_a_failing_runner_is_a_backend_error_with_its_last_line(tmp_path: Path) -> None:
    standin = write_standin(tmp_path / "bin", "trtexec", TRTEXEC)
    model = tmp_path / "m.engine"
    model.write_bytes(b"engine bytes")
    tdir = tmp_path / "targets"
    _local_target(tdir, f'trtexec = "{standin}"', extra='env = { STANDIN_FAIL = "1" }\n')
    row, store = _run(tmp_path, tdir, _plan(tmp_path, "board", "tensorrt", model, policy="telemetry = false\n"))
    assert row["status"] == "error" and row["error_category"] == "backend"
    assert row["error_message"].startswith("trtexec exited with status 1: &&&& FAILED TensorRT.trtexec")
    assert list(store.sessions()["status"]) == ["finished"]


@pytest.mark.slow
def test_a_runner_past_the_job_timeout_is_killed_and_stored(tmp_path: Path) -> None:
    standin = write_standin(tmp_path / "bin", "trtexec", TRTEXEC)
    model = tmp_path / "m.engine"
    model.write_bytes(b"engine bytes")
    tdir = tmp_path / "targets"
    _local_target(tdir, f'trtexec = "{standin}"', extra='env = { STANDIN_SLEEP = "30" }\n')
    row, _store = _run(tmp_path, tdir, _plan(tmp_path, "board", "tensorrt", model,
                                             policy="telemetry = false\ntimeout_s = 2\n"))
    assert row["error_category"] == "timeout"
    leftover = list((tmp_path / "device-cache").rglob("runner.pid"))
    assert leftover == []  # the script saw its runner end (killed) and removed the pid file




@pytest.mark.slow
@pytest.mark.sshd
@pytest.mark.usefixtures("own_ssh_dir")
def test_benchmark_model_over_a_real_sshd_stores_the_offload_it_prints(servers, tmp_path: Path) -> None:
    """Over a real OpenSSH server: the STAND-IN benchmark_model's XNNPACK delegation (60 of 66 nodes, 3
    partitions) is the run's offload; its figures are aggregate-only (benchmark_model keeps no samples)."""
    dev = servers("dev")
    standin = write_standin(tmp_path / "bin", "benchmark_model", BENCHMARK_MODEL)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3 not a model")
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "dev.toml").write_text(dev.target_toml("dev", python=sys.executable)
                                   + f'[runners]\nbenchmark_model = "{standin}"\n')
    row, store = _run(tmp_path, tdir, _plan(tmp_path, "dev", "litert", model, "threads = 2",
                                           policy="telemetry = false\n"))
    assert row["status"] == "ok", row["error_message"]
    assert row["transport"] == "ssh" and row["runner"] == "benchmark_model" and row["aggregate_only"] is True
    run = store.run(row["run_id"])
    assert run["offload"] == {"accelerator": "XNNPACK", "nodes_total": 66, "nodes_accelerated": 60, "nodes_cpu": 6,
                              "partitions": 3, "cpu_ops": [], "source": run["offload"]["source"]}
    assert run["result"]["aggregates"]["mean_ns"] == 4_150_500
    assert run["timed_count"] == 20 and run["load_ns"] == 12_500_000
    assert "--num_threads=2" in run["effective_settings"]["args"]
    assert store.samples([row["run_id"]], phase="timed").empty
    assert not list((dev.folder / "device-cache" / "journal").glob("runner-*"))  # its folder on the device is gone  # only the first inference, from its summary line
    summary = store.summary([row["run_id"]]).iloc[0]
    assert summary["mean_ns"] == pytest.approx(4_150_500)


def test_trtexec_args_follow_the_tensorrt_settings() -> None:
    args = trtexec_args("/m/model.engine", {"int8": True, "dla_core": 1, "gpu_fallback": False, "cuda_graph": True},
                        {"count": 10, "min_s": 0.5}, {"count": 100, "min_s": 2.0}, "/w/times.txt")
    assert args == ["--loadEngine=/m/model.engine", "--int8", "--useDLACore=1", "--useCudaGraph", "--warmUp=500",
                    "--iterations=100", "--duration=2", "--exportTimes=/w/times.txt"]


@pytest.mark.parametrize("body, message", [
    ('[runners]\nfoo = "/x"\n', "runners.foo: unknown runner (known: trtexec, benchmark_model, onnxruntime_perf_test)"),
    ("[runners]\nbenchmark_model = true\n", "runners.benchmark_model: expected the runner's path on the device"),
    ('transport = "adb"\n[runners]\ntrtexec = true\n', "[runners] is for ssh, labgrid and local targets"),
])
def test_runners_table_errors_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\n' + body)
    with pytest.raises(ConfigError) as err:
        load_target(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_trtexec_true_is_the_jetpack_path(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\n[runners]\ntrtexec = true\n')
    assert load_target(path).runners == {"trtexec": "/usr/src/tensorrt/bin/trtexec"}
    assert json.dumps(load_target(path).public_dict())  # the stored target facts stay JSON
