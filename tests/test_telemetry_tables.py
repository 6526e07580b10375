"""The order the telemetry parsers' handler tables read in (issue 16 step 5).

``parse_tegrastats_line``, ``parse_power_supply_uevent`` and ``parse_jetson_clocks`` try a table of
handlers in a fixed order; the order decides which reading a token or field gives and the order of
the readings. These tests pin both, on synthetic lines that put every handler in one line.
"""

from __future__ import annotations

from hilbench_agent.telemetry import jetson, linux
from hilbench_agent.telemetry.fs import MemFS

# An AGX-Xavier-like line: rails GPU/CPU share their names with the GPU@/CPU@ temperatures and CPU [..].
TEGRASTATS = ("RAM 2853/31919MB (lfb 5847x4MB) SWAP 0/15959MB (cached 0MB) CPU [1%@1190,off,0%@1190] "
              "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,0] GR3D2_FREQ @[305] APE 150 NVDEC off MTS fg 0% bg 1% "
              "CPU@45.5C GPU@-256C PMIC@50C GPU 0/0 CPU 155/155 VDD_IN 3822/3822/4000 NC 0/0")


def test_tegrastats_readings_in_line_order_each_token_by_its_own_handler() -> None:
    got = [(r.sensor, r.value) for r in jetson.parse_tegrastats_line(TEGRASTATS)]
    assert got == [
        ("mem.ram_used", 2853), ("mem.ram_total", 31919), ("mem.lfb_blocks", 5847),
        ("mem.swap_used", 0), ("mem.swap_total", 15959), ("mem.swap_cached", 0),
        ("load.cpu0", 1), ("freq.cpu0", 1190), ("load.cpu1", None), ("freq.cpu1", None),
        ("load.cpu2", 0), ("freq.cpu2", 1190), ("load.cpu", 0.5),
        ("load.emc", 0), ("freq.emc", 2133), ("load.gpu", 0), ("freq.gpu", 305), ("freq.gpu.gpc1", 305),
        ("freq.APE", 150), ("freq.NVDEC", None), ("load.mts_fg", 0), ("load.mts_bg", 1),
        ("temp.CPU", 45.5), ("temp.GPU", None), ("temp.PMIC", None),
        ("power.GPU", 0), ("power.GPU.avg", 0), ("power.CPU", 155), ("power.CPU.avg", 155),
        ("power.VDD_IN", 3822), ("power.VDD_IN.avg", 3822), ("power.VDD_IN.max", 4000),
        ("power.total", 3822),
    ]


def test_tegrastats_timestamp_goes_to_every_reading_and_a_prompt_gives_nothing() -> None:
    out = jetson.parse_tegrastats_line("04-17-2024 10:11:12 RAM 1/2MB VDD_IN 900/900")
    assert [r.sensor for r in out] == ["mem.ram_used", "mem.ram_total", "power.VDD_IN", "power.VDD_IN.avg",
                                       "load.gpu", "power.total"]
    assert {r.extra["timestamp"] for r in out} == {"04-17-2024 10:11:12"}
    assert jetson.parse_tegrastats_line("nvidia@jetson:~$ sudo tegrastats") == []


def test_uevent_readings_in_table_order_whatever_the_file_order() -> None:
    fields = [("TEMP", "291"), ("CAPACITY", "80"), ("CHARGE_NOW", "2000000"), ("ENERGY_NOW", "40000000"),
              ("POWER_NOW", "1925000"), ("CURRENT_NOW", "-500000"), ("VOLTAGE_NOW", "3850000"),
              ("INPUT_CURRENT_LIMIT", "1500000"), ("CURRENT_MAX", "3000000"), ("VOLTAGE_MIN", "3000000"),
              ("VOLTAGE_MAX", "4400000"), ("ONLINE", "1"), ("STATUS", "Charging"), ("TYPE", "Battery"),
              ("NAME", "bms")]
    out = linux.parse_power_supply_uevent("\n".join(f"POWER_SUPPLY_{k}={v}" for k, v in fields))
    assert [(r.sensor, r.value, r.unit) for r in out] == [
        ("supply.bms.status", 2, ""), ("supply.bms.online", 1, ""), ("supply.bms.voltage_max", 4400, "mV"),
        ("supply.bms.voltage_min", 3000, "mV"), ("supply.bms.current_max", 3000, "mA"),
        ("supply.bms.input_current_limit", 1500, "mA"), ("supply.bms.voltage", 3850, "mV"),
        ("supply.bms.current", 500, "mA"), ("supply.bms.power", 1925, "mW"), ("supply.bms.energy", 40000, "mWh"),
        ("supply.bms.charge", 2000, "mAh"), ("supply.bms.capacity", 80, "%"), ("supply.bms.temp", 29.1, "C"),
    ]
    current = out[7]
    assert current.extra == {"raw": -500000, "raw_unit": "uA", "sign_flipped": True}  # negative while charging
    assert out[1].extra == {"type": "Battery"} and out[8].extra == {"raw_uw": 1925000}


def test_uevent_calibration_and_inputs_are_never_sign_flipped() -> None:
    text = "POWER_SUPPLY_STATUS=Discharging\nPOWER_SUPPLY_CURRENT_NOW=400\n"
    (_, cur) = linux.parse_power_supply_uevent(text, current_unit="mA")
    assert cur.value == -400 and cur.extra["sign_flipped"] is True
    (_, cur) = linux.parse_power_supply_uevent(text, current_unit="mA", current_sign=1)
    assert cur.value == 400 and "sign_flipped" not in cur.extra
    (_, cur) = linux.parse_power_supply_uevent(text + "POWER_SUPPLY_TYPE=USB\n")
    assert cur.value == 0.4 and "sign_flipped" not in cur.extra


def test_jetson_clocks_unit_line_without_a_frequency_falls_through_to_the_later_patterns() -> None:
    text = ("SOC family:tegra210  Machine:jetson_tx1\nGPU: rail-gated\nEMC MinFreq=1 MaxFreq=2 FreqOverride=1\n"
            "cpu0: Online=1 Governor=schedutil MinFreq=1479000 MaxFreq=1479000 CurrentFreq=1479000\n"
            "Fan: PWM=0 speed=255\nNV Power Mode: MAXN\nOnline CPUs: 0-3\n")
    out = jetson.parse_jetson_clocks(text)
    assert [r.sensor for r in out] == [
        "jetson.soc_family", "jetson.machine", "freq.emc.min", "freq.emc.max", "jetson_clocks.emc_freq_override",
        "online.cpu0", "freq.cpu0", "freq.cpu0.min", "freq.cpu0.max", "fan.speed", "nvpmodel.mode", "online.cpus",
        "jetson_clocks.active"]
    assert out[-1].value == 1 and out[-1].extra["checked"] == ["1 CPUs", "EMC override"]


def test_discover_reports_steps_in_the_same_order() -> None:
    from hilbench_agent.telemetry.discover import discover

    h = "/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    tree = MemFS({"/etc/nv_tegra_release": "# R32\n", f"{h}/in1_label": "POM_5V_IN\n", f"{h}/curr1_input": "1\n",
                  "/proc/meminfo": "MemTotal: 100 kB\nMemAvailable: 50 kB\n",
                  "/sys/bus/usb/devices/2-1/idVendor": "1a6e\n", "/sys/bus/usb/devices/2-1/idProduct": "089a\n"},
                 errors={f"{h}/in1_input": "Input/output error"})
    found = discover(tree, pid=7, meter_command=["echo", "1"])
    assert [s.name for s in found] == ["meminfo", "meter"]
    assert [name for name, _ in found.missing] == ["thermal", "cpufreq", "hwmon", "rapl", "power_supply", "process",
                                                   "jetson_gpu", "jetson_rails", "edgetpu_temp"]
    assert dict(found.missing)["jetson_rails"].startswith("INA rails POM_5V_IN found but not readable")
    assert found.facts == {"jetson_clocks": {"active": None, "text": "no cpufreq limits to compare"}}
