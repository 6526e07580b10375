"""Seeded nightly series for the history detector: the noise kinds and the shapes that
tests/test_changepoints.py asserts on and benchmarks/history_alarms.py measures.

Noise is multiplicative with a 2% spread (the SD of the log values) around 5.0:
``iid`` (stationary), ``ar1`` (AR(1), lag-1 correlation 0.5: nights that wander together, a
device's drift of state), ``t3`` (Student's t with 3 degrees of freedom scaled to the same SD: heavy
tails, one night in a few hundred far off) and ``missing`` (iid with a fifth of the nights never run,
so the series is shorter than the calendar).
"""

from __future__ import annotations

import numpy as np

__all__ = ["NOISE", "SPREAD", "noise", "step", "spike", "dip", "drift"]

SPREAD = 0.02
NOISE = ("iid", "ar1", "t3", "missing")
LEVEL = 5.0


def noise(rng: np.random.Generator, n: int, kind: str = "iid", spread: float = SPREAD) -> np.ndarray:
    """``n`` nightly values of pure noise of ``kind`` (for ``missing``: about ``n``, a fifth of 1.25 n dropped)."""
    if kind == "iid":
        e = spread * rng.standard_normal(n)
    elif kind == "ar1":
        phi = 0.5
        shocks = spread * np.sqrt(1 - phi**2) * rng.standard_normal(n)
        e = np.empty(n)
        e[0] = spread * rng.standard_normal()
        for t in range(1, n):
            e[t] = phi * e[t - 1] + shocks[t]
    elif kind == "t3":
        e = spread / np.sqrt(3) * rng.standard_t(3, n)
    elif kind == "missing":
        full = spread * rng.standard_normal(int(n * 1.25))
        e = full[rng.random(len(full)) >= 0.2]
    else:
        raise ValueError(f"unknown noise {kind!r}")
    return LEVEL * np.exp(e)


def step(rng: np.random.Generator, n: int, at: int, size: float, kind: str = "iid") -> np.ndarray:
    """A lasting step of ``size`` (0.05 = 5% slower) from night ``at`` on."""
    x = noise(rng, n, kind)
    x[at:] *= 1 + size
    return x


def spike(rng: np.random.Generator, n: int, at: int, size: float = 0.3) -> np.ndarray:
    """One bad night."""
    x = noise(rng, n)
    x[at] *= 1 + size
    return x


def dip(rng: np.random.Generator, n: int, at: int, nights: int, size: float = -0.1) -> np.ndarray:
    """``nights`` nights ``size`` off (a dip: faster), then back to the old level."""
    x = noise(rng, n)
    x[at:at + nights] *= 1 + size
    return x


def drift(rng: np.random.Generator, n: int, at: int, nights: int, size: float = 0.2) -> np.ndarray:
    """A slow change of ``size`` in all, spread evenly over ``nights`` from night ``at``."""
    x = noise(rng, n)
    ramp = np.clip((np.arange(n) - at) / nights, 0.0, 1.0)
    return x * (1 + size) ** ramp
