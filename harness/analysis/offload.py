"""The per-run offload verdict: how much of the model the accelerator ran (docs/backends.md, "Offload verdicts").

Every runs row has an ``offload`` column (JSON text)::

    {"accelerator": "XNNPACK" | "CUDAExecutionProvider" | "edgetpu" | "GPU" | "DLA:0" | "ANE" | "cpu" | null,
     "nodes_total": N, "nodes_accelerated": A, "nodes_cpu": C,   # ints, or null when the runtime cannot tell
     "partitions": P,                                             # accelerated subgraphs, or null
     "cpu_ops": ["OP", ...],                                      # op types left on the CPU, graph order, distinct
     "source": "where these counts came from, or why they are null"}

and, where the runtime says them, ``precisions`` ({"FP16": n, ...}: TensorRT layers by precision) and
``devices`` ({"GPU": n, "DLA": n} or {"CPU": n, "NE": n}: nodes by compute unit). The device agent sends the
dict in its result (``offload``); the host checks it with :func:`normalize` before storing it. A run with no
accelerator asked for is ``accelerator = "cpu"``: nothing could fall back, so its share is n/a.

:func:`share` and :func:`label` are what ``show``, ``results``, ``report`` and ``compare`` print;
:func:`required_problem` is the ``require_offload`` rule; :func:`differs` is ``compare``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hilbench_agent.backends.base import offload_problem

from harness.agent.offload import (
    KEYS,
    MAX_CPU_OPS,
    MAX_NAME_LEN,
    NOT_RECORDED,
    OffloadError,
    normalize,
    not_reported,
)

__all__ = ["OffloadError", "KEYS", "normalize", "not_reported", "share", "label", "required_problem", "differs",
           "from_column", "MAX_CPU_OPS", "MAX_NAME_LEN"]

def from_column(value: Any) -> dict[str, Any]:
    """A runs row's ``offload`` (JSON text, a dict, or null in a store written before the column) as a verdict;
    a stored value that does not check reads as unknown, saying so."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return not_reported(NOT_RECORDED)
    try:
        return normalize(value)
    except OffloadError as exc:
        return not_reported(f"the stored verdict is unreadable: {exc}")


def share(d: Mapping[str, Any] | None) -> float | None:
    """nodes_accelerated / nodes_total where both are known (and an accelerator was asked for), else None."""
    if not d or d.get("accelerator") in (None, "cpu"):
        return None
    total, acc = d.get("nodes_total"), d.get("nodes_accelerated")
    if type(total) is not int or type(acc) is not int or total <= 0:
        return None
    return acc / total


def _percent(acc: int, total: int) -> int:
    pct = int(round(100.0 * acc / total))
    if acc < total:
        pct = min(pct, 99)  # never "100%" for a run that left a node behind
    if acc > 0:
        pct = max(pct, 1)
    return pct


def label(d: Mapping[str, Any] | None, *, short: bool = False) -> str:
    """The verdict as a few words: ``XNNPACK 58/60 (97%)``, ``cpu``, ``GPU (share unknown)``,
    ``unknown: <source>`` (``short``: ``unknown``)."""
    if not d:
        return "unknown" if short else f"unknown: {NOT_RECORDED}"
    accelerator = d.get("accelerator")
    if accelerator is None:
        return "unknown" if short or not d.get("source") else f"unknown: {d.get('source')}"
    if accelerator == "cpu":
        return "cpu"
    total, acc = d.get("nodes_total"), d.get("nodes_accelerated")
    if type(total) is int and type(acc) is int and total > 0:
        return f"{accelerator} {acc}/{total} ({_percent(acc, total)}%)"
    return f"{accelerator} (share unknown)"


def required_problem(d: Mapping[str, Any] | None) -> str | None:
    """Why a run with ``require_offload = true`` fails (one line), or None when it passes: every node on the
    accelerator, or no accelerator asked for (``cpu``: nothing could fall back). The agent applies the same rule
    (``hilbench_agent.backends.base.offload_problem``, this function's single implementation)."""
    problem: str | None = offload_problem(dict(d) if d else not_reported())
    return problem


def differs(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> str | None:
    """Why two runs' offload differs (accelerator, or accelerated and total nodes), or None when it does not or
    when either is unknown (a run stored before the verdicts existed is not evidence of a change)."""
    if not a or not b or a.get("accelerator") is None or b.get("accelerator") is None:
        return None
    if a.get("accelerator") != b.get("accelerator"):
        return f"{label(a)} vs {label(b)}"
    counts = [(a.get(k), b.get(k)) for k in ("nodes_accelerated", "nodes_total")]
    if all(x is not None and y is not None for x, y in counts) and any(x != y for x, y in counts):
        return f"{label(a)} vs {label(b)}"
    return None
