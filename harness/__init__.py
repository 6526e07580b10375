"""hilbench: hardware-in-the-loop benchmarking of edge ML inference.

The public API for reading results::

    import harness
    store = harness.open_store("results")
    store.summary()      # one row per run: p50, p99, CI of the median, throughput, ...
    store.samples()      # every raw iteration, in integer nanoseconds
"""

from __future__ import annotations

__version__ = "0.1.0"

from harness.errors import HilbenchError  # noqa: E402
from harness.store import Store, open_store  # noqa: E402

__all__ = ["__version__", "open_store", "Store", "HilbenchError"]
