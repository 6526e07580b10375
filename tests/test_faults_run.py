"""The session's faults (issue 14, items 1, 3, 6, 7): signals, a store that stops taking writes, a double Ctrl-C,
a dropped-and-restored connection, an agent killed, hilbench itself killed.

Each fault ends the same way: nothing lost (what finished is stored, nothing half-written: no samples or
telemetry file without its runs row, no ``.tmp``), no session left ``running``, no agent process left running,
and ``hilbench run --resume`` completing the plan. The logic runs in milliseconds through FakeTransport; the
real parts follow: real ``hilbench run`` processes sent SIGTERM, SIGHUP and SIGKILL, real agent processes, a
real OpenSSH server (marked sshd), and a small tmpfs as the store (disk full, read-only), which needs root
(``mount``): where it cannot be mounted the test skips here and fails in CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.helpers import missing_in_ci

from harness import open_store
from harness.cli import main
from harness.config.plan import Job, Plan, expand_jobs, load_plan
from harness.config.targets import Target
from harness.errors import StoreError
from harness.run.session import Progress, Runner, Stopped, run_jobs
from harness.store import Store
from harness.transport import FakeTransport
from harness.transport.fake import Delay, FakeScript, agent_run, fake_target

# Real processes, tmpfs and sshd: the whole module is in the slow tier (issue 16's fast tier stays fast).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "device_agents")]))

PLAN = """
name = "faults"
{models}
[policy]
warmup = 2
timed = {{ count = 20 }}
telemetry = false
"""


def _fake_setup(tmp_path: Path, models: int = 3) -> tuple[Plan, list[Job], Store, Target]:
    body = "".join(f'[[models]]\nname = "m{i}"\nbackends = ["synthetic"]\n' for i in range(1, models + 1))
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(models=body))
    plan = load_plan(path)
    target = fake_target("bench")
    return plan, expand_jobs(plan, {}, only_targets=[target]), open_store(tmp_path / "store"), target


def _rows(store: Store) -> list[dict[str, Any]]:
    runs = store.runs().sort_values("started_at")
    return list(runs.astype(object).where(runs.notna(), None).to_dict("records"))


def assert_nothing_half_written(store_dir: Path, reserves: bool = False) -> None:
    """Every samples, telemetry and accuracy file belongs to a stored run, and no temporary file is left (with
    ``reserves``, but for the room a session reserved and could not give back: the store was read-only)."""
    committed = set(open_store(store_dir).runs()["run_id"])
    for table in ("samples", "telemetry", "accuracy"):
        stems = {p.stem for p in (store_dir / table).glob("*.parquet")}
        assert stems <= committed, f"{table} files without their runs row: {stems - committed}"
    left = [p for p in store_dir.rglob("*") if p.name.endswith(".tmp")]
    assert not [p for p in left if not (reserves and p.name.endswith(".reserve.tmp"))], left


def assert_plan_complete(store_dir: Path, keys: int) -> None:
    runs = open_store(store_dir).runs()
    assert runs.loc[runs["status"] == "ok", "job_key"].nunique() == keys, runs[["status", "error_message"]]


def assert_no_session_running(store_dir: Path) -> None:
    statuses = list(open_store(store_dir).sessions()["status"])
    assert "running" not in statuses, statuses


# ---------------------------------------------------------------- item 6: a double Ctrl-C counts the job in flight


def test_a_second_ctrl_c_still_counts_the_job_in_flight_as_failed(tmp_path: Path) -> None:
    """The second press stops the waiting: the session row is written while the worker still stores its job.
    The row counts that job as failed then, and again once the job's interrupted row is stored."""
    from harness.run import session

    plan, jobs, store, target = _fake_setup(tmp_path, models=2)
    lines = agent_run()
    fake = FakeTransport(target, [FakeScript([*lines[:6], Delay(60.0), *lines[6:]])])

    class PressTwice(Progress):
        """Presses Ctrl-C twice from the worker (while it is in a job), the second once the first is being
        handled, and holds the worker until the session row is written."""

        def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None:
            if phase != "warmup" or event != "begin":
                return
            os.kill(os.getpid(), signal.SIGINT)
            _wait(lambda: not session._handler.armed)  # the first press is being handled (two pending would be one)
            os.kill(os.getpid(), signal.SIGINT)
            _wait(lambda: any(p.stat().st_mtime_ns > self.opened
                              for p in (tmp_path / "store" / "sessions").glob("*.parquet")))

        def session_started(self, session_id: str, jobs: list[Job], skipped: int) -> None:
            self.opened = time.time_ns()

    assert threading.current_thread() is threading.main_thread()
    result = run_jobs(jobs, store, plan=plan, transports=lambda t: fake, progress=PressTwice())
    assert result.interrupted and result.signal == signal.SIGINT
    assert result.runs == [] and result.unfinished == 1  # the worker had not stored its job yet
    closed = open_store(store.root).sessions().iloc[0]
    assert closed["status"] == "interrupted" and closed["jobs_failed"] == 1 and closed["jobs_ok"] == 0
    _join_workers()
    (row,) = _rows(store)
    assert row["error_category"] == "interrupted" and row["error_message"] == "the run was interrupted (Ctrl-C)"
    after = open_store(store.root).sessions().iloc[0]
    assert after["status"] == "interrupted" and after["jobs_failed"] == 1 and after["jobs_ok"] == 0


def _wait(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def _join_workers() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("hilbench-device"):
            thread.join(30)
            assert not thread.is_alive()


# ---------------------------------------------------------------- item 1: signals, in-process and off the main thread


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_run_like_ctrl_c(tmp_path: Path, signum: int) -> None:
    plan, jobs, store, target = _fake_setup(tmp_path, models=3)
    lines = agent_run()
    fake = FakeTransport(target, [FakeScript(lines), FakeScript([*lines[:6], Delay(60.0), *lines[6:]])])
    before = signal.signal(signum, signal.SIG_DFL)  # pytest under nohup: the default, as hilbench gets it

    class Kill(Progress):
        def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None:
            if len(fake.started) == 2 and phase == "warmup" and event == "begin":
                os.kill(os.getpid(), signum)

    try:
        with pytest.raises(Stopped) as stopped:  # what the CLI turns into 128 + N (tests/test_exits.py)
            _raise_if_stopped(run_jobs(jobs, store, plan=plan, transports=lambda t: fake, progress=Kill()))
        assert signal.getsignal(signum) is signal.SIG_DFL  # the handler is the caller's again
    finally:
        signal.signal(signum, before)
    assert stopped.value.signum == signum
    rows = _rows(store)
    name = signal.Signals(signum).name
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[1]["error_category"] == "interrupted" and rows[1]["error_message"] == f"the run was interrupted ({name})"
    session = store.sessions().iloc[0]
    assert (session["status"], session["jobs_ok"], session["jobs_failed"]) == ("interrupted", 1, 1)
    assert len(fake.started) == 2  # the third job never started
    # --resume completes the plan.
    fake2 = FakeTransport(target, [FakeScript(lines)])
    run_jobs(jobs, store, plan=plan, transports=lambda t: fake2, resume=True)
    assert_plan_complete(store.root, 3)
    assert len(fake2.started) == 2


def _raise_if_stopped(result: Any) -> None:
    if result.signal is not None:
        raise Stopped(result.signal)


def test_run_jobs_off_the_main_thread_installs_no_handler_and_stops_through_the_runner(tmp_path: Path) -> None:
    plan, jobs, store, target = _fake_setup(tmp_path, models=2)
    lines = agent_run()
    fake = FakeTransport(target, [FakeScript([*lines[:6], Delay(60.0), *lines[6:]])])
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    runners: list[Runner] = []
    out: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: out.setdefault("result", run_jobs(
        jobs, store, plan=plan, transports=lambda t: fake, on_runner=runners.append)))
    worker.start()
    _wait(lambda: fake.journals and len(next(iter(fake.journals.values()))) >= 6)
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # nothing installed from a worker thread
    runners[0].interrupt("SIGTERM")  # what an API user's own handler would do
    worker.join(30)
    assert not worker.is_alive() and out["result"].interrupted is False  # no signal reached run_jobs itself
    (row,) = _rows(store)
    assert row["error_message"] == "the run was interrupted (SIGTERM)"
    assert store.sessions().iloc[0]["status"] == "finished"


def test_a_display_that_cannot_be_written_costs_no_job(tmp_path: Path) -> None:
    """After SIGHUP the terminal is gone: writing the progress raises EIO. The display goes quiet; every job is
    stored once (never a second row for the job whose display failed)."""
    plan, jobs, store, target = _fake_setup(tmp_path, models=3)

    class Hungup(Progress):
        def job_finished(self, job: Job, row: dict[str, Any]) -> None:
            raise OSError(5, "Input/output error")

    result = run_jobs(jobs, store, plan=plan, progress=Hungup(),
                      transports=lambda t: FakeTransport(target, [FakeScript(agent_run())]))
    rows = _rows(store)
    assert [r["status"] for r in rows] == ["ok"] * 3 and len(result.runs) == 3
    assert len({r["job_key"] for r in rows}) == 3


# ---------------------------------------------------------------- item 7: a restored connection is said


@pytest.mark.parametrize("scripts, recovery", [
    ([FakeScript(agent_run(), drop_after=3, finished_on_device=True, runs_on_s=0.1)], "read back from the agent's journal"),
    ([FakeScript(agent_run(), drop_after=4), FakeScript(agent_run())], "the job ran again from the start"),
])
def test_a_restored_connection_is_counted_warned_and_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           caplog: pytest.LogCaptureFixture,
                                                           scripts: list[FakeScript], recovery: str) -> None:
    plan, jobs, store, target = _fake_setup(tmp_path, models=2)
    fake = FakeTransport(target, scripts + [FakeScript(agent_run())] * 2 if len(scripts) == 1 else scripts)
    with caplog.at_level("WARNING", logger="hilbench"):
        run_jobs(jobs, store, plan=plan, transports=lambda t: fake)
    first, second = _rows(store)
    assert first["status"] == "ok" and first["reconnects"] == 1
    assert second["status"] == "ok" and second["reconnects"] == 0  # the next job had no drop
    warnings = json.loads(first["verdict"])["warnings"]
    (said,) = [w for w in warnings if w["code"] == "reconnected"]
    assert said["message"].startswith("the connection to the device dropped 1 time during this run and was restored")
    assert recovery in said["message"]
    assert not [w for w in json.loads(second["verdict"])["warnings"] if w["code"] == "reconnected"]
    # Said during the run, too.
    assert [r.getMessage() for r in caplog.records] == ["bench: the connection dropped and was restored "
                                                        "(1 time this session)"]
    assert main(["show", first["run_id"], "--store", str(store.root)]) == 0
    shown = capsys.readouterr().out
    assert "network   the connection dropped 1 time during this run and was restored" in shown
    assert "warning: the connection to the device dropped 1 time" in shown
    assert main(["results", "--store", str(store.root)]) == 0
    assert "warn" in capsys.readouterr().out


def test_a_job_failing_after_drops_counts_its_reconnects(tmp_path: Path) -> None:
    plan, jobs, store, target = _fake_setup(tmp_path, models=1)
    fake = FakeTransport(target, [FakeScript(agent_run(), drop_after=4)])
    run_jobs(jobs, store, plan=plan, transports=lambda t: fake)
    (row,) = _rows(store)
    assert row["error_category"] == "transport" and row["reconnects"] == Runner.max_reruns + 1
    assert row["verdict"] is None


def test_a_store_written_before_the_reconnects_column_still_reads(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    plan, jobs, store, target = _fake_setup(tmp_path, models=1)
    run_jobs(jobs, store, plan=plan, transports=lambda t: FakeTransport(target, [FakeScript(agent_run())]))
    (path,) = (store.root / "runs").glob("*.parquet")
    old = pq.read_table(path)
    pq.write_table(old.drop_columns(["reconnects"]), path)  # as an older hilbench wrote it
    assert "reconnects" not in pq.read_schema(path).names
    (row,) = _rows(open_store(store.root))
    assert row["reconnects"] is None and row["status"] == "ok"
    assert main(["show", row["run_id"], "--store", str(store.root)]) == 0


# ---------------------------------------------------------------- item 3: the store refuses a write mid-run


class _Refusing:
    """Makes ``store.write_table`` refuse writes (as a full disk would) from a given point on."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch, refuse: Callable[[str, str], bool]) -> None:
        self.real = store.write_table
        self.refuse = refuse
        self.refused: list[tuple[str, str]] = []
        monkeypatch.setattr(store, "write_table", self)

    def __call__(self, table: str, name: str, rows: Any) -> Path:
        if self.refuse(table, name):
            self.refused.append((table, name))
            raise StoreError(f"{self.real.__self__.root / table / name}.parquet: cannot write "
                             "(No space left on device)")
        return self.real(table, name, rows)


def test_a_refused_samples_write_stores_the_job_as_a_store_error_and_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, jobs, store, target = _fake_setup(tmp_path, models=3)
    fake = FakeTransport(target, [FakeScript(agent_run(extra=[_telemetry()]))])
    # The second job's telemetry is refused after its samples were written: they must not stay as an orphan.
    refusing = _Refusing(store, monkeypatch, lambda table, name: table == "telemetry" and len(fake.started) == 2)
    with pytest.raises(StoreError) as err:
        run_jobs(jobs, store, plan=plan, transports=lambda t: fake)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{store.root}: the results store stopped taking writes")
    assert "No space left on device" in message
    assert "kept 1 finished job and 1 stored as errors" in message and "1 job not run" in message
    assert "the session is closed as failed" in message and "--resume" in message
    assert [t for t, _ in refusing.refused] == ["telemetry"]
    first, second = _rows(store)
    assert first["status"] == "ok"
    assert second["error_category"] == "store" and "No space left on device" in second["error_message"]
    assert "its measurements are lost" in second["error_message"]
    assert len(fake.started) == 2  # the third job never started
    assert_nothing_half_written(store.root)
    assert not (store.root / "samples" / f"{second['run_id']}.parquet").exists()
    session = store.sessions().iloc[0]
    assert (session["status"], session["jobs_ok"], session["jobs_failed"]) == ("failed", 1, 1)
    monkeypatch.undo()
    run_jobs(jobs, open_store(store.root), plan=plan, resume=True,
             transports=lambda t: FakeTransport(target, [FakeScript(agent_run())]))
    assert_plan_complete(store.root, 3)


def test_a_store_that_takes_nothing_more_stops_the_run_with_one_line(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    plan, jobs, store, target = _fake_setup(tmp_path, models=3)
    fake = FakeTransport(target, [FakeScript(agent_run())])
    _Refusing(store, monkeypatch, lambda table, name: len(fake.started) >= 2)
    with pytest.raises(StoreError) as err:
        run_jobs(jobs, store, plan=plan, transports=lambda t: fake)
    message = str(err.value)
    assert "\n" not in message and "kept 1 finished job;" in message
    assert "lost the results of m2 on bench [synthetic]" in message and "1 job not run" in message
    assert "the session row could not be closed either" in message
    (row,) = _rows(store)
    assert row["status"] == "ok"
    assert_nothing_half_written(store.root)


def _telemetry() -> dict[str, Any]:
    return {"v": 1, "type": "telemetry", "t_ns": 1_000_000_000,
            "readings": [{"t_ns": 1_000_000_000, "sensor": "cpu_temp", "value": 41.0, "unit": "C", "source": "fake"}]}


# ---------------------------------------------------------------- real hilbench processes, real agents


SYNTH = """
name = "faults"
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = {latencies}
jitter_ms = 0.01
[policy]
warmup = 3
timed = {{ count = {count} }}
telemetry = false
timeout_s = 120
"""


def _plan(tmp_path: Path, latencies: list[float], count: int, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(SYNTH.format(latencies=json.dumps(latencies), count=count))
    return path


def local_agents(cache: Path) -> list[int]:
    """Pids of live agent processes run from ``cache`` (the local transport's HILBENCH_CACHE)."""
    needle = str(cache).encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmd and b".pyz" in cmd and state != "Z":
            pids.append(int(d.name))
    return pids


@contextlib.contextmanager
def hilbench_run(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _in_second_job(store_dir: Path, cache: Path) -> Callable[[], bool]:
    """True once the first job is stored and the second job's agent is measuring (its journal has lines)."""
    def ready() -> bool:
        journals = sorted((cache / "journal").glob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
        return (len(list((store_dir / "runs").glob("*.parquet"))) == 1 and len(journals) >= 2
                and journals[-1].stat().st_size > 0 and bool(local_agents(cache)))
    return ready


def _wait_proc(proc: subprocess.Popen[str], predicate: Callable[[], Any], timeout: float = 90.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_of_a_real_run(tmp_path: Path, signum: int, status: int) -> None:
    plan = _plan(tmp_path, [0.2, 5.0, 0.3], 500)  # the second job takes 2.5 s: the signal comes during it
    store_dir, cache = tmp_path / "res", tmp_path / "cache"
    env = dict(CHILD_ENV, HILBENCH_CACHE=str(cache))
    with hilbench_run([str(plan), "--store", str(store_dir), "--quiet"], env) as proc:
        _wait_proc(proc, _in_second_job(store_dir, cache))
        agents = local_agents(cache)
        time.sleep(0.3)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert proc.returncode == status, err
    assert err.splitlines() == [f"hilbench: stopped by {name}: the jobs in flight are stored as interrupted and "
                                "their agents stopped; `hilbench run --resume` runs what is missing"]
    assert "1 ok, 1 failed, interrupted" in out
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["ok", "error"]
    assert runs["error_message"].iloc[1] == f"the run was interrupted ({name})"
    session = open_store(store_dir).sessions().iloc[0]
    assert (session["status"], session["jobs_ok"], session["jobs_failed"]) == ("interrupted", 1, 1)
    assert agents and not local_agents(cache)  # the agent was stopped, not left measuring
    assert_nothing_half_written(store_dir)
    # --resume right after measures alone, and completes the plan.
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir),
                           "--quiet", "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_plan_complete(store_dir, 3)
    assert_no_session_running(store_dir)
    assert not local_agents(cache)


@pytest.mark.slow
def test_sigkill_of_hilbench_then_resume(tmp_path: Path) -> None:
    plan = _plan(tmp_path, [0.2, 3.0, 0.3], 400)
    store_dir, cache = tmp_path / "res", tmp_path / "cache"
    env = dict(CHILD_ENV, HILBENCH_CACHE=str(cache))
    with hilbench_run([str(plan), "--store", str(store_dir), "--quiet"], env) as proc:
        _wait_proc(proc, _in_second_job(store_dir, cache))
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # What finished is stored; the job in flight is not, and left nothing half-written.
    runs = open_store(store_dir).runs()
    assert list(runs["status"]) == ["ok"]
    # Only the room the session reserved in the store is left (a SIGKILL gives nothing a chance to run).
    assert_nothing_half_written(store_dir, reserves=True)
    # The orphaned local agent (its own session, so SIGKILL of hilbench never reached it) ends its job; the
    # device lock (issue 14, item 2) is what keeps a --resume from measuring beside it.
    _wait(lambda: not local_agents(cache), timeout=60)
    proc2 = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir),
                            "--quiet", "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert proc2.returncode == 0, proc2.stderr
    assert_plan_complete(store_dir, 3)
    assert not local_agents(cache)
    sessions = open_store(store_dir).sessions()
    assert sessions["status"].iloc[-1] == "finished"
    # The killed session's own row cannot have been closed by it: issue 14, item 4 shows it as abandoned.


@pytest.mark.slow
def test_agent_killed_mid_job_is_stored_and_resume_runs_it_again(tmp_path: Path) -> None:
    plan = _plan(tmp_path, [0.2, 5.0, 0.3], 600)
    store_dir, cache = tmp_path / "res", tmp_path / "cache"
    env = dict(CHILD_ENV, HILBENCH_CACHE=str(cache))
    with hilbench_run([str(plan), "--store", str(store_dir), "--quiet"], env) as proc:
        (agent,) = _wait_proc(proc, lambda: _in_second_job(store_dir, cache)() and local_agents(cache))
        os.kill(agent, signal.SIGKILL)  # as the OOM killer would
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["ok", "error", "ok"]
    assert runs["error_category"].iloc[1] == "agent" and "killed by SIGKILL" in runs["error_message"].iloc[1]
    assert_no_session_running(store_dir)
    assert_nothing_half_written(store_dir)
    assert main(["run", str(plan), "--store", str(store_dir), "--quiet", "--resume"]) == 0
    assert_plan_complete(store_dir, 3)
    assert not local_agents(cache)


# ---------------------------------------------------------------- item 3 for real: a small tmpfs as the store


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        missing_in_ci("the disk-full tests", f"cannot mount a tmpfs ({proc.stderr.strip() or 'mount failed'}): "
                      "they need root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.mark.slow
def test_disk_full_mid_run_stores_the_job_as_an_error_and_resume_completes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A tmpfs of 512 KiB: the first job fits, the second's samples (200,000 of them, ~1.2 MB) do not; its runs
    row (~60 kB) still does, and so does the session's."""
    monkeypatch.setenv("HILBENCH_CACHE", str(tmp_path / "cache"))
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH.format(latencies="[2.0, 0.0, 2.5]", count=200000).replace(
        "jitter_ms = 0.01\n", "").replace("timed = { count = 200000 }", "timed = { count = 200000, max_s = 0.6 }"))
    with small_tmpfs(tmp_path / "disk", "512k") as disk:
        store_dir = disk / "res"
        code = main(["run", str(plan), "--store", str(store_dir), "--quiet"])
        err = capsys.readouterr().err
        assert code == 1
        (line,) = err.splitlines()
        assert line.startswith(f"hilbench: error: {store_dir}: the results store stopped taking writes during the run")
        assert "No space left on device" in line and "kept 1 finished job and 1 stored as errors" in line
        assert "--resume" in line
        runs = open_store(store_dir).runs().sort_values("started_at")
        assert list(runs["status"]) == ["ok", "error"] and runs["error_category"].iloc[1] == "store"
        assert str(store_dir / "samples") in runs["error_message"].iloc[1]
        assert_nothing_half_written(store_dir)
        assert list(open_store(store_dir).sessions()["status"]) == ["failed"]
        _remount(disk, "size=8m")  # room made
        assert main(["run", str(plan), "--store", str(store_dir), "--quiet", "--resume"]) == 0
        assert_plan_complete(store_dir, 3)
        assert_no_session_running(store_dir)
        assert_nothing_half_written(store_dir)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_store_that_takes_no_more_writes_stops_the_run_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fault: str) -> None:
    """The store fills up completely (or turns read-only) while the second job measures. Full: the room the
    session kept (Store.reserve) takes the job's error row and the closed session row. Read-only: nothing can be
    written, the job's results are lost and said so. One line says what was kept and lost; freeing the disk and
    --resume complete the plan."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HILBENCH_CACHE", str(cache))
    plan = _plan(tmp_path, [0.2, 4.0, 0.3], 500)
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        store_dir = disk / "res"
        filler = disk / "filler"

        def break_the_disk() -> None:
            _wait(lambda: _in_second_job(store_dir, cache)(), timeout=60)
            if fault == "full":
                with open(filler, "wb") as f, contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 65536)
            else:
                _remount(disk, "ro")

        breaker = threading.Thread(target=break_the_disk, daemon=True)
        breaker.start()
        code = main(["run", str(plan), "--store", str(store_dir), "--quiet"])
        breaker.join(10)
        err = capsys.readouterr().err
        assert code == 1, err
        (line,) = err.splitlines()
        why = "No space left on device" if fault == "full" else "Read-only file system"
        assert line.startswith(f"hilbench: error: {store_dir}: the results store stopped taking writes") and why in line
        assert "1 job not run" in line and "--resume" in line
        assert not local_agents(cache)
        runs = open_store(store_dir).runs().sort_values("started_at")
        if fault == "full":
            assert "kept 1 finished job and 1 stored as errors" in line and "the session is closed as failed" in line
            assert list(runs["status"]) == ["ok", "error"] and runs["error_category"].iloc[1] == "store"
            assert list(open_store(store_dir).sessions()["status"]) == ["failed"]
            assert not list((store_dir / "sessions").glob(".*.tmp"))  # the reserve was used
            filler.unlink()
        else:
            assert "kept 1 finished job;" in line and "lost the results of fake on local [synthetic" in line
            assert "the session row could not be closed either" in line
            assert list(runs["status"]) == ["ok"]
            _remount(disk, "rw")
            # The session row stays `running` (nothing could be written): issue 14, item 4 shows it as abandoned.
        assert_nothing_half_written(store_dir, reserves=fault != "full")
        assert main(["run", str(plan), "--store", str(store_dir), "--quiet", "--resume"]) == 0
        assert_plan_complete(store_dir, 3)
        if fault == "full":
            assert_no_session_running(store_dir)


# ---------------------------------------------------------------- over a real OpenSSH server (marked sshd)


def _ssh_setup(tmp_path: Path, dev: Any, latencies: list[float], count: int) -> tuple[Path, Path]:
    tdir = tmp_path / "targets"
    tdir.mkdir(exist_ok=True)
    (tdir / "dev.toml").write_text(dev.target_toml("dev", python=sys.executable))
    plan = _plan(tmp_path, latencies, count)
    plan.write_text('targets = ["dev"]\n' + plan.read_text())
    return plan, tdir


def _device_pidfiles(dev: Any) -> list[Path]:
    return sorted((dev.folder / "device-cache" / "journal").glob("*.pid"))


@pytest.mark.slow
@pytest.mark.usefixtures("own_ssh_dir")
def test_sigterm_over_ssh_kills_the_agent_on_the_device_and_resume_completes(servers: Any, tmp_path: Path) -> None:
    from support.sshd import agents_of

    dev = servers("dev")
    plan, tdir = _ssh_setup(tmp_path, dev, [0.3, 5.0, 0.4], 500)
    store_dir = tmp_path / "res"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(CHILD_ENV, HOME=str(home))  # the child never reads the user's ~/.ssh

    def agent_in_flight() -> int | None:
        pidfiles = _device_pidfiles(dev)
        if len(list((store_dir / "runs").glob("*.parquet"))) != 1 or len(pidfiles) != 1:
            return None
        fields = pidfiles[0].read_text().split()
        return int(fields[1]) if len(fields) > 1 else None

    with hilbench_run([str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"], env) as proc:
        agent = _wait_proc(proc, agent_in_flight)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert len(err.splitlines()) == 1 and err.startswith("hilbench: stopped by SIGTERM: ")
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["ok", "error"]
    assert runs["error_message"].iloc[1] == "the run was interrupted (SIGTERM)"
    assert list(open_store(store_dir).sessions()["status"]) == ["interrupted"]
    # The agent is gone from the device (its process group killed there), not left measuring beside --resume.
    _wait(lambda: not os.path.exists(f"/proc/{agent}")
          or Path(f"/proc/{agent}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", timeout=10)
    assert not agents_of(dev) and not _device_pidfiles(dev)
    assert_nothing_half_written(store_dir)
    assert main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet", "--resume"]) == 0
    assert_plan_complete(store_dir, 3)
    assert_no_session_running(store_dir)
    assert not agents_of(dev)


@pytest.mark.slow
@pytest.mark.usefixtures("own_ssh_dir")
def test_a_connection_dropped_and_restored_over_ssh_is_said_in_the_run(servers: Any, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    dev = servers("dev")
    plan, tdir = _ssh_setup(tmp_path, dev, [2.0], 700)
    store_dir = tmp_path / "res"
    out: dict[str, int] = {}
    thread = threading.Thread(target=lambda: out.setdefault("code", main(
        ["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir)])))
    thread.start()
    _wait(lambda: _device_pidfiles(dev))
    time.sleep(0.3)
    assert dev.kill_connections() >= 1  # the network drops; the agent runs on on the device
    thread.join(90)
    assert not thread.is_alive() and out["code"] == 0
    err = capsys.readouterr().err
    assert "dev: the connection dropped and was restored (1 time this session)" in err
    (row,) = _rows(open_store(store_dir))
    assert row["status"] == "ok" and row["timed_count"] == 700 and row["reconnects"] == 1
    (said,) = [w for w in json.loads(row["verdict"])["warnings"] if w["code"] == "reconnected"]
    assert "read back from the agent's journal on the device" in said["message"]
    assert main(["show", row["run_id"], "--store", str(store_dir)]) == 0
    assert "network   the connection dropped 1 time during this run and was restored" in capsys.readouterr().out
    assert_no_session_running(store_dir)
