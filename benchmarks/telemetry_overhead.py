"""Does the telemetry sampler disturb what it runs beside?

In one process, as the agent runs a job: a bundled model loaded by the agent's own backend, then
blocks of the agent's bare timed loop (``timed_loop``) alternating between the sampler running at
``--rate`` Hz (the sources ``discover`` finds, as a job gets them) and no sampler. Reports the
median latency of each condition (target: on/off within 1%) and the sampler thread's CPU time as a
share of one core over the blocks it ran (target: <= 1%).

    python benchmarks/telemetry_overhead.py [--model mobilenet_v2_035_224_int8.tflite] [--rounds 10]
        [--block-s 2] [--rate 10] [--fake-sysfs]

``--fake-sysfs`` samples a fake tree in a temporary folder (8 thermal zones, 8 CPUs' cpufreq, a RAPL
package with two subdomains, two hwmon chips) instead of ``/``, for a machine that has few sensors of
its own (a VM or a container): a sensor count like a real board's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "device_agents"))

from hilbench_agent.backends import get_backend_class  # noqa: E402
from hilbench_agent.backends.base import generate_inputs  # noqa: E402
from hilbench_agent.main import timed_loop  # noqa: E402
from hilbench_agent.telemetry.discover import discover  # noqa: E402
from hilbench_agent.telemetry.sampler import Sampler  # noqa: E402

MODELS = ROOT / "harness" / "samples" / "models"


def fake_sysfs(root: Path) -> None:
    files: dict[str, str] = {}
    for z in range(8):
        files[f"sys/class/thermal/thermal_zone{z}/type"] = f"zone{z}-thermal\n"
        files[f"sys/class/thermal/thermal_zone{z}/temp"] = f"{45000 + z * 100}\n"
    for c in range(8):
        d = f"sys/devices/system/cpu/cpu{c}/cpufreq"
        files[f"{d}/scaling_cur_freq"] = "1800000\n"
        files[f"{d}/scaling_max_freq"] = "2400000\n"
    for sub, name in (("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "core"), ("intel-rapl:0:1", "uncore")):
        d = f"sys/class/powercap/{sub}"
        files[f"{d}/name"] = name + "\n"
        files[f"{d}/energy_uj"] = "123456789\n"
        files[f"{d}/max_energy_range_uj"] = "262143328850\n"
    for h, chip in enumerate(("coretemp", "nvme")):
        d = f"sys/class/hwmon/hwmon{h}"
        files[f"{d}/name"] = chip + "\n"
        for k in range(1, 4):
            files[f"{d}/temp{k}_input"] = "41000\n"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenet_v2_035_224_int8.tflite", help="a file under harness/samples/models")
    ap.add_argument("--rounds", type=int, default=10, help="on/off pairs (the order alternates each round)")
    ap.add_argument("--block-s", type=float, default=2.0, help="seconds of timed runs per block")
    ap.add_argument("--rate", type=float, default=10.0, help="sampler rate (Hz)")
    ap.add_argument("--threads", type=int, default=1, help="runtime threads")
    ap.add_argument("--fake-sysfs", action="store_true", help="sample a fake sysfs tree with many sensors")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args(argv)

    model = MODELS / args.model
    backend_name = "onnxruntime" if model.suffix == ".onnx" else "litert"
    settings = {"intra_op_threads": args.threads} if backend_name == "onnxruntime" else {"threads": args.threads}
    backend = get_backend_class(backend_name)()
    backend.load(str(model), settings)
    backend.set_inputs(generate_inputs(backend.input_specs(), None, 0))
    invoke = backend.invoke
    timed_loop(invoke, {"count": 50})  # warm-up

    tmp = tempfile.TemporaryDirectory()
    root = "/"
    if args.fake_sysfs:
        fake_sysfs(Path(tmp.name))
        root = tmp.name
    pid = None if args.fake_sysfs else os.getpid()
    probe = discover(root=root, pid=pid)
    sources_described = probe.describe()
    for s in probe:
        s.close()

    policy = {"count": 1, "min_s": args.block_s, "max_s": args.block_s * 3}
    lat: dict[str, list[int]] = {"on": [], "off": []}
    block_medians: dict[str, list[float]] = {"on": [], "off": []}
    cpu_s = wall_s = 0.0
    readings = ticks = 0
    for r in range(args.rounds):
        for cond in (("on", "off") if r % 2 == 0 else ("off", "on")):
            sampler = None
            if cond == "on":
                count = [0]

                def emit(batch: list[dict], count: list[int] = count) -> None:
                    # what the agent does with a batch: one JSON line (kept off stdout here)
                    json.dumps({"type": "telemetry", "readings": batch})
                    count[0] += len(batch)

                sampler = Sampler(list(discover(root=root, pid=pid)), rate_hz=args.rate, emit=emit)
                t0 = time.perf_counter()
                sampler.start()
            block, _, _ = timed_loop(invoke, policy)
            if sampler is not None:
                sampler.stop()
                wall_s += time.perf_counter() - t0
                cpu_s += sampler.cpu_time_s
                readings += count[0]
                ticks += sampler.ticks
            lat[cond].extend(block)
            block_medians[cond].append(statistics.median(block))
    backend.close()
    tmp.cleanup()

    med_on, med_off = statistics.median(lat["on"]), statistics.median(lat["off"])
    figures = {
        "model": args.model, "backend": backend_name, "threads": args.threads, "rate_hz": args.rate,
        "rounds": args.rounds, "block_s": args.block_s, "root": "fake sysfs" if args.fake_sysfs else "/",
        "sources": sources_described["sources"],
        "n_on": len(lat["on"]), "n_off": len(lat["off"]),
        "median_on_ms": med_on / 1e6, "median_off_ms": med_off / 1e6, "ratio_on_off": med_on / med_off,
        "block_median_ratio": statistics.median(block_medians["on"]) / statistics.median(block_medians["off"]),
        "sampler_cpu_share_of_core": cpu_s / wall_s if wall_s else None,
        "sampler_ticks": ticks, "readings": readings,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"model {args.model} ({backend_name}, {args.threads} thread(s)); sampler {args.rate:g} Hz on "
          f"{figures['root']}: {len(figures['sources'])} sources ({'; '.join(figures['sources'])})")
    print(f"{args.rounds} rounds x 2 blocks of {args.block_s:g} s, alternating; {figures['n_on']} runs on, "
          f"{figures['n_off']} off")
    print(f"median latency  on {figures['median_on_ms']:.4f} ms   off {figures['median_off_ms']:.4f} ms   "
          f"on/off {figures['ratio_on_off']:.4f} (target <= 1.01)")
    print(f"sampler CPU     {figures['sampler_cpu_share_of_core'] * 100:.3f}% of one core "
          f"({ticks} ticks, {readings} readings; target <= 1%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
