"""Labgrid places as targets (harness/transport/labgrid.py, docs/lab.md) against a REAL labgrid lab on loopback:
``labgrid-coordinator --listen 127.0.0.1:0`` and ``labgrid-exporter`` processes (labgrid's own programs), whose
``NetworkService`` resources point at real OpenSSH servers (tests/support/sshd.py). One coordinator, one sshd and
one exporter serve the whole module; a test that kills an exporter starts its own, and one that restarts the
coordinator its own coordinator.

Without labgrid (the ``lab`` extra, part of ``dev``) or sshd these tests skip, except under CI, where they fail.
Each test that uses the lab is ``slow`` (and ``sshd``, through its fixtures); the target-file checks are not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.helpers import missing_in_ci, pyenv_python
from support.labgrid_lab import Coordinator, labgrid_unavailable
from support.sshd import SSHServer, free_port, kill_agents, start_sshd

import harness.transport.labgrid as lab
from harness import open_store
from harness.cli import main
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import load_target, load_targets
from harness.doctor.checks import doctor, format_checks
from harness.errors import ConfigError
from harness.run.session import Runner, run_jobs

pytestmark = [pytest.mark.labgrid, pytest.mark.usefixtures("own_ssh_dir", "lease_home")]
ROOT = Path(__file__).resolve().parents[1]
#: The board's Python: the oldest the agent supports (no runtimes installed, so the agent and doctor's probe
#: start in a fraction of a second), else this one.
BOARD_PYTHON = pyenv_python("3.7") or sys.executable


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory):
    reason = labgrid_unavailable()
    if reason:
        missing_in_ci("the labgrid tests", reason)
    with Coordinator(tmp_path_factory.mktemp("coordinator")) as c:
        yield c


@pytest.fixture(scope="module")
def board(coord: Coordinator, keys, tmp_path_factory: pytest.TempPathFactory):
    """An sshd exported by exporter ``lab1`` as place ``pi-1`` (tags board=pi); group ``serial`` has no
    NetworkService (place ``ser-1``, tags board=serial)."""
    server = start_sshd(tmp_path_factory.mktemp("board") / "dev", keys)
    coord.exporter("lab1", {
        "board1": {"NetworkService": {"address": "127.0.0.1", "port": server.port, "username": server.user}},
        "serial": {"NetworkSerialPort": {"host": "127.0.0.1", "port": free_port()}},
    })
    coord.add_place("pi-1", match="lab1/board1/*", tags={"board": "pi"})
    coord.add_place("ser-1", match="lab1/serial/*", tags={"board": "serial"})
    yield server
    server.stop()
    kill_agents(server)


@pytest.fixture
def lease_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lease records in a folder of the test (never ~/.cache), and the coordinator polled often."""
    monkeypatch.setenv("HILBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    monkeypatch.delenv("LG_PROXY", raising=False)
    monkeypatch.setattr(lab, "POLL_S", 0.2)
    monkeypatch.setattr(lab, "CONNECT_TIMEOUT_S", 1.0)
    # The device probe (seconds: it imports every runtime on the board) is not what these tests are about.
    monkeypatch.setattr(Runner, "probe_devices", False)
    return tmp_path / "cache" / "lab"


def lab_target(tmp: Path, server: SSHServer, coordinator: str, *, name: str = "pi", select: str = 'reserve = { board = "pi" }',
               wait_s: float = 5, resource: str = "") -> Path:
    tdir = tmp / "targets"
    tdir.mkdir(exist_ok=True)
    (tdir / f"{name}.toml").write_text(
        f'name = "{name}"\npython = {json.dumps(BOARD_PYTHON)}\n'
        f"workdir = {json.dumps(str(server.folder / 'device-cache'))}\n"
        f'[labgrid]\ncoordinator = "{coordinator}"\n{select}\nwait_s = {wait_s}\n{resource}\n'
        f"[ssh]\nidentity_file = {json.dumps(str(server.keys.identity))}\n"
        f"known_hosts = {json.dumps(str(server.known_hosts))}\nuse_ssh_config = false\n"
        "connect_timeout_s = 5\ncommand_timeout_s = 30\nkeepalive_s = 2\n")
    return tdir


def synth_plan(tmp: Path, target: str = "pi", *, latency_ms: float = 0.5, timed: int = 20, extra: str = "") -> Path:
    path = tmp / "plan.toml"
    path.write_text(f'name = "lab"\ntargets = ["{target}"]\n[[models]]\nname = "fake"\nbackends = ["synthetic"]\n'
                    f"[backends.synthetic]\nlatency_ms = [{latency_ms}, {latency_ms * 1.5}]\n{extra}\n"
                    f"[policy]\nwarmup = 2\ntimed = {{ count = {timed} }}\ntelemetry = false\n")
    return path


def run(tmp: Path, tdir: Path, plan: Path) -> tuple[int, list[dict]]:
    store = tmp / "store"
    code = main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store), "--quiet"])
    runs = open_store(store).runs().sort_values("started_at").to_dict("records")
    return code, runs


def assert_free(coord: Coordinator, place: str, lease_dir: Path) -> None:
    """Nothing left behind: the place not acquired, no reservation, no lease record."""
    assert coord.place(place).acquired is None
    assert coord.reservations() == []
    assert not list(lease_dir.glob("*.json")) if lease_dir.is_dir() else True


@pytest.mark.slow
def test_a_plan_runs_on_a_reserved_place_and_leaves_it_free(coord, board, tmp_path: Path, lease_home: Path,
                                                            capsys: pytest.CaptureFixture[str]):
    tdir = lab_target(tmp_path, board, coord.address)
    code, runs = run(tmp_path, tdir, synth_plan(tmp_path))
    assert code == 0, runs
    assert [r["status"] for r in runs] == ["ok", "ok"] and {r["transport"] for r in runs} == {"labgrid"}
    stored = [json.loads(r["lab"]) for r in runs]
    assert {s["place"] for s in stored} == {"pi-1"} and {s["exporter"] for s in stored} == {"lab1"}
    assert stored[0]["reservation"] and stored[0]["resource"] == "lab1/board1/NetworkService/NetworkService"
    assert stored[0]["endpoint"] == {"host": "127.0.0.1", "port": board.port, "user": board.user, "proxy_jump": None}
    assert stored[0]["coordinator"] == coord.address and stored[0]["lost"] is None
    assert_free(coord, "pi-1", lease_home)
    capsys.readouterr()
    assert main(["show", runs[0]["run_id"], "--store", str(tmp_path / "store")]) == 0
    assert f"  lab       place pi-1 on exporter lab1 at {coord.address} (reservation {stored[0]['reservation']})" \
        in capsys.readouterr().out


@pytest.mark.slow
def test_a_second_client_waits_for_the_place_and_gives_up_past_wait_s(coord, board, tmp_path: Path,
                                                                     lease_home: Path):
    other = lab.LabClient(coord.address, name="otherhost/alice")
    try:
        other.acquire("pi-1")
        tdir = lab_target(tmp_path, board, coord.address, wait_s=0.6)
        code, runs = run(tmp_path, tdir, synth_plan(tmp_path))
        assert code == 3
        assert {r["error_category"] for r in runs} == {"busy"}
        msg = runs[0]["error_message"]
        assert "stayed held by someone else past labgrid.wait_s = 0.6 s (pi-1 by otherhost/alice)" in msg, msg
        assert "\n" not in msg and json.loads(runs[0]["lab"])["place"] is None
        assert coord.place("pi-1").acquired == "otherhost/alice"  # the holder is never kicked
        assert coord.reservations() == []
        # A patient run waits, and gets the place as soon as the holder lets it go.
        tdir = lab_target(tmp_path, board, coord.address, wait_s=60)
        threading.Timer(1.0, other.release, args=("pi-1",)).start()
        code, runs = run(tmp_path / "second", tdir, synth_plan(tmp_path))
        assert code == 0, runs
        assert json.loads(runs[0]["lab"])["waited_s"] >= 0.5
    finally:
        other.close()
    assert_free(coord, "pi-1", lease_home)


@pytest.mark.slow
def test_stopping_a_run_that_waits_for_a_place_cancels_its_reservation_at_once(coord, board, tmp_path: Path,
                                                                              lease_home: Path):
    other = lab.LabClient(coord.address, name="otherhost/alice")
    try:
        other.acquire("pi-1")
        tdir = lab_target(tmp_path, board, coord.address, wait_s=600)
        plan = load_plan(synth_plan(tmp_path))
        runners: list[Runner] = []
        out: dict = {}
        waiting = threading.Thread(target=lambda: out.update(result=run_jobs(
            expand_jobs(plan, load_targets([tdir])), open_store(tmp_path / "store"), plan=plan,
            on_runner=runners.append)))
        waiting.start()
        end = time.monotonic() + 30
        while not coord.reservations():  # the run waits in the queue
            assert time.monotonic() < end and waiting.is_alive()
            time.sleep(0.02)
        runners[0].interrupt("Ctrl-C")
        waiting.join(10)  # not the 600 s of wait_s
        assert not waiting.is_alive() and out["result"].runs == []  # stopped: nothing ran, nothing to store
        assert coord.reservations() == [] and coord.place("pi-1").acquired == "otherhost/alice"
        assert not list(lease_home.glob("*.json"))
    finally:
        other.release("pi-1")
        other.close()


@pytest.mark.slow
def test_the_place_is_released_after_a_failed_job(coord, board, tmp_path: Path, lease_home: Path):
    tdir = lab_target(tmp_path, board, coord.address, select='place = "pi-1"')
    code, runs = run(tmp_path, tdir, synth_plan(tmp_path, extra="fail_at = 3"))
    assert code == 3 and {r["error_category"] for r in runs} == {"backend"}, runs
    assert json.loads(runs[0]["lab"])["place"] == "pi-1"
    assert_free(coord, "pi-1", lease_home)


@pytest.mark.slow
def test_a_place_without_the_resource_is_a_one_line_stored_error(coord, board, tmp_path: Path, lease_home: Path):
    tdir = lab_target(tmp_path, board, coord.address, select='reserve = { board = "serial" }')
    code, runs = run(tmp_path, tdir, synth_plan(tmp_path))
    assert code == 3 and {r["error_category"] for r in runs} == {"transport"}
    assert "the labgrid place ser-1 has no NetworkService resource (its resources: " \
           "lab1/serial/NetworkSerialPort/NetworkSerialPort)" in runs[0]["error_message"]
    assert_free(coord, "ser-1", lease_home)


@pytest.mark.slow
def test_an_exporter_that_disappears_mid_run_ends_the_jobs_as_stored_errors_and_frees_the_place(
        coord, keys, tmp_path: Path, lease_home: Path):
    server = start_sshd(tmp_path / "dev2", keys)
    try:
        exporter = coord.exporter("lab2", {"board2": {"NetworkService": {
            "address": "127.0.0.1", "port": server.port, "username": server.user}}})
        coord.add_place("pi-2", match="lab2/board2/*", tags={"board": "pi2"})
        tdir = lab_target(tmp_path, server, coord.address, select='place = "pi-2"')
        plan = synth_plan(tmp_path, latency_ms=50, timed=400)  # 20 s a job: the exporter goes long before
        out: dict = {}
        runner = threading.Thread(target=lambda: out.update(result=run(tmp_path, tdir, plan)))
        runner.start()
        end = time.monotonic() + 60
        while not list((server.folder / "device-cache" / "journal").glob("*.pid")):
            assert time.monotonic() < end and runner.is_alive(), out
            time.sleep(0.05)
        exporter.stop()
        runner.join(60)
        assert not runner.is_alive()
        code, runs = out["result"]
        assert code == 3 and [r["status"] for r in runs] == ["error", "error"]
        for r in runs:
            assert "the labgrid exporter lab2 of place pi-2 disappeared" in r["error_message"], r["error_message"]
        assert json.loads(runs[0]["lab"])["lost"].startswith("the labgrid exporter lab2")
        assert_free(coord, "pi-2", lease_home)
    finally:
        server.stop()
        kill_agents(server)


@pytest.mark.slow
@pytest.mark.parametrize("saved", [True, False], ids=["saved-place", "unsaved-place"])
def test_a_coordinator_restart_mid_run_ends_the_jobs_as_stored_errors(
        saved: bool, keys, tmp_path: Path, lease_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):
    """labgrid's coordinator, restarted on its port and folder, keeps the places it has saved to places.yaml (at
    most every 15 s, not when it stops) but not who acquired them, drops every reservation, and its exporters exit
    (status 100). The run in flight ends its jobs as stored errors naming the coordinator and gives back what is
    left, a place the coordinator forgot included; --resume runs them once the lab is back. A coordinator of its
    own: the module's one must not restart under the other tests."""
    reason = labgrid_unavailable()
    if reason:
        missing_in_ci("the labgrid tests", reason)
    # The release after the loss reconnects to the restarted coordinator (1 s, this module's default, can fall
    # between gRPC's reconnect tries).
    monkeypatch.setattr(lab, "CONNECT_TIMEOUT_S", 5.0)
    server = start_sshd(tmp_path / "dev3", keys)
    match, tags = "lab3/board3/*", {"board": "pi3"}
    try:
        # saved: places.yaml as the coordinator leaves it once it has saved; else a place made just now.
        with Coordinator(tmp_path / "coord3", places={"pi-3": {"match": match, "tags": tags}} if saved else None
                         ) as coord3:
            exporter = coord3.exporter("lab3", {"board3": {"NetworkService": {
                "address": "127.0.0.1", "port": server.port, "username": server.user}}})
            if not saved:
                coord3.add_place("pi-3", match=match, tags=tags)
            tdir = lab_target(tmp_path, server, coord3.address, select='reserve = { board = "pi3" }')
            plan = synth_plan(tmp_path, latency_ms=10, timed=250)  # 2.5 s and 3.75 s: the restart comes first
            out: dict = {}
            runner = threading.Thread(target=lambda: out.update(result=run(tmp_path, tdir, plan)))
            runner.start()
            end = time.monotonic() + 60
            while not list((server.folder / "device-cache" / "journal").glob("*.pid")):  # the first job runs
                assert time.monotonic() < end and runner.is_alive(), out
                time.sleep(0.05)
            assert coord3.place("pi-3").acquired == lab.client_name() and coord3.reservations()
            assert (coord3.folder / "places.yaml").exists() == saved  # not saved yet: labgrid's first save is at 15 s
            coord3.restart()
            runner.join(30)
            assert not runner.is_alive()
            code, runs = out["result"]
            assert code == 3 and [r["status"] for r in runs] == ["error", "error"], runs
            for r in runs:
                msg = r["error_message"]
                assert f"the labgrid coordinator {coord3.address} went away (" in msg, msg
                assert "a restarted coordinator forgets acquired places, so pi-3 may no longer be ours" in msg, msg
                assert "\n" not in msg and r["error_category"] == "transport"
            assert json.loads(runs[0]["lab"])["lost"].startswith(f"the labgrid coordinator {coord3.address} went away")
            assert "Traceback" not in capsys.readouterr().err
            assert exporter.proc.wait(10) == 100  # labgrid-exporter exits when its coordinator goes away
            # The restarted coordinator: no reservation, the saved place free (an unsaved one forgotten), and our
            # lease record gone either way.
            assert coord3.reservations() == [] and not list(lease_home.glob("*.json"))
            if not saved:
                assert coord3.admin().places == {}
                coord3.add_place("pi-3", match=match, tags=tags)  # as its admin makes it again
            assert set(coord3.admin().places) == {"pi-3"}
            with pytest.raises(lab.LabError, match="the labgrid place pi-3 has no NetworkService resource"):
                lab.Lease(load_target(tdir / "pi.toml")).acquire()  # until its exporter is back
            assert_free(coord3, "pi-3", lease_home)
            # Once the exporter is back (its supervisor starts it again), --resume runs the two jobs.
            coord3.restart_exporter(exporter)
            code = main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(tmp_path / "store"),
                         "--quiet", "--resume"])
            runs = open_store(tmp_path / "store").runs().sort_values("started_at").to_dict("records")
            assert code == 0 and [r["status"] for r in runs] == ["error", "error", "ok", "ok"], runs
            assert "Traceback" not in capsys.readouterr().err
            assert_free(coord3, "pi-3", lease_home)
    finally:
        server.stop()
        kill_agents(server)


@pytest.mark.slow
def test_an_unreachable_coordinator_is_a_one_line_error_stored_and_in_doctor(board, tmp_path: Path,
                                                                             lease_home: Path):
    address = f"127.0.0.1:{free_port()}"
    tdir = lab_target(tmp_path, board, address)
    code, runs = run(tmp_path, tdir, synth_plan(tmp_path))
    assert code == 3 and {r["error_category"] for r in runs} == {"transport"}
    assert f"pi: labgrid: the labgrid coordinator {address} does not answer within 1 s" in runs[0]["error_message"]
    checks = doctor(load_target(tdir / "pi.toml"))
    assert [c.status for c in checks] == ["ok", "fail"] and checks[1].name == "coordinator"


@pytest.mark.slow
def test_doctor_checks_the_coordinator_the_place_and_the_board_behind_it(coord, board, tmp_path: Path,
                                                                         lease_home: Path):
    tdir = lab_target(tmp_path, board, coord.address)
    target = load_target(tdir / "pi.toml")
    checks = {c.name: c for c in doctor(target)}
    text = format_checks(target, list(checks.values()))
    for name in ("labgrid", "coordinator", "place", "resource", "acquire", "login", "python"):
        assert checks[name].status == "ok", text
    assert "pi-1 free" in checks["place"].detail
    assert f"lab1/board1/NetworkService/NetworkService on exporter lab1: {board.user}@127.0.0.1:{board.port}" \
        in checks["resource"].detail
    assert_free(coord, "pi-1", lease_home)
    # A place someone holds: said, and the board is not touched.
    other = lab.LabClient(coord.address, name="otherhost/alice")
    try:
        other.acquire("pi-1")
        checks = {c.name: c for c in doctor(target)}
        assert checks["place"].status == "warn" and "pi-1 acquired by otherhost/alice" in checks["place"].detail
        assert checks["ssh"].status == "info" and "acquire" not in checks
    finally:
        other.release("pi-1")
        other.close()


@pytest.mark.slow
def test_the_exporters_proxy_becomes_the_ssh_proxy_jump(coord, board, tmp_path: Path, lease_home: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    tdir = lab_target(tmp_path, board, coord.address)
    target = load_target(tdir / "pi.toml")
    # $LG_PROXY (labgrid's "reach everything through this host") goes through the board's own sshd here.
    monkeypatch.setenv("LG_PROXY", f"{board.user}@127.0.0.1:{board.port}")
    lease = lab.Lease(target)
    resolved = lease.acquire()
    try:
        assert resolved.ssh.proxy_jump == f"{board.user}@127.0.0.1:{board.port}"
        assert (resolved.host, resolved.port) == ("127.0.0.1", board.port)
        assert coord.place("pi-1").acquired == lab.client_name()
    finally:
        lease.release()
    assert_free(coord, "pi-1", lease_home)
    code, runs = run(tmp_path, tdir, synth_plan(tmp_path, timed=5))  # a whole run through that ProxyJump
    assert code == 0 and json.loads(runs[0]["lab"])["endpoint"]["proxy_jump"] == f"{board.user}@127.0.0.1:{board.port}"


def _child_env(tmp: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "device_agents")]),
                HILBENCH_CACHE=str(tmp / "cache"))


def _start_run(tmp: Path, tdir: Path, plan: Path) -> subprocess.Popen[str]:
    # `hilbench run` as its own process (its own signal handling), the device probe off as in this module's other runs.
    code = ("import sys; from harness.run.session import Runner; Runner.probe_devices = False; "
            "from harness.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.Popen([sys.executable, "-c", code, "run", str(plan), "--targets-dir", str(tdir),
                             "--store", str(tmp / "store"), "--quiet"], env=_child_env(tmp), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_acquired(coord: Coordinator, proc: subprocess.Popen[str]) -> None:
    """Until the run holds pi-1 (it then goes on to connect and run its jobs)."""
    end = time.monotonic() + 60
    while coord.place("pi-1").acquired is None:
        assert time.monotonic() < end and proc.poll() is None, proc.communicate()
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_mid_run_releases_the_place(coord, board, tmp_path: Path, lease_home: Path, sig, status):
    tdir = lab_target(tmp_path, board, coord.address)
    proc = _start_run(tmp_path, tdir, synth_plan(tmp_path, latency_ms=50, timed=400))
    try:
        _wait_acquired(coord, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status and "Traceback" not in err, err
    assert_free(coord, "pi-1", tmp_path / "cache" / "lab")


@pytest.mark.slow
def test_lab_release_clears_the_place_a_killed_run_left_acquired(coord, board, tmp_path: Path, lease_home: Path,
                                                                 capsys: pytest.CaptureFixture[str]):
    tdir = lab_target(tmp_path, board, coord.address)
    proc = _start_run(tmp_path, tdir, synth_plan(tmp_path, latency_ms=50, timed=400))
    try:
        _wait_acquired(coord, proc)
    finally:
        proc.kill()  # SIGKILL: nothing of hilbench runs on the way out
        proc.communicate(timeout=30)
        kill_agents(board)
    assert coord.place("pi-1").acquired == lab.client_name()  # labgrid never times it out
    assert main(["lab", "release", "pi-9"]) == 0
    assert "no lease of place pi-9 is recorded on this host" in capsys.readouterr().out
    assert main(["lab", "release"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"place pi-1 at {coord.address}: released; reservation ") and "left by hilbench pid" in out
    assert_free(coord, "pi-1", tmp_path / "cache" / "lab")


@pytest.mark.slow
def test_lab_release_leaves_a_live_runs_place_alone(coord, board, tmp_path: Path, lease_home: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    lease = lab.Lease(load_target(lab_target(tmp_path, board, coord.address) / "pi.toml"))
    lease.acquire()
    try:
        assert main(["lab", "release"]) == 0
        assert "held by a hilbench run that is still running" in capsys.readouterr().out
        assert coord.place("pi-1").acquired == lab.client_name()
    finally:
        lease.release()
    assert_free(coord, "pi-1", lease_home)


@pytest.mark.parametrize(("table", "problem"), [
    ('reserve = { board = "pi" }\nplace = "pi-1"', "labgrid.reserve: give either reserve"),
    ("wait_s = 5", "labgrid.reserve: give either reserve"),
    ('reserve = { Board = "pi" }', "labgrid.reserve.Board: a labgrid tag is lower-case"),
    ('reserve = { board = "p i" }', "labgrid.reserve.board: expected a tag value"),
    ('place = "pi-1"\nresource = "a b"', "labgrid.resource: 'a b' is not a resource class or name"),
    ('place = "pi-1"\nwait_s = -1', "labgrid.wait_s: "),
    ('place = "pi-1"\ncolour = "red"', "colour"),
])
def test_bad_labgrid_tables_are_one_line_errors(tmp_path: Path, table: str, problem: str):
    path = tmp_path / "t.toml"
    path.write_text(f"[labgrid]\n{table}\n")
    with pytest.raises(ConfigError) as exc:
        load_target(path)
    assert problem in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_a_labgrid_target_takes_no_host_and_defaults_to_lg_coordinator(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "t.toml"
    path.write_text('host = "10.0.0.2"\n[labgrid]\nplace = "pi-1"\n')
    with pytest.raises(ConfigError, match="host: a \\[labgrid\\] target takes its host and port from"):
        load_target(path)
    path.write_text('[labgrid]\nplace = "pi-1"\n')
    target = load_target(path)
    assert target.transport == "labgrid" and target.labgrid is not None and target.labgrid.wait_s == 600
    assert main(["targets", "--targets-dir", str(tmp_path)]) == 0
    assert "t                        labgrid pi-1" in capsys.readouterr().out
    monkeypatch.setenv("LG_COORDINATOR", "lab.example")
    assert lab.coordinator_address(target.labgrid) == "lab.example:20408"
    monkeypatch.delenv("LG_COORDINATOR")
    with pytest.raises(lab.LabError, match="no labgrid coordinator named: set labgrid.coordinator in"):
        lab.coordinator_address(target.labgrid, str(path))
