"""Do runs report the same memory and CPU figures with and without psutil?

Runs the real agent (``python -m hilbench_agent --job``, a fresh process per job, as on a device) on a bundled
model, alternating between psutil importable and psutil hidden (``HILBENCH_AGENT_NO_PSUTIL=1``), and prints
each job's figures and their sources, then the median of each figure per condition and the difference
(target: within a few percent). Busy cores is CPU time over wall time: on a machine whose cores other
processes also use it falls for both alike, and CPU milliseconds per inference is the steadier figure.
tests/test_memory_parity.py asserts the same on fewer runs.

    python benchmarks/memory_sources.py [--model mobilenet_v2_035_224_fp32.onnx] [--rounds 3] [--timed-s 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "harness" / "samples" / "models"
FIGURES = ("rss_before_load_kb", "rss_after_load_kb", "timed_peak_rss_kb", "growth_kb", "hwm_kb")
CPU = ("user_s", "system_s", "busy_cores", "ms_per_inference")


def backend_of(model: Path) -> tuple[str, dict[str, Any]]:
    if model.suffix == ".onnx":
        return "onnxruntime", {"intra_op_threads": 1}
    return "litert", {"threads": 1}


def run_agent(model: Path, psutil: bool, timed_s: float = 2.0, python: str = sys.executable) -> dict[str, Any]:
    """One job in a fresh agent process; its ``result`` message (raises when the job failed)."""
    backend, settings = backend_of(model)
    job = {"backend": backend, "settings": settings, "model": {"path": str(model)},
           "warmup": {"count": 20}, "timed": {"count": 50, "min_s": timed_s, "max_s": timed_s * 5}}
    env = dict(os.environ, PYTHONPATH=str(ROOT / "device_agents"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("HILBENCH_AGENT_NO_PSUTIL", None)
    if not psutil:
        env["HILBENCH_AGENT_NO_PSUTIL"] = "1"
    proc = subprocess.run([python, "-m", "hilbench_agent", "--job", "-"], input=json.dumps(job) + "\n",
                          capture_output=True, text=True, env=env, timeout=300)
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = [m for m in messages if m.get("type") == "result"]
    if proc.returncode != 0 or not results:
        errors = [m.get("message") for m in messages if m.get("type") == "error"]
        raise RuntimeError(f"agent exited {proc.returncode}: {errors or proc.stderr[-2000:]}")
    res = results[0]
    cpu = res["cpu"]
    # CPU time per inference: unlike busy cores, it does not fall when other processes take the cores.
    cpu["ms_per_inference"] = (cpu["user_s"] + cpu["system_s"]) * 1000 / res["timed"]["count"]
    return res


def medians(results: list[dict[str, Any]]) -> dict[str, float]:
    out = {k: statistics.median(r["memory"][k] for r in results) for k in FIGURES}
    out.update({k: statistics.median(r["cpu"][k] for r in results) for k in CPU})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v2_035_224_fp32.onnx")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timed-s", type=float, default=2.0)
    args = ap.parse_args()
    model = MODELS / args.model
    runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for i in range(args.rounds):
        for psutil in (True, False) if i % 2 == 0 else (False, True):  # alternate which goes first
            res = run_agent(model, psutil, args.timed_s)
            runs[psutil].append(res)
            mem, cpu = res["memory"], res["cpu"]
            print(json.dumps({"round": i, "psutil": psutil, **{k: mem[k] for k in FIGURES},
                              **{"cpu_" + k: round(cpu[k], 3) for k in CPU}, "sources": {**mem["sources"],
                              "cpu": cpu["source"]}, "peak_basis": mem["peak_basis"]}))
    a, b = medians(runs[True]), medians(runs[False])
    print(f"\n{model.name}, {args.rounds} jobs each, medians (KiB; CPU seconds and busy cores):")
    print(f"{'figure':<20}{'psutil':>14}{'no psutil':>14}{'difference':>12}")
    for k in (*FIGURES, *CPU):
        diff = (a[k] - b[k]) / b[k] * 100 if b[k] else float("nan")
        print(f"{k:<20}{a[k]:>14.3f}{b[k]:>14.3f}{diff:>+11.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
