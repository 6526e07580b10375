"""Store integrity (issue 14, items 3-5): corrupt files are skipped with a warning naming the fix, `hilbench
store check [--repair]` lists and sets aside what no reader can use, sessions whose process is gone read as
abandoned, temporary files of killed writers are removed (never a live writer's), and a write that fails says
which folder and what is kept. Real Parquet files, real killed processes, a real full file system."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.helpers import SYNTH, missing_in_ci

from harness import open_store
from harness.cli import main
from harness.errors import StoreError
from harness.liveness import machine_tag, process_identity
from harness.store import MARKER, SCHEMA_VERSION, SCHEMAS, Store
from harness.storecheck import check_store, open_checked

# Real processes, tmpfs and sshd: the whole module is in the slow tier (issue 16's fast tier stays fast).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "device_agents"),
                                                    os.environ.get("PYTHONPATH", "")])}



def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of two sessions of one plan (two runs each), made by `hilbench run`."""
    tmp = tmp_path_factory.mktemp("two")
    plan = tmp / "plan.toml"
    plan.write_text(SYNTH)
    for _ in range(2):
        assert main(["run", str(plan), "--store", str(tmp / "res"), "--quiet"]) == 0
    return tmp / "res"


@pytest.fixture
def store_dir(two_sessions: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "res"
    shutil.copytree(two_sessions, copy)
    return copy


def _first_session_files(root: Path, table: str) -> list[Path]:
    first = open_store(root).sessions().loc[0, "session_id"]
    runs = open_store(root).runs()
    ids = runs.loc[runs["session_id"] == first, "run_id"]
    return [root / table / f"{r}.parquet" for r in ids]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _random(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size or 2000))


def _garbage_inside(path: Path) -> None:
    """Random bytes over the data pages, footer intact (what a bad sector or a stray write does)."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    end = len(data) - footer
    data[4:end] = os.urandom(end - 4)
    path.write_bytes(bytes(data))


def _other_table(path: Path) -> None:
    """Another table's file under this one's name (a runs file copied into samples/)."""
    runs_file = path.parents[1] / "runs" / path.name
    shutil.copy(runs_file, path)


CORRUPTIONS = {
    "truncated": ("samples", _truncate),
    "zero-bytes": ("runs", _zero),
    "random-bytes": ("samples", _random),
    "garbage-in-the-data-pages": ("samples", _garbage_inside),
    "another-tables-schema": ("samples", _other_table),
    "random-bytes-sessions-file": ("sessions", _random),
}


def _corrupt(root: Path, kind: str) -> Path:
    table, damage = CORRUPTIONS[kind]
    if table == "sessions":
        path = sorted((root / "sessions").glob("*.parquet"))[0]
    else:
        path = _first_session_files(root, table)[0]
    damage(path)
    return path


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hilbench.store" and r.levelno >= logging.WARNING]


def _readers_work(root: Path, capsys: pytest.CaptureFixture[str], tmp: Path) -> str:
    """results, report and compare all answer (no error line, no traceback); returns their stderr."""
    assert main(["results", "--store", str(root)]) == 0
    assert main(["report", "--store", str(root), "--output", str(tmp / "report.html"), "--no-plots"]) == 0
    code = main(["compare", "--store", str(root)])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "error" not in err and "Traceback" not in err, err  # 1: a regression, by chance
    assert "fake" in out
    return err


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_a_corrupt_file_is_skipped_with_a_warning_then_check_and_repair_set_it_aside(
        store_dir, kind, capsys, caplog, tmp_path):
    bad = _corrupt(store_dir, kind)
    caplog.set_level(logging.WARNING, logger="hilbench.store")
    _readers_work(store_dir, capsys, tmp_path)
    warned = _warnings(caplog)
    assert warned, f"no reader warned about {bad}"
    for line in warned:  # every warning: one line, the file, the fix
        assert "\n" not in line and str(bad) in line
        assert f"hilbench store check --repair --store {store_dir}" in line
    caplog.clear()

    assert main(["store", "check", "--store", str(store_dir)]) == 1
    out = capsys.readouterr().out
    listed = [line for line in out.splitlines() if line.startswith("corrupt ")]
    assert len(listed) == 1 and str(bad.relative_to(store_dir)) in listed[0], out
    assert bad.exists()  # only listed: nothing moves without --repair

    assert main(["store", "check", "--repair", "--store", str(store_dir)]) == 1
    out = capsys.readouterr().out
    assert not bad.exists()
    (box,) = (store_dir / "quarantine").iterdir()
    assert (box / bad.parent.name / bad.name).is_file()  # set aside, not deleted
    manifest = [json.loads(line) for line in (box / "manifest.jsonl").read_text().splitlines()]
    assert {"file": str(bad.relative_to(store_dir)), "problem": "corrupt"}.items() <= manifest[0].items()

    assert main(["store", "check", "--store", str(store_dir)]) == 0
    assert "no problems found" in capsys.readouterr().out
    _readers_work(store_dir, capsys, tmp_path)
    assert _warnings(caplog) == []


def test_the_warning_reaches_stderr_of_the_command(store_dir):
    bad = _corrupt(store_dir, "truncated")
    # `results` reads the stored summaries (store schema v2) and never opens a samples file; `compare` of the two
    # sessions reads their samples.
    proc = cli("compare", "--store", str(store_dir))
    assert proc.returncode in (0, 5), proc.stderr  # 5: a regression, by chance
    lines = proc.stderr.splitlines()
    assert lines == [f"hilbench: warning: skipped {bad}: not a readable Parquet file (Parquet magic bytes not found "
                     "in footer. Either the file is corrupted or this is not a parquet file.) (fix: hilbench store "
                     f"check --repair --store {store_dir})"]


def test_a_corrupt_sessions_file_is_no_longer_skipped_silently(store_dir, caplog):
    bad = _corrupt(store_dir, "random-bytes-sessions-file")
    caplog.set_level(logging.WARNING, logger="hilbench.store")
    sessions = open_store(store_dir).sessions()
    assert len(sessions) == 1 and str(bad) not in set(sessions["session_id"])
    (line,) = _warnings(caplog)
    assert str(bad) in line and "not a readable Parquet file" in line


def test_runs_whose_samples_are_gone_and_samples_without_runs_are_orphans(store_dir, capsys):
    runs_file, other_runs = _first_session_files(store_dir, "runs")
    samples_file = store_dir / "samples" / runs_file.name
    runs_file.unlink()  # a writer stopped between the samples and the runs row
    missing = store_dir / "samples" / other_runs.name
    missing.unlink()  # a runs row whose samples are gone
    old = time.time() - 3600
    os.utime(samples_file, (old, old))
    assert main(["store", "check", "--store", str(store_dir)]) == 1
    out = capsys.readouterr().out
    assert f"orphaned        samples/{samples_file.name}: its run {samples_file.stem} has no runs row" in out
    assert f"missing-samples runs/{other_runs.name}: run {other_runs.stem} is stored as ok with 80 timed runs, but " \
           "its samples file is missing" in out
    assert main(["store", "check", "--repair", "--store", str(store_dir)]) == 1
    capsys.readouterr()
    (box,) = (store_dir / "quarantine").iterdir()
    assert (box / "samples" / samples_file.name).is_file() and (box / "runs" / other_runs.name).is_file()
    assert main(["store", "check", "--store", str(store_dir)]) == 0
    assert len(open_store(store_dir).runs()) == 2


def test_files_a_live_session_may_still_commit_are_left_alone(tmp_path, capsys):
    store = Store(tmp_path / "res")
    store.ensure_writable()
    now = dt.datetime.now(dt.timezone.utc)
    store.write_table("sessions", "s1", [{"session_id": "s1", "started_at": now, "status": "running", "jobs": 1}])
    store.write_table("samples", "r1", {"run_id": ["r1"], "phase": ["timed"], "iteration": [0], "latency_ns": [5],
                                        "t_ns": [0]})
    assert main(["store", "check", "--repair", "--store", str(store.root)]) == 0  # this process is alive
    out = capsys.readouterr().out
    assert "pending         samples/r1.parquet: no runs row yet" in out and "running         sessions/s1" in out
    assert (store.root / "samples" / "r1.parquet").is_file()
    store.write_table("sessions", "s1", [{"session_id": "s1", "started_at": now, "status": "finished", "jobs": 1}])


# ---------------------------------------------------------------- abandoned sessions


def _descendants(pid: int) -> list[int]:
    psutil = pytest.importorskip("psutil")
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_a_killed_run_reads_as_abandoned_everywhere_and_resume_completes_it(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = [0.2, 20]")  # 16 ms, then 1.6 s
                    )
    store_dir = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    children: list[int] = []
    try:
        end = time.monotonic() + 120
        while not list((store_dir / "runs").glob("*.parquet")):  # the first job stored, the second one running
            assert proc.poll() is None and time.monotonic() < end
            time.sleep(0.05)
        time.sleep(0.3)
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        for pid in [proc.pid, *children]:  # the agent it started, orphaned by the kill
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    store = open_store(store_dir)
    (session,) = store.sessions().to_dict("records")
    assert session["status"] == "abandoned"
    assert session["status_detail"] == f"its process, hilbench (pid {proc.pid} on {session['owner_host']}), is gone"
    assert store.sessions(judge=False).loc[0, "status"] == "running"  # as stored: nothing rewrote it
    (run_id,) = store.runs()["run_id"]

    assert main(["results", "--store", str(store_dir)]) == 0
    out, err = capsys.readouterr()
    assert run_id[-6:] in out
    assert f"session {session['session_id']} was abandoned (its process, hilbench (pid {proc.pid}" in err
    assert "running" not in err
    assert main(["show", run_id, "--store", str(store_dir)]) == 0
    assert f"  session   abandoned: its process, hilbench (pid {proc.pid}" in capsys.readouterr().out
    assert main(["report", "--store", str(store_dir), "--output", str(tmp_path / "r.html"), "--no-plots"]) == 0
    assert f"Session {session['session_id']} was abandoned" in (tmp_path / "r.html").read_text()

    assert main(["store", "check", "--store", str(store_dir)]) == 1
    assert f"abandoned       sessions/{session['session_id']}.parquet" in capsys.readouterr().out
    assert main(["store", "check", "--repair", "--store", str(store_dir)]) == 1
    assert f"closed session {session['session_id']} as abandoned" in capsys.readouterr().out
    closed = store.sessions(judge=False).iloc[0]
    assert closed["status"] == "abandoned" and closed["jobs_ok"] == 1 and closed["jobs_failed"] == 0
    assert not pd_isna(closed["finished_at"])
    assert main(["store", "check", "--store", str(store_dir)]) == 0
    capsys.readouterr()

    assert main(["run", str(plan), "--store", str(store_dir), "--resume", "--quiet"]) == 0
    assert len(open_store(store_dir).runs()) == 2


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _session(store: Store, sid: str, **owner: object) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    row = {"session_id": sid, "started_at": now - dt.timedelta(hours=2), "status": "running", "jobs": 1,
           "owner_host": "elsewhere", "owner_pid": 4242, "owner_process": None, "heartbeat_at": now, **owner}
    table = pa.Table.from_pylist([row], schema=SCHEMAS["sessions"])
    store._write_file("sessions", sid, table)  # as another process wrote it: its own owner and beat


def test_judging_a_session_by_its_owner_and_heartbeat(tmp_path):
    store = Store(tmp_path)
    store.ensure_writable()
    now = dt.datetime.now(dt.timezone.utc)
    me = process_identity(os.getpid())
    if me is None or not me.startswith("linux:"):
        missing_in_ci("process identities", "not a Linux host")
    context = me.rsplit(":", 1)[0]
    other_boot = "linux:00000000-0000-0000-0000-000000000000:4026531836:12345"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _session(store, "alive", owner_pid=os.getpid(), owner_process=me)
    _session(store, "gone", owner_pid=int(dead.stdout), owner_process=f"{context}:1")
    _session(store, "reused", owner_pid=os.getpid(), owner_process=f"{context}:1")  # this pid, another start
    _session(store, "remote-fresh", owner_process=other_boot, heartbeat_at=now - dt.timedelta(minutes=2))
    _session(store, "remote-stale", owner_process=other_boot, heartbeat_at=now - dt.timedelta(minutes=30))
    _session(store, "older-hilbench", owner_host=None, owner_pid=None, heartbeat_at=None)
    got = store.sessions().set_index("session_id")
    assert got["status"].to_dict() == {"alive": "running", "gone": "abandoned", "reused": "abandoned",
                                       "remote-fresh": "running", "remote-stale": "abandoned",
                                       "older-hilbench": "abandoned"}
    assert got.loc["remote-stale", "status_detail"].startswith("no heartbeat from hilbench (pid 4242 on elsewhere) "
                                                               "since ")
    assert got.loc["older-hilbench", "status_detail"].startswith("no heartbeat from an older hilbench since ")
    # An older hilbench's session beats with the runs it stores
    store.write_table("runs", "r1", [{"run_id": "r1", "session_id": "older-hilbench", "status": "error",
                                      "started_at": now, "finished_at": now}])
    assert store.sessions().set_index("session_id").loc["older-hilbench", "status"] == "running"


def test_a_running_session_beats_until_it_is_closed(tmp_path):
    store = Store(tmp_path)
    store.heartbeat_s = 0.05
    store.ensure_writable()
    now = dt.datetime.now(dt.timezone.utc)
    row = {"session_id": "s1", "started_at": now, "status": "running", "jobs": 1}
    store.write_table("sessions", "s1", [row])
    first = open_store(tmp_path).sessions(judge=False).loc[0]
    assert first["owner_pid"] == os.getpid() and first["owner_process"] == process_identity(os.getpid())
    end = time.monotonic() + 30
    while open_store(tmp_path).sessions(judge=False).loc[0, "heartbeat_at"] == first["heartbeat_at"]:
        assert time.monotonic() < end, "no heartbeat"
        time.sleep(0.02)
    store.write_table("sessions", "s1", [dict(row, status="finished")])
    time.sleep(0.3)  # six beats' time: none may overwrite the closed row
    assert open_store(tmp_path).sessions(judge=False).loc[0, "status"] == "finished"
    assert store._beating == {}  # nothing left to beat: the thread ends at its next tick


# ---------------------------------------------------------------- temporary files

_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import pyarrow as pa
    from harness.store import Store
    store = Store(sys.argv[1])
    n = 6_000_000
    rng = np.random.default_rng(0)
    table = pa.table({"run_id": pa.array(["big"] * n), "phase": pa.array(["timed"] * n),
                      "iteration": np.arange(n), "latency_ns": rng.integers(1, 10**9, n), "t_ns": np.arange(n)})
    print("ready", flush=True)
    while True:  # back to back: a temporary file exists nearly all the time
        store.write_table("samples", "big", table)
""")


def _kill_mid_write(root: Path) -> tuple[Path, int]:
    """Start a process that writes a large samples file over and over, SIGKILL it while a temporary file of
    its exists; returns (that file, the writer's pid)."""
    Store(root).ensure_writable()
    for _ in range(5):  # the kill may land just after a rename, between two files: then again
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True,
                                env=ENV)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            end = time.monotonic() + 120
            while True:
                temps = list((root / "samples").glob(".*.tmp"))
                if temps and temps[0].stat().st_size > 0:
                    proc.send_signal(signal.SIGKILL)
                    break
                assert proc.poll() is None and time.monotonic() < end
                time.sleep(0.001)
        finally:
            proc.kill()
            proc.wait(30)
        temps = list((root / "samples").glob(".*.tmp"))
        if temps:
            (tmp,) = temps
            return tmp, proc.pid
    raise AssertionError("no kill landed mid-write in 5 tries")


@pytest.mark.slow
def test_a_temp_file_left_by_a_killed_writer_is_removed_by_the_next_writer(tmp_path, capsys):
    root = tmp_path / "res"
    tmp, pid = _kill_mid_write(root)
    assert tmp.name.startswith(f".big.parquet.{machine_tag()}-{pid}.")
    store = Store(root)
    assert store.stale_temps() == [(tmp, f"left by process {pid}, which is gone")]
    assert main(["store", "check", "--store", str(root)]) == 1
    assert f"stale-temp      samples/{tmp.name}: left by process {pid}, which is gone" in capsys.readouterr().out
    assert tmp.exists()
    store.ensure_writable()  # what every `hilbench run` does first
    assert not tmp.exists()
    assert main(["store", "check", "--store", str(root)]) == 0


@pytest.mark.slow
def test_store_check_repair_removes_a_killed_writers_temp_file(tmp_path, capsys):
    root = tmp_path / "res"
    tmp, _ = _kill_mid_write(root)
    assert main(["store", "check", "--repair", "--store", str(root)]) == 1
    assert f"removed samples/{tmp.name}" in capsys.readouterr().out
    assert not tmp.exists() and not (root / "quarantine").exists()


_HOLDER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from harness.store import _temp_for
    fd, tmp = _temp_for(Path(sys.argv[1]))
    os.utime(tmp, (time.time() - 86400, time.time() - 86400))  # a day old: only the lock says it is live
    print(tmp, flush=True)
    time.sleep(600)
""")


def test_a_live_writers_temp_file_is_never_taken(tmp_path, capsys):
    root = tmp_path / "res"
    Store(root).ensure_writable()
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root / "runs" / "r1.parquet")],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout is not None
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.exists()
        assert Store(root).stale_temps() == []
        Store(root).ensure_writable()
        assert main(["store", "check", "--repair", "--store", str(root)]) == 0
        assert tmp.exists()
    finally:
        proc.kill()
        proc.wait(30)
    assert [p for p, _ in Store(root).stale_temps()] == [tmp]  # its writer gone: now it is stale


def test_a_temp_file_from_another_machine_goes_by_its_age(tmp_path):
    store = Store(tmp_path)
    store.ensure_writable()
    other = "0" * 8 if machine_tag() != "0" * 8 else "1" * 8
    foreign = tmp_path / "samples" / f".r1.parquet.{other}-1.abcdefgh.tmp"
    legacy = tmp_path / "runs" / ".r2.parquetx1y2z3q4.tmp"  # an older hilbench's name: no machine, no pid
    for path in (foreign, legacy):
        path.write_bytes(b"PAR1 partial")
    assert store.stale_temps() == []  # fresh: its writer, elsewhere, may be at it
    old = time.time() - 3600
    for path in (foreign, legacy):
        os.utime(path, (old, old))
    assert sorted(p for p, _ in store.stale_temps()) == sorted([foreign, legacy])


# ---------------------------------------------------------------- writes that fail


_FILL = textwrap.dedent("""
    import json, sys
    import numpy as np
    from pathlib import Path
    from harness.errors import StoreError
    from harness.store import Store
    root = Path(sys.argv[1])
    store = Store(root)
    store.ensure_writable()
    store.write_table("samples", "small", {"run_id": ["small"], "phase": ["timed"], "iteration": [0],
                                           "latency_ns": [5], "t_ns": [0]})
    n = 400_000
    rng = np.random.default_rng(0)
    try:
        store.write_table("samples", "big", {"run_id": ["big"] * n, "phase": ["timed"] * n,
                                             "iteration": np.arange(n), "latency_ns": rng.integers(1, 10**9, n),
                                             "t_ns": rng.integers(1, 10**9, n)})
        error = None
    except StoreError as exc:
        error = str(exc)
    left = sorted(p.name for p in (root / "samples").iterdir())
    print(json.dumps({"error": error, "left": left}))
""")


def test_a_full_disk_fails_the_write_with_one_line_and_leaves_nothing_half_written(tmp_path):
    unshare = shutil.which("unshare")
    if unshare is None:
        missing_in_ci("a full file system", "no unshare(1) to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=512k tmpfs {disk} && exec {sys.executable} -c \"$0\" {disk}/res")
    proc = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "sh", "-c", script, _FILL],
                          capture_output=True, text=True, timeout=120, env=ENV)
    if proc.returncode != 0 and "mount" in proc.stderr:
        missing_in_ci("a full file system", f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    folder = f"{disk}/res/samples"
    assert got["error"] == (f"{folder}: cannot write big.parquet (No space left on device): free space on that disk; "
                            "nothing of it was written, and every file stored before is kept"), got
    assert got["left"] == ["small.parquet"]  # no temporary file, no part of big


_DENIED = textwrap.dedent("""
    import json, os, sys
    from harness.errors import StoreError
    from harness.liveness import machine_tag
    from harness.store import Store
    machine_tag()  # read /proc as ourselves: nobody cannot read this Python's modules, loaded lazily
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    store = Store(sys.argv[1])
    try:
        store.write_table("runs", "r1", [{"run_id": "r1", "status": "ok"}])
        print(json.dumps(None))
    except StoreError as exc:
        print(json.dumps(str(exc)))
""")


def test_a_folder_that_refuses_writes_fails_with_one_line(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="hilbench-denied-"))
    try:
        base.chmod(0o755)
        store = Store(base / "res")
        store.ensure_writable()
        (base / "res" / MARKER).chmod(0o644)  # readable by the other user, the folders are not writable
        if os.geteuid() != 0:
            (base / "res" / "runs").chmod(0o555)
        proc = subprocess.run([sys.executable, "-c", _DENIED, str(base / "res")], capture_output=True, text=True,
                              timeout=60, env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == (f"{base}/res/runs: cannot write r1.parquet (Permission denied): check the "
                                           "folder's permissions; nothing of it was written, and every file stored "
                                           "before is kept")
        assert sorted(p.name for p in (base / "res" / "runs").iterdir()) == []
    finally:
        (base / "res" / "runs").chmod(0o755)
        shutil.rmtree(base)


# ---------------------------------------------------------------- the command itself


def test_store_check_of_a_clean_store_and_of_no_store(tmp_path, capsys):
    Store(tmp_path / "res").ensure_writable()
    assert main(["store", "check", "--store", str(tmp_path / "res")]) == 0
    assert capsys.readouterr().out == f"store {tmp_path / 'res'}: no problems found\n"
    proc = cli("store", "check", "--store", str(tmp_path / "nowhere"))
    assert proc.returncode == 1 and proc.stderr == f"hilbench: error: --store {tmp_path / 'nowhere'}: no such folder\n"
    (tmp_path / "afile").write_text("x")
    proc = cli("store", "check", "--store", str(tmp_path / "afile"))
    assert proc.returncode == 1 and proc.stderr == f"hilbench: error: --store {tmp_path / 'afile'}: not a folder\n"
    (tmp_path / "notastore").mkdir()
    proc = cli("store", "check", "--store", str(tmp_path / "notastore"))
    assert proc.returncode == 1 and "not a hilbench results store" in proc.stderr and proc.stdout == ""
    proc = cli("store", "--store", str(tmp_path / "res"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_a_broken_marker_is_named_with_its_fix_and_repaired(store_dir, capsys):
    (store_dir / MARKER).write_text("{not json")
    proc = cli("results", "--store", str(store_dir))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"hilbench: error: {store_dir / MARKER}: not a hilbench store marker (")
    assert proc.stderr.rstrip().endswith(f"`hilbench store check --repair --store {store_dir}` writes a new one")
    findings = check_store(open_checked(store_dir))
    assert [f.kind for f in findings if f.problem] == ["bad-marker"]
    assert main(["store", "check", "--repair", "--store", str(store_dir)]) == 1
    assert json.loads((store_dir / MARKER).read_text()) == {"schema_version": SCHEMA_VERSION}
    assert main(["results", "--store", str(store_dir)]) == 0
    capsys.readouterr()


def test_quarantined_files_are_parquet_a_user_can_still_read(store_dir, capsys):
    """--repair moves, never rewrites: an orphaned file in quarantine reads as it did."""
    runs_file = _first_session_files(store_dir, "runs")[0]
    samples_file = store_dir / "samples" / runs_file.name
    before = pq.read_table(samples_file)
    runs_file.unlink()
    os.utime(samples_file, (time.time() - 3600,) * 2)
    assert main(["store", "check", "--repair", "--store", str(store_dir)]) == 1
    capsys.readouterr()
    (box,) = (store_dir / "quarantine").iterdir()
    assert pq.read_table(box / "samples" / samples_file.name).equals(before)
    with pytest.raises(StoreError):
        open_checked(store_dir / "nope")


def test_repair_moves_and_writes_only_files_it_listed_whatever_the_rows_say(tmp_path, capsys):
    """A shared store's rows are not trusted: ids that look like paths never choose what --repair touches."""
    root = tmp_path / "store" / "res"
    store = Store(root)
    store.ensure_writable()
    outside = tmp_path / "store" / "victim.parquet"
    outside.write_bytes(b"not the store's")
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    hostile = "../../victim"
    store.write_table("runs", "r1", [{"run_id": hostile, "session_id": hostile, "status": "ok", "timed_count": 10,
                                      "started_at": now, "finished_at": now}])
    _session(store, "s1", session_id=hostile, owner_host=None, owner_pid=None, heartbeat_at=None, started_at=now)
    assert main(["store", "check", "--repair", "--store", str(root)]) == 1
    out = capsys.readouterr().out
    assert "closed session ../../victim as abandoned" in out
    assert outside.read_bytes() == b"not the store's"
    assert sorted(p.name for p in (root / "sessions").iterdir()) == ["s1.parquet"]
    assert Store(root).sessions(judge=False).loc[0, "status"] == "abandoned"
    assert not list(tmp_path.glob("store/*.parquet"))[1:]  # nothing new beside the victim
    assert (root / "runs" / "r1.parquet").is_file()  # its samples "missing", but its file is named for no run


def test_the_room_a_session_keeps_goes_with_its_session(tmp_path):
    """Store.reserve's file holds no lock (unlinking it must free the room): its session says whether it is
    still needed, whatever its age; a killed run's is removed by the next writer."""
    store = Store(tmp_path)
    store.ensure_writable()
    now = dt.datetime.now(dt.timezone.utc)
    mine = store.reserve("sessions", "s-live", 4096)
    store.write_table("sessions", "s-live", [{"session_id": "s-live", "started_at": now, "status": "running"}])
    remote = tmp_path / "sessions" / ".s-remote.parquet.00000000-1.abcdefgh.reserve.tmp"
    remote.write_bytes(b"x" * 4096)
    _session(store, "s-remote", owner_process="linux:other-boot:1:1", heartbeat_at=now)
    old = time.time() - 86400
    for path in (mine, remote):
        os.utime(path, (old, old))  # a day old: only their sessions say they are needed
    assert store.stale_temps() == []
    _session(store, "s-remote", owner_process="linux:other-boot:1:1", heartbeat_at=now - dt.timedelta(hours=1))
    assert store.stale_temps() == [(remote, "room kept by session s-remote, which is abandoned")]
    store.ensure_writable()
    assert not remote.exists() and mine.exists()
    store.write_table("sessions", "s-live", [{"session_id": "s-live", "started_at": now, "status": "finished"}])
    assert store.stale_temps() == [(mine, "room kept by session s-live, which is finished")]
    mine.unlink()


@pytest.mark.slow
def test_a_killed_runs_reserve_is_removed_by_the_next_run(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = [0.2, 20]"))
    store_dir = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    children: list[int] = []
    try:
        end = time.monotonic() + 120
        while not list((store_dir / "runs").glob("*.parquet")):
            assert proc.poll() is None and time.monotonic() < end
            time.sleep(0.05)
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        for pid in [proc.pid, *children]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    (reserve,) = (store_dir / "sessions").glob(".*.reserve.tmp")
    assert main(["run", str(plan), "--store", str(store_dir), "--resume", "--quiet"]) == 0
    assert not reserve.exists()
    assert [p for p in store_dir.rglob("*") if p.name.endswith(".tmp")] == []
    assert sorted(open_store(store_dir).sessions()["status"]) == ["abandoned", "finished"]
