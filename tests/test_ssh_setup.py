"""Bad SSH set-ups against a real OpenSSH server (issue 14, items 8 and 13): this host's own files (a known_hosts
file with a non-UTF-8 byte, an identity file that is missing, a public key or garbage) and a port where an HTTP
server listens. Each is one line naming the file (or the port) and where it was named: ``run`` refuses before
anything runs (exit 1, nothing stored), ``doctor`` says it in its first check instead of blaming the network or
the server, and a session that meets it anyway (the library, without the CLI's preflight) stores every job as a
transport error once, never retried, and closes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.sshd import SSHServer

from harness import open_store
from harness.cli import main
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import load_target, load_targets
from harness.doctor.checks import doctor
from harness.run.session import run_jobs

pytestmark = [pytest.mark.sshd, pytest.mark.usefixtures("own_ssh_dir")]

#: an accented comment in ISO-8859-1 (as an old editor writes it): one byte that is not UTF-8
LATIN1_COMMENT = "# hôte de test\n".encode("latin-1")


def _plan(tmp: Path, targets: list[str]) -> Path:
    path = tmp / "plan.toml"
    path.write_text(f'targets = {json.dumps(targets)}\nmodels = [{{ name = "m", backends = ["synthetic"] }}]\n'
                    "[policy]\nwarmup = 1\ntimed = 10\ntelemetry = false\nidle_s = 0\n")
    return path


def _target_file(tdir: Path, dev: SSHServer, **ssh: str) -> Path:
    tdir.mkdir(exist_ok=True)
    text = dev.target_toml("dev", python=sys.executable)
    for key, value in ssh.items():
        old = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(old, f"{key} = {json.dumps(value)}")
    path = tdir / "dev.toml"
    path.write_text(text)
    return path


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("hilbench: error: ")
    return lines[0]


def _bad_known_hosts(tmp: Path, dev: SSHServer) -> Path:
    path = tmp / "known_hosts_latin1"
    path.write_bytes(dev.known_hosts.read_bytes() + LATIN1_COMMENT)
    return path


def test_a_known_hosts_file_with_a_latin1_comment_is_one_line_naming_it(servers, tmp_path: Path, capsys):
    dev = servers("dev")
    bad = _bad_known_hosts(tmp_path, dev)
    tdir = tmp_path / "targets"
    tfile = _target_file(tdir, dev, known_hosts=str(bad))
    store = tmp_path / "res"
    # run: refused before anything runs, naming the target file's key and the line of the bad byte
    assert main(["run", str(_plan(tmp_path, ["dev"])), "--targets-dir", str(tdir), "--store", str(store)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line == (f"hilbench: error: {tfile}: ssh.known_hosts: {bad}: is not UTF-8 text (byte 0xf4 on line 2): "
                    "paramiko reads known_hosts as UTF-8; remove or re-encode that line (an accented comment is "
                    "enough)")
    assert not store.exists()
    # the same with --known-hosts on an inline target
    spec = f"ssh://{dev.user}@127.0.0.1:{dev.port}"
    assert main(["run", str(_plan(tmp_path, ["local"])), "--target", spec, "--identity", str(dev.keys.identity),
                 "--known-hosts", str(bad), "--store", str(store)]) == 1
    assert _one_error_line(capsys.readouterr().err).startswith(f"hilbench: error: --known-hosts {bad}: is not UTF-8")
    assert not store.exists()
    # doctor: its first check says so (no traceback, nothing blamed on the device)
    checks = doctor(load_target(tfile))
    assert [(c.name, c.status) for c in checks] == [("ssh files", "fail")]
    assert f"{bad}: is not UTF-8 text (byte 0xf4 on line 2)" in checks[0].detail
    assert main(["doctor", "--targets-dir", str(tdir), "dev"]) == 1
    out, err = capsys.readouterr()
    assert err == "" and "FAIL  ssh files" in out and "Traceback" not in out


def test_a_session_that_meets_a_bad_known_hosts_file_stores_each_job_once_and_closes(servers, tmp_path: Path):
    """Without the CLI's preflight (the library's run_jobs), the connection itself refuses the file: no worker
    thread dies with a UnicodeDecodeError, every job is stored as a transport error, the session is closed."""
    dev = servers("dev")
    tdir = tmp_path / "targets"
    _target_file(tdir, dev, known_hosts=str(_bad_known_hosts(tmp_path, dev)))
    plan = load_plan(_plan(tmp_path, ["dev"]))
    store = open_store(tmp_path / "res")
    result = run_jobs(expand_jobs(plan, load_targets([tdir])), store, plan=plan)
    (row,) = result.runs
    assert row["error_category"] == "transport"
    assert row["error_message"].startswith(f"dev: connect: known_hosts file {tmp_path / 'known_hosts_latin1'} is not "
                                           "UTF-8 text (byte 0xf4 on line 2)")
    assert "attempts" not in row["error_message"]  # a file here: never retried
    assert list(store.sessions()["status"]) == ["finished"]


@pytest.mark.parametrize("kind, problem", [
    ("missing", "not found"),
    ("public", "is a public key: give the private key {key}"),
    ("garbage", "is not a private key (an OpenSSH or PEM Ed25519, ECDSA or RSA key)"),
    ("folder", "is a folder, not a key file"),
])
def test_an_unusable_identity_file_is_refused_before_anything_runs(servers, tmp_path: Path, capsys, kind: str,
                                                                   problem: str):
    dev = servers("dev")
    key = str(dev.keys.identity)
    identity = {"missing": tmp_path / "no_such_key", "public": Path(key + ".pub"), "garbage": tmp_path / "garbage",
                "folder": tmp_path}[kind]
    if kind == "garbage":
        identity.write_bytes(b"\xff\xfe not a key\n")
    problem = problem.format(key=key)
    store = tmp_path / "res"
    spec = f"ssh://{dev.user}@127.0.0.1:{dev.port}"
    assert main(["run", str(_plan(tmp_path, ["local"])), "--target", spec, "--identity", str(identity),
                 "--known-hosts", str(dev.known_hosts), "--store", str(store)]) == 1
    assert _one_error_line(capsys.readouterr().err) == f"hilbench: error: --identity {identity}: {problem}"
    assert not store.exists()  # not retried, not stored as a transport failure: nothing ran
    tdir = tmp_path / "targets"
    tfile = _target_file(tdir, dev, identity_file=str(identity))
    assert main(["run", str(_plan(tmp_path, ["dev"])), "--targets-dir", str(tdir), "--store", str(store)]) == 1
    assert _one_error_line(capsys.readouterr().err) == \
        f"hilbench: error: {tfile}: ssh.identity_file: {identity}: {problem}"
    assert not store.exists()
    # doctor blames the file, not the server
    checks = doctor(load_target(tfile))
    assert [(c.name, c.status) for c in checks] == [("ssh files", "fail")]
    assert checks[0].detail.endswith(f"{identity}: {problem}") and "authorized_keys" not in checks[0].fix


def test_an_identity_file_that_is_fine_still_logs_in(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = tmp_path / "targets"
    _target_file(tdir, dev)
    assert main(["run", str(_plan(tmp_path, ["dev"])), "--targets-dir", str(tdir), "--store", str(tmp_path / "res"),
                 "--quiet"]) == 0


class _HTTP:
    """The standard library's HTTP server on a loopback port, counting the connections it accepts."""

    def __init__(self) -> None:
        owner = self
        self.accepted = 0

        class Handler(BaseHTTPRequestHandler):
            timeout = 30

            def setup(self) -> None:
                owner.accepted += 1
                super().setup()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_doctor_and_run_tell_an_http_server_on_the_ssh_port_from_a_network_fault(keys, tmp_path: Path, capsys):
    """The server says nothing until spoken to: after GREETING_GRACE_S (at most) a second connection asks it, and
    its HTTP answer names the port as the fault; doctor no longer blames the network and run does not retry."""
    http = _HTTP()
    try:
        tdir = tmp_path / "targets"
        tdir.mkdir()
        (tdir / "web.toml").write_text(
            f'transport = "ssh"\naddress = "root@127.0.0.1:{http.port}"\n[ssh]\nidentity_file = "{keys.identity}"\n'
            "use_ssh_config = false\nconnect_timeout_s = 20\n")
        checks = doctor(load_target(tdir / "web.toml"))
        assert [(c.name, c.status) for c in checks] == [("reachable", "fail")]
        assert f"127.0.0.1:{http.port} is not an SSH server (it said nothing until spoken to" in checks[0].detail
        assert checks[0].fix.startswith("check the port") and "network" not in checks[0].fix
        assert http.accepted == 2  # the silent connection and the one that asked
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(_plan(tmp_path, ["web"])),
                               "--targets-dir", str(tdir), "--store", str(tmp_path / "res"), "--quiet"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
        (row,) = open_store(tmp_path / "res").runs().to_dict("records")
        assert row["error_message"].startswith(f"web: connect: 127.0.0.1:{http.port} is not an SSH server")
        assert http.accepted == 4  # once more each: not retried three times
    finally:
        http.close()


def test_a_first_connection_that_fails_says_connect_not_reconnect(servers, tmp_path: Path):
    dev = servers("dev")
    tdir = tmp_path / "targets"
    _target_file(tdir, dev)
    dev.stop()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(_plan(tmp_path, ["dev"])), "--targets-dir",
                           str(tdir), "--store", str(tmp_path / "res"), "--quiet"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr
    (row,) = open_store(tmp_path / "res").runs().to_dict("records")
    assert row["error_message"] == (f"dev: connect: no connection after 3 attempts: connection refused at "
                                    f"127.0.0.1:{dev.port}: is sshd running on the device, and is the port right?")
