"""Every recorded sample in ../shared/telemetry-samples parsed and checked against its SOURCES.md values.

The expected numbers below are transcribed from SOURCES.md ("Expected: ..."),
normalised to the units the readers report: power mW, temperature C,
frequency MHz, voltage mV, current mA.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hilbench_agent.telemetry import KINDS, Reading, detect_kind, parse_text
from hilbench_agent.telemetry.fs import memfs_from_dump, memfs_from_ttar

from harness.analysis.telemetry import parse_file
from harness.errors import InputError

SAMPLES = "telemetry-samples"

#: Every sample file and the kind it is parsed as. Files that are a bare number
#: (no recognisable landmark) are marked: detect_kind must return None for them.
SAMPLE_KINDS = {
    "android/dumpsys_battery_charging_skia.txt": "dumpsys-battery",
    "android/dumpsys_battery_pixel_c_dragon_syzkaller79.txt": "dumpsys-battery",
    "android/dumpsys_battery_with_temperature_skia.txt": "dumpsys-battery",
    "android/dumpsys_battery_zero_voltage_temp_appium133.txt": "dumpsys-battery",
    "android/dumpsys_thermalservice_qcom_silver_gold_skia.txt": "dumpsys-thermalservice",
    "android/dumpsys_thermalservice_samsung_sdhms_skia.txt": "dumpsys-thermalservice",
    "android/dumpsys_thermalservice_shield_tv_cached_shieldoptimizer6_truncated.txt": "dumpsys-thermalservice",
    "android/power_supply_battery_uevent_pixel3a_not_charging_acca35_truncated.txt": "uevent",
    "android/thermal_zone_types_xperia_x_compact_kugo28_truncated.txt": "thermal-zone-types",
    "coral/apex_0_sysfs_listing_no_temp_edgetpu498.txt": "apex-listing",
    "coral/devboard_thermal_zone0_trip_points_edgetpu578.txt": ("trip-points", "undetectable"),
    "jetson/ina3221_hwmon_dump_agx_orin_0x41_alumet212_truncated.txt": "sysfs-dump",
    "jetson/jetson_clocks_show_tx1_l4t281_hordiales.txt": "jetson_clocks",
    "jetson/jetson_clocks_show_tx2_jtop_emulator.txt": "jetson_clocks",
    "jetson/nvpmodel_p_verbose_nano_jtop_emulator.txt": "nvpmodel",
    "jetson/tegrastats_agx_orin64_jp6.txt": "tegrastats",
    "jetson/tegrastats_agx_orin64_jp6_root_gdwr14.txt": "tegrastats",
    "jetson/tegrastats_agx_orin64_jp72_r39_jtop_test.txt": "tegrastats",
    "jetson/tegrastats_agx_xavier_jp42_noroot_gtop7.txt": "tegrastats",
    "jetson/tegrastats_nano_5w_noroot_norails.txt": "tegrastats",
    "jetson/tegrastats_nano_jp461_waggle.txt": "tegrastats",
    "jetson/tegrastats_nano_jp4_root_gpuload.txt": "tegrastats",
    "jetson/tegrastats_sysfs_source_map_per_board_jtop_issue360_truncated.txt": "tegrastats-sources",
    "jetson/tegrastats_tx1_l4t281_legacy_format_hordiales.txt": "tegrastats",
    "jetson/tegrastats_tx2_jp4_noroot.txt": "tegrastats",
    "jetson/tegrastats_tx2_jp4_root.txt": "tegrastats",
    "jetson/tegrastats_tx2_l4t28_root_session.txt": "tegrastats",
    "jetson/tegrastats_xavier_nx_jp411_waggle.txt": "tegrastats",
    "jetson/tegrastats_xavier_nx_jp512_noroot_burn.txt": "tegrastats",
    "linux/cpufreq_cpu0_node_exporter_sys.ttar.txt": "sysfs-ttar",
    "linux/power_supply_BAT0_uevent_lenovo_procfs_fixture.txt": "uevent",
    "linux/powercap_grep_haswell_i7_4770s_dram_thermald45_truncated.txt": "sysfs-grep",
    "linux/powercap_intel_rapl_node_exporter_sys.ttar.txt": "sysfs-ttar",
    "linux/proc_meminfo_node_exporter_fixture.txt": "meminfo",
    "linux/proc_pid_status_prometheus_procfs_fixture.txt": "proc-status",
    "linux/thermal_zone_and_cooling_device_node_exporter_sys.ttar.txt": "sysfs-ttar",
    "macos/macmon_json_line_beszel.txt": "macmon",
    "macos/pmset_g_therm_apple_silicon_m1pro_empty_stats749.txt": "pmset-therm",
    "macos/pmset_g_therm_intel_12cpu_nodeexporter2031.txt": "pmset-therm",
    "macos/pmset_g_thermlog_intel_throttled_menumeters158.txt": "pmset-therm",
    "macos/powermetrics_gpu_power_mac14_10_beszel.txt": "powermetrics",
    "macos/powermetrics_monterey_m2_joularjx.txt": "powermetrics",
    "macos/powermetrics_plist_socpower_trimmed_osqueryext.plist.txt": "powermetrics",
    "macos/powermetrics_plist_thermal_pressure_mac16_6_osqueryext.plist.txt": "powermetrics",
    "macos/powermetrics_sonoma_m1max_joularjx.txt": "powermetrics",
    "raspberrypi/pmic_read_adc_pi5_4core_load_zeus.txt": "pmic_read_adc",
    "raspberrypi/vcgencmd_measure_volts_tldr6309.txt": "vcgencmd",
    "raspberrypi/vcgencmd_pi3bplus_clock_temp_throttled_duckietown358.txt": "vcgencmd",
    "raspberrypi/vcgencmd_pi4_measure_clock_arm_fw1537.txt": "vcgencmd",
}


def _kind(rel: str) -> str:
    k = SAMPLE_KINDS[rel]
    return k[0] if isinstance(k, tuple) else k


def _text(shared_dir: Path, rel: str) -> str:
    return (shared_dir / SAMPLES / rel).read_text(encoding="utf-8", errors="replace")


def _parse(shared_dir: Path, rel: str) -> list[Reading]:
    return parse_text(_kind(rel), _text(shared_dir, rel))


def _first(readings: list[Reading], sensor: str, line: int | None = 0) -> Reading:
    """The reading of ``sensor`` in tegrastats line ``line`` (or the first one, for other formats)."""
    for r in readings:
        if r.sensor == sensor and (line is None or r.extra.get("line", 0) == line):
            return r
    raise AssertionError(f"no reading {sensor!r} (line {line}) in {sorted({r.sensor for r in readings})}")


def _val(readings: list[Reading], sensor: str, line: int | None = 0) -> float | None:
    return _first(readings, sensor, line).value


def _values(readings: list[Reading], line: int = 0) -> dict[str, float | None]:
    return {r.sensor: r.value for r in readings if r.extra.get("line", 0) == line}


def _sensors(readings: list[Reading], line: int | None = 0) -> set[str]:
    return {r.sensor for r in readings if line is None or r.extra.get("line", 0) == line}


# --- coverage of the folder -------------------------------------------------------------------


def test_every_shared_sample_is_covered(shared_dir: Path) -> None:
    on_disk = {p.relative_to(shared_dir / SAMPLES).as_posix()
               for p in (shared_dir / SAMPLES).rglob("*") if p.is_file() and p.suffix != ".md"}
    assert on_disk, "no recorded telemetry samples"
    assert on_disk == set(SAMPLE_KINDS), "a sample was added or removed: cover it here and in SOURCES.md"


@pytest.mark.parametrize("rel", sorted(SAMPLE_KINDS))
def test_every_sample_parses_and_is_detected(shared_dir: Path, rel: str) -> None:
    text = _text(shared_dir, rel)
    expected = SAMPLE_KINDS[rel]
    if isinstance(expected, tuple):
        assert detect_kind(text) is None
    else:
        assert detect_kind(text) == expected
    readings = parse_text(_kind(rel), text)
    assert readings, rel
    for r in readings:
        assert isinstance(r, Reading)
        assert r.sensor and isinstance(r.unit, str)
        assert r.value is None or r.value == r.value  # never NaN
        if r.value is None:
            assert r.reason
    # The host entry point returns JSON-serialisable dicts for the same file.
    dicts = parse_file(shared_dir / SAMPLES / rel, _kind(rel))
    assert len(dicts) == len(readings)
    json.dumps(dicts, allow_nan=False)


# --- Jetson -----------------------------------------------------------------------------------


def test_tegrastats_tx1_legacy(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_tx1_l4t281_legacy_format_hordiales.txt")
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"]) == (3468, 3983)
    assert v["mem.lfb_blocks"] == 48 and _first(rs, "mem.lfb_blocks").extra["block_size_mb"] == 4
    assert (v["mem.swap_used"], v["mem.swap_total"], v["mem.swap_cached"]) == (873, 8192, 295)
    assert [v[f"load.cpu{k}"] for k in range(4)] == [17, 13, 29, 5]
    assert [v[f"freq.cpu{k}"] for k in range(4)] == [408] * 4
    assert (v["load.emc"], v["freq.emc"]) == (1, 408)
    assert v["freq.APE"] == 25
    assert (v["load.gpu"], v["freq.gpu"]) == (3, 76)
    assert not any(s.startswith("temp.") for s in v)
    assert v["power.total"] is None  # no rails on TX1: unavailable, not 0 W


def test_tegrastats_tx2_l4t28_session_with_prompts(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_tx2_l4t28_root_session.txt")
    assert {r.extra["line"] for r in rs} == {0, 1}  # prompt, sudo and blank lines skipped
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"]) == (284, 7860)
    assert [v[f"load.cpu{k}"] for k in range(6)] == [48, None, None, 53, 43, 41]
    assert [v[f"freq.cpu{k}"] for k in range(6)] == [2034, None, None, 2034, 2033, 2034]
    assert _first(rs, "load.cpu1").reason == "core offline"
    assert (v["load.emc"], v["freq.emc"]) == (2, 1600)
    assert v["freq.gpu"] == 0 and v["load.gpu"] is None  # GR3D_FREQ @0: rail-gated
    assert v["freq.APE"] == 150
    temps = {"PLL": 29.5, "MCPU": 29.5, "Tboard": 26, "GPU": 27.5, "BCPU": 29.5, "thermal": 28.7, "Tdiode": 25}
    for name, t in temps.items():
        assert v["temp." + name] == t
    assert v["temp.PMIC"] is None and _first(rs, "temp.PMIC").extra["raw"] == 100
    rails = {"VDD_SYS_GPU": 192, "VDD_SYS_SOC": 529, "VDD_4V0_WIFI": 38, "VDD_IN": 3566, "VDD_SYS_CPU": 1156,
             "VDD_SYS_DDR": 902}
    for name, mw in rails.items():
        assert v["power." + name] == mw and v[f"power.{name}.avg"] == mw
    assert v["power.total"] == 3566
    assert _first(rs, "power.total").extra["rails"] == ["VDD_IN"]


def test_tegrastats_tx2_jp4_noroot(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_tx2_jp4_noroot.txt")
    assert max(r.extra["line"] for r in rs) == 39
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"]) == (2633, 7850)
    assert not any(s.startswith("mem.swap") for s in v)  # no SWAP field: not reported, not 0
    assert [v[f"load.cpu{k}"] for k in range(6)] == [0] * 6
    assert [v[f"freq.cpu{k}"] for k in range(6)] == [2035] * 6
    assert v["load.gpu"] is None and "freq.gpu" not in v and "load.emc" not in v
    temps = {"BCPU": 35, "MCPU": 35, "GPU": 41, "PLL": 35, "AO": 32, "Tboard": 29, "Tdiode": 31.25, "thermal": 33.8}
    for name, t in temps.items():
        assert v["temp." + name] == t
    assert v["temp.PMIC"] is None
    rails = {"VDD_IN": 3624, "VDD_CPU": 696, "VDD_GPU": 371, "VDD_SOC": 650, "VDD_WIFI": 0, "VDD_DDR": 881}
    for name, mw in rails.items():
        assert v["power." + name] == mw
    assert v["power.total"] == 3624


def test_tegrastats_tx2_jp4_root(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_tx2_jp4_root.txt")
    assert max(r.extra["line"] for r in rs) == 29
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"]) == (2635, 7850)
    assert [v[f"freq.cpu{k}"] for k in range(6)] == [1996, 2034, 2034, 1995, 1994, 1997]
    assert [v[f"load.cpu{k}"] for k in range(6)] == [0] * 6
    assert (v["load.emc"], v["freq.emc"]) == (7, 1600)
    assert (v["load.gpu"], v["freq.gpu"]) == (18, 1134)
    assert v["freq.APE"] == 150
    assert (v["load.mts_fg"], v["load.mts_bg"]) == (0, 0)
    assert v["temp.GPU"] == 44
    assert v["power.VDD_IN"] == 3717 and v["power.total"] == 3717


def test_tegrastats_nano_jp461(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_nano_jp461_waggle.txt")
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"]) == (1923, 3964)
    assert (v["mem.swap_used"], v["mem.swap_total"], v["mem.swap_cached"]) == (191, 1982, 6)
    assert (v["mem.iram_used"], v["mem.iram_total"]) == (0, 252)
    assert _first(rs, "mem.iram_total").unit == "KB"
    assert v["mem.iram_lfb"] == 252 and _first(rs, "mem.iram_lfb").unit == "KB"  # IRAM 0/252kB(lfb 252kB)
    assert v["mem.lfb_blocks"] == 2 and _first(rs, "mem.lfb_blocks").extra["block_size_mb"] == 2  # (lfb 2x2MB)
    assert [v[f"load.cpu{k}"] for k in range(4)] == [5, 4, 3, 6]
    assert [v[f"freq.cpu{k}"] for k in range(4)] == [1224] * 4
    assert (v["load.emc"], v["freq.emc"]) == (0, 1600)
    assert (v["load.gpu"], v["freq.gpu"]) == (0, 76)
    assert v["freq.APE"] == 25
    for name, t in {"PLL": 37, "CPU": 40, "GPU": 40, "AO": 45, "thermal": 40}.items():
        assert v["temp." + name] == t
    assert v["temp.PMIC"] is None
    assert (v["power.POM_5V_IN"], v["power.POM_5V_IN.avg"]) == (1750, 1628)
    assert (v["power.POM_5V_GPU"], v["power.POM_5V_CPU"], v["power.POM_5V_CPU.avg"]) == (0, 366, 406)
    assert v["power.total"] == 1750  # POM_5V_IN is the module input; sub-rails are not added


def test_tegrastats_nano_root_gpu_load(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_nano_jp4_root_gpuload.txt")
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.swap_used"], v["mem.swap_total"]) == (936, 0, 4096)
    assert [v[f"load.cpu{k}"] for k in range(4)] == [10, 3, 0, 0]
    assert v["freq.cpu0"] == 102
    assert (v["load.emc"], v["freq.emc"], v["load.gpu"], v["freq.gpu"]) == (0, 204, 0, 76)
    assert (v["power.POM_5V_IN"], v["power.POM_5V_GPU"], v["power.POM_5V_CPU"]) == (920, 0, 119)
    # Over the 40 lines the GPU reaches 99 % and its clock rises 76 -> 153 -> 230 -> 921 MHz.
    assert max(r.value for r in rs if r.sensor == "load.gpu") == 99
    assert {76, 153, 230, 921} <= {r.value for r in rs if r.sensor == "freq.gpu"}


def test_tegrastats_nano_without_rails(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_nano_5w_noroot_norails.txt")
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"], v["mem.swap_used"], v["mem.swap_total"]) == (1758, 3956, 440, 1978)
    assert [v[f"load.cpu{k}"] for k in range(4)] == [28, 19, None, None]
    assert [v[f"freq.cpu{k}"] for k in range(2)] == [921, 921]
    assert v["load.cpu"] == pytest.approx((28 + 19) / 2)  # offline cores excluded from the mean
    assert v["load.emc"] == 0 and v["freq.emc"] is None
    assert v["load.gpu"] == 0 and v["freq.gpu"] is None
    for name, t in {"PLL": 41, "CPU": 42.5, "GPU": 40.5, "AO": 50, "thermal": 41.75}.items():
        assert v["temp." + name] == t
    assert v["temp.PMIC"] is None
    assert v["power.total"] is None and "rails" in _first(rs, "power.total").reason
    assert not [s for s in v if s.startswith("power.") and s != "power.total"]


def test_tegrastats_xavier_nx_jp4(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_xavier_nx_jp411_waggle.txt")
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"], v["mem.swap_used"], v["mem.swap_total"]) == (5246, 7771, 983, 20269)
    assert [v[f"load.cpu{k}"] for k in range(6)] == [47, 23, 32, 22, 31, 96]
    assert [v[f"freq.cpu{k}"] for k in range(6)] == [1420] * 6
    assert (v["load.emc"], v["freq.emc"], v["load.gpu"], v["freq.gpu"]) == (2, 1600, 0, 1109)
    assert v["freq.APE"] == 150 and (v["load.mts_fg"], v["load.mts_bg"]) == (1, 9)
    for name, t in {"AO": 29, "GPU": 31.5, "AUX": 30, "CPU": 33.5, "thermal": 31.35}.items():
        assert v["temp." + name] == t
    assert v["temp.PMIC"] is None
    assert (v["power.VDD_IN"], v["power.VDD_IN.avg"]) == (6140, 5510)
    assert (v["power.VDD_CPU_GPU_CV"], v["power.VDD_CPU_GPU_CV.avg"]) == (2706, 2119)
    assert (v["power.VDD_SOC"], v["power.VDD_SOC.avg"]) == (1074, 1051)
    assert v["power.total"] == 6140


def test_tegrastats_xavier_nx_jp5_noroot_burn(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_xavier_nx_jp512_noroot_burn.txt")
    v = _values(rs)
    assert _first(rs, "mem.ram_used").extra["timestamp"] == "10-01-2025 20:05:55"
    assert (v["mem.ram_used"], v["mem.ram_total"], v["mem.swap_used"], v["mem.swap_total"]) == (2274, 6834, 542, 3417)
    assert [v[f"load.cpu{k}"] for k in range(6)] == [99, 100, 100, 98, None, None]
    assert [v[f"freq.cpu{k}"] for k in range(4)] == [1189, 1188, 1189, 1189]
    assert v["load.emc"] == 0 and v["freq.emc"] is None
    assert v["load.gpu"] == 22 and v["freq.gpu"] is None
    for name, t in {"AUX": 36.5, "CPU": 40, "thermal": 37.85, "AO": 37.5, "GPU": 38}.items():
        assert v["temp." + name] == t
    assert v["temp.PMIC"] is None and _first(rs, "temp.PMIC").extra["raw"] == 50
    assert (v["power.VDD_IN"], v["power.VDD_CPU_GPU_CV"], v["power.VDD_SOC"]) == (5542, 1594, 1234)
    assert _first(rs, "power.VDD_IN").unit == "mW"
    # Under GPU load VDD_IN reaches about 13.8 W while the cumulative avg lags behind.
    cur = [r.value for r in rs if r.sensor == "power.VDD_IN"]
    avg = [r.value for r in rs if r.sensor == "power.VDD_IN.avg"]
    assert 13000 < max(cur) < 14000
    assert avg[-1] < cur[-1] and avg[-1] > avg[0]


def test_tegrastats_agx_xavier_bare_rail_names(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_agx_xavier_jp42_noroot_gtop7.txt")
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"], v["mem.swap_used"], v["mem.swap_total"]) == (14700, 15692, 898, 8192)
    assert [v[f"load.cpu{k}"] for k in range(8)] == [0] * 8
    assert [v[f"freq.cpu{k}"] for k in range(8)] == [1190] * 8
    assert v["load.emc"] == 0 and v["load.gpu"] == 0 and v["freq.gpu"] is None
    temps = {"AO": 30, "GPU": 30.5, "Tboard": 31, "Tdiode": 32, "AUX": 30.5, "CPU": 31.5, "thermal": 30.8}
    for name, t in temps.items():
        assert v["temp." + name] == t  # GPU@/CPU@ temperatures kept apart from the GPU/CPU rails
    rails = {"GPU": 463, "CPU": 618, "SOC": 2936, "CV": 0, "VDDRQ": 309, "SYS5V": 3306}
    for name, mw in rails.items():
        assert v["power." + name] == mw
    assert v["power.total"] == 463 + 618 + 2936 + 0 + 309 + 3306 == 7632
    assert "sum" in _first(rs, "power.total").extra["method"]


def test_tegrastats_agx_orin_jp5_root_offline_sensors(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_agx_orin64_jp6_root_gdwr14.txt")
    v = _values(rs)
    assert _first(rs, "mem.ram_used").extra["timestamp"] == "04-11-2025 10:36:27"
    assert (v["mem.ram_used"], v["mem.ram_total"], v["mem.swap_used"], v["mem.swap_total"]) == (4321, 62801, 19, 31400)
    assert [v[f"load.cpu{k}"] for k in range(12)] == [0] * 12
    assert [v[f"freq.cpu{k}"] for k in range(12)] == [729] * 12
    assert (v["load.emc"], v["freq.emc"]) == (0, 2133)
    assert (v["load.gpu"], v["freq.gpu"]) == (0, 0)
    assert _first(rs, "freq.gpu").extra["gpcs_mhz"] == [0, 0]
    assert v["freq.VIC"] == 729 and v["freq.APE"] == 174
    for name in ("CV0", "CV1", "CV2", "GPU"):
        assert v["temp." + name] is None and "-256" in _first(rs, "temp." + name).reason
    temps = {"CPU": 44.562, "Tboard": 32, "SOC2": 40.093, "Tdiode": 33, "SOC0": 41.093, "tj": 44.343, "SOC1": 41.25}
    for name, t in temps.items():
        assert v["temp." + name] == t
    rails = {"VDD_GPU_SOC": 2340, "VDD_CPU_CV": 390, "VIN_SYS_5V0": 4025, "VDDQ_VDD2_1V8AO": 301}
    for name, mw in rails.items():
        assert v["power." + name] == mw
    assert "power.NC" not in v
    assert v["power.total"] == 7056  # no VDD_IN on AGX Orin: sum of the connected rails
    assert "VIN_SYS_5V0" in _first(rs, "power.total").extra["rails"]


def test_tegrastats_agx_orin_jp6(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_agx_orin64_jp6.txt")
    stamps = [r.extra["timestamp"] for r in rs if r.sensor == "mem.ram_used"]
    assert len(stamps) == 15 and stamps[0] == "07-21-2025 16:33:42"
    assert "07-21-2025 16:33:46" not in stamps and "07-21-2025 16:33:47" in stamps  # the skipped second
    v = _values(rs)
    assert (v["mem.ram_used"], v["mem.ram_total"]) == (17953, 62841)
    assert [v[f"load.cpu{k}"] for k in range(8)] == [7, 31, 7, 42, 4, 5, 6, 1]
    assert [v[f"freq.cpu{k}"] for k in range(8)] == [1728, 1036, 1036, 1036, 1420, 729, 729, 729]
    assert [v[f"load.cpu{k}"] for k in range(8, 12)] == [None] * 4
    assert (v["load.emc"], v["freq.emc"]) == (12, 204)
    assert (v["load.gpu"], v["freq.gpu"]) == (39, 305)  # max(305, 0)
    for engine in ("NVENC", "NVDEC", "NVJPG", "NVJPG1", "VIC", "OFA", "NVDLA0", "NVDLA1", "PVA0"):
        assert v["freq." + engine] is None
    assert v["freq.APE"] == 174
    temps = {"cpu": 43.906, "soc2": 40.406, "soc0": 41.187, "gpu": 40.093, "tj": 43.906, "soc1": 40.437}
    for name, t in temps.items():
        assert v["temp." + name] == t
    assert (v["power.VDD_GPU_SOC"], v["power.VDD_CPU_CV"], v["power.VIN_SYS_5V0"]) == (2798, 799, 3315)
    assert v["power.total"] == 6912


def test_tegrastats_agx_orin_jp72_three_value_rails(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_agx_orin64_jp72_r39_jtop_test.txt")
    v = _values(rs)
    assert _first(rs, "mem.ram_used").extra["timestamp"] == "07-25-2026 09:08:28"
    assert (v["mem.ram_used"], v["mem.ram_total"]) == (20642, 62817)
    assert not any(s.startswith("mem.swap") for s in v)
    assert [v[f"freq.cpu{k}"] for k in range(12)] == [2201] * 12
    assert (v["load.emc"], v["freq.emc"], v["load.gpu"], v["freq.gpu"]) == (3, 3199, 12, 1300)
    assert v["freq.APE"] == 174
    for name, t in {"cpu": 52.968, "soc2": 48.406, "soc0": 49.531, "gpu": 47.625}.items():
        assert v["temp." + name] == t
        assert _first(rs, "temp." + name).extra["temp_aux"] == t
    for name, mw in {"VDD_GPU_SOC": 5139, "VDD_CPU_CV": 3268, "VIN_SYS_5V0": 5500}.items():
        assert v["power." + name] == v[f"power.{name}.avg"] == v[f"power.{name}.max"] == mw


def test_jetson_clocks_tx1_typo(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/jetson_clocks_show_tx1_l4t281_hordiales.txt")
    v = {r.sensor: r.value for r in rs}
    assert _first(rs, "freq.cpu0").extra["governor"] == "interactive"  # from "Gonvernor="
    assert v["freq.cpu0"] == v["freq.cpu0.min"] == v["freq.cpu0.max"] == 1734000 / 1000
    assert v["freq.gpu"] == v["freq.gpu.min"] == v["freq.gpu.max"] == 998400000 / 1e6
    assert (v["freq.emc.min"], v["freq.emc.max"], v["freq.emc"]) == (12750000 / 1e6, 1600, 1600)
    assert v["jetson_clocks.emc_freq_override"] == 1
    assert v["fan.speed"] == 255
    assert v["online.cpus"] == 4
    by = {r.sensor: r for r in rs}
    assert by["jetson.soc_family"].extra["text"] == "tegra210" and by["jetson.soc_family"].value is None
    assert by["jetson.machine"].extra["text"] == "jetson_tx1"
    # Every core and the GPU at min = max, EMC override set: what jetson_clocks leaves behind.
    assert v["jetson_clocks.active"] == 1 and by["jetson_clocks.active"].extra["text"] == "on"


def test_jetson_clocks_tx2(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/jetson_clocks_show_tx2_jtop_emulator.txt")
    v = {r.sensor: r.value for r in rs}
    assert _first(rs, "online.cpus").extra["cpus"] == [0, 3, 4, 5]
    assert (v["online.cpu1"], v["online.cpu2"], v["online.cpu0"]) == (0, 0, 1)
    assert _first(rs, "freq.cpu0").extra["governor"] == "schedutil"
    assert _first(rs, "freq.cpu0").extra["idle_states"] == {"C1": 1, "c7": 1}
    assert _first(rs, "freq.cpu1").extra["idle_states"] == {"C1": 1, "c6": 1, "c7": 1}
    assert "C1" not in {r.sensor.split(".")[-1] for r in rs}  # idle states are not frequencies
    by = {r.sensor: r for r in rs}
    assert (by["jetson.soc_family"].extra["text"], by["jetson.machine"].extra["text"]) == ("tegra186", "quill")
    # The governor is free (min 345.6 < max 2035.2 MHz) and EMC is not overridden: jetson_clocks is off.
    active = by["jetson_clocks.active"]
    assert active.value == 0 and active.extra["text"] == "off"
    assert active.extra["checked"] == ["4 CPUs", "GPU", "EMC override"]  # cpu1 and cpu2 are offline
    assert "EMC FreqOverride=0" in active.extra["unpinned"]
    assert (v["freq.cpu0.min"], v["freq.cpu0.max"], v["freq.cpu0"]) == (345.6, 2035.2, 2035.2)
    assert (v["freq.gpu.min"], v["freq.gpu.max"], v["freq.gpu"]) == (114.75, 1134.75, 114.75)
    assert v["freq.emc"] == 1600 and v["jetson_clocks.emc_freq_override"] == 0
    assert v["fan.speed"] == 0
    assert _first(rs, "nvpmodel.mode").extra["text"] == "MAXP_CORE_ARM"


def test_nvpmodel_verbose(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/nvpmodel_p_verbose_nano_jtop_emulator.txt")
    v = {r.sensor: r for r in rs}
    default = v["nvpmodel.default"]
    assert default.value == 0 and default.extra["text"] == "MAXN"
    assert default.extra["modes"] == {0: "MAXN", 1: "5W"}
    assert default.extra["paths"]["GPU.MAX_FREQ"].startswith("/sys/devices/gpu.0/devfreq/57000000.gpu/")
    assert (v["nvpmodel.5W.CPU_ONLINE.CORE_2"].value, v["nvpmodel.5W.CPU_ONLINE.CORE_3"].value) == (0, 0)
    assert v["nvpmodel.5W.CPU_A57.MAX_FREQ"].value == 918000 and v["nvpmodel.5W.CPU_A57.MAX_FREQ"].unit == "kHz"
    assert v["nvpmodel.5W.GPU.MAX_FREQ"].value == 640000000 and v["nvpmodel.5W.GPU.MAX_FREQ"].unit == "Hz"
    assert v["nvpmodel.5W.EMC.MAX_FREQ"].value == 1600000000
    assert v["nvpmodel.MAXN.GPU.MAX_FREQ"].value is None  # 2147483647 means "no limit"


def test_ina3221_hwmon_dump_tolerates_eio(shared_dir: Path) -> None:
    rel = "jetson/ina3221_hwmon_dump_agx_orin_0x41_alumet212_truncated.txt"
    tree = memfs_from_dump(_text(shared_dir, rel))
    base = "/sys/bus/i2c/drivers/ina3221/1-0041"
    assert tree.read(base + "/name").strip() == "ina3221"
    with pytest.raises(OSError, match="Input/output error"):
        tree.read(base + "/power/autosuspend_delay_ms")
    rs = _parse(shared_dir, rel)
    v = {r.sensor: r for r in rs}
    # The dump is cut before any in<k>_label: its files are reported raw and no rail is invented.
    assert v["ina.1-0041.curr1_crit_alarm"].value == 0
    assert v["ina.1-0041.curr2_max_alarm"].value == 0
    # The thread's copy ends right after in3_input's header (its EIO is cut off): no value, a reason.
    assert v["ina.1-0041.in3_input"].value is None and v["ina.1-0041.in3_input"].reason
    assert not [s for s in v if s.startswith(("power.", "voltage.", "current."))]


def test_tegrastats_source_map(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "jetson/tegrastats_sysfs_source_map_per_board_jtop_issue360_truncated.txt")
    by = {(r.extra["board"], r.sensor): r.extra for r in rs}
    assert by[("AGX Orin", "tegrastats_source.GR3D_FREQ")]["path"].endswith("/nafll_gpc0/pto_counter")
    assert by[("AGX Orin", "tegrastats_source.GR3D_FREQ")]["root_only"] is True
    assert by[("AGX Orin", "tegrastats_source.IGPU_LOAD")]["path"] == "/sys/devices/platform/gpu.0/load"
    assert by[("Jetson Nano", "tegrastats_source.IGPU_LOAD")]["path"] == "/sys/devices/gpu.0/load"
    assert by[("Jetson Nano", "tegrastats_source.IGPU_LOAD")]["root_only"] is False
    assert all(r.value is None for r in rs)


# --- Raspberry Pi -----------------------------------------------------------------------------


def test_pmic_read_adc_pi5(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "raspberrypi/pmic_read_adc_pi5_4core_load_zeus.txt")
    first = rs[0]
    assert (first.sensor, first.extra["channel"]) == ("current.3V7_WL_SW", 0)
    assert first.value == pytest.approx(0.09368929 * 1000)
    v = {r.sensor: r for r in rs}
    paired = [s for s in v if s.startswith("power.") and s not in ("power.pmic_rails", "power.board_estimate")]
    assert len(paired) == 12
    assert v["voltage.EXT5V"].value == pytest.approx(5090.66) and "power.EXT5V" not in v
    assert v["voltage.BATT"].value == 0 and "power.BATT" not in v
    assert v["power.VDD_CORE"].value == pytest.approx(5363.6, abs=0.1)
    assert v["power.pmic_rails"].value == pytest.approx(7239.8, abs=0.1)
    assert v["power.pmic_rails"].extra["partial"] is True
    assert v["power.board_estimate"].value == pytest.approx(8878, abs=1)
    # Out-of-order channels are paired by name: 0V8_AON is current(16) with volt(19).
    assert v["power.0V8_AON"].extra["channels"] == [16, 19]


def test_vcgencmd_pi3(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "raspberrypi/vcgencmd_pi3bplus_clock_temp_throttled_duckietown358.txt")
    v = {r.sensor: r for r in rs}
    assert v["freq.arm"].value == 1400 and v["freq.arm"].extra["clock_id"] == 45
    assert v["temp.soc"].value == 62.3
    assert v["throttle.raw"].value == 0
    assert all(r.value == 0 for r in rs if r.sensor.startswith("throttle."))


def test_vcgencmd_pi4_clock(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "raspberrypi/vcgencmd_pi4_measure_clock_arm_fw1537.txt")
    assert rs[0].sensor == "freq.arm" and rs[0].value == pytest.approx(600.17, abs=0.01)
    assert rs[0].extra["clock_id"] == 48


def test_vcgencmd_volts(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "raspberrypi/vcgencmd_measure_volts_tldr6309.txt")
    assert (rs[0].sensor, rs[0].value, rs[0].unit) == ("voltage.core", 1200, "mV")
    assert "requested" in rs[0].extra["note"]


# --- Coral ------------------------------------------------------------------------------------


def test_apex_listing_without_temp(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "coral/apex_0_sysfs_listing_no_temp_edgetpu498.txt")
    assert len(rs) == 1
    assert rs[0].sensor == "temp.apex_0" and rs[0].value is None
    assert "unsupported" in rs[0].reason
    assert "node_0_page_table_entries" in rs[0].extra["attributes"]


def test_devboard_trip_points_keep_their_order(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "coral/devboard_thermal_zone0_trip_points_edgetpu578.txt")
    assert [r.value for r in rs] == [75, 80, 85, 90, 65]
    assert all(r.unit == "C" for r in rs)


# --- Android ----------------------------------------------------------------------------------


def test_dumpsys_battery_pixel_c(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "android/dumpsys_battery_pixel_c_dragon_syzkaller79.txt")
    v = {r.sensor: r for r in rs}
    assert v["battery.ac_powered"].value == 1
    assert v["battery.max_charging_current"].value == 2400
    assert v["battery.max_charging_voltage"].value == 5000
    assert v["battery.charge_counter"].value is None  # 0 = not supported
    assert (v["battery.status"].value, v["battery.status"].extra["text"]) == (2, "charging")
    assert (v["battery.health"].value, v["battery.health"].extra["text"]) == (2, "good")
    assert v["battery.level"].value == 19
    assert v["battery.voltage"].value == 3764
    assert v["battery.temp"].value == 27.5


def test_dumpsys_battery_emulator_zeros_are_unavailable(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "android/dumpsys_battery_zero_voltage_temp_appium133.txt")
    v = {r.sensor: r for r in rs}
    assert v["battery.level"].value == 89
    assert v["battery.voltage"].value is None and v["battery.temp"].value is None
    assert "battery.max_charging_current" not in v and "battery.charge_counter" not in v


def test_dumpsys_battery_skia_variants(shared_dir: Path) -> None:
    v = {r.sensor: r.value for r in _parse(shared_dir, "android/dumpsys_battery_charging_skia.txt")}
    assert (v["battery.ac_powered"], v["battery.max_charging_current"]) == (1, 1500)
    assert v["battery.charge_counter"] == pytest.approx(2448.973)
    assert (v["battery.level"], v["battery.voltage"]) == (9, 4248)
    assert "battery.temp" not in v
    v = {r.sensor: r.value for r in _parse(shared_dir, "android/dumpsys_battery_with_temperature_skia.txt")}
    assert (v["battery.level"], v["battery.temp"]) == (94, 28.1)  # tab-indented keys


def test_thermalservice_qcom_uses_live_block(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "android/dumpsys_thermalservice_qcom_silver_gold_skia.txt")
    v = {r.sensor: r for r in rs}
    assert v["thermal.status"].value == 0
    assert v["temp.battery"].value == pytest.approx(28.0, abs=1e-3) and v["temp.battery"].extra["mType"] == 2
    assert v["temp.cpu0-gold-usr"].value == pytest.approx(33.8, abs=1e-3)
    assert v["temp.cpu1-gold-usr"].value == pytest.approx(33.5)  # not the stale cached 48.3
    cpus = [r.value for r in rs if r.extra.get("type") == "CPU"]
    assert max(cpus) == pytest.approx(44.1) == v["temp.cpu1-silver-usr"].value
    assert v["temp.gpu0-usr"].value == pytest.approx(32.9) and v["temp.gpu0-usr"].extra["type"] == "GPU"
    assert v["temp.mb-therm-monitor"].value == pytest.approx(30.147, abs=1e-3)
    assert v["temp.mb-therm-monitor"].extra["type"] == "SKIN"
    assert v["temp.usbc-therm-monitor"].value == pytest.approx(26.926)
    assert v["temp.usbc-therm-monitor"].extra["type"] == "USB_PORT"
    assert len([r for r in rs if r.sensor.startswith("cooling.")]) == 4


def test_thermalservice_samsung_names_and_sentinel(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "android/dumpsys_thermalservice_samsung_sdhms_skia.txt")
    v = {r.sensor: r for r in rs}
    expected = {"CPU": 24.0, "BATTERY": 24.4, "SKIN": 25.3, "USB_PORT": 24.2}
    for kind, t in expected.items():
        r = v["temp.TYPE_" + kind]
        assert r.value == t and r.extra["type"] == kind
    assert v["temp.TYPE_CPU"].extra["mType"] == 1  # Samsung shifts the AOSP numbers
    pa = v["temp.TYPE_POWER_AMPLIFIER"]
    assert pa.value is None and "-99.9" in pa.reason


def test_thermalservice_shield_cached_only(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "android/dumpsys_thermalservice_shield_tv_cached_shieldoptimizer6_truncated.txt")
    v = {r.sensor: r for r in rs}
    assert v["thermal.status"].value == 0
    assert not [r for r in rs if r.sensor.startswith("temp.") and r.value is not None]
    hal = v["temp.hal"]
    assert hal.value is None and "stale" in hal.reason
    assert hal.extra["cached"] == {"GPU": 36.0, "CPU0": 37.0, "CPU1": 37.0, "CPU2": 37.0, "CPU3": 37.0}


def test_uevent_pixel3a(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "android/power_supply_battery_uevent_pixel3a_not_charging_acca35_truncated.txt")
    v = {r.sensor: r for r in rs}
    assert v["supply.battery.status"].extra["text"] == "Not charging"
    assert v["supply.battery.current"].value == pytest.approx(0.976)  # 976 uA, not "976 mA"
    assert v["supply.battery.voltage"].value == pytest.approx(3815.175)
    assert v["supply.battery.temp"].value == 31.3
    assert v["supply.battery.capacity"].value == 44


def test_thermal_zone_types_xperia(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "android/thermal_zone_types_xperia_x_compact_kugo28_truncated.txt")
    zones = {r.extra["zone"]: r for r in rs}
    assert [zones[f"thermal_zone{k}"].extra["type"] for k in range(4)] == ["bms", "battery", "pa_therm1", "xo_therm"]
    assert zones["thermal_zone0"].extra["cpu"] is False
    for k in range(7, 15):
        assert zones[f"thermal_zone{k}"].extra["type"] == f"tsens_tz_sensor{k - 7}"
        assert zones[f"thermal_zone{k}"].extra["cpu"] is True


# --- macOS ------------------------------------------------------------------------------------


def test_powermetrics_ventura_m1max(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "macos/powermetrics_sonoma_m1max_joularjx.txt")
    v = {r.sensor: r.value for r in rs}
    assert v["powermetrics.elapsed"] == pytest.approx(1012.07)
    assert (v["power.cpu"], v["power.gpu"], v["power.ane"]) == (211, 147, 0)
    assert v["power.combined"] == 359  # as printed, not 211 + 147 + 0
    assert v["freq.E-Cluster"] == 1499 and "freq.P1-Cluster" in v


def test_powermetrics_monterey_two_samples(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "macos/powermetrics_monterey_m2_joularjx.txt")
    samples = sorted({r.extra["sample"] for r in rs})
    assert len(samples) == 2
    proc = {r.sensor: r.value for r in rs if r.extra["sample"] == samples[1]}
    assert (proc["power.E-Cluster"], proc["freq.E-Cluster"]) == (6, 919)
    assert (proc["power.P-Cluster"], proc["freq.P-Cluster"]) == (4, 667)
    assert (proc["power.ane"], proc["power.dram"], proc["power.dcs"]) == (0, 19, 36)
    assert (proc["power.cpu"], proc["power.gpu"], proc["power.package"]) == (10, 0, 25)
    assert "power.combined" not in proc
    tasks_only = {r.sensor for r in rs if r.extra["sample"] == samples[0]}
    assert tasks_only == {"powermetrics.elapsed"}


def test_powermetrics_gpu_sampler(shared_dir: Path) -> None:
    v = {r.sensor: r.value for r in _parse(shared_dir, "macos/powermetrics_gpu_power_mac14_10_beszel.txt")}
    assert v["powermetrics.elapsed"] == pytest.approx(503.05)
    assert v["freq.gpu"] == 444
    assert v["load.gpu"] == pytest.approx(0.97)  # 100 - idle residency 99.03
    assert v["power.gpu"] == 4


def test_powermetrics_plist_socpower(shared_dir: Path) -> None:
    v = {r.sensor: r.value for r in _parse(shared_dir, "macos/powermetrics_plist_socpower_trimmed_osqueryext.plist.txt")}
    assert v["powermetrics.elapsed"] == pytest.approx(3017.30475)
    assert v["power.cpu"] == pytest.approx(9924.35) and v["power.gpu"] == pytest.approx(169.958)
    assert v["power.ane"] == 0 and v["power.combined"] == pytest.approx(10094.3)
    assert v["load.gpu"] == pytest.approx(9.86, abs=0.01)


def test_powermetrics_plist_thermal_pressure(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "macos/powermetrics_plist_thermal_pressure_mac16_6_osqueryext.plist.txt")
    v = {r.sensor: r for r in rs}
    assert v["thermal.pressure"].extra["text"] == "Nominal" and v["thermal.pressure"].value == 0
    assert v["thermal.pressure"].extra["hw_model"] == "Mac16,6"
    assert v["powermetrics.elapsed"].value == pytest.approx(1017.30475)


def test_macmon_watts(shared_dir: Path) -> None:
    v = {r.sensor: r.value for r in _parse(shared_dir, "macos/macmon_json_line_beszel.txt")}
    assert v["power.all"] == pytest.approx(646.83, abs=0.01)
    assert v["power.cpu"] == pytest.approx(636.0, abs=0.1)
    assert v["power.gpu"] == pytest.approx(10.86, abs=0.01)
    assert v["power.gpu_ram"] == pytest.approx(0.965, abs=0.001)
    assert v["power.ane"] == 0 and v["power.sys"] == pytest.approx(10495.5, abs=0.1)
    assert v["freq.gpu"] == 503 and v["load.gpu"] == pytest.approx(1.363, abs=0.001)
    assert v["temp.cpu_avg"] == pytest.approx(23.04, abs=0.01) and v["temp.gpu_avg"] == pytest.approx(29.45, abs=0.01)
    assert v["mem.ram_total"] == 17179869184 / 1048576


def test_pmset_intel_and_apple_silicon(shared_dir: Path) -> None:
    v = {r.sensor: r.value for r in _parse(shared_dir, "macos/pmset_g_therm_intel_12cpu_nodeexporter2031.txt")}
    assert (v["pmset.cpu_scheduler_limit"], v["pmset.cpu_available_cpus"], v["pmset.cpu_speed_limit"]) == (100, 12, 100)
    v = {r.sensor: r.value for r in _parse(shared_dir, "macos/pmset_g_thermlog_intel_throttled_menumeters158.txt")}
    assert (v["pmset.cpu_speed_limit"], v["pmset.cpu_scheduler_limit"], v["pmset.cpu_available_cpus"]) == (28, 40, 8)
    rs = _parse(shared_dir, "macos/pmset_g_therm_apple_silicon_m1pro_empty_stats749.txt")
    assert all(r.value is None and "powermetrics" in r.reason for r in rs)


# --- Linux ------------------------------------------------------------------------------------


def test_powercap_ttar(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "linux/powercap_intel_rapl_node_exporter_sys.ttar.txt")
    v = {r.sensor: r for r in rs}
    pkg = v["energy.package-0"]
    assert pkg.value == 240422366267 and pkg.unit == "uJ"
    assert pkg.extra["max_energy_range_uj"] == 262143328850
    assert pkg.extra["constraints"][0] == {"name": "long_term", "power_limit_uw": 4090000000, "time_window_us": 999424}
    assert pkg.extra["constraints"][1]["name"] == "short_term"
    core = v["energy.package-0.core"]
    assert core.value == 118821284256 and core.extra["max_energy_range_uj"] == 262143328850


def test_powercap_grep_dram(shared_dir: Path) -> None:
    rs = _parse(shared_dir, "linux/powercap_grep_haswell_i7_4770s_dram_thermald45_truncated.txt")
    (dram,) = [r for r in rs if r.sensor.endswith(".dram")]
    assert dram.value == 2469474853
    assert dram.extra["max_energy_range_uj"] == 262143999938
    assert dram.extra["constraints"][0]["power_limit_uw"] == 3408250000


def test_thermal_zone_ttar_with_symlink(shared_dir: Path) -> None:
    rel = "linux/thermal_zone_and_cooling_device_node_exporter_sys.ttar.txt"
    tree = memfs_from_ttar(_text(shared_dir, rel))
    assert tree.realpath("/sys/class/thermal/thermal_zone0") == "/sys/devices/virtual/thermal/thermal_zone0"
    assert tree.read("/sys/class/thermal/thermal_zone0/policy").strip() == "step_wise"
    v = {r.sensor: r for r in _parse(shared_dir, rel)}
    assert v["temp.cpu-thermal"].value == pytest.approx(12.376)
    assert v["cooling.Processor"].value == 0 and v["cooling.Processor"].extra["max_state"] == 3


def test_cpufreq_ttar(shared_dir: Path) -> None:
    v = {r.sensor: r for r in _parse(shared_dir, "linux/cpufreq_cpu0_node_exporter_sys.ttar.txt")}
    assert v["freq.cpu0"].value == pytest.approx(1699.981)
    assert v["freq.cpu0"].extra == {"governor": "powersave", "driver": "intel_pstate"}
    assert (v["freq.cpu0.min"].value, v["freq.cpu0.max"].value) == (800, 3700)


def test_meminfo_without_memavailable(shared_dir: Path) -> None:
    v = {r.sensor: r for r in _parse(shared_dir, "linux/proc_meminfo_node_exporter_fixture.txt")}
    expected = {"MemTotal": 3742148, "MemFree": 225472, "Cached": 930888, "SwapTotal": 4194300, "SwapFree": 3155360}
    for key, kb in expected.items():
        assert v["meminfo." + key].value == kb and v["meminfo." + key].unit == "KB"
    assert "meminfo.MemAvailable" not in v
    assert v["mem.available"].value == 225472 + 22040 + 930888
    assert "MemFree+Buffers+Cached" in v["mem.available"].extra["method"]
    assert v["meminfo.HugePages_Total"].unit == "count"


def test_proc_pid_status(shared_dir: Path) -> None:
    v = {r.sensor: r for r in _parse(shared_dir, "linux/proc_pid_status_prometheus_procfs_fixture.txt")}
    expected = {"VmPeak": 58472, "VmSize": 58440, "VmHWM": 8028, "VmRSS": 6716, "RssAnon": 2092, "RssFile": 4624,
                "RssShmem": 0, "VmSwap": 660}
    for key, kb in expected.items():
        assert v["proc." + key].value == kb
    assert v["proc.Threads"].value == 1
    assert v["proc.VmRSS"].extra == {"name": "prometheus", "pid": "26231"}


def test_power_supply_bat0_power_and_energy(shared_dir: Path) -> None:
    v = {r.sensor: r for r in _parse(shared_dir, "linux/power_supply_BAT0_uevent_lenovo_procfs_fixture.txt")}
    assert v["supply.BAT0.status"].extra["text"] == "Discharging"
    assert v["supply.BAT0.voltage"].value == 11750
    assert v["supply.BAT0.power"].value == pytest.approx(5064)
    assert v["supply.BAT0.energy"].value == 40730
    assert v["supply.BAT0.capacity"].value == 85
    assert "supply.BAT0.current" not in v


FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"


def test_usb_power_supply_uevent_is_recognised_and_read() -> None:
    text = (FIXTURES / "power_supply_usb_uevent.txt").read_text()
    assert detect_kind(text) == "uevent"
    v = {r.sensor: r for r in parse_text(None, text)}
    assert v["supply.usb.online"].value == 1 and v["supply.usb.online"].extra["type"] == "USB"
    assert v["supply.usb.online"].extra["usb_type"].startswith("Unknown [SDP]")
    assert (v["supply.usb.voltage_max"].value, v["supply.usb.voltage_max"].unit) == (5000, "mV")
    assert (v["supply.usb.current_max"].value, v["supply.usb.current_max"].unit) == (1500, "mA")
    assert v["supply.usb.voltage"].value == 5084 and v["supply.usb.current"].value == 452
    assert v["supply.usb.input_current_limit"].value == 1500
    # Without the POWER_SUPPLY_ prefix (the sysfs uevent file of some kernels), and unplugged.
    bare = "NAME=usb\nTYPE=USB\nONLINE=0\nVOLTAGE_MAX=5000000\n"
    assert detect_kind(bare) == "uevent"
    v = {r.sensor: r.value for r in parse_text(None, bare)}
    assert v == {"supply.usb.online": 0, "supply.usb.voltage_max": 5000}
    assert detect_kind('NAME="Ubuntu"\nVERSION_ID="22.04"\n') is None  # os-release: NAME= alone is not a supply


def test_cli_telemetry_parse_prints_readings_and_fails_without_any(tmp_path: Path, capsys) -> None:
    from harness.cli import main as cli_main

    assert cli_main(["telemetry", "parse", str(FIXTURES / "power_supply_usb_uevent.txt")]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by = {d["sensor"]: d for d in out}
    assert by["supply.usb.voltage"]["value"] == 5084 and by["supply.usb.voltage"]["unit"] == "mV"
    assert all(d["kind"] == "uevent" and {"sensor", "value", "unit", "source"} <= set(d) for d in out)
    empty = tmp_path / "os-release"
    empty.write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\n')
    assert cli_main(["telemetry", "parse", "--kind", "uevent", str(empty)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("hilbench: error: ") and "no uevent readings" in line and str(empty) in line


# --- the host entry point -----------------------------------------------------------------------


def test_parse_file_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    with pytest.raises(InputError, match=r"junk\.txt: cannot recognise the format; pass --kind"):
        parse_file(junk)
    with pytest.raises(InputError, match="unknown telemetry kind 'nope'"):
        parse_file(junk, "nope")
    with pytest.raises(InputError, match="cannot read"):
        parse_file(tmp_path / "missing.txt")
    number = tmp_path / "temp"
    number.write_text("62300\n")
    with pytest.raises(InputError):
        parse_file(number)  # a bare number is never guessed
    (reading,) = parse_file(number, "sysfs-temp")
    assert (reading["value"], reading["unit"]) == (62.3, "C")
    with pytest.raises(InputError, match=r"junk\.txt: no tegrastats readings"):
        parse_file(junk, "tegrastats")  # a named format that is not there: an error, not an empty success


def test_kinds_are_all_dispatched() -> None:
    for kind in KINDS:
        assert isinstance(parse_text(kind, ""), list)
    with pytest.raises(ValueError, match="unknown kind"):
        parse_text("bogus", "x")
    with pytest.raises(ValueError, match="cannot recognise"):
        parse_text(None, "nothing to see")
