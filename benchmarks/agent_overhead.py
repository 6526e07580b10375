"""Does the agent add anything measurable to what it measures?

For each bundled model and both backends, alternate in one run between
  A) the agent (the shipped zipapp, through the local transport, as `hilbench run` does), and
  B) a bare loop: a minimal script timing the same runtime call with the same settings,
and compare the medians. Target: ratio agent/bare <= 1.01.

    python benchmarks/agent_overhead.py [--rounds 5] [--count 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.plan import QUICKSTART_PLAN, expand_jobs, load_plan
from harness.session import run_jobs
from harness.store import open_store
from harness.targets import LOCAL

BARE = r"""
import json, sys, time
import numpy as np
backend, path, count, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.RandomState(0)
if backend == "onnxruntime":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = 1
    s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    dt = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}[i.type]
    feeds = {i.name: rng.random_sample(i.shape).astype(dt)}
    call = lambda: s.run(None, feeds)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=1); it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], rng.random_sample(d["shape"]).astype(d["dtype"]))
    call = it.invoke
for _ in range(warm):
    call()
clock = time.monotonic_ns
lat = []
for _ in range(count):
    t0 = clock(); call(); t1 = clock()
    lat.append(t1 - t0)
lat.sort()
print(json.dumps({"median": lat[len(lat) // 2]}))
"""


def agent_median(job, store) -> float:
    result = run_jobs([job], store)
    run_id = result.runs[0]["run_id"]
    if result.runs[0]["status"] != "ok":
        raise SystemExit(f"agent run failed: {result.runs[0]['error_message']}")
    lat = store.samples([run_id], phase="timed")["latency_ns"]
    return float(lat.median())


def bare_median(backend: str, path: str, count: int, warm: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, backend, path, str(count), str(warm)],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["median"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args()
    plan = load_plan(QUICKSTART_PLAN)
    jobs = expand_jobs(plan, {"local": LOCAL})
    from dataclasses import replace

    policy = replace(plan.policy, warmup={"count": args.warmup}, timed={"count": args.count}, telemetry=False)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "res")
        print(f"{'model':28} {'backend':12} {'agent p50 us':>13} {'bare p50 us':>12} {'ratio':>7} {'overhead ns':>12}")
        for job in jobs:
            job = replace(job, policy=policy)
            agent, bare = [], []
            for _ in range(args.rounds):  # alternate A, B, A, B ...
                agent.append(agent_median(job, store))
                bare.append(bare_median(job.backend, str(job.model.path), args.count, args.warmup))
            a, b = statistics.median(agent), statistics.median(bare)
            print(f"{job.model.name:28} {job.backend:12} {a / 1e3:13.2f} {b / 1e3:12.2f} {a / b:7.3f} {a - b:12.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
