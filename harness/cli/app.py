"""The ``hilbench`` command line: the parser, logging set-up and :func:`main`, which turns what a command
returns or raises into the exit status (:mod:`harness.cli.exits`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import traceback
from typing import Any, NoReturn

from harness import __version__
from harness.analysis.compare import DEFAULT_RUN_PROCESSES, METRICS, SESSION_SHIFT_FLOOR
from harness.analysis.history import HISTORY_METRICS
from harness.cli.commands import (
    _scorer_arg,
    cmd_accuracy,
    cmd_compare,
    cmd_doctor,
    cmd_history,
    cmd_import,
    cmd_inspect,
    cmd_plot,
    cmd_report,
    cmd_results,
    cmd_run,
    cmd_show,
    cmd_targets,
    cmd_telemetry_parse,
    cmd_variants,
)
from harness.cli.exits import (
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_USAGE,
    EXIT_USER,
    exit_for_signal,
)
from harness.cli.lab_cmd import add_lab_parser
from harness.cli.progress import LINE_LIMIT
from harness.cli.sql_cmd import add_sql_parser
from harness.cli.store_cmd import add_store_parser
from harness.errors import HilbenchError
from harness.prep.variants import COREML_VARIANT_KINDS, FOR_RUNTIMES, VARIANT_KINDS
from harness.report.plots import KINDS as PLOT_KINDS
from harness.safetext import safe, safe_lines

__all__ = ["main", "build_parser"]


def _analysis_parsers(sub: Any, store_arg: Any) -> None:
    """Subcommands that read the store: compare, history, plot, report, variants."""
    c = sub.add_parser("compare", help=f"did the candidate get slower? (exit status {EXIT_REGRESSED} on a regression)")
    c.add_argument("selection", nargs="*", metavar="BASELINE CANDIDATE",
                   help="session id or prefix, run ids (a,b), a date YYYY-MM-DD, KEY=VALUE label or label value; "
                        "none: the last two sessions of the same plan")
    c.add_argument("--format", choices=("table", "markdown", "json", "junit"), default="table")
    c.add_argument("--output", help="write the report in --format to this file (the table still goes to stdout)")
    c.add_argument("--alpha", type=float, default=0.01, help="significance after Benjamini-Hochberg (default 0.01)")
    c.add_argument("--min-change", type=float, default=2.0, help="smallest slowdown that counts, in %% (default 2)")
    c.add_argument("--metric", action="append", choices=tuple(METRICS),
                   help="only these metrics (repeatable; default all that are stored)")
    c.add_argument("--shift-floor", type=float, default=SESSION_SHIFT_FLOOR * 100,
                   help="with one process a side and no history, a change must clear this whole-session shift, in "
                        f"%% (default {SESSION_SHIFT_FLOOR * 100:g}; else exit status {EXIT_INCONCLUSIVE}: inconclusive)")
    c.add_argument("--run", action="store_true",
                   help="BASELINE and CANDIDATE are plan files: measure both now, alternately (A B A B ...) on the "
                        "same target in one session, job i of one against job i of the other")
    c.add_argument("--processes", type=int, help=f"with --run: agent processes a side for each job (default: the "
                                                 f"plans' policy.processes, at least {DEFAULT_RUN_PROCESSES})")
    c.add_argument("--target", action="append", help="with --run: measure on this target instead of the plans'")
    c.add_argument("--targets-dir", action="append", help="with --run: folder of target files (default: ./targets)")
    c.add_argument("--label", action="append", help="with --run: KEY=VALUE stored with every run")
    c.add_argument("--quiet", action="store_true", help="with --run: no progress display")
    c.add_argument("--allow-offload-change", action="store_true",
                   help="compare runs whose offload verdict differs (another accelerator or share of the model)")
    store_arg(c)
    c.set_defaults(func=cmd_compare, identity=None, known_hosts=None, accept_new_host_keys=False, no_wait=False)

    a = sub.add_parser("accuracy", help="top-1/top-5 and fidelity measured on the device ([models.eval])")
    a.add_argument("--session", help="only this session id (or prefix, or 'last')")
    a.add_argument("--format", choices=("table", "json"), default="table")
    a.add_argument("--scorer", action="append", type=_scorer_arg, metavar="MODULE:FUNCTION",
                   help="trust this scorer, as the plan's [models.eval] scorer names it, and run it (repeatable); "
                        "a scorer is never imported otherwise: the store, which may be shared, is not trusted "
                        "to name code, and its runs get top-1/top-5 only")
    store_arg(a)
    a.set_defaults(func=cmd_accuracy)

    v = sub.add_parser("variants", help="write FP16 and INT8 (static, calibrated) variants of an ONNX model, or "
                                        "Core ML ML programs of a PyTorch model (.pt, .pt2)")
    v.add_argument("model", help="the FP32 model (.onnx; or .pt/.pt2 for Core ML variants)")
    v.add_argument("--calibration", help="calibration inputs (.npz, samples on the first axis) for INT8")
    v.add_argument("--out", help="output folder (default: beside the model)")
    v.add_argument("--eval", help="evaluation set (.npz with x, y) to put in the plan snippet")
    v.add_argument("--only", action="append", choices=VARIANT_KINDS + COREML_VARIANT_KINDS,
                   help="only this variant (repeatable); coreml and coreml-fp32 are made from a PyTorch model")
    v.add_argument("--force", action="store_true", help="overwrite variants (and variants.toml) that exist")
    v.add_argument("--for", dest="for_runtime", choices=FOR_RUNTIMES,
                   help="tailor the variants to a runtime: tensorrt writes symmetric INT8 (every zero point 0)")
    v.set_defaults(func=cmd_variants)

    ins = sub.add_parser("inspect", help="what a model file is, on the host: inputs, outputs, ops, quantization, "
                                         "Edge TPU compilation, TensorRT version")
    ins.add_argument("model", help="the model (.tflite, .onnx, .engine/.plan/.trt, .mlmodel/.mlpackage, .pt, .pt2)")
    ins.add_argument("--format", choices=("table", "json"), default="table")
    ins.set_defaults(func=cmd_inspect)

    pl = sub.add_parser("plot", help=f"a figure (PNG or SVG): {', '.join(PLOT_KINDS)}")
    pl.add_argument("kind", choices=PLOT_KINDS)
    pl.add_argument("--output", required=True, help="the file to write (.png or .svg)")
    pl.add_argument("--session", help="only this session id (or prefix, or 'last'; default: every run)")
    pl.add_argument("--run", help="the run of a timeline (default: the latest)")
    pl.add_argument("--metric", choices=("p50", "p99"), default="p50", help="latency statistic (pareto, trend)")
    store_arg(pl)
    pl.set_defaults(func=cmd_plot)

    h = sub.add_parser("history", help="nightly trends: regressions that persist, drifts, improvements "
                                       f"(exit status {EXIT_REGRESSED} with --fail)")
    h.add_argument("--metric", action="append", choices=tuple(HISTORY_METRICS),
                   help="metrics to follow (repeatable; default p50 and p99)")
    h.add_argument("--csv", metavar="FILE", help="your own numbers instead of the store: columns night (date or "
                                                 "integer), config (optional), value")
    h.add_argument("--higher-is-better", action="store_true",
                   help="with --csv: a fall is the regression (throughput, accuracy)")
    h.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    h.add_argument("--output", help="write the report to this file instead of stdout")
    h.add_argument("--all", action="store_true", help="also list small changes, unconfirmed steps and excursions")
    h.add_argument("--min-change", type=float, default=2.0, help="smallest change that counts, in %% (default 2)")
    h.add_argument("--persist", type=int, default=2, help="nights a new level must hold (default 2)")
    h.add_argument("--penalty", type=float, default=3.0,
                   help="evidence a change needs, x ln(nights) (default 3; docs/analysis.md)")
    h.add_argument("--fresh-penalty", type=float, default=2.5,
                   help="the same for the newest level in its first 14 nights (default 2.5; the newest 3 nights "
                        "have their own test: --fresh-alpha)")
    h.add_argument("--fresh-alpha", type=float, default=0.008,
                   help="false-alarm level of the online test of the newest 3 nights (default 0.008; 0.001: fewer red "
                        "nights on noise, 5%% steps caught later; docs/analysis.md)")
    h.add_argument("--plot", help="also draw the flagged series (PNG or SVG)")
    h.add_argument("--fail", action="store_true",
                   help=f"exit status {EXIT_REGRESSED} when a series' newest change is a regression (or a drift "
                        "the worse way) within --fail-window nights")
    h.add_argument("--fail-window", type=int, default=14, metavar="N",
                   help="--fail: a regression older than N nights is the accepted baseline (default 14)")
    store_arg(h)
    h.set_defaults(func=cmd_history)

    rp = sub.add_parser("report", help="one self-contained HTML file that ranks the targets for each model")
    rp.add_argument("--output", help="the HTML file to write (default report.html; history.html with --history)")
    rp.add_argument("--history", action="store_true",
                    help="the nightly team's page instead: each configuration's trend, findings and git refs")
    rp.add_argument("--metric", action="append", choices=tuple(HISTORY_METRICS),
                    help="with --history: metrics to show (repeatable; default p50 and p99)")
    rp.add_argument("--session", help="only this session id (or prefix, or 'last'; default: the latest run of each "
                                      "configuration)")
    rp.add_argument("--deadline-ms", type=float, default=33.3, help="the p99 deadline (default 33.3 ms = 30 fps)")
    rp.add_argument("--title", help="the page's title (default: Which device? / Nightly history)")
    rp.add_argument("--no-plots", action="store_true", help="tables only")
    store_arg(rp)
    rp.set_defaults(func=cmd_report)


class _Given(argparse.Action):
    """Stores the value and notes that the option was given (``args.store_given``): a message then names the
    option, else the environment variable its default came from."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


class _Parser(argparse.ArgumentParser):
    """A usage error: one line naming the option, exit status 2 (EXIT_USAGE)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--debug`` is taken after a subcommand too (``hilbench run plan.toml --debug``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
                _debug_everywhere(sp)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hilbench", description="Hardware-in-the-loop benchmarking of edge ML inference.")
    p.add_argument("--version", action="version", version=f"hilbench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    def store_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--store", default=os.environ.get("HILBENCH_STORE", "results"), action=_Given,
                        help="results folder or s3://bucket/prefix (default: $HILBENCH_STORE, else results)")

    def targets_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--targets-dir", action="append", help="folder of target files (default: ./targets)")

    r = sub.add_parser("run", help="run a plan (default: the bundled quick start on this machine)")
    r.add_argument("plan", nargs="?", help="plan file (TOML)")
    r.add_argument("--target", action="append", help="run on this target instead of the plan's (name, local, ssh://user@host[:port])")
    r.add_argument("--identity", help="private key file for ssh:// targets")
    r.add_argument("--known-hosts", help="known_hosts file for ssh:// targets")
    r.add_argument("--accept-new-host-keys", action="store_true",
                   help="ssh:// targets: trust an unknown host key on first contact (a changed one is still refused)")
    r.add_argument("--label", action="append", help="KEY=VALUE stored with every run (e.g. build=abc123)")
    r.add_argument("--resume", action="store_true", help="skip jobs this store already holds a successful run of")
    r.add_argument("--no-wait", action="store_true",
                   help="fail at once (error busy, exit 3) when another run is measuring on a device, instead of "
                        "waiting for it (policy.lock_wait_s)")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    store_arg(r)
    targets_arg(r)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("results", help="the summary table of stored runs")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.add_argument("--session", help="only this session id (or prefix, or 'last')")
    s.add_argument("--per-process", action="store_true",
                   help="table: one row per run (agent process) instead of one per configuration of a session "
                        "(csv and json are always one row per run)")
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
    d.add_argument("--accept-new-host-keys", action="store_true",
                   help="ssh:// targets: trust an unknown host key on first contact (a changed one is still refused)")
    targets_arg(d)
    d.set_defaults(func=cmd_doctor)

    im = sub.add_parser("import", help="store a recorded vendor runner log (trtexec, benchmark_model, "
                                       "onnxruntime_perf_test, benchmark_app) as an aggregate-only run")
    im.add_argument("logfile", help="the runner's recorded output (its runner is recognised from the content)")
    im.add_argument("--target", help="the device it ran on, as results show it (default: import)")
    im.add_argument("--model", help="the model file it measured (hashed when it is a file here; default: the graph "
                                    "the log names)")
    im.add_argument("--runner", help="the runner that wrote the log, when its content does not tell")
    im.add_argument("--label", action="append", metavar="KEY=VALUE", help="label the run (repeatable)")
    store_arg(im)
    im.set_defaults(func=cmd_import)

    tel = sub.add_parser("telemetry", help="telemetry tools")
    tel_sub = tel.add_subparsers(dest="telemetry_command", required=True)
    tp = tel_sub.add_parser("parse", help="turn a recorded sensor output into readings (JSON lines)")
    tp.add_argument("--kind", help="format of FILE (default: recognise it)")
    tp.add_argument("file")
    tp.set_defaults(func=cmd_telemetry_parse)
    _analysis_parsers(sub, store_arg)
    add_store_parser(sub, store_arg)
    add_sql_parser(sub, store_arg)
    add_lab_parser(sub)
    _debug_everywhere(p)
    return p


class _SafeFormatter(logging.Formatter):
    """Log lines (and tracebacks) with device text in them, made safe to print line by line."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return safe_lines(self.inner.format(record), None)


def _configure_logging(debug: bool) -> None:
    """Third-party logs (paramiko's handshake tracebacks) stay silent: their failures reach the user as
    one-line errors. With --debug they go to stderr, with ours."""
    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s")
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler.formatter, _SafeFormatter):
                handler.setFormatter(_SafeFormatter(handler.formatter))
    else:
        quiet = logging.getLogger("paramiko")
        if not any(isinstance(h, logging.NullHandler) for h in quiet.handlers):
            quiet.addHandler(logging.NullHandler())


def _output_ready() -> bool:
    """Standard output and error set up so that printing never raises: a character the terminal's encoding
    lacks (``PYTHONIOENCODING=ascii`` and a non-ASCII path) is shown as an escape. False when standard output is
    closed (``hilbench ... >&-``): nothing could be printed, so nothing is done (said on stderr where it is open)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")
    if sys.stdout is None:
        if sys.stderr is not None:
            sys.stderr.write("hilbench: error: standard output is closed, so nothing can be printed: redirect it "
                             "(> file, or > /dev/null) instead of closing it\n")
        return False
    return True


class _StdoutError(OSError):
    """Writing standard output failed (a full disk, an I/O error): the user's redirection, not a bug."""


class _Stdout:
    """Standard output whose write errors say they are standard output's (:class:`_StdoutError`); a closed pipe
    stays a BrokenPipeError. Everything else is the stream's own."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return int(self._inner.write(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _StdoutError(exc.errno, exc.strerror) from exc

    def flush(self) -> None:
        try:
            self._inner.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _StdoutError(exc.errno, exc.strerror) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _silence_stdout(stream: Any) -> None:
    """After ``stream`` (standard output) failed: its file descriptor goes to /dev/null, so that Python's own flush
    at exit prints no traceback (the fix the Python docs give for a closed pipe). A stream without one is left."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    if not _output_ready():
        return EXIT_USER
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug)
    stdout = sys.stdout
    sys.stdout = _Stdout(stdout)
    try:
        return _dispatch(args, stdout)
    finally:
        sys.stdout = stdout


def _dispatch(args: argparse.Namespace, stdout: Any) -> int:
    """The command's exit status, or the one what it raised maps to (harness/cli/exits.py)."""
    try:
        status = int(args.func(args))
        sys.stdout.flush()
        return status
    except _StdoutError as exc:  # hilbench ... > /dev/full
        _silence_stdout(stdout)
        sys.stderr.write(f"hilbench: error: cannot write to standard output: {exc.strerror or exc}\n")
        return EXIT_USER
    except HilbenchError as exc:
        if args.debug:  # the traceback, made safe like every other line (its message may quote a device)
            sys.stderr.write(safe_lines(traceback.format_exc(), None) + "\n")
            return EXIT_USER
        sys.stderr.write(f"hilbench: error: {safe(exc, LINE_LIMIT)}\n")  # it may quote a device
        return EXIT_USER
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP during a run (Stopped says which)
        signum = getattr(exc, "signum", None)
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            sys.stderr.write("hilbench: interrupted\n" if signum in (None, signal.SIGINT)
                             else f"hilbench: stopped by {signal.Signals(signum).name}\n")
        return exit_for_signal(signum)
    except BrokenPipeError:  # the reader went away (| head): what it wanted was printed
        _silence_stdout(stdout)
        return EXIT_OK
    except Exception as exc:  # a bug: one line (made safe: its text may quote a device), the traceback on --debug
        if args.debug:
            sys.stderr.write("hilbench: internal error (a bug, please report it):\n"
                             + safe_lines(traceback.format_exc(), None) + "\n")
        else:
            sys.stderr.write(f"hilbench: internal error (a bug, please report it): {exc.__class__.__name__}: "
                             f"{safe(exc, LINE_LIMIT)}; rerun with --debug for the traceback\n")
        return EXIT_INTERNAL
