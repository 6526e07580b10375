"""Nightly history: one point per night per (model, target, backend, settings, metric),
change points found by Apache Otava's E-divisive detector (the Hunter successor MongoDB's
and Datadog's performance CI use), and a regression flagged only for an upward change
that persists.

Points come from the per-run summary (never from per-inference samples): the
night's value is the median over that night's runs of the run statistic (p50,
p99, peak memory, energy per inference). The detector runs on each series of nightly
points; a change point is a *regression* when the level after it is higher by at
least ``min_magnitude`` (default 2%) and it has held for ``min_persist`` nights
(default 3) - a single bad night is reported as ``unconfirmed``, not flagged.

Each point carries the git refs of its night's runs (the ``git`` label, by the convention
``hilbench run --label git=$(git rev-parse --short HEAD)``), and each change point the refs
of the night before it and of its first night: the two to ``hilbench compare``.

Otava is an optional dependency (``pip install apache-otava``); without it
:func:`detect_changes` raises AnalysisError saying so.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import AnalysisError
from harness.store import Store
from harness.text import json_object, key_values

__all__ = ["HISTORY_METRICS", "nightly_points", "detect_changes", "history", "format_history"]

#: metric -> (run column in the summary, unit, scale to the unit)
HISTORY_METRICS: dict[str, tuple[str, str, float]] = {
    "p50": ("p50_ns", "ms", 1e-6),
    "p99": ("p99_ns", "ms", 1e-6),
    "peak_memory": ("hwm_kb", "MiB", 1 / 1024),
    "energy_per_inference": ("energy_mj", "mJ", 1.0),
}
_KEY = ["model", "target", "backend", "settings"]
#: The run label that names the build (docs/analysis.md, "Git refs").
GIT_LABEL = "git"


def _git_refs(labels: Any) -> str:
    value = json_object(labels).get(GIT_LABEL)
    return str(value) if value is not None else ""


def _series_label(row: Any) -> str:
    settings = key_values(json_object(row["settings"]))
    return f"{row['model']} @ {row['target']} [{row['backend']}{' ' + settings if settings else ''}] {row['metric']}"


def nightly_points(store: Store, metrics: tuple[str, ...] | list[str] = ("p50",), *, metric: str | None = None,
                   summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (night, configuration, metric): night (UTC date), model, target, backend,
    settings, metric, value (in ``unit``), unit, runs (how many runs the night had), series,
    git (the night's ``git`` label values, comma-separated; empty when unlabelled)."""
    if metric is not None:  # plots pass a summary column name
        metrics = [m for m, spec in HISTORY_METRICS.items() if spec[0] == metric] or [metric]
    unknown = [m for m in metrics if m not in HISTORY_METRICS]
    if unknown:
        raise AnalysisError(f"unknown history metric {unknown[0]!r} (known: {', '.join(HISTORY_METRICS)})")
    cols = ["night", *_KEY, "metric", "value", "unit", "runs", "series", "git"]
    s = store.summary() if summary is None else summary
    s = s[s["status"] == "ok"]
    if s.empty:
        return pd.DataFrame(columns=cols)
    s = s.assign(night=pd.to_datetime(s["started_at"], utc=True).dt.strftime("%Y-%m-%d"))
    if "labels" not in s:
        s = s.merge(store.runs()[["run_id", "labels"]], on="run_id", how="left")
    s = s.assign(git=s["labels"].map(_git_refs))
    need = {HISTORY_METRICS[m][0] for m in metrics}
    if "hwm_kb" in need and "hwm_kb" not in s:
        runs = store.runs()[["run_id", "hwm_kb"]]
        s = s.merge(runs, on="run_id", how="left")
    if "energy_mj" in need:
        from harness.analysis.metrics import energy_per_inference

        runs = store.runs()
        e = energy_per_inference(store, runs[runs["run_id"].isin(s["run_id"])])
        s = s.merge(e[["run_id", "energy_mj"]], on="run_id", how="left")
    frames = []
    for m in metrics:
        col, unit, scale = HISTORY_METRICS[m]
        d = s.dropna(subset=[col])
        if d.empty:
            continue
        grouped = d.groupby(["night", *_KEY], sort=True)
        g = grouped[col].agg(["median", "size"]).reset_index()
        refs = grouped["git"].agg(lambda v: ",".join(sorted({x for x in v if x}))).reset_index(drop=True)
        frames.append(g.assign(metric=m, value=g["median"] * scale, unit=unit, runs=g["size"], git=refs))
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    out["series"] = [_series_label(r) for _, r in out.iterrows()]
    return out[cols].sort_values(["series", "night"]).reset_index(drop=True)


def detect_changes(points: pd.DataFrame, *, max_pvalue: float = 0.001, min_magnitude: float = 0.02,
                   min_persist: int = 3, window_len: int = 30) -> pd.DataFrame:
    """Change points of every series in ``points`` (see :func:`nightly_points`) with Otava.

    Returns series, night (the first night at the new level), before, after, change
    (after / before - 1), pvalue, direction (up/down), nights_after, git_before and git_after
    (the ``git`` refs of the night before and of the first night: what to compare), status:
    ``regression`` (up, >= min_magnitude, held >= min_persist nights), ``unconfirmed``
    (up but not yet held long enough), ``improvement`` (down) or ``small`` (below min_magnitude).
    """
    cols = ["series", *_KEY, "metric", "night", "before", "after", "change", "pvalue", "direction", "nights_after",
            "git_before", "git_after", "status"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    try:
        from otava.analysis import compute_change_points
    except ImportError as exc:
        raise AnalysisError("change-point detection needs Apache Otava: pip install apache-otava") from exc
    rows = []
    for name, p in points.groupby("series", sort=False):
        p = p.sort_values("night").reset_index(drop=True)
        values = p["value"].to_numpy(dtype=float)
        if len(values) < 4:
            continue
        cps, _ = compute_change_points(values.tolist(), window_len=window_len, max_pvalue=max_pvalue,
                                       min_magnitude=0.0)
        idx = sorted(int(c.index) for c in cps)
        bounds = [0, *idx, len(values)]
        for k, cp in enumerate(idx):
            seg_before = values[bounds[k]:cp]
            seg_after = values[cp:bounds[k + 2]]
            before, after = float(np.median(seg_before)), float(np.median(seg_after))
            change = after / before - 1.0 if before else float("nan")
            stats = next(c.stats for c in cps if int(c.index) == cp)
            up = change > 0
            if abs(change) < min_magnitude:
                status = "small"
            elif not up:
                status = "improvement"
            elif len(seg_after) >= min_persist:
                status = "regression"
            else:
                status = "unconfirmed"
            first = p.iloc[0]
            rows.append({"series": name, **{k_: first[k_] for k_ in _KEY}, "metric": first["metric"],
                         "night": p.loc[cp, "night"], "before": before, "after": after, "change": change,
                         "pvalue": float(stats.pvalue), "direction": "up" if up else "down",
                         "nights_after": len(seg_after),
                         "git_before": str(p.loc[cp - 1, "git"]) if "git" in p else "",
                         "git_after": str(p.loc[cp, "git"]) if "git" in p else "", "status": status})
    return pd.DataFrame(rows, columns=cols)


def history(store: Store, metrics: tuple[str, ...] | list[str] = ("p50", "p99"), **options: Any
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nightly points and their change points: ``(points, changes)``."""
    points = nightly_points(store, metrics)
    return points, detect_changes(points, **options)


def format_history(points: pd.DataFrame, changes: pd.DataFrame, fmt: str = "table", *, show_all: bool = False) -> str:
    """``table``, ``markdown`` or ``json``; by default only regressions and unconfirmed rises are listed."""
    shown = changes if show_all else changes[changes["status"].isin(["regression", "unconfirmed"])]
    if fmt == "json":
        return json.dumps({
            "series": int(points["series"].nunique()) if not points.empty else 0,
            "nights": int(points["night"].nunique()) if not points.empty else 0,
            "regressions": int((changes["status"] == "regression").sum()) if not changes.empty else 0,
            "changes": json.loads(shown.to_json(orient="records")),
        }, indent=2)
    n_series = points["series"].nunique() if not points.empty else 0
    n_nights = points["night"].nunique() if not points.empty else 0
    head = f"{n_series} series over {n_nights} nights; " + (
        f"{int((changes['status'] == 'regression').sum())} regressions" if not changes.empty else "no change points")
    if shown.empty:
        return head
    view = pd.DataFrame({
        "night": shown["night"], "series": shown["series"],
        "before": shown["before"].map(lambda v: f"{v:.4g}"), "after": shown["after"].map(lambda v: f"{v:.4g}"),
        "change": shown["change"].map(lambda v: f"{v * 100:+.1f}%"), "p": shown["pvalue"].map(lambda v: f"{v:.1g}"),
        "nights after": shown["nights_after"], "status": shown["status"].str.upper().where(
            shown["status"] == "regression", shown["status"]),
    })
    if "git_after" in shown and (shown["git_before"].astype(bool) | shown["git_after"].astype(bool)).any():
        view["git (compare these)"] = [f"{b or '?'} -> {a or '?'}" for b, a in
                                       zip(shown["git_before"], shown["git_after"], strict=True)]
    if fmt == "markdown":
        lines = ["| " + " | ".join(view.columns) + " |", "|" + "---|" * len(view.columns)]
        lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in view.itertuples(index=False)]
        return head + "\n\n" + "\n".join(lines)
    if fmt != "table":
        raise AnalysisError(f"unknown format {fmt!r} (table, markdown, json)")
    return head + "\n\n" + view.to_string(index=False)
