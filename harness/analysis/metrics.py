"""Per-run metrics derived from the store beyond the latency summary: energy per inference
and the power sensor it comes from.

Energy per inference follows DESIGN.md: (mean power over the timed phase - mean power
over the idle baseline measured just before it) x the timed phase's duration / the
number of inferences. Means are trapezoidal integrals over the agent's own monotonic
timestamps divided by the time covered (never a plain average of uneven samples).
Without an idle baseline the figure is the whole board's (``energy_basis`` "board").
The sensor is picked by :func:`pick_power_sensor`; some are only part of the board
(:data:`PARTIAL_POWER`), and that is stated with the figure. docs/telemetry.md.

Runs of a phone's own benchmark binary (docs/android.md) have no timed samples when
the runner prints only aggregates: their figure is the one the runner driver stored
in the result (``energy_per_inference_mj``, from a power meter or the battery), or
is computed from the telemetry over the timed window the result states
(``timed.t0_ns`` + ``timed.duration_ns``, the run's own timing on the host clock).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from harness.store import Store

__all__ = ["POWER_PREFERENCE", "PARTIAL_POWER", "RAPL_PACKAGES", "pick_power_sensor", "power_series",
           "trapezoid_mean", "energy_figures", "energy_per_inference"]

#: The sum of the RAPL ``power.package-N`` domains (x86), differentiated from the energy counters by the agent.
RAPL_PACKAGES = "power.package-*"

#: Power sensors in order of preference: an external meter, the board input (Jetson ``board_rail`` / per-board
#: table), the RAPL platform domain, the RAPL packages, the Pi 5 PMIC sum, macOS powermetrics, a phone's battery
#: drain (read over ADB, none while it charges), then any rail.
POWER_PREFERENCE = ("power.meter", "power.total", "power.psys", RAPL_PACKAGES, "power.pmic_rails",
                    "power.combined", "power.board", "power.vdd_in", "power.battery")

#: Sensors that measure only part of the board, with what they leave out.
PARTIAL_POWER = {
    RAPL_PACKAGES: "RAPL CPU package(s) only: not DRAM (unless in package), storage, fans or the rest of the board",
    "power.pmic_rails": "Pi 5 PMIC rails: excludes 5 V loads (USB, HATs, NVMe) and conversion losses",
    "power.combined": "powermetrics CPU+GPU+ANE: not the whole Mac",
    "power.package": "powermetrics package power: not the whole Mac",
}

_PACKAGE_RE = re.compile(r"^power\.package-\d+$")


def pick_power_sensor(sensors: Iterable[str]) -> str | None:
    """The power sensor that best stands for the whole device (a name, or :data:`RAPL_PACKAGES`), or None."""
    names = {s for s in sensors if isinstance(s, str) and s.startswith("power.")}
    for want in POWER_PREFERENCE:
        if want == RAPL_PACKAGES:
            if any(_PACKAGE_RE.match(n) for n in names):
                return want
        elif want in names:
            return want
    # Instantaneous rails only: ``.avg`` / ``.max`` are running aggregates (tegrastats).
    plain = sorted(n for n in names if not n.endswith((".avg", ".max")) and n != "power.idle")
    return plain[0] if plain else None


def power_series(tel: pd.DataFrame, sensor: str) -> tuple[np.ndarray, np.ndarray]:
    """(t_ns, mW) of ``sensor`` sorted by time, values present only; RAPL packages summed per reading time."""
    tel = tel[tel["value"].notna()]
    if sensor == RAPL_PACKAGES:
        pk = tel[tel["sensor"].astype(str).str.match(_PACKAGE_RE.pattern)]
        wide = pk.pivot_table(index="t_ns", columns="sensor", values="value", aggfunc="mean").dropna()
        return wide.index.to_numpy(dtype=np.int64), wide.sum(axis=1).to_numpy(dtype=float)
    s = tel[tel["sensor"] == sensor].sort_values("t_ns")
    return s["t_ns"].to_numpy(dtype=np.int64), s["value"].to_numpy(dtype=float)


def trapezoid_mean(t_ns: np.ndarray, values: np.ndarray, t0: int, t1: int) -> float | None:
    """Time-weighted mean of a sampled signal over [t0, t1]: the trapezoidal integral of the samples in
    the window (plus values interpolated at its edges where samples lie on both sides of an edge)
    divided by the time covered. One sample: its value. None when no sample is in the window."""
    t = np.asarray(t_ns, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if len(t) == 0 or t1 < t0:
        return None
    inside = (t >= t0) & (t <= t1)
    ts, vs = list(t[inside]), list(v[inside])
    if t[0] < t0 < t[-1] and (not ts or ts[0] > t0):
        ts.insert(0, float(t0))
        vs.insert(0, float(np.interp(t0, t, v)))
    if t[0] < t1 < t[-1] and (not ts or ts[-1] < t1):
        ts.append(float(t1))
        vs.append(float(np.interp(t1, t, v)))
    if not ts:
        return None
    if len(ts) == 1 or ts[-1] == ts[0]:
        return float(np.mean(vs))
    ta, va = np.asarray(ts), np.asarray(vs)
    return float(np.sum((va[1:] + va[:-1]) / 2.0 * np.diff(ta)) / (ta[-1] - ta[0]))


def energy_figures(tel: pd.DataFrame, *, timed_t0_ns: int, timed_t1_ns: int, count: int,
                   idle_window: tuple[int, int] | None = None, idle_power_mw: float | None = None) -> dict[str, Any] | None:
    """Power and energy of one run from its telemetry (columns t_ns, sensor, value). None without a power
    sensor that has readings in the timed window. Keys: sensor, partial (what it leaves out, or None),
    timed_mw, idle_mw, mean_power_mw (timed - idle, or timed), energy_mj (per inference),
    inferences_per_j, energy_basis ("above idle" | "board")."""
    if tel.empty or count <= 0 or timed_t1_ns <= timed_t0_ns:
        return None
    sensor = pick_power_sensor(tel.loc[tel["value"].notna(), "sensor"].unique())
    if sensor is None:
        return None
    t, mw = power_series(tel, sensor)
    timed_mw = trapezoid_mean(t, mw, timed_t0_ns, timed_t1_ns)
    if timed_mw is None:
        return None
    idle_mw = idle_power_mw
    if idle_window is not None:
        idle_mw = trapezoid_mean(t, mw, idle_window[0], idle_window[1])
    net_mw = timed_mw - idle_mw if idle_mw is not None else timed_mw
    energy_mj = net_mw * (timed_t1_ns - timed_t0_ns) / 1e9 / count
    return {"sensor": sensor, "partial": PARTIAL_POWER.get(sensor), "timed_mw": timed_mw, "idle_mw": idle_mw,
            "mean_power_mw": net_mw, "energy_mj": energy_mj,
            "inferences_per_j": 1000.0 / energy_mj if energy_mj > 0 else None,
            "energy_basis": "above idle" if idle_mw is not None else "board"}


def energy_per_inference(store: Store, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run that has power telemetry during its timed phase: run_id, sensor,
    mean_power_mw (above idle where measured), energy_mj (per inference), energy_basis ("board" or "above idle").
    Taken from the run's stored ``derived`` figures when there are some, else from the figure a phone's runner
    driver stored in the result, else computed from its telemetry over the timed window: its timed samples',
    or the one its result states (runs without samples)."""
    cols = ["run_id", "sensor", "mean_power_mw", "energy_mj", "energy_basis"]
    ok = runs[(runs["status"] == "ok") & runs["timed_count"].notna() & (runs["timed_count"] > 0)]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    rows: list[dict[str, Any]] = []
    todo = []
    for run in ok.itertuples(index=False):
        power = (_json(getattr(run, "derived", None)) or {}).get("power")
        stored = _stored_energy(_json(run.result) or {})
        if isinstance(power, dict) and power.get("energy_mj") is not None:
            rows.append({"run_id": run.run_id, **{k: power.get(k) for k in cols[1:]}})
        elif stored is not None:
            rows.append({"run_id": run.run_id, **stored})
        else:
            todo.append(run)
    if todo:
        ids = [r.run_id for r in todo]
        tel = store.telemetry(ids)
        tel = tel[tel["sensor"].astype(str).str.startswith("power.") & tel["value"].notna()]
        if not tel.empty:
            timed = store.samples(ids, phase="timed", columns=["run_id", "phase", "latency_ns", "t_ns"])
            window = timed.assign(end=timed["t_ns"] + timed["latency_ns"]).groupby("run_id").agg(
                t0=("t_ns", "min"), t1=("end", "max"))
            for run in todo:
                rt = tel[tel["run_id"] == run.run_id]
                result = _json(run.result) or {}
                if run.run_id in window.index:
                    t0, t1 = (int(x) for x in window.loc[run.run_id, ["t0", "t1"]])
                else:
                    own = _result_window(result)
                    if own is None:
                        continue
                    t0, t1 = own
                if rt.empty:
                    continue
                idle = result.get("idle") or {}
                e = energy_figures(rt, timed_t0_ns=t0, timed_t1_ns=t1, count=int(run.timed_count),
                                   idle_window=(idle["t0_ns"], idle["t1_ns"]) if "t0_ns" in idle else None,
                                   idle_power_mw=_idle_power_mw(result, rt))
                if e is not None:
                    # The stored timed duration (the agent's own) where there is one, as before.
                    if pd.notna(run.timed_ns):
                        e["energy_mj"] = e["mean_power_mw"] * float(run.timed_ns) / 1e9 / float(run.timed_count)
                    rows.append({"run_id": run.run_id, **{k: e[k] for k in cols[1:]}})
    return pd.DataFrame(rows, columns=cols)


def _stored_energy(result: dict[str, Any]) -> dict[str, Any] | None:
    """The energy figure a runner driver stored in the result (Android phones), in :func:`energy_per_inference`'s
    columns; None when there is none (charging, no battery reading, not a phone run)."""
    e = result.get("energy_per_inference_mj")
    if not isinstance(e, (int, float)) or isinstance(e, bool) or not np.isfinite(e):
        return None
    mean = result.get("power_mw_mean")
    idle = result.get("idle_power_mw")
    net = None
    if isinstance(mean, (int, float)):
        net = float(mean) - float(idle) if isinstance(idle, (int, float)) else float(mean)
    sensor = result.get("energy_sensor") or ("power.meter" if result.get("energy_source") == "meter"
                                             else "power.battery")
    return {"sensor": sensor, "mean_power_mw": net, "energy_mj": float(e),
            "energy_basis": result.get("energy_basis") or ("above idle" if isinstance(idle, (int, float)) else "board")}


def _result_window(result: dict[str, Any]) -> tuple[int, int] | None:
    """The timed window a result states (``timed.t0_ns`` + ``timed.duration_ns``), or None."""
    timed = result.get("timed") or {}
    t0, duration = timed.get("t0_ns"), timed.get("duration_ns")
    if isinstance(t0, int) and isinstance(duration, int) and duration > 0:
        return t0, t0 + duration
    return None


def _json(value: Any) -> dict[str, Any] | None:
    """A JSON column's value as a dict (None for null, NaN or anything else)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _idle_power_mw(result: dict[str, Any], tel: pd.DataFrame) -> float | None:
    if isinstance(result.get("idle_power_mw"), (int, float)):
        return float(result["idle_power_mw"])
    idle = tel.loc[tel["sensor"] == "power.idle", "value"]
    return float(np.mean(idle)) if len(idle) else None
