"""The exit statuses ``hilbench`` chooses: 0 everything ran, 1 user error (one line, no traceback without
--debug), 3 some jobs failed (their errors are stored), 130 interrupted.

A command-line usage error exits 1 like any other user error (``app._Parser.error``): ``EXIT_USAGE`` is
not returned anywhere yet (issue 16, step 4, settles the documented table).
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_USER", "EXIT_USAGE", "EXIT_JOBS_FAILED"]

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_JOBS_FAILED = 0, 1, 2, 3
