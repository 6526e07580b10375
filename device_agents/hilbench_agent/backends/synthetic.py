"""A STAND-IN backend: it runs no model and sleeps for a latency the job describes.

It exists to test the harness itself (transports, protocol, store, fault
handling) on machines without a runtime. Runs made with it are stored with
backend ``synthetic`` and must never be read as a device's performance.
"""

import os
import random
import time

from hilbench_agent.backends.base import Backend, InputSpec, Setting, offload_verdict
from hilbench_agent.protocol import AgentError


class SyntheticBackend(Backend):
    name = "synthetic"
    model_suffixes = None
    needs_model = False
    settings = {
        "latency_ms": Setting((int, float), "mean latency of one stand-in invoke", minimum=0),
        "jitter_ms": Setting((int, float), "standard deviation of the stand-in latency", minimum=0),
        "first_ms": Setting((int, float), "latency of the first invoke", minimum=0),
        "load_ms": Setting((int, float), "time the stand-in model load takes", minimum=0),
        "spin": Setting((bool,), "busy-wait instead of sleeping (exact, burns a core)"),
        "seed": Setting((int,), "seed of the latency noise"),
        "fail_at": Setting((int,), "raise a backend error at this invoke (for testing)"),
        "crash_at": Setting((int,), "kill the agent process at this invoke (for testing)"),
        "hang_at": Setting((int,), "hang at this invoke (for testing)"),
        "gpu_fraction": Setting((int, float), "report a stand-in GPU time of this fraction of each invoke's "
                                "latency (for testing gpu_ns; above 1 tests the clamp)", minimum=0),
        "offload": Setting((dict,), "report this stand-in offload verdict, sent as it is (for testing the "
                           "offload column, require_offload and compare)"),
    }

    @classmethod
    def probe(cls):
        return {"available": True, "version": "stand-in", "stand_in": True}

    def load(self, model_path, settings):
        self._mean_s = float(settings.get("latency_ms", 1.0)) / 1000.0
        self._jitter_s = float(settings.get("jitter_ms", 0.0)) / 1000.0
        first_ms = settings.get("first_ms")
        self._first_s = None if first_ms is None else float(first_ms) / 1000.0
        self._spin = bool(settings.get("spin", False))
        self._rng = random.Random(settings.get("seed", 0))
        self._fail_at = settings.get("fail_at")
        self._crash_at = settings.get("crash_at")
        self._hang_at = settings.get("hang_at")
        self._count = 0
        self._gpu_fraction = settings.get("gpu_fraction")
        self._gpu = []
        self._settings = dict(settings)
        load_ms = settings.get("load_ms")
        if load_ms:
            time.sleep(float(load_ms) / 1000.0)

    def input_specs(self):
        return [InputSpec("x", [1], "float32")]

    def set_inputs(self, arrays):
        pass

    def invoke(self):
        n = self._count
        self._count = n + 1
        if self._fail_at is not None and n == self._fail_at:
            raise AgentError("backend", "synthetic backend: requested failure at invoke %d" % n)
        if self._crash_at is not None and n == self._crash_at:
            os._exit(70)
        if self._hang_at is not None and n == self._hang_at:
            while True:
                time.sleep(3600)
        if n == 0 and self._first_s is not None:
            delay = self._first_s
        elif self._jitter_s:
            delay = max(0.0, self._rng.gauss(self._mean_s, self._jitter_s))
        else:
            delay = self._mean_s
        if self._gpu_fraction is not None:
            self._gpu.append(int(delay * 1e9 * self._gpu_fraction))
        if self._spin:
            end = time.perf_counter() + delay
            while time.perf_counter() < end:
                pass
        elif delay > 0:
            time.sleep(delay)

    def outputs(self):
        return []

    def take_gpu_ns(self):
        if self._gpu_fraction is None:
            return None
        taken, self._gpu = self._gpu, []
        return taken

    def offload(self, after_run=False):
        given = self._settings.get("offload")
        if given is not None:
            return dict(given)
        return offload_verdict("cpu", source="the synthetic stand-in runs no model")

    def effective_settings(self):
        return {"stand_in": True, "latency_ms": self._mean_s * 1000.0, "jitter_ms": self._jitter_s * 1000.0}
