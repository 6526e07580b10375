"""Figures from the store (matplotlib, Agg; PNG or SVG by the file's suffix).

Each ``*_figure`` function takes data already read from the store and returns a
``matplotlib.figure.Figure``; :func:`plot` reads the store for a kind and
:func:`save` writes it. Kinds:

* ``pareto``: latency (p50 or p99) against accuracy measured on the device, one
  colour per target, the Pareto front (nothing both faster and more accurate) drawn
  through each target's points;
* ``distribution``: every timed sample of each run as a violin (log scale when the
  runs span a wide range), with the latency budgets of 90/60/30 fps (11/16/33 ms);
* ``timeline``: one run's latency over time (warm-up, timed, sustained) with
  temperature and clock on twin axes, throttling shaded (set flags by the same rule
  as the derived figures, and the run's derived throttle events of every kind);
* ``targets``: p50 / p99 per target for each model, energy per inference and price
  when stored;
* ``energy``: energy per inference against p50 latency;
* ``trend``: a nightly history with its change points (see :mod:`harness.analysis.history`).

Names in a figure (targets, models, sensors, series) come from the store, which holds what devices sent:
each is passed through :func:`label` (control characters shown as escapes, never drawn or written as they
are, and ``$`` never starts mathtext), and :func:`save` / :func:`to_bytes` make every text of the figure so
and drop any character XML forbids, so an SVG is always valid XML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import AnalysisError
from harness.safetext import safe
from harness.store import Store
from harness.text import key_values

__all__ = ["KINDS", "BUDGETS_MS", "plot", "save", "label", "pareto_front", "pareto_figure", "distribution_figure",
           "timeline_figure", "targets_figure", "energy_figure", "trend_figure", "history_figure", "to_bytes"]

KINDS = ("pareto", "distribution", "timeline", "targets", "energy", "trend")
#: Latency budgets drawn on distributions: (ms, label).
BUDGETS_MS = ((33.3, "33 ms: 30 fps video"), (16.7, "16 ms: 60 fps"), (11.1, "11 ms: 90 fps AR/VR"))
_STYLE: dict[str, Any] = {"font.size": 10, "axes.titlesize": 12, "axes.titleweight": "bold", "axes.spines.top": False,
          "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100,
          # No text is mathtext: a '$' in a device's name is a dollar sign, never a formula to parse.
          "text.parse_math": False}
#: Characters XML 1.0 does not allow (an SVG holding one does not parse).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise AnalysisError("plots need matplotlib: pip install 'hilbench[plots]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.style.use(_STYLE)
    return plt


def _colors(n: int) -> list[Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


_settings = key_values


def label(value: Any, limit: int = 120) -> str:
    """``value`` as text for a figure: control and format characters shown as escapes (``\\x1b``), cut to
    ``limit`` characters. Names in figures come from the store, and so from devices."""
    return safe(value, limit)


def run_label(row: Any, *, with_target: bool = True) -> str:
    """Short label of a run: model [backend settings] @ target."""
    s = _settings(row["settings"])
    text = f"{label(row['model'])} [{label(row['backend'])}{' ' + label(s) if s else ''}]"
    return f"{text} @ {label(row['target'])}" if with_target else text


def _safe_texts(fig: Any) -> None:
    """Every text already in ``fig`` (titles, legends, annotations, tick labels) made safe: the backstop of
    :func:`label` for a name a figure function did not pass through it."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        s = text.get_text()
        if s and not (s.isascii() and s.isprintable()):
            text.set_text("\n".join(safe(line, None) for line in s.split("\n")))


def _savefig(fig: Any, fmt: str, dpi: int) -> bytes:
    import io

    _safe_texts(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi if fmt == "png" else None, bbox_inches="tight")
    data = buf.getvalue()
    if fmt == "svg":  # valid XML whatever text reached the figure
        data = _XML_INVALID.sub("", data.decode("utf-8", "replace")).encode("utf-8")
    return data


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` as PNG or SVG (by suffix) and close it."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise AnalysisError(f"{path}: plots are written as .png or .svg")
    plt = _plt()
    try:
        path.write_bytes(_savefig(fig, fmt, 130))
    except OSError as exc:
        raise AnalysisError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    finally:
        plt.close(fig)
    return path


def to_bytes(fig: Any, fmt: str = "png") -> bytes:
    """The figure as PNG or SVG bytes (for embedding in a report); closes it."""
    plt = _plt()
    try:
        return _savefig(fig, fmt, 110)
    finally:
        plt.close(fig)


def _budget_note(lo_ms: float, hi_ms: float, drawn: Sequence[float]) -> str:
    """A note for the budgets left off a latency axis (so that a missing line never reads as "no budget")."""
    left = [ms for ms, _ in BUDGETS_MS if ms not in drawn]
    if not left:
        return ""
    under = sorted(ms for ms in left if ms > hi_ms)
    over = sorted(ms for ms in left if ms < lo_ms)
    parts = []
    if under:
        parts.append(f"all runs under {int(under[0])} ms" + (
            f" ({', '.join(str(int(ms)) for ms in under)} ms budgets off the scale)" if len(under) > 1 else
            f" ({int(under[0])} ms budget off the scale)"))
    if over:
        parts.append(f"all runs over {int(over[-1])} ms (the {', '.join(str(int(ms)) for ms in over)} ms budget"
                     f"{'s' if len(over) > 1 else ''} off the scale)")
    return "; ".join(parts)


def _empty(title: str, message: str) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="0.35", wrap=True)
    return fig


# ----------------------------------------------------------------------------- pareto


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both (lower latency, higher accuracy),
    ordered by latency."""
    lat = np.asarray(latency, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    order = np.lexsort((-acc, lat))
    front: list[int] = []
    best = -np.inf
    for i in order:
        if acc[i] > best:
            front.append(int(i))
            best = acc[i]
    return front


def pareto_figure(data: pd.DataFrame, *, metric: str = "p50_ns") -> Any:
    """``data``: one row per run with model, target, backend, settings, ``metric`` (ns), top1.

    Runs of the same configuration (several sessions) are one point: the median latency and
    the mean accuracy. Only the points on a front are labelled in full; the others get a
    short label, staggered so that close points stay readable."""
    d = data.dropna(subset=[metric, "top1"])
    if d.empty:
        return _empty("Latency vs accuracy", "No run has both latency and accuracy.\n"
                      "Give the models an evaluation set: [models.eval] in the plan.")
    keys = ["target", "model", "backend", "settings"]
    d = d.groupby(keys, as_index=False, sort=True).agg(**{metric: (metric, "median"), "top1": ("top1", "mean")})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5.6))
    targets = sorted(d["target"].unique())
    xs_all = d[metric].to_numpy() / 1e6
    log_x = xs_all.max() / max(xs_all.min(), 1e-9) > 20
    notes: list[tuple[float, float, str, bool]] = []
    for color, target in zip(_colors(len(targets)), targets, strict=True):
        t = d[d["target"] == target].reset_index(drop=True)
        x = t[metric].to_numpy() / 1e6
        y = t["top1"].to_numpy() * 100
        front = pareto_front(x, y)
        ax.scatter(x, y, s=55, color=color, label=label(target), zorder=3, edgecolor="white", linewidth=0.8)
        ax.step(x[front], y[front], where="post", color=color, linewidth=1.6, alpha=0.8, zorder=2)
        for i, row in t.iterrows():
            on_front = i in front
            notes.append((float(x[i]), float(y[i]),
                          f"{label(row['model'])} ({label(row['backend'])})" if on_front else label(row["model"]),
                          on_front))
    if log_x:
        ax.set_xscale("log")
    ys = d["top1"].to_numpy() * 100
    ax.set_ylim(max(0.0, ys.min() - max(2.0, 0.15 * (ys.max() - ys.min()))), min(101.0, ys.max() + 1.5))
    _place_labels(fig, ax, notes)
    which = metric.split("_")[0]
    ax.set_xlabel(f"{which} latency (ms{', log scale' if log_x else ''}; lower is better)")
    ax.set_ylabel("top-1 accuracy on the device (%)")
    ax.set_title("Latency vs accuracy: the Pareto front per target (bold: on the front)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="target", loc="best", frameon=False)
    return fig


def _place_labels(fig: Any, ax: Any, notes: list[tuple[float, float, str, bool]]) -> None:
    """Label each point at the first of a few offsets where its text box (estimated in display
    pixels) overlaps no label already placed and no other point: a simple stand-in for adjustText."""
    ax.autoscale_view()
    fig.canvas.draw()  # fixes the limits so that data -> pixel is final
    pts: list[list[float]] = (ax.transData.transform([(nx, ny) for nx, ny, _, _ in notes]).tolist()
                              if notes else [])
    scale = fig.dpi / 72.0
    boxes: list[tuple[float, float, float, float]] = []
    offsets: list[tuple[float, float]] = [(6, 5), (6, -13), (6, 16), (6, -24), (6, 27), (6, -35), (6, 38), (6, -46)]
    centres = [(float(p[0]), float(p[1])) for p in pts]
    for (nx, ny, text, bold), (px, py) in zip(notes, centres, strict=True):
        w, h = len(text) * 8 * 0.6 * scale, 8 * 1.3 * scale
        choice = offsets[0]
        for dx, dy in offsets + [(-dx - len(text) * 8 * 0.6 - 6, dy) for dx, dy in offsets]:
            x0, y0 = px + dx * scale, py + dy * scale
            box = (x0, y0, x0 + w, y0 + h)
            clash = any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes)
            clash = clash or any(box[0] - 4 < qx < box[2] + 4 and box[1] - 4 < qy < box[3] + 4
                                 for qx, qy in centres if (qx, qy) != (px, py))
            if not clash:
                choice = (dx, dy)
                break
        dx, dy = choice
        boxes.append((px + dx * scale, py + dy * scale, px + dx * scale + w, py + dy * scale + h))
        ax.annotate(text, (nx, ny), textcoords="offset points", xytext=(dx, dy), fontsize=8,
                    color="0.1" if bold else "0.45", fontweight="bold" if bold else "normal",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.6} if abs(dy) > 16 else None)


# ----------------------------------------------------------------------------- distribution


def distribution_figure(runs: pd.DataFrame, samples: pd.DataFrame) -> Any:
    """Violins of every timed sample per run; ``runs`` gives labels, ``samples`` run_id/latency_ns.

    Runs of the same configuration from different sessions get the session's date and id."""
    labels = [run_label(r) for _, r in runs.iterrows()]
    dupes = {text for text in labels if labels.count(text) > 1}
    groups = []
    for text, (_, r) in zip(labels, runs.iterrows(), strict=True):
        if text in dupes:
            when = pd.Timestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M") if pd.notna(r.get("started_at")) else ""
            text = f"{text}\n{when} · session {label(r.get('session_id') or '?')}"
        groups.append((text, samples.loc[samples["run_id"] == r["run_id"], "latency_ns"].to_numpy() / 1e6))
    groups = [(text, v) for text, v in groups if v.size]
    if not groups:
        return _empty("Latency distribution", "No timed samples stored for these runs.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, (0.75 if dupes else 0.55) * len(groups) + 1.8))
    values = [v for _, v in groups]
    lo = min(float(np.min(v)) for v in values)
    hi = max(float(np.max(v)) for v in values)
    log = hi / max(lo, 1e-9) > 20
    plot_vals = [np.log10(v) if log else v for v in values]
    import matplotlib

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
    parts = ax.violinplot(plot_vals, showextrema=False, widths=0.8, **horizontal)
    colors = _colors(len(groups))
    for body, color in zip(parts["bodies"], colors, strict=True):
        body.set_facecolor(color)
        body.set_alpha(0.55)
    for i, v in enumerate(values, start=1):
        p50, p99 = np.percentile(v, [50, 99])
        tr = (lambda x: np.log10(x)) if log else (lambda x: x)
        ax.plot([tr(p50)], [i], marker="|", color="black", markersize=14, mew=2)
        ax.plot([tr(p99)], [i], marker="|", color="crimson", markersize=10, mew=2)
    drawn = []
    for ms, budget in BUDGETS_MS:
        if lo * 0.5 <= ms <= hi * 3:
            drawn.append(ms)
            ax.axvline(np.log10(ms) if log else ms, color="0.4", linestyle="--", linewidth=1)
            ax.text(np.log10(ms) if log else ms, len(groups) + 0.85, " " + budget, rotation=90, fontsize=8,
                    color="0.3", ha="right", va="top")
    note = _budget_note(lo, hi, drawn)
    if note:
        ax.text(0.99, 0.995, note, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="0.25",
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})
    ax.set_yticks(range(1, len(groups) + 1), [g[0] for g in groups])
    if log:
        ticks = [t for t in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3000)
                 if lo / 2 <= t <= hi * 2]
        ax.set_xticks(np.log10(ticks), [f"{t:g}" for t in ticks])
    ax.set_xlabel("latency per inference (ms" + (", log scale" if log else "") + ");  | black p50, | red p99")
    ax.set_ylim(0.4, len(groups) + 0.9)
    ax.set_title("Latency distribution per run (every timed sample)")
    return fig


# ----------------------------------------------------------------------------- timeline


def _pick(sensors: Iterable[str], prefix: str, prefer: Sequence[str]) -> str | None:
    names = sorted(s for s in sensors if isinstance(s, str) and s.startswith(prefix))
    for want in prefer:
        if want in names:
            return want
    return names[0] if names else None


_EVENT_STYLE = {"flag": ("orange", "throttling reported (flag set)"), "clock": ("tab:purple", "clock dropped (throttled)"),
                "trip": ("tab:red", "trip point reached")}


def _timed_t0(run: Any, samples: pd.DataFrame) -> int | None:
    """Start of the timed phase on the agent's clock: the result's, else the first timed sample's."""
    result = run.get("result") if hasattr(run, "get") else None
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            result = None
    t0 = ((result or {}).get("timed") or {}).get("t0_ns") if isinstance(result, dict) else None
    if t0 is not None:
        return int(t0)
    timed = samples[samples["phase"] == "timed"]
    return int(timed["t_ns"].min()) if not timed.empty else None


def _derived_events(run: Any) -> list[dict[str, Any]]:
    derived = run.get("derived") if hasattr(run, "get") else None
    if isinstance(derived, str):
        try:
            derived = json.loads(derived)
        except ValueError:
            return []
    events = (derived or {}).get("throttle_events") if isinstance(derived, dict) else None
    return [e for e in events or [] if isinstance(e, dict) and isinstance(e.get("t_s"), (int, float))]


def timeline_figure(run: Any, samples: pd.DataFrame, telemetry: pd.DataFrame) -> Any:
    """Latency of one run over time (warm-up, timed and sustained samples, with a rolling median),
    temperature and clock on twin axes, and throttling shaded: the telemetry rows that
    :func:`harness.analysis.derive.throttle_flag_mask` counts as a set flag (not a Pi's
    ``throttle.raw`` or sticky ``*_occurred`` bits), and the run's derived throttle events of
    every kind (flag, clock drop, trip point, ...), spans where they have a duration."""
    from harness.analysis.derive import throttle_flag_mask

    s = samples[samples["phase"].isin(["warmup", "timed", "sustained"])].sort_values("t_ns")
    if s.empty:
        return _empty("Latency over time", "No samples stored for this run.")
    plt = _plt()
    from matplotlib.patches import Patch

    t0 = int(s["t_ns"].min())
    fig, ax = plt.subplots(figsize=(10, 4.6))
    x = (s["t_ns"].to_numpy() - t0) / 1e9
    y = s["latency_ns"].to_numpy() / 1e6
    phase = s["phase"].to_numpy()
    ax.scatter(x[phase == "timed"], y[phase == "timed"], s=3, color="tab:blue", alpha=0.35, label="timed inference")
    if (phase == "sustained").any():
        ax.scatter(x[phase == "sustained"], y[phase == "sustained"], s=3, color="tab:cyan", alpha=0.35,
                   label="sustained inference")
    if (phase == "warmup").any():
        ax.scatter(x[phase == "warmup"], y[phase == "warmup"], s=3, color="0.6", alpha=0.6, label="warm-up")
    roll = pd.Series(y).rolling(max(5, len(y) // 50), center=True, min_periods=1).median()
    ax.plot(x, roll, color="navy", linewidth=1.8, label="rolling median")
    ax.set_xlabel("time since the first stored inference (s)")
    ax.set_ylabel("latency (ms)", color="navy")
    ax.set_ylim(0, float(np.percentile(y, 99.5)) * 1.25)
    tel = telemetry.dropna(subset=["value"])
    handles, labels = ax.get_legend_handles_labels()
    sensors = tel["sensor"].unique() if not tel.empty else []
    temp = _pick(sensors, "temp.", ("temp.cpu", "temp.soc", "temp.cpu-thermal"))
    clock = _pick(sensors, "freq.", ("freq.cpu", "freq.cpu0", "freq.gpu"))
    twin_handles: list[Any] = []
    twin_labels: list[str] = []
    if temp:
        ax2 = ax.twinx()
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
        tt = tel[tel["sensor"] == temp]
        ax2.plot((tt["t_ns"] - t0) / 1e9, tt["value"], color="tab:red", linewidth=1.6, label=f"{label(temp)} (°C)")
        ax2.set_ylabel("temperature (°C)", color="tab:red")
        h2, l2 = ax2.get_legend_handles_labels()
        twin_handles, twin_labels = h2, l2
    if clock:
        ax3 = ax.twinx()
        ax3.grid(False)
        ax3.spines["right"].set_position(("axes", 1.1 if temp else 1.0))
        ax3.spines["right"].set_visible(True)
        ct = tel[tel["sensor"] == clock]
        ax3.plot((ct["t_ns"] - t0) / 1e9, ct["value"], color="tab:green", linewidth=1.3, linestyle="--",
                 label=f"{label(clock)} (MHz)")
        ax3.set_ylabel("clock (MHz)", color="tab:green")
        h3, l3 = ax3.get_legend_handles_labels()
        handles, labels = handles + h3, labels + l3
    missing = [what for what, have in (("temperature sensor", temp), ("clock reading", clock)) if not have]
    if missing:
        ax.text(0.99, 0.98, "no " + " and no ".join(missing), transform=ax.transAxes, ha="right", va="top",
                fontsize=8, color="0.35", bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.75"})
    shaded: dict[str, str] = {}
    if not tel.empty:
        flags = tel[throttle_flag_mask(tel)]
        for t in (flags["t_ns"].to_numpy() - t0) / 1e9:
            ax.axvspan(t - 0.05, t + 0.05, color="orange", alpha=0.25, linewidth=0)
        if len(flags):
            shaded["orange"] = "throttling reported (flag set)"
    timed_t0 = _timed_t0(run, s)
    if timed_t0 is not None:
        for e in _derived_events(run):
            kind = str(e.get("kind") or "event")
            color, text = _EVENT_STYLE.get(kind, ("tab:brown", f"throttle: {label(kind)}"))
            start = (timed_t0 - t0) / 1e9 + float(e["t_s"])
            width = float(e.get("duration_s") or 0.0)
            if width > 0:
                ax.axvspan(start, start + width, color=color, alpha=0.18, linewidth=0)
            ax.axvline(start, color=color, linewidth=1.4, alpha=0.9)
            shaded.setdefault(color, text)
    for color, text in shaded.items():
        handles.append(Patch(color=color, alpha=0.4))
        labels.append(text)
    handles, labels = handles + twin_handles, labels + twin_labels
    # Below the axes: over them it would hide the first seconds of the run.
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False,
              markerscale=3)
    ax.set_title(f"Latency over time: {run_label(run)}")
    return fig


# ----------------------------------------------------------------------------- targets / energy


def targets_figure(table: pd.DataFrame) -> Any:
    """``table``: one row per (model, target) with p50_ms, p99_ms and optionally energy_mj, price_usd."""
    if table.empty:
        return _empty("Targets", "No successful runs to compare.")
    plt = _plt()
    models = list(dict.fromkeys(table["model"]))
    extra = [c for c in ("energy_mj", "price_usd") if c in table and table[c].notna().any()]
    ncols = 1 + len(extra)
    fig, axes = plt.subplots(len(models), ncols, figsize=(4.2 * ncols + 2, 0.5 * table["target"].nunique()
                                                          * len(models) + 1.6 * len(models)), squeeze=False)
    for r, model in enumerate(models):
        t = table[table["model"] == model].sort_values("p99_ms")
        y = np.arange(len(t))
        ax = axes[r][0]
        ax.barh(y + 0.2, t["p50_ms"], height=0.4, color="tab:blue", label="p50")
        ax.barh(y - 0.2, t["p99_ms"], height=0.4, color="tab:orange", label="p99")
        ax.set_yticks(y, [label(v) for v in t["target"]])
        ax.invert_yaxis()
        ax.set_xlabel("latency (ms)")
        ax.set_title(f"{label(model)}: latency")
        top = float(t["p99_ms"].max())
        drawn = [ms for ms, _ in BUDGETS_MS if ms <= top * 1.5]
        for ms in drawn:
            ax.axvline(ms, color="0.4", linestyle="--", linewidth=0.9)
            ax.text(ms, 1.0, f"{int(ms)}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=7, color="0.3")
        note = _budget_note(float(t["p50_ms"].min()), top, drawn)
        if note:
            # Top right: bars are sorted by p99, so the fastest (shortest) sit there.
            ax.text(0.98, 0.97, note.split(" (")[0], transform=ax.transAxes, ha="right", va="top", fontsize=7,
                    color="0.25", bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7"})
        if r == 0:
            fig.legend(*ax.get_legend_handles_labels(), loc="upper left", ncol=2, frameon=False)
        for c, col in enumerate(extra, start=1):
            ax = axes[r][c]
            vals = t[col]
            ax.barh(y, vals.fillna(0), height=0.6, color="tab:green" if col == "energy_mj" else "tab:purple")
            for yi, v in zip(y, vals, strict=True):
                ax.text(0, yi, "  n/a" if pd.isna(v) else f"  {v:.3g}", va="center", fontsize=8)
            ax.set_yticks(y, [label(v) for v in t["target"]])
            ax.invert_yaxis()
            ax.set_xlabel("energy per inference (mJ)" if col == "energy_mj" else "price (USD)")
            ax.set_title(f"{label(model)}: {'energy' if col == 'energy_mj' else 'price'}")
    fig.suptitle("Targets compared (bars sorted by p99; dashed lines: the 11/16/33 ms budgets within reach)",
                 fontsize=12)
    fig.tight_layout()
    return fig


def energy_figure(table: pd.DataFrame) -> Any:
    """``table``: one row per run with model, target, p50_ms, energy_mj."""
    d = table.dropna(subset=["energy_mj", "p50_ms"]) if "energy_mj" in table else table.iloc[0:0]
    if d.empty:
        return _empty("Energy vs latency", "No run has power telemetry during its timed phase.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    targets = sorted(d["target"].unique())
    for color, target in zip(_colors(len(targets)), targets, strict=True):
        t = d[d["target"] == target]
        ax.scatter(t["p50_ms"], t["energy_mj"], s=55, color=color, label=label(target), edgecolor="white")
        for _, row in t.iterrows():
            ax.annotate(label(row["model"]), (row["p50_ms"], row["energy_mj"]), xytext=(5, 3), textcoords="offset points",
                        fontsize=8)
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("energy per inference (mJ)")
    ax.set_title("Energy per inference vs latency (lower left is better)")
    ax.legend(title="target", frameon=False)
    return fig


def trend_figure(points: pd.DataFrame, changes: pd.DataFrame, *, title: str = "Nightly trend") -> Any:
    """``points``: night, series (label), value; ``changes``: series, night, change (fraction)."""
    if points.empty:
        return _empty(title, "No nightly points.")
    plt = _plt()
    series = list(dict.fromkeys(points["series"]))[:10]
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for color, name in zip(_colors(len(series)), series, strict=True):
        p = points[points["series"] == name].sort_values("night")
        ax.plot(pd.to_datetime(p["night"]), p["value"], marker="o", markersize=3, color=color, label=label(name))
        c = changes[changes["series"] == name] if not changes.empty else changes
        for _, ch in c.iterrows():
            night = pd.to_datetime(ch["night"])
            ax.axvline(night, color=color, linestyle=":", linewidth=1.2)
            ref = f" (git {label(ch['git_after'])})" if isinstance(ch.get("git_after"), str) and ch["git_after"] else ""
            # Above the series' highest point, on white, so the line does not run through the text.
            ax.annotate(f"{ch['change'] * 100:+.1f}%{ref}", (night, p["value"].max()), xytext=(4, 7),
                        textcoords="offset points", color=color, fontsize=8, fontweight="bold", zorder=5,
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    ax.set_ylabel(label(points["unit"].iloc[0]) if "unit" in points else "value")
    ax.set_title(title + " (dotted: change points)")
    fig.autofmt_xdate()
    # Below the axes, never over the series.
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22),
              ncol=2 if len(series) > 3 else 1)
    return fig


#: kind of finding -> colour on a history figure
_KIND_COLORS = {"regression": "#c62828", "improvement": "#2e7d32", "drift": "#ef6c00", "unconfirmed": "#8d6e63",
                "small": "#9e9e9e", "excursion": "#9e9e9e"}


def _night_axis(nights: pd.Series) -> Any:
    """Dates on a date axis; anything else (the position) as it is."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(nights.astype(str), format="%Y-%m-%d"))
    except (ValueError, TypeError):
        return np.arange(len(nights))


def history_figure(points: pd.DataFrame, findings: pd.DataFrame, *, title: str = "") -> Any:
    """One series' nights (``points``: night, value, unit; in night order) with its ``findings``
    (:func:`harness.analysis.history.detect_changes`): each change a line at its first night, coloured by kind,
    labelled with the change and the git refs on each side; the levels before and after as dashed lines; a
    drift's ramp and an excursion's nights shaded."""
    if points.empty:
        return _empty(title or "Nightly history", "No nightly points.")
    plt = _plt()
    p = points.reset_index(drop=True)
    x = _night_axis(p["night"])
    fig, ax = plt.subplots(figsize=(10, 3.0))
    ax.plot(x, p["value"], marker="o", markersize=2.5, linewidth=0.8, color="#546e7a", zorder=2)
    top = float(p["value"].max())
    n = len(p)
    for k, f in enumerate(findings.sort_values("index").itertuples(index=False)):
        i, color = int(f.index), _KIND_COLORS.get(f.kind, "#555")
        last = min(n - 1, i + int(f.span) - 1)
        if f.kind in ("excursion", "drift"):
            ax.axvspan(x[i], x[last], color=color, alpha=0.12 if f.kind == "drift" else 0.08, linewidth=0, zorder=1)
        if f.kind == "excursion":
            continue
        ax.axvline(x[i], color=color, linestyle="-" if f.kind in ("regression", "drift") else ":", linewidth=1.3,
                   zorder=3)
        start, end = max(0, i - int(f.nights_before)), min(n - 1, last + int(f.nights_after))
        ax.hlines([f.before], x[start], x[max(start, i - 1)], colors=color, linestyles="--", linewidth=1, zorder=3)
        ax.hlines([f.after], x[min(end, last + 1 if f.kind == "drift" else i)], x[end], colors=color,
                  linestyles="--", linewidth=1, zorder=3)
        refs = f" {label(f.git_before or '?', 12)} \u2192 {label(f.git_after or '?', 12)}" if (
            getattr(f, "git_before", "") or getattr(f, "git_after", "")) else ""
        ax.annotate(f"{f.kind} {f.change * 100:+.1f}%{refs}", (x[i], top), xytext=(4, 4 + 11 * (k % 2)),
                    textcoords="offset points", color=color, fontsize=8, fontweight="bold", zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
    ax.set_ylabel(label(p["unit"].iloc[0]) if "unit" in p and isinstance(p["unit"].iloc[0], str) else "value")
    ax.set_ylim(top=top + (top - float(p["value"].min()) or top * 0.05) * 0.35)
    if title:
        ax.set_title(label(title), fontsize=10, loc="left")
    if isinstance(x, pd.DatetimeIndex):
        fig.autofmt_xdate()
    return fig


# ----------------------------------------------------------------------------- from the store


def _summary_with_accuracy(store: Store, run_ids: list[str] | None) -> pd.DataFrame:
    from harness.analysis.accuracy import score_runs
    from harness.analysis.processes import by_configuration

    summary = by_configuration(store.summary(run_ids))  # one point per configuration of a session
    summary = summary[summary["status"] == "ok"]
    acc = score_runs(store, run_ids)[["run_id", "top1"]] if run_ids is None or len(run_ids) else None
    if acc is not None and not acc.empty:
        summary = summary.merge(acc, on="run_id", how="left")
    else:
        summary = summary.assign(top1=np.nan)
    return summary


def target_table(store: Store, run_ids: list[str] | None) -> pd.DataFrame:
    """Per (model, target): the latest successful run's p50/p99 (ms), energy (mJ) and price (a configuration's
    agent processes of one session folded into one run: :func:`harness.analysis.processes.by_configuration`)."""
    from harness.analysis.metrics import energy_per_inference
    from harness.analysis.processes import by_configuration

    summary = by_configuration(store.summary(run_ids))
    summary = summary[summary["status"] == "ok"].sort_values("started_at")
    runs = store.runs()
    runs = runs[runs["run_id"].isin(summary["run_id"])]
    energy = energy_per_inference(store, runs)
    facts = runs.set_index("run_id")["target_facts"].map(lambda t: json.loads(t) if isinstance(t, str) else (t or {}))
    rows = []
    for (model, target), g in summary.groupby(["model", "target"], sort=False):
        r = g.iloc[-1]
        e = energy.loc[energy["run_id"] == r["run_id"], "energy_mj"]
        f = facts.get(r["run_id"], {}) or {}
        price = (f.get("facts") or f).get("price_usd") if isinstance(f, dict) else None
        rows.append({"model": model, "target": target, "run_id": r["run_id"], "p50_ms": r["p50_ns"] / 1e6,
                     "p99_ms": r["p99_ns"] / 1e6, "energy_mj": float(e.iloc[0]) if len(e) else np.nan,
                     "price_usd": float(price) if isinstance(price, (int, float)) else np.nan})
    return pd.DataFrame(rows, columns=["model", "target", "run_id", "p50_ms", "p99_ms", "energy_mj", "price_usd"])


def plot(store: Store, kind: str, *, run_ids: list[str] | None = None, run_id: str | None = None,
         metric: str = "p50") -> Any:
    """The ``kind`` figure for the runs ``run_ids`` (None: every run; ``timeline`` takes one run)."""
    if kind not in KINDS:
        raise AnalysisError(f"unknown plot {kind!r} (known: {', '.join(KINDS)})")
    if kind == "pareto":
        return pareto_figure(_summary_with_accuracy(store, run_ids), metric=f"{metric}_ns")
    if kind == "distribution":
        runs = store.runs()
        runs = runs[runs["status"] == "ok"]
        if run_ids is not None:
            runs = runs[runs["run_id"].isin(run_ids)]
        samples = store.samples(runs["run_id"], phase="timed", columns=["run_id", "phase", "latency_ns"])
        return distribution_figure(runs, samples)
    if kind == "timeline":
        if run_id is None:
            ok = store.runs()
            ok = ok[ok["status"] == "ok"]
            if run_ids is not None:
                ok = ok[ok["run_id"].isin(run_ids)]
            if ok.empty:
                raise AnalysisError(f"{store.root}: no successful run to plot")
            run_id = str(ok.iloc[-1]["run_id"])
        run = store.run(run_id)
        samples = store.samples([run["run_id"]])
        return timeline_figure(run, samples, store.telemetry([run["run_id"]]))
    if kind == "targets":
        return targets_figure(target_table(store, run_ids))
    if kind == "energy":
        t = target_table(store, run_ids)
        return energy_figure(t)
    from harness.analysis.history import detect_changes, nightly_points

    points = nightly_points(store, metric=f"{metric}_ns")
    changes = detect_changes(points)
    if not changes.empty:
        changes = changes[changes["kind"].isin(("regression", "improvement", "drift"))]
    return trend_figure(points, changes, title=f"Nightly {metric} latency")
