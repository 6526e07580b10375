"""``hilbench report --history``: one self-contained HTML page for the nightly team.

For every configuration and metric the store has nights of (the series ``hilbench history`` reads), the
page shows its nightly trend with the findings of :mod:`harness.analysis.changepoints` marked (a
regression, improvement or drift at its first night, with the levels before and after and the git refs
of the night before and of the first night: the two to hand to ``hilbench compare``), and a table of
them. Series with a regression come first; an overview table lists every series with its latest value.
Figures are embedded as base64 PNG: the file needs no network and no other file.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from harness import __version__
from harness.analysis.changepoints import LISTED, Settings
from harness.analysis.history import history
from harness.report.html import _CSS, _esc, _figure
from harness.store import Store

__all__ = ["build_history_report"]

_KIND_TAG = {"regression": "bad", "drift": "warn", "improvement": "ok"}


def _kind_cell(f: Any) -> str:
    tag = "bad" if f.gates else _KIND_TAG.get(f.kind, "")
    text = f.kind.upper() if f.gates else f.kind
    return f'<span class="tag {tag}">{_esc(text)}</span>'


def _refs(f: Any) -> str:
    if not (f.git_before or f.git_after):
        return "<small>no git label</small>"
    before, after = f.git_before or "?", f.git_after or "?"
    cmd = f"hilbench compare git={before} git={after}" if f.git_before and f.git_after else ""
    return (f"<code>{_esc(before)}</code> &rarr; <code>{_esc(after)}</code>"
            + (f"<br><small><code>{_esc(cmd)}</code></small>" if cmd else ""))


def _findings_table(found: pd.DataFrame, unit: str) -> str:
    if found.empty:
        return "<p><small>No change: one level throughout.</small></p>"
    rows = []
    for f in found.sort_values("index").itertuples(index=False):
        over = f" over {f.span} nights" if f.span > 1 else ""
        rows.append(f"<tr><td>{_esc(f.night)}</td><td class=l>{_kind_cell(f)}</td>"
                    f"<td>{f.before:.4g} &rarr; {f.after:.4g} {_esc(unit)}</td><td>{f.change * 100:+.1f}%{over}</td>"
                    f"<td>{f.nights_before} / {f.nights_after}</td><td class=l>{_refs(f)}</td></tr>")
    return ("<table><tr><th>first night</th><th class=l>finding</th><th>level</th><th>change</th>"
            "<th>nights before / after</th><th class=l>git refs on each side</th></tr>" + "".join(rows) + "</table>")


def build_history_report(store: Store, metrics: tuple[str, ...] = ("p50", "p99"), settings: Settings | None = None,
                         *, title: str = "Nightly history", plots: bool = True) -> str:
    """The page as one HTML string."""
    from harness.report.plots import history_figure

    s = settings or Settings()
    points, changes = history(store, metrics, s)
    listed = changes[changes["kind"].isin(LISTED)] if not changes.empty else changes
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nights = sorted(points["night"].unique()) if not points.empty else []
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>hilbench: {_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="sub">hilbench {__version__} · {points["series"].nunique() if not points.empty else 0} series · '
        f"{len(nights)} nights{' from ' + _esc(nights[0]) + ' to ' + _esc(nights[-1]) if nights else ''} · made {now}</p>",
    ]
    if points.empty:
        parts.append('<p class="answer">No nightly points: the store has no successful runs.</p></body></html>')
        return "\n".join(parts)
    gating = listed[listed["gates"]] if not listed.empty else listed
    bad_series = list(dict.fromkeys(gating["series"])) if not gating.empty else []
    if bad_series:
        parts.append(f'<p class="answer"><b class="bad">{len(gating)} regression{"s" if len(gating) != 1 else ""}'
                     f"</b> in {len(bad_series)} series: {_esc('; '.join(bad_series))}. "
                     "<code>hilbench history --fail</code> exits 5.</p>")
    else:
        parts.append('<p class="answer"><b class="ok">No regression</b> in any series.</p>')
    parts.append(
        f"<p>One point per night: the median over the night's runs. A change counts when it is at least "
        f"{s.min_change * 100:g}% and the evidence clears the penalty ({s.penalty:g} &times; ln nights; "
        f"{s.fresh_penalty:g} for the newest level in its first {s.max_excursion} nights); a new level is a "
        f"regression once it has held {s.persist} nights. Excursions that come back (shaded grey) and steps below "
        "the minimum are not findings; a slow change is one drift (shaded orange). Dashed lines: the levels "
        "before and after. The git refs are the <code>git</code> labels of the night before and of the first "
        "night (<code>hilbench run --label git=$(git rev-parse --short HEAD)</code>).</p>")
    latest = points.sort_values("night").groupby("series", sort=False).tail(1).set_index("series")
    order = bad_series + sorted(set(points["series"]) - set(bad_series))
    rows = []
    for k, name in enumerate(order):
        found = listed[listed["series"] == name] if not listed.empty else listed
        last = found.sort_values("index").iloc[-1] if not found.empty else None
        status = ('<span class="tag bad">REGRESSED</span>' if name in bad_series else
                  '<span class="tag ok">ok</span>')
        rows.append(f'<tr><td class=l><a href="#s{k}">{_esc(name)}</a></td><td>{status}</td>'
                    f"<td>{latest.loc[name, 'value']:.4g} {_esc(latest.loc[name, 'unit'])}</td>"
                    f"<td>{(points['series'] == name).sum()}</td>"
                    f"<td class=l>{_esc(f'{last.kind} {last.change * 100:+.1f}% on {last.night}') if last is not None else '-'}"
                    "</td></tr>")
    parts.append("<h2>Series</h2><table><tr><th class=l>series</th><th>status</th><th>latest</th><th>nights</th>"
                 "<th class=l>last finding</th></tr>" + "".join(rows) + "</table>")
    for k, name in enumerate(order):
        p = points[points["series"] == name].sort_values("night")
        every = changes[changes["series"] == name] if not changes.empty else changes
        found = every[every["kind"].isin(LISTED)] if not every.empty else every
        marked = every[every["kind"].isin((*LISTED, "excursion"))] if not every.empty else every
        unit = str(p["unit"].iloc[0]) if "unit" in p else ""
        parts.append(f'<h2 id="s{k}">{_esc(name)}</h2>')
        if plots:
            parts.append(_figure(history_figure(p, marked), f"{name}: nightly values and findings"))
        parts.append(_findings_table(found, unit))
    parts.append("</body></html>")
    return "\n".join(parts)
