"""Change points in one series of nightly values: the detector behind ``hilbench history``
(docs/analysis.md, "How history decides", has the statistics and their measured error rates;
benchmarks/history_alarms.py measures them).

1. **Scale.** The values are taken on the log scale (a change is relative) and divided by the
   night-to-night noise, estimated robustly from the first differences (their median absolute
   deviation sets a winsorising bound, their root mean square the scale) and widened by their lag-1
   autocorrelation to the long-run scale of an AR(1) process: a device whose nights wander together
   needs a larger shift to count. The penalties below are turned into Student's t for the noise
   estimate's degrees of freedom, so a short history asks for more.
2. **Segments.** ruptures' exact penalised segmentation (PELT, least-squares mean shifts; the C
   ``KernelCPD`` with the linear kernel) splits the series wherever a split explains more than
   ``fresh_penalty · ln n`` units of squared noise.
3. **Minimum change, in the detector.** Neighbouring segments whose levels differ by less than
   ``min_change`` are merged, weakest first, and the levels recomputed (what Otava's ``min_magnitude``
   does), so weak points do not cut real segments into pieces.
4. **Both sides.** A segment shorter than ``persist`` nights never makes a level of its own; a run of
   segments of at most ``max_excursion`` nights after which the series comes back (the level after is not
   distinguishable from the level before: below ``min_change`` or short of the penalty) is an
   *excursion*: neither it nor its return is a change.
5. **Evidence.** Each remaining step must explain more than ``penalty · ln n`` (``fresh_penalty · ln n``
   for the newest level while it is at most ``max_excursion`` nights old, so a fresh step is seen within
   days); weaker ones are merged, weakest first.
6. **Drifts.** Consecutive steps the same way are compared with one ramp (flat, straight, flat, knots
   searched on a grid): when the ramp's squared error plus two penalties is lower than the steps' with one
   penalty each, they are one *drift* (the longest such run first, then each side of it).
7. **Persistence.** The newest level counts once ``persist`` of its nights sit nearer it than the old
   level, the last night among them; before that the step is *unconfirmed*. A one-night spike never
   flags.
8. **The newest nights, online.** Beside the offline segmentation, the last ``persist`` and
   ``persist + 1`` nights are tested against the established level before them (a z test, the worse way,
   their mean's standard error from the noise scale and the AR(1) correlation, plus the reference's),
   at ``fresh_alpha / 10`` and ``fresh_alpha``: the false alarms of one judgment are bounded by
   about 1.1 x ``fresh_alpha`` whatever the length of the history. A night more than 5 noise SDs from
   the other nights of the window is a spike and left out, and the step must not rest on one night:
   without its strongest night the rest must still be 1 SD of their mean off the old level.

:func:`failing` judges the current state (``history --fail``): only the newest level change counts,
when it is a regression (or a drift the worse way) and it happened within ``fail_window`` nights.

ruptures needs only numpy and scipy (one package more than hilbench's own); everything above the
segmentation is the policy on top of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.errors import AnalysisError

__all__ = ["Settings", "Finding", "KINDS", "LISTED", "find_changes", "noise_scale", "gates", "failing"]

#: every kind of finding; :data:`LISTED` are listed by default, the others with ``--all``
KINDS = ("regression", "improvement", "drift", "small", "unconfirmed", "excursion")
LISTED = ("regression", "improvement", "drift")
_WINSOR = 4.0  # differences beyond this many robust SDs count as this many (steps, spikes)
_TRIM_R = 3.0  # differences beyond this many robust SDs are left out of the autocorrelation
_PHI_MAX = 0.8
_PHI_NIGHTS = 12  # the autocorrelation is estimated from this many nights on
_SPIKE_SD = 5.0  # a night this many noise SDs from the rest of the newest nights is a spike, left out
_LEAVE_ONE_OUT_Z = 1.0  # without its strongest night, the newest nights must still be this far off


@dataclass(frozen=True)
class Settings:
    """What :func:`find_changes` asks of a change (the CLI's options, docs/analysis.md)."""

    min_change: float = 0.02  #: the smallest relative change that counts
    persist: int = 2  #: nights the newest level must hold (>= 1)
    penalty: float = 3.0  #: evidence a change needs, in units of ln(n) squared noise
    fresh_penalty: float = 2.5  #: the same for the newest level while it is at most max_excursion nights old
    max_excursion: int = 14  #: the longest run of nights that can be an excursion
    higher_is_better: bool = False  #: throughput-like series: a fall is the regression
    #: one-sided level of the online test of the newest persist + 1 nights (persist nights: a tenth of it); 0.008
    #: keeps noise years with wandering (AR(1)) nights under 1% flagged (docs/analysis.md, measured error rates)
    fresh_alpha: float = 0.008
    fail_window: int = 14  #: ``--fail`` fails on a newest change at most this many nights old

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_change) and 0 <= self.min_change < 1):
            raise AnalysisError(f"the minimum change must be between 0% and 100% (got {self.min_change * 100:g}%)")
        if self.persist < 1:
            raise AnalysisError(f"persist must be at least 1 night (got {self.persist})")
        if not (self.penalty > 0 and self.fresh_penalty > 0):
            raise AnalysisError("the penalties must be positive")
        if self.max_excursion < self.persist:
            raise AnalysisError("max_excursion must be at least persist nights")
        if not 0 < self.fresh_alpha < 0.5:
            raise AnalysisError(f"fresh_alpha must be between 0 and 0.5 (got {self.fresh_alpha:g})")
        if self.fail_window < 1:
            raise AnalysisError(f"the fail window must be at least 1 night (got {self.fail_window})")


@dataclass(frozen=True)
class Finding:
    """One change in a series. ``index``: 0-based position of the first night on the new level (of a
    drift: its first night; of an excursion: its first night); ``span``: nights the change took (1 for a
    step, the ramp of a drift, the length of an excursion); ``before``/``after``: the levels (geometric
    means; of an excursion, the level around it and its own); ``nights_before``/``nights_after``: nights
    on the level before and on the new level (around an excursion: before it and after it)."""

    index: int
    kind: str
    before: float
    after: float
    nights_before: int
    nights_after: int
    span: int = 1

    @property
    def change(self) -> float:
        return self.after / self.before - 1.0


def gates(f: Finding, higher_is_better: bool = False) -> bool:
    """Whether ``f`` fails a gate (``history --fail``): a regression, or a drift the worse way."""
    worse = f.change < 0 if higher_is_better else f.change > 0
    return f.kind == "regression" or (f.kind == "drift" and worse)


def failing(findings: list[Finding], n: int, settings: Settings | None = None) -> Finding | None:
    """The finding that fails ``history --fail`` now, or None: the newest level change (a regression,
    improvement or drift) of a series of ``n`` nights, when it is a regression or a drift the worse way
    whose new level began (a drift: ended) within the last ``fail_window`` nights. A regression followed by
    a recovery, or one older than the window (accepted as the new baseline), no longer fails."""
    s = settings or Settings()
    changes = [f for f in findings if f.kind in LISTED]
    if not changes:
        return None
    newest = max(changes, key=lambda f: f.index + f.span)
    if gates(newest, s.higher_is_better) and newest.index + newest.span - 1 >= n - s.fail_window:
        return newest
    return None


def noise_scale(y: np.ndarray) -> tuple[float, float]:
    """``(sigma, phi)`` of a log-scale series: the night-to-night SD and the lag-1 autocorrelation, from the
    first differences (for AR(1) noise, var(d) = 2σ²(1-φ) and corr(d_t, d_t-1) = -(1-φ)/2), winsorised
    at 4 robust SDs (for φ, pairs with a difference beyond 3 are left out) so a few steps and spikes do
    not count; φ is taken as 0 below 12 nights."""
    from scipy.stats import median_abs_deviation

    d = np.diff(y)
    if len(d) < 3:
        return 0.0, 0.0
    mad = float(median_abs_deviation(d, scale="normal"))
    centred = d - np.median(d)
    rms = float(np.sqrt(np.mean(np.clip(centred, -_WINSOR * mad, _WINSOR * mad) ** 2)))
    if rms <= 0:
        return 0.0, 0.0
    phi = 0.0
    if len(d) >= _PHI_NIGHTS:  # fewer: one step among the differences would read as autocorrelation
        inside = np.abs(centred) <= _TRIM_R * mad  # a step or a spike: its differences left out, with their pairs
        pair = inside[1:] & inside[:-1]
        a, b = centred[1:][pair], centred[:-1][pair]
        r = float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else -0.5
        phi = float(np.clip(1 + 2 * r, 0.0, _PHI_MAX))
    return rms / math.sqrt(2 * (1 - phi)), phi


@dataclass
class _Group:
    """Established level: the nights (positions) it holds, excursions left out."""

    idx: np.ndarray
    level: float  # mean of log values

    @property
    def n(self) -> int:
        return len(self.idx)


def find_changes(values: np.ndarray | list[float], settings: Settings | None = None) -> list[Finding]:
    """Findings in one series of positive values in night order (see the module's docstring), by index."""
    s = settings or Settings()
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise AnalysisError("a series is one-dimensional")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise AnalysisError("a series' values must be positive numbers")
    n = len(x)
    if n < 2 * s.persist + 1 or n < 4:
        return []
    return _Detector(np.log(x), s).run()


class _Detector:
    def __init__(self, y: np.ndarray, s: Settings) -> None:
        from scipy import stats

        self.y, self.s, self.n = y, s, len(y)
        sigma, phi = noise_scale(y)
        # the long-run scale: the SD of a mean of k nights is about this / sqrt(k)
        self.scale = max(sigma * math.sqrt((1 + phi) / (1 - phi)), 1e-9)
        nu = max(1.0, 0.6 * (self.n - 2))  # the RMS of differences has about 2/3 (n-1) degrees of freedom

        def as_t(c: float) -> float:
            z = math.sqrt(c * math.log(self.n))
            return float(stats.t.isf(stats.norm.sf(z), nu) ** 2)

        self.beta, self.beta_fresh = as_t(s.penalty), as_t(s.fresh_penalty)
        self.thr = math.log1p(s.min_change)
        self.sigma, self.phi, self.nu = max(sigma, 1e-9), phi, nu

    # -- evidence -------------------------------------------------------------------------------------------
    def _weak(self, a: np.ndarray, b: np.ndarray, newest: bool) -> bool:
        """Is the step from nights ``a`` to nights ``b`` below the minimum change or short of the penalty?"""
        la, lb = self.y[a].mean(), self.y[b].mean()
        return abs(lb - la) < self.thr or self._gain(a, b) < self._need(len(b), newest)

    def _gain(self, a: np.ndarray, b: np.ndarray) -> float:
        na, nb = len(a), len(b)
        return float(na * nb / (na + nb) * ((self.y[b].mean() - self.y[a].mean()) / self.scale) ** 2)

    def _need(self, nights: int, newest: bool) -> float:
        return self.beta_fresh if newest and nights <= self.s.max_excursion else self.beta

    # -- the steps ------------------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        try:
            import ruptures
        except ImportError as exc:
            raise AnalysisError("change-point detection needs ruptures: pip install 'hilbench[analysis]'") from exc

        z = ((self.y - np.median(self.y)) / self.scale).reshape(-1, 1)
        segmenter = ruptures.KernelCPD(kernel="linear", min_size=1).fit(z)
        cps = [int(b) for b in segmenter.predict(pen=self.beta_fresh)[:-1]]
        cps, small = self._merge_small(cps)
        segs, excluded = self._excursions(cps)
        groups = self._groups(segs, excluded)
        out = self._steps(groups)
        out += self._small(small, groups)
        out += self._excursion_findings(segs, excluded, groups)
        out = self._online(out, groups)
        return sorted(out, key=lambda f: (f.index, KINDS.index(f.kind)))

    # -- the newest nights, online -------------------------------------------------------------------------
    def _online(self, out: list[Finding], groups: list[_Group]) -> list[Finding]:
        """Findings with the online test of the newest nights applied (module docstring, step 8): a regression it
        finds replaces an unconfirmed step there; nothing changes when the offline steps already hold one."""
        p = self.s.persist
        if any(f.kind in LISTED and f.index + f.span >= self.n - p - 1 for f in out):
            return out
        for k, alpha in ((p, self.s.fresh_alpha / 10), (p + 1, self.s.fresh_alpha)):
            found = self._window(k, alpha, groups)
            if found is not None:
                return [f for f in out if not (f.kind == "unconfirmed" and f.index >= found.index - 1)] + [found]
        return out

    def _window(self, k: int, alpha: float, groups: list[_Group]) -> Finding | None:
        """The last ``k`` nights against the established level before them, one-sided (the worse way) at ``alpha``."""
        from scipy import stats

        start = self.n - k
        ref = next((g for g in reversed(groups) if g.idx[0] < start), None)
        if ref is None or start < 2:
            return None
        r = ref.idx[ref.idx < start]
        w = self.y[start:]
        others = [np.delete(w, j) for j in range(k)]
        keep = np.array([len(o) == 0 or abs(w[j] - np.median(o)) <= _SPIKE_SD * self.sigma
                         for j, o in enumerate(others)])
        w = w[keep]
        if len(w) < self.s.persist:
            return None
        level = float(self.y[r].mean())
        z = self._z(w, level, len(r))
        crit = float(stats.t.isf(alpha, self.nu))
        worse = -1.0 if self.s.higher_is_better else 1.0  # only the worse way: improvements can wait
        if worse * z <= crit or abs(float(np.mean(w)) - level) < self.thr:
            return None
        rest = np.delete(w, int(np.argmax(worse * w)))
        if len(rest) and worse * self._z(rest, level, len(r)) <= _LEAVE_ONE_OUT_Z:
            return None
        if self._returns(w, ref, groups, crit):
            return None
        return Finding(start, "regression", math.exp(level), math.exp(float(np.mean(w))), len(r), k)

    def _returns(self, w: np.ndarray, ref: _Group, groups: list[_Group], crit: float) -> bool:
        """Is the window a return to the level before a young reference level (an excursion ending)?"""
        at = next(i for i, g in enumerate(groups) if g is ref)
        if ref.n > self.s.max_excursion or at == 0:
            return False
        prev = groups[at - 1]
        return abs(float(np.mean(w)) - prev.level) < self.thr or abs(self._z(w, prev.level, prev.n)) <= crit

    def _z(self, w: np.ndarray, level: float, n_ref: int) -> float:
        """(mean of ``w`` - ``level``) over its standard error: an AR(1) mean of len(w) nights, and the
        reference's mean of ``n_ref`` nights at the long-run scale."""
        m = len(w)
        factor = 1 + 2 * sum((1 - j / m) * self.phi**j for j in range(1, m))
        se = math.sqrt(self.sigma**2 * factor / m + self.scale**2 / n_ref)
        return (float(np.mean(w)) - level) / se

    def _levels(self, bounds: list[int]) -> list[float]:
        return [float(self.y[a:b].mean()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _merge_small(self, cps: list[int]) -> tuple[list[int], list[int]]:
        """Merge neighbouring segments closer than the minimum change, weakest first."""
        removed = []
        while cps:
            d = np.abs(np.diff(self._levels([0, *cps, self.n])))
            k = int(np.argmin(d))
            if d[k] >= self.thr:
                break
            removed.append(cps.pop(k))
        return cps, removed

    def _excursions(self, cps: list[int]) -> tuple[list[tuple[int, int]], list[bool]]:
        """Segments and which are left out of the levels: short ones (< persist nights) that come back or join
        the neighbour nearer their level, and runs of up to ``max_excursion`` nights that come back."""
        s, n = self.s, self.n
        cps = list(cps)
        short_back: set[int] = set()  # starts of short segments that came back
        while True:
            b = [0, *cps, n]
            segs = list(zip(b[:-1], b[1:], strict=True))
            m = len(segs)
            short = [i for i in range(m - 1) if segs[i][1] - segs[i][0] < s.persist and segs[i][0] not in short_back]
            if not short:
                break
            i = short[0]
            if 0 < i < m - 1 and self._weak(np.arange(*segs[i - 1]), np.arange(*segs[i + 1]), i + 1 == m - 1):
                short_back.add(segs[i][0])
                continue
            levels = self._levels(b)
            join_next = i == 0 or abs(levels[i + 1] - levels[i]) < abs(levels[i] - levels[i - 1])
            cps.remove(segs[i][1] if join_next else segs[i][0])
        excluded = [a in short_back for a, _ in segs]
        for i in range(1, m - 1):
            if excluded[i]:
                continue
            nights = 0
            for j in range(i, m - 1):
                nights += segs[j][1] - segs[j][0]
                if nights > s.max_excursion:
                    break
                if not excluded[j + 1] and self._weak(np.arange(*segs[i - 1]), np.arange(*segs[j + 1]),
                                                      j + 1 == m - 1):
                    excluded[i:j + 1] = [True] * (j + 1 - i)
                    break
        return segs, excluded

    def _groups(self, segs: list[tuple[int, int]], excluded: list[bool]) -> list[_Group]:
        """Established levels: segments left in, neighbours merged while a step is weak (weakest first)."""
        parts = [np.arange(a, b) for (a, b), out in zip(segs, excluded, strict=True) if not out]
        while len(parts) > 1:
            worst, at = math.inf, -1
            for q in range(len(parts) - 1):
                a, b = parts[q], parts[q + 1]
                newest = q + 1 == len(parts) - 1
                need = self._need(len(b), newest)
                if self._weak(a, b, newest):
                    score = self._gain(a, b) / need
                    if score < worst:
                        worst, at = score, q
            if at < 0:
                break
            parts[at] = np.concatenate([parts[at], parts.pop(at + 1)])
        return [_Group(p, float(self.y[p].mean())) for p in parts]

    def _steps(self, g: list[_Group]) -> list[Finding]:
        s = self.s
        out: list[Finding] = []
        signs = [np.sign(g[q + 1].level - g[q].level) for q in range(len(g) - 1)]
        in_drift: set[int] = set()
        q = 0
        while q < len(signs):
            r = q
            while r + 1 < len(signs) and signs[r + 1] == signs[q]:
                r += 1
            self._drifts(g, q, r, out, in_drift)
            q = r + 1
        for q in range(len(signs)):
            if q in in_drift:
                continue
            a, b = g[q], g[q + 1]
            kind = "regression" if (b.level < a.level) == s.higher_is_better else "improvement"
            if q + 1 == len(g) - 1 and not self._held(a, b):
                kind = "unconfirmed"
            out.append(Finding(int(b.idx[0]), kind, math.exp(a.level), math.exp(b.level), a.n, b.n))
        return out

    def _drifts(self, g: list[_Group], q: int, r: int, out: list[Finding], in_drift: set[int]) -> None:
        """Drifts among steps ``q..r`` (all the same way): the longest run of them that one ramp explains, then
        the same on each side of it."""
        for length in range(r - q + 1, 0, -1):
            for first in range(q, r - length + 2):
                drift = self._drift(g, first, first + length)
                if drift is not None:
                    out.append(drift)
                    in_drift.update(range(first, first + length))
                    if first > q:
                        self._drifts(g, q, first - 1, out, in_drift)
                    if first + length <= r:
                        self._drifts(g, first + length, r, out, in_drift)
                    return

    def _held(self, a: _Group, b: _Group) -> bool:
        """Has the newest level held: ``persist`` nights nearer it than the old level, the last night among them?"""
        if b.n < self.s.persist:
            return False
        if b.n > self.s.max_excursion:
            return True
        yb = self.y[b.idx]
        on_new = np.abs(yb - b.level) < np.abs(yb - a.level)
        return bool(on_new.sum() >= self.s.persist and on_new[-1])

    def _drift(self, g: list[_Group], a: int, b: int) -> Finding | None:
        """Groups ``a..b`` (steps the same way) as one ramp, when it explains them better than the steps."""
        idx = np.concatenate([x.idx for x in g[a:b + 1]])
        y = self.y[idx]
        first, last = int(g[a + 1].idx[0]), int(g[b].idx[0])
        reach = max(last - first, self.s.max_excursion) + self.s.max_excursion
        k1s = np.arange(max(int(idx[0]) + self.s.persist, first - reach), first + 1)
        k2s = np.arange(last, min(int(idx[-1]) + 1, last + reach) + 1)
        # A coarse grid of at most 40 x 40 knot pairs, then every pair around the best of them.
        stride = max(1, math.ceil(max(len(k1s), len(k2s)) / 40))
        best = self._ramp(idx, y, k1s[::stride], k2s[::stride])
        if best is None:
            return None
        if stride > 1:
            k1, k2 = best[1], best[2]
            fine = self._ramp(idx, y, k1s[np.abs(k1s - k1) < stride], k2s[np.abs(k2s - k2) < stride])
            best = fine if fine is not None and fine[0] <= best[0] else best
        sse, k1, k2, lo, hi = best
        steps_sse = sum(float(((self.y[x.idx] - x.level) ** 2).sum()) for x in g[a:b + 1])
        ramp_cost = sse / self.scale**2 + 2 * self.beta
        steps_cost = steps_sse / self.scale**2 + (b - a) * self.beta
        if not ramp_cost < steps_cost or abs(hi - lo) < self.thr:
            return None
        return Finding(k1, "drift", math.exp(lo), math.exp(hi), g[a].n, g[b].n, k2 - k1)

    def _ramp(self, idx: np.ndarray, y: np.ndarray, k1s: np.ndarray, k2s: np.ndarray
              ) -> tuple[float, int, int, float, float] | None:
        """The best flat-straight-flat fit of ``y`` (at positions ``idx``) with knots from ``k1s`` x ``k2s``:
        (squared error, k1, k2, level before, level after); a change over more than max_excursion nights only
        (faster is a step)."""
        k1, k2 = (m.ravel() for m in np.meshgrid(k1s, k2s, indexing="ij"))
        keep = k2 - k1 > self.s.max_excursion
        if not keep.any():
            return None
        k1, k2 = k1[keep], k2[keep]
        w = np.clip((idx[None, :] - k1[:, None] + 0.5) / (k2 - k1)[:, None], 0.0, 1.0)
        u = 1.0 - w
        suu, sww, suw = (u * u).sum(1), (w * w).sum(1), (u * w).sum(1)
        suy, swy = (u * y).sum(1), (w * y).sum(1)
        det = suu * sww - suw**2
        with np.errstate(divide="ignore", invalid="ignore"):
            lo, hi = (sww * suy - suw * swy) / det, (suu * swy - suw * suy) / det
            sse = ((y[None, :] - lo[:, None] * u - hi[:, None] * w) ** 2).sum(1)
        sse[~np.isfinite(sse)] = np.inf
        j = int(np.argmin(sse))
        if not np.isfinite(sse[j]):
            return None
        return float(sse[j]), int(k1[j]), int(k2[j]), float(lo[j]), float(hi[j])

    def _small(self, removed: list[int], groups: list[_Group]) -> list[Finding]:
        """Change points the minimum change merged away, measured inside the level that holds them."""
        out = []
        for cp in sorted(removed):
            for grp in groups:
                before, after = grp.idx[grp.idx < cp], grp.idx[grp.idx >= cp]
                if len(before) and len(after) and grp.idx[0] < cp <= grp.idx[-1]:
                    lb, la = float(self.y[before].mean()), float(self.y[after].mean())
                    out.append(Finding(cp, "small", math.exp(lb), math.exp(la), len(before), len(after)))
        return out

    def _excursion_findings(self, segs: list[tuple[int, int]], excluded: list[bool],
                            groups: list[_Group]) -> list[Finding]:
        out = []
        k = 0
        while k < len(segs):
            if not excluded[k]:
                k += 1
                continue
            j = k
            while j + 1 < len(segs) and excluded[j + 1]:
                j += 1
            start, end = segs[k][0], segs[j][1]
            before = next((x for x in reversed(groups) if x.idx[0] < start), None)
            after = next((x for x in groups if x.idx[-1] >= end), None)
            around = before or after
            if around is not None:
                level = float(self.y[start:end].mean())
                out.append(Finding(start, "excursion", math.exp(around.level), math.exp(level),
                                   int((before.idx < start).sum()) if before else 0,
                                   int((after.idx >= end).sum()) if after else 0, end - start))
            k = j + 1
        return out
