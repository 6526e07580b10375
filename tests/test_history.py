"""hilbench history: nightly points from per-run summaries, the change-point detector on each series
(tests/test_changepoints.py has its statistics), persisting rises flagged, and ``--csv`` for numbers a team
already has."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import fake_lab
from support import nightly_series as ns

from harness.analysis.history import detect_changes, nightly_points, read_csv_points
from harness.cli import main
from harness.cli.exits import EXIT_OK, EXIT_REGRESSED, EXIT_USER
from harness.errors import InputError

pytest.importorskip("ruptures")

SERIES = "effnet-lite0-int8 @ fake-orin-nano [litert threads=4] p50"


def build(tmp_path, **kw):
    return fake_lab.build(tmp_path / "res", n=200, eval_items=0, telemetry=False, **kw)


@pytest.mark.slow
def test_one_point_per_night_from_run_summaries(tmp_path):
    store = build(tmp_path, nights=5)
    points = nightly_points(store, ["p50", "p99", "peak_memory"])
    per = points.groupby(["series"]).size()
    assert (per == 5).all() and len(per) == 3 * len(fake_lab.TARGETS) * len(fake_lab.MODELS)
    summary = store.summary()
    one = summary[(summary["model"] == "effnet-lite0-int8") & (summary["target"] == "fake-orin-nano")]
    p = points[points["series"] == SERIES].sort_values("night")
    assert p["value"].tolist() == pytest.approx((one.sort_values("started_at")["p50_ns"] / 1e6).tolist())


@pytest.mark.slow
def test_a_persisting_step_is_flagged_on_its_first_night(tmp_path, capsys):
    store = build(tmp_path, nights=20, regress_from=12)
    points = nightly_points(store, ["p50"])
    changes = detect_changes(points)
    flagged = changes[changes["gates"]]
    assert flagged["series"].tolist() == [SERIES]
    row = flagged.iloc[0]
    assert (row["kind"], row["index"], row["night"]) == ("regression", 12, "2026-10-13")  # night 12 from 2026-10-01
    assert (row["nights_before"], row["nights_after"]) == (12, 8) and 0.07 < row["change"] < 0.13
    assert main(["history", "--store", str(tmp_path / "res"), "--metric", "p50", "--fail", "--format", "json"]) \
        == EXIT_REGRESSED
    data = json.loads(capsys.readouterr().out)
    assert data["regressions"] == 1 and data["nights"] == 20
    [change] = data["changes"]
    assert change["series"] == SERIES and change["kind"] == "regression" and change["index"] == 12
    assert main(["history", "--store", str(tmp_path / "res"), "--metric", "p50"]) == EXIT_OK  # no --fail


@pytest.mark.slow
def test_a_fresh_rise_is_unconfirmed_and_noise_is_quiet(tmp_path, capsys):
    store = build(tmp_path, nights=16, regress_from=15)  # one night on the new level
    changes = detect_changes(nightly_points(store, ["p50"]))
    assert not changes["gates"].any()
    assert set(changes.loc[changes["series"] == SERIES, "kind"]) == {"unconfirmed"}
    assert main(["history", "--store", str(tmp_path / "res"), "--metric", "p50", "--fail"]) == EXIT_OK
    assert "1 unconfirmed (--all lists it)" in capsys.readouterr().out
    # Two nights confirm it; --persist 3 asks for a third.
    store = build(tmp_path / "two", nights=16, regress_from=14)
    assert detect_changes(nightly_points(store, ["p50"]))["gates"].sum() == 1
    assert main(["history", "--store", str(tmp_path / "two" / "res"), "--metric", "p50", "--fail", "--persist", "3"]) \
        == EXIT_OK
    quiet = build(tmp_path / "q", nights=16)
    assert not detect_changes(nightly_points(quiet, ["p50"]))["gates"].any()


@pytest.mark.slow
def test_a_flagged_night_names_the_git_refs_to_compare(tmp_path, capsys):
    # Runs labelled by the documented convention: hilbench run --label git=$(git rev-parse --short HEAD)
    store = build(tmp_path, nights=20, regress_from=12, git=True)
    points = nightly_points(store, ["p50"])
    assert points.loc[points["night"] == "2026-10-13", "git"].unique().tolist() == [fake_lab.git_ref(12)]
    flagged = detect_changes(points).query("kind == 'regression'").iloc[0]
    assert (flagged["git_before"], flagged["git_after"]) == (fake_lab.git_ref(11), fake_lab.git_ref(12))
    assert main(["history", "--store", str(tmp_path / "res"), "--metric", "p50"]) == EXIT_OK
    assert f"{fake_lab.git_ref(11)} -> {fake_lab.git_ref(12)}" in capsys.readouterr().out
    # Unlabelled runs: no git column in the table.
    build(tmp_path / "plain", nights=20, regress_from=12)
    assert main(["history", "--store", str(tmp_path / "plain" / "res"), "--metric", "p50"]) == EXIT_OK
    assert "git" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- --csv


def write_csv(path, series: dict[str, np.ndarray], *, dates: bool = True, config: bool = True, shuffle: int = 0):
    rows = []
    for name, values in series.items():
        for i, v in enumerate(values):
            night = f"2025-{1 + i // 28:02d}-{1 + i % 28:02d}" if dates else str(i)
            rows.append(([name] if config else []) + [night, f"{v:.6f}"])
    if shuffle:
        np.random.default_rng(shuffle).shuffle(rows)
    head = (["config"] if config else []) + ["night", "value"]
    path.write_text("\n".join(",".join(r) for r in [head, *rows]) + "\n", encoding="utf-8")
    return path


def test_csv_json_is_keyed_by_config_with_each_finding(tmp_path, capsys):
    rng = np.random.default_rng(21)
    csv = write_csv(tmp_path / "nights.csv", {"board-a": ns.step(rng, 120, 100, 0.10), "board b": ns.noise(rng, 120)})
    # The step is 20 nights old: --fail judges the newest nights (14 by default), a wider window sees it.
    assert main(["history", "--csv", str(csv), "--format", "json", "--fail"]) == EXIT_OK
    assert main(["history", "--csv", str(csv), "--format", "json", "--fail", "--fail-window", "30"]) == EXIT_REGRESSED
    capsys.readouterr()
    assert main(["history", "--csv", str(csv), "--format", "json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["board b", "board-a"] and data["board b"] == []
    [f] = data["board-a"]
    assert (f["index"], f["night"], f["kind"], f["nights_before"], f["nights_after"]) == \
        (100, "2025-04-17", "regression", 100, 20)
    assert f["change"] == pytest.approx(0.10, abs=0.015) and f["before"] == pytest.approx(5.0, rel=0.01)
    assert main(["history", "--csv", str(csv)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("2 series over 120 nights; 1 regression") and "2025-04-17" in out and "board-a" in out


def test_csv_without_config_with_integer_nights_out_of_order(tmp_path, capsys):
    x = ns.step(np.random.default_rng(22), 40, 30, 0.10)
    csv = write_csv(tmp_path / "n.csv", {"": x}, dates=False, config=False, shuffle=3)
    points = read_csv_points(csv)
    assert points["order"].tolist() == list(range(40))  # 10 after 9, not after 1
    assert main(["history", "--csv", str(csv), "--format", "json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert list(data) == [""] and [(f["index"], f["night"], f["kind"]) for f in data[""]] == [(30, 30, "regression")]


def test_csv_higher_is_better_and_repeated_nights(tmp_path, capsys):
    x = ns.step(np.random.default_rng(23), 60, 45, -0.10)  # throughput falls by a tenth
    csv = write_csv(tmp_path / "fps.csv", {"fps": x}, dates=False)
    with csv.open("a", encoding="utf-8") as f:
        f.write(f"fps,59,1e9\nfps,59,1e-9\nfps,59,{x[59]:f}\n")  # three runs of night 59: their median
    assert read_csv_points(csv)["value"].iloc[-1] == pytest.approx(x[59], rel=1e-5)
    assert main(["history", "--csv", str(csv), "--format", "json", "--fail"]) == EXIT_OK
    assert [f["kind"] for f in json.loads(capsys.readouterr().out)["fps"]] == ["improvement"]
    assert main(["history", "--csv", str(csv), "--format", "json", "--fail", "--higher-is-better",
                 "--fail-window", "15"]) == EXIT_REGRESSED
    assert [f["kind"] for f in json.loads(capsys.readouterr().out)["fps"]] == ["regression"]


@pytest.mark.parametrize(("text", "where", "what"), [
    ("", ":1:", "empty file"),
    ("night,config\n1,a\n", ":1:", "no 'value' column"),
    ("night,value,value\n1,2,3\n", ":1:", "appears twice"),
    ("night,value\n1,5\n2,abc\n", ":3:", "value 'abc' is not a number"),
    ("night,value\n1,5\n2,-1\n", ":3:", "must be a positive number"),
    ("night,value\n1,5\n2,inf\n", ":3:", "must be a positive number"),
    ("night,value\n1,5\nmonday,5\n", ":3:", "neither a date"),
    ("night,value\n1,5\n\n2025-01-02,5\n", ":4:", "line 2 had an integer"),
    ("night,value\n1,5\n2,5,7\n", ":3:", "3 fields, the header has 2"),
    ('night,value\n1,5\n2,"5\n', ":3:", "not CSV"),
    ("night,value\n", "", "no rows under the header"),
    (b"night,value\n1,5\n2,\xff\n", "", "not UTF-8"),
])
def test_bad_csv_is_one_line_naming_file_and_line(tmp_path, capsys, text, where, what):
    csv = tmp_path / "bad.csv"
    if isinstance(text, bytes):
        csv.write_bytes(text)
    else:
        csv.write_text(text, encoding="utf-8")
    out = tmp_path / "out.json"
    assert main(["history", "--csv", str(csv), "--format", "json", "--output", str(out)]) == EXIT_USER
    err = capsys.readouterr().err
    assert err.startswith(f"hilbench: error: {csv}{where}") and what in err and err.count("\n") == 1, err
    assert not out.exists()  # nothing half-written
    with pytest.raises(InputError):
        read_csv_points(csv)


def test_csv_missing_file_and_store_only_options(tmp_path, capsys):
    assert main(["history", "--csv", str(tmp_path / "none.csv")]) == EXIT_USER
    assert "none.csv: cannot read" in capsys.readouterr().err
    csv = write_csv(tmp_path / "n.csv", {"a": ns.noise(np.random.default_rng(1), 20)})
    assert main(["history", "--csv", str(csv), "--metric", "p99"]) == EXIT_USER
    assert "--metric applies to the store" in capsys.readouterr().err
    assert main(["history", "--store", str(tmp_path), "--higher-is-better"]) == EXIT_USER
    assert "--higher-is-better applies to --csv" in capsys.readouterr().err
