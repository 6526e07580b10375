"""Nightly history: one point per night per (model, target, backend, settings, metric), or per
``config`` of a CSV file of the user's own numbers, and the findings of
:mod:`harness.analysis.changepoints` on each series: regressions (a step the worse way that has held
``persist`` nights), improvements, drifts (one finding for a slow change), and, with ``--all``, changes
below the minimum, unconfirmed steps and excursions that came back.

Points come from the per-run summary (never from per-inference samples): the
night's value is the median over that night's runs of the run statistic (p50,
p99, peak memory, energy per inference).

Each point carries the git refs of its night's runs (the ``git`` label, by the convention
``hilbench run --label git=$(git rev-parse --short HEAD)``), and each finding the refs
of the night before it and of its first night: the two to ``hilbench compare``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.changepoints import LISTED, Settings, failing, find_changes, gates
from harness.errors import AnalysisError, InputError
from harness.store import Store
from harness.text import json_object, key_values

__all__ = ["HISTORY_METRICS", "nightly_points", "detect_changes", "history", "format_history", "read_csv_points",
           "format_csv_history", "Settings"]

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
#: a finding's fields, as the JSON output has them
_FINDING = ["index", "night", "kind", "before", "after", "change", "nights_before", "nights_after", "span"]


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


def detect_changes(points: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Findings of every series in ``points`` (see :func:`nightly_points`; :mod:`harness.analysis.changepoints`).

    Returns series (and model, target, backend, settings, metric where ``points`` has them), index (0-based
    position of the first night on the new level in that series), night, kind (regression, improvement,
    drift, small, unconfirmed, excursion), before, after (the levels), change (after / before - 1),
    nights_before, nights_after, span (nights the change took), gates (a regression or a drift the worse
    way), fails (the one that fails ``--fail`` now: :func:`~harness.analysis.changepoints.failing`), git_before
    and git_after (the ``git`` refs of the night before and of the first night: what to compare).
    """
    s = settings or Settings()
    keys = [k for k in (*_KEY, "metric") if k in points]
    cols = ["series", *keys, *_FINDING, "gates", "fails", "git_before", "git_after"]
    rows = []
    for name, p in points.groupby("series", sort=False):
        p = p.sort_values("order" if "order" in p else "night", kind="stable").reset_index(drop=True)
        first = p.iloc[0]
        git = p["git"].astype(str).tolist() if "git" in p else [""] * len(p)
        try:
            found = find_changes(p["value"].to_numpy(dtype=float), s)
        except AnalysisError as exc:
            raise AnalysisError(f"{name}: {exc}") from exc
        now = failing(found, len(p), s)
        for f in found:
            rows.append({"series": name, **{k: first[k] for k in keys}, "index": f.index,
                         "night": p.loc[f.index, "night"], "kind": f.kind, "before": f.before, "after": f.after,
                         "change": f.change, "nights_before": f.nights_before, "nights_after": f.nights_after,
                         "span": f.span, "gates": gates(f, s.higher_is_better), "fails": f is now,
                         "git_before": git[f.index - 1] if f.index > 0 else "", "git_after": git[f.index]})
    return pd.DataFrame(rows, columns=cols)


def history(store: Store, metrics: tuple[str, ...] | list[str] = ("p50", "p99"), settings: Settings | None = None
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nightly points and their findings: ``(points, changes)``."""
    points = nightly_points(store, metrics)
    return points, detect_changes(points, settings)


def _shown(changes: pd.DataFrame, show_all: bool) -> pd.DataFrame:
    return changes if show_all or changes.empty else changes[changes["kind"].isin(LISTED)]


def _not_listed(changes: pd.DataFrame) -> str:
    """``; 1 unconfirmed, 2 excursions (--all lists them)`` for what the default view leaves out."""
    if changes.empty:
        return ""
    left = changes.loc[~changes["kind"].isin(LISTED), "kind"].value_counts()
    if left.empty:
        return ""
    plural = {"small": "small", "unconfirmed": "unconfirmed", "excursion": "excursions"}
    total = int(left.sum())
    return "; " + ", ".join(f"{v} {plural.get(str(k), k) if v > 1 else k}" for k, v in left.items()) + \
        f" (--all lists {'them' if total > 1 else 'it'})"


def _regressions(n: int, failing_now: int | None = None) -> str:
    text = f"{n} regression{'' if n == 1 else 's'}"
    return text if failing_now is None else text + f" ({failing_now} failing now: --fail judges the newest nights)"


def _failing(changes: pd.DataFrame) -> int:
    """Series whose newest change fails ``--fail`` now."""
    return int(changes["fails"].sum()) if not changes.empty else 0


def _findings_json(rows: pd.DataFrame, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for r in rows.itertuples(index=False):
        d = r._asdict()
        item: dict[str, Any] = {}
        for k in (*_FINDING, *extra):
            v = d[k]
            item[k] = v.item() if hasattr(v, "item") else v
        out.append(item)
    return out


def _table_view(shown: pd.DataFrame, label: str) -> pd.DataFrame:
    view = pd.DataFrame({
        "night": shown["night"].astype(str), label: shown["series"],
        "kind": shown["kind"].where(~shown["gates"], shown["kind"].str.upper()),
        "before": shown["before"].map(lambda v: f"{v:.4g}"), "after": shown["after"].map(lambda v: f"{v:.4g}"),
        "change": shown["change"].map(lambda v: f"{v * 100:+.1f}%"),
        "nights before/after": [f"{b}/{a}" for b, a in zip(shown["nights_before"], shown["nights_after"], strict=True)],
    })
    spans = shown["span"] > 1
    if spans.any():
        view["over"] = [f"{s} nights" if s > 1 else "" for s in shown["span"]]
    if "git_after" in shown and (shown["git_before"].astype(bool) | shown["git_after"].astype(bool)).any():
        view["git (compare these)"] = [f"{b or '?'} -> {a or '?'}" for b, a in
                                       zip(shown["git_before"], shown["git_after"], strict=True)]
    return view


def _render(head: str, view: pd.DataFrame, fmt: str) -> str:
    if view.empty:
        return head
    if fmt == "markdown":
        lines = ["| " + " | ".join(view.columns) + " |", "|" + "---|" * len(view.columns)]
        lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in view.itertuples(index=False)]
        return head + "\n\n" + "\n".join(lines)
    if fmt != "table":
        raise AnalysisError(f"unknown format {fmt!r} (table, markdown, json)")
    return head + "\n\n" + view.to_string(index=False)


def format_history(points: pd.DataFrame, changes: pd.DataFrame, fmt: str = "table", *, show_all: bool = False) -> str:
    """``table``, ``markdown`` or ``json``; by default regressions, improvements and drifts are listed
    (``show_all``: also small changes, unconfirmed steps and excursions)."""
    shown = _shown(changes, show_all)
    n_gating = int(changes["gates"].sum()) if not changes.empty else 0
    if fmt == "json":
        return json.dumps({
            "series": int(points["series"].nunique()) if not points.empty else 0,
            "nights": int(points["night"].nunique()) if not points.empty else 0,
            "regressions": n_gating,
            "failing": _failing(changes),
            "changes": [{"series": s, **f} for s, f in zip(shown["series"], _findings_json(
                shown, ("gates", "fails", "git_before", "git_after")), strict=True)],
        }, indent=2)
    n_series = points["series"].nunique() if not points.empty else 0
    n_nights = points["night"].nunique() if not points.empty else 0
    head = (f"{n_series} series over {n_nights} nights; {_regressions(n_gating, _failing(changes))}"
            f"{_not_listed(changes) if not show_all else ''}")
    return _render(head, _table_view(shown, "series"), fmt)


# ----------------------------------------------------------------------------- your own numbers


def _night_key(text: str) -> tuple[str, Any] | None:
    """``("int", 3)`` or ``("date", date)`` for a night's text; None when it is neither."""
    t = text.strip()
    try:
        return "int", int(t)
    except ValueError:
        pass
    try:
        return "date", dt.date.fromisoformat(t)
    except ValueError:
        return None


def read_csv_points(path: str | Path) -> pd.DataFrame:
    """Points from a CSV file with a header naming ``night`` (a date YYYY-MM-DD or an integer order),
    ``value`` (a positive number) and optionally ``config`` (one series per value; ``""`` without the
    column); other columns are ignored. Several rows for one night of a config are one point, their
    median. Returns series (the config), night (the date's text, or the integer), order, value, sorted. Bad
    input: InputError naming the file and line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    rows: list[tuple[str, str, Any, float]] = []
    kind_seen: tuple[str, int] | None = None
    line = 1
    reader: Any = None
    try:
        with handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}:1: empty file (expected a header: night,config,value)")
            names = [h.strip().lower() for h in header]
            missing = [c for c in ("night", "value") if c not in names]
            if missing:
                raise InputError(f"{path}:1: no {' or '.join(repr(c) for c in missing)} column in the header "
                                 f"(expected night,config,value; found {','.join(header)[:80]})")
            dup = next((c for c in ("night", "config", "value") if names.count(c) > 1), None)
            if dup:
                raise InputError(f"{path}:1: the column {dup!r} appears twice in the header")
            i_night, i_value = names.index("night"), names.index("value")
            i_config = names.index("config") if "config" in names else None
            for fields in reader:
                line = reader.line_num
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(names):
                    raise InputError(f"{path}:{line}: {len(fields)} fields, the header has {len(names)}")
                night = fields[i_night].strip()
                key = _night_key(night)
                if key is None:
                    raise InputError(f"{path}:{line}: night {night[:40]!r} is neither a date (YYYY-MM-DD) nor an integer")
                if kind_seen is None:
                    kind_seen = (key[0], line)
                elif key[0] != kind_seen[0]:
                    raise InputError(f"{path}:{line}: night {night[:40]!r} is a{'n integer' if key[0] == 'int' else ' date'}"
                                     f", line {kind_seen[1]} had a{'n integer' if kind_seen[0] == 'int' else ' date'}")
                text = fields[i_value].strip()
                try:
                    value = float(text)
                except ValueError:
                    raise InputError(f"{path}:{line}: value {text[:40]!r} is not a number") from None
                if not (math.isfinite(value) and value > 0):
                    raise InputError(f"{path}:{line}: value {text[:40]!r} must be a positive number "
                                     f"(changes are relative)")
                config = fields[i_config].strip() if i_config is not None else ""
                rows.append((config, night, key[1], value))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start} after line {line})") from exc
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: not CSV ({exc})") from exc
    if not rows:
        raise InputError(f"{path}: no rows under the header")
    frame = pd.DataFrame(rows, columns=["series", "night", "order", "value"])
    frame = frame.groupby(["series", "order"], sort=True).agg(night=("night", "first"), value=("value", "median"))
    frame = frame.reset_index()[["series", "night", "order", "value"]]
    if kind_seen is not None and kind_seen[0] == "int":  # an integer night is shown (and in JSON) as a number
        frame["night"] = frame["order"].astype(int)
    return frame


def format_csv_history(points: pd.DataFrame, changes: pd.DataFrame, fmt: str = "table", *,
                       show_all: bool = False) -> str:
    """``json``: an object keyed by config, each the list of its findings (docs/analysis.md); ``table`` or
    ``markdown``: one row per finding."""
    shown = _shown(changes, show_all)
    configs = list(dict.fromkeys(points["series"]))
    if fmt == "json":
        return json.dumps({c: _findings_json(shown[shown["series"] == c], ("fails",)) if not shown.empty else []
                           for c in configs}, indent=2)
    n_gating = int(changes["gates"].sum()) if not changes.empty else 0
    head = (f"{len(configs)} series over {points['order'].nunique()} nights; "
            f"{_regressions(n_gating, _failing(changes))}"
            f"{_not_listed(changes) if not show_all else ''}")
    view = _table_view(shown, "config")
    return _render(head, view.drop(columns=["config"]) if configs == [""] else view, fmt)
