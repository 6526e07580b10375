"""Store at scale: the per-run summary table and `hilbench history` over 100 million samples.

A year of nightly runs over many configurations: by default 2,000 runs x 50,000 timed
samples (100 M), written straight to Parquet with pyarrow, one file per run as the
runner writes them. Then, each in a fresh process so the peak memory is its own:

* ``summary``: ``Store.summary()`` (every run's count, mean, quantiles, CIs, MAD...);
* ``history``: ``hilbench history`` (nightly points from the summary + the change-point detector);
* ``compare``: ``hilbench compare`` of the last two nights (raw samples of those two only).

The store is generated as hilbench wrote stores before schema v2 (per-run files, no stored summaries), and
measured in three stages: ``v1`` as generated, ``migrated`` after ``hilbench store migrate`` (each run's
summary stored) and ``compacted`` after ``hilbench store compact`` (one file per closed session and table);
the migrate and compact steps are measured too. Each figure is one fresh process: wall time (imports apart)
and peak RSS (``ru_maxrss``). Targets on a 2-core machine (issue 15): summary <= 0.5 s, history <= 1.5 s,
compare of two nights <= 1.5 s, each <= 400 MB peak.

    nice python3 benchmarks/store_scale.py                 # generate in /tmp/hilbench-scale, then measure
    nice python3 benchmarks/store_scale.py --runs 200      # a smaller store (10 M samples)
    nice python3 benchmarks/store_scale.py --measure-only  # measure the store as it is now
    nice python3 benchmarks/store_scale.py --measure-only --s3 3   # ... and on a local S3 stand-in, 3 rounds

``--s3 ROUNDS`` uploads the store (as it is after the last stage) to moto's server on loopback (a STAND-IN for S3,
tests/support/s3_standin.py, which the dev extra installs) and measures each reader on the folder and on
``s3://`` alternately, ROUNDS times, printing how many requests each made of the endpoint (its log lines).
Target (issue 15): within 3x of the folder's targets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.store import SCHEMAS, Store  # noqa: E402


def generate(root: Path, runs: int, per_run: int, configs: int, seed: int = 1) -> None:
    store = Store(root)
    store.ensure_writable()
    rng = np.random.default_rng(seed)
    start = dt.datetime(2025, 11, 1, 1, 0, tzinfo=dt.timezone.utc)
    nights = max(1, runs // configs)
    iteration = pa.array(np.arange(per_run, dtype=np.int64))
    phase = pa.DictionaryArray.from_arrays(pa.array(np.zeros(per_run, dtype=np.int32)), pa.array(["timed"]))
    run_rows = []
    t0 = time.perf_counter()
    for i in range(runs):
        night, config = divmod(i, configs)
        run_id = f"{(start + dt.timedelta(days=night)).strftime('%Y%m%dT%H%M%S')}-{i:06x}"
        level = 1e6 * (1 + config % 17) * (1.08 if night > nights * 0.7 and config == 3 else 1.0)
        lat = (level * np.exp(0.05 * rng.standard_normal(per_run))).astype(np.int64)
        t_ns = np.cumsum(lat)
        table = pa.table({
            "run_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(per_run, dtype=np.int32)), pa.array([run_id])),
            "phase": phase, "iteration": iteration, "latency_ns": lat, "t_ns": t_ns,
            "gpu_ns": pa.nulls(per_run, pa.int64())})
        table = table.cast(pa.schema([(f.name, pa.dictionary(pa.int32(), pa.string()) if f.name in ("run_id", "phase")
                                       else f.type) for f in SCHEMAS["samples"]]))
        pq.write_table(table, root / "samples" / f"{run_id}.parquet", compression="zstd")
        run_rows.append({
            "run_id": run_id, "session_id": f"s-night{night:04d}", "plan": "scale", "model": f"model-{config % 10}",
            "target": f"board-{config // 10}", "backend": "litert", "settings": json.dumps({"threads": 4}),
            "status": "ok", "started_at": start + dt.timedelta(days=night, seconds=config), "timed_count": per_run,
            "timed_ns": int(t_ns[-1]), "valid": True, "hwm_kb": 100_000 + config, "stand_in": True})
    # One runs file per run, as the runner writes them.
    schema = SCHEMAS["runs"]
    for row in run_rows:
        cols = {f.name: [row.get(f.name)] for f in schema}
        pq.write_table(pa.table(cols, schema=schema), root / "runs" / f"{row['run_id']}.parquet")
    # One closed session per night.
    schema = SCHEMAS["sessions"]
    for night in range(nights):
        mine = [r for r in run_rows if r["session_id"] == f"s-night{night:04d}"]
        row = {"session_id": f"s-night{night:04d}", "started_at": mine[0]["started_at"], "plan": "scale",
               "finished_at": mine[-1]["started_at"], "jobs": len(mine), "jobs_ok": len(mine), "jobs_failed": 0,
               "status": "ok"}
        cols = {f.name: [row.get(f.name)] for f in schema}
        pq.write_table(pa.table(cols, schema=schema), root / "sessions" / f"{row['session_id']}.parquet")
    # As hilbench wrote stores before schema v2: no summaries/ (`hilbench store migrate` adds them).
    (root / "hilbench-store.json").write_text(json.dumps({"schema_version": 1}) + "\n")
    (root / "summaries").rmdir()
    print(f"generated {runs} runs x {per_run} samples = {runs * per_run / 1e6:.0f} M in "
          f"{time.perf_counter() - t0:.1f} s ({sum(p.stat().st_size for p in (root / 'samples').glob('*')) / 1e9:.2f} GB)")


def measure_child(task: str, root: str) -> None:
    t_import = time.perf_counter()
    import harness.analysis.stats  # noqa: F401
    import harness.cli  # noqa: F401 - imports (pandas, scipy, pyarrow) are timed apart

    imports = time.perf_counter() - t_import
    t0 = time.perf_counter()
    if task == "summary":
        from harness.store import open_store

        s = open_store(root).summary()
        detail = f"{len(s)} runs, {int(s['count'].sum()) / 1e6:.0f} M samples"
    elif task in ("migrate", "compact"):
        from harness.cli import main

        code = main(["store", task, "--store", root])
        detail = f"exit {code}"
    else:
        from harness.cli import main

        code = main([task, "--store", root, "--format", "json", "--output", os.devnull])
        detail = f"exit {code}"
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"task": task, "wall_s": round(wall, 2), "imports_s": round(imports, 2),
                      "peak_rss_mb": round(peak_mb), "detail": detail}))


def _child(task: str, root: Path, stage: str) -> bool:
    """Run ``task`` in a fresh process (its own peak memory) and print its figures under ``stage``."""
    out = subprocess.run([sys.executable, __file__, "--root", str(root), "--child", task],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(f"{stage} {task}: failed\n{out.stderr[-2000:]}")
        return False
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps({"stage": stage, **figures}), flush=True)
    return True


#: What each stage does to the store before the readers are measured.
STAGES = {
    "v1": None,  # as generated: per-run files, no stored summaries (readers compute them from the samples)
    "migrated": "migrate",  # `hilbench store migrate`: each run's summary stored
    "compacted": "compact",  # `hilbench store compact`: one file per closed session and table
}


def measure_s3(root: Path, rounds: int) -> bool:
    """The readers on ``root`` and on the same files in the S3 stand-in, alternating, ``rounds`` times."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import tempfile

    from support.s3_standin import BUCKET, S3StandIn

    with tempfile.TemporaryDirectory() as work:
        s3 = S3StandIn(Path(work))
        try:
            client = s3.s3()
            files = [p for p in root.rglob("*") if p.is_file() and "lock" not in p.name and not p.name.endswith(".tmp")]
            for p in files:
                client.upload_file(str(p), BUCKET, "scale/" + p.relative_to(root).as_posix())
            print(f"uploaded {len(files)} files to the S3 stand-in at {s3.endpoint}", flush=True)
            env = dict(os.environ, **s3.env())
            url = f"s3://{BUCKET}/scale"
            for rnd in range(rounds):
                for where in (str(root), url):
                    for task in ("summary", "history", "compare"):
                        before = s3.log.read_text(errors="replace").count("\n")
                        out = subprocess.run([sys.executable, __file__, "--root", where, "--child", task], env=env,
                                             capture_output=True, text=True, check=False)
                        if out.returncode != 0:
                            print(out.stderr[-2000:], file=sys.stderr)
                            return False
                        record = json.loads(out.stdout.strip().splitlines()[-1])
                        record.update(round=rnd, store="s3 stand-in" if where == url else "folder",
                                      load=round(os.getloadavg()[0], 1))
                        if where == url:
                            record["requests"] = s3.log.read_text(errors="replace").count("\n") - before
                        print(json.dumps(record), flush=True)
        finally:
            s3.close()
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/hilbench-scale")
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--per-run", type=int, default=50_000)
    ap.add_argument("--configs", type=int, default=40, help="configurations per night (runs / configs nights)")
    ap.add_argument("--measure-only", action="store_true", help="reuse the store and measure it as it is")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help=f"comma-separated stages to measure in order (default: {','.join(STAGES)})")
    ap.add_argument("--s3", type=int, default=0, metavar="ROUNDS",
                    help="then measure the store on a local S3 stand-in (moto) and the folder alternately, ROUNDS "
                         "times")
    ap.add_argument("--child", choices=("summary", "history", "compare", "migrate", "compact"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        measure_child(args.child, args.root)
        return 0
    root = Path(args.root)
    if not args.measure_only:
        if root.exists():
            import shutil

            shutil.rmtree(root)
        generate(root, args.runs, args.per_run, args.configs)
    stages = [s for s in args.stages.split(",") if s] if not args.measure_only else ["as-is"]
    for stage in stages:
        action = STAGES.get(stage)
        if stage not in STAGES and stage != "as-is":
            ap.error(f"--stages: unknown stage {stage!r} (known: {', '.join(STAGES)})")
        if action is not None and not _child(action, root, stage):
            return 1
        for task in ("summary", "history", "compare"):
            if not _child(task, root, stage):
                return 1
    if args.s3 and not measure_s3(root, args.s3):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
