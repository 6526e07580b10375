"""Do runs report the same memory and CPU figures with and without psutil?

Runs the real agent (``python -m hilbench_agent --job``, a fresh process per job, as on a device) on a bundled
model, alternating between psutil importable and psutil hidden (``HILBENCH_AGENT_NO_PSUTIL=1``), and prints
each job's figures and their sources, then the median of each figure per condition and the difference
(target: within a few percent). A third condition imports psutil into the process without letting the agent
use it: it separates psutil's own memory (about 1 MiB of code and data, in every RSS figure) from any
difference between the sources. Busy cores is CPU time over wall time: on a machine whose cores other
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
import tempfile
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


def run_agent(model: Path, psutil: bool, timed_s: float = 2.0, python: str = sys.executable,
              imported: bool = False) -> dict[str, Any]:
    """One job in a fresh agent process; its ``result`` message (raises when the job failed). ``psutil``: the agent
    may use it; ``imported``: psutil is imported into the process all the same (a ``sitecustomize``), so that the
    process holds the same code whichever source the agent reads."""
    backend, settings = backend_of(model)
    job = {"backend": backend, "settings": settings, "model": {"path": str(model)},
           "warmup": {"count": 20}, "timed": {"count": 50, "min_s": timed_s, "max_s": timed_s * 5}}
    with tempfile.TemporaryDirectory() as site:
        path = [str(ROOT / "device_agents")]
        if imported:
            Path(site, "sitecustomize.py").write_text("import psutil\n")
            path.insert(0, site)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1")
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


#: (label, the agent may use psutil, psutil imported into the process)
CONDITIONS = (("psutil", True, False), ("no psutil", False, False), ("imported, unused", False, True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v2_035_224_fp32.onnx")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timed-s", type=float, default=2.0)
    args = ap.parse_args()
    model = MODELS / args.model
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in CONDITIONS}
    for i in range(args.rounds):
        order = CONDITIONS if i % 2 == 0 else CONDITIONS[::-1]  # alternate which goes first
        for label, psutil, imported in order:
            res = run_agent(model, psutil, args.timed_s, imported=imported)
            runs[label].append(res)
            mem, cpu = res["memory"], res["cpu"]
            print(json.dumps({"round": i, "condition": label, **{k: mem[k] for k in FIGURES},
                              **{"cpu_" + k: round(cpu[k], 3) for k in CPU}, "sources": {**mem["sources"],
                              "cpu": cpu["source"]}, "peak_basis": mem["peak_basis"]}))
    med = {label: medians(results) for label, results in runs.items()}
    a, b, c = (med[label] for label, _, _ in CONDITIONS)
    print(f"\n{model.name}, {args.rounds} jobs each, medians (KiB; CPU seconds, busy cores, CPU ms per inference).")
    print("'imported, unused': psutil in the process but the agent reads /proc and getrusage, so the last column")
    print("compares the two sources on the same process; the middle one adds psutil's own memory.\n")
    print(f"{'figure':<20}{'psutil':>12}{'no psutil':>12}{'diff':>8}{'imported':>12}{'diff':>8}")
    for k in (*FIGURES, *CPU):
        d1 = (a[k] - b[k]) / b[k] * 100 if b[k] else float("nan")
        d2 = (a[k] - c[k]) / c[k] * 100 if c[k] else float("nan")
        print(f"{k:<20}{a[k]:>12.3f}{b[k]:>12.3f}{d1:>+7.1f}%{c[k]:>12.3f}{d2:>+7.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
