"""How much host memory can a hostile device take? The host's peak RSS for a normal job, a 200 MB line and
sample / line floods, each a fresh ``hilbench run`` in a child process that reports its own
``VmHWM``; the device is a script printing chosen protocol lines through the real local transport
(tests/support/hostile.py). Ratios are against the normal run measured in the same invocation.

Also times the validation step on a legitimate batch of 5,000 samples (harness/agent/validate.py).

    python benchmarks/hostile_memory.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the tests' support package, as pytest sees it

from support.hostile import HOSTILE_PLAN, hostile_target, plan_file  # noqa: E402

from tests.test_hostile_session import LOG_FLOOD, LONG_LINE, SAMPLE_FLOOD, TIME_BOUNDED_PLAN  # noqa: E402

NORMAL = '''
emit(hello())
emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "first", "event": "begin"})
emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "first", "event": "end", "duration_ns": 1000})
emit({"v": 1, "type": "sample", "phase": "warmup", "start": 0, "t0_ns": 1, "latency_ns": [5] * 5,
      "offset_ns": [0, 1, 2, 3, 4]})
emit({"v": 1, "type": "sample", "phase": "timed", "start": 0, "t0_ns": 10, "latency_ns": [5] * 20,
      "offset_ns": list(range(20))})
emit(result())
'''

CASES = [
    ("normal job", NORMAL, HOSTILE_PLAN),
    ("one 200 MB line", LONG_LINE, HOSTILE_PLAN),
    ("sample flood, plan count 20", SAMPLE_FLOOD, HOSTILE_PLAN),
    ("sample flood, plan max_s 2 (1 M samples allowed)", SAMPLE_FLOOD, TIME_BOUNDED_PLAN),
    ("4 s flood of 100 kB log lines", LOG_FLOOD, HOSTILE_PLAN),
]

_DRIVER = ("import sys\n"
           "from harness.cli import main\n"
           "code = main(sys.argv[1:])\n"
           # VmHWM: this process's own peak RSS. ru_maxrss would not do: Linux carries the parent's peak over
           # fork and exec, so under pytest it reports the test process's size.
           "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
           "print('HOST', code, hwm)\n")


def peak(body: str, plan: str) -> tuple[int, float, float]:
    """(exit code, peak RSS in MB, wall s) of one ``hilbench run`` against ``body``."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        targets = hostile_target(tmp, body)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", _DRIVER, "run", str(plan_file(tmp, plan)), "--targets-dir",
                               str(targets), "--target", "evil", "--store", str(tmp / "res"), "--quiet"],
                              capture_output=True, text=True, timeout=300, cwd=REPO)
        wall = time.monotonic() - t0
    last = proc.stdout.strip().splitlines()[-1].split() if proc.stdout.strip() else []
    if not last or last[0] != "HOST":
        raise SystemExit(f"the host did not report: {proc.stdout[-500:]} {proc.stderr[-2000:]}")
    return int(last[1]), int(last[2]) / 1024, wall


def validation_cost(repeat: int = 2000) -> float:
    """Microseconds to validate one legitimate batch of 5,000 samples (decode excluded)."""
    from harness.agent.validate import Limits, MessageChecker

    line = json.dumps({"v": 1, "type": "sample", "t_ns": 1, "phase": "timed", "start": 0, "t0_ns": 10 ** 12,
                       "latency_ns": [1_234_567 + i for i in range(5000)],
                       "offset_ns": [i * 1_300_000 for i in range(5000)]})
    msg = json.loads(line)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat // 5):
            checker = MessageChecker(Limits.default())
            checker.check(msg)
        best = min(best, (time.perf_counter() - t0) / (repeat // 5))
    return best * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="runs of each case (the lowest peak is kept)")
    args = ap.parse_args()
    print(f"validation of a 5,000-sample batch: {validation_cost():.0f} us")
    base = None
    print(f"{'case':52} {'exit':>4} {'peak RSS':>10} {'x normal':>9} {'wall':>7}")
    for name, body, plan in CASES:
        runs = [peak(body, plan) for _ in range(args.repeat)]
        code, mb, wall = min(runs, key=lambda r: r[1])
        base = base or mb
        print(f"{name:52} {code:>4} {mb:>7.0f} MB {mb / base:>8.2f}x {wall:>6.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
