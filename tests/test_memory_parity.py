"""Runs on Linux report the same memory and CPU figures with and without psutil: the real agent, a real model
(the bundled MobileNetV2-0.35 on ONNX Runtime), psutil importable and then hidden (HILBENCH_AGENT_NO_PSUTIL=1), and
hidden from the agent but imported into its process (the same process contents, the other source).
``benchmarks/memory_sources.py`` prints the same comparison on more runs."""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from memory_sources import MODELS, run_agent  # noqa: E402

pytestmark = pytest.mark.slow  # six agent processes, each loading ONNX Runtime and a model


def _median(results, part, key):
    return statistics.median(r[part][key] for r in results)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the /proc sources are Linux's")
def test_linux_runs_report_the_same_figures_with_and_without_psutil():
    for name in ("psutil", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            from support.helpers import missing_in_ci

            missing_in_ci("the psutil parity test", f"{name} is not installed (pip install -e '.[dev]')")
    model = MODELS / "mobilenet_v2_035_224_fp32.onnx"
    # psutil used; psutil hidden (not imported); psutil imported but hidden: the same process, read from /proc.
    conditions = {"psutil": (True, False), "none": (False, False), "imported": (False, True)}
    runs: dict[str, list] = {k: [] for k in conditions}
    for round_ in range(2):
        for name in (conditions if round_ == 0 else reversed(conditions)):
            psutil, imported = conditions[name]
            runs[name].append(run_agent(model, psutil, timed_s=1.0, imported=imported))
    for res in runs["psutil"]:
        assert res["memory"]["sources"]["rss"] == "psutil" and res["cpu"]["source"] == "psutil"
    for res in runs["none"] + runs["imported"]:
        assert res["memory"]["sources"]["rss"] == "procfs:VmRSS" and res["cpu"]["source"] == "getrusage"
    for res in sum(runs.values(), []):
        assert res["memory"]["sources"]["peak"] == "procfs:VmHWM"
        assert set(res["memory"]["missing"]) == {"footprint", "unified"}  # neither a Mac nor a Jetson
        assert 0 < res["cpu"]["busy_cores"] <= (os.cpu_count() or 1) + 0.5
    for other, rss_tol in (("imported", 0.03), ("none", 0.04)):
        # Against "none" the process lacks psutil's own code and data (about 1 MiB of ~50-80 MiB).
        for key in ("rss_before_load_kb", "rss_after_load_kb", "timed_peak_rss_kb", "hwm_kb"):
            a, b = _median(runs["psutil"], "memory", key), _median(runs[other], "memory", key)
            assert abs(a - b) <= rss_tol * b, (other, key, a, b)
        a, b = _median(runs["psutil"], "memory", "growth_kb"), _median(runs[other], "memory", "growth_kb")
        assert abs(a - b) <= 0.08 * b + 1024, (other, "growth_kb", a, b)
        # CPU: the two sources read the same kernel counters (test_memory.py compares them on one window); across
        # separate processes the time an inference costs varies with what else the machine runs.
        a, b = _median(runs["psutil"], "cpu", "ms_per_inference"), _median(runs[other], "cpu", "ms_per_inference")
        assert abs(a - b) <= 0.35 * b, (other, "cpu ms per inference", a, b)
