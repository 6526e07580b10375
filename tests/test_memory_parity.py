"""Runs on Linux report the same memory and CPU figures with and without psutil: the real agent, a real model
(the bundled MobileNetV2-0.35 on ONNX Runtime), psutil importable and then hidden (HILBENCH_AGENT_NO_PSUTIL=1).
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

pytestmark = pytest.mark.slow  # four agent processes, each loading ONNX Runtime and a model


def _median(results, part, key):
    return statistics.median(r[part][key] for r in results)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the /proc sources are Linux's")
def test_linux_runs_report_the_same_figures_with_and_without_psutil():
    for name in ("psutil", "onnxruntime"):
        if importlib.util.find_spec(name) is None:
            from support.helpers import missing_in_ci

            missing_in_ci("the psutil parity test", f"{name} is not installed (pip install -e '.[dev]')")
    model = MODELS / "mobilenet_v2_035_224_fp32.onnx"
    runs = {True: [], False: []}
    for psutil in (True, False, False, True):
        runs[psutil].append(run_agent(model, psutil, timed_s=1.0))
    for res in runs[True]:
        assert res["memory"]["sources"]["rss"] == "psutil" and res["cpu"]["source"] == "psutil"
    for res in runs[False]:
        assert res["memory"]["sources"]["rss"] == "procfs:VmRSS" and res["cpu"]["source"] == "getrusage"
    for res in runs[True] + runs[False]:
        assert res["memory"]["sources"]["peak"] == "procfs:VmHWM"
        assert set(res["memory"]["missing"]) == {"footprint", "unified"}  # neither a Mac nor a Jetson
        assert 0 < res["cpu"]["busy_cores"] <= (os.cpu_count() or 1) + 0.5
    # RSS: psutil's own import is the only difference (about 0.5 MiB of ~50-80 MiB).
    for key in ("rss_before_load_kb", "rss_after_load_kb", "timed_peak_rss_kb", "hwm_kb"):
        a, b = _median(runs[True], "memory", key), _median(runs[False], "memory", key)
        assert abs(a - b) <= 0.04 * b, (key, a, b)
    a, b = _median(runs[True], "memory", "growth_kb"), _median(runs[False], "memory", "growth_kb")
    assert abs(a - b) <= 0.08 * b + 1024, ("growth_kb", a, b)
    # CPU: the two sources read the same kernel counters (test_memory.py compares them on one window); across
    # separate processes the time an inference costs varies with what else the machine runs.
    a, b = _median(runs[True], "cpu", "ms_per_inference"), _median(runs[False], "cpu", "ms_per_inference")
    assert abs(a - b) <= 0.35 * b, ("cpu ms per inference", a, b)
