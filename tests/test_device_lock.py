"""One measurement per device (issue 14, item 2): the lock the agent holds on the device for the length of a job.

Agent level, with real agent processes under Python 3.7 and this host's Python: a second agent waits and says for
whom, measures only after the first let go, fails at once with ``wait_s = 0``, gives up at its wait, takes over the
moment the holder is SIGKILLed, stops on SIGTERM while waiting; the lock is free after a failed, interrupted or
killed job; two users share it; a planted symlink is refused. Host level: the ``lock`` message's checks and limits,
the job's row and progress lines, the job timeout paused while waiting (FakeTransport). End to end: two real
``hilbench run`` processes on the local target and over a real sshd (two stores, two workdirs), whose measured
windows never overlap; ``--no-wait``; the holder SIGKILLed; the lock released after a failed job and after Ctrl-C.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hilbench_agent import devicelock
from support.helpers import ctrl_c_mid_run, missing_in_ci, pyenv_python, write_agent

from harness import open_store
from harness.agent.lock import describe_holder
from harness.agent.validate import MAX_LOCK_RECORD_VALUES, Limits, MessageChecker
from harness.config.plan import expand_jobs, load_plan
from harness.errors import ConfigError, MessageError
from harness.run.jobrun import JobRun, Progress
from harness.run.session import run_jobs
from harness.transport.fake import Delay, FakeScript, FakeTransport, agent_run, fake_target

# Real processes, tmpfs and sshd: the whole module is in the slow tier (issue 16's fast tier stays fast).
pytestmark = pytest.mark.slow

LOCK = devicelock.LOCK_NAME
PYTHONS = {"3.7": pyenv_python("3.7"), "host": sys.executable}


# ------------------------------------------------------------------------------------------ helpers
def job(run_id: str, session: str, *, wait_s: float = 60.0, **timed: Any) -> dict[str, Any]:
    """A synthetic job whose timed phase lasts ``min_s`` (default 1.5 s) at ~1 ms an invoke."""
    settings = {"latency_ms": 1.0, "seed": 1}
    settings.update({k: timed.pop(k) for k in ("hang_at", "fail_at") if k in timed})
    return {"v": 1, "job_id": run_id, "backend": "synthetic", "settings": settings, "warmup": {"count": 3},
            "timed": {"count": 10, "min_s": 1.5, "max_s": 30, **timed},
            "lock": {"wait_s": wait_s, "owner": {"host": "host-" + session, "host_pid": 4242, "session": session,
                                                 "target": "local"}}}


def start(python: str, agent: Path, payload: dict[str, Any], lock_dir: Path, **popen: Any) -> subprocess.Popen[str]:
    proc = subprocess.Popen([python, str(agent), "--job", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HILBENCH_LOCK_DIR": str(lock_dir)},
                            **popen)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(payload) + "\n")
    proc.stdin.close()
    proc.stdin = None  # communicate() must not flush it
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, list[dict[str, Any]], str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, [json.loads(line) for line in out.splitlines() if line.strip()], err


def record(lock_dir: Path) -> dict[str, Any] | None:
    try:
        text = (lock_dir / LOCK).read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return None
    return json.loads(text) if text.strip() else None


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def held_by(lock_dir: Path, run_id: str) -> dict[str, Any]:
    return wait_for(lambda: (r := record(lock_dir)) is not None and r.get("run_id") == run_id and r,
                    f"run {run_id} to hold the lock")


def released(lock_dir: Path) -> bool:
    """The lock is free, and any owner record left in it (an agent killed with SIGKILL cannot empty it) names a
    process that is gone."""
    left = record(lock_dir)
    if left is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(left["pid"], 0)
    return lock_is_free(lock_dir)


def lock_is_free(lock_dir: Path) -> bool:
    """Whether nobody holds the lock now (checked by taking it for a moment)."""
    with open(lock_dir / LOCK, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def sample_window(msgs: list[dict[str, Any]]) -> tuple[int, int]:
    """[first start, last end] of every sample the agent sent (the device's monotonic clock)."""
    starts, ends = [], []
    for m in msgs:
        if m["type"] == "sample":
            for off, lat in zip(m["offset_ns"], m["latency_ns"], strict=True):
                starts.append(m["t0_ns"] + off)
                ends.append(m["t0_ns"] + off + lat)
    return min(starts), max(ends)


@pytest.fixture(params=sorted(PYTHONS))
def python(request: pytest.FixtureRequest) -> str:
    exe = PYTHONS[request.param]
    if exe is None:
        missing_in_ci(f"the agent under Python {request.param}", "no such pyenv interpreter")
    return exe


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    return write_agent(tmp_path)


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "device-lock"
    folder.mkdir()
    return folder


# ------------------------------------------------------------------------------------------ the agent
@pytest.mark.slow
def test_a_second_agent_waits_names_the_holder_and_measures_after_it(python: str, agent: Path, lock_dir: Path) -> None:
    first = start(python, agent, job("A", "sA"), lock_dir)
    mine = held_by(lock_dir, "A")
    assert mine["session"] == "sA" and mine["host"] == "host-sA" and mine["pid"] == first.pid
    assert stat.S_IMODE((lock_dir / LOCK).stat().st_mode) == 0o666  # any user of the device can take it
    second = start(python, agent, job("B", "sB"), lock_dir)
    code_a, msgs_a, err_a = finish(first)
    code_b, msgs_b, err_b = finish(second)
    assert code_a == 0 and code_b == 0, err_a + err_b
    kinds = [m["type"] for m in msgs_b]
    assert kinds[:3] == ["lock", "lock", "hello"], kinds[:5]
    wait, got = msgs_b[0], msgs_b[1]
    assert wait["event"] == "wait" and wait["holder"]["session"] == "sA" and wait["holder"]["run_id"] == "A"
    assert wait["holder"]["pid"] == first.pid and wait["path"] == str(lock_dir / LOCK)
    assert got["event"] == "acquired" and got["waited_ns"] > 0 and got["waited_for"]["session"] == "sA"
    # B measured nothing before A's last message (its result, sent before A let go) ...
    assert got["t_ns"] >= msgs_a[-1]["t_ns"] and msgs_a[-1]["type"] == "result"
    # ... so their measured windows (every sample, on the device's clock) never overlap.
    a0, a1 = sample_window(msgs_a)
    b0, b1 = sample_window(msgs_b)
    assert a1 <= b0, (a0, a1, b0, b1)
    assert record(lock_dir) is None and lock_is_free(lock_dir)  # emptied and released at the end


@pytest.mark.slow
def test_no_wait_fails_at_once_naming_the_holder(python: str, agent: Path, lock_dir: Path) -> None:
    first = start(python, agent, job("A", "sA", hang_at=5), lock_dir)
    try:
        held_by(lock_dir, "A")
        second = start(python, agent, job("B", "sB", wait_s=0), lock_dir)
        code, msgs, err = finish(second)
        assert first.poll() is None  # B failed while A still held the device
    finally:
        first.kill()
        first.wait()
    assert code == 2, err
    assert [m["type"] for m in msgs] == ["lock", "error"]
    assert msgs[1]["category"] == "busy"
    message = msgs[1]["message"]
    assert message.startswith("the device is in use by session sA (host host-sA, hilbench pid 4242, run A; agent pid ")
    assert message.endswith("not waiting (policy.lock_wait_s)") and "\n" not in message


@pytest.mark.slow
def test_a_wait_ends_at_wait_s_and_sigterm_ends_it_sooner(agent: Path, lock_dir: Path) -> None:
    first = start(sys.executable, agent, job("A", "sA", hang_at=5), lock_dir)
    try:
        held_by(lock_dir, "A")
        code, msgs, _ = finish(start(sys.executable, agent, job("B", "sB", wait_s=1), lock_dir))
        assert code == 2 and msgs[-1]["category"] == "busy"
        assert "session sA" in msgs[-1]["message"] and msgs[-1]["message"].endswith("gave up after 1 s (policy.lock_wait_s)")
        waiter = start(sys.executable, agent, job("C", "sC", wait_s=600), lock_dir)
        assert waiter.stdout is not None
        assert json.loads(waiter.stdout.readline())["event"] == "wait"  # it waits ...
        waiter.send_signal(signal.SIGTERM)  # ... and a stop (the host's, or the device's shutdown) ends the wait
        code, msgs, _ = finish(waiter)
        assert code == 2 and msgs[-1]["category"] == "interrupted"
        assert first.poll() is None and record(lock_dir)["run_id"] == "A"  # the holder's lock untouched
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_the_waiter_takes_over_when_the_holder_is_killed(python: str, agent: Path, lock_dir: Path) -> None:
    first = start(python, agent, job("A", "sA", hang_at=5), lock_dir)
    held_by(lock_dir, "A")
    second = start(python, agent, job("B", "sB", min_s=0.2), lock_dir)
    assert second.stdout is not None
    assert json.loads(second.stdout.readline())["holder"]["run_id"] == "A"
    first.kill()  # SIGKILL: no clean-up runs; the kernel releases the flock
    first.wait()
    code, msgs, err = finish(second)
    assert code == 0, err
    got = msgs[0]
    assert got["event"] == "acquired" and got["waited_for"]["run_id"] == "A"
    assert msgs[-1]["type"] == "result"
    assert record(lock_dir) is None and lock_is_free(lock_dir)


@pytest.mark.slow
def test_the_lock_is_released_after_a_failed_an_interrupted_and_a_killed_job(python: str, agent: Path,
                                                                          lock_dir: Path) -> None:
    code, msgs, _ = finish(start(python, agent, job("A", "sA", fail_at=3), lock_dir))
    assert code == 2 and msgs[-1]["category"] == "backend"
    assert lock_is_free(lock_dir) and record(lock_dir) is None
    for how in (signal.SIGTERM, signal.SIGKILL):
        proc = start(python, agent, job("B", "sB", hang_at=3), lock_dir)
        held_by(lock_dir, "B")
        assert not lock_is_free(lock_dir)
        proc.send_signal(how)
        proc.wait(60)
        proc.communicate()
        assert lock_is_free(lock_dir), how


def test_a_symlink_in_place_of_the_lock_file_is_refused(agent: Path, lock_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (lock_dir / LOCK).symlink_to(victim)
    code, msgs, _ = finish(start(sys.executable, agent, job("A", "sA"), lock_dir))
    assert code == 2 and msgs[-1]["category"] == "resource"
    assert "symbolic link" in msgs[-1]["message"] and "HILBENCH_LOCK_DIR" in msgs[-1]["message"]
    assert victim.read_text() == "precious\n"


@pytest.mark.slow
def test_two_users_of_one_device_share_the_lock(agent: Path, tmp_path: Path) -> None:
    """Root and ``nobody`` (two hosts logging in as different users): one /tmp-like sticky folder, one lock."""
    if os.geteuid() != 0:
        missing_in_ci("the two-users lock test", "it starts an agent as nobody, which needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        missing_in_ci("the two-users lock test", "no user nobody")
    shared = Path(os.path.realpath("/tmp")) / f"hilbench-test-{os.getpid()}-{tmp_path.name}"
    shared.mkdir(mode=0o755)
    try:
        (shared / "agent.pyz").write_bytes(agent.read_bytes())
        (shared / "agent.pyz").chmod(0o644)
        lock_dir = shared / "locks"
        lock_dir.mkdir()
        lock_dir.chmod(0o1777)  # like /tmp
        as_nobody = {"user": nobody.pw_uid, "group": nobody.pw_gid, "cwd": str(shared)}
        # A Python both users can run (this one may live in root's home).
        python = next((p for p in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3")
                       if _runs_as(p, nobody.pw_uid)), None)
        if python is None:
            missing_in_ci("the two-users lock test", "no Python here that nobody can run")
        # nobody makes the lock file; root waits for it, then the other way round
        for (first_kw, second_kw) in ((as_nobody, {}), ({}, as_nobody)):
            first = start(python, shared / "agent.pyz", job("A", "sA"), lock_dir, **first_kw)
            held_by(lock_dir, "A")
            second = start(python, shared / "agent.pyz", job("B", "sB", min_s=0.1), lock_dir, **second_kw)
            code_a, msgs_a, err_a = finish(first)
            code_b, msgs_b, err_b = finish(second)
            assert code_a == 0 and code_b == 0, err_a + err_b
            assert msgs_b[0]["event"] == "wait" and msgs_b[1]["event"] == "acquired"
            assert sample_window(msgs_a)[1] <= sample_window(msgs_b)[0]
        assert (lock_dir / LOCK).stat().st_uid == nobody.pw_uid  # made by nobody, mode 0666: root used it too
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=False)


def _runs_as(python: str, uid: int) -> bool:
    try:
        return subprocess.run([python, "-c", "1"], user=uid, cwd="/", capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def test_the_lock_folder_is_chosen_in_order() -> None:
    assert devicelock.lock_dirs({"HILBENCH_LOCK_DIR": "/x/y"}) == ["/x/y"]
    found = devicelock.lock_dirs({})
    assert found == [d for d in ("/data/local/tmp", "/tmp") if os.path.isdir(d)]
    assert found[-1] == "/tmp"  # this Linux host
    # Termux: its own $TMPDIR last (a /data/local/tmp it cannot open is passed over)
    assert devicelock.lock_dirs({"TMPDIR": str(Path(__file__).parent)}) == [*found, str(Path(__file__).parent)]
    assert devicelock.lock_dirs({"TMPDIR": "/tmp/"}) == found


def test_a_lock_folder_that_cannot_be_used_is_passed_over(tmp_path: Path) -> None:
    unusable = tmp_path / "not-a-folder"
    unusable.write_text("")
    lock = devicelock.DeviceLock({"session": "s"}, directories=[str(unusable), str(tmp_path)])
    got = lock.acquire(0)
    try:
        assert got["path"] == str(tmp_path / LOCK) and got["waited_ns"] == 0
    finally:
        lock.release()


def test_a_missing_lock_folder_is_one_line_naming_it(agent: Path, tmp_path: Path) -> None:
    code, msgs, _ = finish(start(sys.executable, agent, job("A", "sA"), tmp_path / "nowhere"))
    assert code == 2 and msgs[-1]["category"] == "resource"
    assert str(tmp_path / "nowhere" / LOCK) in msgs[-1]["message"] and "\n" not in msgs[-1]["message"]


# ------------------------------------------------------------------------------------------ the host's checks
def lock_msg(event: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"v": 1, "type": "lock", "t_ns": 5, "event": event, "path": "/tmp/" + LOCK, "waited_ns": 0}
    base.update(fields)
    return base


HOLDER = {"session": "sA", "host": "h", "host_pid": 7, "run_id": "A", "pid": 99, "user": "pi", "since": 1.5}
PHASE = {"v": 1, "type": "phase", "t_ns": 6, "phase": "load", "event": "begin"}


def test_lock_messages_pass_in_order() -> None:
    checker = MessageChecker()
    wait = checker.check(lock_msg("wait", holder=HOLDER, held_s=3, wait_s=60))
    assert wait["holder"] == HOLDER and wait["held_s"] == 3.0
    checker.check(lock_msg("wait", holder=None, waited_ns=2_000_000_000))  # the holder changed
    got = checker.check(lock_msg("acquired", waited_ns=3_000_000_000, waited_for=HOLDER))
    assert got["waited_for"] == HOLDER
    checker.check(PHASE)
    cut = MessageChecker().check(lock_msg("wait", holder={"session": "s" * 5000}))
    assert len(cut["holder"]["session"]) == 256 + 3  # cut like any stored name


@pytest.mark.parametrize(("msgs", "expected"), [
    ([lock_msg("taken")], "lock message: event must be wait or acquired, not 'taken'"),
    ([lock_msg("wait", waited_ns=None)], "lock message: waited_ns missing"),
    ([lock_msg("wait", waited_ns=-1)], "lock message: waited_ns must be >= 0"),
    ([lock_msg("wait", waited_ns="soon")], "lock message: waited_ns must be an integer, not str"),
    ([lock_msg("wait", holder=[1])], "lock message: holder must be an object, not list"),
    ([lock_msg("wait", holder={f"k{i}": i for i in range(MAX_LOCK_RECORD_VALUES)})],
     f"lock message: holder has more than {MAX_LOCK_RECORD_VALUES} values"),
    ([lock_msg("wait", held_s="x")], "lock message: held_s must be a number, not str"),
    ([lock_msg("acquired"), lock_msg("acquired")], "lock message: acquired after the device lock was acquired"),
    ([lock_msg("acquired"), PHASE, lock_msg("wait")], "lock message: wait after the device lock was acquired"),
    ([PHASE, lock_msg("wait")], "lock message: wait after the device lock was acquired or the measurement began"),
    ([lock_msg("wait"), PHASE], "phase message while the agent waits for the device lock (no measuring then)"),
])
def test_lock_messages_out_of_line_are_refused_with_one_line(msgs: list[dict[str, Any]], expected: str) -> None:
    checker = MessageChecker()
    with pytest.raises(MessageError) as exc:
        for m in msgs:
            checker.check(dict(m))
    assert str(exc.value).startswith(expected)


def test_lock_messages_are_bounded_by_the_plans_wait(tmp_path: Path) -> None:
    plan, jobs, _, _ = _setup(tmp_path, policy="lock_wait_s = 30\n")
    limits = Limits.for_job(jobs[0])
    assert limits.lock_messages == 130
    checker = MessageChecker(limits)
    for _ in range(130):
        checker.check(lock_msg("wait"))
    with pytest.raises(MessageError, match=r"more lock messages than the plan's wait allows \(130\)"):
        checker.check(lock_msg("wait"))


# ------------------------------------------------------------------------------------------ plan, row, progress
PLAN = """
name = "lock"
[[models]]
name = "m1"
backends = ["synthetic"]
[policy]
warmup = 5
timed = {{ count = 20 }}
telemetry = false
{policy}
"""


def _setup(tmp_path: Path, policy: str = "") -> tuple[Any, list[Any], Any, Any]:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(policy=policy))
    plan = load_plan(path)
    target = fake_target("bench")
    return plan, expand_jobs(plan, {}, only_targets=[target]), open_store(tmp_path / "store"), target


def test_lock_wait_s_is_read_and_does_not_change_the_job_key(tmp_path: Path) -> None:
    _, plain, _, _ = _setup(tmp_path)
    _, waiting, _, _ = _setup(tmp_path, "lock_wait_s = 30")
    assert plain[0].policy.lock_wait_s is None and waiting[0].policy.lock_wait_s == 30.0
    assert waiting[0].policy.to_dict()["lock_wait_s"] == 30.0 and "lock_wait_s" not in plain[0].policy.to_dict()
    assert plain[0].key == waiting[0].key  # --resume finds the same jobs whatever the wait


@pytest.mark.parametrize("value", ["-1", "1e9", "nan", '"long"', "true"])
def test_a_bad_lock_wait_s_is_one_line_naming_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _setup(tmp_path, f"lock_wait_s = {value}")
    assert "plan.toml: policy.lock_wait_s: " in str(exc.value) and "\n" not in str(exc.value)


class Events(Progress):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def device_lock(self, job: Any, event: str, info: dict[str, Any]) -> None:
        self.events.append((event, info))


def test_a_jobrun_keeps_the_wait_in_its_row(tmp_path: Path) -> None:
    _, jobs, _, _ = _setup(tmp_path)
    run = JobRun(jobs[0], "r1")
    events = Events()
    run.handle(lock_msg("wait", holder=HOLDER, held_s=4), events)
    assert run.lock_waiting and run.lock_paused_s(time.monotonic()) >= 0
    run.handle(lock_msg("acquired", waited_ns=2_500_000_000, waited_for=HOLDER, t_ns=77), events)
    assert not run.lock_waiting and [e for e, _ in events.events] == ["wait", "acquired"]
    column = run._lock_column()
    assert column is not None
    assert column["acquired"] and column["waited_s"] == 2.5 and column["waited_for"] == HOLDER
    assert column["acquired_t_ns"] == 77 and column["path"] == "/tmp/" + LOCK
    assert describe_holder(HOLDER, 4) == "session sA (host h, hilbench pid 7, run A; agent pid 99 as pi) for 4 s"
    assert describe_holder(None).startswith("another process")


def test_progress_lines_say_whom_a_job_waits_for(tmp_path: Path) -> None:
    import io

    from harness.cli.progress import LineProgress, LiveProgress

    _, jobs, _, _ = _setup(tmp_path)
    out = io.StringIO()
    line = LineProgress(out)
    line.device_lock(jobs[0], "wait", lock_msg("wait", holder=HOLDER, held_s=4, wait_s=600))
    line.device_lock(jobs[0], "acquired", lock_msg("acquired", waited_ns=12_300_000_000, waited_for=HOLDER))
    line.device_lock(jobs[0], "acquired", lock_msg("acquired"))  # a free device: nothing to say
    assert out.getvalue().splitlines() == [
        "bench: waiting for the device, in use by session sA (host h, hilbench pid 7, run A; agent pid 99 as pi) "
        "for 4 s; waiting up to 600 s (policy.lock_wait_s; --no-wait fails at once)",
        "bench: got the device after waiting 12.3 s for session sA (host h, hilbench pid 7, run A; agent pid 99 as pi)",
    ]
    live = LiveProgress(io.StringIO(), clock=lambda: 100.0, columns=200, tick_s=None)
    live.session_started("s1", jobs, 0)
    live.job_started(jobs[0], "r1")
    live.device_lock(jobs[0], "wait", lock_msg("wait", holder=HOLDER, held_s=4))
    assert "waiting for the device, in use by session sA (host h" in live.line("bench")


# ------------------------------------------------------------------------------------------ the session (fake device)
def waiting_run(wait_s: float, then: list[Any]) -> list[Any]:
    return [lock_msg("wait", holder=HOLDER, held_s=1), Delay(wait_s), *then]


def test_the_job_timeout_does_not_run_while_the_agent_waits(tmp_path: Path) -> None:
    plan, jobs, store, target = _setup(tmp_path, "timeout_s = 0.5")
    lines = waiting_run(1.2, [lock_msg("acquired", waited_ns=1_200_000_000, waited_for=HOLDER), *agent_run()])
    fake = FakeTransport(target, [FakeScript(lines)])
    run_jobs(jobs, store, plan=plan, transports=lambda t: fake)
    (row,) = store.runs().to_dict("records")
    assert row["status"] == "ok", row["error_message"]
    lock = json.loads(row["device_lock"])
    assert lock["acquired"] and lock["waited_s"] == 1.2 and lock["waited_for"]["session"] == "sA"


def test_an_agent_that_waits_past_its_wait_is_stopped_and_stored_busy(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.run.session as session

    monkeypatch.setattr(session, "LOCK_GRACE_S", 0.2)
    plan, jobs, store, target = _setup(tmp_path, "lock_wait_s = 0.3\ntimeout_s = 60")
    fake = FakeTransport(target, [FakeScript(waiting_run(60, [lock_msg("acquired", waited_ns=60_000_000_000)]))])
    run_jobs(jobs, store, plan=plan, transports=lambda t: fake)
    (row,) = store.runs().to_dict("records")
    assert row["status"] == "error" and row["error_category"] == "busy"
    assert "waiting for the device lock past the job's wait of 0.3 s (policy.lock_wait_s)" in row["error_message"]
    lock = json.loads(row["device_lock"])
    assert lock["acquired"] is False and lock["waited_s"] >= 0.5 and lock["waited_for"]["run_id"] == "A"


def test_no_wait_stores_the_devices_later_jobs_busy_without_starting_them(tmp_path: Path) -> None:
    plan, _, store, target = _setup(tmp_path)
    path = tmp_path / "plan.toml"
    path.write_text(path.read_text().replace('[policy]', '[[models]]\nname = "m2"\nbackends = ["synthetic"]\n[policy]'))
    plan = load_plan(path)
    jobs = expand_jobs(plan, {}, only_targets=[target])
    busy = [lock_msg("wait", holder=HOLDER), {"v": 1, "type": "error", "t_ns": 6, "category": "busy",
                                               "message": "the device is in use by session sA: not waiting (--no-wait)"}]
    fake = FakeTransport(target, [FakeScript(busy, exit_code=2)])
    result = run_jobs(jobs, store, plan=plan, transports=lambda t: fake, no_wait=True)
    assert len(fake.started) == 1  # the second job never started an agent
    rows = sorted(result.runs, key=lambda r: r["started_at"])
    assert [r["error_category"] for r in rows] == ["busy", "busy"]
    assert rows[1]["error_message"] == "not started: the device is in use by session sA: not waiting (--no-wait)"
    assert fake.started[0]["lock"]["wait_s"] == 0.0 and fake.started[0]["lock"]["setting"] == "--no-wait"


# ------------------------------------------------------------------------------------------ end to end: hilbench run
RUN_PLAN = """
name = "lockrun"
targets = {targets}
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = {latency}
{extra}
[policy]
warmup = 3
timed = {{ count = 10, min_s = {min_s}, max_s = 30 }}
telemetry = false
"""


def run_plan(tmp_path: Path, name: str, *, targets: tuple[str, ...] = ("local",), latency: Any = (1.0, 1.5),
             extra: str = "", min_s: float = 0.8) -> Path:
    """Two jobs (one per latency) of ``min_s`` timed seconds each on ``targets``."""
    path = tmp_path / f"{name}.toml"
    path.write_text(RUN_PLAN.format(targets=json.dumps(list(targets)), extra=extra, min_s=min_s,
                                    latency=json.dumps(list(latency) if isinstance(latency, tuple) else latency)))
    return path


def hilbench(*args: str, lock_dir: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if lock_dir is not None:
        env["HILBENCH_LOCK_DIR"] = str(lock_dir)
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def measured_windows(store_dir: Path) -> list[tuple[int, int, str, str]]:
    """Each stored run's window on the device's clock: from when its agent got the device lock to the end of its
    last sample; with its session and run id."""
    store = open_store(store_dir)
    samples = store.samples()
    out = []
    for _, row in store.runs().iterrows():
        lock = json.loads(row["device_lock"])
        mine = samples[samples["run_id"] == row["run_id"]]
        assert lock["acquired"] and len(mine)
        assert int(mine["t_ns"].min()) >= lock["acquired_t_ns"]  # nothing measured before the lock was held
        out.append((lock["acquired_t_ns"], int((mine["t_ns"] + mine["latency_ns"]).max()), row["session_id"],
                    row["run_id"]))
    return out


def assert_never_overlap(*stores: Path) -> list[tuple[int, int, str, str]]:
    windows = sorted(w for store in stores for w in measured_windows(store))
    for before, after in zip(windows, windows[1:], strict=False):
        assert before[1] <= after[0], f"{before} overlaps {after}"
    return windows


@pytest.mark.slow
def test_two_hilbench_runs_on_one_device_take_turns(tmp_path: Path, lock_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # The first run's job lasts long enough (8 s) for the second to start while the device is held.
    first = hilbench("run", str(run_plan(tmp_path, "long", latency=1.0, min_s=8)), "--store", str(tmp_path / "a"),
                     lock_dir=lock_dir)
    session_a = wait_for(lambda: (r := record(lock_dir)) and r.get("session"), "the first run to hold the device")
    second = hilbench("run", str(run_plan(tmp_path, "plan")), "--store", str(tmp_path / "b"), lock_dir=lock_dir)
    out_a, err_a = first.communicate(timeout=180)
    out_b, err_b = second.communicate(timeout=180)
    assert first.returncode == 0 and second.returncode == 0, err_a + err_b
    windows = assert_never_overlap(tmp_path / "a", tmp_path / "b")
    assert len(windows) == 3 and len({w[2] for w in windows}) == 2
    # The second said, live, whom it waited for; its stored runs say it too, and for how long.
    assert f"local: waiting for the device, in use by session {session_a} (host " in err_b, err_b
    assert "waiting up to 600 s (policy.lock_wait_s; --no-wait fails at once)" in err_b
    assert "waited" in err_b and "s for the device)" in err_b
    runs_b = open_store(tmp_path / "b").runs()
    locks = [json.loads(x) for x in runs_b["device_lock"]]
    waited = [lk for lk in locks if lk["waited_s"] > 0]
    assert waited and waited[0]["waited_for"]["session"] == session_a
    assert waited[0]["path"] == str(lock_dir / LOCK)
    from harness.cli import main

    run_id = runs_b["run_id"][[lk["waited_s"] > 0 for lk in locks]].iloc[0]
    assert main(["show", run_id, "--store", str(tmp_path / "b")]) == 0
    shown = capsys.readouterr().out
    assert f"device    lock held ({lock_dir / LOCK}), after waiting " in shown
    assert f"s for session {session_a} (host " in shown
    assert record(lock_dir) is None and lock_is_free(lock_dir)


@pytest.mark.slow
def test_no_wait_fails_at_once_naming_the_holder_and_ctrl_c_releases_the_device(tmp_path: Path,
                                                                                 lock_dir: Path) -> None:
    holder = hilbench("run", str(run_plan(tmp_path, "hang", latency=1.0, extra="hang_at = 5")), "--store",
                      str(tmp_path / "a"), lock_dir=lock_dir)
    try:
        session_a = wait_for(lambda: (r := record(lock_dir)) and r.get("session"), "the first run to hold the device")
        busy = hilbench("run", str(run_plan(tmp_path, "plan")), "--store", str(tmp_path / "b"), "--no-wait",
                        lock_dir=lock_dir)
        out, err = busy.communicate(timeout=120)
        assert holder.poll() is None  # it failed while the other still measured
    finally:
        holder.send_signal(signal.SIGINT)  # Ctrl-C: the holder's agent is stopped and the device let go
        _, err_a = holder.communicate(timeout=120)
    assert busy.returncode == 3, err
    assert "Traceback" not in err
    failed = [ln for ln in err.splitlines() if "FAILED (busy)" in ln]
    assert len(failed) == 2, err
    assert f"FAILED (busy): the device is in use by session {session_a} (host " in failed[0]
    assert failed[0].endswith("not waiting (--no-wait)")
    assert "FAILED (busy): not started: the device is in use by" in failed[1]
    assert "2 failed" in out
    assert holder.returncode == 130, err_a
    assert released(lock_dir)
    runs = open_store(tmp_path / "b").runs()
    assert set(runs["error_category"]) == {"busy"}
    assert json.loads(runs["device_lock"].dropna().iloc[0])["acquired"] is False


@pytest.mark.slow
def test_the_waiting_run_takes_over_when_the_holders_agent_is_killed(tmp_path: Path, lock_dir: Path) -> None:
    holder = hilbench("run", str(run_plan(tmp_path, "hang", latency=1.0, extra="hang_at = 5")), "--store",
                      str(tmp_path / "a"), lock_dir=lock_dir)
    mine = wait_for(lambda: (r := record(lock_dir)) and r.get("session") and r, "the first run to hold the device")
    waiter = hilbench("run", str(run_plan(tmp_path, "plan", latency=1.0)), "--store", str(tmp_path / "b"),
                      lock_dir=lock_dir)
    assert waiter.stderr is not None
    said = []
    while not said or "waiting for the device" not in said[-1]:  # its progress line: it waits now
        line = waiter.stderr.readline()
        assert line, "".join(said)
        said.append(line)
    os.kill(mine["pid"], signal.SIGKILL)  # the agent holding the device dies; the kernel releases its lock
    out_b, err_b = waiter.communicate(timeout=120)
    err_b = "".join(said) + err_b
    _, err_a = holder.communicate(timeout=120)
    assert waiter.returncode == 0, err_b
    assert holder.returncode == 3 and "was killed by SIGKILL" in err_a, err_a
    (lock,) = [json.loads(x) for x in open_store(tmp_path / "b").runs()["device_lock"]]
    assert lock["acquired"] and lock["waited_for"]["run_id"] == mine["run_id"] and lock["waited_s"] > 0
    assert f"waiting for the device, in use by session {mine['session']}" in err_b
    assert record(lock_dir) is None and lock_is_free(lock_dir)


@pytest.mark.slow
def test_the_device_is_free_after_a_failed_job_and_after_ctrl_c(tmp_path: Path, lock_dir: Path) -> None:
    failing = hilbench("run", str(run_plan(tmp_path, "fail", latency=1.0, extra="fail_at = 3")), "--store",
                       str(tmp_path / "a"), lock_dir=lock_dir)
    _, err = failing.communicate(timeout=120)
    assert failing.returncode == 3 and "FAILED (backend)" in err, err
    assert lock_is_free(lock_dir) and record(lock_dir) is None
    env = {**os.environ, "HILBENCH_LOCK_DIR": str(lock_dir)}
    held, _ = ctrl_c_mid_run([str(run_plan(tmp_path, "hang", latency=1.0, extra="hang_at = 5")), "--store",
                              str(tmp_path / "b")], lambda: record(lock_dir), env=env)
    assert held["run_id"] and released(lock_dir)
    (row,) = open_store(tmp_path / "b").runs().to_dict("records")
    assert row["error_category"] == "interrupted" and json.loads(row["device_lock"])["acquired"]


@pytest.mark.slow
@pytest.mark.usefixtures("own_ssh_dir")
def test_two_runs_over_ssh_with_two_stores_and_workdirs_take_turns(servers, tmp_path: Path) -> None:
    """Two hosts (two stores, two target files with their own workdirs) measuring one SSH device."""
    dev = servers("dev")
    tdir = tmp_path / "targets"
    tdir.mkdir()
    for name in ("labA", "labB"):
        (tdir / f"{name}.toml").write_text(dev.target_toml(name, python=sys.executable,
                                                           workdir=str(tmp_path / f"cache-{name}")))
    first = hilbench("run", str(run_plan(tmp_path, "a", targets=("labA",), latency=1.0, min_s=10)), "--targets-dir",
                     str(tdir), "--store", str(tmp_path / "a"))
    session_a = wait_for(lambda: (r := record(dev.lock_dir)) and r.get("session"), "the first run to hold the device")
    second = hilbench("run", str(run_plan(tmp_path, "b", targets=("labB",))), "--targets-dir", str(tdir), "--store",
                      str(tmp_path / "b"))
    _, err_a = first.communicate(timeout=180)
    _, err_b = second.communicate(timeout=180)
    assert first.returncode == 0 and second.returncode == 0, err_a + err_b
    assert_never_overlap(tmp_path / "a", tmp_path / "b")
    assert f"labB: waiting for the device, in use by session {session_a} (host " in err_b, err_b
    locks = [json.loads(x) for x in open_store(tmp_path / "b").runs()["device_lock"]]
    assert any(lk["waited_s"] > 0 and lk["waited_for"]["target"] == "labA" for lk in locks)
    assert {lk["path"] for lk in locks} == {str(dev.lock_dir / LOCK)}
    assert record(dev.lock_dir) is None


@pytest.mark.slow
def test_a_resume_right_after_hilbench_is_killed_waits_for_its_orphaned_agent(tmp_path: Path, lock_dir: Path) -> None:
    """SIGKILL of hilbench leaves its local agent running (a session of its own) to the end of its job; a
    ``--resume`` at once waits for that agent, says so, and measures after it."""
    plan = run_plan(tmp_path, "plan", latency=(1.0, 1.5), min_s=4)
    cache = tmp_path / "cache"
    env_cache = {"HILBENCH_CACHE": str(cache)}
    store_dir = tmp_path / "res"
    first = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir),
                              "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **env_cache, "HILBENCH_LOCK_DIR": str(lock_dir)})
    orphan = wait_for(lambda: (r := record(lock_dir)) and r.get("session") and r, "the first run to hold the device")
    first.kill()
    first.communicate(timeout=60)
    os.kill(orphan["pid"], 0)  # its agent runs on, holding the device
    resumed = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir),
                                "--resume"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env_cache, "HILBENCH_LOCK_DIR": str(lock_dir)})
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    assert f"waiting for the device, in use by session {orphan['session']}" in err
    runs = open_store(store_dir).runs()
    assert list(runs["status"]) == ["ok", "ok"]
    locks = [json.loads(x) for x in runs.sort_values("started_at")["device_lock"]]
    assert locks[0]["waited_for"]["pid"] == orphan["pid"]
    # The orphan's journal on the "device" ends with its result: the resumed run got the device after it.
    journal = cache / "journal" / f"{orphan['run_id']}.jsonl"
    last = json.loads(journal.read_text().splitlines()[-1])
    assert last["type"] == "result" and locks[0]["acquired_t_ns"] >= last["t_ns"]
