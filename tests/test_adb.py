"""The ADB transport, the Android runner driver and phone telemetry, through the REAL adb client and server.

The phone is a stand-in (tests/adbd_standin.py) that speaks the adbd wire protocol on loopback; the
runner binaries it runs are shell scripts that print recorded outputs. Every test uses its own adb
server port and kills that server at the end, so a user's adb server is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import TransportError
from harness.targets import ADBSettings, Target
from harness.transport.adb import ADBTransport, parse_devices
from tests.adbd_standin import ADBDStandIn, write_fake_tree

pytestmark = pytest.mark.adb

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "android"
SHARED = ROOT.parent / "shared"
ADB = shutil.which("adb")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def adb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private adb server (own port, own key folder), killed at teardown."""
    if ADB is None:
        if os.environ.get("CI"):
            pytest.fail("the adb binary is missing on CI (apt-get install adb)")
        pytest.skip("the adb binary is not installed (apt-get install adb)")
    home = tmp_path_factory.mktemp("adbhome")
    saved = {k: os.environ.get(k) for k in ("ANDROID_ADB_SERVER_PORT", "ANDROID_SDK_HOME", "ADB_SERVER_SOCKET")}
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(_free_port())
    os.environ["ANDROID_SDK_HOME"] = str(home)
    os.environ.pop("ADB_SERVER_SOCKET", None)
    subprocess.run([ADB, "start-server"], capture_output=True, timeout=30)
    try:
        yield dict(os.environ)
    finally:
        subprocess.run([ADB, "kill-server"], capture_output=True, timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _runner_script(tmp: Path, name: str, stdout_text: str, *, result_rows: str | None = None,
                   sleep_s: float = 0.0, exit_code: int = 0) -> Path:
    """A stand-in runner binary: records its arguments, sleeps, prints a recorded output."""
    lines = ["#!/bin/sh", 'echo "$@" >> "$HILBENCH_STANDIN_ROOT/runner_args.log"']
    if sleep_s:
        lines.append(f"sleep {sleep_s}")
    lines += ["cat <<'HILBENCH_EOF'", stdout_text.rstrip("\n"), "HILBENCH_EOF"]
    if result_rows is not None:
        lines += ["for a; do last=$a; done", "cat > \"$last\" <<'HILBENCH_EOF'", result_rows.rstrip("\n"), "HILBENCH_EOF"]
    lines.append(f"exit {exit_code}")
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def phone(tmp_path: Path, adb_server: dict[str, str]) -> Iterator[ADBDStandIn]:
    d = ADBDStandIn(tmp_path / "phone")
    write_fake_tree(d.root)
    d.set_dumpsys("battery", (FIXTURES / "dumpsys_battery_discharging.txt").read_text())
    d.set_dumpsys("thermalservice", (FIXTURES / "dumpsys_thermalservice_live.txt").read_text())
    d.start()
    try:
        yield d
    finally:
        d.stop()
        subprocess.run([ADB, "disconnect", d.serial], capture_output=True, timeout=10)


def _target(phone: ADBDStandIn, tmp: Path, **adb: object) -> Target:
    settings = {"serial": phone.serial, **adb}
    return Target(name="standin-phone", transport="adb", adb=ADBSettings(**settings),  # type: ignore[arg-type]
                  source=str(tmp / "standin-phone.toml"))


def _connected(phone: ADBDStandIn, tmp: Path, **adb: object) -> ADBTransport:
    t = ADBTransport(_target(phone, tmp, **adb))
    t.connect_timeout_s = 10.0
    t.recover_timeout_s = 10.0
    t.connect()
    return t


# ------------------------------------------------------------------------------------------ transport
def test_parse_devices_states() -> None:
    text = ("List of devices attached\n38211FDJH00C4L\tdevice\nR58M\tunauthorized\n"
            "1-1\tno permissions (user in plugdev group; are your udev rules wrong?)\n127.0.0.1:5555\toffline\n\n")
    assert parse_devices(text) == {"38211FDJH00C4L": "device", "R58M": "unauthorized", "1-1": "no permissions",
                                   "127.0.0.1:5555": "offline"}


def test_shell_exit_codes_and_output(phone: ADBDStandIn, tmp_path: Path) -> None:
    t = _connected(phone, tmp_path)
    res = t.shell("echo out; echo err >&2; exit 7")
    assert (res.code, res.stdout, res.stderr.strip()) == (7, "out\n", "err")
    assert t.shell("true").code == 0
    assert t.shell("printf no-newline").stdout == "no-newline"
    with pytest.raises(TransportError, match=r"standin-phone: probe: `false` exited with status 1"):
        t.shell("false", step="probe", check=True)
    props = t.getprops()
    assert props["ro.product.cpu.abi"] == "arm64-v8a" and props["ro.build.version.release"] == "14"
    # shell v2 carried the exit codes (the stand-in advertises shell_v2); the v1 path is the marker alone
    assert any(s.startswith("shell,v2") for s in phone.log)


def test_push_cache_second_push_sends_nothing(phone: ADBDStandIn, tmp_path: Path) -> None:
    import hashlib

    blob = tmp_path / "model.tflite"
    blob.write_bytes(os.urandom(200_000))
    sha = hashlib.sha256(blob.read_bytes()).hexdigest()
    t = _connected(phone, tmp_path)
    paths = t.prepare({"model": (str(blob), sha)})
    assert paths["model"] == f"/data/local/tmp/hilbench/blobs/{sha}.tflite"
    on_phone = phone.host_path(paths["model"])
    assert on_phone is not None and on_phone.read_bytes() == blob.read_bytes()
    assert t.bytes_sent == 200_000
    assert not list(on_phone.parent.glob("*.tmp-*")), "the temporary name was renamed away"
    # a new connection (new transport) checks the hash on the phone and sends nothing
    t2 = _connected(phone, tmp_path)
    syncs = phone.log.count("sync:")
    assert t2.prepare({"model": (str(blob), sha)}) == paths
    assert t2.bytes_sent == 0 and phone.log.count("sync:") == syncs
    # a corrupted cache entry is detected and replaced
    on_phone.write_bytes(b"garbage")
    t3 = _connected(phone, tmp_path)
    t3.prepare({"model": (str(blob), sha)})
    assert t3.bytes_sent == 200_000 and on_phone.read_bytes() == blob.read_bytes()


def test_unauthorized_device_is_one_line_with_the_fix(tmp_path: Path, adb_server: dict[str, str]) -> None:
    with ADBDStandIn(tmp_path / "phone", authorized=False) as d:
        t = ADBTransport(_target(d, tmp_path))
        t.connect_timeout_s = 8.0
        t.unauthorized_grace_s = 1.0
        with pytest.raises(TransportError) as info:
            t.connect()
        subprocess.run([ADB, "disconnect", d.serial], capture_output=True, timeout=10)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("standin-phone: connect: device 127.0.0.1:")
    assert "unauthorized" in msg and "Allow USB debugging" in msg


def test_unreachable_and_missing_adb(tmp_path: Path, adb_server: dict[str, str]) -> None:
    port = _free_port()
    t = ADBTransport(Target(name="p", transport="adb", adb=ADBSettings(serial=f"127.0.0.1:{port}")))
    t.connect_timeout_s = 5.0
    with pytest.raises(TransportError, match=r"^p: connect: cannot connect to 127\.0\.0\.1:\d+"):
        t.connect()
    t = ADBTransport(Target(name="p", transport="adb", adb=ADBSettings(serial="X", adb_path=str(tmp_path / "nope"))))
    with pytest.raises(TransportError, match=r"^p: connect: adb not found .*apt-get install adb"):
        t.connect()
    t = ADBTransport(Target(name="p", transport="adb", adb=ADBSettings(serial="NOSUCHSERIAL")))
    t.connect_timeout_s = 1.0
    with pytest.raises(TransportError, match=r"^p: connect: device NOSUCHSERIAL not found: .*adb devices"):
        t.connect()


# ------------------------------------------------------------------------------------------ runner
def _payload(backend: str, model: str, *, telemetry: bool = False, affinity: list[int] | None = None) -> dict:
    return {"v": 1, "job_id": "r1", "backend": backend,
            "settings": {"threads": 4, "delegate": "gpu"} if backend == "litert" else
            {"providers": ["NnapiExecutionProvider", "CPUExecutionProvider"], "intra_op_threads": 2},
            "model": {"path": model}, "warmup": {"count": 5}, "timed": {"count": 50, "min_s": 0.1},
            "affinity": affinity, "telemetry": {"enabled": telemetry, "rate_hz": 2}}


def _drain(proc, timeout: float = 30.0) -> list[dict]:
    out = []
    for line in proc.lines(timeout):
        out.append(json.loads(line))
    proc.wait(5)
    return out


def test_benchmark_model_aggregate_only_pinned(phone: ADBDStandIn, tmp_path: Path) -> None:
    script = _runner_script(tmp_path, "benchmark_model",
                            (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text())
    t = _connected(phone, tmp_path, benchmark_model=str(script), big_cores=(2, 3))
    msgs = _drain(t.start_agent(_payload("litert", "/data/local/tmp/hilbench/blobs/m.tflite"), t.journal_path("r1")))
    kinds = [m["type"] for m in msgs]
    assert kinds[0] == "hello" and kinds[-1] == "result" and "sample" not in kinds
    hello, result = msgs[0], msgs[-1]
    assert hello["device_model"] == "hilbench stand-in phone" and hello["machine"] == "arm64-v8a"
    assert hello["cpu_model"] == "STANDIN-SOC" and hello["os_release"] == "14"
    assert result["aggregate_only"] is True and result["runner"] == "benchmark_model"
    assert result["aggregates"]["count"] == 251 and result["aggregates"]["mean_ns"] == 3977020
    assert result["first_ns"] == 21544000 and result["load_ns"] == 412338000
    assert result["affinity"] == {"cpus": [2, 3], "pinned_by": "target adb.big_cores", "tool": "taskset"}
    assert (phone.root / "taskset.log").read_text().split() == ["c"]
    args = (phone.root / "runner_args.log").read_text()
    assert "--use_gpu=true" in args and "--num_threads=4" in args and "--num_runs=50" in args


def test_onnxruntime_perf_test_samples_from_result_file(phone: ADBDStandIn, tmp_path: Path) -> None:
    script = _runner_script(tmp_path, "onnxruntime_perf_test",
                            (FIXTURES / "onnxruntime_perf_test_android_nnapi.txt").read_text(),
                            result_rows=(FIXTURES / "onnxruntime_perf_test_android_result_file.txt").read_text())
    t = _connected(phone, tmp_path, onnxruntime_perf_test=str(script))
    msgs = _drain(t.start_agent(_payload("onnxruntime", "/data/local/tmp/hilbench/blobs/m.onnx", affinity=[1]),
                                t.journal_path("r1")))
    samples = [m for m in msgs if m["type"] == "sample"]
    assert len(samples) == 1 and len(samples[0]["latency_ns"]) == 20
    assert samples[0]["latency_ns"][0] == 8_100_000
    result = msgs[-1]
    assert result["type"] == "result" and result["aggregate_only"] is False
    assert result["affinity"]["pinned_by"] == "job"
    args = (phone.root / "runner_args.log").read_text().split()
    assert args[:2] == ["-e", "nnapi"] and "-x" in args and args[args.index("-r") + 1] == "50"


def test_runner_failure_and_missing_binary(phone: ADBDStandIn, tmp_path: Path) -> None:
    script = _runner_script(tmp_path, "benchmark_model", "ERROR: Could not open '/x.tflite'.", exit_code=1)
    t = _connected(phone, tmp_path, benchmark_model=str(script))
    msgs = _drain(t.start_agent(_payload("litert", "/x.tflite"), t.journal_path("r1")))
    assert msgs[-1]["type"] == "error" and msgs[-1]["category"] == "backend"
    assert msgs[-1]["message"] == "benchmark_model exited with status 1: ERROR: Could not open '/x.tflite'."
    t2 = _connected(phone, tmp_path)
    msgs = _drain(t2.start_agent(_payload("onnxruntime", "/x.onnx"), t2.journal_path("r1")))
    assert msgs[-1]["type"] == "error" and "adb.onnxruntime_perf_test is not set" in msgs[-1]["message"]


def test_device_disconnects_mid_run_and_comes_back(phone: ADBDStandIn, tmp_path: Path) -> None:
    script = _runner_script(tmp_path, "benchmark_model",
                            (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text(), sleep_s=4)
    t = _connected(phone, tmp_path, benchmark_model=str(script))
    proc = t.start_agent(_payload("litert", "/m.tflite"), t.journal_path("r1"))

    def pull_and_replug() -> None:
        time.sleep(1.0)
        phone.drop()
        time.sleep(1.0)
        phone.come_back()

    threading.Thread(target=pull_and_replug, daemon=True).start()
    msgs = _drain(proc, timeout=30)
    err = msgs[-1]
    assert err["type"] == "error" and err["category"] == "transport"
    assert "connection to the phone was lost while benchmark_model ran" in err["message"]
    assert "\n" not in err["message"]
    # the driver waited for the phone: the next command works without the user doing anything
    assert t.shell("echo back").stdout == "back\n"


# ------------------------------------------------------------------------------------------ telemetry
def test_phone_telemetry_units_and_signs() -> None:
    from harness.android import parse_snapshot

    battery = (FIXTURES / "dumpsys_battery_discharging.txt").read_text()
    thermal = (FIXTURES / "dumpsys_thermalservice_live.txt").read_text()
    text = ("@@battery\n" + battery + "@@uevent\nPOWER_SUPPLY_NAME=battery\nPOWER_SUPPLY_STATUS=Discharging\n"
            "POWER_SUPPLY_VOLTAGE_NOW=3900000\nPOWER_SUPPLY_CURRENT_NOW=500000\n@@thermalservice\n" + thermal +
            "@@zones\ncpu-0-0 45500\nbattery 30\n@@cpufreq\ncpu0 1350000 1800000\ncpu1 1200000 1800000\n"
            "cpu2 2000000 2400000\n")
    r = {d["sensor"]: d for d in parse_snapshot(text)}
    # a Qualcomm-style positive current while discharging is flipped: negative = out of the battery
    assert r["battery.current"]["value"] == -500.0 and r["battery.current"]["unit"] == "mA"
    assert r["battery.voltage"]["value"] == 3900.0
    assert r["power.battery"]["value"] == pytest.approx(1950.0) and r["power.battery"]["unit"] == "mW"
    assert r["battery.charging"]["value"] == 0.0
    assert r["temp.cpu-big"]["value"] == 41.5 and "temp.hal" not in r  # the live HAL block, not the cached one
    assert r["thermal.status"]["value"] == 1.0
    assert r["zone.cpu-0-0"]["value"] == 45.5 and r["zone.battery"]["value"] == 30.0
    assert r["freq.cluster0"]["value"] == 1350.0 and r["freq.cluster1"]["value"] == 2000.0
    # µA with the kernel's sign (Pixel): -450000 discharging stays negative
    text2 = text.replace("CURRENT_NOW=500000", "CURRENT_NOW=-450000")
    assert {d["sensor"]: d for d in parse_snapshot(text2)}["battery.current"]["value"] == -450.0


def test_charging_makes_battery_power_unavailable(shared_dir: Path) -> None:
    from harness.android import parse_snapshot

    charging = (shared_dir / "telemetry-samples/android/dumpsys_battery_charging_skia.txt").read_text()
    text = ("@@battery\n" + charging + "@@uevent\nPOWER_SUPPLY_STATUS=Charging\nPOWER_SUPPLY_VOLTAGE_NOW=4248000\n"
            "POWER_SUPPLY_CURRENT_NOW=-1200000\n")
    r = {d["sensor"]: d for d in parse_snapshot(text)}
    assert r["battery.charging"]["value"] == 1.0
    assert r["battery.current"]["value"] == 1200.0  # flipped: positive = into the battery
    assert r["power.battery"]["value"] is None and "charging" in r["power.battery"]["reason"]


def test_recorded_thermalservice_dumps(shared_dir: Path) -> None:
    from harness.android import parse_snapshot

    for path in sorted((shared_dir / "telemetry-samples/android").glob("dumpsys_thermalservice_*.txt")):
        r = {d["sensor"]: d for d in parse_snapshot("@@thermalservice\n" + path.read_text())}
        if "cached" in path.name:
            assert r["temp.hal"]["value"] is None, path.name
        else:
            assert any(k.startswith("temp.") and v["value"] is not None for k, v in r.items()), path.name


# ------------------------------------------------------------------------------------------ parsers
def test_parser_cases_for_runner_formats(shared_dir: Path) -> None:
    from harness.runners import parse_runner_output

    rep = parse_runner_output((FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text(), runner="benchmark_model")
    assert rep.aggregate_only and rep.samples_ms is None and rep.timed is not None
    assert rep.timed.count == 251 and rep.timed.mean_ms == pytest.approx(3.97702)
    assert rep.timed.p50_ms == pytest.approx(3.948) and rep.init_ms == pytest.approx(412.338)
    text = ((FIXTURES / "onnxruntime_perf_test_android_nnapi.txt").read_text() + "\n"
            + (FIXTURES / "onnxruntime_perf_test_android_result_file.txt").read_text())
    rep = parse_runner_output(text, runner="onnxruntime_perf_test")
    assert not rep.aggregate_only and rep.samples_ms is not None and len(rep.samples_ms) == 20
    assert rep.samples_ms[0] == pytest.approx(8.1)
    for folder, runner in (("tflite_benchmark_model", "benchmark_model"),
                           ("onnxruntime_perf_test", "onnxruntime_perf_test")):
        for path in sorted((shared_dir / "runner-outputs" / folder).glob("*.txt")):
            rep = parse_runner_output(path.read_text(errors="replace"), runner=runner)
            assert rep.timed is not None and not rep.timed.is_empty(), path.name
            assert rep.aggregate_only == (rep.samples_ms is None), path.name


# ------------------------------------------------------------------------------------------ end to end
def test_hilbench_run_on_the_standin_phone(phone: ADBDStandIn, tmp_path: Path) -> None:
    from harness.cli import main
    from harness.store import Store

    bm = _runner_script(tmp_path, "benchmark_model", (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text(),
                        sleep_s=1.5)
    ort = _runner_script(tmp_path, "onnxruntime_perf_test",
                         (FIXTURES / "onnxruntime_perf_test_android_nnapi.txt").read_text(),
                         result_rows=(FIXTURES / "onnxruntime_perf_test_android_result_file.txt").read_text())
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "phone.toml").write_text(
        f'name = "standin-phone"\ntransport = "adb"\ntags = ["android", "stand-in"]\n'
        f'[adb]\nserial = "{phone.serial}"\nbenchmark_model = "{bm}"\nonnxruntime_perf_test = "{ort}"\n'
        f'big_cores = [2, 3]\n[telemetry]\nrate_hz = 2\n')
    models = ROOT / "harness" / "samples" / "models"
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'name = "phone"\ntargets = ["standin-phone"]\n'
        f'[[models]]\nname = "digits-tflite"\npath = "{models / "digits_cnn_fp32.tflite"}"\n'
        f'[[models]]\nname = "digits-onnx"\npath = "{models / "digits_cnn_fp32.onnx"}"\n'
        '[policy]\nwarmup = { count = 5 }\ntimed = { count = 50, min_s = 0.1 }\ntimeout_s = 60\n')
    store_dir = tmp_path / "results"
    code = main(["run", str(plan), "--store", str(store_dir), "--targets-dir", str(tdir), "--quiet"])
    store = Store(store_dir)
    runs = store.runs()
    assert code == 0, runs[["backend", "status", "error_message"]].to_dict("records")
    assert set(runs["status"]) == {"ok"} and len(runs) == 2
    by = {r["backend"]: r for r in runs.to_dict("records")}
    assert by["litert"]["runner"] == "benchmark_model" and by["litert"]["aggregate_only"]
    assert by["onnxruntime"]["runner"] == "onnxruntime_perf_test" and not by["onnxruntime"]["aggregate_only"]
    assert by["litert"]["device_model"] == "hilbench stand-in phone" and by["litert"]["transport"] == "adb"
    assert by["litert"]["emulated"] and "stand-in" in by["litert"]["emulation"]
    assert main(["results", "--store", str(store_dir), "--format", "json"]) == 0
    summary = store.summary().set_index("backend")
    assert summary.loc["litert", "aggregate_only"] and summary.loc["litert", "mean_ns"] == 3977020
    assert not summary.loc["onnxruntime", "aggregate_only"] and summary.loc["onnxruntime", "count"] == 20
    # no invented samples for the aggregate-only run (only the runner's first inference is stored)
    assert set(store.samples([by["litert"]["run_id"]])["phase"]) <= {"first"}
    tel = store.telemetry([by["litert"]["run_id"]])
    sensors = set(tel["sensor"])
    assert {"power.battery", "battery.current", "temp.cpu-big", "freq.cluster0"} <= sensors
    result = json.loads(runs.set_index("backend").loc["litert", "result"])
    assert result["energy_source"] == "battery" and result["energy_per_inference_mj"] is not None
    # the models went through adb push into the content-addressed cache
    assert list((phone.root / "data/local/tmp/hilbench/blobs").iterdir())


# ------------------------------------------------------------------------------------------ doctor
def test_doctor_android_on_the_standin_phone(phone: ADBDStandIn, tmp_path: Path) -> None:
    from harness.doctor_android import doctor_android

    bm = _runner_script(tmp_path, "benchmark_model", "INFO: TF Lite version: 2.16.1\nFlags:\n--graph=...")
    target = _target(phone, tmp_path, benchmark_model=str(bm), big_cores=(0,))
    checks = {c.name: c for c in doctor_android(target)}
    assert checks["adb"].status == "ok" and checks["device authorized"].status == "ok"
    assert checks["ABI"].detail == "arm64-v8a" and checks["Android version"].detail == "Android 14 (SDK 34)"
    assert "STANDIN-SOC" in checks["SoC"].detail
    assert checks["runner benchmark_model"].status == "ok" and "2.16.1" in checks["runner benchmark_model"].detail
    assert checks["runner onnxruntime_perf_test"].status == "warn"
    assert checks["big/little cores"].status == "warn" and "[2, 3]" in checks["big/little cores"].fix
    assert checks["thermal status"].detail.startswith("thermal status 1") and checks["power source"].status == "ok"


def test_doctor_android_without_adb(tmp_path: Path) -> None:
    from harness.doctor_android import doctor_android

    checks = doctor_android(Target(name="p", transport="adb", adb=ADBSettings(adb_path=str(tmp_path / "no-adb"))))
    assert [(c.name, c.status) for c in checks] == [("adb", "fail")] and "apt-get install adb" in checks[0].fix


def test_phone_with_python_runs_the_regular_agent(phone: ADBDStandIn, tmp_path: Path) -> None:
    """Termux-style: the target names a Python on the phone, so the shipped agent zipapp runs there."""
    import sys

    target = Target(name="termux-phone", transport="adb", python=sys.executable,
                    adb=ADBSettings(serial=phone.serial), source=str(tmp_path / "t.toml"))
    t = ADBTransport(target)
    t.connect()
    paths = t.prepare({})
    assert paths["agent"].startswith("/data/local/tmp/hilbench/agents/")
    payload = {"v": 1, "job_id": "j1", "backend": "synthetic", "settings": {"latency_ms": 0.2, "seed": 1},
               "model": {"path": None}, "inputs": {}, "warmup": {"count": 3}, "timed": {"count": 20},
               "affinity": None, "telemetry": {"enabled": False}}
    journal = t.journal_path("j1")
    proc = t.start_agent(payload, journal)
    msgs = [json.loads(line) for line in proc.lines(30)]
    assert proc.wait(10) == 0, proc.stderr_tail
    assert msgs[0]["type"] == "hello" and msgs[-1]["type"] == "result"
    assert sum(len(m["latency_ns"]) for m in msgs if m["type"] == "sample" and m["phase"] == "timed") == 20
    assert t.fetch_journal(journal) is not None and len(t.fetch_journal(journal) or []) == len(msgs)


def test_offline_device_and_one_that_does_not_come_back(phone: ADBDStandIn, tmp_path: Path) -> None:
    t = _connected(phone, tmp_path)
    phone.drop()
    deadline = time.monotonic() + 10
    while t.state() == "device" and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(TransportError) as info:
        t.shell("true", step="probe")
    msg = str(info.value)
    assert msg.startswith("standin-phone: probe: device 127.0.0.1:") and "\n" not in msg
    assert ("offline" in msg and "reconnect" in msg) or ("not found" in msg and "adb devices" in msg)
    t.recover_timeout_s = 1.5
    with pytest.raises(TransportError, match=r"^standin-phone: probe: the device did not come back within 1.5 s"):
        t.shell("true", step="probe", retry=True)
    phone.come_back()
    t.recover_timeout_s = 10
    assert t.shell("echo ok", retry=True).stdout == "ok\n"
