"""The ``hilbench`` command. Each subcommand is a thin layer over library calls; only this package prints
and chooses exit statuses.

* :mod:`~harness.cli.app`: the parser, logging set-up and :func:`main` (the ``hilbench`` entry point);
* :mod:`~harness.cli.commands`: one ``cmd_*`` function per subcommand, and the text of ``results`` / ``show``;
* :mod:`~harness.cli.progress`: the progress display of ``hilbench run``;
* :mod:`~harness.cli.exits`: the exit statuses.
"""

from __future__ import annotations

from harness.cli.app import build_parser, main

__all__ = ["main", "build_parser"]
