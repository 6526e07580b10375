"""The ``hilbench`` subcommands, one ``cmd_*`` function each (``args`` -> library calls -> output and an
exit status from :mod:`harness.cli.exits`), and the text of ``results`` and ``show``."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

from harness.cli.exits import (
    EXIT_INCONCLUSIVE,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_USER,
    exit_for_signal,
)
from harness.cli.progress import LINE_LIMIT, NoteHandler, make_progress
from harness.cli.store_cmd import session_notes
from harness.config.plan import QUICKSTART_PLAN, expand_jobs, load_plan
from harness.config.targets import Target, load_targets, parse_target_spec
from harness.errors import AnalysisError, ConfigError, OutputError, StoreError
from harness.run.session import run_jobs
from harness.safetext import safe, safe_lines
from harness.storage import is_store_url
from harness.store import MARKER, Store, open_store
from harness.text import key_values

__all__ = ["cmd_run", "cmd_results", "cmd_show", "cmd_targets", "cmd_telemetry_parse", "cmd_compare", "cmd_accuracy",
           "cmd_variants", "cmd_plot", "cmd_history", "cmd_report", "cmd_doctor", "format_summary"]


def _default_targets_dirs(explicit: list[str] | None) -> list[Path]:
    """``--targets-dir`` (repeatable), else ``$HILBENCH_TARGETS`` (a path list; empty is unset), else ./targets.
    A folder named on the command line or in the variable must exist; ./targets may not."""
    if explicit:
        named, where = list(explicit), "--targets-dir"
    else:
        env = os.environ.get("HILBENCH_TARGETS")
        if not env:
            return [Path("targets")]
        named, where = [p for p in env.split(os.pathsep) if p], "HILBENCH_TARGETS"
    for d in named:
        if not d:
            raise ConfigError(f"{where} is empty: name a folder of target files")
        if not Path(d).exists():
            raise ConfigError(f"{where} {d}: no such folder")
        if not Path(d).is_dir():
            raise ConfigError(f"{where} {d}: is a file, not a folder of target files")
    return [Path(d) for d in named]


def _store_path(args: argparse.Namespace, *, reading: bool) -> Path | str:
    """The results folder of ``--store`` (or ``$HILBENCH_STORE``), checked: never empty (that would be the current
    folder), never a file; a reader's must exist (a writer creates it). An ``s3://`` URL is returned as it is
    (:func:`_read_store` checks that a store is there)."""
    path = args.store
    where = "--store" if getattr(args, "store_given", False) or "HILBENCH_STORE" not in os.environ \
        else "HILBENCH_STORE"
    if not str(path).strip():
        raise StoreError(f"{where} is empty: name the results folder (default: results)")
    if is_store_url(path):
        return str(path)
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{where} {path}: is a file, not a results folder")
    if reading and not folder.exists():
        raise StoreError(f"{where} {path}: no such folder: no results are stored there "
                         f"(`hilbench run --store {path}` makes it)")
    return folder


def _read_store(args: argparse.Namespace) -> Store:
    """The store a reading command (results, show, compare, ...) opens: it must exist."""
    path = _store_path(args, reading=True)
    store = open_store(path)
    if is_store_url(path) and not store.location.exists():
        raise StoreError(f"--store {store.root}: no results are stored there (no {MARKER}; "
                         f"`hilbench run --store URL` makes it)")
    return store


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
            chosen.append(parse_target_spec(spec, identity=args.identity, known_hosts=args.known_hosts,
                                            accept_new_host_keys=args.accept_new_host_keys))
        else:
            raise ConfigError(f"{where} {spec}: unknown target (known: {', '.join(sorted(known))}; or ssh://user@host[:port])")
    return chosen


def _preflight(jobs: list[Any]) -> None:
    """What this host can check about the jobs' targets before anything runs (an SSH identity file, known_hosts):
    a bad file is a one-line error and exit 1, not a transport failure stored for every job."""
    from harness.transport import transport_class

    seen: set[int] = set()
    for job in jobs:
        if id(job.target) not in seen:
            seen.add(id(job.target))
            transport_class(job.target).preflight(job.target)


def cmd_run(args: argparse.Namespace) -> int:
    plan_path = Path(args.plan) if args.plan else QUICKSTART_PLAN
    plan = load_plan(plan_path)
    known, chosen = _resolve_targets(args)
    jobs = expand_jobs(plan, known, chosen or None)
    _preflight(jobs)
    store = open_store(_store_path(args, reading=False))
    labels = _parse_labels(args.label or [])
    progress = make_progress(sys.stderr, quiet=args.quiet)
    notes = logging.getLogger("hilbench")
    handler = None if args.debug else NoteHandler(progress)
    if handler is not None:
        notes.addHandler(handler)
        notes.propagate = False
    try:
        result = run_jobs(jobs, store, plan=plan, labels=labels, progress=progress, resume=args.resume,
                          argv=sys.argv[1:], no_wait=args.no_wait)
    finally:
        if handler is not None:
            notes.removeHandler(handler)
            notes.propagate = True
        progress.close()
    failed = result.failed
    try:
        out = sys.stdout
        if result.runs:
            summary = store.summary([r["run_id"] for r in result.runs])
            out.write(format_summary(summary, "table") + "\n")
        sent = sum(int(r.get("bytes_sent") or 0) for r in result.runs)
        # A job a second Ctrl-C did not wait for is being stored as interrupted: it counts as failed.
        out.write(f"session {result.session_id}: {len(result.runs) - len(failed)} ok, "
                  f"{len(failed) + result.unfinished} failed{', interrupted' if result.interrupted else ''}; "
                  f"{_fmt_bytes(sent)} sent to devices; results in {store.root}\n")
        if result.signal not in (None, signal.SIGINT):
            sys.stderr.write(f"hilbench: stopped by {signal.Signals(result.signal).name}: the jobs in flight are "
                             "stored as interrupted and their agents stopped; `hilbench run --resume` runs what "
                             "is missing\n")
    except OSError:
        if not result.interrupted:
            raise
        # SIGHUP: the terminal is gone; what the run did is stored, and the exit status says why it stopped.
    if result.interrupted:
        return exit_for_signal(result.signal)
    return EXIT_JOBS_FAILED if failed else EXIT_OK


def _fmt_bytes(n: Any) -> str:
    if _missing(n):
        return "-"
    n = int(n)
    if n < 1000:
        return f"{n} B"
    return f"{n / 1e3:.1f} kB" if n < 1_000_000 else f"{n / 1e6:.1f} MB"


_fmt_settings = key_values


def format_summary(summary: Any, fmt: str, *, per_process: bool = False) -> str:
    """The results table in ``table``, ``csv`` or ``json``. CSV and JSON are one row per run (data); the table
    is one row per configuration of a session, its agent processes (policy.processes) folded into one row
    (:func:`harness.analysis.processes.by_configuration`) unless ``per_process``."""
    import pandas as pd

    if fmt == "json":
        return summary.to_json(orient="records", date_format="iso")
    if fmt == "csv":
        return summary.to_csv(index=False).rstrip("\n")
    if summary.empty:
        return "(no runs stored)"
    if not per_process:
        from harness.analysis.processes import by_configuration

        summary = by_configuration(summary)
    rows = []
    for _, r in summary.iterrows():
        ok = r["status"] == "ok"
        k = int(r["processes"]) if "processes" in r and pd.notna(r["processes"]) else 1
        failed = int(r["failed"]) if "failed" in r and pd.notna(r["failed"]) else 0
        if per_process:  # one run of k: which process it was
            label = f" p{int(r['process'])}/{k}" if k > 1 and pd.notna(r.get("process")) else ""
            k, failed = 1, 0
        else:
            label = f" x{k}" if k > 1 else ''
        try:
            precision = json.loads(r["model_tags"] or "{}").get("precision")
        except ValueError:
            precision = None
        verdict = ("AGGREGATE" if r.get("aggregate_only") is True and pd.isna(r["valid"])
                   else "VALID" if r["valid"] else "INVALID") if ok else "ERROR"
        if ok and r.get("warnings"):
            verdict += f" ({len(str(r['warnings']).split(','))} warn)"
        if ok and r.get("emulated"):
            verdict += " emulated"
        if ok and r.get("stand_in"):
            verdict += " stand-in"
        if ok and failed:
            verdict += f" ({failed} of {k} failed)"
        rows.append({
            # one configuration's k processes: the first one's id, then how many (`show` takes each id)
            "run": str(r["run_id"])[-6:] + label,
            "model": r["model"] + (f" [{precision}]" if precision else ""),
            "target": r["target"],
            "backend": r["backend"],
            "settings": _fmt_settings(r["settings"]),
            "offload": r.get("offload") or "unknown",
            "n": int(r["count"]) if ok and pd.notna(r.get("count")) else 0,
            "p50 ms": r["p50_ns"] / 1e6 if ok else float("nan"),
            "p99 ms": r["p99_ns"] / 1e6 if ok else float("nan"),
            "mean ms": r["mean_ns"] / 1e6 if ok else float("nan"),
            "cv %": r["cv"] * 100 if ok else float("nan"),
            "inf/s": r["throughput_per_s"] if ok else float("nan"),
            "verdict": verdict,
        })
    return _safe_frame(pd.DataFrame(rows)).to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-")


def _safe_frame(frame: Any, limit: int = 200) -> Any:
    """``frame`` with every text cell made safe to print (:func:`harness.safetext.safe`): the cells of a table
    printed on a terminal come from the store, which holds what devices sent."""
    return frame.map(lambda v: safe(v, limit) if isinstance(v, str) else v)


def cmd_results(args: argparse.Namespace) -> int:
    store = _read_store(args)
    summary = store.summary(_session_run_ids(store, args.session))
    text = format_summary(summary, args.format, per_process=args.per_process)
    if args.format == "csv" and sys.stdout.isatty():
        # CSV is data: into a file or a pipe it goes as stored. On a terminal its cells are shown safe.
        text = safe_lines(text, None)
    sys.stdout.write(text + "\n")
    for note in session_notes(store, summary["session_id"].unique()):  # running or abandoned: on stderr
        sys.stderr.write(note + "\n")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    store = _read_store(args)
    row = store.run(args.run_id)
    summary = store.summary([row["run_id"]])
    stats = summary.iloc[0].to_dict() if not summary.empty else {}
    # Every line goes through _print_lines: what the device sent (models, versions, error, stderr, sensors,
    # stop reasons) is shown with its control characters as visible escapes, each line one line.
    lines: list[str] = []
    out = _LineWriter(lines)
    sessions = store.sessions()
    session = sessions[sessions["session_id"] == row["session_id"]].to_dict("records")
    try:
        _show_run(out, row, stats)
        if session and session[0]["status"] in ("running", "abandoned", "interrupted"):
            detail = session[0]["status_detail"]
            lines.insert(1, f"  session   {session[0]['status']}" + (f": {detail}" if isinstance(detail, str) else ""))
        k = row.get("processes")
        if not _missing(k) and k and int(k) > 1 and not _missing(row.get("process")):
            # one of its configuration's agent processes (policy.processes): which, and the others' ids
            from harness.analysis.processes import by_configuration

            mine = by_configuration(store.summary(_session_run_ids(store, str(row["session_id"]))))
            mine = mine[mine["run_ids"].str.split(",").map(lambda ids: row["run_id"] in ids)]
            others = [r for r in (mine["run_ids"].iloc[0].split(",") if len(mine) else []) if r != row["run_id"]]
            lines.insert(1, f"  process   {int(row['process'])} of {int(k)} (policy.processes)"
                            + (f"; the others: {', '.join(others)}" if others else ""))
    finally:
        _print_lines(lines)
    return EXIT_OK


class _LineWriter:
    """Collects ``write(text)`` calls as lines (for :func:`_print_lines`)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def write(self, text: str) -> None:
        """One line (its ending newline dropped): a newline inside it came from a device and is shown."""
        self.lines.append(text[:-1] if text.endswith("\n") else text)

    def writelines(self, texts: Any) -> None:
        for text in texts:
            self.write(text)


def _print_lines(lines: list[str]) -> None:
    """Lines on stdout, each made safe to print (a newline inside a device string is shown, not obeyed)."""
    sys.stdout.write("".join(safe(line, LINE_LIMIT) + "\n" for line in lines))


def _lock_text(lock: Any) -> str | None:
    """``show``'s line about the device lock: held (after how long a wait, for whom) or not got."""
    if not isinstance(lock, dict):
        return None
    from harness.agent.lock import describe_holder

    where = f" ({lock['path']})" if lock.get("path") else ""
    waited = lock.get("waited_s") or 0
    whom = describe_holder(lock.get("waited_for"), lock.get("held_s") if not lock.get("acquired") else None)
    if not lock.get("acquired"):
        return f"lock NOT got{where}: waited {waited:.1f} s for {whom}"
    if waited:
        return f"lock held{where}, after waiting {waited:.1f} s for {whom}"
    return f"lock held{where}, no wait"


def _offload_lines(value: Any) -> list[str]:
    """``show``'s lines about the offload verdict: the share, its source, the ops left on the CPU."""
    from harness.analysis.offload import from_column, label

    d = from_column(value)
    lines = [f"offload   {label(d)}" + (f"  ({d['source']})" if d["accelerator"] is not None and d["source"] else "")]
    extra = [f"{d['partitions']} partition{'s' if d['partitions'] != 1 else ''}" if d.get("partitions") else "",
             f"{d['nodes_cpu']} node{'s' if d['nodes_cpu'] != 1 else ''} on the CPU" if d.get("nodes_cpu")
             and d["accelerator"] != "cpu" else "",
             "precisions " + key_values(d["precisions"]) if d.get("precisions") else "",
             "units " + key_values(d["devices"]) if d.get("devices") else ""]
    if any(extra):
        lines.append("          " + "; ".join(x for x in extra if x))
    if d["cpu_ops"] and d["accelerator"] != "cpu":
        lines.append("          left on the CPU: " + ", ".join(d["cpu_ops"]))
    return lines


def _show_run(out: _LineWriter, row: dict[str, Any], stats: dict[str, Any]) -> None:
    out.write(f"run {row['run_id']} (session {row['session_id']})\n")
    model = [str(row["model"])] + [str(v) for v in (row.get("model_path"),) if not _missing(v) and v]
    if not _missing(row.get("model_sha256")) and row.get("model_sha256"):
        model.append(f"sha256 {str(row['model_sha256'])[:16]}")
    out.write(f"  model     {'  '.join(model)}\n")  # a stand-in without a model file has no path or hash
    out.write(f"  target    {row['target']} ({row['transport']})  {row.get('device_model') or ''} {row.get('cpu_model') or ''}\n")
    out.write(f"  backend   {row['backend']}  {_fmt_settings(row['settings'])}\n")
    if row.get("effective_settings"):
        out.write(f"  effective {_fmt_settings(row['effective_settings'])}\n")
    out.writelines(f"  {line}\n" for line in _offload_lines(row.get("offload")))
    facts = [f"{label}{row.get(key)}" for label, key in (("", "python"), ("agent ", "agent_version"), ("os ", "os"),
                                                        ("", "machine")) if not _missing(row.get(key)) and str(row.get(key))]
    if facts:  # a run that failed before the agent said hello knows none of them
        out.write(f"  python    {'  '.join(facts)}\n")
    if not _missing(row.get("bytes_sent")):
        out.write(f"  shipped   {_fmt_bytes(row['bytes_sent'])} ({int(row['bytes_sent'])} bytes) sent for this run "
                  "(0: the device's cache had the agent and files)\n")
    if not _missing(row.get("reconnects")) and int(row["reconnects"]) > 0:
        n = int(row["reconnects"])
        out.write(f"  network   the connection dropped {n} time{'s' if n != 1 else ''} during this run and was "
                  "restored\n")
    if row.get("emulated"):
        out.write(f"  EMULATED  {row.get('emulation')}: latencies are not a real board's\n")
    if row.get("stand_in"):
        out.write("  STAND-IN  synthetic backend: no model ran; latencies are made up by the job\n")
    lock_line = _lock_text(row.get("device_lock"))
    if lock_line:
        out.write(f"  device    {lock_line}\n")
    lab = row.get("lab")
    if isinstance(lab, dict) and lab.get("coordinator"):  # a labgrid place (docs/lab.md)
        out.write(f"  lab       place {lab.get('place') or '-'} on exporter {lab.get('exporter') or '-'} at "
                  f"{lab['coordinator']} (reservation {lab.get('reservation') or '-'})\n")
    if row["status"] != "ok":
        out.write(f"  status    ERROR ({row['error_category']}): {row['error_message']}\n")
        if row.get("stderr_tail"):
            out.write("  stderr (tail):")
            for line in str(row["stderr_tail"]).splitlines()[-15:]:
                out.lines.append(f"    {line}")
        return
    imported = (row.get("result") or {}).get("imported") if row.get("transport") == "import" else None
    if imported:
        out.write(f"  IMPORTED  {row['runner']} log {imported.get('file')} (sha256 {str(imported.get('sha256'))[:16]}):"
                  " the tool's own summary, no samples, no telemetry (hilbench import)\n")
    elif row.get("runner"):
        out.write(f"  runner    {row['runner']} on the device"
                  + ("  (aggregate-only: the runner reports no per-iteration samples)" if row.get("aggregate_only") else "")
                  + "\n")
    out.write(f"  load      {_ms(row.get('load_ns'))}   first inference {_ms(row.get('first_ns'))}\n")
    out.write(f"  warm-up   {_count(row.get('warmup_count'))} runs, {_s(row.get('warmup_ns'))} ({row.get('warmup_stop') or '-'})\n")
    from harness.report.html import timed_stop_text

    out.write(f"  timed     {_count(row.get('timed_count'))} runs, {_s(row.get('timed_ns'))} ({timed_stop_text(row) or '-'})\n")
    if row.get("rate_hz"):
        out.write(f"  paced     {row['rate_hz']:g} fps: {row['deadline_misses']} deadline misses, {row['dropped_frames']} dropped frames\n")
    if stats:
        out.write("  latency   " + "  ".join(
            f"{k}={stats[k + '_ns'] / 1e6:.3f}" for k in ("min", "p50", "p90", "p95", "p99", "p999", "max")
            if k + "_ns" in stats and stats[k + "_ns"] == stats[k + "_ns"]) + " ms\n")
        if not row.get("aggregate_only"):  # an aggregate-only run has no samples for a median CI
            out.write(f"  median CI [{stats['p50_ci_low_ns'] / 1e6:.3f}, {stats['p50_ci_high_ns'] / 1e6:.3f}] ms (95%)"
                      f"   cv {stats['cv'] * 100:.2f}%   {stats['throughput_per_s']:.1f} inf/s\n")
    from harness.analysis.usage import format_usage

    out.writelines(f"  {line}\n" for line in format_usage(row))
    if isinstance(row.get("derived"), dict):
        from harness.analysis.derive import format_derived

        # The memory line of older runs' derived figures; format_usage's lines say it for runs that have them.
        out.writelines(f"  {line}\n" for line in format_derived(row["derived"])
                       if not (row.get("usage_sources") and line.startswith("memory")))
    verdict = row.get("verdict") or {}
    out.write("  verdict   " + ("none (aggregate-only: no samples to judge)" if row.get("aggregate_only")
                                 and _missing(row.get("valid")) else "VALID" if row.get("valid") else "INVALID") + "\n")
    for reason in verdict.get("reasons", []):
        out.write(f"    invalid: {reason}\n")
    for w in verdict.get("warnings", []):
        out.lines += [f"    warning: {w.get('message')}", f"      remedy: {w.get('remedy')}"]
    labels = row.get("labels") or {}
    if labels:
        out.write("  labels    " + key_values(labels) + "\n")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _ms(ns: Any) -> str:
    return "-" if _missing(ns) else f"{ns / 1e6:.3f} ms"


def _s(ns: Any) -> str:
    return "-" if _missing(ns) else f"{ns / 1e9:.2f} s"


def _count(n: Any) -> str:
    return "-" if _missing(n) else str(int(n))


def cmd_targets(args: argparse.Namespace) -> int:
    errors: list[ConfigError] = []
    targets = load_targets(_default_targets_dirs(args.targets_dir), errors)
    for t in sorted(targets.values(), key=lambda t: t.name):
        where = t.host or ""
        if t.user:
            where = f"{t.user}@{where}"
        if t.port:
            where += f":{t.port}"
        if t.labgrid is not None:  # a labgrid place: what it asks the coordinator for
            where = t.labgrid.place or " ".join(f"{k}={v}" for k, v in t.labgrid.reserve)
        facts = ", ".join(f"{k}={v}" for k, v in t.facts.items() if k in ("soc", "accelerator", "tops", "price_usd"))
        sys.stdout.write(f"{t.name:24} {t.transport:6} {where:28} {facts}\n")
    sys.stdout.write(f"{len(targets)} targets valid\n")
    for exc in errors:
        sys.stderr.write(f"hilbench: error: {exc}\n")
    return EXIT_USER if errors else EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """``hilbench import LOGFILE``: a recorded runner log stored as an aggregate-only run (harness/run/importer.py)."""
    from harness.run.importer import import_log

    labels = _parse_labels(args.label or [])
    store = open_store(_store_path(args, reading=False))
    row = import_log(store, args.logfile, target=args.target, model=args.model, runner=args.runner, labels=labels)
    off = row["offload"]
    share = str(off.get("accelerator"))
    if off.get("nodes_total") and off.get("nodes_accelerated") is not None and off.get("accelerator") != "cpu":
        share = f"{off['nodes_accelerated']}/{off['nodes_total']} nodes on {off['accelerator']}"
    sys.stdout.write(safe(f"imported {row['run_id']}: {row['settings']['source']} {row['model']} on {row['target']} "
                          f"[{row['backend']}] (aggregate-only; offload: {share})", 400) + "\n")
    return EXIT_OK


def cmd_telemetry_parse(args: argparse.Namespace) -> int:
    from harness.analysis.telemetry import parse_file

    for reading in parse_file(Path(args.file), args.kind):
        sys.stdout.write(json.dumps(reading, sort_keys=True) + "\n")
    return EXIT_OK


def _write_output(text: str, output: str | None, *, display: bool = False) -> None:
    """``text`` into the file ``output``, else on stdout with every line made safe to print (device text shown,
    never obeyed; JSON is ASCII already). ``display``: a text meant to be read (a table, markdown) is made safe
    in the file too; data (JSON, JUnit XML, a plan) is written as it is."""
    if output:
        try:
            Path(output).write_text((safe_lines(text, None) if display else text) + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"--output {output}: cannot write ({exc.strerror or exc})") from exc
    else:
        sys.stdout.write(safe_lines(text, None) + "\n")


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.analysis.compare import compare, default_selections, format_comparison, select_runs

    if not math.isfinite(args.shift_floor) or not 0 <= args.shift_floor < 100:
        raise ConfigError(f"--shift-floor {args.shift_floor:g}: must be a percentage from 0 to below 100")
    if args.processes is not None and not args.run:
        raise ConfigError("--processes: only with --run (a plan's own runs take policy.processes)")
    pairing = None
    failed = 0
    if args.run:
        if len(args.selection) != 2:
            raise ConfigError("compare --run: give two plan files, PLAN_A (the baseline) and PLAN_B (the candidate)")
        measured = _measure_interleaved(args)
        if isinstance(measured, int):
            return measured
        store, base, cand, pairing, failed = measured
        runs = store.runs()
    else:
        store = _read_store(args)
        if len(args.selection) == 1:
            raise ConfigError("compare: give both BASELINE and CANDIDATE, or neither (the last two sessions of a plan)")
        runs = store.runs()
        if args.selection:
            base, cand = select_runs(runs, args.selection[0]), select_runs(runs, args.selection[1])
        else:
            base, cand = default_selections(store, runs)
    from harness.analysis.compare import METRICS

    result = compare(store, base, cand, alpha=args.alpha, min_change=args.min_change / 100.0, runs=runs,
                     metrics=tuple(args.metric) if args.metric else tuple(METRICS),
                     shift_floor=args.shift_floor / 100.0, pairing=pairing,
                     allow_offload_change=bool(getattr(args, "allow_offload_change", False)))
    if args.output:
        _write_output(format_comparison(result, args.format), args.output,
                      display=args.format in ("table", "markdown"))
        if args.format != "table":
            _write_output(format_comparison(result, "table"), None)
    else:
        _write_output(format_comparison(result, args.format), None)
    if result.regressions:
        return EXIT_REGRESSED
    if failed:
        sys.stderr.write(f"hilbench: {failed} job{'s' if failed != 1 else ''} of the interleaved session failed "
                         "(`hilbench show` has their errors): only the runs that finished were compared\n")
        return EXIT_JOBS_FAILED
    return EXIT_INCONCLUSIVE if result.undecided else EXIT_OK


def _measure_interleaved(args: argparse.Namespace) -> Any:
    """``compare --run PLAN_A PLAN_B``: both plans' jobs in one session, alternately (A1 B1 A2 B2 ... for each
    process), on the same devices. Returns (store, baseline, candidate, pairing, failed jobs), or the exit status
    of a session that was stopped."""
    from dataclasses import replace

    from harness.analysis.compare import DEFAULT_RUN_PROCESSES, Selection
    from harness.run.session import device_key

    plans = [load_plan(Path(p)) for p in args.selection]
    known, chosen = _resolve_targets(args)
    sides = [expand_jobs(replace(p, policy=replace(p.policy, processes=1)), known, chosen or None) for p in plans]
    if len(sides[0]) != len(sides[1]):
        raise ConfigError(f"compare --run: {args.selection[0]} expands to {len(sides[0])} jobs and {args.selection[1]} "
                          f"to {len(sides[1])}: job i of one is measured against job i of the other, so both need "
                          "as many (same models in the same order, one target)")
    for i, (a, b) in enumerate(zip(*sides, strict=True)):
        if device_key(a.target) != device_key(b.target):
            raise ConfigError(f"compare --run: job {i + 1} runs on {a.target.name} in {args.selection[0]} and on "
                              f"{b.target.name} in {args.selection[1]}: both sides must measure on the same device")
    n = args.processes or max(DEFAULT_RUN_PROCESSES, *(p.policy.processes for p in plans))
    if not 2 <= n <= 100:
        raise ConfigError(f"--processes {n}: must be 2 to 100 (the test needs the spread between processes)")
    jobs = [replace(job, process=proc, arm=arm, policy=replace(job.policy, processes=n))
            for proc in range(1, n + 1) for pair in zip(*sides, strict=True)
            for job, arm in zip(pair, ("A", "B"), strict=True)]
    _preflight(jobs)
    store = open_store(_store_path(args, reading=False))
    progress = make_progress(sys.stderr, quiet=args.quiet)
    try:
        result = run_jobs(jobs, store, plan=plans[0], labels=_parse_labels(args.label or []), progress=progress,
                          argv=sys.argv[1:])
    finally:
        progress.close()
    if result.interrupted:
        return exit_for_signal(result.signal)
    where = {job.key: (i % (2 * len(sides[0])) // 2, job.arm) for i, job in enumerate(jobs)}
    ok: dict[tuple[int, str], list[str]] = {}
    for row in result.runs:
        if row["status"] == "ok":
            ok.setdefault(where[row["job_key"]], []).append(row["run_id"])
    pairing = [(ok[(i, "A")][0], ok[(i, "B")][0]) for i in range(len(sides[0])) if (i, "A") in ok and (i, "B") in ok]
    if not pairing:
        raise AnalysisError(f"compare --run: session {result.session_id}: no job measured on both sides "
                            "(`hilbench show` has their errors)")
    ids = {arm: tuple(r for (_, a), rs in ok.items() if a == arm for r in rs) for arm in ("A", "B")}
    base, cand = (Selection(spec=spec, description=f"plan {plan.name}, side {arm} of session {result.session_id}",
                            run_ids=ids[arm])
                  for spec, plan, arm in zip(args.selection, plans, ("A", "B"), strict=True))
    return store, base, cand, pairing, len(result.failed)


def _session_run_ids(store: Any, session: str | None) -> list[str] | None:
    """Run ids of ``--session`` (id, prefix or 'last'); None for every run."""
    return store.session_run_ids(session) if session else None


def _scorer_arg(text: str) -> str:
    """``--scorer module:function``: checked here, imported only when a run's plan names it."""
    from harness.analysis.accuracy import parse_scorer_spec

    try:
        return parse_scorer_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_accuracy(args: argparse.Namespace) -> int:
    from harness.analysis.accuracy import score_runs

    store = _read_store(args)
    scores = score_runs(store, _session_run_ids(store, args.session), scorers=args.scorer or ())
    for note in scores["note"].dropna():
        sys.stderr.write(f"hilbench: {safe(note, LINE_LIMIT)}\n")
    if args.format == "json":
        sys.stdout.write(scores.to_json(orient="records") + "\n")
        return EXIT_OK
    if scores.empty:
        sys.stdout.write("(no accuracy stored: give a model [models.eval] in the plan)\n")
        return EXIT_OK
    view = scores[["run_id", "model", "target", "backend", "eval_count", "top1", "top5", "reference", "agreement",
                   "output_error"]].copy()
    view["run_id"] = view["run_id"].str[-6:]
    if scores["metrics"].notna().any():
        view["metrics"] = [" ".join(f"{k}={v:.4g}" for k, v in m.items()) if isinstance(m, dict) else None
                           for m in scores["metrics"]]
    sys.stdout.write(_safe_frame(view).to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}") + "\n")
    return EXIT_OK


def cmd_variants(args: argparse.Namespace) -> int:
    from harness.prep.variants import default_kinds, make_variants, plan_snippet

    model = Path(args.model)
    out_dir = Path(args.out) if args.out else model.parent
    kinds = tuple(args.only) if args.only else default_kinds(model)
    plan_path = out_dir / "variants.toml"
    if plan_path.exists() and not args.force:
        raise AnalysisError(f"{plan_path}: already exists: remove it, write elsewhere with --out DIR, or use --force")
    made = make_variants(model, calibration=Path(args.calibration) if args.calibration else None, out_dir=out_dir,
                         kinds=kinds, force=args.force, for_runtime=getattr(args, "for_runtime", None))
    snippet = plan_snippet(model, made, relative_to=out_dir, eval_data=Path(args.eval) if args.eval else None)
    _write_output(snippet, str(plan_path))
    for v in made:
        sys.stdout.write(f"{v.precision:5} {v.path}  {v.size_bytes / 1024:.1f} KiB  ({v.note})\n")
    sys.stdout.write(f"plan: {plan_path} (run it: hilbench run {plan_path})\n")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from harness.prep.inspect import format_inspection, inspect_model

    sys.stdout.write(format_inspection(inspect_model(Path(args.model)), args.format))
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from harness.report.plots import plot, save

    store = _read_store(args)
    run_id = store.run(args.run)["run_id"] if args.run else None
    fig = plot(store, args.kind, run_ids=_session_run_ids(store, args.session), run_id=run_id, metric=args.metric)
    sys.stdout.write(f"{save(fig, args.output)}\n")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from harness.analysis.history import (
        Settings,
        detect_changes,
        format_csv_history,
        format_history,
        history,
        read_csv_points,
    )

    if args.csv and (args.metric or args.plot):
        raise ConfigError(f"history --csv: {'--metric' if args.metric else '--plot'} applies to the store's series")
    if args.higher_is_better and not args.csv:
        raise ConfigError("history: --higher-is-better applies to --csv (the store's metrics are lower-is-better)")
    settings = Settings(min_change=args.min_change / 100.0, persist=args.persist, penalty=args.penalty,
                        fresh_penalty=args.fresh_penalty, higher_is_better=args.higher_is_better,
                        fresh_alpha=args.fresh_alpha, fail_window=args.fail_window)
    if args.csv:
        points = read_csv_points(args.csv)
        changes = detect_changes(points, settings)
        text = format_csv_history(points, changes, args.format, show_all=args.all)
    else:
        store = _read_store(args)
        points, changes = history(store, tuple(args.metric or ("p50", "p99")), settings)
        text = format_history(points, changes, args.format, show_all=args.all)
    _write_output(text, args.output, display=args.format in ("table", "markdown"))
    if args.plot:
        from harness.report.plots import save, trend_figure

        listed = changes[changes["kind"].isin(("regression", "improvement", "drift"))] if not changes.empty else changes
        flagged = listed[listed["gates"]] if not listed.empty else listed
        series = set(flagged["series"]) if not flagged.empty else set(points["series"].unique()[:6])
        fig = trend_figure(points[points["series"].isin(series)], listed[listed["series"].isin(series)]
                           if not listed.empty else listed, title="Nightly history")
        save(fig, args.plot)
    regressed = not changes.empty and bool(changes["fails"].any())  # the current state (changepoints.failing)
    return EXIT_REGRESSED if regressed and args.fail else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    store = _read_store(args)
    if args.history:
        from harness.report.history_html import build_history_report

        if args.session:
            raise ConfigError("report --history shows every night: --session applies to the buyer's report")
        output = args.output or "history.html"
        text = build_history_report(store, tuple(args.metric or ("p50", "p99")), title=args.title or "Nightly history",
                                    plots=not args.no_plots)
    else:
        from harness.report.html import build_report

        if args.metric:
            raise ConfigError("report: --metric applies to --history")
        output = args.output or "report.html"
        text = build_report(store, _session_run_ids(store, args.session), deadline_ms=args.deadline_ms,
                            title=args.title or "Which device?", plots=not args.no_plots)
    _write_output(text, output)
    sys.stdout.write(f"{output}\n")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check targets before measuring: one line per check with its fix; exit status 1 when a check fails."""
    from harness.doctor import doctor, format_checks

    known = load_targets(_default_targets_dirs(args.targets_dir))
    chosen = _targets_from_specs(args.target or sorted(known), known, args, "doctor")
    failed = False
    for target in chosen:
        checks = doctor(target)
        sys.stdout.write(format_checks(target, checks) + "\n")  # made safe there, line by line
        failed = failed or any(c.status == "fail" for c in checks)
    return EXIT_USER if failed else EXIT_OK
