"""Adaptive timed count: plan validation (MLPerf floors), the agent's stopping rule on Python 3.7
and the host's, and the stop reason stored with the run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hilbench_agent.main import median_ci_halfwidth
from scipy.stats import quantile_test
from support.helpers import missing_in_ci, pyenv_python, run_agent, write_agent

from harness import open_store
from harness.cli import main
from harness.config.plan import load_plan
from harness.errors import ConfigError

PLAN = """
name = "adaptive"
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = 0.1
jitter_ms = 0.002
spin = true
[policy]
warmup = 5
telemetry = false
{policy}
"""


def load(tmp_path: Path, policy: str):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(policy=policy))
    return load_plan(path)


def test_plan_applies_mlperf_floors(tmp_path):
    timed = load(tmp_path, "timed = { precision = 0.01, min_s = 0.1 }").policy.timed
    assert timed["min_count"] == 662 and timed["precision"] == 0.01  # default percentiles include p99
    timed = load(tmp_path, "percentiles = [50, 95]\ntimed = { precision = 0.02, min_count = 20 }").policy.timed
    assert timed["min_count"] == 130 and timed["max_s"] == 60.0
    timed = load(tmp_path, "percentiles = [50]\ntimed = { precision = 0.02, min_count = 40 }").policy.timed
    assert timed["min_count"] == 40


@pytest.mark.parametrize("policy, message", [
    ("timed = { precision = 1.5 }", "timed.precision: must be a fraction"),
    ("timed = { precision = 0.01, max_count = 100 }", "timed.max_count: must be >= 662"),
    ("timed = { precision = 0.01, rate_hz = 30 }", "does not apply to a paced"),
    ("timed = { precision = 0.01, check_every = 0 }", "timed.check_every: must be >= 1"),
    ("timed = { precison = 0.01 }", "timed.precison: unknown key"),
])
def test_bad_adaptive_policies(tmp_path, policy, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, policy)


def test_halfwidth_matches_the_exact_order_statistic_ci():
    rng = np.random.default_rng(2)
    for n in (50, 100, 300, 1000, 4000):
        x = rng.lognormal(0, 0.3, n)
        ci = quantile_test(x, p=0.5).confidence_interval(0.95)
        med = np.median(x)
        exact = max(med - ci.low, ci.high - med) / med
        approx = median_ci_halfwidth(x.tolist())
        # Never narrower than the exact interval; at most one rank wider.
        xs = np.sort(x)
        lo = int(np.searchsorted(xs, ci.low))
        one_wider = max(med - xs[lo - 1], xs[n - lo] - med) / med
        assert exact <= approx <= one_wider
    assert median_ci_halfwidth([1, 2, 3]) is None


@pytest.mark.slow
@pytest.mark.parametrize("python", ["3.7", "host"])
def test_agent_stops_for_each_reason(tmp_path, python):
    import sys

    exe = sys.executable if python == "host" else pyenv_python(python)
    if exe is None:
        missing_in_ci(f"the adaptive policy under Python {python}", "no such pyenv interpreter")
    agent = write_agent(tmp_path)
    base = {"v": 1, "job_id": "a", "backend": "synthetic", "warmup": {"count": 2}}
    quiet = dict(base, settings={"latency_ms": 0.1, "jitter_ms": 0.001, "spin": True, "seed": 1},
                 timed={"precision": 0.01, "min_count": 130, "max_count": 100000, "max_s": 20})
    code, msgs, err = run_agent(exe, agent, quiet)
    assert code == 0, err
    timed = msgs[-1]["timed"]
    assert timed["stop_reason"] == "precision"
    assert timed["count"] >= 130 and timed["achieved_precision"] <= 0.01
    lat = [x for m in msgs if m["type"] == "sample" and m["phase"] == "timed" for x in m["latency_ns"]]
    assert len(lat) == timed["count"]
    ci = quantile_test(np.asarray(lat, float), p=0.5).confidence_interval(0.95)
    med = np.median(lat)
    assert max(med - ci.low, ci.high - med) / med <= 0.01  # the host's exact CI agrees
    noisy = dict(base, settings={"latency_ms": 0.1, "jitter_ms": 0.1, "spin": True, "seed": 1})
    code, msgs, err = run_agent(exe, agent, dict(noisy, timed={"precision": 0.001, "min_count": 20, "max_count": 300}))
    assert code == 0, err
    assert msgs[-1]["timed"]["stop_reason"] == "max_count" and msgs[-1]["timed"]["count"] == 300
    code, msgs, err = run_agent(exe, agent, dict(noisy, timed={"precision": 0.001, "min_count": 20, "max_s": 0.2}))
    assert code == 0, err
    assert msgs[-1]["timed"]["stop_reason"] == "max_time"
    assert msgs[-1]["timed"]["achieved_precision"] > 0.001


@pytest.mark.slow
def test_stop_reason_is_stored(tmp_path, capsys):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(policy="percentiles = [50, 90]\ntimed = { precision = 0.02, max_s = 10 }"))
    assert main(["run", str(path), "--store", str(tmp_path / "res"), "--quiet"]) == 0
    run = open_store(tmp_path / "res").runs().iloc[0]
    assert run["timed_stop"] == "precision" and run["timed_count"] >= 64
    capsys.readouterr()
    assert main(["show", run["run_id"], "--store", str(tmp_path / "res")]) == 0
    assert re.search(r"timed .*\(precision: median ±[\d.]+% \(asked ±2%\)\)", capsys.readouterr().out)
