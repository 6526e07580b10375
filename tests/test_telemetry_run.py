"""Telemetry in a run: idle baseline, energy per inference, sustained mode, cool-down gate, derived figures.

End-to-end runs use the real agent (on Python 3.7 where installed) on the local target with the synthetic
backend and a fake sysfs tree (the target's telemetry ``root``) whose files a test thread changes when the
agent reports a phase: a thermal zone, one CPU's cpufreq and a RAPL package counter.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.helpers import pyenv_python

from harness import open_store
from harness.analysis.derive import derive_run, format_derived
from harness.analysis.metrics import (
    RAPL_PACKAGES,
    energy_figures,
    energy_per_inference,
    pick_power_sensor,
    trapezoid_mean,
)
from harness.cli import main as cli_main
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import LOCAL
from harness.errors import ConfigError
from harness.run.session import Progress, Runner, run_jobs

S = 1_000_000_000


# --- energy per inference, by hand ---------------------------------------------------------------

def tel_frame(rows: list[tuple[float, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame({"t_ns": [int(t * S) for t, _, _ in rows], "sensor": [s for _, s, _ in rows],
                         "value": [v for _, _, v in rows], "unit": ["mW"] * len(rows)})


def test_energy_per_inference_hand_computed():
    # idle 1 W flat over [0, 1] s; timed [2, 4] s rises linearly 2 -> 4 W, sampled unevenly.
    tel = tel_frame([(0.0, "power.meter", 1000.0), (0.5, "power.meter", 1000.0), (1.0, "power.meter", 1000.0),
                     (2.0, "power.meter", 2000.0), (2.5, "power.meter", 2500.0), (4.0, "power.meter", 4000.0),
                     # a board rail too: the external meter wins
                     (2.0, "power.total", 9000.0), (4.0, "power.total", 9000.0)])
    e = energy_figures(tel, timed_t0_ns=2 * S, timed_t1_ns=4 * S, count=100, idle_window=(0, 1 * S))
    assert e is not None and e["sensor"] == "power.meter" and e["partial"] is None
    # trapezoid: mean 3000 mW (a plain mean of the three samples would be 2833)
    assert e["timed_mw"] == pytest.approx(3000.0) and e["idle_mw"] == pytest.approx(1000.0)
    # (3000 - 1000) mW x 2 s / 100 = 40 mJ per inference; 25 inferences per joule
    assert e["energy_mj"] == pytest.approx(40.0) and e["inferences_per_j"] == pytest.approx(25.0)
    assert e["energy_basis"] == "above idle"
    no_idle = energy_figures(tel, timed_t0_ns=2 * S, timed_t1_ns=4 * S, count=100)
    assert no_idle["energy_basis"] == "board" and no_idle["energy_mj"] == pytest.approx(60.0)


def test_trapezoid_mean_interpolates_at_the_window_edges():
    t = np.array([0, 2 * S], dtype=np.int64)
    v = np.array([0.0, 2000.0])
    assert trapezoid_mean(t, v, S // 2, 3 * S // 2) == pytest.approx(1000.0)  # no sample inside
    assert trapezoid_mean(t, v, 3 * S, 4 * S) is None


def test_power_sensor_preference():
    assert pick_power_sensor(["power.total", "power.meter", "power.package-0"]) == "power.meter"
    assert pick_power_sensor(["power.VDD_CPU_GPU_CV", "power.total"]) == "power.total"
    assert pick_power_sensor(["power.package-0", "power.package-0.core", "power.psys"]) == "power.psys"
    assert pick_power_sensor(["power.package-1", "power.package-0", "power.package-0.dram"]) == RAPL_PACKAGES
    assert pick_power_sensor(["power.VDD_CORE", "power.pmic_rails", "power.board_estimate"]) == "power.pmic_rails"
    assert pick_power_sensor(["temp.cpu"]) is None


def test_rapl_packages_are_summed_and_marked_partial():
    tel = tel_frame([(t, f"power.package-{p}", 1000.0 * (p + 1)) for t in (0.0, 1.0, 2.0) for p in (0, 1)]
                    + [(1.0, "power.package-0.core", 99999.0)])
    e = energy_figures(tel, timed_t0_ns=0, timed_t1_ns=2 * S, count=10)
    assert e["sensor"] == RAPL_PACKAGES and e["timed_mw"] == pytest.approx(3000.0)
    assert "package" in e["partial"]


def test_pi5_pmic_sum_is_partial():
    tel = tel_frame([(0.0, "power.pmic_rails", 3000.0), (1.0, "power.pmic_rails", 3000.0),
                     (0.0, "power.board_estimate", 4000.0)])
    e = energy_figures(tel, timed_t0_ns=0, timed_t1_ns=S, count=10)
    assert e["sensor"] == "power.pmic_rails" and "PMIC" in e["partial"]


# --- derived figures from made-up runs ------------------------------------------------------------

def synthetic_run(p50_ms: list[float], window_s: float = 1.0, extra_tel: list[tuple[float, str, float]] = ()):
    """A sustained phase of len(p50_ms) windows, 100 samples each, from t = 10 s (timed phase at 0..1 s)."""
    samples: dict[str, list[Any]] = {"phase": [], "latency_ns": [], "t_ns": []}
    for i in range(100):
        samples["phase"].append("timed")
        samples["latency_ns"].append(1_000_000)
        samples["t_ns"].append(i * S // 100)
    t0 = 10 * S
    for k, p50 in enumerate(p50_ms):
        for i in range(100):
            samples["phase"].append("sustained")
            samples["latency_ns"].append(int(p50 * 1e6))
            samples["t_ns"].append(t0 + int((k + i / 100) * window_s * S))
    n = len(p50_ms)
    tel_rows = [(10 + k * window_s, "temp.cpu-thermal", 40.0 + k) for k in range(n)] + list(extra_tel)
    telemetry = {"t_ns": [int(t * S) for t, _, _ in tel_rows], "sensor": [s for _, s, _ in tel_rows],
                 "value": [v for _, _, v in tel_rows], "unit": ["C"] * len(tel_rows)}
    result = {"timed": {"t0_ns": 0, "duration_ns": S, "count": 100},
              "sustained": {"t0_ns": t0, "duration_ns": int(n * window_s * S), "count": 100 * n,
                            "window_s": window_s}}
    return result, samples, telemetry


def test_sustained_latency_rise_is_the_throttle_point():
    result, samples, telemetry = synthetic_run([1.0, 1.02, 1.05, 1.2, 1.3])
    d = derive_run(result, {}, samples, telemetry)
    s = d["sustained"]
    assert [w["p50_ms"] for w in s["windows"]] == pytest.approx([1.0, 1.02, 1.05, 1.2, 1.3])
    assert s["stability"] == pytest.approx(1.3)
    assert s["time_to_throttle_s"] == pytest.approx(3.0) and s["throttle_cause"] == "latency"
    assert s["temp_start_c"] == 40.0 and s["temp_rise_c"] == pytest.approx(4.0)
    assert [w["code"] for w in d["warnings"]] == ["throttled"]


def test_throttle_flag_before_latency_and_sticky_bits_ignored():
    extra = [(10.0, "throttle.soft_temp_limit", 0.0), (11.5, "throttle.soft_temp_limit", 1.0),
             (10.0, "throttle.soft_temp_limit_occurred", 1.0), (10.0, "throttle.raw", 0x80000)]
    result, samples, telemetry = synthetic_run([1.0, 1.0, 1.0, 1.5], extra_tel=extra)
    d = derive_run(result, {}, samples, telemetry)
    assert d["sustained"]["time_to_throttle_s"] == pytest.approx(1.5)
    assert d["sustained"]["throttle_cause"] == "flag"
    assert d["throttle_events"] == [{"t_s": 11.5, "kind": "flag", "sensor": "throttle.soft_temp_limit",
                                     "phase": "sustained"}]


def test_steady_sustained_run_has_no_throttle():
    result, samples, telemetry = synthetic_run([1.0, 1.01, 0.99, 1.0])
    s = derive_run(result, {}, samples, telemetry)["sustained"]
    assert s["time_to_throttle_s"] is None and s["stability"] == pytest.approx(1.0)


def timed_only_run(duration_s: float, tel_rows: list[tuple[float, str, float]], memory: dict | None = None):
    """A timed phase from 1 s to 1 + duration_s (no sustained phase) and the given telemetry rows."""
    t0 = 1 * S
    n = 100
    samples = {"phase": ["timed"] * n, "latency_ns": [1_000_000] * n,
               "t_ns": [t0 + int(i * duration_s * S / n) for i in range(n)]}
    telemetry = {"t_ns": [int(t * S) for t, _, _ in tel_rows], "sensor": [x for _, x, _ in tel_rows],
                 "value": [v for _, _, v in tel_rows], "unit": [""] * len(tel_rows)}
    result = {"timed": {"t0_ns": t0, "duration_ns": int(duration_s * S), "count": n}, "memory": memory or {}}
    return result, samples, telemetry


def cpufreq_rows(t0: float, t1: float, cur_mhz, max_mhz: float = 2000.0, step: float = 0.1, cpu: int = 0):
    rows = []
    for k in range(int(round((t1 - t0) / step)) + 1):
        t = round(t0 + k * step, 6)
        rows += [(t, f"freq.cpu{cpu}", float(cur_mhz(t))), (t, f"freq.cpu{cpu}.max", max_mhz)]
    return rows


def test_clock_drop_below_max_in_a_timed_only_run():
    # cpu0 carries the load: at its 2000 MHz max, one noisy reading at 1200 MHz (1.5 s), within the tolerance at
    # 1800 MHz (85-90%), then held at 1400 MHz (70%) from 3.0 to 4.5 s. cpu1 idles at its minimum throughout:
    # an idle core is not a throttled one.
    def cpu0(t: float) -> float:
        if abs(t - 1.5) < 1e-6:
            return 1200
        if 2.0 <= t < 2.5:
            return 1800
        return 1400 if 3.0 <= t < 4.5 else 2000

    rows = cpufreq_rows(0.0, 6.0, cpu0) + cpufreq_rows(0.0, 6.0, lambda t: 600, cpu=1)
    result, samples, telemetry = timed_only_run(5.0, rows)
    d = derive_run(result, {}, samples, telemetry)
    (e,) = d["throttle_events"]
    assert e["kind"] == "clock" and e["sensor"] == "freq.cpu0" and e["phase"] == "timed"
    assert e["t_s"] == pytest.approx(2.0) and e["duration_s"] == pytest.approx(1.5)
    assert e["ratio"] == pytest.approx(0.7) and (e["mhz"], e["max_mhz"]) == (1400, 2000)
    assert "sustained" not in d
    lines = "\n".join(format_derived(d))
    assert "throttle  clock: freq.cpu0 at 1400 of 2000 MHz (down to 70% of its max) for 1.5 s from 2.0 s" in lines
    # The same drop outside the timed phase (before it) is not under load: no event.
    result, samples, telemetry = timed_only_run(5.0, cpufreq_rows(0.0, 6.0, lambda t: 1400 if t < 1.0 else 2000))
    assert derive_run(result, {}, samples, telemetry)["throttle_events"] == []


def test_trip_point_crossed_during_the_timed_phase():
    facts = {"trip_points": {"temp.cpu-thermal": [{"trip": 0, "temp_c": 75.0, "type": "passive"},
                                                  {"trip": 2, "temp_c": 110.0, "type": "critical"}],
                             "temp.gpu-thermal": [{"trip": 0, "temp_c": 90.0, "type": "passive"}]}}
    rows = [(t / 10, "temp.cpu-thermal", 70.0 + t / 5) for t in range(0, 61)]  # 70 C at 0 s, 82 C at 6 s
    rows += [(0.5, "temp.gpu-thermal", 95.0), (2.0, "temp.gpu-thermal", 60.0)]  # hot before the timed start only
    result, samples, telemetry = timed_only_run(5.0, rows)
    d = derive_run(result, {"sensors": {"sources": [], "missing": [], "facts": facts}}, samples, telemetry)
    (e,) = d["throttle_events"]
    assert (e["kind"], e["sensor"], e["trip_type"], e["trip_c"]) == ("trip", "temp.cpu-thermal", "passive", 75.0)
    assert e["t_s"] == pytest.approx(1.5) and e["temp_c"] == pytest.approx(75.0) and e["phase"] == "timed"
    assert "temp.cpu-thermal reached its passive trip point 75.0 C (75.0 C) 1.5 s after the timed start" in (
        "\n".join(format_derived(d)))
    # The trip points stored with the result (the job's own discovery) win over the hello's.
    result["telemetry"] = {"sensors": {"sources": [], "missing": [], "facts": {"trip_points": {}}}}
    assert derive_run(result, {"sensors": {"facts": facts}}, samples, telemetry)["throttle_events"] == []


def test_throttle_signals_of_every_platform_are_flags():
    rows = [
        (0.5, "thermal.pressure", 0.0), (2.0, "thermal.pressure", 2.0),            # macOS: Heavy
        (0.5, "pmset.cpu_speed_limit", 100.0), (2.5, "pmset.cpu_speed_limit", 28.0),  # Intel Mac: 28% of nominal
        (0.5, "thermal.status", 0.0), (3.0, "thermal.status", 1.0),                # Android: LIGHT
        (1.5, "cooling.Processor/cooling_device1", 0.0), (3.5, "cooling.Processor/cooling_device1", 2.0),
        (1.5, "cooling.thermal-cpufreq-0", 1.0),                                   # throttled from the start
        (1.5, "cooling.pwm-fan", 3.0), (1.5, "cooling.thermal-devfreq-0", 1.0),    # a fan, a GPU: not the CPU
        (1.5, "pmset.cpu_scheduler_limit", 50.0), (1.5, "thermal.pressure", 0.0),
    ]
    result, samples, telemetry = timed_only_run(5.0, rows)
    d = derive_run(result, {}, samples, telemetry)
    assert [(e["sensor"], e["t_s"]) for e in d["throttle_events"]] == [
        ("cooling.thermal-cpufreq-0", 0.5), ("thermal.pressure", 1.0), ("pmset.cpu_speed_limit", 1.5),
        ("thermal.status", 2.0), ("cooling.Processor/cooling_device1", 2.5)]
    assert {e["kind"] for e in d["throttle_events"]} == {"flag"}


def test_peak_rss_in_the_timed_phase_and_growth_from_before_load():
    mem = {"rss_before_load_kb": 10_000, "hwm_kb": 40_000}
    rows = [(0.5, "proc.VmRSS", 38_000.0), (0.5, "proc.VmHWM", 40_000.0),   # the load's transient peak
            (1.5, "proc.VmRSS", 30_000.0), (1.5, "proc.VmHWM", 40_000.0),
            (3.0, "proc.VmRSS", 35_000.0), (3.0, "proc.VmHWM", 40_000.0),
            (5.5, "proc.VmRSS", 32_000.0), (5.5, "proc.VmHWM", 40_000.0),
            (7.0, "proc.VmRSS", 60_000.0)]                                    # after the timed phase
    result, samples, telemetry = timed_only_run(5.0, rows, mem)
    m = derive_run(result, {}, samples, telemetry)["memory"]
    assert m["timed_peak_rss_kb"] == 35_000 and m["growth_kb"] == 25_000 and m["rss_before_load_kb"] == 10_000
    assert "sampled VmRSS" in m["peak_basis"]
    # VmHWM rose inside the timed phase: its last value there is the exact peak, between two samples.
    rows[5] = (3.0, "proc.VmHWM", 52_000.0)
    rows[7] = (5.5, "proc.VmHWM", 52_000.0)
    result, samples, telemetry = timed_only_run(5.0, rows, mem)
    d = derive_run(result, {}, samples, telemetry)
    assert d["memory"]["timed_peak_rss_kb"] == 52_000 and d["memory"]["growth_kb"] == 42_000
    assert "memory    peak RSS 50.8 MB during the timed runs, +41.0 MB over the RSS before load (9.8 MB)" in (
        format_derived(d))
    # A timed phase shorter than the sampler's period: said so, never a guess.
    rows = [(0.5, "proc.VmRSS", 38_000.0), (7.0, "proc.VmRSS", 39_000.0)]
    result, samples, telemetry = timed_only_run(0.05, rows, mem)
    d = derive_run(result, {}, samples, telemetry)
    assert d["memory"]["timed_peak_rss_kb"] is None and "too short" in d["memory"]["peak_basis"]
    assert any(line.startswith("memory    peak RSS unknown") for line in format_derived(d))


def test_cooldown_gate_that_stopped_above_its_limit_warns():
    result, samples, telemetry = timed_only_run(1.0, [])
    result["cooldown"] = [{"before": "timed", "status": "stopped_falling", "waited_ns": 12 * S, "start_temp_c": 70.0,
                           "end_temp_c": 61.5, "max_temp_c": 50.0}]
    d = derive_run(result, {}, samples, telemetry)
    (w,) = d["warnings"]
    assert w["code"] == "cooldown_above_limit" and "61.5 C" in w["message"] and "50.0 C" in w["message"]
    assert "max_temp_c" in w["remedy"]
    result["cooldown"][0].update(status="below", end_temp_c=49.0)
    assert derive_run(result, {}, samples, telemetry)["warnings"] == []


def test_show_prints_jetson_clocks_fact():
    facts = {"jetson_clocks": {"active": 0, "text": "off", "unpinned": ["cpu1 min 115.2 < max 1728 MHz"]}}
    result, samples, telemetry = timed_only_run(1.0, [(1.5, "temp.cpu", 40.0)])
    d = derive_run(result, {"sensors": {"facts": facts}}, samples, telemetry)
    assert "jetson_clocks off (cpu1 min 115.2 < max 1728 MHz)" in format_derived(d)


# --- the cool-down gate on a fake clock --------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.t = 0

    def now(self) -> int:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += int(s * S)


def gate(temps, config):
    from hilbench_agent.main import cooldown_gate

    clock = FakeClock()

    def read():
        return temps(clock.t / S)

    return cooldown_gate(read, config, sleep=clock.sleep, now=clock.now)


def test_cooldown_gate_waits_until_below():
    info = gate(lambda t: 70.0 - 2.0 * t, {"max_temp_c": 50, "max_wait_s": 120, "poll_s": 1.0})
    assert info["status"] == "below" and info["waited_ns"] == 10 * S
    assert info["start_temp_c"] == 70.0 and info["end_temp_c"] == 50.0


def test_cooldown_gate_stops_when_the_temperature_stops_falling():
    info = gate(lambda t: max(60.0, 70.0 - t), {"max_temp_c": 50, "max_wait_s": 120, "settle_s": 5})
    assert info["status"] == "stopped_falling" and info["end_temp_c"] == 60.0
    assert 10 * S <= info["waited_ns"] <= 16 * S


def test_cooldown_gate_times_out_and_reports_no_sensor():
    info = gate(lambda t: 70.0 - 0.5 * t, {"max_temp_c": 50, "max_wait_s": 8, "settle_s": 2, "min_drop_c": 0.5})
    assert info["status"] == "timeout" and info["waited_ns"] == 8 * S and info["end_temp_c"] == 66.0
    assert gate(lambda t: None, {"max_temp_c": 50})["status"] == "no_sensor"


# --- plan keys --------------------------------------------------------------------------------------

PLAN = """
name = "thermal"
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = 0.2
jitter_ms = 0.02
[policy]
warmup = 5
timed = {{ count = 200 }}
{policy}
"""


def write_plan(tmp: Path, policy: str) -> Path:
    path = tmp / "plan.toml"
    path.write_text(PLAN.format(policy=policy))
    return path


@pytest.mark.parametrize("policy, message", [
    ("idle_s = -1", "policy.idle_s: must be >= 0"),
    ('idle_s = "2"', "policy.idle_s: expected an integer or a number"),
    ("sustained = { duration_s = 60, windw_s = 5 }", "policy.sustained.windw_s: unknown key"),
    ("sustained = { duration_s = 4, window_s = 5 }", "policy.sustained.window_s: must be > 0 and <= duration_s"),
    ('sustained = { duration_s = "long" }', "policy.sustained.duration_s: expected"),
    ("sustained = 60", "policy.sustained: expected a table"),
    ("cooldown = { max_temp_c = true }", "policy.cooldown.max_temp_c: expected"),
    ("cooldown = { max_temp = 50 }", "policy.cooldown.max_temp: unknown key"),
    ("cooldown = { max_wait_s = 0 }", "policy.cooldown.max_wait_s: must be > 0"),
])
def test_plan_validation_names_file_and_key(tmp_path, policy, message):
    path = write_plan(tmp_path, policy)
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_plan_keys_reach_the_job_payload(tmp_path):
    plan = load_plan(write_plan(tmp_path, "idle_s = 0.5\nsustained = { duration_s = 30, window_s = 3 }\n"
                                          "cooldown = { max_temp_c = 45, max_wait_s = 60 }"))
    assert plan.policy.timeout_s == 600 + 30 + 2 * 60  # room for the sustained phase and two waits
    (job,) = expand_jobs(plan, {"local": LOCAL})
    payload = Runner.payload(Runner.__new__(Runner), job, "r1", {})
    assert payload["idle_s"] == 0.5
    assert payload["sustained"] == {"duration_s": 30.0, "window_s": 3.0}
    assert payload["cooldown"]["max_temp_c"] == 45.0 and payload["cooldown"]["max_wait_s"] == 60.0
    default = load_plan(write_plan(tmp_path, ""))
    assert default.policy.idle_s == 2.0 and default.policy.sustained is None and default.policy.cooldown is None
    assert "idle_s" not in default.policy.to_dict()  # job keys of older plans are unchanged


# --- end to end on the local target with a fake sysfs tree --------------------------------------------

class FakeDevice:
    """A fake sysfs tree: thermal_zone0 (cpu-thermal), cpu0 cpufreq, a RAPL package counter at ``watts``."""

    def __init__(self, root: Path, temp_c: float = 70.0, watts: float = 5.0) -> None:
        self.root = root
        self.files = {
            "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "2000000\n",
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq": "2000000\n",
            "sys/class/powercap/intel-rapl:0/name": "package-0\n",
            "sys/class/powercap/intel-rapl:0/max_energy_range_uj": "262143328850\n",
        }
        for rel, text in self.files.items():
            self.write(rel, text)
        self.set_temp(temp_c)
        self.watts = watts
        self.energy_uj = 0
        self.write("sys/class/powercap/intel-rapl:0/energy_uj", "0\n")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._count, daemon=True)
        self._timers: list[threading.Timer] = []

    def write(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(p)  # atomic: the agent never reads half a file

    def set_temp(self, c: float) -> None:
        self.write("sys/class/thermal/thermal_zone0/temp", f"{int(c * 1000)}\n")

    def set_clock_mhz(self, mhz: int) -> None:
        self.write("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", f"{mhz * 1000}\n")

    def later(self, delay_s: float, fn, *args) -> None:
        t = threading.Timer(delay_s, fn, args)
        t.daemon = True
        self._timers.append(t)
        t.start()

    def _count(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.005):
            now = time.monotonic()
            self.energy_uj += int(self.watts * 1e6 * (now - last))
            last = now
            self.write("sys/class/powercap/intel-rapl:0/energy_uj", f"{self.energy_uj}\n")

    def __enter__(self) -> FakeDevice:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._timers:
            t.cancel()
        self._thread.join()


class OnPhase(Progress):
    """Calls ``actions[(phase, event)]`` (with the phase info) as the agent reports phases."""

    def __init__(self, actions) -> None:
        self.actions = actions
        self.seen: list[tuple[str, str]] = []

    def phase(self, job, phase, event, info) -> None:
        self.seen.append((phase, event))
        action = self.actions.get((phase, event))
        if action:
            action(info)


def local_jobs(tmp_path: Path, policy: str, root: Path):
    plan = load_plan(write_plan(tmp_path, policy))
    python = pyenv_python("3.7") or LOCAL.python
    target = replace(LOCAL, python=python or "", telemetry={"enabled": True, "rate_hz": 50.0, "root": str(root)})
    return plan, [replace(j, target=target) for j in expand_jobs(plan, {"local": LOCAL})]


@pytest.mark.slow
def test_local_run_stores_telemetry_and_derived_figures(tmp_path, capsys):
    root = tmp_path / "sysfs"
    policy = ("idle_s = 0.4\nsustained = { duration_s = 1.6, window_s = 0.4 }\n"
              "cooldown = { max_temp_c = 50, max_wait_s = 10, settle_s = 10, poll_s = 0.05 }")
    plan, jobs = local_jobs(tmp_path, policy, root)
    with FakeDevice(root, temp_c=70.0, watts=5.0) as dev:
        def before_timed(info):
            if info.get("before") == "timed":
                dev.later(0.3, dev.set_temp, 45.0)  # the device cools: the gate lets the job go on

        def sustained_begins(info):
            dev.later(0.6, dev.set_clock_mhz, 1200)  # the clock drops below 85% of its peak
            dev.later(0.6, dev.set_temp, 65.0)

        progress = OnPhase({("cooldown", "begin"): before_timed, ("sustained", "begin"): sustained_begins})
        store = open_store(tmp_path / "res")
        result = run_jobs(jobs, store, plan=plan, progress=progress)
    assert [r["error_message"] for r in result.failed] == []
    assert [p for p, e in progress.seen if e == "begin"] == ["load", "first", "cooldown", "idle", "warmup",
                                                               "timed", "cooldown", "sustained"]
    run = store.run(result.runs[0]["run_id"])
    assert run["python"].startswith("3.7") or pyenv_python("3.7") is None
    d = run["derived"]

    # telemetry stored, sensors found and missing said
    tel = store.telemetry([run["run_id"]])
    assert {"temp.cpu-thermal", "freq.cpu0", "power.package-0", "energy.package-0"} <= set(tel["sensor"])
    assert d["sensors"]["recorded"]["temp"] > 0 and d["sensors"]["recorded"]["power"] > 0
    assert any(m.startswith("hwmon:") for m in d["sensors"]["missing"])
    assert any(s.startswith("rapl:") for s in d["sensors"]["sources"])

    # idle baseline and energy: RAPL at 5 W throughout, so the timed phase costs ~0 above idle
    power = d["power"]
    assert power["sensor"] == RAPL_PACKAGES and "RAPL" in power["partial"]
    assert power["timed_mw"] == pytest.approx(5000, rel=0.15) and power["idle_mw"] == pytest.approx(5000, rel=0.15)
    assert power["energy_basis"] == "above idle"
    assert abs(power["mean_power_mw"]) < 1000
    assert run["result"]["idle"]["duration_ns"] >= 0.4 * S

    # the cool-down gates: the first waited for the device to cool, the second found it cool
    first, second = d["cooldown"]
    assert first["before"] == "timed" and first["status"] == "below" and 0.2 <= first["waited_s"] <= 3
    assert first["start_temp_c"] == 70.0 and first["end_temp_c"] == 45.0
    assert second["before"] == "sustained" and second["status"] == "below" and second["waited_s"] < 0.2

    # sustained mode: its samples stored, windows, the clock drop as the throttle point, the temperature rise
    samples = store.samples([run["run_id"]])
    assert (samples["phase"] == "sustained").sum() == run["result"]["sustained"]["count"] > 100
    sus = run["result"]["sustained"]
    assert sus["stop_reason"] == "duration" and sus["duration_ns"] >= 1.6e9 and sus["window_s"] == 0.4
    s = d["sustained"]
    assert len(s["windows"]) == 4 and s["stability"] == pytest.approx(1.0, abs=0.3)
    assert s["throttle_cause"] == "clock" and 0.4 <= s["time_to_throttle_s"] <= 1.4
    assert s["temp_start_c"] == 45.0 and s["temp_end_c"] == 65.0 and s["temp_rise_c"] == pytest.approx(20.0)
    assert d["thermal"]["sensor"] == "temp.cpu-thermal" and d["thermal"]["timed_peak_c"] == 45.0
    assert "throttled" in [w["code"] for w in run["verdict"]["warnings"]]

    # energy_per_inference (reports, compare) reads the same figures
    e = energy_per_inference(store, store.runs())
    assert e.loc[0, "energy_basis"] == "above idle" and e.loc[0, "sensor"] == RAPL_PACKAGES

    assert cli_main(["show", run["run_id"], "--store", str(tmp_path / "res")]) == 0
    shown = capsys.readouterr().out
    for text in ("power     power.package-*", "partial: RAPL", "cool-down before timed: below",
                 "sustained ", "time to throttle", "missing hwmon"):
        assert text in shown, shown


@pytest.mark.slow
def test_cooldown_timeout_is_a_stability_warning_not_an_error(tmp_path, capsys):
    root = tmp_path / "sysfs"
    policy = "idle_s = 0\ncooldown = { max_temp_c = 50, max_wait_s = 0.3, poll_s = 0.05 }"
    plan, jobs = local_jobs(tmp_path, policy, root)
    with FakeDevice(root, temp_c=70.0):
        store = open_store(tmp_path / "res")
        result = run_jobs(jobs, store, plan=plan)
    row = result.runs[0]
    assert row["status"] == "ok"
    (g,) = row["derived"]["cooldown"]
    assert g["status"] == "timeout" and 0.3 <= g["waited_s"] < 1.5 and g["end_temp_c"] == 70.0
    codes = [w["code"] for w in row["verdict"]["warnings"]]
    assert "cooldown_timeout" in codes
    assert "idle" not in row["result"] or row["result"]["idle"] is None


@pytest.mark.slow
def test_cooldown_gate_stopped_above_its_limit_is_a_verdict_warning(tmp_path):
    root = tmp_path / "sysfs"
    policy = "idle_s = 0\ncooldown = { max_temp_c = 50, max_wait_s = 30, settle_s = 0.3, poll_s = 0.05 }"
    plan, jobs = local_jobs(tmp_path, policy, root)
    with FakeDevice(root, temp_c=62.0):  # idles at 62 C: the temperature never falls to 50 C
        result = run_jobs(jobs, open_store(tmp_path / "res"), plan=plan)
    row = result.runs[0]
    assert row["status"] == "ok"
    (g,) = row["derived"]["cooldown"]
    assert g["status"] == "stopped_falling" and g["end_temp_c"] == 62.0 and g["waited_s"] < 5
    assert "cooldown_above_limit" in [w["code"] for w in row["verdict"]["warnings"]]


@pytest.mark.slow
def test_a_run_here_says_which_sensors_are_missing(tmp_path):
    """This machine's own sensors (whatever they are): the run records them and lists what is missing."""
    plan = load_plan(write_plan(tmp_path, "idle_s = 0"))
    jobs = expand_jobs(plan, {"local": LOCAL})
    store = open_store(tmp_path / "res")
    result = run_jobs(jobs, store, plan=plan)
    row = result.runs[0]
    assert row["status"] == "ok"
    sensors = row["derived"]["sensors"]
    assert isinstance(sensors["sources"], list) and isinstance(sensors["missing"], list)
    assert sensors["sources"] or sensors["missing"]
    assert set(sensors["recorded"]) >= ({"mem", "proc"} if Path("/proc/meminfo").exists() else set())
