"""The host's side of the agent protocol (see docs/protocol.md).

Every line the agent writes is one JSON object ``{"v": 1, "type": ..., "t_ns": ...}``.
Unknown fields are ignored; a message of a newer major version is refused.
"""

from __future__ import annotations

import json
from typing import Any

from harness.errors import ProtocolError

__all__ = ["PROTOCOL_VERSION", "MESSAGE_TYPES", "decode_line"]

PROTOCOL_VERSION = 1
MESSAGE_TYPES = frozenset({"hello", "phase", "sample", "telemetry", "accuracy", "result", "error", "log"})


def decode_line(line: str | bytes, *, where: str = "agent") -> dict[str, Any]:
    """Parse one protocol line. Raises :class:`ProtocolError` naming ``where``."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    text = line.strip()
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"{where}: not a protocol line ({exc}): {text[:80]!r}") from exc
    if not isinstance(message, dict):
        raise ProtocolError(f"{where}: a protocol line must be a JSON object: {text[:80]!r}")
    version = message.get("v")
    if not isinstance(version, int):
        raise ProtocolError(f"{where}: protocol line without a version: {text[:80]!r}")
    if version > PROTOCOL_VERSION:
        raise ProtocolError(
            f"{where}: the agent speaks protocol v{version}, this hilbench understands v{PROTOCOL_VERSION}: upgrade hilbench"
        )
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"{where}: unknown message type {kind!r}")
    return message
