"""A FAKE device lab written straight into a store (Store.write_table): made-up runs, samples,
telemetry and accuracy for three targets and three model variants over several nights.

It exists to test and look at the analysis layer (plots, report, history) quickly; nothing
in it was measured. Every run it writes is marked ``stand_in`` in the runs table.

The Pi reports telemetry like a real one (``throttle.raw`` and the sticky ``*_occurred`` bits
set from the start, the ``soft_temp_limit`` now-bit only late in the run); targets named in
``sustained`` also run a sustained phase (the Pi slows down in it), and every run's
``derived`` column is computed by the real :func:`harness.analysis.derive.derive_run`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from harness.analysis.derive import derive_run
from harness.store import Store

TARGETS = {
    # name: (latency scale, power mW while busy, price USD, temperature rise C)
    "fake-orin-nano": (1.0, 7000.0, 499.0, 14.0),
    "fake-pi5-coral": (2.4, 4500.0, 140.0, 22.0),
    "fake-n100-box": (1.6, 9000.0, 230.0, 9.0),
}
MODELS = {
    # name: (precision, base p50 ms, top-1)
    "effnet-lite0-fp32": ("fp32", 12.0, 0.752),
    "effnet-lite0-fp16": ("fp16", 8.5, 0.751),
    "effnet-lite0-int8": ("int8", 5.0, 0.738),
}


def git_ref(night: int) -> str:
    """The made-up short git ref of a night's build."""
    return f"{(night * 2654435761) % 16**7:07x}"


def build(root: Path, *, nights: int = 1, n: int = 700, seed: int = 0, regress_from: int | None = None,
          regress_by: float = 0.10, eval_items: int = 200, telemetry: bool = True,
          sustained: tuple[str, ...] = (), sustained_s: float = 30.0, labels: dict[str, str] | None = None,
          git: bool = False) -> Store:
    """Write ``nights`` sessions of every model on every target; from night ``regress_from`` on,
    int8 on fake-orin-nano is ``regress_by`` slower. Targets in ``sustained`` add a sustained
    phase of ``sustained_s`` seconds after the timed one. ``labels`` are added to every run's and
    session's labels (as ``hilbench run --label k=v`` does); ``git`` labels each night's runs
    ``git=<7 hex digits>`` as the documented convention does."""
    store = Store(root)
    store.ensure_writable()
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 10, 1, 1, 0, tzinfo=dt.timezone.utc)
    labels_y = rng.integers(0, 1000, eval_items)
    fp32_pred: dict[str, np.ndarray] = {}
    for night in range(nights):
        session = f"s{night:03d}-{seed}"
        t_session = start + dt.timedelta(days=night)
        night_labels = {"build": f"b{night}", **(labels or {}), **({"git": git_ref(night)} if git else {})}
        k = 0
        for target, (scale, power, price, rise) in TARGETS.items():
            for model, (precision, p50, top1) in MODELS.items():
                k += 1
                run_id = f"r{night:03d}-{seed}-{k:02d}"
                level = p50 * scale * (1 + 0.005 * rng.standard_normal())
                if regress_from is not None and night >= regress_from and target == "fake-orin-nano" \
                        and precision == "int8":
                    level *= 1 + regress_by
                lat_ms = level * np.exp(0.04 * rng.standard_normal(n))
                lat_ms[rng.random(n) < 0.01] *= 1.6  # a tail
                lat = (lat_ms * 1e6).astype(np.int64)
                t_ns = np.concatenate(([10**9], 10**9 + np.cumsum(lat[:-1]))).astype(np.int64)
                duration = int(t_ns[-1] + lat[-1] - t_ns[0])
                phases = ["timed"] * n
                is_pi = target == "fake-pi5-coral"
                if target in sustained:
                    # The Pi slows by a quarter from 60% of the sustained phase on; the others hold.
                    m = int(sustained_s * 1000 / level)
                    frac_s = np.arange(m) / m
                    s_ms = level * np.exp(0.04 * rng.standard_normal(m)) * np.where(is_pi & (frac_s >= 0.6), 1.25, 1.0)
                    s_lat = (s_ms * 1e6).astype(np.int64)
                    s_t = int(t_ns[-1] + lat[-1]) + np.concatenate(([0], np.cumsum(s_lat[:-1])))
                    lat, t_ns = np.concatenate((lat, s_lat)), np.concatenate((t_ns, s_t))
                    phases += ["sustained"] * m
                sample_cols = {"phase": phases, "iteration": list(range(n)) + list(range(len(phases) - n)),
                               "latency_ns": lat.tolist(), "t_ns": t_ns.tolist()}
                store.write_table("samples", run_id, dict(sample_cols, run_id=[run_id] * len(phases)))
                rows: dict[str, list] = {"t_ns": [], "sensor": [], "value": [], "unit": [], "source": []}
                if telemetry:
                    ts = np.arange(t_ns[0] - 2 * 10**8, t_ns[-1] + lat[-1], 10**8)
                    frac = (ts - ts[0]) / max(1, ts[-1] - ts[0])
                    for t, f in zip(ts.tolist(), frac.tolist(), strict=True):
                        hot = is_pi and f >= 0.8
                        readings = [("power.total", power * (1 + 0.03 * rng.standard_normal()), "mW"),
                                    ("temp.cpu", 45 + rise * f, "C"),
                                    ("freq.cpu", 1200.0 if hot else 1500.0, "MHz")]
                        if is_pi:  # a Pi that throttled before this run: the sticky bit and raw are never 0
                            readings += [("throttle.raw", float(0x80000 | (0x8 if hot else 0)), ""),
                                         ("throttle.soft_temp_limit_occurred", 1.0, ""),
                                         ("throttle.soft_temp_limit", 1.0 if hot else 0.0, "")]
                        for sensor, value, unit in readings:
                            rows["t_ns"].append(t)
                            rows["sensor"].append(sensor)
                            rows["value"].append(float(value))
                            rows["unit"].append(unit)
                            rows["source"].append("fake")
                    store.write_table("telemetry", run_id, dict(rows, run_id=[run_id] * len(rows["t_ns"])))
                derived = derive_run({"sustained": {"window_s": 5.0}} if target in sustained else {}, {},
                                     sample_cols, rows)
                if eval_items:
                    correct = rng.random(eval_items) < top1
                    pred = np.where(correct, labels_y, (labels_y + 1) % 1000)
                    if precision == "fp32":
                        fp32_pred[target] = pred
                    outputs = [rng.standard_normal(4).astype(np.float32).tolist() for _ in range(eval_items)]
                    store.write_table("accuracy", run_id, {
                        "run_id": [run_id] * eval_items, "index": list(range(eval_items)),
                        "label": labels_y.tolist(), "prediction": pred.tolist(),
                        "top5": [[int(p), int(p) + 1, int(p) + 2, int(p) + 3, int(p) + 4] for p in pred],
                        "score": [1.0] * eval_items, "output": outputs})
                ref = None if precision == "fp32" else "effnet-lite0-fp32"
                store.write_table("runs", run_id, [{
                    "run_id": run_id, "session_id": session, "plan": "fake-lab", "model": model,
                    "model_tags": {"precision": precision, "family": "effnet-lite0"}, "target": target,
                    "transport": "ssh", "backend": "litert", "settings": {"threads": 4}, "status": "ok",
                    "started_at": t_session + dt.timedelta(minutes=k), "finished_at": t_session + dt.timedelta(minutes=k, seconds=30),
                    "labels": night_labels, "hwm_kb": 80_000 + 1000 * k, "timed_count": n,
                    "timed_ns": duration, "timed_stop": "precision" if target == "fake-orin-nano" else "target", "valid": target != "fake-n100-box" or precision != "fp32",
                    "verdict": {"v": 1, "valid": True, "reasons": [], "warnings": []},
                    "emulated": False, "stand_in": True, "python": "3.8.10", "os": "Linux 5.10", "machine": "aarch64",
                    "device_model": target, "agent_version": "0.1.0",
                    "target_facts": {"name": target, "facts": {"price_usd": price, "soc": target.split("-")[1]}},
                    "result": {**({"accuracy": {"count": eval_items, "top_k": 5, "reference": ref}} if eval_items else {}),
                               **({"timed": {"stop_reason": "precision", "precision": 0.01, "achieved_precision": 0.0087}}
                                  if target == "fake-orin-nano" else {})},
                    "device": {"cpu_governor": "ondemand" if is_pi else "performance",
                               "backends": {"litert": {"available": True, "version": "2.14.0"}}},
                    "derived": derived,
                }])
        store.write_table("sessions", session, [{"session_id": session, "started_at": t_session,
                                                 "finished_at": t_session + dt.timedelta(hours=1), "plan": "fake-lab",
                                                 "labels": night_labels, "jobs": k, "jobs_ok": k,
                                                 "jobs_failed": 0, "status": "finished"}])
    return store
