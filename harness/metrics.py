"""Per-run metrics derived from the store beyond the latency summary: energy per inference
and the power sensor it comes from.

Energy per inference follows DESIGN.md: the mean power over the timed phase times
its duration, divided by the number of inferences. Where the agent measured an
idle baseline (a ``power.idle`` reading or ``result.idle_power_mw``) it is
subtracted; otherwise the figure is the whole board's (stated in ``energy_basis``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from harness.store import Store

__all__ = ["POWER_PREFERENCE", "pick_power_sensor", "energy_per_inference"]

#: Power sensors in order of preference: the whole board first, then a meter, then any rail.
POWER_PREFERENCE = ("power.total", "power.meter", "power.board", "power.vdd_in")


def pick_power_sensor(sensors: Iterable[str]) -> str | None:
    """The power sensor that best stands for the whole device, or None."""
    names = [s for s in sensors if isinstance(s, str) and s.startswith("power.")]
    for want in POWER_PREFERENCE:
        if want in names:
            return want
    # Instantaneous rails only: ``.avg`` / ``.max`` are running aggregates (tegrastats).
    plain = sorted(n for n in names if not n.endswith((".avg", ".max")))
    return plain[0] if plain else None


def energy_per_inference(store: Store, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run that has power telemetry during its timed phase: run_id, sensor,
    mean_power_mw, energy_mj (per inference), energy_basis ("board" or "above idle")."""
    cols = ["run_id", "sensor", "mean_power_mw", "energy_mj", "energy_basis"]
    ok = runs[(runs["status"] == "ok") & runs["timed_count"].notna() & (runs["timed_count"] > 0)]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    tel = store.telemetry(ok["run_id"])
    tel = tel[tel["sensor"].astype(str).str.startswith("power.") & tel["value"].notna()]
    if tel.empty:
        return pd.DataFrame(columns=cols)
    timed = store.samples(ok["run_id"], phase="timed", columns=["run_id", "phase", "latency_ns", "t_ns"])
    window = timed.assign(end=timed["t_ns"] + timed["latency_ns"]).groupby("run_id").agg(
        t0=("t_ns", "min"), t1=("end", "max"))
    rows: list[dict[str, Any]] = []
    for run in ok.itertuples(index=False):
        rt = tel[tel["run_id"] == run.run_id]
        sensor = pick_power_sensor(rt["sensor"].unique())
        if sensor is None or run.run_id not in window.index:
            continue
        t0, t1 = window.loc[run.run_id, ["t0", "t1"]]
        s = rt[(rt["sensor"] == sensor) & (rt["t_ns"] >= t0) & (rt["t_ns"] <= t1)]
        if s.empty:
            continue
        mean_mw = float(s["value"].mean())
        idle = _idle_power_mw(run.result, rt)
        basis = "board"
        if idle is not None:
            mean_mw -= idle
            basis = "above idle"
        duration_s = float(run.timed_ns) / 1e9 if pd.notna(run.timed_ns) else float(t1 - t0) / 1e9
        rows.append({"run_id": run.run_id, "sensor": sensor, "mean_power_mw": mean_mw,
                     "energy_mj": mean_mw * duration_s / float(run.timed_count), "energy_basis": basis})
    return pd.DataFrame(rows, columns=cols)


def _idle_power_mw(result: Any, tel: pd.DataFrame) -> float | None:
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            result = None
    if isinstance(result, dict) and isinstance(result.get("idle_power_mw"), (int, float)):
        return float(result["idle_power_mw"])
    idle = tel.loc[tel["sensor"] == "power.idle", "value"]
    return float(np.mean(idle)) if len(idle) else None
