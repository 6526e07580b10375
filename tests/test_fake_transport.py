"""The session's recovery logic through the real Runner / run_jobs, with FakeTransport as the device: drops
recovered from the journal, reruns, dead agents, slow phases, a device that stays away, Ctrl-C. Each case
takes milliseconds; the real sshd/adb/qemu tests (test_ssh.py, test_adb.py, test_emulated.py) stay the
end-to-end layer. Assertions are on the rows the store holds."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import open_store
from harness.config.plan import Job, Plan, expand_jobs, load_plan
from harness.config.targets import LOCAL, ADBSettings, Target
from harness.errors import ConfigError, TransportError
from harness.run.session import Runner, device_key, run_jobs
from harness.store import Store
from harness.transport import FakeTransport, LocalTransport, make_transport
from harness.transport.base import AgentProcess
from harness.transport.fake import Delay, FakeScript, agent_run, fake_target

REPO = Path(__file__).resolve().parents[1]

PLAN = """
name = "fake"
[[models]]
name = "m1"
backends = ["synthetic"]
{more_models}
[policy]
warmup = 5
timed = {{ count = 20 }}
telemetry = false
{policy}
"""


def _setup(tmp_path: Path, *, models: int = 1, policy: str = "") -> tuple[Plan, list[Job], Store, Target]:
    more = "".join(f'[[models]]\nname = "m{i}"\nbackends = ["synthetic"]\n' for i in range(2, models + 1))
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(more_models=more, policy=policy))
    plan = load_plan(path)
    target = fake_target("bench")
    return plan, expand_jobs(plan, {}, only_targets=[target]), open_store(tmp_path / "store"), target


def _run(tmp_path: Path, scripts: list[FakeScript], *, models: int = 1, policy: str = "",
         **fake: Any) -> tuple[list[dict[str, Any]], FakeTransport]:
    plan, jobs, store, target = _setup(tmp_path, models=models, policy=policy)
    transport = FakeTransport(target, scripts, **fake)
    run_jobs(jobs, store, plan=plan, transports=lambda t: transport)
    return _rows(store), transport


def _rows(store: Store) -> list[dict[str, Any]]:
    """The stored runs rows, oldest first, with None for a missing value."""
    runs = store.runs().sort_values("started_at")
    return list(runs.astype(object).where(runs.notna(), None).to_dict("records"))


def test_a_clean_run_is_stored_as_a_stand_in(tmp_path: Path) -> None:
    rows, fake = _run(tmp_path, [FakeScript(agent_run())])
    (row,) = rows
    assert row["status"] == "ok" and row["error_category"] is None
    assert row["transport"] == "fake" and row["stand_in"]  # never mistaken for a measurement
    assert row["timed_count"] == 20
    assert len(fake.started) == 1 and fake.connects == 1 and not fake.is_alive  # closed at the end


def test_a_drop_whose_journal_holds_the_result_is_recovered(tmp_path: Path) -> None:
    rows, fake = _run(tmp_path, [FakeScript(agent_run(), drop_after=3, finished_on_device=True, runs_on_s=0.3)])
    (row,) = rows
    assert row["status"] == "ok", row["error_message"]
    assert row["timed_count"] == 20
    assert len(fake.started) == 1  # recovered from the journal, not run again
    assert fake.connects == 2 and not fake.killed
    assert row["run_id"] == next(iter(fake.journals)).rsplit("/", 1)[-1].removesuffix(".jsonl")


def test_a_drop_without_a_result_reruns_the_job(tmp_path: Path) -> None:
    dropped = FakeScript(agent_run(), drop_after=4)
    rows, fake = _run(tmp_path, [dropped, FakeScript(agent_run())])
    (row,) = rows
    assert row["status"] == "ok", row["error_message"]
    assert len(fake.started) == 2 and len(fake.journals) == 2  # a new run with its own journal


def test_a_job_that_keeps_dropping_fails_after_max_reruns(tmp_path: Path) -> None:
    rows, fake = _run(tmp_path, [FakeScript(agent_run(), drop_after=4)])
    (row,) = rows
    assert row["status"] != "ok" and row["error_category"] == "transport"
    drops = Runner.max_reruns + 1
    assert row["error_message"] == (f"the connection dropped during the job {drops} times (the agent's journal "
                                    "held no result): check the device's network and power")
    assert len(fake.started) == drops


@pytest.mark.parametrize("code, stderr, said", [
    (-9, "Killed", "the agent was killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL) "
                   "before reporting a result: Killed"),
    (3, "boom\nValueError: bad model", "the agent exited with status 3 before reporting a result: "
                                       "ValueError: bad model"),
])
def test_a_dead_agent_is_an_agent_error_with_its_exit(tmp_path: Path, code: int, stderr: str, said: str) -> None:
    rows, _ = _run(tmp_path, [FakeScript(agent_run()[:4], exit_code=code, stderr=stderr)])
    (row,) = rows
    assert row["error_category"] == "agent"
    assert row["error_message"] == said


def test_a_slow_phase_hits_its_timeout(tmp_path: Path) -> None:
    lines = agent_run()
    slow = [*lines[:4], Delay(30.0), *lines[4:]]  # the warmup phase hangs after it began
    t0 = time.monotonic()
    rows, _ = _run(tmp_path, [FakeScript(slow)], policy="[policy.timeouts]\nwarmup_s = 0.2\n")
    assert time.monotonic() - t0 < 10
    (row,) = rows
    assert row["error_category"] == "timeout"
    assert row["error_message"] == "the warmup phase exceeded its timeout of 0.2 s (policy.timeouts.warmup_s)"


def test_an_agent_running_on_past_the_job_timeout_is_killed(tmp_path: Path) -> None:
    rows, fake = _run(tmp_path, [FakeScript(agent_run(), drop_after=3, runs_on_s=60.0)], policy="timeout_s = 0.5\n")
    (row,) = rows
    assert row["error_category"] == "timeout"
    assert row["error_message"] == "the job exceeded its timeout of 0.5 s (policy.timeout_s)"
    assert fake.killed == list(fake.journals)


def test_a_device_that_does_not_come_back_fails_the_remaining_jobs(tmp_path: Path) -> None:
    rows, fake = _run(tmp_path, [FakeScript(agent_run(), drop_after=3, refuse_reconnects=100)], models=3)
    assert [r["error_category"] for r in rows] == ["transport"] * 3
    why = "bench: reconnect: no connection after 3 attempts: connection refused (a FakeTransport fault)"
    assert rows[0]["error_message"] == f"the connection dropped during the job and did not come back: {why}"
    assert [r["error_message"] for r in rows[1:]] == [why, why]
    assert len(fake.started) == 1  # the other jobs never started


def test_an_unreachable_device_stores_every_job_as_a_transport_error(tmp_path: Path) -> None:
    plan, jobs, store, target = _setup(tmp_path, models=2)
    fake = FakeTransport(target, [FakeScript(agent_run())], refuse_connects=100)
    run_jobs(jobs, store, plan=plan, transports=lambda t: fake,
             on_runner=lambda r: setattr(r, "connect_backoff_s", 0.0))
    rows = _rows(store)
    assert [r["error_category"] for r in rows] == ["transport"] * 2
    # the first connection says "connect", not "reconnect" (issue 14, item 13)
    assert {r["error_message"] for r in rows} == {"bench: connect: no connection after 3 attempts: "
                                                  "connection refused (a FakeTransport fault)"}
    assert not fake.started


def test_a_bug_while_connecting_stores_every_job_and_closes_the_session(tmp_path: Path) -> None:
    """A non-hilbench exception from connecting (as a UnicodeDecodeError from a known_hosts file was, issue 14
    item 8) no longer dies in the worker thread unrecorded: each job is stored with it, the session is closed."""
    plan, jobs, store, target = _setup(tmp_path, models=2)

    class Broken(FakeTransport):
        def connect(self) -> None:
            raise UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid continuation byte")

    run_jobs(jobs, store, plan=plan, transports=lambda t: Broken(target, [FakeScript(agent_run())]))
    rows = _rows(store)
    assert [r["error_category"] for r in rows] == ["transport"] * 2
    assert rows[0]["error_message"].startswith("bench: hilbench failed to connect (a bug, please report it): "
                                               "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9")
    assert list(store.sessions()["status"]) == ["finished"]


def _interrupt_when(store: Store, plan: Plan, jobs: list[Job], fake: FakeTransport,
                    ready: Any) -> list[dict[str, Any]]:
    runners: list[Runner] = []
    worker = threading.Thread(target=run_jobs, args=(jobs, store),
                              kwargs={"plan": plan, "transports": lambda t: fake, "on_runner": runners.append})
    worker.start()
    deadline = time.monotonic() + 10
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    runners[0].interrupt()
    worker.join(10)
    assert not worker.is_alive()
    return _rows(store)


def test_ctrl_c_mid_job_stores_it_as_interrupted(tmp_path: Path) -> None:
    plan, jobs, store, target = _setup(tmp_path, models=2)
    lines = agent_run()
    fake = FakeTransport(target, [FakeScript([*lines[:6], Delay(60.0), *lines[6:]])])
    rows = _interrupt_when(store, plan, jobs, fake, lambda: fake.started and fake.journals
                           and len(next(iter(fake.journals.values()))) >= 6)
    (row,) = rows  # the second job never started
    assert row["error_category"] == "interrupted"
    assert row["error_message"] == "the run was interrupted (Ctrl-C)"


def test_ctrl_c_while_waiting_for_an_agent_after_a_drop(tmp_path: Path) -> None:
    plan, jobs, store, target = _setup(tmp_path)
    fake = FakeTransport(target, [FakeScript(agent_run(), drop_after=3, runs_on_s=60.0)])
    rows = _interrupt_when(store, plan, jobs, fake, lambda: fake.connects >= 2)
    (row,) = rows
    assert row["error_category"] == "interrupted"
    assert row["error_message"] == "the run was interrupted (Ctrl-C)"
    assert fake.killed == list(fake.journals)  # the agent left on the device is killed


# ---------------------------------------------------------------- the contract's defaults and device keys

def test_contract_defaults_for_a_transport_without_a_connection(tmp_path: Path) -> None:
    t = LocalTransport(LOCAL)
    assert t.is_alive and not t.can_reconnect
    assert not t.agent_alive("/x.jsonl") and t.kill_agent("/x.jsonl") is None
    with pytest.raises(TransportError) as err:
        t.reconnect(stop=threading.Event(), attempts=2, first_delay_s=0.0)
    assert str(err.value) == "local: the connection dropped and this transport cannot reconnect"

    class Quiet(AgentProcess):
        def next_line(self, timeout: float | None) -> str | None:
            return None

        def wait(self, timeout: float | None = None) -> int | None:
            return 0

        def kill(self) -> None:
            pass

        @property
        def stderr_tail(self) -> str:
            return ""

    proc = Quiet()
    assert proc.connection_lost is False and proc.close() is None


def test_device_keys_come_from_the_transports() -> None:
    assert device_key(LOCAL) == ("local",)
    assert device_key(Target(name="p", transport="adb", adb=ADBSettings(serial="R5"))) == ("adb", "R5")
    assert device_key(fake_target("bench")) == ("fake", "bench")
    assert device_key(Target(name="x", transport="nope")) == ("nope", "x")
    ssh = Target(name="b", transport="ssh", host="Board.Example", port=2222)
    assert device_key(ssh)[0] == "ssh" and device_key(ssh)[2] == 2222


def test_a_fake_target_cannot_be_made_without_its_script() -> None:
    with pytest.raises(ConfigError, match="FakeTransport"):
        make_transport(fake_target())


def test_the_session_does_not_probe_transports() -> None:
    source = (REPO / "harness" / "run" / "session.py").read_text()
    assert "getattr(" not in source
