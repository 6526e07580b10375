"""``Store.sql`` and ``hilbench sql``: DuckDB over the store's tables as views (harness/sql.py). The S3 side is
in tests/test_store_s3.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from support import fake_lab
from support.helpers import missing_in_ci

from harness.cli import main
from harness.errors import AnalysisError, StoreError
from harness.store import Store

try:
    import duckdb  # noqa: F401
except ImportError:  # pragma: no cover - the dev extra has it
    duckdb = None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if duckdb is None:
        missing_in_ci("the SQL tests", "duckdb is not installed (pip install -e '.[dev]')")
    root = tmp_path_factory.mktemp("sql") / "res"
    fake_lab.build(root, nights=1, n=40, eval_items=0, telemetry=True)
    return root


@pytest.mark.slow
def test_views_hold_what_the_readers_return(lab):
    store = Store(lab)
    counts = store.sql("SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM samples) AS samples, "
                       "(SELECT count(*) FROM telemetry) AS telemetry, (SELECT count(*) FROM sessions) AS sessions")
    assert counts.iloc[0].to_dict() == {"runs": len(store.runs()), "samples": len(store.samples()),
                                        "telemetry": len(store.telemetry()), "sessions": len(store.sessions())}
    p50 = store.sql("SELECT run_id, median(latency_ns) AS p50 FROM samples WHERE phase = 'timed' GROUP BY run_id")
    samples = store.samples(phase="timed")
    want = samples.groupby("run_id")["latency_ns"].median()
    assert np.allclose(p50.set_index("run_id")["p50"].sort_index(), want.sort_index())


@pytest.mark.slow
def test_samples_of_a_run_without_its_runs_row_are_not_shown(lab, tmp_path):
    store = Store(lab)
    before = int(store.sql("SELECT count(*) AS n FROM samples")["n"][0])
    # A writer stopped between the samples and the runs row: an orphan every reader (and SQL) leaves out.
    store.write_table("samples", "orphan-run", {"run_id": ["orphan-run"] * 3, "phase": ["timed"] * 3,
                                                 "iteration": [0, 1, 2], "latency_ns": [1, 2, 3], "t_ns": [0, 1, 2]})
    try:
        assert int(store.sql("SELECT count(*) AS n FROM samples")["n"][0]) == before
        assert store.sql("SELECT * FROM samples WHERE run_id = 'orphan-run'").empty
    finally:
        (lab / "samples" / "orphan-run.parquet").unlink()


@pytest.mark.slow
def test_an_unreadable_file_is_left_out_with_a_warning(tmp_path, caplog):
    if duckdb is None:
        missing_in_ci("the SQL tests", "duckdb is not installed (pip install -e '.[dev]')")
    root = tmp_path / "res"
    store = fake_lab.build(root, nights=1, n=40, eval_items=0, telemetry=False)
    victim = sorted((root / "samples").glob("*.parquet"))[0]
    victim.write_bytes(b"PAR1 not parquet at all")
    fresh = Store(root)
    with caplog.at_level("WARNING", logger="hilbench.store"):
        got = fresh.sql("SELECT count(DISTINCT run_id) AS n FROM samples")
    assert int(got["n"][0]) == len(store.runs()) - 1
    assert victim.name in caplog.text and "store check --repair" in caplog.text


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_cli_formats(lab, capsys, fmt):
    query = "SELECT model, count(*) AS runs FROM runs GROUP BY model ORDER BY model"
    assert main(["sql", query, "--store", str(lab), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert json.loads(out) == [{"model": m, "runs": 3} for m in sorted(fake_lab.MODELS)]
    elif fmt == "csv":
        assert out.splitlines() == ["model,runs", *[f"{m},3" for m in sorted(fake_lab.MODELS)]]
    else:
        assert out.splitlines()[-1] == "(3 rows)" and "effnet-lite0-int8" in out


@pytest.mark.parametrize("query, message", [
    ("SELEC * FROM runs", 'sql: Parser Error: syntax error at or near "SELEC"'),
    ("SELECT * FROM no_such_table", "no_such_table does not exist"),
    ("SELECT no_such_column FROM runs", "no_such_column"),
    ("   ", "sql: the query is empty"),
])
def test_bad_sql_is_one_line_and_exit_1(lab, capsys, query, message):
    assert main(["sql", query, "--store", str(lab)]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("hilbench: error: ") and message in lines[0]


def test_without_duckdb_the_error_names_the_extra(lab, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)  # import duckdb raises ImportError
    with pytest.raises(StoreError, match=r"pip install 'hilbench\[sql\]'"):
        Store(lab).sql("SELECT 1")


def test_store_sql_raises_analysis_error_for_bad_sql(lab):
    with pytest.raises(AnalysisError, match="Parser Error"):
        Store(lab).sql("SELECT FROM WHERE")


@pytest.mark.slow
def test_views_follow_compaction_and_hold_the_summaries(tmp_path):
    """After `store compact`, and after one stopped before deleting the per-run files (a per-run file back beside
    the merged file that lists its run), every row shows once, as the readers return it; `summaries` is a view."""
    import shutil

    from harness.storecompact import compact_store

    if duckdb is None:
        missing_in_ci("the SQL tests", "duckdb is not installed (pip install -e '.[dev]')")
    root = tmp_path / "res"
    fake_lab.build(root, nights=2, n=30, eval_items=0, telemetry=False)
    kept = tmp_path / "kept"
    shutil.copytree(root / "samples", kept)
    assert compact_store(Store(root))
    assert all(p.name.startswith("session=") for p in (root / "samples").glob("*.parquet"))
    for p in list(kept.glob("*.parquet"))[:3]:  # a compaction stopped before its deletes
        shutil.copy(p, root / "samples" / p.name)
    store = Store(root)
    got = store.sql("SELECT (SELECT count(*) FROM samples) AS samples, (SELECT count(*) FROM summaries) AS summaries, "
                    "(SELECT count(DISTINCT run_id) FROM summaries) AS summarised, (SELECT count(*) FROM runs) AS runs")
    runs = len(store.runs())
    assert got.iloc[0].to_dict() == {"samples": len(store.samples()), "summaries": runs, "summarised": runs,
                                     "runs": runs}
    p50 = store.sql("SELECT run_id, p50_ns FROM summaries ORDER BY run_id").set_index("run_id")["p50_ns"]
    assert np.allclose(p50, store.summary().set_index("run_id").sort_index()["p50_ns"])
