"""The host's side of the agent protocol (see docs/protocol.md).

Every line the agent writes is one JSON object ``{"v": 1, "type": ..., "t_ns": ...}``.
Unknown fields are ignored; a message of a newer major version is refused.

What a device sends is not trusted: a line is at most :data:`MAX_LINE_BYTES` long (the pipe reader,
harness/transport/base.py, refuses longer ones without holding them), nested at most
:data:`MAX_DEPTH` deep, with no ``NaN``/``Infinity``; :func:`decode_line` raises :class:`ProtocolError`
for anything else, never another exception. What the fields hold is checked by harness/agent/validate.py.
A lone surrogate (``"\\udcff"``: Python's ``json`` writes one for a file name that is not UTF-8) is not text any
store or terminal can take: it is decoded as U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

from harness.errors import ProtocolError

__all__ = ["PROTOCOL_VERSION", "MESSAGE_TYPES", "MAX_LINE_BYTES", "MAX_DEPTH", "MAX_CONTAINERS", "decode_line", "too_deep"]

PROTOCOL_VERSION = 1
MESSAGE_TYPES = frozenset({"hello", "lock", "phase", "sample", "telemetry", "accuracy", "result", "error", "log"})

#: The longest protocol line the host reads (bytes, without its newline). The largest legitimate lines are
#: accuracy batches with outputs (the agent ends a batch at 200 items or 200,000 output values, ~4.4 MB);
#: a batch of 5,000 samples is 60-250 kB.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: The deepest nesting of objects and arrays in one message (the agent's deepest is about 6: result ->
#: telemetry -> sensors -> sources -> ...).
MAX_DEPTH = 32
#: The most objects and arrays one line may open. A legitimate line has a few hundred (an accuracy batch:
#: two lists an item); 16 MiB of ``{},`` would be ~4 M dicts, ~1 GB of host memory once decoded.
MAX_CONTAINERS = 100_000


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number in this protocol")


# NaN, Infinity and -Infinity are refused (the agent writes with allow_nan=False); the C scanner stays in use.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_CONTAINERS = (dict, list)
#: A JSON escape of a UTF-16 surrogate, and a surrogate left unpaired once decoded.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogates(value: Any) -> Any:
    """``value`` (decoded JSON, nested at most :data:`MAX_DEPTH` deep) with every unpaired surrogate, in keys
    and strings, replaced by U+FFFD."""
    kind = type(value)
    if kind is str:
        return _SURROGATE.sub("\ufffd", value)
    if kind is list:
        return [_no_surrogates(v) for v in value]
    if kind is dict:
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    return value


def too_deep(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``obj`` (decoded JSON) nests objects and arrays more than ``limit`` deep. Iterative, and a
    flat array is looked at in C (``set(map(type, ...))``), so a 5,000-sample array costs ~0.1 ms."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if type(node) is dict else node
        kinds = set(map(type, children))
        if dict in kinds or list in kinds:
            stack.extend((c, depth + 1) for c in children if type(c) in _CONTAINERS)
    return False


def decode_line(line: str | bytes, *, where: str = "agent") -> dict[str, Any]:
    """Parse one protocol line. Raises :class:`ProtocolError` naming ``where`` (and nothing else)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    text = line.strip()
    if len(text) > MAX_LINE_BYTES:
        raise ProtocolError(f"{where}: a protocol line longer than {MAX_LINE_BYTES} bytes")
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_CONTAINERS:
        raise ProtocolError(f"{where}: a protocol line with more than {MAX_CONTAINERS} objects and arrays")
    try:
        message = _DECODER.decode(text)
    except ValueError as exc:
        raise ProtocolError(f"{where}: not a protocol line ({exc}): {text[:80]!r}") from exc
    except RecursionError as exc:
        raise ProtocolError(f"{where}: a protocol line nested more than {MAX_DEPTH} deep") from exc
    if not isinstance(message, dict):
        raise ProtocolError(f"{where}: a protocol line must be a JSON object: {text[:80]!r}")
    # Fewer brackets than the limit cannot nest deeper (a sample batch has three): no walk needed.
    if brackets > MAX_DEPTH and too_deep(message):
        raise ProtocolError(f"{where}: a protocol line nested more than {MAX_DEPTH} deep")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        message = _no_surrogates(message)
    version = message.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError(f"{where}: protocol line without a version: {text[:80]!r}")
    if version > PROTOCOL_VERSION:
        raise ProtocolError(
            f"{where}: the agent speaks protocol v{str(version)[:12]}, this hilbench understands v{PROTOCOL_VERSION}: upgrade hilbench"
        )
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise ProtocolError(f"{where}: unknown message type {str(kind)[:40]!r}")
    return message
