"""SQL over a results store with DuckDB (the optional extra ``hilbench[sql]``): :meth:`Store.sql` and
``hilbench sql "SELECT ..."``.

Every table of the store (``runs``, ``samples``, ``telemetry``, ``sessions``, ``accuracy``, ``summaries``, and any
table added to :data:`harness.store.SCHEMAS` since) is a view over its Parquet files, read through pyarrow datasets from the
store's own location (harness/storage.py): a local folder or ``s3://`` alike, with no DuckDB extension to
download (DuckDB's httpfs is not used). Rows are as stored: a run's samples, telemetry and accuracy rows show
only once its ``runs`` row is written (the store's "runs row last" rule), a compacted session's file
(``<table>/session=<id>.parquet``, ``hilbench store compact``) supersedes the per-run files it lists, as for
every reader (``Store._table_files``), files a reader skips as unreadable are
left out, and sessions show the status they were written with (``hilbench store check`` judges abandoned ones).
Columns noted as JSON in docs/reference.md are JSON text: DuckDB's ``->>`` reads them where its json extension
is at hand (it ships with the Python wheel).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from harness.errors import AnalysisError, StoreError

__all__ = ["run_sql", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'hilbench[sql]'"
#: Tables whose rows belong to a run: shown only for runs whose ``runs`` row is written.
_PER_RUN = ("samples", "telemetry", "accuracy", "summaries")


def run_sql(store: Any, query: str, schemas: dict[str, pa.Schema]) -> pd.DataFrame:
    """The result of ``query`` (DuckDB's SQL) over the tables ``schemas`` of ``store`` (a
    :class:`harness.store.Store`, which calls this), as a DataFrame. AnalysisError (one line)
    for a query DuckDB refuses; StoreError when the store cannot be read; StoreError naming the extra when DuckDB
    is not installed."""
    try:
        import duckdb
    except ImportError as exc:
        raise StoreError(f"hilbench sql needs DuckDB, which is not installed: {INSTALL_HINT}") from exc

    if not query.strip():
        raise AnalysisError("sql: the query is empty")
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    try:
        for attempt in (1, 2):
            for table, schema in schemas.items():
                # The files every reader reads: a merged session file, not the per-run files it lists.
                files = [f for f, _ in store._table_files(table)]
                if attempt == 2:  # a file did not read: leave out those that do not (each named in a warning)
                    files = [f for f in files if store._usable(table, f, schema.names)]
                source: Any = store.location.dataset(files, schema) if files else schema.empty_table()
                con.register(f"_hilbench_{table}", source)
                committed = (" WHERE run_id IN (SELECT run_id FROM _hilbench_runs)"
                             if table in _PER_RUN and "run_id" in schema.names else "")
                con.execute(f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM _hilbench_{table}{committed}')
            try:
                return con.execute(query).df()
            except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                    duckdb.ConversionException, duckdb.NotImplementedException) as exc:
                raise AnalysisError(f"sql: {_one_line(exc)}") from exc
            except (duckdb.Error, pa.ArrowException, OSError) as exc:
                store.location.check(exc)  # the endpoint failing: StoreError
                if attempt == 2:
                    raise AnalysisError(f"sql: {_one_line(exc)}") from exc
        raise AssertionError("unreachable")
    finally:
        con.close()


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """DuckDB's message (which shows the query and a caret on lines of their own) as one line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    position = next((ln for ln in lines[1:] if ln.startswith("LINE ")), None)
    if position:
        text += f" ({position.split(':', 1)[0].lower()})"
    return text if len(text) <= limit else text[: limit - 3] + "..."
