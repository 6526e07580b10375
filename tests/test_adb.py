"""The ADB transport, the Android runner driver and phone telemetry, through the REAL adb client and server.

The phone is a stand-in (tests/support/adbd_standin.py) that speaks the adbd wire protocol on loopback; the
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
from support.adbd_standin import ADBDStandIn, write_fake_tree
from support.helpers import missing_in_ci

from harness.config.targets import ADBSettings, Target
from harness.errors import TransportError
from harness.transport.adb.shell import parse_devices
from harness.transport.adb.transport import ADBTransport

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
        missing_in_ci("the adb tests", "the adb binary is not installed (apt-get install adb)")
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
                   sleep_s: float = 0.0, exit_code: int = 0, extra: tuple[str, ...] = (),
                   after: tuple[str, ...] = ()) -> Path:
    """A stand-in runner binary: records its arguments (and runs ``extra`` lines), sleeps, prints a recorded
    output, runs ``after`` lines."""
    lines = ["#!/bin/sh", 'echo "$@" >> "$HILBENCH_STANDIN_ROOT/runner_args.log"', *extra]
    if sleep_s:
        lines.append(f"sleep {sleep_s}")
    lines += ["cat <<'HILBENCH_EOF'", stdout_text.rstrip("\n"), "HILBENCH_EOF"]
    if result_rows is not None:
        lines += ["for a; do last=$a; done", "cat > \"$last\" <<'HILBENCH_EOF'", result_rows.rstrip("\n"), "HILBENCH_EOF"]
    lines += [*after, f"exit {exit_code}"]
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
    # the delegation the runner printed is the run's offload verdict (issue 11; it was dropped before)
    off = result["offload"]
    assert (off["accelerator"], off["nodes_total"], off["nodes_accelerated"], off["nodes_cpu"], off["partitions"]) \
        == ("GPU", 66, 66, 0, 1)
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
    from harness.transport.adb.vendor_runner import parse_snapshot

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
    from harness.transport.adb.vendor_runner import parse_snapshot

    charging = (shared_dir / "telemetry-samples/android/dumpsys_battery_charging_skia.txt").read_text()
    text = ("@@battery\n" + charging + "@@uevent\nPOWER_SUPPLY_STATUS=Charging\nPOWER_SUPPLY_VOLTAGE_NOW=4248000\n"
            "POWER_SUPPLY_CURRENT_NOW=-1200000\n")
    r = {d["sensor"]: d for d in parse_snapshot(text)}
    assert r["battery.charging"]["value"] == 1.0
    assert r["battery.current"]["value"] == 1200.0  # flipped: positive = into the battery
    assert r["power.battery"]["value"] is None and "charging" in r["power.battery"]["reason"]


def test_recorded_thermalservice_dumps(shared_dir: Path) -> None:
    from harness.transport.adb.vendor_runner import parse_snapshot

    paths = sorted((shared_dir / "telemetry-samples/android").glob("dumpsys_thermalservice_*.txt"))
    assert paths, "no recorded thermalservice dumps"
    for path in paths:
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
        paths = sorted((shared_dir / "runner-outputs" / folder).glob("*.txt"))
        assert paths, f"no recorded outputs in runner-outputs/{folder}"
        for path in paths:
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
    assert json.loads(by["litert"]["offload"])["nodes_accelerated"] == 66  # stored in the runs' offload column
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
    from harness.doctor.android import doctor_android

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
    from harness.doctor.android import doctor_android

    checks = doctor_android(Target(name="p", transport="adb", adb=ADBSettings(adb_path=str(tmp_path / "no-adb"))))
    assert [(c.name, c.status) for c in checks] == [("adb", "fail")] and "apt-get install adb" in checks[0].fix


def test_phone_with_python_runs_the_regular_agent(phone: ADBDStandIn, tmp_path: Path) -> None:
    """A Python adb's shell user can run (a rooted phone's, or one under /data/local/tmp; here the host's, as the
    stand-in's shell is the host's): the shipped agent zipapp runs there. Termux's is out of that user's reach."""
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
    # The device lock (in the phone's /data/local/tmp, shared with the vendor runner's), then the hello.
    assert [m["type"] for m in msgs[:2]] == ["lock", "hello"] and msgs[-1]["type"] == "result"
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


# ------------------------------------------------------------------------------------------ shell timeout, pull
def _alive(pid: int) -> bool:
    """Whether host process ``pid`` runs (a zombie nobody reaped has finished)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_shell_timeout_is_one_line_and_kills_the_command(phone: ADBDStandIn, tmp_path: Path) -> None:
    t = _connected(phone, tmp_path)
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        t.shell("sleep 30 &\necho $! > /data/local/tmp/sleep.pid\nwait", step="probe", timeout=1.5)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith("standin-phone: probe: `sleep 30 & echo $! > /data/local/tmp/sleep.pid wait` did not "
                          "finish within 1.5 s and was stopped on the device"), msg
    assert time.monotonic() - started < 15
    pid = int((phone.root / "data/local/tmp/sleep.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    # adbd (and the stand-in) only SIGHUP the shell when the host goes: the child dies because hilbench kills it
    assert not _alive(pid), "the remote command outlived its timeout"
    assert t.shell("echo still usable").stdout == "still usable\n"


def test_pull_and_a_missing_file(phone: ADBDStandIn, tmp_path: Path) -> None:
    t = _connected(phone, tmp_path)
    t.shell("mkdir -p /data/local/tmp/hilbench/out && printf 'a,b\\n1,2\\n' > /data/local/tmp/hilbench/out/r.csv",
            check=True)
    t.pull("/data/local/tmp/hilbench/out/r.csv", str(tmp_path / "r.csv"))
    assert (tmp_path / "r.csv").read_text() == "a,b\n1,2\n"
    with pytest.raises(TransportError) as info:
        t.pull("/data/local/tmp/hilbench/out/none.csv", str(tmp_path / "none.csv"))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("standin-phone: download: adb pull /data/local/tmp/hilbench/out/none.csv "
                                              "failed (adb exit status 1): ")
    assert "does not exist" in msg


# ------------------------------------------------------------------------------------------ no permissions
#: What adb prints for a USB phone whose udev rule is missing (adb 1.0.41).
NO_PERMISSIONS_DEVICES = ("List of devices attached\n"
                          "0A1B2C3D\tno permissions (user in plugdev group; are your udev rules wrong?); see "
                          "[http://developer.android.com/tools/device.html]\n\n")
NO_PERMISSIONS_SHELL = ("error: insufficient permissions for device: user in plugdev group; are your udev rules "
                        "wrong?\nSee [http://developer.android.com/tools/device.html] for more information\n")


def test_no_permissions_is_one_line_with_the_udev_fix(tmp_path: Path) -> None:
    from harness.transport.adb.shell import explain_adb_error

    assert parse_devices(NO_PERMISSIONS_DEVICES) == {"0A1B2C3D": "no permissions"}
    fix = explain_adb_error(NO_PERMISSIONS_SHELL, "0A1B2C3D")
    assert fix is not None and fix.startswith("device 0A1B2C3D: no permission to open the USB device: add a udev rule")
    # A USB permission problem cannot be made over TCP, so this one adb is a FAKE: a script that answers
    # `devices` and everything else as adb does for such a phone. The transport code is the real one.
    fake = tmp_path / "fake-adb-no-permissions"
    (tmp_path / "devices.txt").write_text(NO_PERMISSIONS_DEVICES)
    (tmp_path / "shell.txt").write_text(NO_PERMISSIONS_SHELL)
    fake.write_text(f'#!/bin/sh\nfor a; do [ "$a" = devices ] && exec cat {tmp_path}/devices.txt; done\n'
                    f"cat {tmp_path}/shell.txt >&2; exit 1\n")
    fake.chmod(0o755)
    t = ADBTransport(Target(name="usb-phone", transport="adb",
                            adb=ADBSettings(serial="0A1B2C3D", adb_path=str(fake))))
    t.unauthorized_grace_s = 0.3
    with pytest.raises(TransportError) as info:
        t.connect()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("usb-phone: connect: device 0A1B2C3D is no permissions: no permission to open the USB "
                          "device: add a udev rule"), msg
    with pytest.raises(TransportError) as info:
        t.shell("true", step="probe")
    assert str(info.value).startswith("usb-phone: probe: device 0A1B2C3D: no permission to open the USB device")


# ------------------------------------------------------------------------------------------ runner environment
def test_runner_gets_env_ld_library_path_and_its_libraries(phone: ADBDStandIn, tmp_path: Path) -> None:
    lib1 = tmp_path / "libs" / "libQnnHtp.so"
    lib1.parent.mkdir()
    lib1.write_bytes(b"\x7fELF fake QNN HTP backend")
    (tmp_path / "libs" / "libonnxruntime.so").write_bytes(b"\x7fELF fake ORT")
    script = _runner_script(
        tmp_path, "onnxruntime_perf_test", (FIXTURES / "onnxruntime_perf_test_android_nnapi.txt").read_text(),
        result_rows=(FIXTURES / "onnxruntime_perf_test_android_result_file.txt").read_text(),
        extra=('echo "LD=$LD_LIBRARY_PATH ADSP=$ADSP_LIBRARY_PATH MODE=$QNN_MODE" > "$HILBENCH_STANDIN_ROOT/env.log"',
               'ls "$(dirname "$0")" > "$HILBENCH_STANDIN_ROOT/dir.log"'))
    target = Target(name="standin-phone", transport="adb", env={"QNN_MODE": "burst {runner_dir}"},
                    adb=ADBSettings(serial=phone.serial, onnxruntime_perf_test=str(script),
                                    libraries=("libs/libQnnHtp.so", "libs/libonnxruntime.so")),
                    source=str(tmp_path / "phone.toml"))
    t = ADBTransport(target)
    t.connect()
    msgs = _drain(t.start_agent(_payload("onnxruntime", "/data/local/tmp/hilbench/blobs/m.onnx"), t.journal_path("r1")))
    assert msgs[-1]["type"] == "result", msgs[-1]
    runner_path = msgs[0]["runner_path"]
    folder = runner_path.rsplit("/", 1)[0]
    assert folder.startswith("/data/local/tmp/hilbench/bin/") and runner_path.endswith("/onnxruntime_perf_test")
    assert (phone.root / "dir.log").read_text().split() == ["libQnnHtp.so", "libonnxruntime.so",
                                                            "onnxruntime_perf_test"]
    env = (phone.root / "env.log").read_text()
    here = f"{phone.root}{folder}"  # the stand-in maps /data into its sandbox folder
    assert f"LD={here} " in env or f"LD={here}:" in env, env
    assert f"ADSP={here};/vendor/dsp/cdsp;" in env and f"MODE=burst {here}" in env
    # the libraries travel by content: a changed library gets a new folder, the old one is never half-updated
    lib1.write_bytes(b"\x7fELF fake QNN HTP backend, v2")
    assert t.ensure_runner("onnxruntime_perf_test", str(script)).rsplit("/", 1)[0] != folder


def test_adb_target_settings_are_validated(tmp_path: Path) -> None:
    from harness.config.targets import load_target
    from harness.errors import ConfigError

    def load(text: str) -> Target:
        path = tmp_path / "p.toml"
        path.write_text('transport = "adb"\n' + text)
        return load_target(path)

    t = load('[adb]\nlibraries = ["tools/libQnnHtp.so"]\nbattery_current_unit = "mA"\n'
             'battery_current_sign = "discharge-positive"\n')
    assert t.adb.libraries == ("tools/libQnnHtp.so",) and t.adb.battery_current_unit == "mA"
    assert load("").adb.battery_current_unit == "auto" and load("").adb.battery_current_sign == "auto"
    with pytest.raises(ConfigError, match=r"p\.toml: adb\.battery_current_unit: must be one of auto, uA, mA, "
                                          r"not 'A'"):
        load('[adb]\nbattery_current_unit = "A"\n')
    with pytest.raises(ConfigError, match=r"p\.toml: adb\.battery_current_sign: must be one of auto, "
                                          r"discharge-negative, discharge-positive"):
        load('[adb]\nbattery_current_sign = "negative"\n')
    with pytest.raises(ConfigError, match=r"p\.toml: adb\.libraries: expected a list of strings"):
        load("[adb]\nlibraries = [1]\n")
    with pytest.raises(ConfigError, match=r"p\.toml: adb\.big_cores: expected CPU numbers"):
        load('[adb]\nbig_cores = ["7"]\n')
    with pytest.raises(ConfigError, match=r"p\.toml: python: /data/data/com\.termux/files/usr/bin/python is inside "
                                          r"an app's private folder.*SSH"):
        load('python = "/data/data/com.termux/files/usr/bin/python"\n')


def test_a_python_the_shell_user_cannot_run_is_one_line_pointing_to_ssh(phone: ADBDStandIn, tmp_path: Path) -> None:
    target = Target(name="termux-phone", transport="adb", python="/data/local/tmp/no-such-python",
                    adb=ADBSettings(serial=phone.serial), source=str(tmp_path / "t.toml"))
    t = ADBTransport(target)
    t.connect()
    with pytest.raises(TransportError) as info:
        t.prepare({})
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("termux-phone: prepare: the target's python (/data/local/tmp/no-such-python) does not "
                          "run as adb's shell user"), msg
    assert "reach Termux over SSH" in msg


# ------------------------------------------------------------------------------------------ phases, memory
def test_runner_phase_and_per_phase_timeouts(phone: ADBDStandIn, tmp_path: Path) -> None:
    """The binary loads, warms up and times in one process: one `runner` phase while it runs, then the phases by
    its own figures. A per-phase timeout (load_s) therefore cannot cut a long run short; the job's own can."""
    script = _runner_script(tmp_path, "benchmark_model",
                            (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text(), sleep_s=1.5)
    t = _connected(phone, tmp_path, benchmark_model=str(script))
    msgs = _drain(t.start_agent(_payload("litert", "/m.tflite"), t.journal_path("r1")))
    phases = [(m["phase"], m["event"]) for m in msgs if m["type"] == "phase"]
    assert phases[:2] == [("runner", "begin"), ("runner", "end")]
    assert phases[2:] == [("load", "begin"), ("load", "end"), ("first", "begin"), ("first", "end"),
                          ("warmup", "end"), ("timed", "begin"), ("timed", "end")]
    runner_end = next(m for m in msgs if m["type"] == "phase" and m["phase"] == "runner" and m["event"] == "end")
    assert runner_end["duration_ns"] >= 1.5e9
    result = msgs[-1]
    assert result["timed"]["duration_ns"] == round(251 * 3.97702e6)
    assert result["timed"]["t0_ns"] + result["timed"]["duration_ns"] <= runner_end["t_ns"]


def test_runner_job_outlives_a_load_timeout(phone: ADBDStandIn, tmp_path: Path) -> None:
    from harness.cli import main
    from harness.store import Store

    bm = _runner_script(tmp_path, "benchmark_model", (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text(),
                        sleep_s=2)
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "phone.toml").write_text(f'name = "standin-phone"\ntransport = "adb"\n[adb]\nserial = "{phone.serial}"\n'
                                     f'benchmark_model = "{bm}"\n[telemetry]\nenabled = false\n')
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "phone"\ntargets = ["standin-phone"]\n'
                    f'[[models]]\nname = "m"\npath = "{ROOT / "harness/samples/models/digits_cnn_fp32.tflite"}"\n'
                    '[policy]\ntimed = { count = 50 }\ntimeout_s = 60\ntimeouts = { load_s = 0.5 }\n')
    code = main(["run", str(plan), "--store", str(tmp_path / "s"), "--targets-dir", str(tdir), "--quiet"])
    runs = Store(tmp_path / "s").runs()
    assert code == 0 and list(runs["status"]) == ["ok"], runs[["status", "error_message"]].to_dict("records")


def test_onnxruntime_peak_memory_is_kept(phone: ADBDStandIn, tmp_path: Path) -> None:
    script = _runner_script(tmp_path, "onnxruntime_perf_test",
                            (FIXTURES / "onnxruntime_perf_test_android_nnapi.txt").read_text(),
                            result_rows=(FIXTURES / "onnxruntime_perf_test_android_result_file.txt").read_text())
    t = _connected(phone, tmp_path, onnxruntime_perf_test=str(script))
    result = _drain(t.start_agent(_payload("onnxruntime", "/m.onnx"), t.journal_path("r1")))[-1]
    # "Peak working set size: 61267968 bytes"
    assert result["memory"]["peak_mb"] == pytest.approx(61.267968)
    assert result["memory"]["hwm_kb"] == 61267968 // 1024
    assert result["timed"]["duration_ns"] == round(0.163322e9)


# ------------------------------------------------------------------------------------------ doctor: wrong binaries
def _foreign_elf(path: Path) -> Path:
    """An ELF header for a CPU that is not this machine's: execve refuses it, as a phone refuses an x86 build."""
    import platform

    machine = 0x3E if platform.machine() in ("aarch64", "arm64") else 0xB7  # x86-64 on ARM hosts, else AArch64
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (2).to_bytes(2, "little") + machine.to_bytes(2, "little")
    path.write_bytes(header + (1).to_bytes(4, "little") + b"\0" * 40)
    path.chmod(0o755)
    return path


def test_runner_failure_tells_usage_from_a_loader_error() -> None:
    from harness.doctor.android import runner_failure

    assert runner_failure(1, "INFO: STARTING!\nusage: benchmark_model\nFlags:\n--graph=\tstring") is None
    assert runner_failure(255, "perf_test [options...] model_path [result_file]\nOptions:") is None
    assert runner_failure(126, "/system/bin/sh: /data/local/tmp/b: not executable: 64-bit ELF file") == \
        "/system/bin/sh: /data/local/tmp/b: not executable: 64-bit ELF file"
    assert runner_failure(1, 'CANNOT LINK EXECUTABLE "./p": library "libonnxruntime.so" not found: needed by '
                             "main executable").startswith("CANNOT LINK EXECUTABLE")  # type: ignore[union-attr]
    assert runner_failure(139, "") == "exit status 139"
    assert runner_failure(0, "") == "it printed nothing (exit status 0)"


def test_doctor_fails_a_runner_built_for_the_wrong_abi(phone: ADBDStandIn, tmp_path: Path) -> None:
    from harness.doctor.android import doctor_android

    bm = _foreign_elf(tmp_path / "benchmark_model")
    ort = tmp_path / "onnxruntime_perf_test"
    ort.write_text('#!/bin/sh\necho \'CANNOT LINK EXECUTABLE "./onnxruntime_perf_test": library '
                   '"libonnxruntime.so" not found: needed by main executable\'\nexit 1\n')
    ort.chmod(0o755)
    target = _target(phone, tmp_path, benchmark_model=str(bm), onnxruntime_perf_test=str(ort))
    checks = {c.name: c for c in doctor_android(target)}
    c = checks["runner benchmark_model"]
    assert c.status == "fail", c
    assert c.detail.startswith(f"{bm} cannot run on the phone: ") and "\n" not in c.detail
    assert c.fix == ("build benchmark_model for arm64-v8a (`adb shell getprop ro.product.cpu.abi`) and set "
                     "adb.benchmark_model to it")
    c = checks["runner onnxruntime_perf_test"]
    assert c.status == "fail" and "CANNOT LINK EXECUTABLE" in c.detail
    assert c.fix == "add libonnxruntime.so to adb.libraries in the target file"


# ------------------------------------------------------------------------------------------ battery units
MA_PHONE_UEVENT = ("POWER_SUPPLY_NAME=battery\nPOWER_SUPPLY_STATUS=Discharging\nPOWER_SUPPLY_VOLTAGE_NOW=3900000\n"
                   "POWER_SUPPLY_CURRENT_NOW=-450\nPOWER_SUPPLY_CAPACITY=80\n")


def test_battery_current_unit_detected_and_configured() -> None:
    from hilbench_agent.telemetry.android import detect_current_unit

    from harness.transport.adb.vendor_runner import parse_snapshot

    snap = "@@uevent\n" + MA_PHONE_UEVENT
    assert detect_current_unit(MA_PHONE_UEVENT) == "mA"
    assert detect_current_unit(MA_PHONE_UEVENT.replace("=-450\n", "=-450000\n")) == "uA"
    assert detect_current_unit(MA_PHONE_UEVENT.replace("Discharging", "Charging")) is None  # a charge says nothing
    assert detect_current_unit(MA_PHONE_UEVENT.replace("=-450\n", "=0\n")) is None
    r = {d["sensor"]: d for d in parse_snapshot(snap)}
    assert r["battery.current"]["value"] == -450.0 and r["power.battery"]["value"] == pytest.approx(1755.0)
    assert r["battery.current"]["extra"]["unit_basis"].startswith("auto: |CURRENT_NOW| < 20000")
    # a µA phone in the same auto mode
    r = {d["sensor"]: d for d in parse_snapshot(snap.replace("=-450\n", "=-450000\n"))}
    assert r["battery.current"]["value"] == -450.0
    # the target's setting wins over detection; and the sign setting over the status
    r = {d["sensor"]: d for d in parse_snapshot(snap, current_unit="uA")}
    assert r["battery.current"]["value"] == pytest.approx(-0.45)
    flipped = snap.replace("=-450\n", "=450\n")
    assert {d["sensor"]: d for d in parse_snapshot(flipped)}["battery.current"]["value"] == -450.0  # auto: status
    r = {d["sensor"]: d for d in parse_snapshot(flipped, current_sign="discharge-negative")}
    assert r["battery.current"]["value"] == 450.0  # believed: +450 mA into a discharging battery
    r = {d["sensor"]: d for d in parse_snapshot(flipped, current_sign="discharge-positive")}
    assert r["battery.current"]["value"] == -450.0


def test_phone_telemetry_keeps_the_detected_unit_and_the_targets(phone: ADBDStandIn, tmp_path: Path) -> None:
    from harness.transport.adb.vendor_runner import PhoneTelemetry

    uevent = phone.root / "sys/class/power_supply/battery/uevent"
    uevent.write_text(MA_PHONE_UEVENT)
    t = _connected(phone, tmp_path)
    tel = PhoneTelemetry(t, lambda rs: None)
    assert {d["sensor"]: d for d in tel.read_once()}["battery.current"]["value"] == -450.0
    assert tel.current_unit == "mA" and tel.unit_basis.startswith("detected")
    # now charging at 1200 mA: the size alone would say µA (1.2 mA); the unit found on battery is kept
    uevent.write_text(MA_PHONE_UEVENT.replace("Discharging", "Charging").replace("=-450\n", "=1200\n"))
    assert {d["sensor"]: d for d in tel.read_once()}["battery.current"]["value"] == 1200.0
    # a target that says µA is believed
    t2 = _connected(phone, tmp_path, battery_current_unit="uA")
    tel2 = PhoneTelemetry(t2, lambda rs: None)
    assert {d["sensor"]: d for d in tel2.read_once()}["battery.current"]["value"] == pytest.approx(1.2)
    assert tel2.current_unit == "uA" and "target" in tel2.unit_basis


# ------------------------------------------------------------------------------------------ energy end to end
def _phone_plan(tmp_path: Path, phone: ADBDStandIn, *, telemetry: str, runner_extra: tuple[str, ...] = (),
                runner_after: tuple[str, ...] = (), models: tuple[str, ...] = ("tflite", "onnx")) -> tuple[Path, Path]:
    bm = _runner_script(tmp_path, "benchmark_model", (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text(),
                        sleep_s=2, extra=runner_extra, after=runner_after)
    ort = _runner_script(tmp_path, "onnxruntime_perf_test",
                         (FIXTURES / "onnxruntime_perf_test_android_nnapi.txt").read_text(),
                         result_rows=(FIXTURES / "onnxruntime_perf_test_android_result_file.txt").read_text(),
                         sleep_s=2, extra=runner_extra, after=runner_after)
    tdir = tmp_path / "targets"
    tdir.mkdir()
    (tdir / "phone.toml").write_text(
        f'name = "standin-phone"\ntransport = "adb"\n[adb]\nserial = "{phone.serial}"\nbenchmark_model = "{bm}"\n'
        f'onnxruntime_perf_test = "{ort}"\n[telemetry]\n{telemetry}\n')
    sample = ROOT / "harness" / "samples" / "models"
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "phone"\ntargets = ["standin-phone"]\n'
                    + "".join(f'[[models]]\nname = "digits-{m}"\npath = "{sample / f"digits_cnn_fp32.{m}"}"\n'
                              for m in models)
                    + '[policy]\ntimed = { count = 50 }\ntimeout_s = 60\nidle_s = 0.5\n')
    return plan, tdir


def test_meter_on_the_host_gives_energy_to_report_and_compare(phone: ADBDStandIn, tmp_path: Path) -> None:
    """A power meter on the host (the target's meter_command): 4 W from the runner's start until 0.5 s after its
    summary, 1 W otherwise. Its energy reaches the result, metrics, the report's energy column and compare's
    energy metric - for the aggregate-only LiteRT run too, which has no timed samples to place readings against."""
    from harness.analysis.compare import compare, select_runs
    from harness.analysis.metrics import energy_per_inference
    from harness.cli import main
    from harness.report.html import build_report, ranking_table
    from harness.store import Store

    meter = tmp_path / "usb-meter"
    meter.write_text(f'#!/bin/sh\nif [ -e "{phone.root}/running" ]; then echo "4.0 W"; else echo "1.0 W"; fi\n')
    meter.chmod(0o755)
    plan, tdir = _phone_plan(tmp_path, phone, telemetry=f'rate_hz = 4\nmeter_command = ["{meter}"]',
                             # 0.5 s of 1 W between the idle baseline and the 4 W: a meter reading is stamped at
                             # the middle of its command's run, which a loaded host can stretch past the boundary
                             runner_extra=("sleep 0.5", 'touch "$HILBENCH_STANDIN_ROOT/running"'),
                             runner_after=("sleep 0.5", 'rm -f "$HILBENCH_STANDIN_ROOT/running"'))
    store_dir = tmp_path / "results"
    for _ in range(2):
        assert main(["run", str(plan), "--store", str(store_dir), "--targets-dir", str(tdir), "--quiet"]) == 0
    store = Store(store_dir)
    runs = store.runs()
    assert set(runs["status"]) == {"ok"} and len(runs) == 4
    for r in runs.to_dict("records"):
        result = json.loads(r["result"])
        assert result["energy_source"] == "meter" and result["energy_sensor"] == "power.meter", result
        assert result["idle_power_mw"] == pytest.approx(1000.0)
        mean_ms = 3.97702 if r["backend"] == "litert" else 0.163322e3 / 20
        # 3 W above idle x the runner's own mean time per inference: the timed window ends when the summary line
        # arrives (the meter still says 4 W), not when the runner exits 0.5 s later (1 W by then)
        assert result["energy_per_inference_mj"] == pytest.approx(3000 * mean_ms / 1000, rel=1e-3), result
        assert result["timed"]["t0_basis"].endswith("ending when its timed summary line arrived (host clock)")
        assert result["notices"] == []
    e = energy_per_inference(store, runs).set_index("run_id")
    assert set(e.index) == set(runs["run_id"]) and set(e["sensor"]) == {"power.meter"}
    lite = runs[runs["backend"] == "litert"]
    for rid in lite["run_id"]:  # aggregate-only: the stored figure, the same number as in its result
        assert e.loc[rid, "energy_mj"] == pytest.approx(
            json.loads(lite.set_index("run_id").loc[rid, "result"])["energy_per_inference_mj"])
    table = ranking_table(store)
    assert table["energy_mj"].notna().all() and len(table) == 2
    html = build_report(store, plots=False)
    assert "nan" not in html.replace("nanosecond", "")
    sessions = list(dict.fromkeys(runs.sort_values("started_at")["session_id"]))
    cmp = compare(store, select_runs(runs, sessions[0]), select_runs(runs, sessions[1]),
                  metrics=("energy_per_inference",))
    assert {(p.backend, p.metric) for p in cmp.pairs} == {("litert", "energy_per_inference"),
                                                          ("onnxruntime", "energy_per_inference")}


def test_charging_phone_notice_on_stderr_and_no_energy(phone: ADBDStandIn, tmp_path: Path, shared_dir: Path) -> None:
    """The phone charges and no meter is set: before the job one line on stderr says so and what to do (no
    prompt: runs are unattended), the run records energy_source "none (charging)" with the reason, and the
    report shows no energy (and no 'nan') for it. Run through the real CLI in a subprocess, as a user would."""
    import sys

    from harness.analysis.metrics import energy_per_inference
    from harness.report.html import build_report
    from harness.store import Store

    phone.set_dumpsys("battery", (shared_dir / "telemetry-samples/android/dumpsys_battery_charging_skia.txt").read_text())
    (phone.root / "sys/class/power_supply/battery/uevent").write_text(
        "POWER_SUPPLY_NAME=battery\nPOWER_SUPPLY_STATUS=Charging\nPOWER_SUPPLY_VOLTAGE_NOW=4248000\n"
        "POWER_SUPPLY_CURRENT_NOW=-1200000\n")
    plan, tdir = _phone_plan(tmp_path, phone, telemetry="rate_hz = 2", models=("tflite",))
    store_dir = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "device_agents")]))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(plan), "--store", str(store_dir),
                           "--targets-dir", str(tdir), "--quiet"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    notices = [ln for ln in proc.stderr.splitlines() if "charging" in ln]
    assert notices == [f"hilbench: notice: standin-phone: the phone is charging and no power meter is set, so this "
                       f"run records no energy: unplug it (adb over Wi-Fi: `adb tcpip 5555`) or set "
                       f"telemetry.meter_command in {tdir / 'phone.toml'}"], proc.stderr
    store = Store(store_dir)
    runs = store.runs()
    result = json.loads(runs.iloc[0]["result"])
    assert result["energy_source"] == "none (charging)"
    assert "unplug it" in result["energy_reason"] and "meter_command" in result["energy_reason"]
    assert result["notices"] == [notices[0].removeprefix("hilbench: notice: ")]
    assert result["energy_reason"] in result["warnings"]
    assert "energy_per_inference_mj" not in result
    assert energy_per_inference(store, runs).empty
    html = build_report(store, plots=False)
    assert "nan" not in html.replace("nanosecond", "")


def test_killing_a_runner_job_stops_it_on_the_phone(phone: ADBDStandIn, tmp_path: Path) -> None:
    """What the session does on policy.timeout_s: the adb client goes, and so does the runner on the phone."""
    script = _runner_script(tmp_path, "benchmark_model", "never printed", sleep_s=30,
                            extra=('echo $$ > "$HILBENCH_STANDIN_ROOT/runner.pid"',))
    t = _connected(phone, tmp_path, benchmark_model=str(script))
    proc = t.start_agent(_payload("litert", "/m.tflite"), t.journal_path("r1"))
    pid_file = phone.root / "runner.pid"
    deadline = time.monotonic() + 15
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    proc.kill()
    assert proc.wait(10) == -9
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the runner outlived the job on the phone"


# ------------------------------------------------------------------------------------------ a hostile phone (issue 18)
def test_a_shell_command_that_floods_is_cut_off_in_one_line_with_host_memory_bounded(phone: ADBDStandIn,
                                                                                       tmp_path: Path) -> None:
    import tracemalloc

    from harness.transport.adb.transport import COMMAND_OUTPUT_MAX

    t = _connected(phone, tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(TransportError) as info:
            t.shell("echo $$ > \"$HILBENCH_STANDIN_ROOT/flood.pid\"; while :; do head -c 1048576 /dev/zero; done",
                    step="probe", timeout=60)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("standin-phone: probe: `echo $$ > ")
    assert "sent more than 16 MB of output" in msg and "was stopped on the device" in msg
    assert peak < 3 * COMMAND_OUTPUT_MAX, f"{peak / 2**20:.0f} MB held for a 16 MB cap"
    pid = int((phone.root / "flood.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the flooding command outlived the cut-off on the phone"


def test_a_journal_over_the_cap_is_refused_in_one_line(phone: ADBDStandIn, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.transport.adb.transport as adb

    monkeypatch.setattr(adb, "JOURNAL_MAX", 1024 * 1024)  # the same read, a smaller cap: quicker through adb
    t = _connected(phone, tmp_path)
    journal = t.journal_path("big")
    on_phone = phone.host_path(journal)
    assert on_phone is not None
    on_phone.parent.mkdir(parents=True, exist_ok=True)
    on_phone.write_bytes(b'{"v": 1}\n' * 300_000)
    with pytest.raises(TransportError) as info:
        t.fetch_journal(journal)
    msg = str(info.value)
    assert "\n" not in msg and msg == (f"standin-phone: fetch journal: the journal {journal} on the device is over "
                                       "1 MB, more than any job writes: not read, so this job cannot be recovered "
                                       "from it")
    on_phone.write_text('{"a": 1}\n{"b": 2}\n')
    assert t.fetch_journal(journal) == ['{"a": 1}', '{"b": 2}']
    assert t.fetch_journal(t.journal_path("missing")) is None


def test_fake_markers_in_runner_output_never_pick_what_is_killed(phone: ADBDStandIn, tmp_path: Path) -> None:
    """The runner prints ``__HILBENCH_PG=1`` and friends: the real process group (the shell's, first line,
    with this run's tag) is what a kill targets, and a group of 1 or less is never signalled."""
    from harness.transport.adb.shell import valid_pgid

    script = _runner_script(tmp_path, "benchmark_model", "never printed", sleep_s=30, extra=(
        "echo __HILBENCH_PG=1", "echo __HILBENCH_PID=1", "echo __HILBENCH_RC=0",
        'ps -o pgid= -p $$ | tr -d " " > "$HILBENCH_STANDIN_ROOT/runner.pgid"',
        'echo $$ > "$HILBENCH_STANDIN_ROOT/runner.pid"'))
    t = _connected(phone, tmp_path, benchmark_model=str(script))
    proc = t.start_agent(_payload("litert", "/m.tflite"), t.journal_path("r1"))
    pid_file = phone.root / "runner.pid"
    deadline = time.monotonic() + 15
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    pid = int(pid_file.read_text())
    real_pg = int((phone.root / "runner.pgid").read_text())
    assert real_pg > 1 and proc.remote_pg == real_pg and proc.remote_pid not in (None, 1)
    proc.kill()
    assert proc.wait(10) == -9
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    # whatever a device says, no kill ever targets -1, -0 or the like
    for bad in (1, 0, -1, "1", "-1", " 0", "1e3", "²", "１２", True, None, 2**31, "99999999999"):
        assert valid_pgid(bad) is None, bad
        if isinstance(bad, int) and not isinstance(bad, bool):
            assert t.kill_group(bad) is False
    assert valid_pgid("4242") == 4242 and valid_pgid(4242) == 4242


def test_runner_output_flood_is_kept_bounded_and_the_result_says_so(phone: ADBDStandIn, tmp_path: Path) -> None:
    from harness.transport.adb.vendor_runner import OUTPUT_LINE_MAX, OUTPUT_TAIL_LINES

    recorded = (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text()
    script = _runner_script(tmp_path, "benchmark_model", recorded, extra=(
        "i=0; while [ $i -lt 30000 ]; do echo \"noise line $i\"; i=$((i+1)); done",
        "head -c 3000000 /dev/zero | tr '\\0' x; echo"))
    t = _connected(phone, tmp_path, benchmark_model=str(script))
    proc = t.start_agent(_payload("litert", "/m.tflite"), t.journal_path("r1"))
    msgs = _drain(proc, timeout=120)
    result = msgs[-1]
    assert result["type"] == "result", msgs[-1]
    assert result["aggregates"]["count"] == 251  # the summary at the end was kept and parsed
    note = next(w for w in result["warnings"] if "output was cut to fit" in w)
    assert f"lines dropped between its first 500 and last {OUTPUT_TAIL_LINES}" in note
    assert f"1 line longer than {OUTPUT_LINE_MAX} bytes shortened)" in note
    assert max(len(line) for line in proc.stderr_tail.splitlines()) <= OUTPUT_LINE_MAX


def test_adb_env_keys_are_checked_and_device_folders_private(phone: ADBDStandIn, tmp_path: Path) -> None:
    import dataclasses

    script = _runner_script(tmp_path, "benchmark_model", "x")
    t = _connected(phone, tmp_path, benchmark_model=str(script))
    planted = phone.root / "data/local/tmp/planted"
    evil = ADBTransport(dataclasses.replace(t.target, env={"X=1;touch /data/local/tmp/planted;Y": "1"}))
    evil.serial = t.serial
    with pytest.raises(TransportError) as info:
        evil.runner_env("/data/local/tmp/hilbench/bin/x/benchmark_model")
    assert "\n" not in str(info.value) and "is not a shell variable name" in str(info.value)
    quoted = ADBTransport(dataclasses.replace(t.target, env={"V": "$(touch /data/local/tmp/planted)"}))
    assert "V='$(touch /data/local/tmp/planted)'" in quoted.runner_env("/data/local/tmp/hilbench/bin/x/b")
    t.ensure_runner("benchmark_model", str(script))
    root = phone.root / "data/local/tmp/hilbench"
    for sub in ("", "agents", "blobs", "bin", "journal"):
        assert (root / sub).stat().st_mode & 0o777 == 0o700, sub
    assert not planted.exists()


# ------------------------------------------------------------------------------------------ the device lock (issue 14)
def _locked_payload(session: str, run_id: str, wait_s: float, **more: object) -> dict:
    payload = _payload("litert", "/m.tflite", **more)  # type: ignore[arg-type]
    payload.update(job_id=run_id, lock={"wait_s": wait_s, "setting": "--no-wait" if not wait_s else "policy.lock_wait_s",
                                        "owner": {"host": "lab-" + session, "host_pid": 17, "session": session,
                                                  "target": "standin-phone"}})
    return payload


def _phone_lock(phone: ADBDStandIn) -> Path:
    return phone.root / "data" / "local" / "tmp" / "hilbench-device.lock"


def _phone_record(phone: ADBDStandIn) -> dict | None:
    try:
        text = _phone_lock(phone).read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return None
    return json.loads(text) if text.strip() else None


def _wait_record(phone: ADBDStandIn, run_id: str) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rec = _phone_record(phone)
        if rec and rec.get("run_id") == run_id:
            return rec
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never held the phone's lock")


def test_two_runner_jobs_on_one_phone_take_turns(phone: ADBDStandIn, tmp_path: Path) -> None:
    """The phone's own benchmark binary, without Python: its shell takes the device lock (flock on fd 9) in
    /data/local/tmp, the same file the agent takes there; a second job waits and names the first."""
    # Each runner notes on the phone when it started and ended (the stand-in's clock is this host's).
    note = 'echo "{} $(date +%s%N)" >> "$HILBENCH_STANDIN_ROOT/windows.log"'
    script = _runner_script(tmp_path, "benchmark_model", (FIXTURES / "benchmark_model_android_arm64_gpu.txt").read_text(),
                            sleep_s=1.5, extra=(note.format("start"),), after=(note.format("end"),))
    first_t = _connected(phone, tmp_path, benchmark_model=str(script))
    second_t = _connected(phone, tmp_path, benchmark_model=str(script))
    first = first_t.start_agent(_locked_payload("sA", "rA", 60), first_t.journal_path("rA"))
    held = _wait_record(phone, "rA")
    assert held["session"] == "sA" and held["runner"] == "benchmark_model" and held["pid"] > 0
    second = second_t.start_agent(_locked_payload("sB", "rB", 60), second_t.journal_path("rB"))
    msgs_a, msgs_b = _drain(first), _drain(second)
    assert msgs_a[-1]["type"] == "result" and msgs_b[-1]["type"] == "result", (msgs_a[-1], msgs_b[-1])
    assert [m["type"] for m in msgs_b[:3]] == ["hello", "lock", "lock"]
    wait, got = msgs_b[1], msgs_b[2]
    assert wait["event"] == "wait" and wait["holder"]["run_id"] == "rA" and wait["holder"]["session"] == "sA"
    assert got["event"] == "acquired" and got["waited_ns"] > 0 and got["waited_for"]["run_id"] == "rA"
    assert [m["event"] for m in msgs_a if m["type"] == "lock"] == ["acquired"]
    # On the phone the two runners never ran at once: start, end, start, end.
    notes = [line.split() for line in (phone.root / "windows.log").read_text().splitlines()]
    assert [kind for kind, _ in notes] == ["start", "end", "start", "end"]
    assert [int(t) for _, t in notes] == sorted(int(t) for _, t in notes)
    assert _phone_record(phone) is None  # emptied by the last holder


def test_no_wait_on_a_busy_phone_fails_at_once_naming_the_holder(phone: ADBDStandIn, tmp_path: Path) -> None:
    script = _runner_script(tmp_path, "benchmark_model", "never printed", sleep_s=30)
    # Both connected first: connecting drops the adb server's sessions to a TCP phone (one server here).
    first_t = _connected(phone, tmp_path, benchmark_model=str(script))
    second_t = _connected(phone, tmp_path, benchmark_model=str(script))
    first = first_t.start_agent(_locked_payload("sA", "rA", 60), first_t.journal_path("rA"))
    try:
        _wait_record(phone, "rA")
        msgs = _drain(second_t.start_agent(_locked_payload("sB", "rB", 0), second_t.journal_path("rB")))
        gave_up = _drain(second_t.start_agent(_locked_payload("sC", "rC", 1), second_t.journal_path("rC")))
    finally:
        first.kill()
    assert [m["type"] for m in msgs] == ["hello", "lock", "error"], msgs
    assert msgs[2]["category"] == "busy"
    assert msgs[2]["message"].startswith("the device is in use by session sA (host lab-sA, hilbench pid 17, run rA; "
                                         "benchmark_model pid ")
    assert msgs[2]["message"].endswith(": not waiting (--no-wait)")
    assert gave_up[-1]["category"] == "busy" and gave_up[-1]["message"].endswith("gave up after 1 s (policy.lock_wait_s)")
    assert not any(m["type"] == "phase" for m in msgs + gave_up)  # nothing ran on the busy phone


def test_the_agent_and_the_runner_take_one_lock_on_a_phone(phone: ADBDStandIn, tmp_path: Path) -> None:
    """A Python agent on the phone (adb's shell user) holds the device; the runner of another job waits for it."""
    import sys

    agent_t = ADBTransport(Target(name="py-phone", transport="adb", python=sys.executable,
                                  adb=ADBSettings(serial=phone.serial), source=str(tmp_path / "t.toml")))
    agent_t.connect()
    script = _runner_script(tmp_path, "benchmark_model", "never printed")
    runner_t = _connected(phone, tmp_path, benchmark_model=str(script))
    agent_job = {"v": 1, "job_id": "rA", "backend": "synthetic", "settings": {"latency_ms": 1, "hang_at": 3},
                 "model": {"path": None}, "inputs": {}, "warmup": {"count": 1}, "timed": {"count": 10},
                 "telemetry": {"enabled": False},
                 "lock": {"wait_s": 60, "owner": {"session": "sA", "host": "lab", "host_pid": 1}}}
    agent = agent_t.start_agent(agent_job, agent_t.journal_path("rA"))
    try:
        rec = _wait_record(phone, "rA")
        assert rec["session"] == "sA" and "runner" not in rec
        msgs = _drain(runner_t.start_agent(_locked_payload("sB", "rB", 1), runner_t.journal_path("rB")))
    finally:
        agent.kill()
    assert msgs[1]["holder"]["run_id"] == "rA" and msgs[-1]["category"] == "busy"
    assert "session sA (host lab, hilbench pid 1, run rA; agent pid " in msgs[-1]["message"]


@pytest.mark.parametrize("case", ["no flock", "a symlink"])
def test_a_phone_without_a_usable_lock_says_so_and_runs(tmp_path: Path, case: str) -> None:
    """The lock script itself under /bin/sh: without flock (an old phone) or with a link in the lock file's place it
    says NOLOCK and why, and the job goes on (documented: such a phone has no lock)."""
    from harness.transport.adb.vendor_runner import _lock_script, _Markers

    markers = _Markers.new()
    lock = tmp_path / "hilbench-device.lock"
    env = {"PATH": os.environ["PATH"]}
    if case == "no flock":
        env["PATH"] = str(tmp_path)  # sh's builtins only
    else:
        lock.symlink_to(tmp_path / "elsewhere")
    script = _lock_script(markers, str(lock), 60, {"session": "s"}, 0) + "; echo RAN"
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=30).stdout
    lines = out.splitlines()
    assert lines[-1] == "RAN"
    assert lines[0].startswith(markers.lock + "NOLOCK ")
    assert ("no flock" if case == "no flock" else "is not a regular file") in lines[0]
    assert not (tmp_path / "elsewhere").exists()  # nothing written through the link
