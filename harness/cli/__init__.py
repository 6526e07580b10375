"""The ``hilbench`` command (:mod:`harness.cli.commands`); ``hilbench = "harness.cli:main"``."""

from __future__ import annotations

from harness.cli.commands import build_parser, main

__all__ = ["main", "build_parser"]
