"""Small text helpers every layer shares, so each is written once: a job's settings (or labels) as
``key=value`` text, and a JSON column's value read back as a dict. Needs nothing else from hilbench."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["key_values", "json_object"]


def key_values(values: Any) -> str:
    """``a=1 b=x``: a mapping's items sorted by key, or a JSON object's text read first; "" for nothing. Text
    that is not a JSON object is returned as it is (a damaged store shows what it holds)."""
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError:
            return values
    if not isinstance(values, Mapping):
        return ""
    return " ".join(f"{k}={v}" for k, v in sorted(values.items()))


def json_object(value: Any) -> dict[str, Any]:
    """A JSON column's value as a dict: a dict as it is, JSON text decoded; {} for null, NaN, text that is
    not JSON, or JSON that is not an object (a store may be damaged or written by someone else)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}
