"""Figures derived from one run's telemetry and samples, stored as the run's ``derived`` column.

Pure functions of what the agent sent (result, hello, samples, telemetry), all on the agent's
monotonic clock. :func:`derive_run` returns (version 1)::

    {"version": 1,
     "sensors": {"sources": [...], "missing": [...], "recorded": {"temp": 3, ...}, "unavailable": {...}},
     "power": {sensor, partial, timed_mw, idle_mw, mean_power_mw, energy_mj, inferences_per_j, energy_basis},
     "thermal": {sensor, idle_c, timed_mean_c, timed_peak_c, cpu_clock_ratio},
     "throttle_events": [{"t_s", "kind", "sensor", "phase"}],   # t_s from the timed phase's start
     "cooldown": [{before, status, waited_s, start_temp_c, end_temp_c, max_temp_c}],
     "sustained": {duration_s, count, window_s, windows: [{t_s, count, p50_ms, temp_c, cpu_mhz}],
                   stability, time_to_throttle_s, throttle_cause, throttle: {flag_s, clock_s, latency_s},
                   temp_start_c, temp_end_c, temp_rise_c},
     "warnings": [{"code", "message", "remedy"}]}   # also appended to the run's verdict warnings

Time to throttle is the first of: a throttle flag set (``throttle.*`` now-bits, not the sticky
``*_occurred`` ones), the fastest CPU core's clock below :data:`CLOCK_DROP` of its peak in the first
window, or a window's p50 more than :data:`P50_RISE` above the first window's (docs/telemetry.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.metrics import energy_figures

__all__ = ["DERIVED_VERSION", "CLOCK_DROP", "P50_RISE", "derive_run", "device_temperature", "format_derived"]

DERIVED_VERSION = 1
#: A clock counts as throttled below this fraction of its peak during the first window.
CLOCK_DROP = 0.85
#: A window whose p50 is more than this fraction above the first window's counts as a throttle event.
P50_RISE = 0.10


def _usable_temp(sensor: str) -> bool:
    # Jetson's PMIC zone is a constant (100/50 C), never a measurement (SEMANTICS.md 1.1).
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


def _flag_events(tel: pd.DataFrame, t0: int, t1: int) -> list[tuple[int, str]]:
    """(t_ns, sensor) of the first set reading of each throttle flag in [t0, t1]."""
    s = tel["sensor"].astype(str)
    flags = tel[s.str.startswith("throttle.") & (s != "throttle.raw") & ~s.str.endswith("_occurred")
                & tel["value"].notna() & (tel["t_ns"] >= t0) & (tel["t_ns"] <= t1) & (tel["value"] > 0)]
    if flags.empty:
        return []
    first = flags.sort_values("t_ns").groupby("sensor")["t_ns"].min()
    return sorted((int(t), str(n)) for n, t in first.items())


def _window_mean(t: np.ndarray, v: np.ndarray, a: int, b: int) -> float | None:
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
    return {"code": code, "message": message, "remedy": remedy}


def derive_run(result: Mapping[str, Any] | None, hello: Mapping[str, Any] | None,
               samples: Mapping[str, Sequence[Any]], telemetry: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The derived figures of one run (see the module docstring). Never raises on missing data."""
    result = result or {}
    hello = hello or {}
    sdf = pd.DataFrame({k: samples.get(k, []) for k in ("phase", "latency_ns", "t_ns")})
    tel = pd.DataFrame({k: telemetry.get(k, []) for k in ("t_ns", "sensor", "value", "unit")})
    if not tel.empty:
        tel["value"] = pd.to_numeric(tel["value"], errors="coerce")
        tel = tel[tel["t_ns"].notna()].astype({"t_ns": "int64"})
    out: dict[str, Any] = {"version": DERIVED_VERSION}
    warnings: list[dict[str, str]] = []

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
    out["sensors"] = sensors or None

    windows = _phase_windows(result, sdf) if not sdf.empty else {}
    timed = windows.get("timed")
    idle = result.get("idle") or {}
    if timed and not tel.empty:
        out["power"] = energy_figures(tel, timed_t0_ns=timed[0], timed_t1_ns=timed[1], count=timed[2],
                                      idle_window=(int(idle["t0_ns"]), int(idle["t1_ns"])) if "t0_ns" in idle else None)
    if idle.get("skipped"):
        out["idle_skipped"] = idle["skipped"]

    temp_name, tt, tv = device_temperature(tel) if not tel.empty else (None, np.array([]), np.array([]))
    ct, cv = _cpu_clock(tel) if not tel.empty else (np.array([]), np.array([]))
    if timed and (temp_name or len(ct)):
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
        out["thermal"] = thermal

    events = []
    if timed and not tel.empty:
        end = windows.get("sustained", timed)[1]
        for t, name in _flag_events(tel, timed[0], end):
            phase = "sustained" if "sustained" in windows and t >= windows["sustained"][0] else "timed"
            events.append({"t_s": (t - timed[0]) / 1e9, "kind": "flag", "sensor": name, "phase": phase})
    out["throttle_events"] = events

    gates = []
    for g in result.get("cooldown") or []:
        gate = {"before": g.get("before"), "status": g.get("status"), "waited_s": (g.get("waited_ns") or 0) / 1e9,
                "start_temp_c": g.get("start_temp_c"), "end_temp_c": g.get("end_temp_c"),
                "max_temp_c": g.get("max_temp_c")}
        gates.append(gate)
        if g.get("status") == "timeout":
            warnings.append(_warning(
                "cooldown_timeout",
                f"the cool-down gate before the {gate['before']} phase timed out after {gate['waited_s']:.0f} s at "
                f"{_c(gate['end_temp_c'])} (limit {_c(gate['max_temp_c'])}): the device started warm",
                "raise policy.cooldown.max_wait_s or max_temp_c, or improve the device's cooling"))
        elif g.get("status") == "no_sensor":
            warnings.append(_warning(
                "cooldown_no_sensor", f"the cool-down gate before the {gate['before']} phase found no temperature "
                "sensor and did not wait", "remove policy.cooldown for this target, or give it a thermal sensor"))
    out["cooldown"] = gates or None

    sus = windows.get("sustained")
    if sus:
        out["sustained"] = _sustained(result.get("sustained") or {}, sdf[sdf["phase"] == "sustained"], sus, tel,
                                      (temp_name, tt, tv), (ct, cv), warnings)
    out["warnings"] = warnings
    return out


def _c(value: Any) -> str:
    return f"{value:.1f} C" if isinstance(value, (int, float)) else "unknown temperature"


def _sustained(info: Mapping[str, Any], rows: pd.DataFrame, span: tuple[int, int, int], tel: pd.DataFrame,
               temp: tuple[str | None, np.ndarray, np.ndarray], clock: tuple[np.ndarray, np.ndarray],
               warnings: list[dict[str, str]]) -> dict[str, Any]:
    t0, t1, count = span
    window_ns = int(float(info.get("window_s") or 5.0) * 1e9)
    lat = rows["latency_ns"].to_numpy(dtype=np.int64)
    st = rows["t_ns"].to_numpy(dtype=np.int64)
    _, tt, tv = temp
    ct, cv = clock
    windows = []
    # Whole windows, plus a last partial one only when it covers at least half a window.
    full, rest = divmod(max(0, t1 - t0), window_ns)
    n_windows = max(1, full + (1 if rest >= window_ns // 2 else 0))
    for k in range(n_windows):
        a, b = t0 + k * window_ns, t0 + (k + 1) * window_ns
        m = (st >= a) & (st < b)
        windows.append({"t_s": k * window_ns / 1e9, "count": int(m.sum()),
                        "p50_ms": float(np.median(lat[m])) / 1e6 if m.any() else None,
                        "temp_c": _window_mean(tt, tv, a, b), "cpu_mhz": _window_mean(ct, cv, a, b)})
    first = lat[st < t0 + window_ns]
    last = lat[st >= t1 - window_ns]
    p50_first = float(np.median(first)) if len(first) else None
    p50_last = float(np.median(last)) if len(last) else None
    stability = p50_last / p50_first if p50_first and p50_last is not None else None

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
    hits = [(v, k) for k, v in throttle.items() if v is not None]
    ttt, cause = min(hits) if hits else (None, None)

    before = tt < t0
    inside = (tt >= t0) & (tt <= t1)
    start_c = float(tv[before][-1]) if before.any() else (float(tv[inside][0]) if inside.any() else None)
    end_c = float(tv[inside][-1]) if inside.any() else None
    out = {"duration_s": (t1 - t0) / 1e9, "count": count, "window_s": window_ns / 1e9, "windows": windows,
           "p50_first_ms": p50_first / 1e6 if p50_first else None,
           "p50_last_ms": p50_last / 1e6 if p50_last is not None else None,
           "stability": stability, "time_to_throttle_s": ttt,
           "throttle_cause": {"flag_s": "flag", "clock_s": "clock", "latency_s": "latency"}.get(cause or ""),
           "throttle": throttle, "temp_start_c": start_c, "temp_end_c": end_c,
           "temp_rise_c": end_c - start_c if start_c is not None and end_c is not None else None}
    if ttt is not None:
        warnings.append(_warning(
            "throttled", f"throttled {ttt:.1f} s into the sustained phase ({out['throttle_cause']}); "
            f"p50 last/first window = {stability:.3f}" if stability else f"throttled {ttt:.1f} s into the "
            f"sustained phase ({out['throttle_cause']})",
            "quote the sustained figures for long-running use, or improve cooling (heatsink, fan, case)"))
    return out


def format_derived(derived: Mapping[str, Any]) -> list[str]:
    """Lines for ``hilbench show`` (each without its leading indent)."""
    lines: list[str] = []
    sensors = derived.get("sensors") or {}
    if sensors:
        rec = sensors.get("recorded") or {}
        lines.append("sensors   " + (", ".join(f"{k} {v}" for k, v in rec.items()) or "none recorded")
                     + (f" ({sensors['note']})" if sensors.get("note") else ""))
        for m in sensors.get("missing") or []:
            lines.append(f"  missing {m}")
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
    th = derived.get("thermal")
    if th and th.get("sensor"):
        parts = [f"{k[:-2].replace('_', ' ')} {th[k]:.1f} C" for k in ("idle_c", "timed_mean_c", "timed_peak_c")
                 if th.get(k) is not None]
        lines.append(f"thermal   {th['sensor']}: " + ", ".join(parts))
    if th and th.get("cpu_clock_ratio") is not None:
        lines.append(f"clock     fastest CPU core at {th['cpu_clock_ratio'] * 100:.0f}% of its max during the timed runs")
    for g in derived.get("cooldown") or []:
        lines.append(f"cool-down before {g['before']}: {g['status']} after {g['waited_s']:.1f} s "
                     f"({_c(g['start_temp_c'])} -> {_c(g['end_temp_c'])}, limit {_c(g['max_temp_c'])})")
    for e in derived.get("throttle_events") or []:
        lines.append(f"throttle  {e['sensor']} set {e['t_s']:.1f} s after the timed start ({e['phase']})")
    s = derived.get("sustained")
    if s:
        stab = f"{s['stability']:.3f}" if s.get("stability") is not None else "n/a"
        ttt = (f"{s['time_to_throttle_s']:.1f} s ({s['throttle_cause']})" if s.get("time_to_throttle_s") is not None
               else "none")
        rise = f", temperature {s['temp_rise_c']:+.1f} C" if s.get("temp_rise_c") is not None else ""
        lines.append(f"sustained {s['count']} runs in {s['duration_s']:.1f} s: stability (p50 last/first "
                     f"{s['window_s']:g} s window) {stab}, time to throttle {ttt}{rise}")
    return lines
