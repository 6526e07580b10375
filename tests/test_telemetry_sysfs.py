"""Fake sysfs trees in tmp_path: discovery by name, hwmon, RAPL wraparound, cpufreq, Jetson INA3221, Coral apex.

Plus small inline fixtures in the recorded formats for the cases the shared
samples do not cover (Thor's VIN rail, Pi throttled bits, a charging Qualcomm
phone, truncated lines).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from hilbench_agent.telemetry import coral, jetson, linux, parse_text
from hilbench_agent.telemetry.discover import ExternalMeterSource, RaplSource, discover
from hilbench_agent.telemetry.fs import DiskFS, MemFS

FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"


def write(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)


def link(root: Path, rel: str, target: str) -> None:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.symlink_to(target)


def by_sensor(readings):
    return {r.sensor: r for r in readings}


def thermal_tree(root: Path, zones: dict[int, tuple[str, str]]) -> None:
    """Zones live under /sys/devices/virtual/thermal and are linked from /sys/class/thermal, as on a device."""
    for n, (ztype, temp) in zones.items():
        real = f"/sys/devices/virtual/thermal/thermal_zone{n}"
        write(root, {f"{real}/type": ztype + "\n", f"{real}/temp": temp + "\n"})
        link(root, f"/sys/class/thermal/thermal_zone{n}", f"../../devices/virtual/thermal/thermal_zone{n}")


# --- thermal zones ---------------------------------------------------------------------------------


def test_thermal_zones_are_named_by_type_not_number(tmp_path: Path) -> None:
    thermal_tree(tmp_path, {0: ("bms", "31000"), 7: ("tsens_tz_sensor0", "45300"), 12: ("cpu-thermal", "51234")})
    r = by_sensor(linux.read_thermal_zones(str(tmp_path)))
    assert r["temp.cpu-thermal"].value == pytest.approx(51.234)
    assert r["temp.cpu-thermal"].extra["zone"] == "thermal_zone12"
    assert r["temp.bms"].value == 31.0
    # Renumbered after a reboot: the names, not the numbers, carry the meaning.
    other = tmp_path / "reboot"
    thermal_tree(other, {3: ("cpu-thermal", "51234"), 0: ("tsens_tz_sensor0", "45300")})
    assert by_sensor(linux.read_thermal_zones(str(other)))["temp.cpu-thermal"].value == pytest.approx(51.234)


def test_thermal_offline_unreadable_and_duplicate_zones(tmp_path: Path) -> None:
    thermal_tree(tmp_path, {0: ("GPU-therm", "-256000"), 1: ("acpitz", "40000"), 2: ("acpitz", "42000"),
                            3: ("CPU-therm", "")})
    write(tmp_path, {"/sys/devices/virtual/thermal/thermal_zone4/type": "broken\n"})
    link(tmp_path, "/sys/class/thermal/thermal_zone4", "../../devices/virtual/thermal/thermal_zone4")
    r = by_sensor(linux.read_thermal_zones(str(tmp_path)))
    assert r["temp.GPU-therm"].value is None and "-256" in r["temp.GPU-therm"].reason
    assert r["temp.acpitz/thermal_zone1"].value == 40 and r["temp.acpitz/thermal_zone2"].value == 42
    assert r["temp.CPU-therm"].value is None and r["temp.CPU-therm"].reason == "empty file"
    assert r["temp.broken"].value is None and "ENOENT" in r["temp.broken"].reason


def test_thermal_zone_read_error_is_a_reason_not_a_crash() -> None:
    tree = MemFS({"/sys/class/thermal/thermal_zone0/type": "cpu-thermal\n"},
                 errors={"/sys/class/thermal/thermal_zone0/temp": "Invalid argument"})
    (r,) = linux.read_thermal_zones(tree)
    assert r.value is None and "Invalid argument" in r.reason


def test_trip_points_and_cooling_devices(tmp_path: Path) -> None:
    thermal_tree(tmp_path, {0: ("cpu-thermal", "55000")})
    d = "/sys/devices/virtual/thermal/thermal_zone0"
    write(tmp_path, {f"{d}/trip_point_0_temp": "75000\n", f"{d}/trip_point_0_type": "passive\n",
                     f"{d}/trip_point_1_temp": "65000\n",
                     "/sys/class/thermal/cooling_device0/type": "thermal-cpufreq-0\n",
                     "/sys/class/thermal/cooling_device0/cur_state": "2\n",
                     "/sys/class/thermal/cooling_device0/max_state": "4\n"})
    trips = linux.read_trip_points(str(tmp_path), "/sys/class/thermal/thermal_zone0", "cpu-thermal")
    assert [(t.sensor, t.value) for t in trips] == [("trip.cpu-thermal.0", 75), ("trip.cpu-thermal.1", 65)]
    assert trips[0].extra["type"] == "passive"
    (cool,) = linux.read_cooling_devices(str(tmp_path))
    assert (cool.sensor, cool.value, cool.extra["max_state"]) == ("cooling.thermal-cpufreq-0", 2, 4)
    assert cool.extra["cpu"] is True


def test_discovery_reads_trip_points_once_and_samples_cooling_devices(tmp_path: Path) -> None:
    thermal_tree(tmp_path, {0: ("cpu-thermal", "55000"), 1: ("acpitz", "40000"), 2: ("acpitz", "41000")})
    d = "/sys/devices/virtual/thermal/thermal_zone0"
    files = {f"{d}/trip_point_0_temp": "75000\n", f"{d}/trip_point_0_type": "passive\n",
             f"{d}/trip_point_1_temp": "65000\n", f"{d}/trip_point_1_type": "active\n",  # a fan: not a throttle
             f"{d}/trip_point_2_temp": "110000\n", f"{d}/trip_point_2_type": "critical\n"}
    for k, ctype in enumerate(("Processor", "Processor", "pwm-fan", "cpufreq-cpu0")):
        files.update({f"/sys/class/thermal/cooling_device{k}/type": ctype + "\n",
                      f"/sys/class/thermal/cooling_device{k}/cur_state": f"{k % 2}\n",
                      f"/sys/class/thermal/cooling_device{k}/max_state": "3\n"})
    write(tmp_path, files)
    found = discover(str(tmp_path))
    assert found.facts["trip_points"] == {"temp.cpu-thermal": [{"trip": 0, "temp_c": 75.0, "type": "passive"},
                                                               {"trip": 2, "temp_c": 110.0, "type": "critical"}]}
    assert found.describe()["facts"]["trip_points"] == found.facts["trip_points"]
    (cool,) = [s for s in found if s.name == "cooling"]
    assert cool.min_interval_s > 0
    r = by_sensor(cool.read())
    # The same type twice (one ACPI Processor device per CPU) is told apart by its device.
    assert r["cooling.Processor/cooling_device0"].value == 0 and r["cooling.Processor/cooling_device1"].value == 1
    assert r["cooling.Processor/cooling_device1"].extra["cpu"] is True
    assert r["cooling.pwm-fan"].extra["cpu"] is False and r["cooling.cpufreq-cpu0"].extra["cpu"] is True


# --- cpufreq ------------------------------------------------------------------------------------


def test_cpufreq_per_core_and_offline_core(tmp_path: Path) -> None:
    base = "/sys/devices/system/cpu"
    for cpu, cur in ((0, "1400000"), (1, "600000")):
        write(tmp_path, {f"{base}/cpu{cpu}/cpufreq/scaling_cur_freq": cur + "\n",
                         f"{base}/cpu{cpu}/cpufreq/scaling_max_freq": "1800000\n",
                         f"{base}/cpu{cpu}/cpufreq/scaling_min_freq": "600000\n"})
    write(tmp_path, {f"{base}/cpu2/online": "0\n"})  # offline: no cpufreq folder
    assert [c for c, _ in linux.find_cpufreq(str(tmp_path))] == ["cpu0", "cpu1"]
    r = by_sensor(linux.read_cpufreq(str(tmp_path)))
    assert (r["freq.cpu0"].value, r["freq.cpu1"].value, r["freq.cpu0.max"].value) == (1400, 600, 1800)
    assert "freq.cpu2" not in r


# --- hwmon --------------------------------------------------------------------------------------


def test_hwmon_units_labels_and_average(tmp_path: Path) -> None:
    write(tmp_path, {
        "/sys/class/hwmon/hwmon3/name": "coretemp\n",
        "/sys/class/hwmon/hwmon3/temp1_input": "45000\n",
        "/sys/class/hwmon/hwmon3/temp1_label": "Package id 0\n",
        "/sys/class/hwmon/hwmon0/name": "ina219\n",
        "/sys/class/hwmon/hwmon0/power1_input": "2500000\n",   # uW
        "/sys/class/hwmon/hwmon0/in1_input": "5080\n",         # mV
        "/sys/class/hwmon/hwmon0/curr1_input": "492\n",        # mA
        "/sys/class/hwmon/hwmon1/name": "amdgpu\n",
        "/sys/class/hwmon/hwmon1/power1_input": "9000000\n",
        "/sys/class/hwmon/hwmon1/power1_average": "8000000\n",
    })
    r = by_sensor(linux.read_hwmon(str(tmp_path)))
    assert r["temp.coretemp.Package id 0"].value == 45
    assert r["power.ina219.power1"].value == 2500 and r["power.ina219.power1"].unit == "mW"
    assert r["voltage.ina219.in1"].value == 5080 and r["current.ina219.curr1"].value == 492
    assert r["power.amdgpu.power1"].value == 8000  # the average is preferred


# --- RAPL -----------------------------------------------------------------------------------------


def test_rapl_delta_wraparound() -> None:
    mx = 262143328850
    assert linux.rapl_delta_uj(100, 250, mx) == 150
    assert linux.rapl_delta_uj(mx - 50, 100, mx) == 50 + 100 + 1
    assert linux.rapl_delta_uj(5, 3, None) is None


def test_rapl_source_power_across_a_wrap(tmp_path: Path) -> None:
    zone = "/sys/class/powercap/intel-rapl:0"
    mx = 262143328850
    write(tmp_path, {f"{zone}/name": "package-0\n", f"{zone}/max_energy_range_uj": f"{mx}\n",
                     f"{zone}/energy_uj": f"{mx - 1_000_000}\n",
                     f"{zone}:0/name": "core\n", f"{zone}:0/energy_uj": "10\n",
                     f"{zone}:0/max_energy_range_uj": f"{mx}\n"})
    zones = linux.find_rapl_zones(str(tmp_path))
    assert [n for n, _ in zones] == ["package-0", "package-0.core"]
    t = [0]
    src = RaplSource(str(tmp_path), zones, clock=lambda: t[0])
    first = by_sensor(src.read())
    assert first["energy.package-0"].value == mx - 1_000_000 and "power.package-0" not in first
    # 0.5 s later the counter has wrapped: 1_000_000 to the top, 1 to reach 0, then 4_000_000.
    write(tmp_path, {f"{zone}/energy_uj": "4000000\n", f"{zone}:0/energy_uj": "500010\n"})
    t[0] = 500_000_000
    second = by_sensor(src.read())
    assert second["power.package-0"].value == pytest.approx((1_000_000 + 1 + 4_000_000) / 0.5 / 1000)
    assert second["power.package-0"].value > 0
    assert second["power.package-0.core"].value == pytest.approx(500_000 / 0.5 / 1000)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a mode-0400 file anyway")
def test_rapl_root_only_energy_is_reported_missing(tmp_path: Path) -> None:
    zone = tmp_path / "sys/class/powercap/intel-rapl:0"
    write(tmp_path, {"/sys/class/powercap/intel-rapl:0/name": "package-0\n",
                     "/sys/class/powercap/intel-rapl:0/energy_uj": "123\n"})
    (zone / "energy_uj").chmod(stat.S_IRUSR & 0)
    found = discover(str(tmp_path))
    assert not [s for s in found if s.name == "rapl"]
    assert any(name == "rapl" and "root-only" in why for name, why in found.missing)


def test_rapl_permission_denied_in_memory_tree() -> None:
    import errno

    zone = "/sys/class/powercap/intel-rapl:0"
    tree = MemFS({zone + "/name": "package-0\n", zone + "/max_energy_range_uj": "262143328850\n"},
                 errors={zone + "/energy_uj": (errno.EACCES, "Permission denied")})
    (r,) = linux.read_rapl(tree)
    assert r.value is None and "root-only" in r.reason
    found = discover(tree)
    assert any(name == "rapl" and "root-only" in why for name, why in found.missing)


# --- power_supply -------------------------------------------------------------------------------


def test_power_supply_skips_ucsi_and_normalises_sign(tmp_path: Path) -> None:
    write(tmp_path, {
        "/sys/class/power_supply/battery/uevent":
            "POWER_SUPPLY_NAME=battery\nPOWER_SUPPLY_STATUS=Charging\nPOWER_SUPPLY_CURRENT_NOW=-326171\n"
            "POWER_SUPPLY_VOLTAGE_NOW=4100000\nPOWER_SUPPLY_TEMP=290\n",
        "/sys/class/power_supply/ucsi-source-psy-USBC000:001/uevent": "POWER_SUPPLY_NAME=ucsi\n",
    })
    assert [n for n, _ in linux.find_power_supplies(str(tmp_path))] == ["battery"]
    r = by_sensor(linux.read_power_supplies(str(tmp_path)))
    # Qualcomm/Xiaomi report negative while charging: normalised to positive = into the battery.
    assert r["supply.battery.current"].value == pytest.approx(326.171)
    assert r["supply.battery.current"].extra["sign_flipped"] is True
    assert r["supply.battery.voltage"].value == 4100 and r["supply.battery.temp"].value == 29


def test_uevent_calibrated_milliamps() -> None:
    text = "STATUS=Discharging\nCURRENT_NOW=-450\n"
    r = by_sensor(parse_text("uevent", text))
    assert r["supply.battery.current"].value == pytest.approx(-0.45)  # default: uA
    from hilbench_agent.telemetry.android import parse_uevent
    r = by_sensor(parse_uevent(text, current_unit="mA"))
    assert r["supply.battery.current"].value == -450


# --- /proc --------------------------------------------------------------------------------------


def test_proc_status_of_a_gone_process(tmp_path: Path) -> None:
    rs = linux.read_proc_status(str(tmp_path), pid=999999)
    assert {r.sensor for r in rs} == {"proc.VmRSS", "proc.VmHWM"} and all(r.value is None for r in rs)


def test_proc_status_of_this_process() -> None:
    r = by_sensor(linux.read_proc_status("/", os.getpid()))
    if not Path("/proc/self/status").exists():
        pytest.skip("no procfs here")
    assert r["proc.VmHWM"].value >= r["proc.VmRSS"].value > 0


# --- Jetson INA3221 -----------------------------------------------------------------------------


def test_ina3221_jetpack4_iio_layout(tmp_path: Path) -> None:
    d = "/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    files = {}
    for k, (rail, mw, mv, ma) in enumerate((("POM_5V_IN", 1750, 5000, 350), ("POM_5V_GPU", 0, 5000, 0),
                                            ("POM_5V_CPU", 366, 5000, 73))):
        files.update({f"{d}/rail_name_{k}": rail + "\n", f"{d}/in_power{k}_input": f"{mw}\n",
                      f"{d}/in_voltage{k}_input": f"{mv}\n", f"{d}/in_current{k}_input": f"{ma}\n"})
    write(tmp_path, files)
    r = by_sensor(jetson.read_ina_rails(str(tmp_path)))
    assert (r["power.POM_5V_IN"].value, r["power.POM_5V_CPU"].value) == (1750, 366)  # precomputed mW
    assert r["voltage.POM_5V_IN"].value == 5000 and r["current.POM_5V_CPU"].value == 73
    assert r["power.total"].value == 1750 and r["power.total"].extra["rails"] == ["POM_5V_IN"]


def test_ina3221_jetpack5_hwmon_layout_with_nc_and_eio(tmp_path: Path) -> None:
    h = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    write(tmp_path, {
        "/sys/bus/i2c/drivers/ina3221/1-0040/name": "ina3221\n",
        f"{h}/in1_label": "VDD_IN\n", f"{h}/in1_input": "5072\n", f"{h}/curr1_input": "1104\n",
        f"{h}/curr1_crit_alarm": "0\n",
        f"{h}/in2_label": "VDD_CPU_GPU_CV\n", f"{h}/in2_input": "5064\n", f"{h}/curr2_input": "314\n",
        f"{h}/in3_label": "NC\n", f"{h}/in3_input": "0\n",
        f"{h}/in7_label": "sum of shunt voltages\n", f"{h}/in7_input": "12\n",
        # What the mainline driver exposes beside the rails: shunt voltages of channels 1-3 (in4..in6, no
        # label), the summed current (curr4) and its alarm. None of them is a rail.
        f"{h}/in4_input": "40\n", f"{h}/in5_input": "12\n", f"{h}/in6_input": "0\n",
        f"{h}/curr4_input": "1418\n", f"{h}/curr4_crit_alarm": "0\n",
    })
    rails = jetson.find_ina_rails(str(tmp_path))
    assert [x["rail"] for x in rails] == ["VDD_IN", "VDD_CPU_GPU_CV"]
    assert rails[0]["voltage"].endswith("/in1_input") and rails[0]["current"].endswith("/curr1_input")
    r = by_sensor(jetson.read_ina_rails(str(tmp_path), rails))
    assert not [s for s in r if "ch4" in s or "ch5" in s or "ch6" in s or "ch7" in s]
    assert r["power.VDD_IN"].value == pytest.approx(5072 * 1104 / 1000)
    assert r["alarm.VDD_IN.curr_crit_alarm"].value == 0
    assert r["power.total"].value == pytest.approx(5072 * 1104 / 1000)  # VDD_IN alone, sub-rails not added
    # An unconnected channel that fails with EIO while read: None, no crash.
    tree = MemFS({f"{h}/in1_label": "VDD_IN\n", f"{h}/curr1_input": "1\n"}, errors={f"{h}/in1_input": "Input/output error"})
    r = by_sensor(jetson.read_ina_rails(tree))
    assert r["voltage.VDD_IN"].value is None and "Input/output error" in r["voltage.VDD_IN"].reason
    assert r["power.VDD_IN"].value is None


def test_ina238_thor_vin_in_microwatts(tmp_path: Path) -> None:
    h = "/sys/bus/i2c/drivers/ina238/2-0044/hwmon/hwmon5"
    # in0 is the shunt voltage (mV across the resistor), in1 the bus voltage: only channel 1 is the rail.
    write(tmp_path, {f"{h}/power1_input": "87426000\n", f"{h}/in1_input": "19500\n", f"{h}/curr1_input": "4483\n",
                     f"{h}/in0_input": "22\n", f"{h}/temp1_input": "41000\n"})
    (rail,) = jetson.find_ina_rails(str(tmp_path))
    assert rail["rail"] == "VIN" and rail["voltage"].endswith("/in1_input")
    r = by_sensor(jetson.read_ina_rails(str(tmp_path)))
    assert r["power.VIN"].value == 87426 and r["power.total"].value == 87426
    assert r["voltage.VIN"].value == 19500
    # A carrier whose device tree labels the chip names the rail by that label.
    write(tmp_path, {f"{h}/label": "VDD_IN_CARRIER\n"})
    assert [x["rail"] for x in jetson.find_ina_rails(str(tmp_path))] == ["VDD_IN_CARRIER"]


def test_jetson_gpu_load_and_devfreq(tmp_path: Path) -> None:
    write(tmp_path, {"/sys/devices/gpu.0/load": "423\n",
                     "/sys/class/devfreq/57000000.gpu/cur_freq": "921600000\n",
                     "/sys/class/devfreq/6000000.cpu/cur_freq": "1\n"})
    load, node = jetson.find_gpu(str(tmp_path))
    assert load == "/sys/devices/gpu.0/load" and node.endswith("57000000.gpu")
    r = by_sensor(jetson.read_gpu(str(tmp_path), load, node))
    assert r["load.gpu"].value == pytest.approx(42.3) and r["freq.gpu"].value == pytest.approx(921.6)


def test_discover_on_a_fake_jetson(tmp_path: Path) -> None:
    thermal_tree(tmp_path, {0: ("CPU-therm", "40500"), 1: ("GPU-therm", "-256000"), 5: ("Tj-therm", "41000")})
    write(tmp_path, {"/etc/nv_tegra_release": "# R35 (release), REVISION: 4.1\n",
                     "/sys/devices/platform/gpu.0/load": "0\n",
                     "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in1_label": "VDD_IN\n",
                     "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in1_input": "5000\n",
                     "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/curr1_input": "1000\n",
                     "/sys/class/hwmon/hwmon1/name": "ina3221\n",
                     "/sys/class/hwmon/hwmon1/in1_input": "5000\n"})
    found = discover(str(tmp_path), board_rail=None)
    names = [s.name for s in found]
    assert {"thermal", "jetson_rails", "jetson_gpu"} <= set(names)
    assert "hwmon" not in names  # the INA3221 is read once, through its rail names
    readings = by_sensor(r for s in found for r in s.read())
    assert readings["power.total"].value == 5000
    assert readings["temp.Tj-therm"].value == 41 and readings["temp.GPU-therm"].value is None
    for s in found:
        assert isinstance(s.describe(), str)


#: A stand-in for NVIDIA's `tegrastats` (a fake, named as one): it records its arguments, then prints a line in
#: the JetPack 4.6 Nano format every --interval milliseconds until it is terminated.
FAKE_TEGRASTATS = """#!{python}
import sys, time
args = sys.argv[1:]
with open({argv_file!r}, "w") as f:
    f.write(" ".join(args))
interval_s = int(args[args.index("--interval") + 1]) / 1000.0
k = 0
while True:
    sys.stdout.write("RAM 1923/3964MB (lfb 2x2MB) SWAP 191/1982MB (cached 6MB) IRAM 0/252kB(lfb 252kB) "
                     "CPU [5%@1224,4%@1224,3%@1224,6%@1224] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@37C "
                     "CPU@40C PMIC@50C GPU@40C AO@45C thermal@40C POM_5V_IN %d/1628 POM_5V_GPU 0/0 "
                     "POM_5V_CPU 366/406\\n".replace("%d", str(1750 + k)))
    sys.stdout.flush()
    k += 1
    time.sleep(interval_s)
"""


def fake_tegrastats(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_file = tmp_path / "tegrastats-argv.txt"
    script = bin_dir / "tegrastats"
    script.write_text(FAKE_TEGRASTATS.format(python=sys.executable, argv_file=str(argv_file)))
    script.chmod(0o755)
    return bin_dir, argv_file


def test_tegrastats_fallback_when_jetson_rails_are_absent(tmp_path: Path) -> None:
    import time

    from hilbench_agent.telemetry.sampler import Sampler

    root = tmp_path / "root"
    thermal_tree(root, {0: ("CPU-therm", "40500")})
    # A Jetson by its device tree alone (a container has no /etc/nv_tegra_release), and no INA nodes.
    write(root, {"/proc/device-tree/compatible": "nvidia,p3450-0000\x00nvidia,jetson-nano\x00nvidia,tegra210\x00",
                 "/proc/device-tree/model": "NVIDIA Jetson Nano Developer Kit\x00"})
    bin_dir, argv_file = fake_tegrastats(tmp_path)
    found = discover(str(root), path=str(bin_dir), platform="linux", commands=True, tegrastats_interval_ms=50)
    (src,) = [s for s in found if s.name == "tegrastats"]
    assert src.argv == [str(bin_dir / "tegrastats"), "--interval", "50"]
    assert "jetson_rails" not in [s.name for s in found]
    assert any(n == "jetson_rails" and "power from tegrastats instead" in why for n, why in found.missing)
    assert "tegrastats" in src.describe()

    batches: list[list[dict]] = []
    sampler = Sampler([src], rate_hz=20, emit=batches.append, flush_interval_s=0.05)
    sampler.start()
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            if sum(1 for b in batches for d in b if d["sensor"] == "power.total") >= 3:
                break
            time.sleep(0.05)
    finally:
        sampler.stop()
    readings = [d for b in batches for d in b]
    totals = [d for d in readings if d["sensor"] == "power.total"]
    assert len(totals) >= 3 and [d["value"] for d in totals[:3]] == [1750, 1751, 1752]
    # Stamped as each line arrived, on the agent's clock: one stamp per line, in order.
    stamps = [d["t_ns"] for d in totals]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(isinstance(d["t_ns"], int) for d in readings)
    assert {"temp.CPU", "freq.gpu", "power.POM_5V_CPU"} <= {d["sensor"] for d in readings}
    assert argv_file.read_text() == "--interval 50"
    assert src._proc is not None and src._proc.poll() is not None  # closed with the sampler: no process left


def test_tegrastats_fallback_when_rails_are_unreadable_and_board_rail(tmp_path: Path) -> None:
    import errno

    h = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    tree = MemFS({"/etc/nv_tegra_release": "# R32 (release), REVISION: 7.1\n", f"{h}/in1_label": "POM_5V_IN\n"},
                 errors={f"{h}/in1_input": (errno.EACCES, "Permission denied"),
                         f"{h}/curr1_input": (errno.EACCES, "Permission denied")})
    bin_dir, _ = fake_tegrastats(tmp_path)
    found = discover(tree, path=str(bin_dir), platform="linux", commands=True, board_rail="POM_5V_CPU")
    names = [s.name for s in found]
    assert "tegrastats" in names and "jetson_rails" not in names
    (why,) = [w for n, w in found.missing if n == "jetson_rails"]
    assert "POM_5V_IN" in why and "not readable" in why and "permission denied" in why
    (src,) = [s for s in found if s.name == "tegrastats"]
    total = by_sensor(src.parse("RAM 1/2MB CPU [1%@102] POM_5V_IN 900/900 POM_5V_CPU 120/120"))["power.total"]
    assert total.value == 120 and "board_rail" in total.extra["method"]
    # Without tegrastats on PATH the rails are missing with both reasons; without commands, not looked for.
    empty = tmp_path / "empty"
    empty.mkdir()
    found = discover(tree, path=str(empty), platform="linux", commands=True)
    assert any(n == "jetson_rails" and "no tegrastats on PATH" in w for n, w in found.missing)
    assert "tegrastats" not in [s.name for s in discover(tree, path=str(bin_dir), platform="linux")]
    # Not a Jetson: tegrastats on PATH is never started.
    assert "tegrastats" not in [s.name for s in discover(MemFS({}), path=str(bin_dir), commands=True)]


def jetson_cpufreq(root: Path, limits: dict[int, tuple[int, int]], offline: tuple[int, ...] = ()) -> None:
    base = "/sys/devices/system/cpu"
    for cpu, (lo, hi) in limits.items():
        write(root, {f"{base}/cpu{cpu}/cpufreq/scaling_min_freq": f"{lo}\n",
                     f"{base}/cpu{cpu}/cpufreq/scaling_max_freq": f"{hi}\n",
                     f"{base}/cpu{cpu}/cpufreq/scaling_cur_freq": f"{hi}\n",
                     f"{base}/cpu{cpu}/online": "0\n" if cpu in offline else "1\n"})


def test_jetson_clocks_state_from_sysfs(tmp_path: Path) -> None:
    on = tmp_path / "on"
    write(on, {"/etc/nv_tegra_release": "# R36 (release), REVISION: 4.3\n",
               "/sys/class/devfreq/17000000.gpu/min_freq": "1020000000\n",
               "/sys/class/devfreq/17000000.gpu/max_freq": "1020000000\n"})
    # cpu3 is offline with a stale lower minimum: offline cores are not asked.
    jetson_cpufreq(on, {0: (1728000, 1728000), 1: (1728000, 1728000), 3: (115200, 1728000)}, offline=(3,))
    found = discover(str(on))
    state = found.facts["jetson_clocks"]
    assert (state["active"], state["text"]) == (1, "on") and state["checked"] == ["2 CPUs", "GPU"]
    assert found.describe()["facts"]["jetson_clocks"]["active"] == 1

    off = tmp_path / "off"
    write(off, {"/etc/nv_tegra_release": "# R36 (release), REVISION: 4.3\n"})
    jetson_cpufreq(off, {0: (1728000, 1728000), 1: (115200, 1728000)})
    state = discover(str(off)).facts["jetson_clocks"]
    assert state["active"] == 0 and state["unpinned"] == ["cpu1 min 115.2 < max 1728 MHz"]

    bare = tmp_path / "bare"  # a Jetson container that sees no cpufreq: unknown, not "off"
    write(bare, {"/etc/nv_tegra_release": "# R36\n"})
    state = discover(str(bare)).facts["jetson_clocks"]
    assert state["active"] is None and "no cpufreq" in state["text"]
    assert "jetson_clocks" not in discover(str(tmp_path / "off" / "sys")).facts  # not a Jetson: no such fact


# --- Coral ----------------------------------------------------------------------------------------


def test_apex_temperature_trips_and_throttle_level(tmp_path: Path) -> None:
    d = "/sys/class/apex/apex_0"
    write(tmp_path, {f"{d}/temp": "86250\n", f"{d}/trip_point0_temp": "85000\n", f"{d}/trip_point1_temp": "90000\n",
                     f"{d}/trip_point2_temp": "95000\n", f"{d}/hw_temp_warn2": "100000\n",
                     f"{d}/hw_temp_warn2_en": "1\n"})
    r = by_sensor(coral.read_apex(str(tmp_path)))
    assert r["temp.apex_0"].value == 86.25
    assert [r[f"trip.apex_0.{k}"].value for k in range(3)] == [85, 90, 95]
    assert r["warn.apex_0.2"].value == 100 and r["warn.apex_0.2"].extra["enabled"] == 1
    assert r["throttle.apex_0.level"].value == 1  # above trip 0 only: 250 MHz


def test_apex_dead_chip_and_missing_temp(tmp_path: Path) -> None:
    write(tmp_path, {"/sys/class/apex/apex_0/temp": "-87900\n", "/sys/class/apex/apex_1/status": "ALIVE\n"})
    r = by_sensor(coral.read_apex(str(tmp_path)))
    assert r["temp.apex_0"].value is None and "dead or hung" in r["temp.apex_0"].reason
    assert r["temp.apex_1"].value is None and "unsupported" in r["temp.apex_1"].reason
    (t,) = parse_text("sysfs-temp", "-87900\n")
    assert t.value is None


def test_usb_accelerator_has_no_sensor(tmp_path: Path) -> None:
    write(tmp_path, {"/sys/bus/usb/devices/2-1/idVendor": "18d1\n", "/sys/bus/usb/devices/2-1/idProduct": "9302\n"})
    found = discover(str(tmp_path))
    assert ("edgetpu_temp", coral.NO_SENSOR_USB) in found.missing
    assert not [s for s in found if s.name == "edgetpu"]


# --- discovery in general -----------------------------------------------------------------------


def test_discover_empty_root_reports_what_is_missing(tmp_path: Path) -> None:
    found = discover(str(tmp_path))
    assert list(found) == []
    missing = dict(found.missing)
    assert {"thermal", "cpufreq", "hwmon", "rapl", "power_supply", "meminfo"} <= set(missing)
    assert found.describe()["sources"] == []


def test_discover_process_memory(tmp_path: Path) -> None:
    write(tmp_path, {"/proc/42/status": "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n",
                     "/proc/meminfo": "MemTotal: 1000 kB\nMemAvailable: 500 kB\n"})
    found = discover(str(tmp_path), pid=42)
    r = by_sensor(x for s in found for x in s.read())
    assert (r["proc.VmRSS"].value, r["proc.VmHWM"].value) == (1024, 2048)
    assert r["mem.available"].value == 500


def test_external_meter_source(tmp_path: Path) -> None:
    script = tmp_path / "meter.py"
    script.write_text("print('power: 4.25 W')\n")
    src = ExternalMeterSource([sys.executable, str(script)])
    (r,) = src.read()
    assert (r.sensor, r.value, r.unit) == ("power.meter", 4250, "mW")
    script.write_text("print('no reading')\n")
    (r,) = src.read()
    assert r.value is None
    script.write_text("import sys; sys.exit(3)\n")
    with pytest.raises(RuntimeError, match="exited 3"):
        src.read()
    found = discover(str(tmp_path), meter_command=[sys.executable, str(script)])
    assert [s.name for s in found] == ["meter"]


def test_diskfs_and_memfs_agree(tmp_path: Path) -> None:
    write(tmp_path, {"/sys/a/b": "1\n"})
    disk, mem = DiskFS(str(tmp_path)), MemFS({"/sys/a/b": "1\n"})
    for fs in (disk, mem):
        assert fs.read("/sys/a/b") == "1\n"
        assert fs.listdir("/sys/a") == ["b"] and fs.listdir("/nope") == []
        assert fs.isdir("/sys/a") and fs.exists("/sys/a/b") and not fs.exists("/sys/c")
        with pytest.raises(OSError):
            fs.read("/sys/c")


# --- inline fixtures in the recorded formats ------------------------------------------------------

THOR_LINE = ("08-27-2025 10:11:12 RAM 5301/125772MB (lfb 8x4MB) SWAP 0/0MB (cached 0MB) "
             "CPU [1%@972,0%@972,2%@972,0%@972,0%@972,0%@972,0%@972,0%@972,0%@972,0%@972,0%@972,0%@972,0%@972,0%@972] "
             "cpu@45.218C/45.218C tj@47.25C/47.25C soc012@44.5C/44.5C gpu@-256C soc345@44.968C/44.968C "
             "VDD_GPU -392mW/-392mW/-392mW VDD_CPU_SOC_MSS 5221mW/5200mW/5400mW VIN_SYS_5V0 3120mW/3120mW/3120mW "
             "VIN 87426mW/43713mW/87426mW")


def test_tegrastats_thor_like_line() -> None:
    r = by_sensor(parse_text("tegrastats", THOR_LINE))
    assert r["power.total"].value == 87426 and r["power.total"].extra["rails"] == ["VIN"]
    assert r["power.VIN.avg"].value == 43713 and r["power.VIN.max"].value == 87426
    assert r["power.VDD_GPU"].value == -392 and r["power.VDD_GPU"].extra["negative"] is True
    assert r["temp.gpu"].value is None and r["temp.tj"].value == 47.25
    assert r["load.gpu"].value is None  # no GR3D_FREQ on JetPack 7.2
    assert [r[f"freq.cpu{k}"].value for k in range(14)] == [972] * 14


def test_tegrastats_truncated_and_garbage_lines_do_not_crash() -> None:
    full = (FIXTURES / "tegrastats_orin_nano_noroot.txt").read_text()
    line = full.splitlines()[0]
    for cut in range(0, len(line), 7):
        parse_text("tegrastats", line[:cut])
    rs = parse_text("tegrastats", full)
    r = by_sensor(x for x in rs if x.extra["line"] == 0)
    assert r["power.total"].value == 4812 and r["power.total"].extra["rails"] == ["VDD_IN"]
    assert "load.emc" not in r  # no EMC_FREQ token at all without root on Orin Nano
    assert r["load.gpu"].value == 0 and r["freq.gpu"].value is None
    assert parse_text("tegrastats", "RAM \nCPU [\n@@@ ] VDD_IN x/y\n") is not None


def test_vcgencmd_throttled_bits_and_unsupported_pmic() -> None:
    r = by_sensor(parse_text("vcgencmd", "throttled=0x50005\n"))
    now = {k: r["throttle." + k].value for k in ("undervoltage", "arm_freq_capped", "throttled", "soft_temp_limit")}
    assert now == {"undervoltage": 1, "arm_freq_capped": 0, "throttled": 1, "soft_temp_limit": 0}
    since = {k: r[f"throttle.{k}_occurred"].value for k in ("undervoltage", "arm_freq_capped", "throttled",
                                                            "soft_temp_limit")}
    assert since == {"undervoltage": 1, "arm_freq_capped": 0, "throttled": 1, "soft_temp_limit": 0}
    r = by_sensor(parse_text("vcgencmd", "throttled=0x50000\n"))
    assert r["throttle.throttled"].value == 0 and r["throttle.throttled_occurred"].value == 1
    (u,) = parse_text("pmic_read_adc", 'error=1 error_msg="Command not registered"\n')
    assert u.sensor == "power.pmic_rails" and u.value is None and "unsupported" in u.reason
    nul = "  VDD_CORE_A current(7)=2.00000000A\x00  VDD_CORE_V volt(15)=0.80000000V\x00"
    assert by_sensor(parse_text("pmic_read_adc", nul))["power.VDD_CORE"].value == pytest.approx(1600)


def test_thermalservice_hal_not_ready_and_bcl_types() -> None:
    text = (FIXTURES / "dumpsys_thermalservice_pixel_bcl.txt").read_text()
    r = by_sensor(parse_text(None, text))
    assert r["temp.BIG"].value == 41.5
    assert r["bcl.vdroop1"].unit == "mV" and r["bcl.ocp_cpu2"].unit == "mA"
    assert r["temp.npu"].value is None and "not a number" in r["temp.npu"].reason
    assert not any(s.startswith("temp.vdroop") or s.startswith("temp.ocp") for s in r)
    (hal,) = [x for x in parse_text("dumpsys-thermalservice", "Thermal Status: 2\nHAL Ready: false\n")
              if x.sensor == "temp.hal"]
    assert hal.value is None and "HAL not ready" in hal.reason


def test_powermetrics_intel_package_watts() -> None:
    text = ("*** Sampled system activity (Wed Jan  1 00:00:00 2020 +0000) (5003.11ms elapsed) ***\n\n"
            "**** Processor usage ****\n\nIntel energy model derived package power (CPUs+GT+SA): 4.87W\n\n"
            "**** Thermal pressure ****\n\nCurrent pressure level: Heavy\n")
    r = by_sensor(parse_text(None, text))
    assert r["power.package"].value == pytest.approx(4870)
    assert r["thermal.pressure"].value == 2 and r["thermal.pressure"].extra["text"] == "Heavy"
    assert r["powermetrics.elapsed"].value == pytest.approx(5003.11)


def test_powermetrics_plist_stream_nul_separated() -> None:
    one = ('<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>elapsed_ns</key>'
           '<integer>{ns}</integer><key>processor</key><dict><key>cpu_energy</key><real>{e}</real></dict>'
           '</dict></plist>\n')
    text = one.format(ns=500000000, e=250.0) + "\x00" + one.format(ns=1000000000, e=300.0) + "\x00<?xml trunc"
    rs = parse_text(None, text)
    cpu = [x.value for x in rs if x.sensor == "power.cpu"]
    assert cpu == [pytest.approx(500.0), pytest.approx(300.0)]  # energy / elapsed when no *_power
    assert any(x.sensor == "powermetrics.sample" and x.value is None for x in rs)  # the truncated tail


def test_stream_command_source_reads_records_as_they_come(tmp_path: Path) -> None:
    import time

    from hilbench_agent.telemetry.discover import StreamCommandSource

    script = tmp_path / "fake_tegrastats.py"  # a stand-in for `tegrastats --interval 100`
    script.write_text(
        "import sys, time\n"
        "for k in range(3):\n"
        "    sys.stdout.write('RAM %d/3964MB CPU [5%%@1224] VDD_IN %d/1000\\n' % (1000 + k, 2000 + k))\n"
        "    sys.stdout.flush()\n"
        "    time.sleep(0.05)\n")
    src = StreamCommandSource("tegrastats", [sys.executable, str(script)], lambda text: parse_text("tegrastats", text))
    got = []
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            try:
                got += src.read()
            except RuntimeError:
                break  # the command ended and everything was read
            time.sleep(0.02)
    finally:
        src.close()
    assert [r.value for r in got if r.sensor == "power.total"] == [2000, 2001, 2002]


def test_command_source_timeout(tmp_path: Path) -> None:
    from hilbench_agent.telemetry.discover import CommandSource

    src = CommandSource("slow", [sys.executable, "-c", "import time; time.sleep(5)"], lambda t: [], timeout_s=0.2)
    with pytest.raises(RuntimeError, match="timed out"):
        src.read()


def test_nvpmodel_query_and_non_finite_values() -> None:
    (mode,) = parse_text(None, "NV Power Mode: MAXN_SUPER\n2\n")
    assert (mode.sensor, mode.value, mode.extra["text"]) == ("nvpmodel.mode", 2, "MAXN_SUPER")
    from hilbench_agent.telemetry import Reading

    r = Reading("temp.x", float("nan"), "C")
    assert r.value is None and "finite" in r.reason
    assert Reading("power.x", float("inf"), "mW").to_dict()["value"] is None


def test_discover_vcgencmd_on_a_fake_pi5(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vcgencmd"  # a stand-in answering like the Pi 5 firmware
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  measure_clock) echo 'frequency(0)=2400000000' ;;\n"
        "  get_throttled) echo 'throttled=0x50005' ;;\n"
        "  pmic_read_adc) printf '  VDD_CORE_A current(7)=2.00000000A\\n  VDD_CORE_V volt(15)=0.80000000V\\n' ;;\n"
        "  measure_temp) echo \"temp=51.0'C\" ;;\n"
        "esac\n")
    fake.chmod(0o755)
    thermal_tree(tmp_path, {0: ("cpu-thermal", "51000")})
    found = discover(str(tmp_path), path=str(bin_dir), platform="linux", commands=True)
    names = [s.name for s in found]
    assert {"vcgencmd_clock", "vcgencmd_throttled", "pmic"} <= set(names)
    assert "vcgencmd_temp" not in names  # the thermal zone reads the same sensor without a process
    r = by_sensor(x for s in found if s.name != "thermal" for x in s.read())
    assert r["freq.arm"].value == 2400 and r["throttle.undervoltage"].value == 1
    assert r["power.pmic_rails"].value == pytest.approx(1600)
    assert {s.name: s.min_interval_s for s in found}["vcgencmd_throttled"] >= 1.0
