"""False alarms of ``hilbench compare`` on identical sessions (A/A), and its power on a synthetic 5% slowdown.

* **A/A**: ``--sessions`` (15) back-to-back sessions of a reduced quick-start plan (three of its models: the
  digits CNN on ONNX Runtime and LiteRT and MobileNetV2-0.35 on ONNX Runtime; a shorter timed phase, no
  evaluation) on this machine, run with ``hilbench run`` into one store; then every pair of sessions (105 for
  15) compared with ``hilbench compare OLDER NEWER`` at its defaults. Printed: the share of pairs that exit 0
  (the target: >= 99%), 5 (a false regression) and 6 (inconclusive), and the whole-session shift itself (the
  p50 ratio of each configuration between two sessions: median, 95th percentile and largest), which is what
  ``compare``'s ``SESSION_SHIFT_FLOOR`` stands for.
  ``--processes`` sets the plan's ``policy.processes`` (default 3, what docs/analysis.md recommends for plans
  whose sessions are compared); ``--processes 1`` shows what one process a side gives.
* **power**: ``--power`` times ``hilbench compare --run A B`` of the synthetic backend (a stand-in: a busy-wait
  of ``latency_ms`` with ``spin = true``, no model) at 1.00 ms against 1.05 ms (a 5% slowdown) and against
  1.00 ms (A/A, interleaved): the share flagged SLOWER (exit 5) and the share that exit 0.

    nice python3 benchmarks/aa_false_alarms.py                  # about 15 minutes on a 2-core machine
    nice python3 benchmarks/aa_false_alarms.py --processes 1    # one process a side
    nice python3 benchmarks/aa_false_alarms.py --shipped --power 0   # the quick-start plan as shipped
    nice python3 benchmarks/aa_false_alarms.py --sessions 0 --power 10   # power only

The sessions measure this machine as it is: other work on it shows up as whole-session shifts, which is the
point (run it quiet for the figures docs/analysis.md quotes, and say how quiet it was).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.cli.app import main  # noqa: E402
from harness.config.plan import QUICKSTART_PLAN  # noqa: E402
from harness.store import open_store  # noqa: E402

MODELS = ("digits-cnn", "digits-cnn-tflite", "mobilenet-v2-0.35")


def reduced_quickstart(folder: Path, processes: int) -> Path:
    """The quick-start plan with three models, absolute model paths, no evaluation and a shorter timed phase."""
    text = QUICKSTART_PLAN.read_text(encoding="utf-8")
    text = text.replace('"models/', f'"{QUICKSTART_PLAN.parent / "models"}/')
    text = re.sub(r"(?m)^eval = .*\n", "", text)
    text = re.sub(r"(?m)^processes = .*\n", "", text)  # set below
    blocks = text.split("[[models]]")
    keep = [b for b in blocks[1:] if any(re.search(rf'(?m)^name = "{re.escape(m)}"$', b) for m in MODELS)]
    tail = blocks[-1][blocks[-1].index("[backends"):]
    keep = [k.split("[backends")[0] for k in keep]
    text = blocks[0] + "".join("[[models]]" + k for k in keep) + tail
    text = re.sub(r"(?m)^timed = .*$", "timed = { count = 400, min_s = 0.3, max_s = 10 }\ntelemetry = false\n"
                  f"idle_s = 0\nprocesses = {processes}", text)
    path = folder / f"aa-{processes}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def shipped_quickstart(folder: Path) -> Path:
    """The quick-start plan exactly as shipped (its models, counts, evaluation and policy.processes), with
    absolute model paths."""
    text = QUICKSTART_PLAN.read_text(encoding="utf-8")
    path = folder / "quickstart.toml"
    path.write_text(text.replace('"models/', f'"{QUICKSTART_PLAN.parent / "models"}/'), encoding="utf-8")
    return path


def quiet_main(argv: list[str]) -> tuple[int, str]:
    """``hilbench ARGV`` in this process; its exit status and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    return code, out.getvalue()


def aa(folder: Path, sessions: int, processes: int | None) -> None:
    plan = reduced_quickstart(folder, processes) if processes else shipped_quickstart(folder)
    store = folder / f"aa-{processes or 'shipped'}"
    t0 = time.monotonic()
    load: list[float] = []  # the machine's 1-minute load average, the larger of a session's start and end
    for i in range(sessions):
        before = os.getloadavg()[0]
        code, _ = quiet_main(["run", str(plan), "--store", str(store), "--quiet", "--label", f"aa={i}"])
        if code != 0:
            raise SystemExit(f"session {i}: hilbench run exited {code}")
        load.append(max(before, os.getloadavg()[0]))
    ids = list(open_store(store).sessions()["session_id"])
    t_run = time.monotonic() - t0
    codes: list[int] = []
    quiet: list[bool] = []
    cores = os.cpu_count() or 1
    shifts: list[float] = []
    flagged: list[str] = []
    t0 = time.monotonic()
    for a, b in itertools.combinations(range(len(ids)), 2):
        out = folder / "cmp.json"
        code, _ = quiet_main(["compare", ids[a], ids[b], "--store", str(store), "--format", "json",
                              "--output", str(out)])
        codes.append(code)
        quiet.append(load[a] <= cores and load[b] <= cores)
        result = json.loads(out.read_text(encoding="utf-8"))
        for p in result["pairs"]:
            if p["metric"] == "p50" and p["ratio"]:
                shifts.append(p["ratio"] - 1.0)
            if code != 0 and p["verdict"] in ("slower", "inconclusive") and (p["regressed"] or p["shift_unknown"]):
                flagged.append(f"  sessions {a}-{b}: {p['model']} {p['metric']} {p['verdict']} "
                               f"{(p['ratio'] - 1) * 100:+.1f}% [{(p['ci_low'] - 1) * 100:+.1f}, "
                               f"{(p['ci_high'] - 1) * 100:+.1f}]")
    n = len(codes)
    c = np.array(codes)
    s = np.abs(np.array(shifts))
    what = f"reduced plan, policy.processes = {processes}" if processes else "the shipped quick-start plan"
    print(f"A/A, {what}: {sessions} sessions ({t_run:.0f} s), {n} pairs compared "
          f"({time.monotonic() - t0:.0f} s)")
    print(f"  exit 0: {np.sum(c == 0)}/{n} ({np.mean(c == 0):.1%}); exit 5 (false regression): {np.sum(c == 5)} "
          f"({np.mean(c == 5):.1%}); exit 6 (inconclusive): {np.sum(c == 6)} ({np.mean(c == 6):.1%}); "
          f"other: {np.sum((c != 0) & (c != 5) & (c != 6))}")
    print(f"  whole-session p50 shift |ratio - 1| over {len(s)} configuration pairs: median {np.median(s):.2%}, "
          f"95th percentile {np.quantile(s, 0.95):.2%}, largest {s.max():.2%}")
    q = np.array(quiet)
    print(f"  load average per session (1 min, {cores} cores): {' '.join(f'{x:.1f}' for x in load)}")
    if q.any():
        print(f"  pairs of two quiet sessions (load <= {cores}): {q.sum()}; exit 0: {np.sum(c[q] == 0)} "
              f"({np.mean(c[q] == 0):.1%}), exit 5: {np.sum(c[q] == 5)}, exit 6: {np.sum(c[q] == 6)}")
    for line in flagged[:20]:
        print(line)


def power(folder: Path, repeats: int, processes: int | None) -> None:
    plans = {}
    for name, ms in (("base", 1.0), ("slow", 1.05)):
        plans[name] = folder / f"synth-{name}.toml"
        plans[name].write_text(f'name = "synth-{name}"\n[[models]]\nname = "fake"\nbackends = ["synthetic"]\n'
                               f"[backends.synthetic]\nlatency_ms = {ms}\nspin = true\n[policy]\nwarmup = 10\n"
                               "timed = { count = 300 }\ntelemetry = false\nidle_s = 0\n", encoding="utf-8")
    extra = ["--processes", str(processes)] if processes else []
    for label, other in (("5% slowdown", "slow"), ("A/A", "base")):
        codes = []
        for _ in range(repeats):
            code, _ = quiet_main(["compare", "--run", str(plans["base"]), str(plans[other]), "--store",
                                  str(folder / f"power-{other}"), "--quiet", "--metric", "p50", "--metric", "p99",
                                  *extra])
            codes.append(code)
        c = np.array(codes)
        print(f"compare --run, synthetic 1.00 ms vs {'1.05' if other == 'slow' else '1.00'} ms (stand-in backend), "
              f"{repeats} times: exit 5 {np.sum(c == 5)}, exit 0 {np.sum(c == 0)}, exit 6 {np.sum(c == 6)}, "
              f"other {np.sum((c != 0) & (c != 5) & (c != 6))}  [{label}]")


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=15, help="A/A sessions (pairs: n(n-1)/2; default 15: 105)")
    ap.add_argument("--processes", type=int, default=3, help="policy.processes of the A/A plan (default 3)")
    ap.add_argument("--shipped", action="store_true",
                    help="A/A sessions of the quick-start plan exactly as shipped (all seven models, evaluation, its "
                         "own policy.processes) instead of the reduced plan; --processes is then ignored")
    ap.add_argument("--power", type=int, default=5, help="compare --run repeats for the power (default 5; 0: none)")
    ap.add_argument("--keep", help="keep the stores in this folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.sessions:
            aa(folder, args.sessions, None if args.shipped else args.processes)
        if args.power:
            power(folder, args.power, None)


if __name__ == "__main__":
    cli()
