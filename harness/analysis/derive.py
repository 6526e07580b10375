"""Figures derived from one run's telemetry and samples, stored as the run's ``derived`` column.

Pure functions of what the agent sent (result, hello, samples, telemetry), all on the agent's
monotonic clock. :func:`derive_run` returns (version 1)::

    {"version": 1,
     "sensors": {"sources": [...], "missing": [...], "recorded": {"temp": 3, ...}, "unavailable": {...}},
     "power": {sensor, partial, timed_mw, idle_mw, mean_power_mw, energy_mj, inferences_per_j, energy_basis},
     "thermal": {sensor, idle_c, timed_mean_c, timed_peak_c, cpu_clock_ratio},
     "memory": {rss_before_load_kb, timed_peak_rss_kb, peak_basis, growth_kb, hwm_kb},
     "throttle_events": [{"t_s", "kind", "sensor", "phase", ...}],   # t_s from the timed phase's start
     "cooldown": [{before, status, waited_s, start_temp_c, end_temp_c, max_temp_c}],
     "sustained": {duration_s, count, window_s, windows: [{t_s, count, p50_ms, temp_c, cpu_mhz}],
                   stability, time_to_throttle_s, throttle_cause, throttle: {flag_s, clock_s, latency_s},
                   temp_start_c, temp_end_c, temp_rise_c},
     "warnings": [{"code", "message", "remedy"}]}   # also appended to the run's verdict warnings

Throttle events, over the timed and sustained phases (the device under load), are of three kinds:

* ``flag``: a throttle signal set (:func:`throttle_flag_mask`): Pi/Coral ``throttle.*`` now-bits (not the
  sticky ``*_occurred`` ones), macOS ``thermal.pressure`` above Nominal and ``pmset.cpu_speed_limit`` below
  100, Android ``thermal.status`` above NONE, a cpufreq/Processor/powerclamp cooling device's state above 0;
* ``clock``: the core nearest its ``scaling_max_freq`` (``freq.cpuN`` / ``freq.cpuN.max``) below
  ``1 - CLOCK_TOLERANCE`` of it for at least :data:`CLOCK_MIN_S` (two readings or more), within one phase;
* ``trip``: a zone's temperature at or above one of its passive/hot/critical trip points (read at discovery).

Time to throttle (sustained) is the first of: a flag, the fastest CPU core's clock below :data:`CLOCK_DROP`
of its peak in the first window, or a window's p50 more than :data:`P50_RISE` above the first window's
(docs/telemetry.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.metrics import energy_figures

__all__ = ["DERIVED_VERSION", "CLOCK_DROP", "CLOCK_TOLERANCE", "CLOCK_MIN_S", "P50_RISE", "derive_run",
           "device_temperature", "throttle_flag_mask", "format_derived"]

DERIVED_VERSION = 1
#: A clock counts as throttled below this fraction of its peak during the first window.
CLOCK_DROP = 0.85
#: A clock event: every core below ``1 - CLOCK_TOLERANCE`` of its ``scaling_max_freq``...
CLOCK_TOLERANCE = 0.15
#: ...for at least this long (and two readings): a governor's brief dip is not a throttle.
CLOCK_MIN_S = 0.5
#: A window whose p50 is more than this fraction above the first window's counts as a throttle event.
P50_RISE = 0.10
#: Cooling device types (the ``cooling.<type>`` sensor name) that slow the CPU when their state is above 0;
#: the agent's ``linux.CPU_COOLING_RE``.
CPU_COOLING_PATTERN = r"(?i)^cooling\.(?:[^/]*cpufreq[^/]*|processor|intel_powerclamp)(?:/cooling_device\d+)?$"


def _usable_temp(sensor: str) -> bool:
    """Whether a sensor is a temperature worth reading: ``temp.*`` but not Jetson's PMIC zone, a constant
    (100/50 C), never a measurement (SEMANTICS.md 1.1)."""
    return sensor.startswith("temp.") and "pmic" not in sensor.lower()


def device_temperature(tel: pd.DataFrame) -> tuple[str | None, np.ndarray, np.ndarray]:
    """The device's temperature series: the usable ``temp.*`` sensor with the highest peak, as (name, t_ns, C)."""
    t = tel[tel["sensor"].astype(str).map(_usable_temp) & tel["value"].notna() & (tel["value"] > -40.0)]
    if t.empty:
        return None, np.array([], dtype=np.int64), np.array([], dtype=float)
    name = str(t.groupby("sensor")["value"].max().idxmax())
    s = t[t["sensor"] == name].sort_values("t_ns")
    return name, s["t_ns"].to_numpy(dtype=np.int64), s["value"].to_numpy(dtype=float)


def _cpu_clock(tel: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The fastest CPU core's clock per reading time (MHz): ``freq.cpuN`` (cpufreq) or ``freq.arm`` (vcgencmd)."""
    s = tel["sensor"].astype(str)
    f = tel[(s.str.match(r"^freq\.cpu\d+$") | (s == "freq.arm")) & tel["value"].notna()]
    if f.empty:
        return np.array([], dtype=np.int64), np.array([], dtype=float)
    g = f.groupby("t_ns")["value"].max().sort_index()
    return g.index.to_numpy(dtype=np.int64), g.to_numpy(dtype=float)


def throttle_flag_mask(tel: pd.DataFrame) -> pd.Series:
    """Which telemetry rows are a throttle signal that is set (see the module docstring)."""
    s = tel["sensor"].astype(str)
    v = tel["value"]
    pi_coral = s.str.startswith("throttle.") & (s != "throttle.raw") & ~s.str.endswith("_occurred") & (v > 0)
    macos = ((s == "thermal.pressure") & (v > 0)) | ((s == "pmset.cpu_speed_limit") & (v < 100))
    android = (s == "thermal.status") & (v > 0)
    cooling = s.str.match(CPU_COOLING_PATTERN) & (v > 0)
    return (pi_coral | macos | android | cooling) & v.notna()


def _flag_events(tel: pd.DataFrame, t0: int, t1: int) -> list[tuple[int, str]]:
    """(t_ns, sensor) of the first set reading of each throttle flag in [t0, t1]."""
    flags = tel[throttle_flag_mask(tel) & (tel["t_ns"] >= t0) & (tel["t_ns"] <= t1)]
    if flags.empty:
        return []
    first = flags.sort_values("t_ns").groupby("sensor")["t_ns"].min()
    return sorted((int(t), str(n)) for n, t in first.items())


def _clock_events(tel: pd.DataFrame, t0: int, t1: int) -> list[dict[str, Any]]:
    """Stretches in [t0, t1] where even the core nearest its max is below ``1 - CLOCK_TOLERANCE`` of it.

    Only readings that carry both ``freq.cpuN`` and ``freq.cpuN.max`` at the same time (one cpufreq read)
    count. A stretch needs two readings and :data:`CLOCK_MIN_S`; it ends at the first reading back above.
    """
    s = tel["sensor"].astype(str)
    cur = tel[s.str.match(r"^freq\.cpu\d+$") & tel["value"].notna() & (tel["t_ns"] >= t0) & (tel["t_ns"] <= t1)]
    mx = tel[s.str.match(r"^freq\.cpu\d+\.max$") & tel["value"].notna() & (tel["value"] > 0)]
    if cur.empty or mx.empty:
        return []
    mx = mx.assign(sensor=mx["sensor"].astype(str).str[:-4])
    both = cur.merge(mx[["t_ns", "sensor", "value"]], on=["t_ns", "sensor"], suffixes=("", "_max"))
    if both.empty:
        return []
    both["ratio"] = both["value"] / both["value_max"]
    best = both.sort_values("ratio").groupby("t_ns").tail(1).sort_values("t_ns")
    t = best["t_ns"].to_numpy(dtype=np.int64)
    low = best["ratio"].to_numpy(dtype=float) < 1.0 - CLOCK_TOLERANCE
    events = []
    k = 0
    while k < len(t):
        if not low[k]:
            k += 1
            continue
        j = k
        while j + 1 < len(t) and low[j + 1]:
            j += 1
        end = int(t[j + 1]) if j + 1 < len(t) else t1
        if j > k and (end - int(t[k])) / 1e9 >= CLOCK_MIN_S:
            first = best.iloc[k]
            events.append({"t_ns": int(t[k]), "kind": "clock", "sensor": str(first["sensor"]),
                           "duration_s": (end - int(t[k])) / 1e9,
                           "ratio": float(best["ratio"].iloc[k:j + 1].min()),
                           "mhz": float(first["value"]), "max_mhz": float(first["value_max"])})
        k = j + 1
    return events


def _trip_events(tel: pd.DataFrame, trips: Mapping[str, Any], t0: int, t1: int) -> list[dict[str, Any]]:
    """The first reading at or above each trip point (read at discovery) of each zone, in [t0, t1]."""
    events = []
    for zone, points in (trips or {}).items():
        z = tel[(tel["sensor"] == zone) & tel["value"].notna() & (tel["t_ns"] >= t0) & (tel["t_ns"] <= t1)]
        if z.empty:
            continue
        z = z.sort_values("t_ns")
        for p in points or []:
            temp = p.get("temp_c") if isinstance(p, Mapping) else None
            if not isinstance(temp, (int, float)):
                continue
            hit = z[z["value"] >= temp]
            if not hit.empty:
                events.append({"t_ns": int(hit["t_ns"].iloc[0]), "kind": "trip", "sensor": zone, "trip_c": float(temp),
                               "trip_type": p.get("type"), "temp_c": float(hit["value"].iloc[0])})
    return events


def _memory(result: Mapping[str, Any], tel: pd.DataFrame, timed: tuple[int, int, int] | None) -> dict[str, Any] | None:
    """Peak RSS during the timed phase and its growth over the RSS before the model was loaded (KB).

    The agent's own figures when it sent them (``result.memory.timed_peak_rss_kb``, on every platform); else,
    for older agents, from the telemetry:

    VmHWM is the process's high-water mark: when it rose during the timed phase, its value at the end is
    that phase's exact peak. Otherwise the peak is the highest sampled VmRSS (a 10 Hz sample can miss a
    spike, but a spike above the earlier high-water mark would have raised VmHWM).
    """
    mem = result.get("memory") or {}
    before = mem.get("rss_before_load_kb")
    if isinstance(mem.get("timed_peak_rss_kb"), (int, float)):  # the agent measured it (hilbench_agent.memory)
        return {"rss_before_load_kb": before, "timed_peak_rss_kb": mem["timed_peak_rss_kb"],
                "peak_basis": mem.get("peak_basis"), "growth_kb": mem.get("growth_kb"), "hwm_kb": mem.get("hwm_kb")}
    if timed is None or tel.empty:
        return None
    t0, t1, _ = timed
    s = tel["sensor"].astype(str)
    rss = tel[(s == "proc.VmRSS") & tel["value"].notna() & (tel["t_ns"] >= t0) & (tel["t_ns"] <= t1)]
    hwm = tel[(s == "proc.VmHWM") & tel["value"].notna()].sort_values("t_ns")
    if rss.empty:
        if not (s == "proc.VmRSS").any():
            return None
        return {"rss_before_load_kb": before, "timed_peak_rss_kb": None, "growth_kb": None, "hwm_kb": mem.get("hwm_kb"),
                "peak_basis": f"no VmRSS reading inside the timed phase ({(t1 - t0) / 1e6:.0f} ms): too short for "
                              "the sampler's rate"}
    peak, basis = float(rss["value"].max()), "highest sampled VmRSS (VmHWM did not rise during the timed phase)"
    h_before = hwm[hwm["t_ns"] < t0]
    h_in = hwm[(hwm["t_ns"] >= t0) & (hwm["t_ns"] <= t1)]
    if not h_in.empty:
        start = float(h_before["value"].iloc[-1]) if not h_before.empty else None
        end = float(h_in["value"].iloc[-1])
        if start is not None and end > start and end >= peak:
            peak, basis = end, "VmHWM, which rose during the timed phase"
    return {"rss_before_load_kb": before, "timed_peak_rss_kb": peak, "peak_basis": basis,
            "growth_kb": peak - float(before) if isinstance(before, (int, float)) else None,
            "hwm_kb": mem.get("hwm_kb")}


def _window_mean(t: np.ndarray, v: np.ndarray, a: int, b: int) -> float | None:
    """Mean of the values ``v`` read at times ``t`` in [a, b); None when there are none."""
    m = (t >= a) & (t < b)
    return float(np.mean(v[m])) if m.any() else None


def _phase_windows(result: Mapping[str, Any], samples: pd.DataFrame) -> dict[str, tuple[int, int, int]]:
    """phase -> (t0_ns, t1_ns, count) for timed and sustained, from the result (else the samples)."""
    out = {}
    for phase in ("timed", "sustained"):
        info = result.get(phase) or {}
        rows = samples[samples["phase"] == phase]
        if info.get("t0_ns") is not None and info.get("duration_ns"):
            t0 = int(info["t0_ns"])
            out[phase] = (t0, t0 + int(info["duration_ns"]), int(info.get("count") or len(rows)))
        elif not rows.empty:
            out[phase] = (int(rows["t_ns"].min()), int((rows["t_ns"] + rows["latency_ns"]).max()), len(rows))
    return out


def _warning(code: str, message: str, remedy: str) -> dict[str, str]:
    """A warning in the stored form (as :class:`harness.analysis.stability.StabilityWarning` stores one)."""
    return {"code": code, "message": message, "remedy": remedy}


def _frames(samples: Mapping[str, Sequence[Any]],
            telemetry: Mapping[str, Sequence[Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The samples (phase, latency_ns, t_ns) and the telemetry (t_ns, sensor, value, unit) as tables; the
    telemetry's values numeric (NaN where not a number), its rows without a time dropped."""
    sdf = pd.DataFrame({k: samples.get(k, []) for k in ("phase", "latency_ns", "t_ns")})
    tel = pd.DataFrame({k: telemetry.get(k, []) for k in ("t_ns", "sensor", "value", "unit")})
    if not tel.empty:
        tel["value"] = pd.to_numeric(tel["value"], errors="coerce")
        tel = tel[tel["t_ns"].notna()].astype({"t_ns": "int64"})
    return sdf, tel


def _sensors(result: Mapping[str, Any], hello: Mapping[str, Any], tel: pd.DataFrame) -> dict[str, Any]:
    """The agent's sensor report, with the readings recorded per sensor family and the sensors that never
    gave a value (or a note that telemetry was off)."""
    sensors = dict((result.get("telemetry") or {}).get("sensors") or hello.get("sensors") or {})
    if not tel.empty:
        have = tel[tel["value"].notna()]
        sensors["recorded"] = {str(k): int(v) for k, v in
                               have["sensor"].astype(str).str.split(".").str[0].value_counts().sort_index().items()}
        never = sorted(set(tel["sensor"]) - set(have["sensor"]))
        sensors["unavailable"] = never[:50]
    elif result and not result.get("telemetry"):
        sensors["recorded"] = {}
        sensors["note"] = "telemetry was off for this job"
    return sensors


def _thermal(tel: pd.DataFrame, timed: tuple[int, int, int] | None, idle: Mapping[str, Any],
             temp: tuple[str | None, np.ndarray, np.ndarray],
             clock: tuple[np.ndarray, np.ndarray]) -> dict[str, Any] | None:
    """Temperatures (idle, timed mean and peak) and the fastest core's clock against its max during the
    timed phase; None without a timed phase or without temperature and clock readings."""
    temp_name, tt, tv = temp
    ct, cv = clock
    if not (timed and (temp_name or len(ct))):
        return None
    thermal: dict[str, Any] = {"sensor": temp_name}
    if temp_name:
        m = (tt >= timed[0]) & (tt <= timed[1])
        thermal["timed_mean_c"] = float(np.mean(tv[m])) if m.any() else None
        thermal["timed_peak_c"] = float(np.max(tv[m])) if m.any() else None
        if "t0_ns" in idle:
            thermal["idle_c"] = _window_mean(tt, tv, int(idle["t0_ns"]), int(idle["t1_ns"]) + 1)
    if len(ct):
        s = tel["sensor"].astype(str)
        mx = tel[s.str.match(r"^freq\.cpu\d+\.max$") & tel["value"].notna()]["value"]
        m = (ct >= timed[0]) & (ct <= timed[1])
        if m.any() and len(mx):
            thermal["cpu_clock_ratio"] = float(np.mean(cv[m]) / mx.max())
    return thermal


def _phase_of(windows: Mapping[str, tuple[int, int, int]], t: int) -> str:
    """The phase (timed or sustained) a time under load falls in."""
    return "sustained" if "sustained" in windows and t >= windows["sustained"][0] else "timed"


def _throttle_events(tel: pd.DataFrame, windows: Mapping[str, tuple[int, int, int]],
                     trips: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flag, clock and trip events over the timed and sustained phases, in time order, ``t_s`` from the
    timed phase's start (see the module docstring)."""
    timed = windows.get("timed")
    if not timed or tel.empty:
        return []
    end = windows.get("sustained", timed)[1]
    events: list[dict[str, Any]] = [
        {"t_s": (t - timed[0]) / 1e9, "kind": "flag", "sensor": name, "phase": _phase_of(windows, t)}
        for t, name in _flag_events(tel, timed[0], end)]
    found = [dict(e, phase=ph) for ph in ("timed", "sustained") if ph in windows
             for e in _clock_events(tel, windows[ph][0], windows[ph][1])]
    found += [dict(e, phase=_phase_of(windows, e["t_ns"])) for e in _trip_events(tel, trips, timed[0], end)]
    for e in found:
        t = e.pop("t_ns")
        events.append({"t_s": (t - timed[0]) / 1e9, **e})
    events.sort(key=lambda e: e["t_s"])
    return events


def _cooldown_gate(g: Mapping[str, Any]) -> dict[str, Any]:
    """One cool-down gate as stored: before which phase, its status, how long it waited, its temperatures."""
    return {"before": g.get("before"), "status": g.get("status"), "waited_s": (g.get("waited_ns") or 0) / 1e9,
            "start_temp_c": g.get("start_temp_c"), "end_temp_c": g.get("end_temp_c"),
            "max_temp_c": g.get("max_temp_c")}


def _cooldown_warning(gate: Mapping[str, Any]) -> dict[str, str] | None:
    """The warning of a cool-down gate that let the device start warm or could not wait; None otherwise."""
    if gate["status"] == "timeout":
        return _warning(
            "cooldown_timeout",
            f"the cool-down gate before the {gate['before']} phase timed out after {gate['waited_s']:.0f} s at "
            f"{_c(gate['end_temp_c'])} (limit {_c(gate['max_temp_c'])}): the device started warm",
            "raise policy.cooldown.max_wait_s or max_temp_c, or improve the device's cooling")
    if gate["status"] == "stopped_falling":
        return _warning(
            "cooldown_above_limit",
            f"the cool-down gate before the {gate['before']} phase stopped waiting after {gate['waited_s']:.0f} s "
            f"at {_c(gate['end_temp_c'])}, above its limit {_c(gate['max_temp_c'])}: the temperature had "
            "stopped falling, so the device started warm",
            "set policy.cooldown.max_temp_c above the device's idle temperature, or improve its cooling")
    if gate["status"] == "no_sensor":
        return _warning(
            "cooldown_no_sensor", f"the cool-down gate before the {gate['before']} phase found no temperature "
            "sensor and did not wait", "remove policy.cooldown for this target, or give it a thermal sensor")
    return None


def derive_run(result: Mapping[str, Any] | None, hello: Mapping[str, Any] | None,
               samples: Mapping[str, Sequence[Any]], telemetry: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The derived figures of one run (see the module docstring). Never raises on missing data."""
    result = result or {}
    hello = hello or {}
    sdf, tel = _frames(samples, telemetry)
    out: dict[str, Any] = {"version": DERIVED_VERSION}
    sensors = _sensors(result, hello, tel)
    out["sensors"] = sensors or None

    windows = _phase_windows(result, sdf) if not sdf.empty else {}
    timed = windows.get("timed")
    idle = result.get("idle") or {}
    if timed and not tel.empty:
        out["power"] = energy_figures(tel, timed_t0_ns=timed[0], timed_t1_ns=timed[1], count=timed[2],
                                      idle_window=(int(idle["t0_ns"]), int(idle["t1_ns"])) if "t0_ns" in idle else None)
    if idle.get("skipped"):
        out["idle_skipped"] = idle["skipped"]

    temp = device_temperature(tel) if not tel.empty else (None, np.array([]), np.array([]))
    clock = _cpu_clock(tel) if not tel.empty else (np.array([]), np.array([]))
    thermal = _thermal(tel, timed, idle, temp, clock)
    if thermal is not None:
        out["thermal"] = thermal
    out["memory"] = _memory(result, tel, timed)
    out["throttle_events"] = _throttle_events(tel, windows, (sensors.get("facts") or {}).get("trip_points") or {})

    gates = [_cooldown_gate(g) for g in result.get("cooldown") or []]
    warnings = [w for w in (_cooldown_warning(g) for g in gates) if w is not None]
    out["cooldown"] = gates or None
    sus = windows.get("sustained")
    if sus:
        out["sustained"] = _sustained(result.get("sustained") or {}, sdf[sdf["phase"] == "sustained"], sus, tel,
                                      temp, clock, warnings)
    out["warnings"] = warnings
    return out


def _c(value: Any) -> str:
    """A temperature as ``61.2 C``, or ``unknown temperature``."""
    return f"{value:.1f} C" if isinstance(value, (int, float)) else "unknown temperature"


def _sustained_windows(lat: np.ndarray, st: np.ndarray, span: tuple[int, int, int], window_ns: int,
                       temp: tuple[str | None, np.ndarray, np.ndarray],
                       clock: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    """Per window of the sustained phase: its start, inference count, p50, mean temperature and CPU clock.
    Whole windows, plus a last partial one only when it covers at least half a window."""
    t0, t1, _ = span
    _, tt, tv = temp
    ct, cv = clock
    windows = []
    full, rest = divmod(max(0, t1 - t0), window_ns)
    n_windows = max(1, full + (1 if rest >= window_ns // 2 else 0))
    for k in range(n_windows):
        a, b = t0 + k * window_ns, t0 + (k + 1) * window_ns
        m = (st >= a) & (st < b)
        windows.append({"t_s": k * window_ns / 1e9, "count": int(m.sum()),
                        "p50_ms": float(np.median(lat[m])) / 1e6 if m.any() else None,
                        "temp_c": _window_mean(tt, tv, a, b), "cpu_mhz": _window_mean(ct, cv, a, b)})
    return windows


def _throttle_times(tel: pd.DataFrame, span: tuple[int, int, int], window_ns: int,
                    clock: tuple[np.ndarray, np.ndarray], windows: list[dict[str, Any]],
                    p50_first: float | None) -> dict[str, float | None]:
    """Seconds into the sustained phase of the first throttle flag, of the fastest core's clock below
    :data:`CLOCK_DROP` of its first-window peak, and of a window's p50 over :data:`P50_RISE` above the first's."""
    t0, t1, _ = span
    ct, cv = clock
    throttle: dict[str, float | None] = {"flag_s": None, "clock_s": None, "latency_s": None}
    flags = _flag_events(tel, t0, t1) if not tel.empty else []
    if flags:
        throttle["flag_s"] = (flags[0][0] - t0) / 1e9
    if len(ct):
        ref_m = (ct >= t0) & (ct < t0 + window_ns)
        if ref_m.any():
            ref = float(np.max(cv[ref_m]))
            low = (ct >= t0) & (ct <= t1) & (cv < CLOCK_DROP * ref)
            if low.any():
                throttle["clock_s"] = (int(ct[low][0]) - t0) / 1e9
    if p50_first:
        for w in windows[1:]:
            if w["p50_ms"] is not None and w["p50_ms"] * 1e6 > (1 + P50_RISE) * p50_first:
                throttle["latency_s"] = w["t_s"]
                break
    return throttle


def _temp_span(tt: np.ndarray, tv: np.ndarray, t0: int, t1: int) -> tuple[float | None, float | None]:
    """The temperature at the sustained phase's start (the last reading before it, else its first) and end."""
    before = tt < t0
    inside = (tt >= t0) & (tt <= t1)
    start_c = float(tv[before][-1]) if before.any() else (float(tv[inside][0]) if inside.any() else None)
    end_c = float(tv[inside][-1]) if inside.any() else None
    return start_c, end_c


def _throttled_warning(ttt: float, cause: str | None, stability: float | None) -> dict[str, str]:
    """The warning of a sustained phase that throttled ``ttt`` seconds in."""
    message = f"throttled {ttt:.1f} s into the sustained phase ({cause})"
    if stability:
        message += f"; p50 last/first window = {stability:.3f}"
    return _warning("throttled", message,
                    "quote the sustained figures for long-running use, or improve cooling (heatsink, fan, case)")


def _sustained(info: Mapping[str, Any], rows: pd.DataFrame, span: tuple[int, int, int], tel: pd.DataFrame,
               temp: tuple[str | None, np.ndarray, np.ndarray], clock: tuple[np.ndarray, np.ndarray],
               warnings: list[dict[str, str]]) -> dict[str, Any]:
    """The sustained phase's figures (see the module docstring); a ``throttled`` warning is appended to
    ``warnings`` when it throttled."""
    t0, t1, count = span
    window_ns = int(float(info.get("window_s") or 5.0) * 1e9)
    lat = rows["latency_ns"].to_numpy(dtype=np.int64)
    st = rows["t_ns"].to_numpy(dtype=np.int64)
    windows = _sustained_windows(lat, st, span, window_ns, temp, clock)
    first = lat[st < t0 + window_ns]
    last = lat[st >= t1 - window_ns]
    p50_first = float(np.median(first)) if len(first) else None
    p50_last = float(np.median(last)) if len(last) else None
    stability = p50_last / p50_first if p50_first and p50_last is not None else None

    throttle = _throttle_times(tel, span, window_ns, clock, windows, p50_first)
    hits = [(v, k) for k, v in throttle.items() if v is not None]
    ttt, cause = min(hits) if hits else (None, None)
    throttle_cause = {"flag_s": "flag", "clock_s": "clock", "latency_s": "latency"}.get(cause or "")
    start_c, end_c = _temp_span(temp[1], temp[2], t0, t1)
    out: dict[str, Any] = {
        "duration_s": (t1 - t0) / 1e9, "count": count, "window_s": window_ns / 1e9, "windows": windows,
        "p50_first_ms": p50_first / 1e6 if p50_first else None,
        "p50_last_ms": p50_last / 1e6 if p50_last is not None else None,
        "stability": stability, "time_to_throttle_s": ttt, "throttle_cause": throttle_cause,
        "throttle": throttle, "temp_start_c": start_c, "temp_end_c": end_c,
        "temp_rise_c": end_c - start_c if start_c is not None and end_c is not None else None}
    if ttt is not None:
        warnings.append(_throttled_warning(ttt, throttle_cause, stability))
    return out


def _sensor_lines(derived: Mapping[str, Any]) -> list[str]:
    """The readings recorded per sensor family, the sensors missing, and the jetson_clocks state."""
    sensors = derived.get("sensors") or {}
    if not sensors:
        return []
    rec = sensors.get("recorded") or {}
    lines = ["sensors   " + (", ".join(f"{k} {v}" for k, v in rec.items()) or "none recorded")
             + (f" ({sensors['note']})" if sensors.get("note") else "")]
    lines += [f"  missing {m}" for m in sensors.get("missing") or []]
    jc = (sensors.get("facts") or {}).get("jetson_clocks")
    if isinstance(jc, Mapping):
        detail = "; ".join(jc.get("unpinned") or [])
        lines.append(f"jetson_clocks {jc.get('text') or 'unknown'}" + (f" ({detail})" if detail else ""))
    return lines


def _power_lines(derived: Mapping[str, Any]) -> list[str]:
    """Power and energy per inference, or that there was no power sensor; a skipped idle baseline."""
    lines = []
    p = derived.get("power")
    if p:
        idle = f", idle {p['idle_mw']:.0f} mW" if p.get("idle_mw") is not None else ""
        ipj = f", {p['inferences_per_j']:.1f} inf/J" if p.get("inferences_per_j") else ""
        lines.append(f"power     {p['sensor']}: timed {p['timed_mw']:.0f} mW{idle}; energy "
                     f"{p['energy_mj']:.4g} mJ/inference ({p['energy_basis']}){ipj}")
        if p.get("partial"):
            lines.append(f"  partial: {p['partial']}")
    elif derived.get("sensors") is not None:
        lines.append("power     no power sensor: no energy figures")
    if derived.get("idle_skipped"):
        lines.append(f"idle      skipped: {derived['idle_skipped']}")
    return lines


def _thermal_lines(derived: Mapping[str, Any]) -> list[str]:
    """Temperatures of the timed phase and the fastest core's clock against its max."""
    lines = []
    th = derived.get("thermal")
    if th and th.get("sensor"):
        parts = [f"{k[:-2].replace('_', ' ')} {th[k]:.1f} C" for k in ("idle_c", "timed_mean_c", "timed_peak_c")
                 if th.get(k) is not None]
        lines.append(f"thermal   {th['sensor']}: " + ", ".join(parts))
    if th and th.get("cpu_clock_ratio") is not None:
        lines.append(f"clock     fastest CPU core at {th['cpu_clock_ratio'] * 100:.0f}% of its max "
                     "during the timed runs")
    return lines


def _cooldown_lines(derived: Mapping[str, Any]) -> list[str]:
    """One line per cool-down gate."""
    return [f"cool-down before {g['before']}: {g['status']} after {g['waited_s']:.1f} s "
            f"({_c(g['start_temp_c'])} -> {_c(g['end_temp_c'])}, limit {_c(g['max_temp_c'])})"
            for g in derived.get("cooldown") or []]


def _memory_lines(derived: Mapping[str, Any]) -> list[str]:
    """The timed phase's peak RSS and its growth over the RSS before load, or why it is unknown."""
    mem = derived.get("memory")
    if not mem:
        return []
    if mem.get("timed_peak_rss_kb") is None:
        return [f"memory    peak RSS unknown: {mem.get('peak_basis')}"]
    growth = (f", {mem['growth_kb'] / 1024:+.1f} MB over the RSS before load "
              f"({mem['rss_before_load_kb'] / 1024:.1f} MB)" if mem.get("growth_kb") is not None else "")
    return [f"memory    peak RSS {mem['timed_peak_rss_kb'] / 1024:.1f} MB during the timed runs{growth}"]


def _throttle_line(e: Mapping[str, Any]) -> str:
    """One throttle event (clock, trip or flag)."""
    when = f"{e['t_s']:.1f} s after the timed start ({e['phase']})"
    if e.get("kind") == "clock":
        return (f"throttle  clock: {e['sensor']} at {e['mhz']:.0f} of {e['max_mhz']:.0f} MHz (down to "
                f"{e['ratio'] * 100:.0f}% of its max) for {e['duration_s']:.1f} s from {when}")
    if e.get("kind") == "trip":
        return (f"throttle  {e['sensor']} reached its {e.get('trip_type') or ''} trip point "
                f"{e['trip_c']:.1f} C ({e['temp_c']:.1f} C) {when}")
    return f"throttle  {e['sensor']} set {when}"


def _sustained_lines(derived: Mapping[str, Any]) -> list[str]:
    """The sustained phase: stability, time to throttle, temperature rise."""
    s = derived.get("sustained")
    if not s:
        return []
    stab = f"{s['stability']:.3f}" if s.get("stability") is not None else "n/a"
    ttt = (f"{s['time_to_throttle_s']:.1f} s ({s['throttle_cause']})" if s.get("time_to_throttle_s") is not None
           else "none")
    rise = f", temperature {s['temp_rise_c']:+.1f} C" if s.get("temp_rise_c") is not None else ""
    return [f"sustained {s['count']} runs in {s['duration_s']:.1f} s: stability (p50 last/first "
            f"{s['window_s']:g} s window) {stab}, time to throttle {ttt}{rise}"]


def format_derived(derived: Mapping[str, Any]) -> list[str]:
    """Lines for ``hilbench show`` (each without its leading indent)."""
    return [*_sensor_lines(derived), *_power_lines(derived), *_thermal_lines(derived), *_cooldown_lines(derived),
            *_memory_lines(derived), *[_throttle_line(e) for e in derived.get("throttle_events") or []],
            *_sustained_lines(derived)]
