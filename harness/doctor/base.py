"""What every doctor check module shares: the :class:`Check` a question answers with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Check", "STATUSES", "Shell"]

#: ``ok`` passed, ``warn`` works but measurements may suffer, ``fail`` cannot run, ``info`` a fact.
STATUSES = ("ok", "warn", "fail", "info")


@dataclass(frozen=True)
class Check:
    """One doctor question: ``status`` is ``ok``, ``warn``, ``fail`` or ``info``; ``fix`` says what to do."""

    name: str
    status: str
    detail: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool | None:
        """True passed, False failed, None a warning or a plain fact."""
        return {"ok": True, "fail": False}.get(self.status)


#: runs a shell command on the target: (exit status, output)
Shell = Callable[[str], tuple[int, str]]
