"""A hostile device against the SSH and ADB transports, for real (issue 18, items 2 and 5).

The device is a real OpenSSH server (tests/support/sshd.py) or the adbd stand-in (tests/support/adbd_standin.py) driven by the
real adb client; what is hostile is what runs there: a ``python`` that floods its output, a journal too big to
read, a runner that prints fake markers, a target env key that is shell code, a pre-planted agent folder. Nothing
here mocks the session or a transport.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from support.hostile import hostile_python
from support.sshd import SSHServer, keygen

from harness import open_store
from harness.agent.bundle import agent_bundle
from harness.cli import main
from harness.config.targets import Target, load_target
from harness.errors import ConfigError, HostKeyError, TransportError

MB = 1024 * 1024
#: the user's ~/.ssh is never read or written (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("own_ssh_dir")


# ------------------------------------------------------------------------------------------ fixtures
def _ssh_target(tmp: Path, server: SSHServer, name: str = "dev", *, python: str = sys.executable,
                 extra_ssh: str = "", extra: str = "", known_hosts: Path | None = None) -> Target:
    text = server.target_toml(name, python=python, extra_ssh=extra_ssh, extra=extra)
    if known_hosts is not None:
        text = text.replace(f"known_hosts = {json.dumps(str(server.known_hosts))}",
                            f"known_hosts = {json.dumps(str(known_hosts))}")
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return load_target(path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------------------ env keys
def test_target_env_key_that_is_shell_code_is_refused_when_the_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "evil.toml"
    path.write_text('name = "evil"\n[env]\n"X=1;touch /tmp/P;Y" = "1"\n')
    with pytest.raises(ConfigError) as err:
        load_target(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: env: key 'X=1;touch /tmp/P;Y' is not a shell variable name")
    for bad in ("1X", "A-B", "A B", "", "Ä", "A\nB"):
        path.write_text(f'name = "evil"\n[env]\n{json.dumps(bad)} = "1"\n')
        with pytest.raises(ConfigError, match="is not a shell variable name"):
            load_target(path)
    path.write_text('name = "ok"\n[env]\nOMP_NUM_THREADS = "4"\n_X9 = "$(touch /tmp/P)"\n')
    assert load_target(path).env == {"OMP_NUM_THREADS": "4", "_X9": "$(touch /tmp/P)"}


def test_ssh_env_keys_are_checked_and_values_quoted_on_the_device(servers, tmp_path: Path) -> None:
    """Defence in depth: a Target built in code (not from a file) with a key that is shell code is refused
    before anything runs; a value that is shell code reaches the agent as plain text."""
    from harness.transport.ssh import SSHTransport

    dev = servers("dev")
    planted = tmp_path / "planted"
    seen = tmp_path / "seen-env"
    python = hostile_python(tmp_path / "device", f"""
        if args and args[0] == "-c":
            os.execv(sys.executable, [sys.executable] + args)
        open({str(seen)!r}, "w").write(os.environ.get("EVIL_VALUE", "<unset>"))
        emit(hello())
    """)
    good = _ssh_target(tmp_path, dev, python=str(python))
    value = f"$(touch {planted}); touch {planted}`touch {planted}`"
    t = SSHTransport(Target(**{**good.__dict__, "env": {"EVIL_VALUE": value}}))
    t.connect()
    try:
        proc = t.start_agent({}, t.journal_path("r1"))
        assert proc.wait(20) == 0, proc.stderr_tail
        assert seen.read_text() == value and not planted.exists()
    finally:
        t.close()
    evil = SSHTransport(Target(**{**good.__dict__, "env": {f"X=1;touch {planted};Y": "1"}}))
    evil.connect()
    try:
        with pytest.raises(TransportError) as err:
            evil.start_agent({}, evil.journal_path("r2"))
    finally:
        evil.close()
    assert "\n" not in str(err.value) and "is not a shell variable name" in str(err.value)
    assert not planted.exists()


# ------------------------------------------------------------------------------------------ SSH: bounded reads
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_ssh_helper_command_flood_is_one_line_and_host_memory_stays_bounded(servers, tmp_path: Path,
                                                                              stream: str) -> None:
    """The device's python answers the version check with 100 MB: the host reads 16 MB, then stops."""
    from harness.transport.ssh import COMMAND_OUTPUT_MAX, SSHTransport

    dev = servers("dev")
    flood = tmp_path / "flood-python"
    flood.write_text(f"#!/bin/sh\nhead -c 100000000 /dev/zero {'>&2' if stream == 'stderr' else ''}\n")
    flood.chmod(0o755)
    t = SSHTransport(_ssh_target(tmp_path, dev, python=str(flood)))
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(TransportError) as err:
            t.connect()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        t.close()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("dev: check python: ") and "sent more than 16 MB of output" in msg
    assert peak < 3 * COMMAND_OUTPUT_MAX, f"{peak / MB:.0f} MB held for a 16 MB cap"
    assert time.monotonic() - t0 < 30


def test_ssh_journal_over_the_cap_is_refused_in_one_line(servers, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.transport.ssh as ssh

    dev = servers("dev")
    t = ssh.SSHTransport(_ssh_target(tmp_path, dev))
    t.connect()
    try:
        t.prepare({})
        journal = t.journal_path("big")
        path = Path(journal)
        with open(path, "wb") as f:  # sparse: 65 MB on paper, nothing on disk
            f.truncate(ssh.JOURNAL_MAX + MB)
        tracemalloc.start()
        try:
            with pytest.raises(TransportError) as err:
                t.fetch_journal(journal)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"dev: fetch journal: the journal {journal} on the device is "
                                                  "over 64 MB")
        assert peak < 8 * MB
        # A journal under the cap reads as lines; one that grows past the cap while it is read is cut off too.
        path.write_text('{"a": 1}\n{"b": 2}\n')
        assert t.fetch_journal(journal) == ['{"a": 1}', '{"b": 2}']
        monkeypatch.setattr(ssh, "JOURNAL_MAX", 1 * MB)
        path.write_bytes(b"x" * (2 * MB))
        with pytest.raises(TransportError, match="over 1 MB"):
            t.fetch_journal(journal)
        assert t.fetch_journal(t.journal_path("missing")) is None
    finally:
        t.close()


def test_ssh_huge_journal_after_a_drop_ends_the_job_as_a_stored_one_line_error(servers, tmp_path: Path) -> None:
    """Through the whole session: the connection drops mid-job, the device's journal is 65 MB; recovery refuses
    to read it and the job is stored as a transport error, the session closed."""
    dev = servers("dev")
    marker = tmp_path / "started"
    python = hostile_python(tmp_path / "device", f"""
        if args and args[0] == "-c":
            os.execv(sys.executable, [sys.executable] + args)
        journal = args[args.index("--journal") + 1]
        with open(journal, "ab") as f:
            f.truncate(65 * 1024 * 1024)
        emit(hello())
        open({str(marker)!r}, "w").close()
        time.sleep(3)
    """)
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "dev.toml").write_text(dev.target_toml("dev", python=str(python)))
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "p"\ntargets = ["dev"]\n[[models]]\nname = "fake"\nbackends = ["synthetic"]\n'
                    "[policy]\nwarmup = 1\ntimed = { count = 5 }\ntelemetry = false\n")
    store_dir = tmp_path / "res"
    out: dict[str, int] = {}
    thread = threading.Thread(target=lambda: out.setdefault("code", main(
        ["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    assert dev.kill_connections() >= 1
    thread.join(90)
    assert not thread.is_alive() and out["code"] == 3
    store = open_store(store_dir)
    run = store.runs().iloc[0]
    assert run["status"] == "error" and run["error_category"] == "transport"
    msg = run["error_message"]
    assert "\n" not in msg and "is over 64 MB" in msg and "cannot be recovered" in msg
    assert (store.sessions()["status"] != "running").all()


# ------------------------------------------------------------------------------------------ SSH: ProxyJump
def test_two_proxyjump_hops_each_tunnel_to_the_next_and_keys_are_checked_per_hop(servers, tmp_path: Path) -> None:
    from harness.transport.ssh import SSHTransport

    jump1 = servers("jump1", extra_config="LogLevel DEBUG1\n")
    jump2 = servers("jump2", extra_config="LogLevel DEBUG1\n")
    dev = servers("dev")
    hops = f'proxy_jump = "{jump1.user}@127.0.0.1:{jump1.port},{jump2.user}@127.0.0.1:{jump2.port}"'
    kh = tmp_path / "all_known_hosts"
    kh.write_text(jump1.known_hosts_line() + jump2.known_hosts_line() + dev.known_hosts_line())
    t = SSHTransport(_ssh_target(tmp_path, dev, extra_ssh=hops, known_hosts=kh))
    t.connect()
    try:
        assert t.python_snippet("import os; print(os.getpid())", step="t").strip().isdigit()
    finally:
        t.close()
    # hop 1 tunnelled to hop 2, hop 2 to the target: each sshd says where it forwarded
    assert f"target 127.0.0.1 port {jump2.port}" in jump1.log.read_text()
    assert f"target 127.0.0.1 port {dev.port}" in jump2.log.read_text()
    assert f"target 127.0.0.1 port {dev.port}" not in jump1.log.read_text()
    assert "Accepted publickey" in dev.log.read_text()

    # Trust on first use writes each hop's own key under its own name.
    fresh = tmp_path / "fresh_known_hosts"
    fresh.write_text("")
    t = SSHTransport(_ssh_target(tmp_path, dev, extra_ssh=hops + "\naccept_new_host_keys = true", known_hosts=fresh))
    t.connect()
    t.close()
    written = sorted(" ".join(line.split()[:3]) for line in fresh.read_text().splitlines())
    assert written == sorted(" ".join(s.known_hosts_line().split()[:3]) for s in (jump1, jump2, dev))

    # A hop whose key is unknown, or changed, is refused by name; nothing is added.
    kh.write_text(jump1.known_hosts_line() + dev.known_hosts_line())
    with pytest.raises(HostKeyError) as err:
        SSHTransport(_ssh_target(tmp_path, dev, extra_ssh=hops, known_hosts=kh)).connect()
    assert f"the host key of {jump2.spec} " in str(err.value) and "unknown" in str(err.value)
    other = keygen(tmp_path / "other_key")
    kind, blob = Path(str(other) + ".pub").read_text().split()[:2]
    kh.write_text(jump1.known_hosts_line() + f"{jump2.spec} {kind} {blob}\n" + dev.known_hosts_line())
    before = kh.read_text()
    with pytest.raises(HostKeyError) as err:
        SSHTransport(_ssh_target(tmp_path, dev, extra_ssh=hops + "\naccept_new_host_keys = true",
                                 known_hosts=kh)).connect()
    assert "CHANGED" in str(err.value) and jump2.spec in str(err.value) and "\n" not in str(err.value)
    assert kh.read_text() == before


def test_a_host_key_of_another_type_in_known_hosts_is_refused(servers, tmp_path: Path) -> None:
    """known_hosts holds an ECDSA key for the device, which shows its ed25519 one: refused, even with
    accept_new (it is not an unknown host), and nothing is written."""
    from harness.transport.ssh import SSHTransport

    dev = servers("dev")
    ecdsa = tmp_path / "ecdsa_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(ecdsa)], check=True)
    kind, blob = Path(str(ecdsa) + ".pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"{dev.spec} {kind} {blob}\n")
    for accept in ("false", "true"):
        with pytest.raises(HostKeyError) as err:
            SSHTransport(_ssh_target(tmp_path, dev, extra_ssh=f"accept_new_host_keys = {accept}",
                                     known_hosts=kh)).connect()
        assert "\n" not in str(err.value) and "CHANGED (now ssh-ed25519 SHA256:" in str(err.value)
    assert kh.read_text() == f"{dev.spec} {kind} {blob}\n"


def test_password_env_is_offered_to_the_target_only_never_to_a_jump_host(servers, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.transport.ssh import SSHTransport

    jump = servers("jump", extra_config="PasswordAuthentication yes\nPubkeyAuthentication no\n")
    dev = servers("dev")
    monkeypatch.setenv("HILBENCH_TEST_PW", "device-password")
    kh = tmp_path / "kh"
    kh.write_text(jump.known_hosts_line() + dev.known_hosts_line())
    with pytest.raises(TransportError, match="refused"):
        SSHTransport(_ssh_target(tmp_path, dev, known_hosts=kh, extra_ssh=(
            f'password_env = "HILBENCH_TEST_PW"\nproxy_jump = "{jump.user}@127.0.0.1:{jump.port}"'))).connect()
    assert "Failed password" not in jump.log.read_text()


# ------------------------------------------------------------------------------------------ folder modes
def test_ssh_device_folders_are_private(servers, tmp_path: Path) -> None:
    from harness.transport.ssh import SSHTransport

    dev = servers("dev")
    cache = dev.folder / "device-cache"
    (cache / "blobs").mkdir(parents=True)
    (cache / "blobs").chmod(0o777)  # left open by an older version, or by someone else
    t = SSHTransport(_ssh_target(tmp_path, dev))
    t.connect()
    try:
        t.prepare({})
        proc = t.start_agent({}, f"{t.workdir}/probe/p.jsonl", ["--probe"])
        assert proc.wait(30) == 0, proc.stderr_tail
    finally:
        t.close()
    for sub in ("agents", "blobs", "journal", "probe"):
        assert _mode(cache / sub) == 0o700, sub
    assert _mode(cache / "agents" / "unpacked") == 0o700


def test_local_device_folders_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.transport.local import LocalTransport

    work = tmp_path / "work"
    monkeypatch.delenv("HILBENCH_CACHE", raising=False)
    t = LocalTransport(Target(name="here", workdir=str(work)))
    t.prepare({})
    assert _mode(work) == 0o700 and _mode(work / "agents") == 0o700


def _plant(agents: Path) -> tuple[Path, Path]:
    """The real agent zip in ``agents``, and beside it an unpacked folder for it that holds someone else's code
    (compiled stamp included, so the agent would use it as is)."""
    zpath = agents / f"{agent_bundle().sha256}.pyz"
    agents.mkdir(parents=True, exist_ok=True)
    zpath.write_bytes(agent_bundle().data)
    import hashlib

    folder = agents / "unpacked" / hashlib.sha256(agent_bundle().data).hexdigest()[:32]
    (folder / "hilbench_agent").mkdir(parents=True)
    (folder / "hilbench_agent" / "__init__.py").write_text("")
    (folder / "hilbench_agent" / "main.py").write_text("def main():\n    print('PLANTED CODE RAN')\n    return 0\n")
    (folder / f"compiled-{sys.implementation.cache_tag}").write_text("")
    return zpath, folder


def _run_agent(zpath: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HILBENCH_AGENT_UNPACK")}
    return subprocess.run([sys.executable, str(zpath), "--probe"], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_agent_does_not_run_an_unpacked_folder_others_can_write_or_own(tmp_path: Path) -> None:
    zpath, folder = _plant(tmp_path / "agents")
    base = folder.parent
    base.chmod(0o700)
    folder.chmod(0o700)
    # control: a folder that is this user's own and private is used as it is (the planting works)
    assert "PLANTED CODE RAN" in _run_agent(zpath).stdout
    cases = [(folder, 0o777, None, "writable by group or others (mode 0o777)"),
             (folder, 0o755, 12345, "owned by uid 12345"),
             (base, 0o777, None, "writable by group or others"),
             (base, 0o755, 12345, "owned by uid 12345")]
    for path, mode, uid, why in cases:
        path.chmod(mode)
        if uid is not None:
            os.chown(path, uid, -1)
        proc = _run_agent(zpath)
        assert "PLANTED CODE RAN" not in proc.stdout, (path, mode, uid)
        hello = json.loads(proc.stdout.splitlines()[0])
        assert hello["type"] == "hello", proc.stdout[:200]
        assert f"hilbench agent: not using {path}: {why}" in proc.stderr and "running from the zip" in proc.stderr
        os.chown(path, os.getuid(), -1)
        path.chmod(0o700)
    # a link in place of the folder is not followed
    shutil.rmtree(folder)
    (tmp_path / "elsewhere").mkdir()
    folder.symlink_to(tmp_path / "elsewhere")
    proc = _run_agent(zpath)
    assert f"not using {folder}: not a folder" in proc.stderr and json.loads(proc.stdout.splitlines()[0])["type"] == "hello"
