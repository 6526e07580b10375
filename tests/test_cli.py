"""The hilbench command end to end on the local target, with the synthetic stand-in backend
(the real runtimes are covered by test_quickstart.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import open_store
from harness.cli import main


def write_plan(tmp: Path, body: str, name: str = "plan.toml") -> Path:
    path = tmp / name
    path.write_text(body)
    return path


SYNTH = """
name = "synth"
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = [0.2, 0.4]
jitter_ms = 0.02
[policy]
warmup = 5
timed = { count = 80 }
telemetry = false
"""


def test_run_stores_every_sample_and_prints_the_table(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH)
    store_dir = tmp_path / "res"
    code = main(["run", str(plan), "--store", str(store_dir), "--label", "build=abc123", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 ok, 0 failed" in out and "stand-in" in out
    store = open_store(store_dir)
    runs = store.runs()
    assert len(runs) == 2 and set(runs["status"]) == {"ok"}
    assert all(json.loads(x) == {"build": "abc123"} for x in runs["labels"])
    assert runs["stand_in"].all()
    samples = store.samples()
    per_run = samples.groupby(["run_id", "phase"]).size().unstack()
    assert (per_run["timed"] == 80).all() and (per_run["warmup"] == 5).all() and (per_run["first"] == 1).all()
    summary = store.summary()
    by_latency = summary.set_index(summary["settings"].map(lambda s: json.loads(s)["latency_ms"]))
    assert by_latency.loc[0.4, "p50_ns"] > by_latency.loc[0.2, "p50_ns"] >= 200_000
    sessions = store.sessions()
    assert len(sessions) == 1 and sessions.loc[0, "status"] == "finished" and sessions.loc[0, "jobs_ok"] == 2
    assert "latency_ms" in sessions.loc[0, "plan_text"]
    assert sessions.loc[0, "session_id"] in out


def test_failing_jobs_are_stored_and_the_rest_go_on(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2\nfail_at = [3, 100000]"))
    store_dir = tmp_path / "res"
    code = main(["run", str(plan), "--store", str(store_dir), "--quiet"])
    assert code == 3
    runs = open_store(store_dir).runs().set_index("status")
    assert runs.loc["error", "error_category"] == "backend"
    assert "requested failure at invoke 3" in runs.loc["error", "error_message"]
    assert runs.loc["ok", "timed_count"] == 80


def test_agent_crash_is_stored_with_exit_status(tmp_path):
    plan = write_plan(tmp_path, SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2\ncrash_at = 2"))
    code = main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"])
    assert code == 3
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "agent"
    assert "exited with status 70" in run["error_message"]
    assert open_store(tmp_path / "res").samples().empty  # nothing half-written for a failed run


def test_hung_agent_times_out(tmp_path):
    plan = write_plan(tmp_path, SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2\nhang_at = 2")
                      .replace("telemetry = false", "telemetry = false\ntimeout_s = 2"))
    code = main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"])
    assert code == 3
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "timeout" and "2 s" in run["error_message"]


@pytest.mark.parametrize("setting, timeouts, phase", [
    ("load_ms = 5000", "load_s = 0.5", "load"),
    ("latency_ms = 50", "warmup_s = 0.5", "warmup"),  # 5 warm-ups fit; the 200 below do not
])
def test_a_phase_past_its_own_timeout_is_killed_and_stored(tmp_path, setting, timeouts, phase):
    body = (SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2\n" + setting)
            .replace("warmup = 5", "warmup = 200")
            .replace("telemetry = false", f"telemetry = false\ntimeouts = {{ {timeouts} }}"))
    plan = write_plan(tmp_path, body.replace("latency_ms = 0.2\nlatency_ms = 50", "latency_ms = 50"))
    code = main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"])
    assert code == 3
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "timeout"
    assert f"the {phase} phase exceeded its timeout of 0.5 s (policy.timeouts.{phase}_s)" in run["error_message"]
    assert (run["finished_at"] - run["started_at"]).total_seconds() < 4


def test_resume_skips_finished_jobs(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH)
    store_dir = str(tmp_path / "res")
    assert main(["run", str(plan), "--store", store_dir, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", str(plan), "--store", store_dir, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "0 jobs" in err and "2 already stored" in err
    assert len(open_store(store_dir).runs()) == 2


@pytest.mark.parametrize("body, message", [
    ("[[models]\n", "invalid TOML"),
    ('[[models]]\nname = "x"\nbackends = ["synthetic"]\nwarmup = 3\n', "models[0].warmup: unknown key"),
    ('[[models]]\npath = "nope.onnx"\n', "model file not found"),
    ('targets = ["lab-pi"]\n[[models]]\nname = "x"\nbackends = ["synthetic"]\n', "unknown target 'lab-pi'"),
])
def test_user_errors_are_one_line_and_store_nothing(tmp_path, body, message):
    plan = write_plan(tmp_path, body)
    store_dir = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hilbench: error: ") and message in lines[0]
    assert str(plan) in lines[0]
    assert "Traceback" not in proc.stderr
    assert not store_dir.exists()


def test_unwritable_store_is_a_user_error(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH)
    blocker = tmp_path / "res"
    blocker.write_text("not a folder")
    assert main(["run", str(plan), "--store", str(blocker), "--quiet"]) == 1
    assert "not writable" in capsys.readouterr().err


def test_results_formats_and_show(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH)
    store_dir = str(tmp_path / "res")
    main(["run", str(plan), "--store", store_dir, "--quiet"])
    capsys.readouterr()
    assert main(["results", "--store", store_dir, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 2 and all(r["count"] == 80 for r in records)
    assert main(["results", "--store", store_dir, "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("run_id,") and len(csv) == 3
    run_id = records[0]["run_id"]
    assert main(["show", run_id[:-2], "--store", store_dir]) == 0
    shown = capsys.readouterr().out
    assert run_id in shown and "STAND-IN" in shown and "median CI" in shown
    assert main(["show", "nonexistent", "--store", store_dir]) == 1


def test_targets_command_validates(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text('transport = "ssh"\n')
    assert main(["targets", "--targets-dir", str(tmp_path)]) == 1
    assert "bad.toml: host" in capsys.readouterr().err
