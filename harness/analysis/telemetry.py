"""Host side of telemetry: turn a recorded sensor output into readings.

``parse_file(path, kind=None)`` reads a file recorded on a device (tegrastats
log, ``vcgencmd`` output, ``dumpsys`` dump, powermetrics text or plist, a sysfs
listing...) and returns one dict per reading, with the same parsers the device
agent runs (``hilbench_agent.telemetry``). ``hilbench telemetry parse`` prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hilbench_agent.telemetry import KINDS, detect_kind, parse_text

from harness.errors import InputError

__all__ = ["KINDS", "parse_file", "parse_string"]


def parse_string(text: str, kind: str | None = None, *, where: str = "<text>") -> list[dict[str, Any]]:
    """Readings of ``text`` as dicts: sensor, value (float or None), unit, source, reason (when None), extra."""
    if kind is not None and kind not in KINDS:
        raise InputError(f"{where}: unknown telemetry kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind is None:
        kind = detect_kind(text)
        if kind is None:
            raise InputError(f"{where}: cannot recognise the format; pass --kind (one of {', '.join(KINDS)})")
    try:
        readings = parse_text(kind, text)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from exc
    if not readings:
        # A format that was named but not found (a wrong --kind, an empty or cut-off file) is an error, not
        # an empty success a script would take for "no sensors".
        raise InputError(f"{where}: no {kind} readings in this file; check --kind (one of {', '.join(KINDS)}) "
                            "or whether the file is complete")
    out = []
    for r in readings:
        d = r.to_dict(extra=True)
        d["kind"] = kind
        out.append(d)
    return out


def parse_file(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Readings of a recorded output file; ``kind`` None recognises the format.

    Raises :class:`InputError` (one line, naming the file) when the file
    cannot be read, the kind is unknown, the format is not recognised, or it
    gives no reading at all. A bare number (a sysfs temp file) is not
    recognised: pass ``kind="sysfs-temp"``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    text = data.decode("utf-8", errors="replace")
    return parse_string(text, kind, where=str(path))
