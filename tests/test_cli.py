"""The hilbench command end to end on the local target, with the synthetic stand-in backend
(the real runtimes are covered by test_quickstart.py)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.helpers import SYNTH, ctrl_c_mid_run

from harness import open_store
from harness.cli import main


def write_plan(tmp: Path, body: str, name: str = "plan.toml") -> Path:
    path = tmp / name
    path.write_text(body)
    return path




@pytest.mark.slow
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


@pytest.mark.slow
def test_failing_jobs_are_stored_and_the_rest_go_on(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2\nfail_at = [3, 100000]"))
    store_dir = tmp_path / "res"
    code = main(["run", str(plan), "--store", str(store_dir), "--quiet"])
    assert code == 3
    runs = open_store(store_dir).runs().set_index("status")
    assert runs.loc["error", "error_category"] == "backend"
    assert "requested failure at invoke 3" in runs.loc["error", "error_message"]
    assert runs.loc["ok", "timed_count"] == 80


@pytest.mark.slow
def test_agent_crash_is_stored_with_exit_status(tmp_path):
    plan = write_plan(tmp_path, SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2\ncrash_at = 2"))
    code = main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"])
    assert code == 3
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "agent"
    assert "exited with status 70" in run["error_message"]
    assert open_store(tmp_path / "res").samples().empty  # nothing half-written for a failed run


@pytest.mark.slow
def test_hung_agent_times_out(tmp_path):
    plan = write_plan(tmp_path, SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2\nhang_at = 2")
                      .replace("telemetry = false", "telemetry = false\ntimeout_s = 2"))
    code = main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"])
    assert code == 3
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "timeout" and "2 s" in run["error_message"]


@pytest.mark.slow
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


@pytest.mark.slow
def test_resume_skips_finished_jobs(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH)
    store_dir = str(tmp_path / "res")
    assert main(["run", str(plan), "--store", store_dir, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", str(plan), "--store", store_dir, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "0 jobs" in err and "2 already stored" in err
    assert len(open_store(store_dir).runs()) == 2


@pytest.mark.slow
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
    assert "is a file, not a results folder" in capsys.readouterr().err


@pytest.mark.slow
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
    # One session lookup for every command: a typo is an error everywhere, never "every run".
    session = open_store(store_dir).sessions().loc[0, "session_id"]
    assert main(["results", "--store", store_dir, "--session", "last", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert main(["results", "--store", store_dir, "--session", session[:10], "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    for command in (["results"], ["report", "--out", str(tmp_path / "r.html")], ["accuracy"]):
        assert main([*command, "--store", store_dir, "--session", "typo"]) == 1, command
        assert capsys.readouterr().err == f"hilbench: error: --session typo: no such session in {store_dir}\n"


def test_targets_command_validates(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text('transport = "ssh"\n')
    assert main(["targets", "--targets-dir", str(tmp_path)]) == 1
    assert "bad.toml: host" in capsys.readouterr().err


# --- the live display ----------------------------------------------------------------------------


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal; what it received is replayed by :func:`screen`."""

    def isatty(self) -> bool:
        return True


def screen(text: str) -> list[str]:
    """What a terminal shows after ``text``: a tiny emulator of the sequences the display uses
    (CR, LF, cursor up, erase line / to end of line). Anything else fails the test."""
    rows, row, col, i = [""], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            m = re.match(r"\x1b\[(\d*)([A-Za-z])", text[i:])
            assert m and m.group(2) in "AK", f"unexpected escape {text[i:i + 8]!r}"
            arg, cmd = m.group(1), m.group(2)
            if cmd == "A":
                row = max(0, row - int(arg or 1))
            elif arg == "2":
                rows[row] = ""
            else:
                rows[row] = rows[row][:col]
            i += len(m.group(0))
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            while len(rows) <= row:
                rows.append("")
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + ch + line[col + 1:]
            col += 1
        i += 1
    return [r.rstrip() for r in rows]


def _fake_job(target: str, model: str, backend: str, **settings):
    from types import SimpleNamespace

    desc = f"{model} on {target} [{backend}]"
    return SimpleNamespace(target=SimpleNamespace(name=target), model=SimpleNamespace(name=model), backend=backend,
                           settings=settings, describe=lambda: desc)


def test_live_display_keeps_one_line_per_device_with_two_devices_interleaving():
    from harness.cli.progress import LiveProgress, make_progress

    now = [100.0]
    tty = FakeTTY()
    assert isinstance(make_progress(tty), LiveProgress)
    p = LiveProgress(tty, clock=lambda: now[0], columns=100, tick_s=None)
    a1, a2 = _fake_job("jetson", "resnet", "onnxruntime"), _fake_job("jetson", "mobilenet", "onnxruntime")
    b1 = _fake_job("pi", "resnet", "tflite", threads=4)
    p.session_started("s1", [a1, a2, b1], 0)
    p.job_started(a1, "r1")
    now[0] = 101.0
    p.job_started(b1, "r2")
    p.phase(a1, "load", "begin", {})
    p.phase(b1, "warmup", "begin", {})
    now[0] = 103.5
    p.phase(a1, "timed", "begin", {})
    shown = screen(tty.getvalue())
    assert shown == ["session s1: 3 jobs on jetson, pi",
                     "jetson  1/2  resnet/onnxruntime  timed  3.5 s",
                     "pi      1/1  resnet/tflite threads=4  warmup  2.5 s",
                     ""], shown
    p.job_finished(b1, {"status": "ok", "valid": True, "result": {"timed": {"count": 50, "duration_ns": 2e9}}})
    p.job_finished(a1, {"status": "error", "error_category": "agent", "error_message": "killed"})
    p.job_started(a2, "r3")
    now[0] = 104.0
    p.phase(a2, "first", "begin", {})
    shown = screen(tty.getvalue())
    assert shown[1:3] == ["[pi 1/1] resnet on pi [tflite]: ok: 50 timed runs in 2.0 s, VALID",
                          "[jetson 1/2] resnet on jetson [onnxruntime]: FAILED (agent): killed"], shown
    assert shown[3:] == ["jetson  2/2  mobilenet/onnxruntime  first  0.5 s", "pi      1/1  finished: 1 ok", ""], shown
    p.job_finished(a2, {"status": "ok", "valid": False, "result": {"timed": {"count": 9, "duration_ns": 1e9}}})
    p.close()
    shown = screen(tty.getvalue())
    assert shown[-3:] == ["jetson  2/2  finished: 1 ok, 1 failed", "pi      1/1  finished: 1 ok", ""], shown
    assert len(shown) == 1 + 3 + 2 + 1  # header, a line per job, a line per device


def test_live_lines_fit_the_terminal_and_plain_output_has_no_escapes():
    from harness.cli.progress import LineProgress, LiveProgress, make_progress

    tty = FakeTTY()
    p = LiveProgress(tty, clock=lambda: 0.0, columns=30, tick_s=None)
    job = _fake_job("a-device-with-a-long-name", "a-model-with-a-long-name", "onnxruntime")
    p.session_started("s1", [job], 0)
    p.job_started(job, "r1")
    assert all(len(line) <= 29 for line in screen(tty.getvalue())[1:])
    plain = io.StringIO()
    q = make_progress(plain)
    assert isinstance(q, LineProgress)
    q.session_started("s1", [job], 0)
    q.job_started(job, "r1")
    q.phase(job, "timed", "begin", {})
    q.job_finished(job, {"status": "error", "error_category": "agent", "error_message": "boom"})
    assert "\x1b" not in plain.getvalue() and "\r" not in plain.getvalue()
    assert plain.getvalue().splitlines()[1] == "[1/1] a-model-with-a-long-name on a-device-with-a-long-name " \
                                               "[onnxruntime]: FAILED (agent): boom"


def test_live_and_plain_displays_show_device_text_as_escapes():
    """A phase name, an error message or a warning holding escapes: the live display writes its own cursor
    movement and nothing else; the plain one writes no control character at all (tests/test_hostile_output.py
    plays the hostile device for real)."""
    from harness.cli.progress import LineProgress, LiveProgress

    evil = "\x1b[2J\x1b]0;TITLE\x07\x1b[31m\u202e\x9b"
    shown = "\\x1b[2J\\x1b]0;TITLE\\x07\\x1b[31m\\u202e\\x9b"
    job = _fake_job("board", "model", "onnxruntime")
    tty = FakeTTY()
    for p in (LiveProgress(tty, clock=lambda: 0.0, columns=200, tick_s=None), LineProgress(plain := io.StringIO())):
        p.session_started("s1", [job], 0)
        p.job_started(job, "r1")
        p.phase(job, "timed" + evil, "begin", {})
        p.note("warning: " + evil)
        p.job_finished(job, {"status": "error", "error_category": "agent", "error_message": "boom\n" + evil})
        p.close()
    live = re.sub(r"\r?\x1b\[(?:\d+A|2K|K)", "", tty.getvalue())
    for text in (live, plain.getvalue()):
        assert not any(ch in text for ch in "\x1b\x07\x9b\u202e"), repr(text)
        assert "warning: " + shown in text and "FAILED (agent): boom\\n" + shown in text
    assert "timed" + shown in live


# --- inline targets, bytes, Ctrl-C -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("spec, message", [
    ("ssh://pi@10.0.0.5:99999", "port must be 1-65535, not 99999"),
    ("ssh://pi@10.0.0.5:0", "port must be 1-65535, not 0"),
    ("ssh://pi@10.0.0.5:ssh", "port 'ssh' is not a number"),
])
def test_inline_target_with_a_bad_port_is_a_one_line_error(tmp_path, spec, message):
    plan = write_plan(tmp_path, SYNTH)
    for command in (["run", str(plan), "--store", str(tmp_path / "res"), "--target", spec], ["doctor", spec]):
        proc = subprocess.run([sys.executable, "-m", "harness.cli", *command], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0] == f"hilbench: error: --target {spec}: {message}" + (
            " (expected ssh://user@host[:port])" if "number" in message else "")
    assert not (tmp_path / "res").exists()


@pytest.mark.slow
def test_run_summary_and_show_report_the_bytes_sent(tmp_path, capsys):
    plan = write_plan(tmp_path, SYNTH)
    store_dir = str(tmp_path / "res")
    assert main(["run", str(plan), "--store", store_dir, "--quiet"]) == 0
    assert "2 ok, 0 failed; 0 B sent to devices;" in capsys.readouterr().out  # local: models are used in place
    run_id = open_store(store_dir).runs()["run_id"].iloc[0]
    assert main(["show", run_id, "--store", store_dir]) == 0
    assert "shipped   0 B (0 bytes) sent for this run" in capsys.readouterr().out


def _committed_and_stray(store_dir: Path) -> tuple[set[str], list[Path]]:
    runs = set(open_store(store_dir).runs()["run_id"])
    stray = [p for p in store_dir.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    return runs, stray


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_mid_job_stores_the_job_as_interrupted_and_the_session_as_interrupted(tmp_path, presses):
    plan = write_plan(tmp_path, SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = [0.2, 5.0, 5.1]")
                      .replace("count = 80", "count = 3000"))
    plan.write_text(plan.read_text().replace("timed = { count = 3000 }", "timed = { count = 3000 }\ntimeout_s = 120"))
    first = write_plan(tmp_path, SYNTH.replace("count = 80", "count = 20"), name="first.toml")
    store_dir = tmp_path / "res"
    cache = tmp_path / "cache"
    root = Path(__file__).resolve().parents[1]
    # this checkout's harness and agent, not an installed copy's
    env = dict(os.environ, HILBENCH_CACHE=str(cache), PYTHONPATH=os.pathsep.join([str(root), str(root / "device_agents")]))
    # Two short jobs, then the 3-job plan in the same store: the first of those (0.2 ms x 3000) ends, the
    # second (5 ms x 3000, 15 s) is in flight when Ctrl-C comes.
    assert main(["run", str(first), "--store", str(store_dir), "--quiet"]) == 0
    def in_flight() -> bool | None:
        runs = list((store_dir / "runs").glob("*.parquet"))
        journals = list((cache / "journal").glob("*.jsonl"))
        return (len(runs) >= 3 and len(journals) >= 2 and journals[-1].stat().st_size > 0) or None

    ctrl_c_mid_run([str(plan), "--store", str(store_dir)], in_flight, presses=presses, env=env)
    store = open_store(store_dir)
    runs = store.runs()
    mine = runs[runs["session_id"] == runs["session_id"].iloc[-1]].sort_values("started_at")
    assert list(mine["status"]) == ["ok", "error"], mine[["status", "error_message"]].to_string()
    assert mine["error_category"].iloc[1] == "interrupted" and "Ctrl-C" in mine["error_message"].iloc[1]
    assert "SIGKILL" not in mine["error_message"].iloc[1]
    sessions = store.sessions().set_index("session_id")
    assert sessions.loc[mine["session_id"].iloc[0], "status"] == "interrupted"
    # The interrupted job counts as failed, with a second press too (issue 14, item 6).
    assert sessions.loc[mine["session_id"].iloc[0], ["jobs_ok", "jobs_failed"]].tolist() == [1, 1]
    assert list(sessions["status"]).count("running") == 0
    # Nothing half-written: no temporary files, and every samples file belongs to a stored run.
    committed, stray = _committed_and_stray(store_dir)
    assert stray == []
    assert {p.stem for p in (store_dir / "samples").glob("*.parquet")} <= committed
    assert len(runs) == 4  # the first plan's two jobs, then one finished and one interrupted; the third never ran


@pytest.mark.parametrize("argv", [["results", "--format", "xml"], ["bogus"], ["run", "--bogus"]])
def test_usage_errors_are_one_line_errors_with_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hilbench") and "--help" in err


def test_debug_is_taken_after_the_subcommand(tmp_path, capsys):
    # --debug: the traceback is printed (made safe: an error may quote a device), with the same exit status
    assert main(["show", "nope\x1b[2J", "--store", str(tmp_path), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "StoreError" in err and "\x1b" not in err
    assert main(["show", "nope", "--store", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1


def test_an_unexpected_exception_prints_a_safe_traceback(tmp_path, capsys, monkeypatch):
    """A bug (not a HilbenchError) is reported as one, exit 4: with --debug its traceback, device text made safe."""
    from harness.cli import app

    def boom(args):
        raise ValueError("device said \x1b[2J\x1b]0;TITLE\x07")

    monkeypatch.setattr(app, "cmd_results", boom)
    assert main(["results", "--store", str(tmp_path), "--debug"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("hilbench: internal error (a bug, please report it):")
    assert "ValueError: device said \\x1b[2J" in err and "\x1b" not in err and "\x07" not in err


def test_targets_reports_every_bad_file(tmp_path, capsys):
    (tmp_path / "a.toml").write_text('colour = "red"\n')
    (tmp_path / "b.toml").write_text("transport = \n")
    (tmp_path / "good.toml").write_text('transport = "ssh"\nhost = "pi.lab"\n')
    assert main(["targets", "--targets-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "good" in out and "2 targets valid" in out  # local and good
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "a.toml: colour: unknown key" in lines[0] and "b.toml: invalid TOML" in lines[1]


def test_warnings_during_a_run_go_above_the_live_block():
    """A warning logged by a transport mid-run (a charging phone) is a permanent line above the block,
    not text that breaks the redrawn lines."""
    import logging

    from harness.cli.progress import LiveProgress, NoteHandler

    tty = FakeTTY()
    p = LiveProgress(tty, clock=lambda: 0.0, columns=100, tick_s=None)
    job = _fake_job("phone", "mobilenet", "litert")
    p.session_started("s1", [job], 0)
    p.job_started(job, "r1")
    log = logging.getLogger("hilbench.test-notes")
    handler = NoteHandler(p)
    logging.getLogger("hilbench").addHandler(handler)
    try:
        log.warning("hilbench: notice: %s", "phone: the phone is charging")
    finally:
        logging.getLogger("hilbench").removeHandler(handler)
    assert screen(tty.getvalue()) == ["session s1: 1 jobs on phone", "hilbench: notice: phone: the phone is charging",
                                      "phone  1/1  mobilenet/litert  preparing  0.0 s", ""]
