"""End to end on the emulated Raspberry Pi: Debian bookworm arm64 under qemu-user, over real SSH.

The device (tests/support/emulated_device.py) is built once and cached; here a session fixture starts it
(seconds) and every test reaches it through hilbench's SSH transport, exactly like a board in a lab.
Without qemu, debootstrap or binfmt support the tests skip with the reason locally and FAIL in CI
(env CI set): a CI that cannot build the device must not pass quietly.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from support.emulated_device import (
    DEVICE_PYTHON,
    EmulatedDevice,
    EmulationUnavailable,
    build,
    check_host,
    reap_stale,
    start,
)
from support.helpers import missing_in_ci, write_agent

from harness import open_store
from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "harness" / "samples" / "models"
QUICKSTART = ROOT / "harness" / "samples" / "quickstart.toml"

# A cold build (debootstrap + wheels under qemu) takes minutes and happens inside the first test's setup.
pytestmark = [pytest.mark.qemu, pytest.mark.timeout(1200)]


def unavailable(reason: str) -> NoReturn:
    missing_in_ci("the emulated arm64 device", reason)


def _ssh_transport_available() -> str | None:
    try:
        import harness.transport.ssh  # noqa: F401
    except ImportError as exc:
        return f"hilbench's SSH transport is not importable ({exc})"
    return None


@pytest.fixture(scope="session")
def emulated_root() -> Path:
    try:
        return build()
    except EmulationUnavailable as exc:
        unavailable(str(exc))
        raise
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # e.g. no Debian mirror reachable
        unavailable(f"building it failed: {exc}")
        raise


@pytest.fixture(scope="session")
def device(emulated_root: Path):
    # Its session folder is not under pytest's tmp_path: pytest deletes old ones on its own, and a folder
    # with the host's /dev still bound into it (a killed run) must only be removed after unmounting.
    dev = start(emulated_root)
    try:
        yield dev
    finally:
        dev.stop()
    assert not dev.processes(), "processes left running in the emulated root after stop()"


@pytest.fixture(scope="session")
def ssh_ready() -> None:
    missing = _ssh_transport_available()
    if missing:
        unavailable(missing)


def _targets_dir(tmp: Path, device: EmulatedDevice, name: str = "pi5-emulated", workdir: str | None = None) -> Path:
    tdir = tmp / "targets"
    tdir.mkdir(exist_ok=True)
    text = device.target_toml(name)
    if workdir:
        text = text.replace('python = "', f'workdir = "{workdir}"\npython = "', 1)
    (tdir / f"{name}.toml").write_text(text)
    return tdir


def small_plan(tmp: Path, *, models: tuple[str, ...] | None = None, timed: int = 25, warmup: int = 3,
               targets: tuple[str, ...] = ("pi5-emulated",), name: str = "plan.toml") -> Path:
    """The quick-start plan with absolute model paths and small counts (emulated inference is slow)."""
    text = QUICKSTART.read_text()
    text = text.replace('"models/', f'"{MODELS}/')  # model and eval-set paths
    text = re.sub(r"(?m)^warmup = .*$", f"warmup = {{ count = {warmup} }}", text)
    text = re.sub(r"(?m)^timed = .*$", f"timed = {{ count = {timed} }}\ntelemetry = false", text)
    text = re.sub(r"(?m)^processes = .*\n", "", text)  # one agent process per model (emulated is slow)
    text = re.sub(r"(?m)^targets = .*$", "targets = [" + ", ".join(json.dumps(t) for t in targets) + "]", text)
    if models is not None:
        blocks = text.split("[[models]]")
        # In the order asked for (the plan runs its models in file order).
        keep = [b for m in models for b in blocks[1:] if re.search(r'name = "' + re.escape(m) + r'"\n', b)]
        tail = blocks[-1][blocks[-1].index("[backends"):] if "[backends" in blocks[-1] else ""
        keep = [k.split("[backends")[0] for k in keep]
        text = blocks[0] + "".join("[[models]]" + k for k in keep) + tail
    path = tmp / name
    path.write_text(text)
    return path


def _models_available() -> None:
    need = [MODELS / n for n in ("digits_cnn_fp32.onnx", "digits_cnn_fp32.tflite", "mobilenet_v2_035_224_fp32.onnx")]
    missing = [p.name for p in need if not p.is_file()]
    if missing:
        unavailable(f"bundled sample models not built yet: {', '.join(missing)}")


# --- the device itself ------------------------------------------------------------------------------


def test_device_is_debian_bookworm_arm64_with_python_311(device: EmulatedDevice):
    out = subprocess.run(device.ssh_command(f"uname -m; cat /etc/debian_version; {DEVICE_PYTHON} -c "
                                            "'import platform, onnxruntime, ai_edge_litert; "
                                            "print(platform.python_version(), onnxruntime.__version__)'"),
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    machine, debian, versions = out.stdout.split("\n")[:3]
    assert machine == "aarch64"
    assert debian.startswith("12.")
    assert versions.startswith("3.11.")
    # Nothing of the host's /sys in the root: onnxruntime's CPU detection crashes on it under qemu.
    assert not any((device.root / "sys").iterdir()) if (device.root / "sys").exists() else True


def test_probe_notices_user_mode_emulation(device: EmulatedDevice, tmp_path: Path):
    agent = write_agent(tmp_path)
    shutil.copy(agent, device.root / "tmp" / "probe-agent.pyz")
    out = subprocess.run(device.ssh_command(f"{DEVICE_PYTHON} /tmp/probe-agent.pyz --probe"),
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    hello = next(m for m in map(json.loads, out.stdout.splitlines()) if m["type"] == "hello")
    assert hello["machine"] == "aarch64"
    assert hello["python"].startswith("3.11.")
    # Under qemu-user /proc/cpuinfo is the host's x86 CPU: the agent must say so.
    assert hello["emulated"] and "user-mode emulation" in hello["emulated"]
    found = {name for name, info in hello["backends"].items() if info.get("available")}
    assert {"onnxruntime", "litert"} <= found, hello["backends"]


def test_stop_kills_agents_and_unmounts(emulated_root: Path, tmp_path: Path):
    dev = start(emulated_root, use_netns=False)
    try:
        assert dev.host == "127.0.0.1" and dev.start_s < 30
        sleeper = subprocess.Popen(dev.ssh_command("sleep 600"), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(dev.processes()) < 2:
            time.sleep(0.2)
        assert len(dev.processes()) >= 2  # sshd and at least its session
    finally:
        dev.stop()
    assert sleeper.wait(30) != 0
    assert not dev.processes()
    mounts = Path("/proc/self/mounts").read_text()
    assert str(dev.workdir) not in mounts
    assert not dev.workdir.exists()


def test_a_device_left_by_a_killed_run_is_cleaned_up_by_the_next_start(emulated_root: Path, tmp_path: Path):
    code = ("import sys, time; from support.emulated_device import start; from pathlib import Path; "
            f"d = start(Path({str(emulated_root)!r})); "
            "print(d.workdir, d.netns, flush=True); time.sleep(600)")
    owner = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parent, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    assert owner.stdout is not None
    workdir, netns = owner.stdout.readline().split()
    owner.kill()  # no teardown: sshd, mounts and the namespace stay behind
    owner.wait()
    assert workdir in Path("/proc/self/mounts").read_text()
    reap_stale()  # (a concurrent test session's start() may have reaped it first: check the effect)
    assert workdir not in Path("/proc/self/mounts").read_text()
    assert not Path(workdir).exists()
    if netns != "None":
        assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


# --- hilbench on it ---------------------------------------------------------------------------------


def test_quickstart_over_ssh_with_onnxruntime_and_litert(device: EmulatedDevice, ssh_ready, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]):
    _models_available()
    plan = small_plan(tmp_path, timed=15)
    tdir = _targets_dir(tmp_path, device)
    store_dir = tmp_path / "res"
    code = main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"])
    out = capsys.readouterr().out
    runs = open_store(store_dir).runs()
    assert code == 0, out + "\n" + runs[["model", "backend", "error_message"]].to_string()
    assert len(runs) == plan.read_text().count("[[models]]") >= 6 and set(runs["status"]) == {"ok"}
    assert set(runs["backend"]) == {"onnxruntime", "litert"}
    assert set(runs["machine"]) == {"aarch64"} and runs["python"].str.startswith("3.11.").all()
    assert runs["emulated"].all() and runs["emulation"].str.contains("user-mode emulation").all()
    assert (runs["timed_count"] == 15).all()
    # The aarch64 kernels must compute the same answers as a board would: the trained digits models,
    # evaluated on the device, classify the held-out set (FP32 and INT8, both runtimes).
    from harness.analysis.accuracy import score_runs

    scores = score_runs(open_store(store_dir)).set_index("model")
    digits = [m for m in runs["model"] if m.startswith("digits-cnn")]
    assert len(digits) == 4 and set(digits) <= set(scores.index)
    assert (scores.loc[digits, "top1"] > 0.9).all(), scores[["top1", "agreement"]]

    assert main(["results", "--store", str(store_dir)]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines()[1:] if "pi5-emulated" in line]
    assert len(rows) == len(runs) and all(" emulated" in line for line in rows), table

    assert main(["show", str(runs["run_id"].iloc[0]), "--store", str(store_dir)]) == 0
    shown = capsys.readouterr().out
    assert "EMULATED" in shown and "aarch64" in shown

    # The HTML report marks every one of them too.
    report = tmp_path / "report.html"
    assert main(["report", "--store", str(store_dir), "--output", str(report), "--no-plots"]) == 0
    html = report.read_text()
    assert html.count("EMULATED") >= len(runs)


def test_doctor_on_the_emulated_device(device: EmulatedDevice, ssh_ready, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]):
    from harness.config.targets import load_target
    from harness.doctor.checks import doctor, format_checks

    target = load_target(_targets_dir(tmp_path, device) / "pi5-emulated.toml")
    checks = {c.name: c for c in doctor(target)}
    for name in ("reachable", "host key", "login", "python", "agent", "runtimes"):
        assert checks[name].ok, (name, checks[name])
    assert "3.11." in checks["python"].detail
    assert "aarch64" in checks["agent"].detail
    assert "onnxruntime" in checks["runtimes"].detail and "litert" in checks["runtimes"].detail
    assert checks["emulation"].status == "warn" and "user-mode emulation" in checks["emulation"].detail
    text = format_checks(target, list(checks.values()))
    assert "WARN  emulation" in text and "not the board's" in text

    # The command line: exit 0 (a warning is not a failure), the same lines.
    code = main(["doctor", "pi5-emulated", "--targets-dir", str(tmp_path / "targets")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("pi5-emulated (ssh root@") and "WARN  emulation" in out and "aarch64" in out



def test_content_cache_second_run_sends_no_bytes(device: EmulatedDevice, ssh_ready, tmp_path: Path):
    _models_available()
    plan = small_plan(tmp_path, models=("digits-cnn",), timed=10)
    # A workdir of its own, so what other tests cached does not count here.
    tdir = _targets_dir(tmp_path, device, workdir=f"/root/.cache/hilbench-test-{uuid.uuid4().hex[:8]}")
    store_dir = tmp_path / "res"
    for _ in range(2):
        assert main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"]) == 0
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert len(runs) == 2 and set(runs["status"]) == {"ok"}
    first, second = runs["bytes_sent"].tolist()
    assert first >= (MODELS / "digits_cnn_fp32.onnx").stat().st_size
    assert second == 0


def test_fleet_of_emulated_arm64_and_local_x86_sshd(device: EmulatedDevice, ssh_ready, tmp_path: Path):
    _models_available()
    from support import sshd  # the SSH transport's real-sshd fixture: an x86 device on a loopback port

    reason = sshd.sshd_unavailable()
    if reason:
        unavailable(f"the x86 sshd device cannot start: {reason}")
    tdir = _targets_dir(tmp_path, device)
    plan = small_plan(tmp_path, models=("digits-cnn", "digits-cnn-tflite"), timed=20,
                      targets=("pi5-emulated", "x86-sshd"))
    store_dir = tmp_path / "res"
    with sshd.start_sshd(tmp_path / "x86", sshd.UserKeys.make(tmp_path / "keys")) as x86:
        (tdir / "x86-sshd.toml").write_text(x86.target_toml("x86-sshd", python=sys.executable))
        code = main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"])
    runs = open_store(store_dir).runs()
    assert code == 0, runs[["target", "model", "error_message"]].to_string()
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    by_target = runs.groupby("target").agg(machine=("machine", "first"), emulated=("emulated", "all"),
                                           python=("python", "first"))
    assert by_target.loc["pi5-emulated", "machine"] == "aarch64" and by_target.loc["pi5-emulated", "emulated"]
    assert by_target.loc["pi5-emulated", "python"].startswith("3.11.")
    assert by_target.loc["x86-sshd", "machine"] == "x86_64" and not by_target.loc["x86-sshd", "emulated"]
    # One plan, two architectures, the same models: the per-target summary holds both.
    summary = open_store(store_dir).summary()
    assert set(summary["target"]) == {"pi5-emulated", "x86-sshd"} and summary["p50_ns"].gt(0).all()


def test_agent_killed_mid_run_is_stored_and_the_plan_goes_on(device: EmulatedDevice, ssh_ready, tmp_path: Path):
    """The agent dies on the device (as under the OOM killer): the run is stored as an agent error with its
    signal and the next job goes on, as for any SSH device."""
    _models_available()
    plan = small_plan(tmp_path, models=("mobilenet-v2-0.35", "digits-cnn"), timed=40, warmup=2)
    workdir = f"/root/.cache/hilbench-kill-{uuid.uuid4().hex[:8]}"
    tdir = _targets_dir(tmp_path, device, workdir=workdir)
    journal_dir = device.root / workdir.lstrip("/") / "journal"
    store_dir = tmp_path / "res"

    def kill_the_agent() -> list[int]:
        pidfiles = list(journal_dir.glob("*.pid")) if journal_dir.is_dir() else []
        if pidfiles:
            time.sleep(3)  # into its runs (~0.5 s per emulated MobileNet inference)
            with contextlib.suppress(OSError, ValueError, IndexError):
                return device.kill([int(pidfiles[0].read_text().split()[1])])
        return []

    assert _run_and_strike(plan, tdir, store_dir, kill_the_agent) == 3
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert list(runs["status"]) == ["error", "ok"], runs[["model", "status", "error_message"]].to_string()
    first = runs.iloc[0]
    assert first["model"] == "mobilenet-v2-0.35" and first["error_category"] == "agent"
    assert "SIGKILL" in first["error_message"]


def test_connection_dropped_mid_run_is_recovered_from_the_journal(device: EmulatedDevice, ssh_ready,
                                                                    tmp_path: Path):
    """The network drops while the agent runs: hilbench reconnects and takes the result from the device's
    journal, as for any SSH device; the agent on the device never notices."""
    _models_available()
    plan = small_plan(tmp_path, models=("mobilenet-v2-0.35",), timed=12, warmup=2)
    tdir = _targets_dir(tmp_path, device)
    store_dir = tmp_path / "res"
    code = _run_and_strike(plan, tdir, store_dir, _once_a_job_runs(device, device.kill_connections))
    runs = open_store(store_dir).runs()
    assert code == 0, runs[["status", "error_message"]].to_string()
    assert len(runs) == 1 and runs["status"].iloc[0] == "ok"
    assert runs["timed_count"].iloc[0] == 12 and bool(runs["emulated"].iloc[0])


def test_device_losing_power_mid_run_is_stored_and_the_plan_ends(emulated_root: Path, ssh_ready, tmp_path: Path):
    """The whole board dies (sshd too) while a job runs: the job in flight is stored as a transport error
    after the reconnects fail, the device's next job too, and the run ends with exit 3, nothing lost."""
    _models_available()
    dev = start(emulated_root)
    try:
        plan = small_plan(tmp_path, models=("mobilenet-v2-0.35", "digits-cnn"), timed=40, warmup=2)
        tdir = _targets_dir(tmp_path, dev)
        store_dir = tmp_path / "res"
        code = _run_and_strike(plan, tdir, store_dir, _once_a_job_runs(dev, dev.power_off))
    finally:
        dev.stop()
    runs = open_store(store_dir).runs().sort_values("started_at")
    assert code == 3
    assert list(runs["model"]) == ["mobilenet-v2-0.35", "digits-cnn"]
    assert set(runs["status"]) == {"error"} and set(runs["error_category"]) == {"transport"}
    assert "dropped" in runs.iloc[0]["error_message"], runs.iloc[0]["error_message"]
    assert open_store(store_dir).samples().empty  # nothing of the lost job half-written
    sessions = open_store(store_dir).sessions()
    assert sessions["status"].tolist() == ["finished"]


def _run_and_strike(plan: Path, tdir: Path, store_dir: Path, strike: Callable[[], list[int]]) -> int:
    """``hilbench run`` in a thread while ``strike`` is called every 0.1 s until it acts on some pids
    (it waits for its own moment); the run's exit status."""
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "code", main(["run", str(plan), "--targets-dir", str(tdir), "--store", str(store_dir), "--quiet"])))
    thread.start()
    struck: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not struck and thread.is_alive():
        struck = strike()
        time.sleep(0.1)
    thread.join(300)
    assert struck, "the agent never started on the device"
    assert not thread.is_alive()
    return result["code"]


def _once_a_job_runs(dev: EmulatedDevice, act: Callable[[], list[int]]) -> Callable[[], list[int]]:
    """A strike that, once a job's agent runs on ``dev``, waits 2 s (into its runs: ~0.5 s per emulated
    MobileNet inference) and then does ``act``."""
    def strike() -> list[int]:
        if not any(_is_agent(pid) for pid in dev.processes()):
            return []
        time.sleep(2)
        return act()
    return strike


def _is_agent(pid: int) -> bool:
    """A job's agent (not the session's device probe, which runs the same zip with --probe)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(a.endswith(b".pyz") for a in cmdline) and b"--job" in cmdline


def test_check_host_names_what_is_missing(monkeypatch: pytest.MonkeyPatch):
    from support import emulated_device

    if os.geteuid() != 0:
        with pytest.raises(EmulationUnavailable, match="needs root"):
            check_host()
        return
    real_which = emulated_device._which
    monkeypatch.setattr(emulated_device, "_which", lambda tool: None if tool == "debootstrap" else real_which(tool))
    with pytest.raises(EmulationUnavailable, match="missing debootstrap.*apt-get install"):
        check_host()
