"""Files as the host sees them: content hashes (what plans record, the store keeps and devices echo), and text
files read with a one-line reason when they are not UTF-8."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256", "read_utf8", "utf8_problem"]


def file_sha256(path: Path) -> str:
    """The sha256 of ``path``'s content, as hex, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def utf8_problem(data: bytes, encoding: str = "utf-8") -> str | None:
    """Why ``data`` is not UTF-8 text (or text in ``encoding``), with the first bad byte and its line (``not UTF-8
    text (byte 0xe9 on line 3)``); None when it is."""
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        name = "UTF-8" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding
        return f"not {name} text (byte 0x{data[exc.start]:02x} on line {line})"
    return None


def read_utf8(path: Path | str) -> str:
    """The text of ``path``. A file that is not UTF-8 raises ValueError with :func:`utf8_problem`'s reason;
    OSError as ``open`` raises it."""
    data = Path(path).read_bytes()
    problem = utf8_problem(data)
    if problem:
        raise ValueError(problem)
    return data.decode("utf-8")
