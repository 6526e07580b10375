"""The exit statuses ``hilbench`` chooses (docs/reference.md, "Exit statuses"; tests/test_exits.py runs each).

======  =================  ==================================================================================
status  name               when
======  =================  ==================================================================================
0       EXIT_OK            everything asked for was done (every job ran, nothing regressed)
1       EXIT_USER          a user error (a bad plan, target, store, file or device: one line, no traceback
                           without --debug), including a comparison that cannot be made
2       EXIT_USAGE         the command line itself is wrong (an unknown option or command, a bad choice)
3       EXIT_JOBS_FAILED   ``run``: some jobs failed; their errors are stored with the session
4       EXIT_INTERNAL      a bug in hilbench: one line naming the exception, ``--debug`` for its traceback
5       EXIT_REGRESSED     the verdict a CI gate fails on: ``compare`` found a regression, ``history --fail``
                           found a regression (or a drift the worse way)
130     EXIT_INTERRUPTED   Ctrl-C (SIGINT): what finished is stored, the session is marked interrupted
======  =================  ==================================================================================

A regression has a status of its own (5: the next free one, well below the shell's 126, 127 and 128 + a
signal), so a CI step can fail the build on it and treat 1-4 as "the check itself is broken" (fix the job,
not the code).
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_USER", "EXIT_REGRESSED", "EXIT_USAGE", "EXIT_JOBS_FAILED", "EXIT_INTERNAL",
           "EXIT_INTERRUPTED", "EXIT_STATUSES"]

EXIT_OK = 0
EXIT_USER = 1
EXIT_USAGE = 2
EXIT_JOBS_FAILED = 3
EXIT_INTERNAL = 4
EXIT_REGRESSED = 5
EXIT_INTERRUPTED = 130

#: every status and what it means, as the docs' table says it
EXIT_STATUSES = {
    EXIT_OK: "ok",
    EXIT_USER: "user error (including a comparison that cannot be made)",
    EXIT_USAGE: "usage error (the command line)",
    EXIT_JOBS_FAILED: "some jobs failed (stored)",
    EXIT_INTERNAL: "internal error (a bug): rerun with --debug for the traceback",
    EXIT_REGRESSED: "a regression found (compare; history --fail)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
