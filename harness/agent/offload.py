"""The offload verdict as it comes over the wire: :func:`normalize` checks what a device sent (types, bounds) and
fills what it left out. The wire check sits here, below everything that talks to a device
(:mod:`harness.agent.validate` uses it); what the host does with a verdict (labels, shares, ``require_offload``,
``compare``'s rule) is :mod:`harness.analysis.offload`, which re-exports these names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["OffloadError", "KEYS", "COUNTS", "normalize", "not_reported", "MAX_CPU_OPS", "MAX_NAME_LEN", "MAX_SOURCE",
           "NOT_REPORTED", "NOT_RECORDED"]

#: The keys every verdict has (after :func:`normalize`), in the order they are shown.
KEYS = ("accelerator", "nodes_total", "nodes_accelerated", "nodes_cpu", "partitions", "cpu_ops", "source")
COUNTS = ("nodes_total", "nodes_accelerated", "nodes_cpu", "partitions")
#: cpu_ops keeps at most this many op types, each at most MAX_NAME_LEN characters (longer is refused).
MAX_CPU_OPS = 32
MAX_NAME_LEN = 64
#: Longer sources are cut to this.
MAX_SOURCE = 1000
#: No graph has more nodes than this (a larger count is a broken or hostile device).
MAX_NODES = 1_000_000_000
#: Entries in ``precisions`` / ``devices``.
MAX_BREAKDOWN = 16
#: What an older agent's run (no ``offload`` in its result) and an older store's row say.
NOT_REPORTED = "not reported by this agent"
NOT_RECORDED = "not recorded (a run stored before hilbench kept offload verdicts)"


class OffloadError(ValueError):
    """An offload verdict that is not one: the one-line reason names the key."""


def not_reported(source: str = NOT_REPORTED) -> dict[str, Any]:
    """The verdict of a run whose agent said nothing about offload."""
    return {"accelerator": None, "nodes_total": None, "nodes_accelerated": None, "nodes_cpu": None,
            "partitions": None, "cpu_ops": [], "source": source}


def _count(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise OffloadError(f"{key} must be an integer or null, not {type(value).__name__}")
    if not 0 <= value <= MAX_NODES:
        raise OffloadError(f"{key} must be between 0 and {MAX_NODES}, not {value}")
    return value


def _name(value: Any, where: str) -> str:
    if type(value) is not str:
        raise OffloadError(f"{where} must be a string, not {type(value).__name__}")
    if len(value) > MAX_NAME_LEN:
        raise OffloadError(f"{where} is longer than {MAX_NAME_LEN} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise OffloadError(f"{where} holds a control character")
    return value


def _breakdown(obj: Mapping[str, Any], key: str) -> dict[str, int] | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not dict:
        raise OffloadError(f"{key} must be an object of counts, not {type(value).__name__}")
    if len(value) > MAX_BREAKDOWN:
        raise OffloadError(f"{key} has more than {MAX_BREAKDOWN} entries")
    out = {}
    for name, n in value.items():
        _name(name, f"{key} key")
        if type(n) is not int or not 0 <= n <= MAX_NODES:
            raise OffloadError(f"{key}.{name} must be a count between 0 and {MAX_NODES}")
        out[name] = n
    return out


def normalize(obj: Any) -> dict[str, Any]:
    """``obj`` (a dict, its JSON text, or None) as a checked verdict with every key of :data:`KEYS`: missing keys
    are null (``cpu_ops`` empty), unknown keys dropped, ``cpu_ops`` made distinct, a long ``source`` cut. None is
    :func:`not_reported`. Raises :class:`OffloadError` (one line naming the key) for a wrong type, a negative or
    huge count, accelerated + CPU nodes above the total, or too many or too long names."""
    if obj is None:
        return not_reported()
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except ValueError as exc:
            raise OffloadError(f"not JSON ({exc})") from None
        if obj is None:
            return not_reported()
    if not isinstance(obj, Mapping):
        raise OffloadError(f"must be an object, not {type(obj).__name__}")
    out: dict[str, Any] = {}
    accelerator = obj.get("accelerator")
    out["accelerator"] = None if accelerator is None else _name(accelerator, "accelerator")
    for key in COUNTS:
        out[key] = _count(obj, key)
    total, acc, cpu = out["nodes_total"], out["nodes_accelerated"], out["nodes_cpu"]
    if total is not None:
        for key, n in (("nodes_accelerated", acc), ("nodes_cpu", cpu)):
            if n is not None and n > total:
                raise OffloadError(f"{key} ({n}) is more than nodes_total ({total})")
        if acc is not None and cpu is not None and acc + cpu > total:
            raise OffloadError(f"nodes_accelerated + nodes_cpu ({acc} + {cpu}) is more than nodes_total ({total})")
    ops = obj.get("cpu_ops")
    if ops is None:
        ops = []
    if type(ops) is not list:
        raise OffloadError(f"cpu_ops must be a list of op types, not {type(ops).__name__}")
    if len(ops) > MAX_CPU_OPS:
        raise OffloadError(f"cpu_ops has {len(ops)} entries (at most {MAX_CPU_OPS})")
    seen: list[str] = []
    for i, op in enumerate(ops):
        name = _name(op, f"cpu_ops[{i}]")
        if name not in seen:
            seen.append(name)
    out["cpu_ops"] = seen
    source = obj.get("source")
    if source is not None and type(source) is not str:
        raise OffloadError(f"source must be a string, not {type(source).__name__}")
    source = " ".join((source or "").split())  # one line
    out["source"] = source if len(source) <= MAX_SOURCE else source[:MAX_SOURCE] + "..."
    for key in ("precisions", "devices"):
        value = _breakdown(obj, key)
        if value is not None:
            out[key] = value
    return out
