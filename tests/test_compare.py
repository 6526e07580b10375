"""hilbench compare: the regression check on seeded synthetic series written straight into a store,
selections, output formats, and one end-to-end compare of two real `hilbench run` sessions."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from harness.analysis.compare import compare, compare_series, compare_values, default_selections, select_runs
from harness.cli import main
from harness.cli.exits import EXIT_REGRESSED
from harness.errors import AnalysisError
from harness.store import Store

BASE_NS = 2_000_000


def series(kind: str, n: int, rng: np.random.Generator, step: float = 0.0) -> np.ndarray:
    """A run's latencies (ns, in time order) under one noise model, slowed down by ``step``."""
    if kind == "iid":
        x = BASE_NS * (1 + 0.05 * rng.standard_normal(n))
    elif kind == "drift":
        # A warming device: a ramp the same in every run, plus AR(1) wander and white noise.
        d = np.zeros(n)
        e = rng.standard_normal(n) * 0.001
        for i in range(1, n):
            d[i] = 0.98 * d[i - 1] + e[i]
        x = BASE_NS * (1 + 0.03 * (1 - np.exp(-np.arange(n) / 200)) + d + 0.03 * rng.standard_normal(n))
    elif kind == "bimodal":
        x = np.where(rng.random(n) < 0.3, 1.3, 1.0) * BASE_NS * (1 + 0.02 * rng.standard_normal(n))
    else:
        raise ValueError(kind)
    return np.maximum(x * (1 + step), 1).astype(np.int64)


class StoreBuilder:
    """Writes runs and samples with Store.write_table, as the runner would."""

    def __init__(self, root: Path) -> None:
        self.store = Store(root)
        self.store.ensure_writable()
        self.n = 0
        self.t0 = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.timezone.utc)

    def run(self, session: str, model: str, lat: np.ndarray, *, day: int = 0, target: str = "board",
            hwm_kb: int | None = 50_000, labels: dict[str, str] | None = None, plan: str = "nightly",
            emulated: bool = False) -> str:
        self.n += 1
        run_id = f"r{self.n:05d}"
        started = self.t0 + dt.timedelta(days=day, seconds=self.n)
        t_ns = np.concatenate(([0], np.cumsum(lat[:-1]))).astype(np.int64)
        self.store.write_table("samples", run_id, {
            "run_id": [run_id] * len(lat), "phase": ["timed"] * len(lat), "iteration": list(range(len(lat))),
            "latency_ns": lat.tolist(), "t_ns": t_ns.tolist()})
        self.store.write_table("runs", run_id, [{
            "run_id": run_id, "session_id": session, "plan": plan, "model": model, "target": target,
            "backend": "onnxruntime", "settings": {"threads": 1}, "status": "ok", "started_at": started,
            "labels": labels or {}, "hwm_kb": hwm_kb, "timed_count": len(lat), "timed_ns": int(lat.sum()),
            "valid": True, "emulated": emulated}])
        return run_id


@pytest.mark.slow
def test_no_change_false_positive_rate_and_steps_caught(tmp_path):
    """Many configurations, no change: at most 1% flagged at the 2% threshold (after BH);
    +5% and +10% steps are all caught, +3% mostly."""
    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(7)
    kinds = ("iid", "drift", "bimodal")
    per_kind = 30
    for kind in kinds:
        for i in range(per_kind):
            b.run("s-base", f"{kind}-{i}", series(kind, 700, rng), day=0)
            b.run("s-cand", f"{kind}-{i}", series(kind, 700, rng), day=1)
    for kind in kinds:
        for step in (0.03, 0.05, 0.10):
            for i in range(4):
                b.run("s-base", f"{kind}-step{step}-{i}", series(kind, 700, rng), day=0)
                b.run("s-cand", f"{kind}-step{step}-{i}", series(kind, 700, rng, step), day=1)
    store = b.store
    base, cand = default_selections(store)
    assert (base.spec, cand.spec) == ("s-base", "s-cand")
    # One run a side and no history: the within-session test alone (shift_floor=0). At the default floor a 3% or
    # 5% step of one process a side is inconclusive instead (tests/test_compare_processes.py).
    result = compare(store, base, cand, metrics=("p50", "p99"), resamples=300, shift_floor=0.0)
    by_model = {}
    for p in result.pairs:
        by_model.setdefault(p.model, {})[p.metric] = p
    no_change = [p for m, d in by_model.items() if "step" not in m for p in d.values()]
    assert len(no_change) == 2 * len(kinds) * per_kind
    false_pos = sum(p.regressed for p in no_change)
    assert false_pos / len(no_change) <= 0.01
    assert not any(p.verdict == "faster" for p in no_change)
    for kind in kinds:
        for step, min_caught in ((0.05, 4), (0.10, 4), (0.03, 3)):
            caught = sum(by_model[f"{kind}-step{step}-{i}"]["p50"].regressed for i in range(4))
            assert caught >= min_caught, (kind, step, caught)
    step_pair = by_model["iid-step0.05-0"]["p50"]
    assert step_pair.ci_low > 1.0 and step_pair.q_value < 0.01 and 1.03 < step_pair.ratio < 1.07
    assert result.regressions


def test_block_test_is_against_scipy_and_survives_drift():
    rng = np.random.default_rng(3)
    base, cand = series("iid", 700, rng), series("iid", 700, rng, 0.05)
    t = compare_series(base, cand, 0.5, resamples=300)
    from scipy.stats import mannwhitneyu

    blocks_b = np.median(base[:700].reshape(-1, 25), axis=1)
    blocks_c = np.median(cand[:700].reshape(-1, 25), axis=1)
    assert t.p_slower == pytest.approx(mannwhitneyu(blocks_b, blocks_c, alternative="less").pvalue)
    # the ratio is the point estimate of what the interval is about: the median of block medians
    assert t.ratio == pytest.approx(np.median(blocks_c) / np.median(blocks_b))
    assert t.baseline == pytest.approx(np.median(base)) and t.candidate == pytest.approx(np.median(cand))
    assert t.ci_low <= t.ratio <= t.ci_high
    # A warming device measured per sample looks different from itself; block medians of two such runs do not.
    warm = [series("drift", 700, np.random.default_rng(s)) for s in (10, 11)]
    per_sample = mannwhitneyu(warm[0][:350], warm[1][350:], alternative="less").pvalue
    assert per_sample < 0.01  # the drift alone fools a per-sample test on halves of runs
    assert compare_series(warm[0], warm[1], 0.5, resamples=300).p_slower > 0.01


def test_slow_models_use_one_second_blocks():
    lat = np.full(40, 300_000_000, dtype=np.int64)  # 0.3 s per inference: 4 per block
    from harness.analysis.compare import block_size

    assert block_size(lat) == 4
    assert block_size(np.full(100, 1_000_000)) == 25


def test_history_raises_the_threshold(tmp_path):
    """Twice the baseline's session-to-session variation (here ~2.5%) hides a 3% step."""
    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(11)
    levels = [1.0, 1.03, 0.98, 1.025, 0.975, 1.0]
    for day, level in enumerate(levels):
        b.run(f"s{day}", "m", (series("iid", 700, rng) * level).astype(np.int64), day=day)
    b.run("s9", "m", (series("iid", 700, rng) * 1.03).astype(np.int64), day=9)
    store = b.store
    runs = store.runs()
    result = compare(store, select_runs(runs, "s5"), select_runs(runs, "s9"), metrics=("p50",), resamples=300)
    pair = result.pairs[0]
    assert pair.history_cv is not None and pair.threshold == pytest.approx(2 * pair.history_cv)
    assert pair.threshold > 0.03 and not pair.regressed


@pytest.mark.slow
def test_sessions_that_shift_as_a_whole_are_not_regressions(tmp_path):
    """Real sessions move as a whole (1% here: another boot, another thermal state), which no test on
    two sessions' samples can see. With the baseline's history the interval includes that variation:
    no-change pairs stay under 1% flagged for p50 and p99 while +8% steps are caught. Without history
    the bound must clear the threshold, which holds the rate down too."""
    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(21)
    kinds, per_kind, nights = ("iid", "drift", "bimodal"), 12, 6

    def night(kind: str, step: float = 0.0) -> np.ndarray:
        return (series(kind, 700, rng, step) * (1 + 0.01 * rng.standard_normal())).astype(np.int64)

    for day in range(nights):
        for kind in kinds:
            for i in range(per_kind):
                b.run(f"s{day}", f"{kind}-{i}", night(kind), day=day)
            for i in range(3):
                last = day == nights - 1
                b.run(f"s{day}", f"{kind}-step-{i}", night(kind, 0.08 if last else 0.0), day=day)
    runs = b.store.runs()
    with_history = compare(b.store, select_runs(runs, f"s{nights - 2}"), select_runs(runs, f"s{nights - 1}"),
                           metrics=("p50", "p99"), resamples=300)
    no_change = [p for p in with_history.pairs if "step" not in p.model]
    assert all(p.history_cv is not None and "session-to-session" in p.note for p in no_change)
    assert sum(p.regressed for p in no_change) / len(no_change) <= 0.01
    steps = [p for p in with_history.pairs if "step" in p.model and p.metric == "p50"]
    assert sum(p.regressed for p in steps) >= 7, [(p.model, round(p.ratio, 3), p.verdict) for p in steps]
    two_only = compare(b.store, select_runs(runs, "s0"), select_runs(runs, "s1"), metrics=("p50", "p99"),
                       resamples=300)
    assert all(p.history_cv is None and "no session history" in p.note for p in two_only.pairs)
    assert sum(p.regressed for p in two_only.pairs) / len(two_only.pairs) <= 0.02


def test_per_run_metrics_need_repeats():
    one = compare_values([50_000], [80_000])
    assert math.isnan(one.p_slower) and "repeat" in one.note and one.ratio == pytest.approx(1.6)
    many = compare_values([50_000, 50_100, 49_900, 50_050, 49_950], [60_000, 60_100, 59_900, 60_050, 59_950],
                          resamples=500)
    assert many.p_slower < 0.01 and many.ci_low > 1.15


def test_selections(tmp_path):
    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(1)
    r1 = b.run("s20261101-aaa", "m", series("iid", 100, rng), day=0, labels={"build": "abc", "git": "v1.2"})
    r2 = b.run("s20261102-bbb", "m", series("iid", 100, rng), day=1, labels={"build": "def"})
    runs = b.store.runs()
    assert select_runs(runs, "s20261101").run_ids == (r1,)
    assert select_runs(runs, "build=def").run_ids == (r2,)
    assert select_runs(runs, "v1.2").run_ids == (r1,)
    assert select_runs(runs, "2026-11-02").run_ids == (r2,)
    assert select_runs(runs, f"{r1},{r2}").run_ids == (r1, r2)
    with pytest.raises(AnalysisError, match="matches no successful run"):
        select_runs(runs, "build=zzz")
    with pytest.raises(AnalysisError, match="ambiguous"):
        select_runs(runs, "s2026110")


@pytest.mark.slow
def test_formats_and_exit_status(tmp_path, capsys):
    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(5)
    for i in range(2):
        b.run("s-a", f"m{i}", series("iid", 700, rng), day=0, labels={"build": "a"})
    b.run("s-b", "m0", series("iid", 700, rng), day=1, labels={"build": "b"})
    b.run("s-b", "m1", series("iid", 700, rng, 0.10), day=1, labels={"build": "b"})
    store_dir = str(tmp_path / "res")
    junit = tmp_path / "compare.xml"
    code = main(["compare", "build=a", "build=b", "--store", store_dir, "--format", "junit", "--output", str(junit)])
    assert code == EXIT_REGRESSED
    table = capsys.readouterr().out
    assert "REGRESSED" in table and "SLOWER" in table
    root = ET.parse(junit).getroot()
    failures = root.findall("testcase/failure")
    assert root.get("failures") == str(len(failures)) and failures
    assert all("m1" in case.get("classname") for case in root.findall("testcase") if case.find("failure") is not None)
    assert main(["compare", "s-a", "s-b", "--store", store_dir, "--format", "json"]) == EXIT_REGRESSED
    data = json.loads(capsys.readouterr().out)
    assert data["regressed"] is True
    assert {p["model"] for p in data["pairs"] if p["regressed"]} == {"m1"}
    assert main(["compare", "s-a", "s-b", "--store", store_dir, "--format", "markdown", "--metric", "p50"]) == EXIT_REGRESSED
    md = capsys.readouterr().out
    assert md.startswith("# hilbench compare") and "| configuration |" in md
    # The same session on both sides of one config: unchanged -> exit 0.
    assert main(["compare", "s-a", "s-b", "--store", store_dir, "--metric", "peak_memory"]) == 0
    assert main(["compare", "nothing", "s-b", "--store", store_dir]) == 1
    assert "matches no successful run" in capsys.readouterr().err


def test_junit_from_a_store_with_control_characters_is_valid_xml(tmp_path):
    """Model names in a (shared, untrusted) store may hold control characters: the JUnit file stays XML."""
    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(7)
    evil = "m\x1b[2J\x00\x07"
    b.run("s-a", evil, series("iid", 700, rng), day=0, labels={"build": "a"})
    b.run("s-b", evil, series("iid", 700, rng, 0.10), day=1, labels={"build": "b"})
    junit = tmp_path / "compare.xml"
    assert main(["compare", "build=a", "build=b", "--store", str(tmp_path / "res"), "--format", "junit",
                 "--output", str(junit)]) == EXIT_REGRESSED
    root = ET.parse(junit).getroot()  # raises on a control character
    names = [case.get("classname") for case in root.findall("testcase")]
    assert names and all("\\x1b[2J\\x00\\x07" in n for n in names)


def test_emulated_runs_are_marked(tmp_path, capsys):
    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(9)
    b.run("s-a", "m0", series("iid", 700, rng), target="pi5-qemu", emulated=True)
    b.run("s-a", "m0", series("iid", 700, rng), target="board")
    b.run("s-b", "m0", series("iid", 700, rng), day=1, target="pi5-qemu", emulated=True)
    b.run("s-b", "m0", series("iid", 700, rng), day=1, target="board")
    assert main(["compare", "s-a", "s-b", "--store", str(tmp_path / "res"), "--metric", "p50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("m0 on pi5-qemu (emulated) [") for line in lines)
    assert any(line.startswith("m0 on board [") for line in lines)
    main(["compare", "s-a", "s-b", "--store", str(tmp_path / "res"), "--metric", "p50", "--format", "json"])
    marks = {p["target"]: p["marks"] for p in json.loads(capsys.readouterr().out)["pairs"]}
    assert marks == {"pi5-qemu": "emulated", "board": ""}


SYNTH = """
name = "synth"
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = {latency}
spin = true
[policy]
warmup = 5
timed = {{ count = 400 }}
telemetry = false
"""


@pytest.mark.slow
def test_end_to_end_two_real_sessions(tmp_path, capsys):
    """Two `hilbench run` sessions of the same plan (stand-in spinning 1 ms): compare with no
    arguments takes them, finds no regression and exits 0; a changed setting is another config."""
    store_dir = str(tmp_path / "res")
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH.format(latency=1.0))
    for build in ("one", "two"):
        assert main(["run", str(plan), "--store", store_dir, "--quiet", "--label", f"build={build}"]) == 0
    capsys.readouterr()
    assert main(["compare", "--store", store_dir, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["regressed"] is False
    assert data["baseline"]["description"].startswith("session ")
    p50 = next(p for p in data["pairs"] if p["metric"] == "p50")
    assert p50["verdict"] in ("unchanged", "inconclusive") and abs(p50["ratio"] - 1) < 0.05
    assert {p["metric"] for p in data["pairs"]} >= {"p50", "p99", "peak_memory"}
    plan.write_text(SYNTH.format(latency=2.0))
    assert main(["run", str(plan), "--store", store_dir, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", "--store", store_dir]) == 1
    assert "no configuration" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the fast paths, against the plain ones


@pytest.mark.slow
def test_resampled_medians_and_the_bootstrap_are_numpys_and_scipys_to_the_bit():
    """The rank-count median is np.median of each resample (odd, even, ties, one value), and the numpy percentile
    bootstrap gives scipy.stats.bootstrap's interval exactly: the same draws, the same figures."""
    from scipy import stats as sps

    from harness.analysis.compare import CONFIDENCE, _bootstrap_ratio, _resampled_medians

    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 8, 51, 400):
        for ties in (False, True):
            x = rng.lognormal(size=n) * 1e6
            x = np.round(x / 4e5) * 4e5 if ties else x
            idx = rng.integers(0, n, (300, n))
            counts = np.stack([np.bincount(row, minlength=n) for row in idx])
            assert np.array_equal(_resampled_medians(x, counts), np.median(x[idx], axis=-1)), (n, ties)
    for nb, nc, seed in ((5, 5, 1), (40, 37, 2), (400, 400, 3)):
        b, c = rng.lognormal(size=nb), rng.lognormal(size=nc) * 1.02
        ref = sps.bootstrap((b, c), lambda x, y, axis: np.median(y, axis=axis) / np.median(x, axis=axis),
                            confidence_level=CONFIDENCE, n_resamples=500, method="percentile", vectorized=True,
                            rng=np.random.default_rng(seed)).confidence_interval
        assert _bootstrap_ratio(b, c, seed, 500) == (float(ref.low), float(ref.high))


def _history_cv_per_pair(same, values, before, exclude):
    """compare's session-to-session CV as it was computed per pair (the reference for the one-groupby version)."""
    same = same[(same["started_at"] <= before) & ~same["run_id"].isin(exclude) & same["run_id"].isin(values.index)]
    if same["session_id"].nunique() < 3:
        return None
    per_session = same.assign(m=same["run_id"].map(values)).groupby("session_id")["m"].median()
    mean = float(per_session.mean())
    return (float(per_session.std(ddof=1) / mean), len(per_session)) if mean > 0 else None


@pytest.mark.slow
def test_history_is_read_once_with_the_same_figures(tmp_path):
    """The session-to-session CVs of every configuration in one groupby equal the per-pair computation, figure for
    figure; the history's p50/p99 read from the stored summaries equal Store.summary()'s, a run without a stored
    summary (an older store) included."""
    from harness.analysis.compare import _history_cvs, _history_summaries, _ok_runs

    b = StoreBuilder(tmp_path / "res")
    rng = np.random.default_rng(3)
    for day in range(6):
        for model in ("a", "c"):
            for target in ("t1", "t2"):
                for _ in range(1 + (day + len(model)) % 2):  # some sessions hold two runs of a configuration
                    hwm = None if (model == "c" and day % 2) else int(50_000 * (1 + 0.02 * rng.standard_normal()))
                    level = 1 + 0.03 * rng.standard_normal()
                    b.run(f"s{day}", model, (series("iid", 120, rng) * level).astype(np.int64), day=day,
                          target=target, hwm_kb=hwm)
    b.run("s2", "d", series("iid", 120, rng), day=2)  # two sessions only: no CV
    b.run("s4", "d", series("iid", 120, rng), day=4)
    (tmp_path / "res" / "summaries" / "r00003.parquet").unlink()  # as a store from before schema v2
    runs = _ok_runs(b.store.runs())
    before = runs.loc[runs["session_id"] == "s4", "started_at"].max()
    exclude = set(runs.loc[runs["session_id"] == "s5", "run_id"]) | {"r00007"}
    summary = b.store.summary().set_index("run_id")
    fast = _history_summaries(b.store, runs)
    assert "r00003" in fast.index and "r00003" not in b.store.stored_summaries(runs["run_id"]).index
    for metric in ("p50_ns", "p99_ns"):
        assert fast[metric].sort_index().equals(summary[metric].dropna().sort_index())
    history = {"p50": fast["p50_ns"], "p99": fast["p99_ns"],
               "peak_memory": runs.set_index("run_id")["hwm_kb"].dropna().astype(float)}
    for metric, values in history.items():
        cvs = _history_cvs(runs, values, before, exclude)
        expected = {k: _history_cv_per_pair(g, values, before, exclude) for k, g in runs.groupby("_key")}
        assert cvs == {k: v for k, v in expected.items() if v is not None}, metric
        assert len(cvs) == 4 and all(n >= 3 for _, n in cvs.values())
        assert _history_cvs(runs, values, runs["started_at"].min() - dt.timedelta(days=1), exclude) == {}
