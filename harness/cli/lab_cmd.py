"""``hilbench lab release [PLACE]``: give back the labgrid places hilbench runs on this host acquired and never
released (a run that was killed: labgrid's acquired places never time out). docs/lab.md."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.cli.exits import EXIT_OK, EXIT_USER
from harness.cli.progress import LINE_LIMIT
from harness.safetext import safe

__all__ = ["add_lab_parser", "cmd_lab_release"]


def add_lab_parser(sub: Any) -> None:
    lab = sub.add_parser("lab", help="labgrid places (lab release: clear the places killed runs left acquired)")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    r = lab_sub.add_parser("release", help="release the places (and cancel the reservations) that hilbench runs on "
                                           "this host acquired and never released; never one a live run holds")
    r.add_argument("place", nargs="?", help="only this place (default: every stale one)")
    r.set_defaults(func=cmd_lab_release)


def cmd_lab_release(args: argparse.Namespace) -> int:
    from harness.transport.labgrid import lease_dir, release_stale

    lines, ok = release_stale(args.place)
    for line in lines:
        sys.stdout.write(safe(line, LINE_LIMIT) + "\n")
    if not lines:
        sys.stdout.write(f"no stale labgrid places: hilbench holds nothing that a finished run left ({lease_dir()})\n")
    return EXIT_OK if ok else EXIT_USER
