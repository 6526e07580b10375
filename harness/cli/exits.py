"""The exit statuses ``hilbench`` chooses (docs/reference.md, "Exit statuses"; tests/test_exits.py runs each).

======  =================  ==================================================================================
status  name               when
======  =================  ==================================================================================
0       EXIT_OK            everything asked for was done (every job ran, nothing regressed)
1       EXIT_USER          a user error (a bad plan, target, store, file or device: one line, no traceback
                           without --debug), including a comparison that cannot be made, and ``store check``
                           finding a problem
2       EXIT_USAGE         the command line itself is wrong (an unknown option or command, a bad choice)
3       EXIT_JOBS_FAILED   ``run``: some jobs failed; their errors are stored with the session
4       EXIT_INTERNAL      a bug in hilbench: one line naming the exception, ``--debug`` for its traceback
5       EXIT_REGRESSED     the verdict a CI gate fails on: ``compare`` found a regression, ``history --fail``
                           found a regression (or a drift the worse way)
6       EXIT_INCONCLUSIVE  ``compare``: nothing regressed, but a slowdown beyond the threshold cannot be told from
                           a whole-session shift (one process a side, no history): measure again with more processes
129     EXIT_HANGUP        ``run`` got SIGHUP (its terminal closed): stopped as for Ctrl-C
130     EXIT_INTERRUPTED   Ctrl-C (SIGINT): what finished is stored, the session is marked interrupted
143     EXIT_TERMINATED    ``run`` got SIGTERM (``timeout``, a CI runner, systemd): stopped as for Ctrl-C
======  =================  ==================================================================================

A regression has a status of its own (5: the next free one, well below the shell's 126, 127 and 128 + a
signal), so a CI step can fail the build on it and treat any other non-zero status as "the check itself failed"
(fix the job, not the code). A run stopped by a signal exits 128 + the signal's number, as a shell reports a process the
signal killed.
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_USER", "EXIT_REGRESSED", "EXIT_INCONCLUSIVE", "EXIT_USAGE", "EXIT_JOBS_FAILED", "EXIT_INTERNAL",
           "EXIT_INTERRUPTED", "EXIT_HANGUP", "EXIT_TERMINATED", "EXIT_STATUSES", "exit_for_signal"]

EXIT_OK = 0
EXIT_USER = 1
EXIT_USAGE = 2
EXIT_JOBS_FAILED = 3
EXIT_INTERNAL = 4
EXIT_REGRESSED = 5
EXIT_INCONCLUSIVE = 6
EXIT_HANGUP = 129  # 128 + SIGHUP
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

#: every status and what it means, as the docs' table says it
EXIT_STATUSES = {
    EXIT_OK: "ok",
    EXIT_USER: "user error (including a comparison that cannot be made), or a store problem (store check)",
    EXIT_USAGE: "usage error (the command line)",
    EXIT_JOBS_FAILED: "some jobs failed (stored)",
    EXIT_INTERNAL: "internal error (a bug): rerun with --debug for the traceback",
    EXIT_REGRESSED: "a regression found (compare; history --fail)",
    EXIT_INCONCLUSIVE: "compare: a possible slowdown that cannot be told from a whole-session shift (measure again)",
    EXIT_HANGUP: "stopped by SIGHUP (as for Ctrl-C)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "stopped by SIGTERM (as for Ctrl-C)",
}


def exit_for_signal(signum: int | None) -> int:
    """The exit status of a run stopped by ``signum``: 128 + its number (Ctrl-C, None: 130)."""
    return 128 + int(signum) if signum else EXIT_INTERRUPTED
