"""One row per configuration where a session ran it in several agent processes (``policy.processes``).

Each agent process is stored as a run of its own (docs/analysis.md, "Between-session noise: processes"), which
is what the statistics need; a person reading a table wants one row per configuration. :func:`by_configuration`
folds the runs of one configuration in one session into one row, from the runs' stored summaries alone (no
samples are read, so it stays as fast as :meth:`Store.summary`):

* ``count`` is the sum; ``mean_ns`` the count-weighted mean; ``std_ns`` the pooled standard deviation of all
  the samples (within and between processes, exact from the runs' counts, means and deviations) and ``cv``
  that over the mean; ``min_ns``/``max_ns`` the least and the largest; ``throughput_per_s`` all inferences
  over all timed seconds.
* the quantiles (``p50_ns`` ... ``p999_ns``), ``iqr_ns``, ``mad_ns`` and ``jitter_ns`` are the **geometric mean
  of the processes' own**: the estimate ``compare`` tests (:func:`harness.analysis.compare.compare_processes`),
  so a table and a comparison of the same runs agree.
* ``p50_ci_*``/``p99_ci_*`` are the two-level 95% interval: Student's t on the logarithms of the processes'
  quantiles, so they hold the noise between processes, which one process's order-statistic interval cannot.
* ``processes`` is how many runs were folded (failed ones included), ``failed`` how many of them failed,
  ``run_ids`` their ids (comma-separated, in process order) and ``run_id`` the first's; the identity columns
  (``offload``, ``valid``, ``warnings``, ...) come from the successful runs (``valid`` only when all are).

Runs with ``processes`` null or 1 (one-process plans, older stores) pass through unchanged, with
``processes`` 1 and ``failed`` 0 or 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["GROUP_KEY", "by_configuration"]

#: What makes runs of one session the processes of one configuration.
GROUP_KEY: tuple[str, ...] = ("session_id", "plan", "model", "model_tags", "target", "backend", "settings")

_QUANTILES = ("p50_ns", "p90_ns", "p95_ns", "p99_ns", "p999_ns", "iqr_ns", "mad_ns", "jitter_ns")
_CONFIDENCE = 0.95  # as harness.analysis.stats' intervals of one run


def _geomean(values: np.ndarray) -> float:
    v = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.mean(np.log(v)))) if v.size else math.nan


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The 95% t interval of the geometric mean of ``values`` (one per process); NaN with fewer than two."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size < 2:
        return math.nan, math.nan
    logs = np.log(v)
    sd = float(np.std(logs, ddof=1))
    if sd == 0.0:
        return float(v[0]), float(v[0])
    from scipy import stats as sps  # imported here: scipy takes ~1 s, and the CLI starts without it

    half = float(sps.t.ppf(0.5 + _CONFIDENCE / 2, df=v.size - 1)) * sd / math.sqrt(v.size)
    centre = float(np.mean(logs))
    return math.exp(centre - half), math.exp(centre + half)


def _fold(group: pd.DataFrame) -> dict[str, Any]:
    order = group.sort_values(["process", "started_at"], kind="stable", na_position="last")
    ok = order[order["status"] == "ok"]
    head = (ok if len(ok) else order).iloc[0]
    row: dict[str, Any] = head.to_dict()
    row["run_id"] = str(order["run_id"].iloc[0])
    row["run_ids"] = ",".join(str(r) for r in order["run_id"])
    row["processes"] = len(order)
    row["failed"] = int((order["status"] != "ok").sum())
    row["started_at"] = order["started_at"].min()
    if ok.empty:
        return row
    row["status"] = "ok"
    valid = ok["valid"]
    row["valid"] = bool(valid.notna().all() and valid.astype(bool).all()) if valid.notna().any() else valid.iloc[0]
    codes: list[str] = []
    for w in ok["warnings"]:
        codes += [c for c in str(w or "").split(",") if c and c not in codes]
    row["warnings"] = ",".join(codes)
    for flag in ("emulated", "stand_in"):
        if flag in ok:
            row[flag] = bool(ok[flag].fillna(False).astype(bool).any())
    if "aggregate_only" in ok:
        row["aggregate_only"] = bool(ok["aggregate_only"].fillna(False).astype(bool).all())
    n = ok["count"].to_numpy(dtype=np.float64)
    m = ok["mean_ns"].to_numpy(dtype=np.float64)
    s = ok["std_ns"].to_numpy(dtype=np.float64)
    have = np.isfinite(n) & (n > 0) & np.isfinite(m)
    if not have.any():
        return row
    n, m, s = n[have], m[have], s[have]
    total = float(n.sum())
    mean = float((n * m).sum() / total)
    within = float(((n - 1) * np.nan_to_num(s) ** 2).sum())
    between = float((n * (m - mean) ** 2).sum())
    std = math.sqrt((within + between) / (total - 1)) if total > 1 else math.nan
    row.update(count=total, mean_ns=mean, std_ns=std, cv=std / mean if mean else math.nan,
               min_ns=float(ok["min_ns"].min()), max_ns=float(ok["max_ns"].max()))
    for col in _QUANTILES:
        if col in ok:
            row[col] = _geomean(ok[col].to_numpy(dtype=np.float64))
    thr = ok["throughput_per_s"].to_numpy(dtype=np.float64)[have]
    seconds = n / thr
    if np.isfinite(seconds).all() and seconds.sum() > 0:
        row["throughput_per_s"] = total / float(seconds.sum())
    for q in ("p50", "p99"):
        if f"{q}_ci_low_ns" in ok and len(ok) >= 2:
            row[f"{q}_ci_low_ns"], row[f"{q}_ci_high_ns"] = _interval(ok[f"{q}_ns"].to_numpy(dtype=np.float64))
    return row


def by_configuration(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (:meth:`harness.store.Store.summary`) with each configuration's processes of one session
    folded into one row (module docstring), in the order of each group's first run; adds ``processes``,
    ``failed`` and ``run_ids``."""
    out = summary.copy()
    if "processes" not in out:
        out["processes"] = np.nan
    if "process" not in out:
        out["process"] = np.nan
    multi = pd.to_numeric(out["processes"], errors="coerce").fillna(1) > 1
    single = out[~multi].assign(processes=1, failed=(out.loc[~multi, "status"] != "ok").astype(int),
                                run_ids=out.loc[~multi, "run_id"].astype(str))
    if not multi.any():
        return single.drop(columns=["process"]).reset_index(drop=True)
    key = [c for c in GROUP_KEY if c in out]
    grouped = out[multi].groupby(key, sort=False, dropna=False)
    folded = pd.DataFrame([_fold(g) for _, g in grouped])
    position = {r: i for i, r in enumerate(summary["run_id"])}
    both = pd.concat([single, folded], ignore_index=True)
    both = both.iloc[np.argsort([position.get(r, len(position)) for r in both["run_id"]], kind="stable")]
    return both.drop(columns=["process"]).reset_index(drop=True)
