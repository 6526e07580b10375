"""hilbench history: nightly points from per-run summaries, Apache Otava change points, only
persisting rises flagged."""

from __future__ import annotations

import json

import pytest
from support import fake_lab

from harness.analysis.history import detect_changes, nightly_points
from harness.cli import main

pytest.importorskip("otava")

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
    flagged = changes[changes["status"] == "regression"]
    assert flagged["series"].tolist() == [SERIES]
    assert flagged["night"].iloc[0] == "2026-10-13"  # night 12 from 2026-10-01
    assert 0.07 < flagged["change"].iloc[0] < 0.13
    assert main(["history", "--store", str(tmp_path / "res"), "--metric", "p50", "--fail", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["regressions"] == 1 and data["nights"] == 20
    assert main(["history", "--store", str(tmp_path / "res"), "--metric", "p50"]) == 0  # no --fail


@pytest.mark.slow
def test_a_fresh_rise_is_unconfirmed_and_noise_is_quiet(tmp_path):
    store = build(tmp_path, nights=16, regress_from=14)
    changes = detect_changes(nightly_points(store, ["p50"]))
    assert not (changes["status"] == "regression").any()
    assert set(changes.loc[changes["series"] == SERIES, "status"]) <= {"unconfirmed"}
    quiet = build(tmp_path / "q", nights=16)
    assert not (detect_changes(nightly_points(quiet, ["p50"]))["status"] == "regression").any()


@pytest.mark.slow
def test_a_flagged_night_names_the_git_refs_to_compare(tmp_path, capsys):
    # Runs labelled by the documented convention: hilbench run --label git=$(git rev-parse --short HEAD)
    store = build(tmp_path, nights=20, regress_from=12, git=True)
    points = nightly_points(store, ["p50"])
    assert points.loc[points["night"] == "2026-10-13", "git"].unique().tolist() == [fake_lab.git_ref(12)]
    flagged = detect_changes(points).query("status == 'regression'").iloc[0]
    assert (flagged["git_before"], flagged["git_after"]) == (fake_lab.git_ref(11), fake_lab.git_ref(12))
    assert main(["history", "--store", str(tmp_path / "res"), "--metric", "p50"]) == 0
    assert f"{fake_lab.git_ref(11)} -> {fake_lab.git_ref(12)}" in capsys.readouterr().out
    # Unlabelled runs: no git column in the table.
    build(tmp_path / "plain", nights=20, regress_from=12)
    assert main(["history", "--store", str(tmp_path / "plain" / "res"), "--metric", "p50"]) == 0
    assert "git" not in capsys.readouterr().out
