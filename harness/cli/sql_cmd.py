"""``hilbench sql "SELECT ..."``: a DuckDB query over the store's tables (harness/sql.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from harness.cli.exits import EXIT_OK
from harness.safetext import safe_lines

__all__ = ["add_sql_parser", "cmd_sql"]


def add_sql_parser(sub: Any, store_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    q = sub.add_parser("sql", help="a SQL query (DuckDB) over the store's tables: runs, samples, telemetry, "
                                   "sessions, accuracy, summaries (needs hilbench[sql])")
    q.add_argument("query", help='the query, e.g. "SELECT model, count(*) FROM runs GROUP BY model"')
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    store_arg(q)
    q.set_defaults(func=cmd_sql)


def cmd_sql(args: argparse.Namespace) -> int:
    from harness.cli.commands import _read_store

    store = _read_store(args)
    df = store.sql(args.query)
    if args.format == "csv":
        text = df.to_csv(index=False).rstrip("\n")
    elif args.format == "json":
        text = df.to_json(orient="records", date_format="iso", date_unit="us", default_handler=str)
    else:
        text = df.to_string(index=False) if len(df.columns) else ""
        text = f"{text}\n({len(df)} row{'s' if len(df) != 1 else ''})" if text else f"({len(df)} rows)"
    if args.format != "json" and sys.stdout.isatty():
        text = safe_lines(text, None)  # what a store holds is shown safe on a terminal
    sys.stdout.write(text + "\n")
    return EXIT_OK
