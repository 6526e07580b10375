"""The shipped agent (the zipapp) speaks the protocol on the oldest and newest Pythons here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support.helpers import missing_in_ci, pyenv_python, run_agent, write_agent

from harness.agent.protocol import decode_line

PYTHONS = {
    "3.7": pyenv_python("3.7"),
    "newest": pyenv_python("3.13") or sys.executable,
    "host": sys.executable,
}

SYNTH_JOB = {
    "v": 1,
    "job_id": "t1",
    "backend": "synthetic",
    "settings": {"latency_ms": 0.2, "jitter_ms": 0.02, "seed": 3},
    "warmup": {"count": 5},
    "timed": {"count": 50},
}


@pytest.fixture(params=sorted(PYTHONS))
def python(request):
    exe = PYTHONS[request.param]
    if exe is None:
        missing_in_ci(f"the agent under Python {request.param}", "no such pyenv interpreter")
    return exe


@pytest.fixture
def agent(tmp_path):
    return write_agent(tmp_path)


@pytest.mark.slow
def test_agent_unpacks_once_with_bytecode_for_each_python(python, agent, tmp_path):
    code, msgs, err = run_agent(python, agent, SYNTH_JOB)
    assert code == 0 and msgs[-1]["status"] == "ok", err
    (folder,) = (tmp_path / "unpacked").iterdir()
    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert (folder / f"compiled-{tag}").is_file()
    assert list((folder / "hilbench_agent" / "__pycache__").glob(f"main.{tag}.pyc"))
    assert not [p for p in (tmp_path / "unpacked").iterdir() if p.name.startswith(".tmp-")]
    # A later start imports from the folder (its modules' __file__ say so); the zip is not touched.
    probe = subprocess.run([python, str(agent), "--probe"], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONVERBOSE="1"))
    assert probe.returncode == 0
    assert str(folder / "hilbench_agent" / "__pycache__" / f"main.{tag}.pyc") in probe.stderr


def test_agent_runs_from_the_zip_where_it_cannot_unpack(agent, tmp_path):
    code, msgs, err = run_agent(sys.executable, agent, SYNTH_JOB, env={"HILBENCH_AGENT_UNPACK": "0"})
    assert code == 0 and msgs[-1]["status"] == "ok", err
    assert not (tmp_path / "unpacked").exists()
    (tmp_path / "unpacked").write_text("in the way")  # no folder can be made there (even by root)
    code, msgs, err = run_agent(sys.executable, agent, SYNTH_JOB)
    assert code == 0 and msgs[-1]["status"] == "ok", err


def test_full_job_message_sequence(python, agent, tmp_path):
    journal = tmp_path / "j" / "run.jsonl"
    code, msgs, err = run_agent(python, agent, SYNTH_JOB, "--journal", str(journal))
    assert code == 0, err
    types = [m["type"] for m in msgs]
    # The device lock first (taken before anything loads the device), then the hello.
    assert types[:2] == ["lock", "hello"] and types[-1] == "result"
    assert msgs[0]["event"] == "acquired" and msgs[0]["waited_ns"] == 0
    for m in msgs:
        assert m["v"] == 1 and isinstance(m["t_ns"], int)
        decode_line(json.dumps(m))  # the host accepts every line
    phases = [(m["phase"], m["event"]) for m in msgs if m["type"] == "phase"]
    assert phases == [("load", "begin"), ("load", "end"), ("first", "begin"), ("first", "end"),
                      ("warmup", "begin"), ("warmup", "end"), ("timed", "begin"), ("timed", "end")]
    timed = [lat for m in msgs if m["type"] == "sample" and m["phase"] == "timed" for lat in m["latency_ns"]]
    warm = [lat for m in msgs if m["type"] == "sample" and m["phase"] == "warmup" for lat in m["latency_ns"]]
    assert len(timed) == 50 and len(warm) == 5
    assert all(isinstance(x, int) for x in timed)
    # sleeps of 0.2 +- 0.02 ms (normal, seeded) cannot take less than 0.1 ms
    assert min(timed) >= 100_000
    result = msgs[-1]
    assert result["timed"]["count"] == 50 and result["timed"]["stop_reason"] == "target"
    # t_ns is monotonic across the stream
    stamps = [m["t_ns"] for m in msgs]
    assert stamps == sorted(stamps)
    # every message is journalled, byte for byte
    assert [json.loads(line) for line in journal.read_text().splitlines()] == msgs


@pytest.mark.slow
def test_hello_describes_device(python, agent):
    code, msgs, _ = run_agent(python, agent, None, "--probe")
    assert code == 0
    hello = msgs[0]
    assert hello["type"] == "hello"
    assert hello["python"].startswith(sys.version.split()[0][:2]) or hello["python"][0] == "3"
    for key in ("agent_version", "os", "machine", "cpu_count", "backends", "memory_kb"):
        assert key in hello
    assert hello["backends"]["synthetic"]["available"] is True
    assert hello["backends"]["coreml"]["available"] is False  # not a Mac
    assert hello["emulated"] is None  # this x86 host runs natively


def test_unknown_backend_is_an_error_message(python, agent):
    code, msgs, _ = run_agent(python, agent, dict(SYNTH_JOB, backend="nope"))
    assert code == 2
    assert msgs[-1]["type"] == "error" and msgs[-1]["category"] == "backend"
    assert "nope" in msgs[-1]["message"]


def test_unknown_setting_is_refused(python, agent):
    code, msgs, _ = run_agent(python, agent, dict(SYNTH_JOB, settings={"latency": 1}))
    assert code == 2 and msgs[-1]["category"] == "backend" and "latency" in msgs[-1]["message"]


@pytest.mark.slow
def test_newer_job_version_refused(python, agent):
    code, msgs, _ = run_agent(python, agent, dict(SYNTH_JOB, v=2))
    assert code == 2 and "newer" in msgs[-1]["message"]


def test_backend_failure_mid_run(python, agent):
    job = dict(SYNTH_JOB, settings={"latency_ms": 0.1, "fail_at": 10})
    code, msgs, _ = run_agent(python, agent, job)
    assert code == 2
    assert msgs[-1]["category"] == "backend" and "invoke 10" in msgs[-1]["message"]


def test_crash_leaves_no_result(python, agent):
    job = dict(SYNTH_JOB, settings={"latency_ms": 0.1, "crash_at": 3})
    code, msgs, _ = run_agent(python, agent, job)
    assert code == 70
    assert msgs[-1]["type"] != "result"


def test_warmup_until_stable_and_time_bounds(python, agent):
    job = dict(SYNTH_JOB, settings={"latency_ms": 0.3}, warmup={"until_stable": True, "window": 5, "tolerance": 0.5},
               timed={"count": 1, "min_s": 0.1})
    code, msgs, err = run_agent(python, agent, job)
    assert code == 0, err
    result = msgs[-1]
    assert result["warmup"]["stop_reason"] == "stable"
    assert result["warmup"]["count"] >= 10  # at least two windows
    # min_s = 0.1 with 0.3 ms invokes means far more than the count of 1
    assert result["timed"]["count"] > 100
    assert result["timed"]["duration_ns"] >= 100_000_000


@pytest.mark.slow
def test_timed_max_time_caps_the_run(python, agent):
    job = dict(SYNTH_JOB, settings={"latency_ms": 1.0}, warmup={"count": 0}, timed={"count": 100000, "max_s": 0.2})
    code, msgs, _ = run_agent(python, agent, job)
    assert code == 0
    timed = msgs[-1]["timed"]
    assert timed["stop_reason"] == "max_time"
    assert 50 < timed["count"] < 250


@pytest.mark.slow
def test_paced_mode_counts_deadline_misses(python, agent):
    # 4 ms invokes at 100 fps (10 ms frames) meet every deadline ...
    ok = dict(SYNTH_JOB, settings={"latency_ms": 4}, warmup={"count": 0}, timed={"count": 20, "rate_hz": 100})
    code, msgs, _ = run_agent(python, agent, ok)
    assert code == 0
    t = msgs[-1]["timed"]
    assert t["deadline_misses"] == 0 and t["dropped_frames"] == 0
    assert 80 < t["achieved_fps"] <= 101
    # ... 15 ms invokes at 100 fps miss every one and drop frames
    slow = dict(ok, settings={"latency_ms": 15})
    code, msgs, _ = run_agent(python, agent, slow)
    t = msgs[-1]["timed"]
    assert t["deadline_misses"] == 20 and t["dropped_frames"] >= 9


@pytest.mark.slow
def test_stray_stdout_cannot_corrupt_protocol(agent, tmp_path):
    """A runtime printing to fd 1 (as C libraries do) ends up on stderr."""
    import subprocess

    code = (
        "import os, sys, runpy; sys.argv=['agent','--probe'];"
        "import hilbench_agent.protocol as p; orig=p.Channel.from_stdout.__func__;"
        "p.Channel.from_stdout=classmethod(lambda cls, j=None: (lambda ch: (os.write(1, b'NOISE\\n'), ch)[1])(orig(cls, j)));"
        "from hilbench_agent.main import main; sys.exit(main())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(agent)})
    assert proc.returncode == 0
    assert "NOISE" not in proc.stdout and "NOISE" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["type"] == "hello"


def test_too_old_python_gets_a_protocol_error(agent):
    py36 = pyenv_python("3.6")
    if py36 is None:
        missing_in_ci("the too-old-Python check", "no pyenv 3.6 interpreter")
    code, msgs, _ = run_agent(py36, agent, None, "--probe")
    assert code == 2
    assert msgs[0]["type"] == "error" and "too old" in msgs[0]["message"] and "3.6" in msgs[0]["message"]
