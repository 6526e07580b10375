"""Parse time per input size for every device-facing text parser (issue 18: quadratic regexes).

Runs the adversarial cases of ``tests/test_parser_linearity.py`` (long runs of digits, dots, spaces
and letters; a prefix repeated without the rest of its line) at growing sizes and prints the best of
``--repeat`` times and the ratio between consecutive sizes (linear: about the size ratio; quadratic:
its square). Ratios are within one run: the machine's speed does not matter.

    python benchmarks/parser_linearity.py [--sizes 2000,20000,200000] [--repeat 3] [-k ort]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "device_agents"))
sys.path.insert(0, str(ROOT))

from tests.test_parser_linearity import CASES, best_time  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,20000,200000", help="input sizes in characters, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size (the fastest is kept)")
    ap.add_argument("-k", default="", help="only cases whose id contains this")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    head = "".join(f"{n:>12,}" for n in sizes)
    print(f"{'case':34s}{head}   ratios (ms per size; ratio per step)")
    for case_id, func, build in CASES:
        if args.k not in case_id:
            continue
        times = [best_time(func, build(n), args.repeat) for n in sizes]
        ratios = " ".join(f"x{b / max(a, 1e-6):.1f}" for a, b in zip(times[:-1], times[1:], strict=True))
        print(f"{case_id:34s}" + "".join(f"{t * 1e3:12.2f}" for t in times) + f"   {ratios}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
