"""The ``hilbench`` command. Each subcommand is a thin layer over library calls;
only this module prints and chooses exit codes:

0 everything ran, 1 user error (one line, no traceback without --debug),
2 command-line usage error, 3 some jobs failed (their errors are stored).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from harness import __version__
from harness.errors import ConfigError, HilbenchError
from harness.plan import QUICKSTART_PLAN, Job, expand_jobs, load_plan
from harness.session import Progress, run_jobs
from harness.store import open_store
from harness.targets import Target, load_targets, parse_target_spec

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_JOBS_FAILED = 0, 1, 2, 3


def _default_targets_dirs(explicit: list[str] | None) -> list[Path]:
    if explicit:
        return [Path(d) for d in explicit]
    env = os.environ.get("HILBENCH_TARGETS")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path("targets")]


class LineProgress(Progress):
    """One line per job on stderr; on a terminal the current job's line updates in place."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.total = 0
        self.done = 0
        self.width = 0

    def _write(self, text: str, final: bool) -> None:
        if self.quiet:
            return
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self.width = 0 if final else len(text)
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def session_started(self, session_id: str, jobs: list[Job], skipped: int) -> None:
        self.total = len(jobs)
        extra = f", {skipped} already stored (--resume)" if skipped else ""
        targets = sorted({j.target.name for j in jobs})
        self._write(f"session {session_id}: {len(jobs)} jobs on {', '.join(targets) or 'no targets'}{extra}", True)

    def job_started(self, job: Job, run_id: str) -> None:
        self._write(f"[{self.done + 1}/{self.total}] {job.describe()} ...", False)

    def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None:
        if event == "begin":
            self._write(f"[{self.done + 1}/{self.total}] {job.describe()} ... {phase}", False)

    def job_finished(self, job: Job, row: dict[str, Any]) -> None:
        self.done += 1
        if row["status"] == "ok":
            verdict = "VALID" if row.get("valid") else "INVALID"
            result = row.get("result") or {}
            timed = result.get("timed") or {}
            count = timed.get("count", 0)
            dur = (timed.get("duration_ns") or 0) / 1e9
            tail = f"ok: {count} timed runs in {dur:.1f} s, {verdict}"
            if row.get("stand_in"):
                tail += " (synthetic stand-in)"
        else:
            tail = f"FAILED ({row['error_category']}): {row['error_message']}"
        self._write(f"[{self.done}/{self.total}] {job.describe()}: {tail}", True)


def _parse_labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--label {item}: expected KEY=VALUE")
        labels[key.strip()] = value
    return labels


def _resolve_targets(args: argparse.Namespace) -> tuple[dict[str, Target], list[Target]]:
    known = load_targets(_default_targets_dirs(args.targets_dir))
    return known, _targets_from_specs(args.target or [], known, args, "--target")


def _targets_from_specs(specs: list[str], known: dict[str, Target], args: argparse.Namespace,
                        where: str) -> list[Target]:
    """Targets named by file name, ``local`` or ``ssh://user@host[:port]``."""
    chosen: list[Target] = []
    for spec in specs:
        if spec in known:
            chosen.append(known[spec])
        elif spec.startswith("ssh://"):
            chosen.append(parse_target_spec(spec, identity=args.identity, known_hosts=args.known_hosts))
        else:
            raise ConfigError(f"{where} {spec}: unknown target (known: {', '.join(sorted(known))}; or ssh://user@host[:port])")
    return chosen


def cmd_run(args: argparse.Namespace) -> int:
    plan_path = Path(args.plan) if args.plan else QUICKSTART_PLAN
    plan = load_plan(plan_path)
    known, chosen = _resolve_targets(args)
    jobs = expand_jobs(plan, known, chosen or None)
    store = open_store(args.store)
    progress = LineProgress(sys.stderr, quiet=args.quiet)
    result = run_jobs(jobs, store, plan=plan, labels=_parse_labels(args.label or []), progress=progress,
                      resume=args.resume, argv=sys.argv[1:])
    out = sys.stdout
    if result.runs:
        summary = store.summary([r["run_id"] for r in result.runs])
        out.write(format_summary(summary, "table") + "\n")
    failed = result.failed
    out.write(f"session {result.session_id}: {len(result.runs) - len(failed)} ok, {len(failed)} failed"
              f"{', interrupted' if result.interrupted else ''}; results in {store.root}\n")
    if result.interrupted:
        return 130
    return EXIT_JOBS_FAILED if failed else EXIT_OK


def _fmt_settings(text: Any) -> str:
    try:
        settings = json.loads(text) if isinstance(text, str) else (text or {})
    except ValueError:
        return str(text)
    return " ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def format_summary(summary: Any, fmt: str) -> str:
    """The results table in ``table``, ``csv`` or ``json``."""
    import pandas as pd

    if fmt == "json":
        return summary.to_json(orient="records", date_format="iso")
    if fmt == "csv":
        return summary.to_csv(index=False).rstrip("\n")
    if summary.empty:
        return "(no runs stored)"
    rows = []
    for _, r in summary.iterrows():
        ok = r["status"] == "ok"
        try:
            precision = json.loads(r["model_tags"] or "{}").get("precision")
        except ValueError:
            precision = None
        verdict = ("VALID" if r["valid"] else "INVALID") if ok else "ERROR"
        if ok and r.get("warnings"):
            verdict += f" ({len(str(r['warnings']).split(','))} warn)"
        if ok and r.get("emulated"):
            verdict += " emulated"
        if ok and r.get("stand_in"):
            verdict += " stand-in"
        rows.append({
            "run": str(r["run_id"])[-6:],
            "model": r["model"] + (f" [{precision}]" if precision else ""),
            "target": r["target"],
            "backend": r["backend"],
            "settings": _fmt_settings(r["settings"]),
            "n": int(r["count"]) if ok and pd.notna(r.get("count")) else 0,
            "p50 ms": r["p50_ns"] / 1e6 if ok else float("nan"),
            "p99 ms": r["p99_ns"] / 1e6 if ok else float("nan"),
            "mean ms": r["mean_ns"] / 1e6 if ok else float("nan"),
            "cv %": r["cv"] * 100 if ok else float("nan"),
            "inf/s": r["throughput_per_s"] if ok else float("nan"),
            "verdict": verdict,
        })
    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")


def cmd_results(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    runs = store.runs()
    run_ids = None
    if args.session:
        sessions = runs["session_id"].dropna().unique().tolist()
        wanted = sessions[-1] if args.session == "last" and sessions else args.session
        run_ids = runs.loc[runs["session_id"].astype(str).str.startswith(wanted), "run_id"]
    summary = store.summary(run_ids)
    sys.stdout.write(format_summary(summary, args.format) + "\n")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    row = store.run(args.run_id)
    summary = store.summary([row["run_id"]])
    stats = summary.iloc[0].to_dict() if not summary.empty else {}
    out = sys.stdout
    out.write(f"run {row['run_id']} (session {row['session_id']})\n")
    out.write(f"  model     {row['model']}  {row['model_path']}  sha256 {str(row['model_sha256'])[:16]}\n")
    out.write(f"  target    {row['target']} ({row['transport']})  {row.get('device_model') or ''} {row.get('cpu_model') or ''}\n")
    out.write(f"  backend   {row['backend']}  {_fmt_settings(row['settings'])}\n")
    if row.get("effective_settings"):
        out.write(f"  effective {_fmt_settings(row['effective_settings'])}\n")
    out.write(f"  python    {row.get('python')}  agent {row.get('agent_version')}  os {row.get('os')}  {row.get('machine')}\n")
    if row.get("emulated"):
        out.write(f"  EMULATED  {row.get('emulation')}: latencies are not a real board's\n")
    if row.get("stand_in"):
        out.write("  STAND-IN  synthetic backend: no model ran; latencies are made up by the job\n")
    if row["status"] != "ok":
        out.write(f"  status    ERROR ({row['error_category']}): {row['error_message']}\n")
        if row.get("stderr_tail"):
            out.write("  stderr (tail):\n" + "".join(f"    {line}\n" for line in str(row["stderr_tail"]).splitlines()[-15:]))
        return EXIT_OK
    if row.get("runner"):
        out.write(f"  runner    {row['runner']} on the device"
                  + ("  (aggregate-only: the runner reports no per-iteration samples)" if row.get("aggregate_only") else "")
                  + "\n")
    out.write(f"  load      {_ms(row.get('load_ns'))}   first inference {_ms(row.get('first_ns'))}\n")
    out.write(f"  warm-up   {_count(row.get('warmup_count'))} runs, {_s(row.get('warmup_ns'))} ({row.get('warmup_stop') or '-'})\n")
    out.write(f"  timed     {_count(row.get('timed_count'))} runs, {_s(row.get('timed_ns'))} ({row.get('timed_stop') or '-'})\n")
    if row.get("rate_hz"):
        out.write(f"  paced     {row['rate_hz']:g} fps: {row['deadline_misses']} deadline misses, {row['dropped_frames']} dropped frames\n")
    if stats:
        out.write("  latency   " + "  ".join(
            f"{k}={stats[k + '_ns'] / 1e6:.3f}" for k in ("min", "p50", "p90", "p95", "p99", "p999", "max")
            if k + "_ns" in stats and stats[k + "_ns"] == stats[k + "_ns"]) + " ms\n")
        out.write(f"  median CI [{stats['p50_ci_low_ns'] / 1e6:.3f}, {stats['p50_ci_high_ns'] / 1e6:.3f}] ms (95%)"
                  f"   cv {stats['cv'] * 100:.2f}%   {stats['throughput_per_s']:.1f} inf/s\n")
    if row.get("hwm_kb"):
        out.write(f"  memory    peak RSS {row['hwm_kb'] / 1024:.1f} MiB (before load {(row.get('rss_before_load_kb') or 0) / 1024:.1f} MiB)\n")
    if isinstance(row.get("derived"), dict):
        from harness.telemetry_derive import format_derived

        out.writelines(f"  {line}\n" for line in format_derived(row["derived"]))
    verdict = row.get("verdict") or {}
    out.write(f"  verdict   {'VALID' if row.get('valid') else 'INVALID'}\n")
    for reason in verdict.get("reasons", []):
        out.write(f"    invalid: {reason}\n")
    for w in verdict.get("warnings", []):
        out.write(f"    warning: {w.get('message')}\n      remedy: {w.get('remedy')}\n")
    labels = row.get("labels") or {}
    if labels:
        out.write("  labels    " + " ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "\n")
    return EXIT_OK


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _ms(ns: Any) -> str:
    return "-" if _missing(ns) else f"{ns / 1e6:.3f} ms"


def _s(ns: Any) -> str:
    return "-" if _missing(ns) else f"{ns / 1e9:.2f} s"


def _count(n: Any) -> str:
    return "-" if _missing(n) else str(int(n))


def cmd_targets(args: argparse.Namespace) -> int:
    targets = load_targets(_default_targets_dirs(args.targets_dir))
    for t in sorted(targets.values(), key=lambda t: t.name):
        where = t.host or ""
        if t.user:
            where = f"{t.user}@{where}"
        if t.port:
            where += f":{t.port}"
        facts = ", ".join(f"{k}={v}" for k, v in t.facts.items() if k in ("soc", "accelerator", "tops", "price_usd"))
        sys.stdout.write(f"{t.name:24} {t.transport:6} {where:28} {facts}\n")
    sys.stdout.write(f"{len(targets)} targets valid\n")
    return EXIT_OK


def cmd_telemetry_parse(args: argparse.Namespace) -> int:
    from harness.telemetry import parse_file

    for reading in parse_file(Path(args.file), args.kind):
        sys.stdout.write(json.dumps(reading, sort_keys=True) + "\n")
    return EXIT_OK


def _write_output(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise HilbenchError(f"--output {output}: cannot write ({exc.strerror or exc})") from exc
    else:
        sys.stdout.write(text + "\n")


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import compare, default_selections, format_comparison, select_runs

    store = open_store(args.store)
    if len(args.selection) == 1:
        raise ConfigError("compare: give both BASELINE and CANDIDATE, or neither (the last two sessions of a plan)")
    runs = store.runs()
    if args.selection:
        base, cand = select_runs(runs, args.selection[0]), select_runs(runs, args.selection[1])
    else:
        base, cand = default_selections(store, runs)
    from harness.compare import METRICS

    result = compare(store, base, cand, alpha=args.alpha, min_change=args.min_change / 100.0, runs=runs,
                     metrics=tuple(args.metric) if args.metric else tuple(METRICS))
    if args.output:
        _write_output(format_comparison(result, args.format), args.output)
        if args.format != "table":
            sys.stdout.write(format_comparison(result, "table") + "\n")
    else:
        _write_output(format_comparison(result, args.format), None)
    return 1 if result.regressions else EXIT_OK


def _session_run_ids(store: Any, session: str | None) -> list[str] | None:
    """Run ids of ``--session`` (id, prefix or 'last'); None for every run."""
    if not session:
        return None
    runs = store.runs()
    sessions = runs["session_id"].dropna().unique().tolist()
    wanted = sessions[-1] if session == "last" and sessions else session
    ids = runs.loc[runs["session_id"].astype(str).str.startswith(wanted), "run_id"].tolist()
    if not ids:
        raise ConfigError(f"--session {session}: no such session in {store.root}")
    return ids


def cmd_accuracy(args: argparse.Namespace) -> int:
    from harness.accuracy import score_runs

    store = open_store(args.store)
    scores = score_runs(store, _session_run_ids(store, args.session))
    if args.format == "json":
        sys.stdout.write(scores.to_json(orient="records") + "\n")
        return EXIT_OK
    if scores.empty:
        sys.stdout.write("(no accuracy stored: give a model [models.eval] in the plan)\n")
        return EXIT_OK
    view = scores[["run_id", "model", "target", "backend", "eval_count", "top1", "top5", "reference", "agreement",
                   "output_error"]].copy()
    view["run_id"] = view["run_id"].str[-6:]
    sys.stdout.write(view.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}") + "\n")
    return EXIT_OK


def cmd_variants(args: argparse.Namespace) -> int:
    from harness.variants import make_variants, plan_snippet

    model = Path(args.model)
    out_dir = Path(args.out) if args.out else model.parent
    kinds = tuple(args.only) if args.only else ("fp16", "int8")
    made = make_variants(model, calibration=Path(args.calibration) if args.calibration else None, out_dir=out_dir,
                         kinds=kinds)
    snippet = plan_snippet(model, made, relative_to=out_dir, eval_data=Path(args.eval) if args.eval else None)
    plan_path = out_dir / "variants.toml"
    _write_output(snippet, str(plan_path))
    for v in made:
        sys.stdout.write(f"{v.precision:5} {v.path}  {v.size_bytes / 1024:.1f} KiB  ({v.note})\n")
    sys.stdout.write(f"plan: {plan_path} (run it: hilbench run {plan_path})\n")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from harness.plots import plot, save

    store = open_store(args.store)
    run_id = store.run(args.run)["run_id"] if args.run else None
    fig = plot(store, args.kind, run_ids=_session_run_ids(store, args.session), run_id=run_id, metric=args.metric)
    sys.stdout.write(f"{save(fig, args.output)}\n")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from harness.history import format_history, history

    store = open_store(args.store)
    points, changes = history(store, tuple(args.metric or ("p50", "p99")), min_magnitude=args.min_change / 100.0,
                              min_persist=args.persist, max_pvalue=args.max_pvalue)
    _write_output(format_history(points, changes, args.format, show_all=args.all), args.output)
    if args.plot:
        from harness.plots import save, trend_figure

        flagged = changes[changes["status"] == "regression"] if not changes.empty else changes
        series = set(flagged["series"]) if not flagged.empty else set(points["series"].unique()[:6])
        fig = trend_figure(points[points["series"].isin(series)], changes[changes["series"].isin(series)]
                           if not changes.empty else changes, title="Nightly history")
        save(fig, args.plot)
    regressed = not changes.empty and (changes["status"] == "regression").any()
    return 1 if regressed and args.fail else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import build_report

    store = open_store(args.store)
    text = build_report(store, _session_run_ids(store, args.session), deadline_ms=args.deadline_ms,
                        title=args.title, plots=not args.no_plots)
    _write_output(text, args.output)
    sys.stdout.write(f"{args.output}\n")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check targets before measuring: one line per check with its fix; exit status 1 when a check fails."""
    from harness.doctor import doctor, format_checks

    known = load_targets(_default_targets_dirs(args.targets_dir))
    chosen = _targets_from_specs(args.target or sorted(known), known, args, "doctor")
    failed = False
    for target in chosen:
        checks = doctor(target)
        sys.stdout.write(format_checks(target, checks) + "\n")
        failed = failed or any(c.status == "fail" for c in checks)
    return EXIT_USER if failed else EXIT_OK


def _analysis_parsers(sub: Any, store_arg: Any) -> None:
    """Subcommands that read the store: compare, history, plot, report, variants."""
    c = sub.add_parser("compare", help="did the candidate get slower? (exit status 1 on a regression)")
    c.add_argument("selection", nargs="*", metavar="BASELINE CANDIDATE",
                   help="session id or prefix, run ids (a,b), a date YYYY-MM-DD, KEY=VALUE label or label value; "
                        "none: the last two sessions of the same plan")
    c.add_argument("--format", choices=("table", "markdown", "json", "junit"), default="table")
    c.add_argument("--output", help="write the report in --format to this file (the table still goes to stdout)")
    c.add_argument("--alpha", type=float, default=0.01, help="significance after Benjamini-Hochberg (default 0.01)")
    c.add_argument("--min-change", type=float, default=2.0, help="smallest slowdown that counts, in %% (default 2)")
    c.add_argument("--metric", action="append", choices=("p50", "p99", "peak_memory", "energy_per_inference"),
                   help="only these metrics (repeatable; default all that are stored)")
    store_arg(c)
    c.set_defaults(func=cmd_compare)

    a = sub.add_parser("accuracy", help="top-1/top-5 and fidelity measured on the device ([models.eval])")
    a.add_argument("--session", help="only this session id (or prefix, or 'last')")
    a.add_argument("--format", choices=("table", "json"), default="table")
    store_arg(a)
    a.set_defaults(func=cmd_accuracy)

    v = sub.add_parser("variants", help="write FP16 and INT8 (static, calibrated) variants of an ONNX model")
    v.add_argument("model", help="the FP32 model (.onnx)")
    v.add_argument("--calibration", help="calibration inputs (.npz, samples on the first axis) for INT8")
    v.add_argument("--out", help="output folder (default: beside the model)")
    v.add_argument("--eval", help="evaluation set (.npz with x, y) to put in the plan snippet")
    v.add_argument("--only", action="append", choices=("fp16", "int8"), help="only this variant (repeatable)")
    v.set_defaults(func=cmd_variants)

    pl = sub.add_parser("plot", help="a figure (PNG or SVG): pareto, distribution, timeline, targets, energy, trend")
    pl.add_argument("kind", choices=("pareto", "distribution", "timeline", "targets", "energy", "trend"))
    pl.add_argument("--output", required=True, help="the file to write (.png or .svg)")
    pl.add_argument("--session", help="only this session id (or prefix, or 'last'; default: every run)")
    pl.add_argument("--run", help="the run of a timeline (default: the latest)")
    pl.add_argument("--metric", choices=("p50", "p99"), default="p50", help="latency statistic (pareto, trend)")
    store_arg(pl)
    pl.set_defaults(func=cmd_plot)

    h = sub.add_parser("history", help="nightly points and change points (Apache Otava); flags persisting rises")
    h.add_argument("--metric", action="append", choices=("p50", "p99", "peak_memory", "energy_per_inference"),
                   help="metrics to follow (repeatable; default p50 and p99)")
    h.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    h.add_argument("--output", help="write the report to this file instead of stdout")
    h.add_argument("--all", action="store_true", help="list every change point, not only rises")
    h.add_argument("--min-change", type=float, default=2.0, help="smallest change that counts, in %% (default 2)")
    h.add_argument("--persist", type=int, default=3, help="nights a rise must hold to be a regression (default 3)")
    h.add_argument("--max-pvalue", type=float, default=0.001, help="detector significance (default 0.001)")
    h.add_argument("--plot", help="also draw the flagged series (PNG or SVG)")
    h.add_argument("--fail", action="store_true", help="exit status 1 when a regression is flagged")
    store_arg(h)
    h.set_defaults(func=cmd_history)

    rp = sub.add_parser("report", help="one self-contained HTML file that ranks the targets for each model")
    rp.add_argument("--output", default="report.html", help="the HTML file to write (default report.html)")
    rp.add_argument("--session", help="only this session id (or prefix, or 'last'; default: the latest run of each "
                                      "configuration)")
    rp.add_argument("--deadline-ms", type=float, default=33.3, help="the p99 deadline (default 33.3 ms = 30 fps)")
    rp.add_argument("--title", default="Which device?")
    rp.add_argument("--no-plots", action="store_true", help="tables only")
    store_arg(rp)
    rp.set_defaults(func=cmd_report)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hilbench", description="Hardware-in-the-loop benchmarking of edge ML inference.")
    p.add_argument("--version", action="version", version=f"hilbench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    def store_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--store", default=os.environ.get("HILBENCH_STORE", "results"), help="results folder (default: results)")

    def targets_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--targets-dir", action="append", help="folder of target files (default: ./targets)")

    r = sub.add_parser("run", help="run a plan (default: the bundled quick start on this machine)")
    r.add_argument("plan", nargs="?", help="plan file (TOML)")
    r.add_argument("--target", action="append", help="run on this target instead of the plan's (name, local, ssh://user@host[:port])")
    r.add_argument("--identity", help="private key file for ssh:// targets")
    r.add_argument("--known-hosts", help="known_hosts file for ssh:// targets")
    r.add_argument("--label", action="append", help="KEY=VALUE stored with every run (e.g. build=abc123)")
    r.add_argument("--resume", action="store_true", help="skip jobs this store already holds a successful run of")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    store_arg(r)
    targets_arg(r)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("results", help="the summary table of stored runs")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.add_argument("--session", help="only this session id (or prefix, or 'last')")
    store_arg(s)
    s.set_defaults(func=cmd_results)

    sh = sub.add_parser("show", help="everything about one run")
    sh.add_argument("run_id", help="run id (a unique prefix is enough)")
    store_arg(sh)
    sh.set_defaults(func=cmd_show)

    t = sub.add_parser("targets", help="list and validate target files")
    targets_arg(t)
    t.set_defaults(func=cmd_targets)

    d = sub.add_parser("doctor", help="check targets before measuring (reachability, login, Python, runtimes, ...)")
    d.add_argument("target", nargs="*", help="target name, local or ssh://user@host[:port] (default: every target)")
    d.add_argument("--identity", help="private key file for ssh:// targets")
    d.add_argument("--known-hosts", help="known_hosts file for ssh:// targets")
    targets_arg(d)
    d.set_defaults(func=cmd_doctor)

    tel = sub.add_parser("telemetry", help="telemetry tools")
    tel_sub = tel.add_subparsers(dest="telemetry_command", required=True)
    tp = tel_sub.add_parser("parse", help="turn a recorded sensor output into readings (JSON lines)")
    tp.add_argument("--kind", help="format of FILE (default: recognise it)")
    tp.add_argument("file")
    tp.set_defaults(func=cmd_telemetry_parse)
    _analysis_parsers(sub, store_arg)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except HilbenchError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"hilbench: error: {exc}\n")
        return EXIT_USER
    except KeyboardInterrupt:
        sys.stderr.write("hilbench: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
