"""The SSH transport and fleet fault handling against REAL OpenSSH servers on loopback ports.

Each device is ``/usr/sbin/sshd`` (tests/support/sshd.py) with generated host and user keys; the device's
Python is this host's (it has onnxruntime) or the pyenv 3.6 interpreter for the too-old case. Most jobs
use the synthetic stand-in backend (it sleeps; it can fail, crash or hang on request); one runs real
onnxruntime. Without sshd these tests skip, except under CI (env CI set), where they fail.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

import pytest
from support.helpers import ctrl_c_mid_run, missing_in_ci, pyenv_python
from support.sshd import SSHServer, UserKeys, free_port, keygen
from support.sshd import agents_of as _agents_of

from harness import open_store
from harness.cli import main
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import LOCAL, load_target, load_targets
from harness.doctor.checks import doctor, format_checks
from harness.errors import HostKeyError, TransportError
from harness.run.session import Progress, run_jobs

pytestmark = [pytest.mark.sshd, pytest.mark.usefixtures("own_ssh_dir")]
MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"


def unavailable(reason: str) -> NoReturn:
    missing_in_ci("the real-sshd tests", reason)


def write_targets(tmp: Path, devices: dict[str, SSHServer], python: str = sys.executable, extra_ssh: str = "",
                  extra: str = "") -> Path:
    tdir = tmp / "targets"
    tdir.mkdir(exist_ok=True)
    for name, server in devices.items():
        (tdir / f"{name}.toml").write_text(server.target_toml(name, python=python, extra_ssh=extra_ssh, extra=extra))
    return tdir


def synth_plan(tmp: Path, targets: list[str], *, latency_ms: object = 0.5, timed: int = 40, extra: str = "",
               policy: str = "", name: str = "plan.toml") -> Path:
    path = tmp / name
    path.write_text(
        f'name = "fleet"\ntargets = {json.dumps(targets)}\n'
        '[[models]]\nname = "fake"\nbackends = ["synthetic"]\n'
        f"[backends.synthetic]\nlatency_ms = {json.dumps(latency_ms)}\n{extra}\n"
        f"[policy]\nwarmup = 3\ntimed = {{ count = {timed} }}\ntelemetry = false\n{policy}\n"
    )
    return path


def run_cli(plan: Path, tdir: Path, store: Path, *more: str) -> int:
    return main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store), "--quiet", *more])


def wait_for(predicate, timeout: float = 20.0, step: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def _pidfiles(server: SSHServer) -> list[Path]:
    return sorted((server.folder / "device-cache" / "journal").glob("*.pid"))


def _journals(server: SSHServer) -> list[Path]:
    return sorted((server.folder / "device-cache" / "journal").glob("*.jsonl"))


def _in_thread(fn, *args) -> tuple[threading.Thread, dict[str, object]]:
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn(*args)), daemon=True)
    thread.start()
    return thread, out


# --- a fleet ---------------------------------------------------------------------------------------


def test_plan_on_three_devices_runs_in_parallel_with_progress(servers, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]):
    devices = {f"dev{i}": servers(f"dev{i}") for i in range(3)}
    tdir = write_targets(tmp_path, devices)
    plan = synth_plan(tmp_path, list(devices), latency_ms=[2.0, 1.0], timed=150)
    store_dir = tmp_path / "res"
    code = main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir)])
    captured = capsys.readouterr()
    runs = open_store(store_dir).runs()
    assert code == 0, runs[["target", "error_message"]].to_string()
    assert len(runs) == 6 and set(runs["status"]) == {"ok"} and (runs["timed_count"] == 150).all()
    assert set(runs["transport"]) == {"ssh"} and set(runs["python"]) == {".".join(map(str, sys.version_info[:3]))}
    # Jobs on different devices overlapped in time; jobs on one device did not.
    firsts = runs.sort_values("started_at").groupby("target").first()
    assert firsts["started_at"].max() < firsts["finished_at"].min()
    for _, group in runs.sort_values("started_at").groupby("target"):
        assert group["started_at"].iloc[1] >= group["finished_at"].iloc[0]
    # Progress from three worker threads: whole lines, one per job (nothing interleaved).
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert sum(1 for ln in lines if ": ok:" in ln) == 6, captured.err
    assert all(ln.startswith(("[", "session ")) for ln in lines), captured.err
    assert {t for t in devices if any(f"on {t} " in ln for ln in lines)} == set(devices)
    # The agent went once to each device, into its content-addressed cache.
    assert all((s.folder / "device-cache" / "agents").glob("*.pyz") for s in devices.values())
    assert (runs.groupby("target")["bytes_sent"].max() > 0).all()


def test_cache_second_run_sends_no_bytes_with_real_onnxruntime(servers, tmp_path: Path):
    pytest.importorskip("onnxruntime")
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"pi": dev})
    model = MODELS / "digits_cnn_fp32.onnx"
    plan = tmp_path / "plan.toml"
    plan.write_text(f'name = "cache"\ntargets = ["pi"]\n[[models]]\nname = "digits"\npath = "{model}"\n'
                    'backends = ["onnxruntime"]\n[policy]\nwarmup = 2\ntimed = { count = 20 }\ntelemetry = false\n')
    store_dir = tmp_path / "res"
    assert run_cli(plan, tdir, store_dir) == 0
    assert run_cli(plan, tdir, store_dir) == 0
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["ok", "ok"] and set(runs["backend"]) == {"onnxruntime"}
    first, second = runs["bytes_sent"].tolist()
    assert first >= model.stat().st_size + 10_000  # the model and the agent
    assert second == 0
    cache = dev.folder / "device-cache"
    import hashlib

    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    assert (cache / "blobs" / f"{sha}.onnx").read_bytes() == model.read_bytes()
    assert not list(cache.rglob("*.tmp-*"))


# --- host keys and login ------------------------------------------------------------------------


def _target(server: SSHServer, tmp: Path, name: str = "dev", **ssh: object) -> object:
    extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in ssh.items() if k != "known_hosts")
    text = server.target_toml(name, python=sys.executable, extra_ssh=extra)
    if "known_hosts" in ssh:
        text = text.replace(f'known_hosts = {json.dumps(str(server.known_hosts))}',
                            f"known_hosts = {json.dumps(str(ssh['known_hosts']))}")
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return load_target(path)


def test_unknown_host_key_is_refused_with_how_to_trust_it_then_accept_new_records_it(servers, tmp_path: Path):
    from harness.transport.ssh import SSHTransport

    dev = servers("dev")
    kh = tmp_path / "empty_known_hosts"
    kh.write_text("")
    with pytest.raises(HostKeyError) as err:
        SSHTransport(_target(dev, tmp_path, known_hosts=kh)).connect()
    msg = str(err.value)
    assert "\n" not in msg and "unknown" in msg and "SHA256:" in msg
    assert f"ssh-keyscan -p {dev.port} 127.0.0.1 >> {kh}" in msg and "accept_new_host_keys = true" in msg
    assert kh.read_text() == ""
    # accept_new: trust on first use, written to the target's known_hosts ...
    t = SSHTransport(_target(dev, tmp_path, known_hosts=kh, accept_new_host_keys=True))
    t.connect()
    t.close()
    assert kh.read_text().split()[:3] == dev.known_hosts_line().split()[:3]
    # ... and verified from then on without it.
    t = SSHTransport(_target(dev, tmp_path, known_hosts=kh))
    t.connect()
    t.close()


def test_changed_host_key_is_refused_even_with_accept_new(servers, tmp_path: Path):
    from harness.transport.ssh import SSHTransport

    dev = servers("dev")
    other = keygen(tmp_path / "other_host_key")
    kind, blob = Path(str(other) + ".pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"{dev.spec} {kind} {blob}\n")
    for accept in (False, True):
        with pytest.raises(HostKeyError) as err:
            SSHTransport(_target(dev, tmp_path, known_hosts=kh, accept_new_host_keys=accept)).connect()
        msg = str(err.value)
        assert "CHANGED" in msg and f"ssh-keygen -R '{dev.spec}' -f {kh}" in msg and "\n" not in msg
    assert kh.read_text() == f"{dev.spec} {kind} {blob}\n"  # nothing was added


def test_wrong_user_key_is_refused_and_stored_as_transport_errors(servers, tmp_path: Path):
    dev = servers("dev")
    wrong = keygen(tmp_path / "wrong_key")
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "dev.toml").write_text(dev.target_toml("dev", python=sys.executable).replace(
        str(dev.keys.identity), str(wrong)))
    plan = synth_plan(tmp_path, ["dev"], latency_ms=[0.3, 0.4])
    assert run_cli(plan, tdir, tmp_path / "res") == 3
    runs = open_store(tmp_path / "res").runs()
    assert len(runs) == 2 and set(runs["error_category"]) == {"transport"}
    msg = runs["error_message"].iloc[0]
    assert "login as" in msg and "refused" in msg and str(wrong) in msg and "authorized_keys" in msg
    assert "\n" not in msg and "Traceback" not in msg


def test_password_comes_only_from_the_named_environment_variable(servers, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """A server that takes passwords only: the password offered is the one in the named variable. (No test
    account has a known password here, so the login is refused; sshd's log shows a password was tried.)"""
    from harness.transport.ssh import SSHTransport

    dev = servers("dev", extra_config="PasswordAuthentication yes\nPubkeyAuthentication no\n")
    monkeypatch.delenv("HILBENCH_TEST_PW", raising=False)
    with pytest.raises(TransportError, match=r"\$HILBENCH_TEST_PW, which is not set"):
        SSHTransport(_target(dev, tmp_path, password_env="HILBENCH_TEST_PW")).connect()
    assert "Failed password" not in dev.log.read_text()
    # Without password_env no password is offered at all ...
    with pytest.raises(TransportError, match="refused"):
        SSHTransport(_target(dev, tmp_path)).connect()
    assert "Failed password" not in dev.log.read_text()
    # ... with it, the variable's value is.
    monkeypatch.setenv("HILBENCH_TEST_PW", "wrong-password")
    with pytest.raises(TransportError, match="refused"):
        SSHTransport(_target(dev, tmp_path, password_env="HILBENCH_TEST_PW")).connect()
    wait_for(lambda: f"Failed password for {dev.user} from 127.0.0.1" in dev.log.read_text(), timeout=5)


def test_keepalive_packets_reach_the_server(servers, tmp_path: Path):
    from harness.transport.ssh import SSHTransport

    dev = servers("dev", extra_config="LogLevel DEBUG1\n")
    t = SSHTransport(_target(dev, tmp_path))
    t.connect()
    try:
        mark = len(dev.log.read_text())
        # keepalive_s = 2 in the test targets: an idle connection sends one every 2 s.
        wait_for(lambda: "keepalive@lag.net" in dev.log.read_text()[mark:], timeout=8)
    finally:
        t.close()


def test_ssh_config_alias_and_proxy_jump(servers, tmp_path: Path, own_ssh_dir: Path):
    dev, jump = servers("dev"), servers("jump")
    (own_ssh_dir / "config").write_text(
        f"Host labpi\n  HostName 127.0.0.1\n  Port {dev.port}\n  User root\n  IdentityFile {dev.keys.identity}\n"
        "  ProxyJump bastion\n"
        f"Host bastion\n  HostName 127.0.0.1\n  Port {jump.port}\n  User root\n  IdentityFile {dev.keys.identity}\n")
    (own_ssh_dir / "known_hosts").write_text(dev.known_hosts_line() + jump.known_hosts_line())
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "labpi.toml").write_text(
        f'name = "labpi"\ntransport = "ssh"\nhost = "labpi"\npython = "{sys.executable}"\n'
        f'workdir = "{dev.folder / "device-cache"}"\n')
    plan = synth_plan(tmp_path, ["labpi"])
    assert run_cli(plan, tdir, tmp_path / "res") == 0
    runs = open_store(tmp_path / "res").runs()
    assert list(runs["status"]) == ["ok"]
    assert (dev.folder / "device-cache" / "agents").is_dir()
    assert "Accepted publickey for root" in jump.log.read_text()  # the login went through the jump host


# --- faults -------------------------------------------------------------------------------------


def test_server_killed_mid_job_and_restarted_recovers_the_result_from_the_journal(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan = synth_plan(tmp_path, ["dev"], latency_ms=2.0, timed=700)
    store_dir = tmp_path / "res"
    thread, out = _in_thread(run_cli, plan, tdir, store_dir)
    wait_for(lambda: _pidfiles(dev))
    time.sleep(0.3)
    assert dev.kill_connections() >= 1  # the network drops; the agent keeps running on the device
    dev.stop()
    time.sleep(0.8)
    dev.start()
    thread.join(60)
    assert not thread.is_alive() and out["value"] == 0
    runs = open_store(store_dir).runs()
    assert list(runs["status"]) == ["ok"] and runs["timed_count"].iloc[0] == 700
    assert len(_journals(dev)) == 1  # recovered from the journal, not run again
    samples = open_store(store_dir).samples()
    assert (samples["phase"] == "timed").sum() == 700


def test_server_and_agent_killed_mid_job_reruns_the_job(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan = synth_plan(tmp_path, ["dev"], latency_ms=2.0, timed=300)
    store_dir = tmp_path / "res"
    thread, out = _in_thread(run_cli, plan, tdir, store_dir)
    pidfile = wait_for(lambda: _pidfiles(dev))[0]
    time.sleep(0.2)
    agent_pid = int(pidfile.read_text().split()[1])
    dev.stop()  # listener and connections
    os.kill(agent_pid, signal.SIGKILL)  # and the board lost the agent too (rebooted)
    time.sleep(0.5)
    dev.start()
    thread.join(60)
    assert not thread.is_alive() and out["value"] == 0
    runs = open_store(store_dir).runs()
    assert list(runs["status"]) == ["ok"] and runs["timed_count"].iloc[0] == 300
    assert len(_journals(dev)) == 2  # the first attempt's journal has no result: it ran again


def test_agent_killed_mid_job_is_stored_with_its_signal_and_the_next_job_goes_on(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan = synth_plan(tmp_path, ["dev"], latency_ms=[2.0, 0.2], timed=2000)
    store_dir = tmp_path / "res"
    thread, out = _in_thread(run_cli, plan, tdir, store_dir)
    pidfile = wait_for(lambda: _pidfiles(dev))[0]
    time.sleep(0.3)
    os.kill(int(pidfile.read_text().split()[1]), signal.SIGKILL)  # as the OOM killer would
    thread.join(60)
    assert not thread.is_alive() and out["value"] == 3
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["error", "ok"]
    first = runs.iloc[0]
    assert first["error_category"] == "agent" and "killed by SIGKILL" in first["error_message"]
    assert "out of memory?" in first["error_message"]


def test_job_exceeding_its_timeout_is_stored_and_leaves_no_agent_running(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan = synth_plan(tmp_path, ["dev"], latency_ms=0.3, extra="hang_at = [5, 100000]",
                      policy="timeout_s = 2.5")
    store_dir = tmp_path / "res"
    t0 = time.monotonic()
    assert run_cli(plan, tdir, store_dir) == 3
    assert time.monotonic() - t0 < 20
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["error", "ok"]
    assert runs.iloc[0]["error_category"] == "timeout" and "2.5 s" in runs.iloc[0]["error_message"]
    wait_for(lambda: not _agents_of(dev), timeout=5)  # the hung agent was killed on the device
    assert not _pidfiles(dev)


def test_corrupt_upload_is_caught_by_the_hash_check_on_the_device(servers, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    import io

    import paramiko

    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    model = MODELS / "digits_cnn_int8.onnx"
    plan = tmp_path / "plan.toml"
    plan.write_text(f'name = "c"\ntargets = ["dev"]\n[[models]]\nname = "digits"\npath = "{model}"\n'
                    'backends = ["onnxruntime"]\n[policy]\nwarmup = 1\ntimed = { count = 5 }\ntelemetry = false\n')
    real_putfo = paramiko.SFTPClient.putfo
    corrupt = {"times": 99}

    def flaky_putfo(self, fl, remotepath, file_size=0, callback=None, confirm=True):
        data = bytearray(fl.read())
        if corrupt["times"] > 0 and "/blobs/" in remotepath:
            corrupt["times"] -= 1
            data[len(data) // 2] ^= 0xFF  # one flipped byte on the way
        return real_putfo(self, io.BytesIO(bytes(data)), remotepath, file_size, callback, confirm)

    monkeypatch.setattr(paramiko.SFTPClient, "putfo", flaky_putfo)
    store_dir = tmp_path / "res"
    assert run_cli(plan, tdir, store_dir) == 3
    run = open_store(store_dir).runs().iloc[0]
    assert run["error_category"] == "transport" and "arrived corrupted" in run["error_message"]
    blobs = dev.folder / "device-cache" / "blobs"
    assert list(blobs.iterdir()) == []  # neither the bad file under its cache name nor a temporary
    # One bad transfer is retried: the second copy arrives whole and the job runs.
    corrupt["times"] = 1
    assert run_cli(plan, tdir, store_dir) == 0
    assert len(list(blobs.iterdir())) == 1


def test_resume_after_an_interrupted_run(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan_path = synth_plan(tmp_path, ["dev"], latency_ms=[0.3, 0.4, 0.5], timed=30)
    plan = load_plan(plan_path)
    jobs = expand_jobs(plan, load_targets([tdir]))
    store = open_store(tmp_path / "res")
    runner_box: list[object] = []

    class StopAfterFirst(Progress):
        def job_finished(self, job, row):
            runner_box[0].interrupt()  # type: ignore[attr-defined]

    first = run_jobs(jobs, store, plan=plan, progress=StopAfterFirst(), on_runner=runner_box.append)
    assert [r["status"] for r in first.runs] == ["ok"]
    assert run_cli(plan_path, tdir, tmp_path / "res", "--resume") == 0
    runs = open_store(tmp_path / "res").runs()
    ok = runs[runs["status"] == "ok"]
    assert len(ok) == 3 and ok["job_key"].nunique() == 3
    sessions = open_store(tmp_path / "res").sessions()
    assert sorted(sessions["jobs"].tolist()) == [2, 3]  # the resumed session ran only what was missing


def test_device_python_too_old_is_refused_and_doctor_flags_it(servers, tmp_path: Path):
    old = pyenv_python("3.6")
    if old is None:
        unavailable("the pyenv 3.6 interpreter (the too-old device Python) is not installed")
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"old": dev}, python=old)
    plan = synth_plan(tmp_path, ["old"])
    assert run_cli(plan, tdir, tmp_path / "res") == 3
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert "Python 3.6" in run["error_message"] and "too old" in run["error_message"]
    checks = {c.name: c for c in doctor(load_target(tdir / "old.toml"))}
    assert checks["login"].ok is True and checks["python"].ok is False and "too old" in checks["python"].detail
    # The agent itself says the same in protocol terms when started by hand with that Python.
    from support.helpers import run_agent, write_agent

    code, messages, _ = run_agent(old, write_agent(tmp_path), {"v": 1})
    assert code == 2 and messages[-1]["type"] == "error" and "too old" in messages[-1]["message"]


def test_unreachable_device_is_stored_as_transport_errors_and_the_fleet_goes_on(servers, tmp_path: Path):
    live = servers("live")
    tdir = write_targets(tmp_path, {"live": live})
    closed = free_port()
    dead = live.target_toml("dead", python=sys.executable).replace(f":{live.port}", f":{closed}")
    (tdir / "dead.toml").write_text(dead)
    plan = synth_plan(tmp_path, ["dead", "live"], latency_ms=[0.3, 0.4])
    assert run_cli(plan, tdir, tmp_path / "res") == 3
    runs = open_store(tmp_path / "res").runs().set_index("target")
    assert (runs.loc["live", "status"] == "ok").all()
    assert (runs.loc["dead", "error_category"] == "transport").all()
    assert runs.loc["dead", "error_message"].str.contains(f"connection refused at 127.0.0.1:{closed}").all()


def test_inline_ssh_target_with_identity_and_known_hosts(servers, tmp_path: Path):
    dev = servers("dev")
    plan = synth_plan(tmp_path, ["local"])
    code = main(["run", str(plan), "--store", str(tmp_path / "res"), "--quiet",
                 "--target", f"ssh://root@127.0.0.1:{dev.port}", "--identity", str(dev.keys.identity),
                 "--known-hosts", str(dev.known_hosts)])
    runs = open_store(tmp_path / "res").runs()
    assert code == 0, runs["error_message"].tolist()
    assert list(runs["target"]) == [f"root@127.0.0.1:{dev.port}"] and list(runs["transport"]) == ["ssh"]


# --- doctor -------------------------------------------------------------------------------------


def test_doctor_explains_each_check_over_ssh_and_locally(servers, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev}, extra='runtimes = ["onnxruntime", "tensorrt"]')
    target = load_target(tdir / "dev.toml")
    checks = doctor(target)
    by_name = {c.name: c for c in checks}
    for name in ("reachable", "host key", "login", "python", "agent", "runtimes", "execution providers", "sensors",
                 "free disk", "memory", "CPU governor"):
        assert name in by_name, [c.name for c in checks]
    assert by_name["reachable"].ok and by_name["login"].ok and by_name["python"].ok
    assert by_name["runtimes"].ok is False and "tensorrt" in by_name["runtimes"].detail  # listed, not installed
    text = format_checks(target, checks)
    assert text.splitlines()[0].startswith("dev (ssh root@127.0.0.1:") and len(text.splitlines()) == len(checks) + 1
    assert "FAIL  runtimes" in text and "->" in text.split("FAIL  runtimes")[1].splitlines()[0]

    assert main(["doctor", "--targets-dir", str(tdir), "dev"]) == 1  # tensorrt is listed but missing
    dev.stop()
    down = doctor(target)
    assert [c.name for c in down] == ["reachable"] and down[0].ok is False and "connection refused" in down[0].detail

    assert "FAIL  runtimes" in capsys.readouterr().out
    local = {c.name: c for c in doctor(LOCAL)}
    assert local["python"].ok and local["agent"].ok and "free disk" in local


# --- connecting: ports where nothing speaks SSH, timeouts, retries ---------------------------------------


class _Listener:
    """A plain TCP listener on a loopback port: ``garbage`` answers every connection with an HTTP line and
    keeps it open, ``bad-packets`` with an SSH greeting and then bytes that are no SSH packet, ``silent`` accepts and says nothing, ``full`` never accepts and fills its backlog so
    that a new connection gets no answer at all (a connect timeout)."""

    def __init__(self, mode: str) -> None:
        import socket

        self.accepted = 0
        if mode == "http":  # a real HTTP server (the standard library's): it waits for a request, then answers it
            self._http_server()
            return
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0 if mode == "full" else 16)
        self.port = self.sock.getsockname()[1]
        self.held: list[object] = []
        if mode == "full":
            filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            self.held.append(filler)
            return
        threading.Thread(target=self._serve, args=(mode,), daemon=True).start()

    def _http_server(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        listener = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 30

            def setup(self) -> None:
                listener.accepted += 1
                super().setup()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.held = []
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def _serve(self, mode: str) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)
            if mode == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            elif mode == "bad-packets":  # a greeting, then nonsense: the SSH library fails (and logs) mid-handshake
                conn.sendall(b"SSH-2.0-OpenSSH_9.9\r\n" + b"\xff" * 64)

    def close(self) -> None:
        if hasattr(self, "http"):
            self.http.shutdown()
            self.http.server_close()
            return
        for c in self.held:
            c.close()  # type: ignore[attr-defined]
        self.sock.close()


def _listener_target(tdir: Path, name: str, port: int, keys: UserKeys, timeout_s: float = 1) -> None:
    tdir.mkdir(exist_ok=True)
    (tdir / f"{name}.toml").write_text(
        f'name = "{name}"\ntransport = "ssh"\naddress = "root@127.0.0.1:{port}"\n[ssh]\n'
        f'identity_file = "{keys.identity}"\nuse_ssh_config = false\nconnect_timeout_s = {timeout_s}\n')


@pytest.mark.parametrize("mode, message", [
    ("garbage", "odd: connect: 127.0.0.1:{port} is not an SSH server (it said 'HTTP/1.1 400 Bad Request'): check the "
                "port"),
    # an HTTP server says nothing until asked: a second connection asks it (issue 14, item 13: it took ~52 s)
    ("http", "odd: connect: 127.0.0.1:{port} is not an SSH server (it said nothing until spoken to, then answered an "
             "SSH greeting with '<!DOCTYPE HTML>'): check the port"),
    ("bad-packets", "the SSH handshake with 127.0.0.1:{port} failed (Invalid packet blocking): is a working SSH "
                    "server on that port?"),
    ("silent", "within 1 s: the port accepts connections but nothing there speaks SSH"),
    ("full", "no answer from 127.0.0.1:{port} within 1 s: is the device on and reachable"),
])
def test_a_port_that_is_not_ssh_is_a_one_line_stored_error_without_paramiko_noise(keys, tmp_path: Path, mode: str,
                                                                                    message: str):
    import subprocess

    listener = _Listener(mode)
    try:
        tdir = tmp_path / "targets"
        _listener_target(tdir, "odd", listener.port, keys)
        plan = synth_plan(tmp_path, ["odd"])
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(plan), "--targets-dir", str(tdir),
                               "--store", str(tmp_path / "res")], capture_output=True, text=True, timeout=120)
        took = time.monotonic() - t0
    finally:
        listener.close()
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception (client)" not in proc.stderr, proc.stderr
    assert "paramiko" not in proc.stderr and "No existing session" not in proc.stderr
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "transport" and "\n" not in run["error_message"]
    assert message.format(port=listener.port) in run["error_message"], run["error_message"]
    if mode in ("garbage", "http"):  # not an SSH server: retrying cannot help, so nothing is retried
        assert "attempts" not in run["error_message"]
        assert listener.accepted == (2 if mode == "http" else 1)  # (the question on a second connection)
    else:
        assert "connect: no connection after 3 attempts: " in run["error_message"]  # a blip is retried, boundedly
    assert took < 30


def test_connect_retries_at_start_up_ride_over_a_blip(servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from harness.transport.ssh import SSHTransport

    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan = synth_plan(tmp_path, ["dev"], latency_ms=[0.3, 0.4])
    dev.stop()
    real_connect = SSHTransport.connect
    failures: list[str] = []

    def connect(self: SSHTransport) -> None:
        try:
            real_connect(self)
        except TransportError as exc:
            failures.append(str(exc))
            if dev.proc is None:
                dev.start()  # the blip ends right after the first attempt failed
            raise

    monkeypatch.setattr(SSHTransport, "connect", connect)
    assert run_cli(plan, tdir, tmp_path / "res") == 0
    assert len(failures) == 1 and "connection refused" in failures[0]
    assert list(open_store(tmp_path / "res").runs()["status"]) == ["ok", "ok"]


def test_an_sftp_subsystem_that_never_answers_is_bounded_by_the_command_timeout(servers, tmp_path: Path):
    hang = tmp_path / "sftp-hang.sh"
    pids = tmp_path / "sftp-hang.pids"
    hang.write_text(f"#!/bin/sh\necho $$ >> {pids}\nexec sleep 1000\n")
    hang.chmod(0o755)
    dev = servers("dev", sftp_command=str(hang))
    tdir = write_targets(tmp_path, {"dev": dev})
    (tdir / "dev.toml").write_text((tdir / "dev.toml").read_text().replace("command_timeout_s = 30",
                                                                           "command_timeout_s = 3"))
    plan = synth_plan(tmp_path, ["dev"], policy="timeout_s = 10")
    try:
        t0 = time.monotonic()
        assert run_cli(plan, tdir, tmp_path / "res") == 3
        took = time.monotonic() - t0
    finally:
        for pid in (pids.read_text().split() if pids.exists() else []):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "transport"
    assert "SFTP server did not answer within 3 s (ssh.command_timeout_s)" in run["error_message"]
    # The session's device probe and the job each wait at most 3 s for it.
    assert took < 20, took


def test_timed_phase_timeout_over_ssh_kills_the_agent_on_the_device(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan = synth_plan(tmp_path, ["dev"], latency_ms=5.0, timed=5000, policy="timeouts = { timed_s = 1 }")
    t0 = time.monotonic()
    assert run_cli(plan, tdir, tmp_path / "res") == 3
    assert time.monotonic() - t0 < 20
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["error_category"] == "timeout"
    assert "the timed phase exceeded its timeout of 1 s (policy.timeouts.timed_s)" in run["error_message"]
    wait_for(lambda: not _agents_of(dev), timeout=5)
    assert not _pidfiles(dev)


# --- one device, many names; bytes per run; facts; Ctrl-C --------------------------------------------------


def test_two_names_for_one_device_never_measure_at_once(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"a": dev, "b": dev})
    plan = synth_plan(tmp_path, ["a"], latency_ms=[2.0, 2.1], timed=100)
    code = main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(tmp_path / "res"), "--quiet",
                 "--target", "a", "--target", "b", "--target", f"ssh://{dev.user}@127.0.0.1:{dev.port}",
                 "--identity", str(dev.keys.identity), "--known-hosts", str(dev.known_hosts)])
    runs = open_store(tmp_path / "res").runs().sort_values("started_at")
    assert code == 0, runs["error_message"].tolist()
    assert runs["target"].nunique() == 3 and len(runs) == 6
    starts, ends = runs["started_at"].tolist(), runs["finished_at"].tolist()
    assert all(starts[i + 1] >= ends[i] for i in range(len(runs) - 1)), runs[["target", "started_at", "finished_at"]]


def test_bytes_sent_are_per_run_and_device_facts_are_stored_with_every_run(servers, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]):
    from harness.agent.bundle import agent_bundle

    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    m1, m2 = MODELS / "digits_cnn_int8.onnx", MODELS / "digits_cnn_fp32.onnx"
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "two"\ntargets = ["dev"]\n'
                    f'[[models]]\nname = "m1"\npath = "{m1}"\nbackends = ["synthetic"]\n'
                    f'[[models]]\nname = "m2"\npath = "{m2}"\nbackends = ["synthetic"]\n'
                    "[policy]\nwarmup = 1\ntimed = { count = 5 }\ntelemetry = false\n")
    store_dir = tmp_path / "res"
    assert main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"]) == 0
    runs = open_store(store_dir).runs().set_index("model")
    agent = len(agent_bundle().data)
    # The agent goes with the device's first job (the session's probe shipped it), each model with its own.
    assert runs.loc["m1", "bytes_sent"] == agent + m1.stat().st_size
    assert runs.loc["m2", "bytes_sent"] == m2.stat().st_size
    total = agent + m1.stat().st_size + m2.stat().st_size
    out = capsys.readouterr().out
    assert f"; {total / 1e3:.1f} kB sent to devices;" in out
    assert main(["show", runs.loc["m2", "run_id"], "--store", str(store_dir)]) == 0
    assert f"({m2.stat().st_size} bytes) sent for this run" in capsys.readouterr().out
    # Every run carries what doctor shows about the device: all runtimes, and the checks derived from them.
    for text in runs["device_facts"]:
        facts = json.loads(text)
        assert "onnxruntime" in facts["probe"]["backends"] and facts["probe"]["python"]
        names = {c["name"] for c in facts["checks"]}
        assert {"runtimes", "execution providers", "CPU governor", "free disk", "memory"} <= names
    assert len({text for text in runs["device_facts"]}) == 1  # probed once for the session
    assert len(list((dev.folder / "device-cache" / "probe").glob("*.jsonl"))) == 1
    assert _journals(dev) and not list((dev.folder / "device-cache" / "journal").glob("doctor-*"))
    # A second run sends nothing.
    assert main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"]) == 0
    assert "; 0 B sent to devices;" in capsys.readouterr().out


def test_ctrl_c_over_ssh_stores_the_job_in_flight_as_interrupted(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = write_targets(tmp_path, {"dev": dev})
    plan = synth_plan(tmp_path, ["dev"], latency_ms=[0.3, 5.0, 5.1], timed=2000)
    store_dir = tmp_path / "res"
    def agent_in_flight() -> int | None:
        pidfiles = _pidfiles(dev)
        if len(list((store_dir / "runs").glob("*.parquet"))) != 1 or len(pidfiles) != 1:
            return None
        fields = pidfiles[0].read_text().split()
        return int(fields[1]) if len(fields) > 1 else None

    agent_pid, _ = ctrl_c_mid_run([str(plan), "--targets-dir", str(tdir), "--store", str(store_dir)],
                                  agent_in_flight, settle_s=0.5)
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["ok", "error"]
    assert runs["error_category"].iloc[1] == "interrupted" and "SIGKILL" not in runs["error_message"].iloc[1]
    assert list(open_store(store_dir).sessions()["status"]) == ["interrupted"]
    assert {p.stem for p in (store_dir / "samples").glob("*.parquet")} <= set(runs["run_id"])
    assert not [p for p in store_dir.rglob("*.tmp")]
    wait_for(lambda: not os.path.exists(f"/proc/{agent_pid}") or
             Path(f"/proc/{agent_pid}/stat").read_text().split()[2] == "Z", timeout=10)


def test_doctor_hints_give_the_command_that_fixes_host_keys_and_logins(servers, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]):
    dev = servers("dev")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    spec = f"ssh://{dev.user}@127.0.0.1:{dev.port}"
    # Unknown key, inline target: the ssh-keyscan line, and the flag that trusts it.
    assert main(["doctor", spec, "--identity", str(dev.keys.identity), "--known-hosts", str(empty)]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "host key" in ln)
    fix = line.split("->", 1)[1]
    assert f"ssh-keyscan -p {dev.port} 127.0.0.1 >> {empty}" in fix and "--accept-new-host-keys" in fix
    assert "see the message" not in out
    # ... and the flag does trust it (written to that file), so the rest of the checks run.
    assert main(["doctor", spec, "--identity", str(dev.keys.identity), "--known-hosts", str(empty),
                 "--accept-new-host-keys"]) in (0, 1)
    out = capsys.readouterr().out
    assert "ok    host key" in out and "ok    login" in out, out
    assert dev.spec in empty.read_text()
    # A changed key: the ssh-keygen -R line.
    other = keygen(tmp_path / "other_host_key")
    kind, blob = Path(str(other) + ".pub").read_text().split()[:2]
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"{dev.spec} {kind} {blob}\n")
    checks = {c.name: c for c in doctor(_target(dev, tmp_path, known_hosts=changed))}
    assert checks["host key"].ok is False and f"ssh-keygen -R '{dev.spec}' -f {changed}" in checks["host key"].fix
    # A key the device refuses: which key was tried, and where to name another.
    wrong = keygen(tmp_path / "wrong_key")
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "dev.toml").write_text(dev.target_toml("dev", python=sys.executable).replace(
        str(dev.keys.identity), str(wrong)))
    checks = {c.name: c for c in doctor(load_target(tdir / "dev.toml"))}
    fix = checks["login"].fix
    assert checks["login"].ok is False and f"tried {wrong}" in fix
    assert f"ssh-copy-id -i {wrong}.pub -p {dev.port} {dev.user}@127.0.0.1" in fix
    assert f"identity_file in the [ssh] table of {tdir / 'dev.toml'}" in fix
