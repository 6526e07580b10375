"""``--store s3://bucket/prefix``: the results store in object storage, against a local S3 endpoint.

The endpoint is moto's server on loopback (tests/support/s3_standin.py), a STAND-IN for S3, with its
authentication on; one is started for this module. :class:`FaultProxy` in front of it drops connections or
throttles (503 SlowDown) the requests that write a given table.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest
from support import fake_lab
from support.helpers import SYNTH, missing_in_ci

from harness.cli import main
from harness.errors import StoreError
from harness.store import Store

try:
    import moto  # noqa: F401
    from support.s3_standin import BUCKET, FaultProxy, S3StandIn
except ImportError:  # pragma: no cover - the dev extra has it
    S3StandIn = None  # type: ignore[assignment,misc]


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    if S3StandIn is None:
        missing_in_ci("the S3 store tests", "moto is not installed (pip install -e '.[dev]')")
    s3 = S3StandIn(tmp_path_factory.mktemp("s3"))
    yield s3
    s3.close()


@pytest.fixture
def s3(standin, monkeypatch):
    """The stand-in, its credentials in the environment (and none of the user's own AWS settings)."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    for var, value in standin.env().items():
        monkeypatch.setenv(var, value)
    return standin


def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hilbench: error: "), err
    return lines[0]


@pytest.mark.slow
def test_run_results_show_on_s3_with_credentials_in_the_url_masked(s3, tmp_path, capsys, monkeypatch):
    """A run writes the usual layout under the prefix; the URL's credentials never reach the output or the
    stored session (its argv), and a reader with the same URL sees what a local store would show."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    p = prefix()
    # A secret may hold "+" and "/": URL-encoded in a query, as any value is.
    url = f"s3://{BUCKET}/{p}?access_key={s3.access_key}&secret_key={quote(s3.secret_key, safe='')}"
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2").replace("count = 80", "count = 30"))
    argv = ["run", str(plan), "--store", url, "--quiet"]
    monkeypatch.setattr("sys.argv", ["hilbench", *argv])  # what the session row stores
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert f"results in s3://{BUCKET}/{p}?access_key=***&secret_key=***" in out
    assert s3.secret_key not in out + err and s3.access_key not in out + err
    keys = s3.keys(p)
    [run_key] = [k for k in keys if k.startswith(f"{p}/runs/")]
    run_id = run_key.rsplit("/", 1)[1].removesuffix(".parquet")
    assert f"{p}/samples/{run_id}.parquet" in keys and f"{p}/hilbench-store.json" in keys
    assert not [k for k in keys if k.rsplit("/", 1)[1].startswith(".") or k.endswith(".tmp")]  # no temp files

    store = Store(url)
    argv = json.loads(store.sessions().iloc[0]["argv"])
    assert f"s3://{BUCKET}/{p}?access_key=***&secret_key=***" in argv
    assert s3.secret_key not in json.dumps(argv)
    samples = store.samples([run_id])
    assert (samples["phase"] == "timed").sum() == 30
    assert main(["results", "--store", url, "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert run_id in out and s3.secret_key not in out
    assert main(["show", run_id[-6:], "--store", url]) == 0
    out = capsys.readouterr().out
    assert run_id in out and "synthetic" in out


@pytest.mark.slow
def test_compare_history_report_read_s3_as_they_read_a_folder(s3, tmp_path, capsys):
    """The same made-up lab (tests/support/fake_lab.py) written to a folder and to the S3 stand-in: results,
    compare, history and report say the same of both."""
    url = f"s3://{BUCKET}/{prefix()}"
    local = tmp_path / "res"
    for root in (local, url):
        fake_lab.build(root, nights=2, n=100, eval_items=0, telemetry=False, regress_from=1)

    def output(*args: str, store: str) -> tuple[int, str]:
        code = main([*args, "--store", store])
        return code, capsys.readouterr().out

    sql = ("SELECT r.model, r.target, count(*) AS n, median(s.latency_ns) AS p50 FROM samples s JOIN runs r "
           "USING (run_id) WHERE s.phase = 'timed' GROUP BY ALL ORDER BY ALL")
    for args in (("results", "--format", "csv"), ("compare", "--format", "json"),
                 ("history", "--metric", "p50", "--format", "json"), ("sql", sql, "--format", "csv")):
        got_local, got_s3 = output(*args, store=str(local)), output(*args, store=url)
        assert got_s3 == got_local, args
    code, text = output("compare", "--format", "json", store=url)
    [pair] = [p for p in json.loads(text)["pairs"]
              if (p["model"], p["target"], p["metric"]) == ("effnet-lite0-int8", "fake-orin-nano", "p50")]
    assert code == 0 and 1.05 < pair["ratio"] < 1.15  # night 1 of int8 on fake-orin-nano is 10% slower
    html = tmp_path / "report.html"
    assert main(["report", "--store", url, "--output", str(html), "--no-plots"]) == 0
    assert "effnet-lite0-int8" in html.read_text()


@pytest.mark.slow  # the stand-in's start (~2 s) and the SDK's retries
@pytest.mark.parametrize("url, query, message", [
    ("s3://{bucket}/{p}", "?endpoint_override=http://127.0.0.1:1",
     "cannot reach the endpoint http://127.0.0.1:1"),
    ("s3://{bucket}/{p}", "?secret_key=not-the-secret&access_key={key}", "refused the credentials"),
    ("s3://{bucket}/{p}", "?access_key=AKIANOSUCHKEY000&secret_key=not-the-secret", "refused the credentials"),
    ("s3://no-such-bucket/{p}", "", "bucket 'no-such-bucket' does not exist"),
    ("s3://{bucket}/{p}", "", "no results are stored there"),
    ("s3://{bucket}/{p}", "?endpoint=http://x", "unknown option 'endpoint'"),
    ("s3://B_ad/{p}", "", "is not a bucket name"),
])
def test_a_store_that_cannot_be_read_is_one_line_without_secrets(s3, capsys, url, query, message):
    p = prefix()
    store = url.format(bucket=BUCKET, p=p) + query.format(key=s3.access_key)
    assert main(["results", "--store", store]) == 1
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert message in line and out == ""
    assert "not-the-secret" not in line and s3.secret_key not in line
    assert "secret_key=***" in line or "secret_key" not in query


@pytest.mark.slow
def test_run_on_a_missing_bucket_or_endpoint_stops_before_any_job(s3, tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH)
    for store, message in ((f"s3://no-such-bucket/{prefix()}", "does not exist"),
                           (f"s3://{BUCKET}/x?endpoint_override=http://127.0.0.1:1", "cannot reach the endpoint")):
        assert main(["run", str(plan), "--store", store, "--quiet"]) == 1
        out, err = capsys.readouterr()
        assert message in one_error_line(err) and "ok," not in out


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "said"), [("drop", "cannot reach the endpoint"), ("throttle", "throttled")])
def test_a_connection_dropped_while_a_run_is_stored_leaves_nothing_half_written(s3, tmp_path, capsys, mode, said):
    """Every write of a runs row is dropped on its way (or throttled, 503 SlowDown, past the SDK's retries): the
    run's samples (already uploaded) are taken back, no reader sees a run, and the session is closed as failed;
    the one line says what happened."""
    proxy = FaultProxy(("127.0.0.1", s3.port))
    try:
        p = prefix()
        url = f"s3://{BUCKET}/{p}?endpoint_override={proxy.endpoint}"
        plan = tmp_path / "plan.toml"
        plan.write_text(SYNTH.replace("latency_ms = [0.2, 0.4]", "latency_ms = 0.2").replace("count = 80",
                                                                                            "count = 20"))
        proxy.rule, proxy.mode = r"^(PUT|POST) /[^ ]*/runs/", mode
        code = main(["run", str(plan), "--store", url, "--quiet"])
        out, err = capsys.readouterr()
        assert code == 1 and proxy.hits >= 1
        line = one_error_line(err)
        assert "stopped taking writes" in line and said in line, line
        keys = s3.keys(p)
        # (a key ending in "/" is the empty folder marker pyarrow leaves after a delete: no file of any table)
        assert not [k for k in keys if ("/runs/" in k or "/samples/" in k) and not k.endswith("/")], keys
        proxy.rule = None
        store = Store(url)
        assert store.runs().empty and store.samples().empty
        sessions = store.sessions()
        assert sessions["status"].tolist() == ["failed"]
    finally:
        proxy.close()


@pytest.mark.slow  # the stand-in's start (~2 s) and the SDK's retries
def test_a_throttled_write_is_a_store_error_and_stores_nothing(s3):
    proxy = FaultProxy(("127.0.0.1", s3.port))
    try:
        p = prefix()
        store = Store(f"s3://{BUCKET}/{p}?endpoint_override={proxy.endpoint}")
        store.ensure_writable()
        store.write_table("samples", "r1", {"run_id": ["r1"], "phase": ["timed"], "iteration": [0],
                                            "latency_ns": [1000], "t_ns": [0]})
        proxy.rule, proxy.mode = r"^(PUT|POST) /[^ ]*/runs/", "throttle"
        with pytest.raises(StoreError) as info:
            store.write_table("runs", "r1", [{"run_id": "r1", "status": "ok"}])
        message = str(info.value)
        assert "\n" not in message and "throttled" in message and "nothing of it was written" in message
        assert proxy.hits >= 2  # the SDK retried before giving up
        assert f"{p}/runs/r1.parquet" not in s3.keys(p)
        proxy.rule = None
        # The samples whose runs row never came are an orphan: every reader leaves them out.
        assert store.samples().empty and store.summary().empty
        store.write_table("runs", "r1", [{"run_id": "r1", "status": "ok", "timed_ns": 1000}])
        assert store.samples()["latency_ns"].tolist() == [1000]
        # A read cut off is the endpoint's fault: an error, never a file skipped as corrupt.
        proxy.rule, proxy.mode = r"^GET /[^ ]*/samples/r1", "drop"
        reader = Store(store.root)
        with pytest.raises(StoreError, match="cannot reach the endpoint"):
            reader.samples()
        assert reader.skipped == {}
    finally:
        proxy.close()


@pytest.mark.slow
def test_store_check_repair_sets_aside_what_an_interrupted_run_left(s3, capsys):
    """A run that stopped between its samples and its runs row (and a file that is not Parquet) are found by
    `store check` on s3:// and moved under quarantine/ by --repair (copied, then deleted: no rename in S3)."""
    p = prefix()
    url = f"s3://{BUCKET}/{p}"
    store = Store(url)
    store.ensure_writable()
    store.write_table("samples", "r-ok", {"run_id": ["r-ok"], "phase": ["timed"], "iteration": [0],
                                          "latency_ns": [5], "t_ns": [0]})
    store.write_table("runs", "r-ok", [{"run_id": "r-ok", "status": "ok", "timed_count": 1}])
    store.write_table("samples", "r-cut", {"run_id": ["r-cut"], "phase": ["timed"], "iteration": [0],
                                           "latency_ns": [7], "t_ns": [0]})
    s3.s3().put_object(Bucket=BUCKET, Key=f"{p}/telemetry/r-ok.parquet", Body=b"not parquet")
    assert main(["store", "check", "--store", url]) == 1
    out = capsys.readouterr().out
    assert "orphaned        samples/r-cut.parquet: its run r-cut has no runs row" in out
    assert "corrupt         telemetry/r-ok.parquet" in out
    assert main(["store", "check", "--repair", "--store", url]) == 1
    out = capsys.readouterr().out
    assert "moved samples/r-cut.parquet -> quarantine/" in out and "moved telemetry/r-ok.parquet" in out
    keys = s3.keys(p)
    assert f"{p}/samples/r-cut.parquet" not in keys and f"{p}/samples/r-ok.parquet" in keys
    [manifest] = [k for k in keys if k.endswith("manifest.jsonl")]
    lines = s3.s3().get_object(Bucket=BUCKET, Key=manifest)["Body"].read().decode().splitlines()
    assert sorted(json.loads(line)["problem"] for line in lines) == ["corrupt", "orphaned"]
    assert main(["store", "check", "--store", url]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert Store(url).samples()["run_id"].tolist() == ["r-ok"]


def test_store_urls_are_shown_with_every_credential_masked():
    """No server needed: what a message, the stored argv and `store.root` show of an s3:// URL."""
    from harness.storage import ObjectStore, mask_argv

    store = ObjectStore("s3://KEY1:SECRET1@bkt-a/p/q?endpoint_override=http://user:SECRET2@h:9000"
                        "&region=eu-west-1&session_token=SECRET3")
    shown = f"{store.root} {store.endpoint}"
    assert not any(s in shown for s in ("KEY1", "SECRET1", "SECRET2", "SECRET3"))
    assert store.root == ("s3://bkt-a/p/q?endpoint_override=http://***@h:9000&region=eu-west-1"
                          "&session_token=***&access_key=***&secret_key=***")
    argv = mask_argv(["run", "--store", "s3://bkt/p?secret_key=SECRET4&access_key=KEY5", "plan.toml"])
    assert argv == ["run", "--store", "s3://bkt/p?secret_key=***&access_key=***", "plan.toml"]
    with pytest.raises(StoreError, match=r"^--store gs://b/p: gs:// is not a store"):
        Store("gs://b/p")


@pytest.mark.slow
def test_summaries_are_stored_with_each_run_migrate_and_compact_work(s3, capsys):
    """Schema v2 on S3: a run's summary is written with it (the same figures as from its samples); a v1 store in
    the bucket is migrated by `store migrate` through the same code; `store compact` merges each closed session's
    objects and keeps the per-run ones, `--prune` deletes those; the readers see the same rows throughout."""
    p = prefix()
    url = f"s3://{BUCKET}/{p}"
    fake_lab.build(url, nights=2, n=40, eval_items=0, telemetry=False)
    store = Store(url)
    runs = store.runs()
    keys = s3.keys(p)
    summaries = [k for k in keys if k.startswith(f"{p}/summaries/")]
    assert len(summaries) == len(runs) and store.schema_version == 2
    cols = ["run_id", "count", "mean_ns", "p50_ns", "p99_ns"]
    stored = store.summary()[cols].sort_values("run_id").reset_index(drop=True)
    fresh = Store(url).summary(from_samples=True)[cols].sort_values("run_id").reset_index(drop=True)
    assert stored.equals(fresh) and (stored["count"] == 40).all()

    # The bucket as a store from before schema v2: no summaries, a v1 marker.
    client = s3.s3()
    for key in summaries:
        client.delete_object(Bucket=BUCKET, Key=key)
    client.put_object(Bucket=BUCKET, Key=f"{p}/hilbench-store.json", Body=b'{"schema_version": 1}\n')
    assert Store(url).schema_version == 1
    assert main(["store", "migrate", "--store", url]) == 0
    out = capsys.readouterr().out
    assert f"schema v2; stored the summaries of {len(runs)} runs" in out
    migrated = Store(url)
    assert migrated.schema_version == 2
    assert migrated.summary()[cols].sort_values("run_id").reset_index(drop=True).equals(fresh)
    merged = [k for k in s3.keys(p) if k.startswith(f"{p}/summaries/")]
    assert merged and all(k.rsplit("/", 1)[1].startswith("session=") for k in merged)

    # `store compact` on the bucket: merged objects added, the per-run objects kept (no lock to delete under)
    lat_before = Store(url).timed_latencies(list(runs["run_id"]))
    before = set(s3.keys(p))
    assert main(["store", "compact", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "compacted 2 closed sessions" in out, out
    after = set(s3.keys(p))
    assert before < after
    added = after - before
    assert {k.split("/")[1] for k in added} == {"samples", "runs"}  # summaries were merged by the migration
    assert all(k.rsplit("/", 1)[1].startswith("session=") for k in added)
    compacted = Store(url)
    assert compacted.summary()[cols].sort_values("run_id").reset_index(drop=True).equals(fresh)
    lat_after = compacted.timed_latencies(list(runs["run_id"]))
    assert lat_after.keys() == lat_before.keys() and all((lat_after[r] == lat_before[r]).all() for r in lat_before)
    assert main(["store", "compact", "--store", url]) == 0  # again: nothing left to merge
    assert "(nothing to merge)" in capsys.readouterr().out
    # --prune: the per-run objects the merged ones cover are deleted; the readers see the same rows
    assert main(["store", "compact", "--store", url, "--prune"]) == 0
    capsys.readouterr()
    left = set(s3.keys(p))
    per_run = [k for k in left if k.split("/")[1] in ("samples", "runs", "summaries")
               and k.endswith(".parquet") and not k.rsplit("/", 1)[1].startswith("session=")]
    assert per_run == [] and {k for k in after if "session=" in k} <= left
    pruned = Store(url)
    assert pruned.summary()[cols].sort_values("run_id").reset_index(drop=True).equals(fresh)
    lat_pruned = pruned.timed_latencies(list(runs["run_id"]))
    assert all((lat_pruned[r] == lat_before[r]).all() for r in lat_before) and len(lat_pruned) == len(lat_before)


@pytest.mark.slow
def test_a_compacted_store_reads_each_small_object_with_one_get(s3, tmp_path):
    """A store compacted on a host and then kept in a bucket: `Store.summary()` fetches each small object (a
    session's runs, summaries and sessions files) whole, in one GET, and reads its footer (the runs it covers)
    and its rows from that one copy; the figures are the folder's."""
    from harness.storecompact import compact_store

    local = tmp_path / "lab"
    fake_lab.build(local, nights=3, n=40, eval_items=0, telemetry=False)
    assert compact_store(Store(local))
    p = prefix()
    client = s3.s3()
    for path in local.rglob("*"):
        if path.is_file() and "lock" not in path.name:
            client.upload_file(str(path), BUCKET, f"{p}/{path.relative_to(local).as_posix()}")
    before = s3.log.read_text(errors="replace").count("\n")
    got = Store(f"s3://{BUCKET}/{p}").summary().sort_values("run_id").reset_index(drop=True)
    requests = [line.split('"')[1] for line in s3.log.read_text(errors="replace").splitlines()[before:]
                if '"' in line]
    want = Store(local).summary().sort_values("run_id").reset_index(drop=True)
    assert len(got) == len(want) > 0
    assert got.drop(columns=["started_at"]).equals(want.drop(columns=["started_at"]))
    merged = [r.split()[1] for r in requests if r.startswith("GET ") and "/session=" in r]
    assert merged and len(merged) == len(set(merged)), requests  # each compacted object: one GET
    assert {m.split("/")[-2] for m in merged} == {"runs", "summaries"}


@pytest.mark.slow
def test_run_with_wrong_credentials_is_one_line_and_stores_nothing(s3, tmp_path, capsys):
    """A secret key the endpoint refuses: `run` stops before any job, in one line without the secret, and
    nothing is written under the prefix."""
    p = prefix()
    plan = tmp_path / "plan.toml"
    plan.write_text(SYNTH)
    url = f"s3://{BUCKET}/{p}?access_key={s3.env()['AWS_ACCESS_KEY_ID']}&secret_key=WRONG-SECRET-123"
    assert main(["run", str(plan), "--store", url, "--quiet"]) == 1
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert "refused the credentials" in line and "WRONG-SECRET-123" not in err + out, line
    assert [k for k in s3.keys(p) if not k.endswith("/")] == []
