"""Does the agent add anything measurable to what it measures?

For every model file of the quick start, with each backend that opens it (.onnx: ONNX Runtime,
.tflite: LiteRT), plus the sample files built beside them but kept out of git (the fp32 MobileNet
.tflite, which scripts/build_models.py makes) where present, alternate in one run between
  A) the agent (the shipped zipapp, through the local transport, as `hilbench run` does), with the
     telemetry sampler off and with it on (the default), and
  B) a bare loop: a minimal script timing the same runtime call with the same settings,
and compare the medians. Target: ratio agent/bare <= 1.01.

Like for like: both feed the very same input arrays, from one .npz given to both (to the agent
as the model's inputs file). The arrays are the ones the agent would generate for the job: its
own ``generate_inputs`` with the job's seed and the input specs its backend reads (int8 inputs
quantised from uniform [0, 1) with the tensor's scale and zero point, not cast to zeros). Both
disable the garbage collector around the timed loop, as the agent does.

    python benchmarks/agent_overhead.py [--rounds 5] [--count 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.config.plan import QUICKSTART_PLAN, expand_jobs, load_plan
from harness.config.targets import LOCAL
from harness.files import file_sha256
from harness.run.session import run_jobs
from harness.store import open_store

BARE = r"""
import gc, json, sys, time
import numpy as np
backend, path, inputs, count, warm = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
settings = json.loads(sys.argv[6])
with np.load(inputs) as z:
    arrays = {k: z[k] for k in z.files}
if backend == "onnxruntime":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = int(settings.get("intra_op_threads", 0))
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
    feeds = {i.name: arrays[i.name] for i in s.get_inputs()}
    call = lambda: s.run(None, feeds)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=int(settings.get("threads", -1))); it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], arrays[d["name"]])
    call = it.invoke
for _ in range(warm):
    call()
clock = time.monotonic_ns
lat = []
gc.disable()
for _ in range(count):
    t0 = clock(); call(); t1 = clock()
    lat.append(t1 - t0)
gc.enable()
lat.sort()
print(json.dumps({"median": lat[len(lat) // 2]}))
"""


def local_jobs(jobs: list) -> list:
    """Jobs for sample model files built beside the quick start's but not in it (the fp32
    MobileNet .tflite, kept out of git): each on its backend, as the quick start would run it."""
    used = {job.model.path.resolve() for job in jobs}
    template = {job.backend: job for job in jobs}
    backend_of = {".onnx": "onnxruntime", ".tflite": "litert"}
    extra = []
    for path in sorted((QUICKSTART_PLAN.parent / "models").iterdir()):
        backend = backend_of.get(path.suffix)
        if backend not in template or path.resolve() in used or not path.name.startswith(("digits", "mobilenet")):
            continue
        job = template[backend]
        precision = "int8" if "_int8" in path.name else "fp32"
        name = path.name + "*"  # footnoted in the output
        model = replace(job.model, name=name, path=path, sha256=file_sha256(path), eval={},
                        tags={**job.model.tags, "precision": precision}, inputs={"seed": 0})
        extra.append(replace(job, model=model))
    return extra


def agent_inputs(job) -> dict[str, np.ndarray]:
    """The arrays the agent feeds for ``job``: its backend's input specs, its generate_inputs, the
    job's seed and shapes (exactly what hilbench_agent.main does for a job with no inputs file)."""
    from hilbench_agent.backends import get_backend_class
    from hilbench_agent.backends.base import generate_inputs

    spec = job.model.inputs or {}
    if spec.get("file"):
        raise SystemExit(f"{job.model.name}: an inputs file is not supported here")
    backend = get_backend_class(job.backend)()
    backend.load(str(job.model.path), dict(job.settings))
    try:
        return generate_inputs(backend.input_specs(), spec.get("shapes"), int(spec.get("seed", 0)))
    finally:
        backend.close()


def agent_median(job, store) -> float:
    result = run_jobs([job], store)
    run = result.runs[0]
    if run["status"] != "ok":
        raise SystemExit(f"agent run failed: {run['error_message']}")
    lat = store.samples([run["run_id"]], phase="timed")["latency_ns"]
    return float(lat.median())


def bare_median(job, inputs: Path, count: int, warm: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BARE, job.backend, str(job.model.path), str(inputs), str(count), str(warm),
         json.dumps(job.settings)],
        capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["median"])


def describe(arrays: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {a.dtype}{list(a.shape)} [{a.min()}..{a.max()}]" for k, a in arrays.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args()
    plan = load_plan(QUICKSTART_PLAN)
    jobs = expand_jobs(plan, {"local": LOCAL})
    jobs += local_jobs(jobs)
    base = replace(plan.policy, warmup={"count": args.warmup}, timed={"count": args.count})
    off, on = replace(base, telemetry=False), replace(base, telemetry=True)
    print(f"{len(jobs)} jobs, {args.rounds} rounds of (agent telemetry off, bare, agent telemetry on), "
          f"{args.count} timed + {args.warmup} warm-up iterations each; medians of the per-run medians")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "res")
        hdr = (f"{'model':33} {'backend':11} {'bare p50 us':>11} {'agent p50 us':>12} {'ratio':>6} "
               f"{'ovh ns':>7} {'+telem p50 us':>13} {'ratio':>6} {'ovh ns':>7}")
        print(hdr)
        for i, job in enumerate(jobs):
            inputs = Path(tmp) / f"inputs{i}.npz"
            arrays = agent_inputs(job)
            np.savez(inputs, **arrays)
            model = replace(job.model, inputs={"file": str(inputs), "file_sha256": file_sha256(inputs)})
            job = replace(job, model=model)
            a_off, bare, a_on = [], [], []
            for _ in range(args.rounds):  # alternate: agent (off), bare, agent (on), ...
                a_off.append(agent_median(replace(job, policy=off), store))
                bare.append(bare_median(job, inputs, args.count, args.warmup))
                a_on.append(agent_median(replace(job, policy=on), store))
            b, x, y = statistics.median(bare), statistics.median(a_off), statistics.median(a_on)
            rows.append((job, b, x, y))
            print(f"{job.model.name:33} {job.backend:11} {b / 1e3:11.2f} {x / 1e3:12.2f} {x / b:6.3f} "
                  f"{x - b:7.0f} {y / 1e3:13.2f} {y / b:6.3f} {y - b:7.0f}   inputs: {describe(arrays)}",
                  flush=True)
    worst_off = max(x / b for _, b, x, _ in rows)
    worst_on = max(y / b for _, b, _, y in rows)
    if any(job.model.name.endswith("*") for job, *_ in rows):
        print("* built by scripts/build_models.py but kept out of git, so not in the quick start")
    print(f"worst ratio: telemetry off {worst_off:.3f}, telemetry on {worst_on:.3f} (target <= 1.01)")


if __name__ == "__main__":
    main()
