"""``hilbench report``: one self-contained HTML file that answers "which device?".

For each model, the targets it ran on are ranked: first those whose p99 meets the
deadline (``--deadline-ms``, default 33 ms = 30 fps), then by p99. Each row has
p50 and p99 with their 95% confidence intervals, throughput, which latency
budgets (11/16/33 ms) it meets at p99, energy per inference and inferences per
joule (where the target has power telemetry), price and inferences/s per dollar
(from the target file's ``price_usd``), accuracy measured on the device, the
stability verdict (VALID / INVALID with reasons), the peak RSS of the timed phase
and its growth since before the model was loaded (with the growth of unified memory on
Jetson and Macs, and a Mac's process footprint), the CPU cores the agent kept busy
during the timed phase (marked when more than the settings' thread count), and marks
for emulated and stand-in runs, which are never a real board's numbers. Stability under sustained
load comes from the run's derived figures (:mod:`harness.analysis.derive`): p50 of
the last window over the first, time to first throttle and its cause, temperature
rise; a configuration without a sustained phase says how to add one. The
environment of each run (agent, Python, OS, device, runtime version, CPU governor,
why the timed phase stopped and the precision of the median it reached, labels
such as ``git=...``) is listed at the end. Figures are embedded as base64 PNG: the
file needs no network and no other file to be read.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from typing import Any

import numpy as np
import pandas as pd

from harness import __version__
from harness.analysis.usage import asked_threads
from harness.errors import AnalysisError
from harness.safetext import safe_lines
from harness.store import Store
from harness.text import json_object, key_values

__all__ = ["build_report", "ranking_table"]

BUDGETS = ((33.3, "30 fps"), (16.7, "60 fps"), (11.1, "90 fps"))
#: What a configuration without a sustained phase is told to add to its plan.
SUSTAINED_HINT = "no sustained run: add [policy] sustained = { duration_s = 300 }"
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1500px;color:#222;
line-height:1.4;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}
.sub{color:#666;margin-top:0}table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.6rem 0 1rem}
th,td{border-bottom:1px solid #e3e3e3;padding:.3rem .4rem;text-align:right}
th{white-space:normal;vertical-align:bottom}td{white-space:nowrap}td.w{white-space:normal}
th{background:#f5f5f7;position:sticky;top:0}td:first-child,th:first-child,td.l,th.l{text-align:left}
tr.best td{background:#eefaf0;font-weight:600}.ok{color:#137333}.bad{color:#b3261e}.warn{color:#a05a00}
.tag{display:inline-block;font-size:.75rem;padding:0 .35rem;border-radius:.3rem;margin-left:.25rem;
background:#eee;color:#444}.tag.bad{background:#fde7e6}.tag.warn{background:#fff1d6}.tag.ok{background:#e6f4ea}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#666;font-size:.85rem}
.answer{background:#f2f7ff;border-left:4px solid #3b6fd8;padding:.6rem 1rem;margin:1rem 0}
small{color:#666}details{margin:.5rem 0}
"""


def _esc(v: Any) -> str:
    """Text for the page: HTML-escaped, and control and bidirectional characters (from a device, through the
    store) shown as visible escapes rather than reordering or hiding what the reader sees."""
    return html.escape(safe_lines(v, None))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return _esc(str(v))


_json = json_object


def _runtime(run: Any) -> tuple[Any, Any]:
    """(runtime version, CPU governor) from the run's hello, else the session's device facts."""
    hello = _json(run.get("device"))
    probe = _json(_json(run.get("device_facts")).get("probe"))
    version = governor = None
    for facts in (hello, probe):
        backends = facts.get("backends")  # a store may be anyone's: never trust its shapes
        backend = _json(backends.get(run.get("backend"))) if isinstance(backends, dict) else {}
        version = version or backend.get("version")
        governor = governor or facts.get("cpu_governor")
    return version, governor


def _sustained(run: Any) -> dict[str, Any]:
    s = _json(_json(run.get("derived")).get("sustained"))
    return {"sustained_s": s.get("duration_s"), "stability": s.get("stability"),
            "time_to_throttle_s": s.get("time_to_throttle_s"), "throttle_cause": s.get("throttle_cause"),
            "temp_rise_c": s.get("temp_rise_c")} if s else {}


def timed_stop_text(run: Any) -> str | None:
    """Why the timed phase stopped, with the precision of the median it reached when adaptive."""
    stop = run.get("timed_stop")
    timed = _json(_json(run.get("result")).get("timed"))
    achieved, wanted = timed.get("achieved_precision"), timed.get("precision")
    if isinstance(achieved, (int, float)) and isinstance(wanted, (int, float)):
        return f"{stop or '?'}: median ±{achieved * 100:.2g}% (asked ±{wanted * 100:.2g}%)"
    return str(stop) if isinstance(stop, str) else None


def ranking_table(store: Store, run_ids: list[str] | None = None, *, deadline_ms: float = 33.3) -> pd.DataFrame:
    """One row per (model, target, backend, settings): the latest successful run's figures, ranked per model
    (``rank`` 1 = the answer for that model). A configuration that its session ran in several agent processes
    (policy.processes) is one run here: its latency figures fold all of them
    (:func:`harness.analysis.processes.by_configuration`); energy, memory, stability and accuracy are its first
    successful process's (``run_id``; ``run_ids`` lists them all)."""
    from harness.analysis.accuracy import score_runs
    from harness.analysis.metrics import energy_per_inference
    from harness.analysis.processes import by_configuration

    summary = by_configuration(store.summary(run_ids))
    summary = summary[summary["status"] == "ok"].sort_values("started_at")
    if summary.empty:
        raise AnalysisError(f"{store.root}: no successful runs to report on")
    runs = store.runs().set_index("run_id")
    latest = summary.groupby(["model", "target", "backend", "settings"], sort=False).tail(1)
    energy = energy_per_inference(store, runs.loc[latest["run_id"]].reset_index())
    energy = energy.set_index("run_id") if not energy.empty else energy
    acc = score_runs(store, list(latest["run_id"]))
    acc = acc.set_index("run_id") if not acc.empty else acc
    rows = []
    for _, r in latest.iterrows():
        run = runs.loc[r["run_id"]]
        facts = _json(run["target_facts"]).get("facts") or {}
        verdict = _json(run["verdict"])
        price = facts.get("price_usd")
        price = float(price) if isinstance(price, (int, float)) else math.nan
        p50, p99 = r["p50_ns"] / 1e6, r["p99_ns"] / 1e6
        e_mj = float(energy.loc[r["run_id"], "energy_mj"]) if len(energy) and r["run_id"] in energy.index else math.nan
        thr = float(r["throughput_per_s"])
        version, governor = _runtime(run)
        sustained = _sustained(run)
        rows.append({
            "model": r["model"], "target": r["target"], "backend": r["backend"], "settings": r["settings"],
            "offload": r.get("offload") or "unknown",
            "run_id": r["run_id"], "session_id": r["session_id"], "processes": int(r["processes"]),
            "run_ids": r["run_ids"],
            "count": int(r["count"]) if pd.notna(r["count"]) else 0,  # an imported summary may print no count
            "p50_ms": p50, "p50_lo": r["p50_ci_low_ns"] / 1e6, "p50_hi": r["p50_ci_high_ns"] / 1e6,
            "p99_ms": p99, "p99_lo": r["p99_ci_low_ns"] / 1e6, "p99_hi": r["p99_ci_high_ns"] / 1e6,
            "fps": thr, "meets_deadline": bool(p99 <= deadline_ms),
            "budgets": [label for ms, label in BUDGETS if p99 <= ms],
            "energy_mj": e_mj, "inf_per_j": 1000.0 / e_mj if e_mj > 0 else math.nan,
            "price_usd": price, "fps_per_usd": thr / price if price > 0 else math.nan,
            "top1": float(acc.loc[r["run_id"], "top1"]) if len(acc) and r["run_id"] in acc.index else math.nan,
            "valid": bool(run["valid"]) if run["valid"] is not None and not pd.isna(run["valid"]) else False,
            "reasons": verdict.get("reasons") or [],
            "warnings": [w.get("message", "") for w in verdict.get("warnings") or []],
            "emulated": bool(run["emulated"]) if run["emulated"] is not None and not pd.isna(run["emulated"]) else False,
            "stand_in": bool(run["stand_in"]) if run["stand_in"] is not None and not pd.isna(run["stand_in"]) else False,
            "timed_stop": timed_stop_text(run), "cv": float(r["cv"]),
            "sustained_s": sustained.get("sustained_s", math.nan),
            "stability": _num(sustained.get("stability")),
            "time_to_throttle_s": _num(sustained.get("time_to_throttle_s")),
            "throttle_cause": sustained.get("throttle_cause"),
            "temp_rise_c": _num(sustained.get("temp_rise_c")),
            **_usage(run),
            "env": {**{k: run.get(k) for k in ("device_model", "cpu_model", "os", "machine", "python",
                                               "agent_version")},
                    "runtime_version": version, "cpu_governor": governor, "labels": _json(run.get("labels"))},
            "soc": facts.get("soc"),
            # an aggregate-only run (imported log, vendor runner): the tool's summary, no stability verdict
            "source": (_json(run.get("result")).get("source") or f"runner {run.get('runner')}")
            if run.get("aggregate_only") is not None and not pd.isna(run.get("aggregate_only"))
            and bool(run.get("aggregate_only")) else None,
        })
    table = pd.DataFrame(rows)
    # Real, valid runs that meet the deadline first; then by p99, then energy.
    table["_key"] = list(zip(~(table["valid"] & ~table["emulated"] & ~table["stand_in"]), ~table["meets_deadline"],
                             table["p99_ms"], table["energy_mj"].fillna(np.inf), strict=True))
    table = table.sort_values(["model", "_key"]).drop(columns="_key")
    table["rank"] = table.groupby("model").cumcount() + 1
    return table.reset_index(drop=True)


def _usage(run: Any) -> dict[str, Any]:
    """The run's memory and CPU figures (harness/analysis/usage.py) for the table: MiB and busy cores."""
    def num(col: str) -> float:  # numpy integers (an int64 column without nulls) are not int
        v = run.get(col)
        return float(v) if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) else math.nan

    def mib(col: str) -> float:
        return num(col) / 1024

    sources = _json(run.get("usage_sources"))
    return {"peak_rss_mb": mib("timed_peak_rss_kb"), "rss_growth_mb": mib("rss_growth_kb"),
            "unified_growth_mb": mib("unified_growth_kb"), "footprint_mb": mib("footprint_kb"),
            "busy_cores": num("cpu_busy_cores"), "threads": asked_threads(_json(run.get("settings"))),
            "usage_sources": ", ".join(f"{k}: {v}" for k, v in sources.items() if isinstance(v, str)),
            "usage_missing": "; ".join(f"{k}: {v}" for k, v in _json(run.get("usage_missing")).items())}


def _processes_note(r: Any) -> str:
    """Under the sample count: how many agent processes it folds (policy.processes), when more than one."""
    k = int(r.get("processes") or 1)
    return f"<br><small title='{_esc(str(r.get('run_ids') or ''))}'>{k} processes</small>" if k > 1 else ""


def _memory_cell(r: Any) -> str:
    if not math.isfinite(r["peak_rss_mb"]):
        return f"<small title='{_esc(r['usage_missing'])}'>–</small>"
    growth = f"<br><small>growth {r['rss_growth_mb']:+.1f}</small>" if math.isfinite(r["rss_growth_mb"]) else ""
    extra = []
    if math.isfinite(r["unified_growth_mb"]):
        extra.append(f"unified {r['unified_growth_mb']:+.1f}")
    if math.isfinite(r["footprint_mb"]):
        extra.append(f"footprint {r['footprint_mb']:.1f}")
    more = f"<br><small>{_esc(' · '.join(extra))}</small>" if extra else ""
    return f"<span title='{_esc(r['usage_sources'])}'>{r['peak_rss_mb']:.1f}</span>{growth}{more}"


def _cpu_cell(r: Any) -> str:
    if not math.isfinite(r["busy_cores"]):
        return "–"
    t = r["threads"]  # an int, numpy's, or NaN where the settings leave it to the runtime
    threads = int(t) if isinstance(t, (int, float, np.integer, np.floating)) and t == t else None
    if threads is not None and r["busy_cores"] > threads + 0.5:
        plural = "s" if threads > 1 else ""
        return f"{r['busy_cores']:.2f}<br><small class='warn'>asked {threads} thread{plural}</small>"
    return f"{r['busy_cores']:.2f}"


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _sustained_cell(r: Any) -> str:
    if not math.isfinite(_num(r.get("sustained_s"))):
        return "<small>none</small>"
    first = "–"
    if math.isfinite(r["stability"]):
        cls = "ok" if r["stability"] <= 1.05 else ("warn" if r["stability"] <= 1.15 else "bad")
        first = f"<span class='{cls}'>×{r['stability']:.2f}</span>"
    rest = [f"throttled at {r['time_to_throttle_s']:.0f} s ({_esc(str(r['throttle_cause']))})"
            if math.isfinite(r["time_to_throttle_s"]) else "no throttle"]
    if math.isfinite(r["temp_rise_c"]):
        rest.append(f"{r['temp_rise_c']:+.1f} °C")
    return f"{first}<br><small>{' · '.join(rest)}<br>over {r['sustained_s']:.0f} s</small>"


def _marks(r: Any) -> str:
    out = []
    if r["valid"]:
        out.append('<span class="tag ok">VALID</span>')
    elif isinstance(r.get("source"), str):  # an aggregate-only run (NaN in the column for the others)
        out.append(f'<span class="tag warn" title="{_esc(r["source"])}: the tool\'s own summary, no samples to judge">'
                   'AGGREGATE</span>')
    else:
        why = _esc("; ".join(r["reasons"]) or "see hilbench show")
        out.append(f'<span class="tag bad" title="{why}">INVALID</span>')
    if r["emulated"]:
        out.append('<span class="tag warn" title="not a real board: an emulator">EMULATED</span>')
    if r["stand_in"]:
        out.append('<span class="tag warn" title="synthetic stand-in backend: no model ran">STAND-IN</span>')
    if r["warnings"]:
        out.append(f'<span class="tag" title="{_esc(chr(10).join(r["warnings"]))}">'
                   f'{len(r["warnings"])} warn</span>')
    return "".join(out)


def _settings(text: Any) -> str:
    return key_values(_json(text))


def _model_section(model: str, t: pd.DataFrame, deadline_ms: float) -> str:
    best = t.iloc[0]
    real_ok = best["valid"] and not best["emulated"] and not best["stand_in"]
    if best["meets_deadline"] and real_ok:
        answer = (f"<b>{_esc(best['target'])}</b> ({_esc(best['backend'])}) meets the "
                  f"{deadline_ms:g} ms deadline at p99 with {best['p99_ms']:.3g} ms")
        extra = []
        if math.isfinite(best["energy_mj"]):
            extra.append(f"{best['energy_mj']:.3g} mJ per inference")
        if math.isfinite(best["fps_per_usd"]):
            extra.append(f"{best['fps_per_usd']:.3g} inferences/s per dollar")
        if extra:
            answer += " (" + ", ".join(extra) + ")"
        cheaper = t[t["meets_deadline"] & t["valid"] & (t["price_usd"] < best["price_usd"])]
        if not cheaper.empty:
            c = cheaper.sort_values("price_usd").iloc[0]
            answer += (f". Cheapest that also meets it: <b>{_esc(c['target'])}</b> "
                       f"(${c['price_usd']:.0f}, p99 {c['p99_ms']:.3g} ms)")
        answer += "."
    elif best["meets_deadline"]:
        answer = (f"Only runs that are INVALID, emulated or stand-ins meet {deadline_ms:g} ms: "
                  "measure on the real boards before deciding.")
    else:
        answer = f"No target meets {deadline_ms:g} ms at p99; the fastest is <b>{_esc(best['target'])}</b> " \
                 + (f"at {best['p99_ms']:.3g} ms." if math.isfinite(best["p99_ms"]) else "at a p99 its runner does not report.")
    head = ["#", "target", "backend", "p50 ms [95% CI]", "p99 ms [95% CI]", "inf/s", f"p99 ≤ {deadline_ms:g} ms",
            "budgets met", "energy mJ/inf", "inf/J", "price $", "inf/s per $", "top-1",
            "timed peak RSS MiB (growth)", "CPU busy cores",
            "sustained: p50 last/first window", "n", "verdict"]
    lines = [f"<h2>{_esc(model)}</h2>", f'<p class="answer">{answer}</p>', "<table><thead><tr>"]
    left = ("target", "backend", "verdict", "budgets met", "sustained: p50 last/first window")
    lines += [f'<th class="{"l" if h in left else ""}">{h}</th>' for h in head]
    lines.append("</tr></thead><tbody>")
    for _, r in t.iterrows():
        cls = ' class="best"' if r["rank"] == 1 and real_ok else ""
        settings = _settings(r["settings"])
        top1 = "–" if not math.isfinite(r["top1"]) else f"{r['top1'] * 100:.1f}%"
        lines.append(
            f"<tr{cls}><td>{r['rank']}</td><td class='l'>{_esc(r['target'])}"
            f"{'<br><small>' + _esc(str(r['soc'])) + '</small>' if r['soc'] else ''}</td>"
            f"<td class='l'>{_esc(r['backend'])}{'<br><small>' + _esc(settings) + '</small>' if settings else ''}"
            f"<br><small>offload {_esc(r['offload'])}</small></td>"
            f"<td>{_fmt(r['p50_ms'])} <small>[{_fmt(r['p50_lo'])}, {_fmt(r['p50_hi'])}]</small></td>"
            f"<td>{_fmt(r['p99_ms'])} <small>[{_fmt(r['p99_lo'])}, {_fmt(r['p99_hi'])}]</small></td>"
            f"<td>{_fmt(r['fps'])}</td>"
            f"<td class='{'ok' if r['meets_deadline'] else 'bad'}'>{'yes' if r['meets_deadline'] else 'no'}</td>"
            f"<td class='l w'>{', '.join(r['budgets']) or '–'}</td>"
            f"<td>{_fmt(r['energy_mj'])}</td><td>{_fmt(r['inf_per_j'])}</td><td>{_fmt(r['price_usd'])}</td>"
            f"<td>{_fmt(r['fps_per_usd'])}</td>"
            f"<td>{top1}</td>"
            f"<td>{_memory_cell(r)}</td><td>{_cpu_cell(r)}</td>"
            f"<td class='l'>{_sustained_cell(r)}</td>"
            f"<td>{r['count']}{_processes_note(r)}</td><td class='l'>{_marks(r)}</td></tr>")
    lines.append("</tbody></table>")
    without = [str(x) for x in t.loc[~t["sustained_s"].map(lambda v: math.isfinite(_num(v))), "target"]]
    if without:
        lines.append(f"<p><small>{_esc(', '.join(dict.fromkeys(without)))}: {_esc(SUSTAINED_HINT)} "
                     "to the plan to see whether the device holds its speed under long load (stability, time "
                     "to the first throttle, temperature rise).</small></p>")
    return "\n".join(lines)


def _env_section(table: pd.DataFrame) -> str:
    lines = ["<h2>Environment of each run</h2>",
             "<details open><summary>agent, Python, OS, device, runtime and CPU governor per run</summary>",
             "<table><thead><tr>" + "".join(f'<th class="l">{h}</th>' for h in (
                 "run", "model", "target", "device", "cpu", "os", "machine", "python", "agent", "runtime",
                 "CPU governor", "labels", "timed phase stopped", "cv"))
             + "</tr></thead><tbody>"]
    for _, r in table.iterrows():
        e = r["env"]
        runtime = f"{r['backend']} {e.get('runtime_version')}" if e.get("runtime_version") else None
        labels = key_values(e.get("labels")) or None
        cells = [r["run_id"], r["model"], r["target"], e.get("device_model"), e.get("cpu_model"), e.get("os"),
                 e.get("machine"), e.get("python"), e.get("agent_version"), runtime, e.get("cpu_governor"), labels,
                 r["timed_stop"]]
        lines.append("<tr>" + "".join(f"<td class='l'>{_fmt(c)}</td>" for c in cells)
                     + (f"<td>{r['cv'] * 100:.1f}%</td></tr>" if math.isfinite(r["cv"]) else "<td>–</td></tr>"))
    lines.append("</tbody></table></details>")
    return "\n".join(lines)


def _figure(fig: Any, caption: str) -> str:
    from harness.report.plots import to_bytes

    data = base64.b64encode(to_bytes(fig, "png")).decode("ascii")
    return (f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def build_report(store: Store, run_ids: list[str] | None = None, *, deadline_ms: float = 33.3,
                 title: str = "Which device?", plots: bool = True) -> str:
    """The whole report as one HTML string."""
    table = ranking_table(store, run_ids, deadline_ms=deadline_ms)
    sessions = sorted(table["session_id"].dropna().unique())
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>hilbench report: {_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="sub">hilbench {__version__} · {len(table)} configurations of {table["model"].nunique()} models on '
        f'{table["target"].nunique()} targets · sessions {_esc(", ".join(sessions))} · made {now}</p>',
        f"<p>Targets are ranked per model: valid runs on real boards that meet the {deadline_ms:g} ms deadline at "
        "p99 first, then by p99 latency, then energy. Intervals are distribution-free 95% confidence intervals; "
        "where a configuration ran in several agent processes (policy.processes), its latencies are the geometric "
        "mean of theirs and the interval is Student's t across them, which holds the noise between processes. "
        "Energy needs power telemetry on the target; price comes from the target file (<code>price_usd</code>).</p>",
    ]
    states = store.sessions() if sessions else None
    for row in [] if states is None else states[states["session_id"].isin(sessions)].to_dict("records"):
        if row["status"] in ("abandoned", "running"):  # its runs are what it stored before it stopped (or so far)
            parts.append(f'<p class="answer warn">Session {_esc(row["session_id"])} '
                         f'{"was abandoned" if row["status"] == "abandoned" else "is still running"} '
                         f'({_esc(row["status_detail"])}): this report holds only the runs it stored.</p>')
    if (table["emulated"] | table["stand_in"]).any():
        parts.append('<p class="answer warn">Some runs are EMULATED or STAND-INs: their latencies are not a real '
                     "board's and must not decide a purchase.</p>")
    for model, t in table.groupby("model", sort=True):
        parts.append(_model_section(str(model), t, deadline_ms))
    if plots:
        from harness.report import plots as P

        ids = list(table["run_id"])  # each configuration's first process: one distribution each
        every = [i for v in table["run_ids"] for i in str(v).split(",")]  # all its processes: folded figures
        parts.append("<h2>Figures</h2>")
        parts.append(_figure(P.targets_figure(P.target_table(store, every)), "Targets compared per model"))
        samples = store.samples(ids, phase="timed", columns=["run_id", "phase", "latency_ns"])
        runs = store.runs()
        parts.append(_figure(P.distribution_figure(runs[runs["run_id"].isin(ids)], samples),
                             "Latency distribution per run, with the 11/16/33 ms budgets"))
        if table["top1"].notna().any():
            parts.append(_figure(P.plot(store, "pareto", run_ids=every), "Latency vs accuracy measured on the device"))
        if table["energy_mj"].notna().any():
            parts.append(_figure(P.energy_figure(P.target_table(store, every)), "Energy per inference vs latency"))
    parts.append(_env_section(table))
    parts.append("</body></html>")
    return "\n".join(parts)
