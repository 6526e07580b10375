"""Each documented exit status, made to happen, and the docs' table against harness/cli/exits.py."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from harness.cli import app
from harness.cli.app import main
from harness.cli.exits import (
    EXIT_HANGUP,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_STATUSES,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EXIT_USER,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


def test_the_docs_table_lists_every_status_once():
    text = DOCS.read_text(encoding="utf-8").split("## Exit statuses", 1)[1].split("\n## ", 1)[0]
    documented = [int(m) for m in re.findall(r"^\| (\d+) \|", text, re.M)]
    assert documented == sorted(EXIT_STATUSES)
    assert len(set(EXIT_STATUSES)) == len(EXIT_STATUSES) == 10


def test_ok_and_user_error(tmp_path, capsys):
    assert main(["results", "--store", str(tmp_path)]) == EXIT_OK
    assert main(["show", "no-such-run", "--store", str(tmp_path)]) == EXIT_USER
    err = capsys.readouterr().err
    assert err.startswith("hilbench: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["bogus"], ["results", "--format", "xml"], ["run", "--bogus"]])
def test_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--help" in err


def test_a_regression_has_its_own_status(tmp_path, capsys):
    """What a CI gate fails on is not a user error: 5, from history --fail (compare: tests/test_compare.py)."""
    assert EXIT_REGRESSED not in (EXIT_USER, EXIT_USAGE, EXIT_JOBS_FAILED, EXIT_INTERNAL)
    nights = [5.0 * (1 + 0.01 * ((i * 7) % 5 - 2)) * (1.2 if i >= 40 else 1.0) for i in range(45)]
    csv = tmp_path / "nights.csv"
    csv.write_text("night,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(nights)), encoding="utf-8")
    assert main(["history", "--csv", str(csv), "--fail"]) == EXIT_REGRESSED
    assert main(["history", "--csv", str(csv)]) == EXIT_OK  # without --fail, a report
    assert main(["history", "--csv", str(tmp_path / "none.csv"), "--fail"]) == EXIT_USER


@pytest.mark.slow
def test_jobs_failed(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text('models = [{ name = "m", backends = ["synthetic"] }]\n[backends.synthetic]\nfail_at = 2\n'
                    '[policy]\nwarmup = 1\ntimed = { count = 5 }\ntelemetry = false\n', encoding="utf-8")
    assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == EXIT_JOBS_FAILED


def test_internal_error_is_one_line_with_a_hint_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    def boom(args):
        raise ValueError("device said \x1b[2J")

    monkeypatch.setattr(app, "cmd_results", boom)
    assert main(["results", "--store", str(tmp_path)]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "ValueError: device said \\x1b[2J" in err
    assert "--debug" in err and "\x1b" not in err
    assert main(["results", "--store", str(tmp_path), "--debug"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "\x1b" not in err


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, EXIT_TERMINATED), (signal.SIGHUP, EXIT_HANGUP)])
def test_a_run_stopped_by_sigterm_or_sighup_exits_128_plus_the_signal(tmp_path, capsys, monkeypatch, signum, status):
    """A real run (local, synthetic) that gets the signal while its first job runs: the job is stored as
    interrupted, and main says so in one line with 128 + N (tests/test_faults_run.py sends it to a real process)."""
    from harness.run.session import Runner

    real = Runner.run_one

    def run_one(self, job, transport):
        os.kill(os.getpid(), signum)  # handled in the main thread, which waits for this worker
        return real(self, job, transport)

    monkeypatch.setattr(Runner, "run_one", run_one)
    monkeypatch.setenv("HILBENCH_CACHE", str(tmp_path / "cache"))
    before = signal.signal(signum, signal.SIG_DFL)  # as hilbench gets it (pytest may run under nohup)
    try:
        plan = tmp_path / "plan.toml"
        plan.write_text('models = [{ name = "m", backends = ["synthetic"] }]\n[policy]\nwarmup = 1\n'
                        'timed = { count = 5 }\ntelemetry = false\n', encoding="utf-8")
        assert main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet"]) == status
        assert signal.getsignal(signum) is signal.SIG_DFL
    finally:
        signal.signal(signum, before)
    name = signal.Signals(signum).name
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hilbench: stopped by {name}: ")
    assert EXIT_STATUSES[status] == f"stopped by {name} (as for Ctrl-C)"


def test_interrupted(tmp_path, capsys, monkeypatch):
    def interrupt(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "cmd_results", interrupt)
    assert main(["results", "--store", str(tmp_path)]) == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
