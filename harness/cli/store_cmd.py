"""``hilbench store check [--repair]`` (harness/storecheck.py), and the notes other commands print about
sessions that are still running or were abandoned."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any

from harness.cli.exits import EXIT_OK, EXIT_USER
from harness.cli.progress import LINE_LIMIT
from harness.safetext import safe

__all__ = ["add_store_parser", "cmd_store_check", "cmd_store_compact", "cmd_store_migrate", "session_notes"]


def add_store_parser(sub: Any, store_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    st = sub.add_parser("store", help="look after the results store (store check [--repair], store migrate, store compact)")
    st_sub = st.add_subparsers(dest="store_command", required=True)
    c = st_sub.add_parser("check", help="list corrupt, orphaned and stale temporary files and abandoned sessions "
                                        "(exit status 1 when any is found)")
    c.add_argument("--repair", action="store_true",
                   help="move corrupt and orphaned files into the store's quarantine/ folder (nothing is deleted), "
                        "remove stale temporary files, close abandoned sessions")
    store_arg(c)
    c.set_defaults(func=cmd_store_check)
    m = st_sub.add_parser("migrate", help="bring an older store to the current schema (stores each run's summary "
                                          "once, so readers need not recompute it from the samples)")
    store_arg(m)
    m.set_defaults(func=cmd_store_migrate)
    k = st_sub.add_parser("compact", help="merge the per-run files of closed sessions into one file per session "
                                          "and table (atomic and resumable; readers see the same rows)")
    k.add_argument("--prune", action="store_true",
                   help="an object store (s3://): also delete the per-run objects the merged ones cover (run it from "
                        "one place at a time; a local store's per-run files are always removed, under its lock)")
    store_arg(k)
    k.set_defaults(func=cmd_store_compact)


def cmd_store_check(args: argparse.Namespace) -> int:
    from harness.storecheck import check_store, open_checked, repair_store

    store = open_checked(args.store)
    findings = check_store(store)
    root = store.root  # what messages show (an object store's URL, credentials masked)
    keys = store.location.key_root  # what the findings' paths are under
    out = sys.stdout
    for f in findings:
        where = f.path.relative_to(keys) if f.path.is_relative_to(keys) else f.path
        out.write(safe(f"{f.kind:15} {where}: {f.detail}", LINE_LIMIT) + "\n")
    problems = [f for f in findings if f.problem]
    if not problems:
        out.write(f"store {root}: no problems found\n")
        return EXIT_OK
    if not args.repair:
        out.write(f"store {root}: {len(problems)} problem{'s' if len(problems) != 1 else ''} found; "
                  f"`hilbench store check --repair --store {root}` moves them into {root}/quarantine "
                  "(nothing is deleted)\n")
        return EXIT_USER
    for line in repair_store(store, problems):
        out.write(safe(line, LINE_LIMIT) + "\n")
    out.write(f"store {root}: {len(problems)} problem{'s' if len(problems) != 1 else ''} found and repaired; "
              "every reader works again (moved files, and why, are listed in quarantine/*/manifest.jsonl)\n")
    return EXIT_USER


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from harness.storecheck import open_checked
    from harness.storecompact import migrate_store

    store = open_checked(args.store)
    n = migrate_store(store)
    sys.stdout.write(f"store {store.root}: schema v{store.schema_version}; stored the summaries of {n} "
                     f"run{'s' if n != 1 else ''}\n")
    return EXIT_OK


def cmd_store_compact(args: argparse.Namespace) -> int:
    from harness.storecheck import open_checked
    from harness.storecompact import compact_store

    store = open_checked(args.store)
    lines = compact_store(store, prune=args.prune)
    for line in lines:
        sys.stdout.write(safe(line, LINE_LIMIT) + "\n")
    sessions = sum(1 for line in lines if line.startswith("session "))
    sys.stdout.write(f"store {store.root}: compacted {sessions} closed session{'s' if sessions != 1 else ''}"
                     f"{'' if sessions else ' (nothing to merge)'}\n")
    return EXIT_OK


def session_notes(store: Any, session_ids: Iterable[Any]) -> list[str]:
    """One line per session among ``session_ids`` that is still running or was abandoned."""
    wanted = {str(s) for s in session_ids if isinstance(s, str)}
    if not wanted:
        return []
    sessions = store.sessions()
    lines = []
    for row in sessions[sessions["session_id"].isin(wanted)].to_dict("records"):
        if row["status"] == "abandoned":
            lines.append(f"hilbench: note: session {row['session_id']} was abandoned ({row['status_detail']}): its "
                         "stored runs are kept; `hilbench run PLAN --resume` runs the rest")
        elif row["status"] == "running":
            lines.append(f"hilbench: note: session {row['session_id']} is still running ({row['status_detail']})")
    return [safe(line, LINE_LIMIT) for line in lines]
