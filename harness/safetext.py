"""Device text made safe to print: control characters shown, never executed.

Everything a device sends (hello fields, error messages, stderr tails, sensor names, stop reasons, an
SSH banner) may be hostile. Printed raw, ``ESC[2J`` clears the user's screen, ``ESC]0;...BEL`` retitles
the window and a bidirectional override reorders what the user reads. :func:`safe` turns every such
character into a visible escape (``\\x1b``, ``\\u202e``) and caps the length, so the text is shown as
data. Every command that prints device text passes it through here (see docs/security.md).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["safe", "safe_lines"]

#: C0 and C1 control characters, DEL, and the Unicode format characters that reorder or hide text
#: (bidirectional overrides and isolates, zero-width joiners, the BOM, line/paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch == "\t":
        return "\\t"
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: object, limit: int | None = 1000) -> str:
    """``text`` (any object, ``str()``-ed) on one line with every control and format character shown as an
    escape, cut to ``limit`` characters with ``…`` (None: no cut). ``None`` prints as an empty string."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    if s.isprintable() and s.isascii():
        return s
    out = _UNSAFE.sub(_escape, s)
    # Other non-printable code points (unassigned, private use, surrogates) are shown too.
    if not out.isprintable():
        out = "".join(c if c.isprintable() or c == " " else _cat_escape(c) for c in out)
    return out


def _cat_escape(c: str) -> str:
    if unicodedata.category(c) == "Zs":  # other spaces print as a space
        return " "
    code = ord(c)
    return f"\\x{code:02x}" if code <= 0xFF else (f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")


def safe_lines(text: object, limit: int | None = 4000) -> str:
    """Like :func:`safe` but keeps line breaks (a stderr tail): each line made safe on its own."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    return "\n".join(safe(line, None) for line in s.split("\n"))
