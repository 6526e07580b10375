"""How does hilbench scale over a fleet of SSH devices, and what does it cost per job?

Starts 1, 4 and 16 real OpenSSH servers on loopback ports (tests/support/sshd.py) as devices, and runs the
same short plan (synthetic stand-in backend, plus a small model file shipped to every device) on all of
them at once, twice: a first run with empty device caches and a second with warm ones. Prints

- total wall time of each fleet size against the single device (target: 16 devices <= 1.5x one);
- the harness's own time per job outside the agent's measured phases (target: <= 150 ms after the first
  job of a device), split into: job start -> agent's load phase begins (the cache check and any upload,
  remote exec, the device Python's start, the agent's probe) and timed phase end -> job stored; and that
  minus the device Python + agent start-up measured on its own;
- bytes sent on the first and the second run (the sum of the runs' own ``bytes_sent``);
- time from job start (before its files are shipped) to the first sample (the first inference's end);
- the harness process's own CPU time per job (the devices here share this machine's cores, so on a
  small host the fleet's wall time is bound by the devices' CPU, not by hilbench's).

The devices live on this machine, so the agent's monotonic clock is the host's: device timestamps
(``t_ns``) and host times can be subtracted. Needs root and /usr/sbin/sshd.

    python benchmarks/fleet.py [--sizes 1,4,16] [--jobs 3] [--timed 200] [--latency-ms 1.0] [--python PY]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.sshd import UserKeys, sshd_unavailable, start_sshd  # noqa: E402

from harness.agent.bundle import agent_bundle  # noqa: E402
from harness.config.plan import Job, expand_jobs, load_plan  # noqa: E402
from harness.config.targets import load_targets  # noqa: E402
from harness.run.session import Progress, run_jobs  # noqa: E402
from harness.store import open_store  # noqa: E402

MODEL = ROOT / "harness" / "samples" / "models" / "digits_cnn_int8.onnx"


class Timing(Progress):
    """Host monotonic times of job start/end and the device times of the phases (same clock here).
    ``job_started`` comes before the job's files are checked and shipped, so shipping counts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.by_job: dict[int, str] = {}

    def job_started(self, job: Job, run_id: str) -> None:
        with self.lock:
            self.by_job[id(job)] = run_id
            self.jobs[run_id] = {"target": job.target.name, "start": time.monotonic_ns()}

    def phase(self, job: Job, phase: str, event: str, info: dict[str, Any]) -> None:
        with self.lock:
            rec = self.jobs[self.by_job[id(job)]]
            rec[f"{phase}_{event}"] = int(info.get("t_ns") or 0)

    def job_finished(self, job: Job, row: dict[str, Any]) -> None:
        with self.lock:
            run_id = self.by_job.get(id(job))
            if run_id is None:  # stored without starting (a failure before the agent)
                return
            rec = self.jobs[run_id]
            rec["end"] = time.monotonic_ns()
            rec["status"] = row["status"]
            rec["bytes_sent"] = row.get("bytes_sent") or 0


def plan_text(targets: list[str], jobs: int, timed: int, latency_ms: float) -> str:
    latencies = [round(latency_ms * (1 + 0.1 * i), 3) for i in range(jobs)]
    return (
        f'name = "fleet-bench"\ntargets = {targets!r}\n'.replace("'", '"')
        + f'[[models]]\nname = "digits"\npath = "{MODEL}"\nbackends = ["synthetic"]\n'
        f"[backends.synthetic]\nlatency_ms = {latencies}\n"
        f"[policy]\nwarmup = 5\ntimed = {{ count = {timed} }}\ntelemetry = false\n"
    )


def agent_startup_s(python: str, rounds: int = 5) -> float:
    """The device Python's start plus the agent's probe, alone (median of ``rounds``)."""
    with tempfile.TemporaryDirectory() as d:
        agent = Path(d) / "agent.pyz"
        agent.write_bytes(agent_bundle().data)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run([python, str(agent), "--probe"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def busy_cpu_s() -> float:
    """CPU seconds this whole machine has spent busy (all cores, all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_fleet(n: int, work: Path, keys: UserKeys, args: argparse.Namespace) -> list[dict[str, Any]]:
    servers = [start_sshd(work / f"dev{i:02d}", keys) for i in range(n)]
    try:
        tdir = work / "targets"
        tdir.mkdir()
        names = [f"dev{i:02d}" for i in range(n)]
        for name, server in zip(names, servers, strict=True):
            (tdir / f"{name}.toml").write_text(server.target_toml(name, python=args.python))
        plan_path = work / "plan.toml"
        plan_path.write_text(plan_text(names, args.jobs, args.timed, args.latency_ms))
        plan = load_plan(plan_path)
        jobs = expand_jobs(plan, load_targets([tdir]))
        out = []
        for label in ("first", "second"):
            store = open_store(work / f"res-{label}")
            timing = Timing()
            cpu0 = time.process_time()  # this process only: the harness, not sshd or the agents
            busy0 = busy_cpu_s()
            t0 = time.perf_counter()
            result = run_jobs(jobs, store, plan=plan, progress=timing, argv=["fleet.py"])
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            busy = busy_cpu_s() - busy0
            failed = [r for r in result.runs if r["status"] != "ok"]
            if failed:
                raise SystemExit(f"{len(failed)} jobs failed, e.g. {failed[0]['error_message']}")
            out.append({"n": n, "run": label, "wall_s": wall, "cpu_s": cpu, "busy_s": busy,
                        "jobs": timing.jobs})
        return out
    finally:
        for server in servers:
            server.stop()


def summarize(rec: dict[str, Any], startup_s: float) -> dict[str, Any]:
    jobs = list(rec["jobs"].values())
    by_target: dict[str, list[dict[str, Any]]] = {}
    for j in sorted(jobs, key=lambda j: j["start"]):
        by_target.setdefault(j["target"], []).append(j)
    later = [j for js in by_target.values() for j in js[1:]]  # after each device's first job
    overhead = [(j["end"] - j["start"] - (j["timed_end"] - j["load_begin"])) / 1e6 for j in later]
    before = [(j["load_begin"] - j["start"]) / 1e6 for j in later]
    after = [(j["end"] - j["timed_end"]) / 1e6 for j in later]
    first_sample = [(j["first_end"] - j["start"]) / 1e6 for j in jobs]
    sent = sum(j.get("bytes_sent", 0) for j in jobs)  # each run stores what it shipped itself
    med = statistics.median
    return {
        "wall_s": rec["wall_s"],
        "overhead_ms": med(overhead),
        "before_ms": med(before),
        "after_ms": med(after),
        "harness_only_ms": med(overhead) - startup_s * 1000,
        "first_sample_ms": med(first_sample),
        "first_sample_max_ms": max(first_sample),
        "bytes": sent,
        "cpu_ms_per_job": rec["cpu_s"] * 1000 / len(jobs),
        "busy_ms_per_job": rec["busy_s"] * 1000 / len(jobs),
        "busy_share": rec["busy_s"] / (rec["wall_s"] * (os.cpu_count() or 1)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,4,16")
    ap.add_argument("--jobs", type=int, default=3, help="jobs per device (default 3)")
    ap.add_argument("--timed", type=int, default=200, help="timed iterations per job (default 200)")
    ap.add_argument("--latency-ms", type=float, default=1.0, help="synthetic latency (default 1 ms)")
    ap.add_argument("--python", default=sys.executable, help="the devices' Python (default: this one)")
    args = ap.parse_args()
    reason = sshd_unavailable()
    if reason:
        print(f"fleet benchmark: cannot run: {reason}", file=sys.stderr)
        return 1
    sizes = [int(x) for x in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="hilbench-fleet-"))
    try:
        keys = UserKeys.make(work / "keys")
        startup = agent_startup_s(args.python)
        print(f"devices: sshd on 127.0.0.1, device Python {args.python}; plan: {args.jobs} jobs x (5 warm-up + "
              f"{args.timed} timed) synthetic {args.latency_ms} ms + a {MODEL.stat().st_size} B model; "
              f"agent start-up alone (Python + probe): {startup * 1000:.0f} ms")
        rows = []
        for n in sizes:
            folder = work / f"fleet-{n}"
            folder.mkdir()
            for rec in run_fleet(n, folder, keys, args):
                rows.append((n, rec["run"], summarize(rec, startup)))
        base = {run: s["wall_s"] for n, run, s in rows if n == sizes[0]}
        print(f"{'devices':>7} {'run':>6} {'wall s':>7} {'x one':>6} {'job overhead ms':>16} {'(start->load':>13} "
              f"{'timed->stored)':>15} {'minus agent start':>18} {'first sample ms':>16} {'bytes sent':>11} "
              f"{'harness CPU ms/job':>19} {'all CPU ms/job':>15} {'cores busy':>11}")
        for n, run, s in rows:
            print(f"{n:>7} {run:>6} {s['wall_s']:>7.2f} {s['wall_s'] / base[run]:>6.2f} {s['overhead_ms']:>16.0f} "
                  f"{s['before_ms']:>13.0f} {s['after_ms']:>15.0f} {s['harness_only_ms']:>18.0f} "
                  f"{s['first_sample_ms']:>5.0f} (max {s['first_sample_max_ms']:>4.0f}) {s['bytes']:>11} "
                  f"{s['cpu_ms_per_job']:>19.0f} {s['busy_ms_per_job']:>15.0f} {s['busy_share']:>10.0%}")
        print(f"cores: {os.cpu_count()}. 'all CPU' is the whole machine's busy time (harness, sshd, agents) per job; "
              "where the cores are near 100% busy, the fleet's wall time is bound by the devices sharing this "
              "machine's CPU, which real boards do not.")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
