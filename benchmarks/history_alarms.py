"""False alarms, detection delays and power of ``hilbench history`` on seeded series.

The series are tests/support/nightly_series.py's (2% nightly spread around 5.0; noise ``iid``, ``ar1``
with lag-1 correlation 0.5, ``t3`` heavy tails, ``missing`` with a fifth of the nights never run), and
the detector is :func:`harness.analysis.changepoints.find_changes` at its defaults (the CLI's). A
"flag" is what ``history --fail`` fails on (:func:`~harness.analysis.changepoints.failing`): the newest
change, when it is a regression or a drift the worse way within the last 14 nights; for a step at a
known night, a regression or worse drift found at that night.

* **false alarms**: noise-only series judged once at the end (as ``history`` run on a finished year),
  at 30, 90, 365 and 730 nights; and a nightly gate (``history --fail`` every night of a year, as a
  nightly CI job runs it): the share of series with at least one red night;
* **delays**: a step of 3-10% at night 200 (and at night 30: a short history); for each, the share
  flagged within 2, 3, 5 and 7 nights on the new level, judged by a history ending there;
* **power**: the smallest step flagged in 95% of series within 3 nights, within 7 nights, and in a
  finished year with the step at night 200;
* **shapes**: a one-night spike (every night after it), a dip that returns (every night after the
  return), a drift (how many findings);
* **trade-off**: ``--fresh-alpha`` (the online test of the newest nights) and ``--fresh-penalty`` against
  the false alarms and the delay of a 5% step.

    python3 benchmarks/history_alarms.py            # about 7 minutes on a 2-core machine
    python3 benchmarks/history_alarms.py --quick    # about 1 minute, coarser rates
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the tests' support package, as pytest sees it

from support import nightly_series as ns  # noqa: E402

from harness.analysis.changepoints import LISTED, Settings, failing, find_changes, gates  # noqa: E402

SETTINGS = Settings()


def flags(x: np.ndarray, near: int | None = None, settings: Settings = SETTINGS) -> bool:
    """``history --fail`` would fail (no ``near``); a regression is found at ``near`` (within a night)."""
    if near is None:
        return failing(find_changes(x, settings), len(x), settings) is not None
    return any(abs(f.index - near) <= 1 for f in find_changes(x, settings) if gates(f))


def rate(hits: int, n: int) -> str:
    """``k/n = p%`` with the upper end of a 95% Clopper-Pearson interval."""
    from scipy.stats import beta

    hi = beta.ppf(0.975, hits + 1, n - hits) if hits < n else 1.0
    return f"{hits:>4}/{n} = {100 * hits / n:5.2f}% (95% CI up to {100 * hi:.2f}%)"


def false_alarms(n_series: int, lengths: tuple[int, ...], seed: int = 1000) -> None:
    print(f"\n## False alarms: noise only, judged once at the end ({n_series} series each, seeds from {seed})")
    for kind in ns.NOISE:
        for nights in lengths:
            rng = np.random.default_rng(seed + nights + 100_000 * ns.NOISE.index(kind) * (seed != 1000))
            hits = sum(flags(ns.noise(rng, nights, kind)) for _ in range(n_series))
            print(f"{kind:8} {nights:4} nights: {rate(hits, n_series)}")


def nightly_gate(n_series: int, kinds: tuple[str, ...]) -> None:
    print(f"\n## A nightly gate: history --fail every night for a year, noise only ({n_series} series each)")
    for kind in kinds:
        rng = np.random.default_rng(2000)
        red_series, red_nights = 0, 0
        for _ in range(n_series):
            x = ns.noise(rng, 365, kind)
            reds = sum(flags(x[:end]) for end in range(10, 366))
            red_series += reds > 0
            red_nights += reds
        print(f"{kind:8} series with a red night in the year: {rate(red_series, n_series)}; "
              f"red nights {red_nights} of {n_series * 356}")


def delays(sizes: list[float], n_series: int, at: int, kind: str = "iid", most: int = 10) -> dict[float, np.ndarray]:
    out = {}
    for size in sizes:
        rng = np.random.default_rng(3000 + int(size * 1000) + at)
        d = []
        for _ in range(n_series):
            x = ns.step(rng, at + most, at, size, kind)
            d.append(next((k for k in range(1, most + 1) if flags(x[:at + k], at)), most + 1))
        out[size] = np.array(d)
    return out


def print_delays(title: str, table: dict[float, np.ndarray]) -> None:
    print(f"\n## {title}")
    print("step   within 2   within 3   within 5   within 7   median nights")
    for size, d in table.items():
        within = [f"{100 * np.mean(d <= k):7.1f}%" for k in (2, 3, 5, 7)]
        med = np.median(d)
        print(f"{size * 100:4.1f}%  " + "   ".join(within) + f"   {med:g}" + (" (>10)" if med > 10 else ""))


def smallest(table: dict[float, np.ndarray], nights: int) -> str:
    ok = [s for s, d in sorted(table.items()) if np.mean(d <= nights) >= 0.95]
    return f"{ok[0] * 100:.1f}%" if ok else f"> {max(table) * 100:.0f}%"


def power(n_series: int) -> None:
    sizes = [round(0.01 * k / 2, 3) for k in range(4, 25)]  # 2% .. 12% by 0.5%
    table = delays(sizes, n_series, 200)
    print(f"\n## Power at the defaults ({n_series} series per step, 2% nightly spread)")
    print(f"smallest step flagged in 95% of series within 3 nights: {smallest(table, 3)}")
    print(f"smallest step flagged in 95% of series within 7 nights: {smallest(table, 7)}")
    found = None
    for size in sizes:
        rng = np.random.default_rng(4000 + int(size * 1000))
        hits = sum(flags(ns.step(rng, 365, 200, size), 200) for _ in range(n_series))
        if hits >= 0.95 * n_series:
            found = size
            break
    print("smallest step flagged in 95% of finished years (step at night 200 of 365): "
          + (f"{found * 100:.1f}%" if found else "> 12%"))


def trade_off(n_series: int, knobs: tuple[tuple[str, float], ...]) -> None:
    """``--fresh-alpha`` / ``--fresh-penalty``: false alarms on noise against the delay of a 5% step."""
    print(f"\n## Trade-off ({n_series} series each for a nightly gate on a year of noise; {4 * n_series} "
          f"judged once; {2 * n_series} steps of 5%)")
    print("setting              judged once: iid   ar1    gate, series with a red night: iid   ar1   "
          "5% step within 3   within 7")
    for name, value in knobs:
        s = Settings(**{name: value})
        once, red = [], []
        for kind in ("iid", "ar1"):
            rng = np.random.default_rng(7000)
            once.append(np.mean([flags(ns.noise(rng, 365, kind), settings=s) for _ in range(4 * n_series)]))
            rng = np.random.default_rng(7050)
            hits = 0
            for _ in range(n_series):
                x = ns.noise(rng, 365, kind)
                hits += any(flags(x[:end], settings=s) for end in range(10, 366))
            red.append(hits / n_series)
        rng = np.random.default_rng(7100)
        d = []
        for _ in range(n_series * 2):
            x = ns.step(rng, 210, 200, 0.05)
            d.append(next((k for k in range(1, 11) if flags(x[:200 + k], 200, s)), 11))
        arr = np.array(d)
        print(f"{name} {value:<6g}  {100 * once[0]:14.1f}%  {100 * once[1]:5.1f}%  {100 * red[0]:26.0f}%  "
              f"{100 * red[1]:4.0f}%  {100 * np.mean(arr <= 3):16.0f}%  {100 * np.mean(arr <= 7):8.0f}%")


def every_night(make: Callable[[np.random.Generator], np.ndarray], nights: range, n_series: int) -> int:
    red = 0
    rng = np.random.default_rng(5000)
    for _ in range(n_series):
        x = make(rng)
        red += any(flags(x[:end]) for end in nights)
    return red


def shapes(n_series: int) -> None:
    print(f"\n## Shapes ({n_series} series each; 'red': history --fail would fail)")
    for size in (0.3, 1.0):
        for at in (200, 364):
            after = range(at + 1, min(at + 15, 365) + 1)
            red = every_night(lambda r, s=size, a=at: ns.spike(r, 365, a, s), after, n_series)
            base = every_night(lambda r: ns.noise(r, 365), after, n_series)
            print(f"one-night spike +{size * 100:.0f}% at night {at}, every night after it: red in {rate(red, n_series)}"
                  f"; the same nights without the spike: {base}/{n_series}")
    for nights, size in ((3, -0.10), (5, -0.05), (7, -0.20)):
        after = range(300 + nights + 1, 331)
        red = every_night(lambda r, k=nights, s=size: ns.dip(r, 330, 300, k, s), after, n_series)
        base = every_night(lambda r: ns.noise(r, 330), after, n_series)
        print(f"dip {size * 100:+.0f}% for {nights} nights then back, every night after it: red in "
              f"{rate(red, n_series)}; the same nights without the dip: {base}/{n_series}")
    for size, nights in ((0.10, 60), (0.20, 100)):
        rng = np.random.default_rng(6000)
        counts, one_drift = [], 0
        for _ in range(n_series):
            listed = [f for f in find_changes(ns.drift(rng, 365, 150, nights, size), SETTINGS) if f.kind in LISTED]
            counts.append(len(listed))
            one_drift += len(listed) == 1 and listed[0].kind == "drift"
        c = np.bincount(counts)
        print(f"drift +{size * 100:.0f}% over {nights} nights: one drift finding in {rate(one_drift, n_series)}; "
              f"findings per series: " + ", ".join(f"{k}: {v}" for k, v in enumerate(c) if v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer series: coarser rates, about a minute")
    ap.add_argument("--once", type=int, metavar="N",
                    help="only the 365-night noise series judged once: N of each kind, seeds of their own (10000: "
                         "about a minute)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.once:
        false_alarms(args.once, (365,), seed=7000)
        print(f"\n({time.perf_counter() - t0:.0f} s)")
        return
    n = 200 if args.quick else 1000
    print(f"hilbench history at its defaults: {SETTINGS}")
    false_alarms(n, (30, 90, 365, 730))
    nightly_gate(20 if args.quick else 100, ("iid", "ar1") if args.quick else ns.NOISE)
    m = 100 if args.quick else 300
    sizes = [0.03, 0.04, 0.05, 0.07, 0.10]
    print_delays(f"Delays: a step at night 200, iid noise ({m} series per step; nights on the new level)",
                 delays(sizes, m, 200))
    print_delays(f"Delays: a step at night 30 (a short history), iid noise ({m} series per step)",
                 delays(sizes, m, 30))
    for kind in ("ar1", "t3"):
        print_delays(f"Delays: a step at night 200, {kind} noise ({m} series per step)",
                     delays([0.05, 0.10], m, 200, kind))
    power(100 if args.quick else 300)
    shapes(50 if args.quick else 200)
    trade_off(10 if args.quick else 50, (("fresh_alpha", 0.005), ("fresh_alpha", 0.008), ("fresh_alpha", 0.01),
                                         ("fresh_alpha", 0.02),
                                         ("fresh_penalty", 2.0), ("fresh_penalty", 3.0)))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
