"""A hostile device cannot make the host import a module or call a function (issue 18, item 1), and
neither can a results store someone else wrote (a CI artefact, a shared bucket).

The device is played for real (tests/support/hostile.py: a local target whose ``python`` is a script printing chosen
protocol lines through the real local transport). Its ``result`` names scorers to import (``this:x`` prints
the Zen of Python, ``venv.__main__:x`` creates virtualenvs in the current folder and exits, a payload module
on the host's path leaves a file behind), a reference, a label array and an evaluation file's sha256.
``hilbench accuracy``, ``report`` and ``plot pareto`` must import none of them; the scorer, the reference
and the labels come from the plan the host recorded, and a scorer runs only when the user trusts it with
``--scorer MODULE:FUNCTION``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.hostile import hostile_target, plan_file

from harness import open_store
from harness.analysis.accuracy import score_runs
from harness.cli import main
from harness.errors import AnalysisError
from harness.files import file_sha256

#: The name this module is known by to the scorers in the plans below (and to the device's lies).
ME = "hostile_acc_scorer"
CALLS: list[tuple[str, np.ndarray]] = []


def mae_scorer(outputs, labels):
    """The user's own scorer: mean absolute error of the first output against real-number labels."""
    CALLS.append(("mae_scorer", np.asarray(labels)))
    return {"mae": float(np.mean(np.abs(outputs[:, 0] - np.asarray(labels, dtype=np.float64))))}


def pwned(outputs, labels):
    """What the device would like the host to call."""
    CALLS.append(("pwned", np.asarray(labels)))
    return {"pwned": 1.0}


@pytest.fixture(autouse=True)
def _scorer_module(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(sys.modules, ME, sys.modules[__name__])


#: The device: a plausible job (first phase, timed samples), an accuracy phase over 4 items (outputs
#: 0.1, 0.2, 0.3, 0.4 on the first output, class 1 predicted), then a result whose accuracy summary carries
#: ``LIES[model]`` on top of what a real agent sends (the host's sha256 echoed, as a real agent does).
DEVICE = """
LIES = {lies}
CLASS = {class_labels}
model = job["model"]["name"]
emit(hello())
emit({{"v": 1, "type": "phase", "phase": "first", "event": "begin", "t_ns": now()}})
emit({{"v": 1, "type": "phase", "phase": "first", "event": "end", "t_ns": now(), "duration_ns": 2000}})
t0 = now()
emit({{"v": 1, "type": "sample", "phase": "timed", "start": 0, "t0_ns": t0, "latency_ns": [200000 + i for i in range(20)],
      "offset_ns": [i * 200000 for i in range(20)]}})
emit({{"v": 1, "type": "phase", "phase": "accuracy", "event": "begin", "t_ns": now()}})
emit({{"v": 1, "type": "accuracy", "start": 0, "index": [0, 1, 2, 3],
      "label": [1, 1, 0, 1] if CLASS else [None] * 4, "top": [[1, 0, 2, 3, 4]] * 4, "score": [0.9] * 4,
      "output": [[0.1 * (i + 1), 0.0, 0.0] for i in range(4)]}})
emit({{"v": 1, "type": "phase", "phase": "accuracy", "event": "end", "t_ns": now(), "count": 4, "duration_ns": 1000}})
acc = {{"count": 4, "top_k": 5, "duration_ns": 1000, "class_labels": CLASS, "y": "y",
       "sha256": (job.get("eval") or {{}}).get("sha256")}}
acc.update(LIES.get(model, {{}}))
emit(result(accuracy=acc))
"""

PLAN = """
name = "hostile-acc"
{models}
[backends.synthetic]
latency_ms = 0.2
[policy]
warmup = 5
timed = {{ count = 20 }}
telemetry = false
"""


def _model(name: str, eval_text: str = 'data = "eval.npz"') -> str:
    return f'[[models]]\nname = "{name}"\nbackends = ["synthetic"]\neval = {{ {eval_text} }}\n'


def _run(tmp_path: Path, models: str, lies: dict[str, dict], *, class_labels: bool = True) -> str:
    """Run the plan on the hostile device; returns the store folder."""
    targets = hostile_target(tmp_path, DEVICE.format(lies=repr(lies), class_labels=class_labels))
    plan = plan_file(tmp_path, PLAN.format(models=models))
    store = str(tmp_path / "res")
    assert main(["run", str(plan), "--targets-dir", str(targets), "--target", "evil", "--store", store,
                 "--quiet"]) == 0
    return store


def _eval_file(tmp_path: Path, y, **more) -> Path:
    path = tmp_path / "eval.npz"
    np.savez(path, x=np.zeros((4, 3), dtype=np.float32), y=np.asarray(y), **more)
    return path


#: The commands that read accuracy, run in a fresh interpreter: whatever they import stays in sys.modules.
READERS = """
import json, sys
from harness.cli import main
store, out = sys.argv[1], sys.argv[2]
codes = [main(["accuracy", "--store", store]),
         main(["report", "--store", store, "--output", out + "/report.html"]),
         main(["plot", "pareto", "--store", store, "--output", out + "/pareto.svg"])]
print("READERS-DONE " + json.dumps({"codes": codes, "imported": sorted(
    m for m in ("this", "venv", "venv.__main__", "evil_payload") if m in sys.modules)}))
"""


@pytest.mark.slow
def test_scorers_named_by_the_device_are_never_imported(tmp_path):
    """The attack of issue 18: the device's result names ``this:x``, ``venv.__main__:x`` and a payload module
    on the host's path. accuracy, report and plot pareto import none of them, exit 0 and score top-1."""
    _eval_file(tmp_path, [1, 1, 0, 1])
    payload = tmp_path / "payload"
    payload.mkdir()
    marker = tmp_path / "PAYLOAD-RAN"
    (payload / "evil_payload.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef x(*a):\n    return {{}}\n")
    lies = {"zen": {"scorer": "this:x"}, "venv": {"scorer": "venv.__main__:x"},
            "payload": {"scorer": "evil_payload:x"}}
    store = _run(tmp_path, "".join(_model(m) for m in lies), lies)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(payload), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", READERS, store, str(tmp_path)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "READERS-DONE" in proc.stdout, (proc.stdout, proc.stderr)  # venv.__main__ would have exited first
    done = json.loads(proc.stdout.split("READERS-DONE ", 1)[1].splitlines()[0])
    assert done == {"codes": [0, 0, 0], "imported": []}, proc.stderr
    assert "Beautiful is better than ugly" not in proc.stdout + proc.stderr
    assert list(cwd.iterdir()) == [] and not marker.exists()
    # The table still scores top-1 for every run (3 of 4 items are class 1), and says nothing of the
    # device's scorers: the plan never named one.
    table = proc.stdout.split("READERS-DONE", 1)[0]
    assert table.count("0.7500") >= 3 and "scorer" not in proc.stderr
    assert (tmp_path / "report.html").is_file() and (tmp_path / "pareto.svg").is_file()
    # The device-named module is not imported in this process either (its scorer would be in CALLS).
    assert score_runs(open_store(store), scorers=[f"{ME}:pwned"])["metrics"].isna().all() and CALLS == []


def test_the_device_cannot_pick_the_reference_the_label_array_or_the_scorer(tmp_path, capsys):
    """The device says: reference = another model, labels in array ``evil``, scorer ``pwned``. The host's plan
    names no reference and the user's scorer on ``y``: that is what is used."""
    y = np.array([0.1, 0.2, 0.3, 0.4]) + 0.5
    _eval_file(tmp_path, y, evil=np.array([0.1, 0.2, 0.3, 0.4]))
    scorer = f"{ME}:mae_scorer"
    lies = {"b": {"reference": "a", "y": "evil", "scorer": f"{ME}:pwned"},
            "a": {"reference": "a", "y": "evil", "scorer": f"{ME}:pwned"}}
    models = _model("a", 'data = "eval.npz"') + _model("b", f'data = "eval.npz", scorer = "{scorer}"')
    store = _run(tmp_path, models, lies, class_labels=False)
    capsys.readouterr()
    assert main(["accuracy", "--store", store, "--scorer", scorer, "--format", "json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert [name for name, _ in CALLS] == ["mae_scorer"]  # never pwned
    np.testing.assert_array_equal(CALLS[0][1], y)  # the plan's y, not the device's "evil"
    b = rows["b"]
    assert b["metrics"] == {"mae": pytest.approx(0.5)} and b["scorer"] == scorer and b["note"] is None
    for row in rows.values():  # no reference in the plan: no fidelity, whatever the device says
        assert row["reference"] is None and row["reference_run_id"] is None and row["agreement"] is None
    assert rows["a"]["scorer"] is None and rows["a"]["metrics"] is None


def test_a_device_sha256_does_not_pick_an_evaluation_file(tmp_path, monkeypatch, capsys):
    """The device echoes the sha256 of another .npz in the host's cache (labels the device would like scored).
    The host reads only the file its plan names and checks it against the sha256 it recorded itself: the lie
    changes nothing, the scorer gets the plan's labels."""
    monkeypatch.setenv("HILBENCH_CACHE", str(tmp_path / "cache"))
    decoy = tmp_path / "cache" / "eval" / "decoy.npz"
    decoy.parent.mkdir(parents=True)
    np.savez(decoy, x=np.zeros((4, 3), dtype=np.float32), y=np.array([9.0, 9.0, 9.0, 9.0]))
    real = _eval_file(tmp_path, [0.6, 0.7, 0.8, 0.9])
    scorer = f"{ME}:mae_scorer"
    store = _run(tmp_path, _model("m", f'data = "eval.npz", scorer = "{scorer}"'),
                 {"m": {"sha256": file_sha256(decoy)}}, class_labels=False)
    assert open_store(store).runs()["eval_sha256"].tolist() == [file_sha256(real)]
    scores = score_runs(open_store(store), scorers=[scorer])
    assert [name for name, _ in CALLS] == ["mae_scorer"]
    assert CALLS[0][1].tolist() == [0.6, 0.7, 0.8, 0.9]  # the plan's labels, never the decoy's 9.0
    assert scores["metrics"].iloc[0]["mae"] == pytest.approx(0.5)
    # The host's file changed since the run: refused by the host's own record, whatever the device said.
    _eval_file(tmp_path, [0.0, 0.0, 0.0, 0.0])
    CALLS.clear()
    with pytest.raises(AnalysisError, match=r"eval.npz\) has changed since the run"):
        score_runs(open_store(store), scorers=[scorer])
    assert CALLS == []
    capsys.readouterr()
    assert main(["accuracy", "--store", store, "--scorer", scorer]) == 1
    assert "has changed since the run" in capsys.readouterr().err
    # Without a trusted scorer nothing reads the file: the run is listed, with a note.
    assert main(["accuracy", "--store", store]) == 0
    assert CALLS == []


@pytest.mark.slow
def test_the_users_scorer_runs_only_when_trusted(tmp_path, capsys):
    """``hilbench run PLAN`` then accuracy/report/plot: without --scorer the plan's scorer is not imported
    (a one-line note with the exact flag, top-1 still shown); with it, it scores."""
    _eval_file(tmp_path, [0.6, 0.7, 0.8, 0.9])
    scorer = f"{ME}:mae_scorer"
    store = _run(tmp_path, _model("reg", f'data = "eval.npz", scorer = "{scorer}"'), {}, class_labels=False)
    run_id = open_store(store).runs()["run_id"].iloc[0]
    capsys.readouterr()
    assert main(["accuracy", "--store", store]) == 0
    out, err = capsys.readouterr()
    notes = err.strip().splitlines()
    assert len(notes) == 1 and run_id in notes[0] and f"--scorer {scorer}" in notes[0] and "not run" in notes[0]
    assert "reg" in out and "mae=" not in out and CALLS == []
    assert main(["report", "--store", store, "--output", str(tmp_path / "r.html")]) == 0
    assert main(["plot", "pareto", "--store", store, "--output", str(tmp_path / "p.svg")]) == 0
    assert CALLS == []  # report and plot show no scorer metrics: they never run one
    capsys.readouterr()
    assert main(["accuracy", "--store", store, "--scorer", scorer]) == 0
    out, err = capsys.readouterr()
    assert "mae=0.5" in out and err == ""
    assert [name for name, _ in CALLS] == ["mae_scorer"]
    # Another trusted scorer does not trust this one.
    CALLS.clear()
    assert main(["accuracy", "--store", store, "--scorer", f"{ME}:pwned"]) == 0
    assert CALLS == [] and f"--scorer {scorer}" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["os.system", "this:x;rm -rf /", ":x", "a.:b", "a:b:c", "a b:c"])
def test_a_malformed_scorer_flag_is_a_usage_error(tmp_path, capsys, spec):
    with pytest.raises(SystemExit) as exit_:
        main(["accuracy", "--store", str(tmp_path / "res"), "--scorer", spec])
    assert exit_.value.code == 2  # a usage error
    err = capsys.readouterr().err
    assert "--scorer" in err and "module:function" in err and len(err.strip().splitlines()) == 1


def test_a_shared_store_cannot_name_code_or_drive_the_terminal(tmp_path, capsys):
    """A store someone else wrote: its session's plan names a payload scorer, and one with escape sequences.
    Neither is imported; the notes show the text as escapes."""
    import datetime as dt

    from harness.store import Store

    plan_text = ('name = "x"\n[[models]]\nname = "m"\neval = { data = "e.npz", scorer = "evil_payload:x" }\n'
                 '[[models]]\nname = "n"\neval = { data = "e.npz", scorer = "a\\u001b[2J:b" }\n')
    store = Store(tmp_path / "res")
    store.ensure_writable()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for rid, model in (("r1", "m"), ("r2", "n")):
        store.write_table("accuracy", rid, {
            "run_id": [rid] * 2, "index": [0, 1], "label": [1, 0], "prediction": [1, 1],
            "top5": [[1, 0]] * 2, "score": [0.9, 0.9], "output": [[0.1], [0.2]]})
        store.write_table("runs", rid, [{
            "run_id": rid, "session_id": "s1", "model": model, "target": "t", "backend": "b", "settings": {},
            "status": "ok", "started_at": now, "result": {"accuracy": {"count": 2, "class_labels": True}}}])
    store.write_table("sessions", "s1", [{"session_id": "s1", "started_at": now, "plan": "x",
                                          "plan_path": str(tmp_path / "plan.toml"), "plan_text": plan_text}])
    assert main(["accuracy", "--store", str(tmp_path / "res")]) == 0
    out, err = capsys.readouterr()
    assert "evil_payload" not in sys.modules and "\x1b" not in err + out
    assert "--scorer evil_payload:x" in err and "a\\x1b[2J:b" in err and "not module:function" in err
    assert out.count("0.5000") == 2  # top-1 of both runs


def test_a_packed_image_set_is_found_from_the_plan_not_the_device(tmp_path, monkeypatch, capsys):
    """``images`` + ``labels``: the host finds the packed set in its cache from the plan's own images, labels and
    preprocessing; the device sends no sha256 at all."""
    from PIL import Image

    monkeypatch.setenv("HILBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        Image.new("RGB", (4, 4), (60 * i, 0, 0)).save(tmp_path / "imgs" / f"i{i}.png")
    (tmp_path / "labels.txt").write_text("3\n1\n4\n1\n")
    scorer = f"{ME}:mae_scorer"
    eval_text = f'images = "imgs", labels = "labels.txt", resize = [2, 2], scale = 0.5, limit = 4, scorer = "{scorer}"'
    store = _run(tmp_path, _model("img", eval_text), {"img": {"sha256": None}})
    row = score_runs(open_store(store), scorers=[scorer]).iloc[0]
    np.testing.assert_array_equal(CALLS[0][1], [3, 1, 4, 1])
    assert row["metrics"]["mae"] == pytest.approx(np.mean(np.abs(np.array([0.1, 0.2, 0.3, 0.4]) - [3, 1, 4, 1])))
    # New images since the run: the plan's set is no longer in the cache, and nothing else is taken.
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tmp_path / "imgs" / "i0.png")
    with pytest.raises(AnalysisError, match="is not on this host"):
        score_runs(open_store(store), scorers=[scorer])


def test_outputs_beyond_what_the_host_keeps_are_dropped_with_a_warning(tmp_path, monkeypatch):
    """A large evaluation set is legitimate: past the host's cap on output values the run stays ok, keeps its
    top-k and scores, drops the remaining vectors and says so in its verdict."""
    import harness.agent.validate

    monkeypatch.setattr(harness.agent.validate, "MAX_OUTPUT_VALUES", 7)  # room for 2 of the 4 items' 3 outputs
    _eval_file(tmp_path, [1, 1, 0, 1])
    store = open_store(_run(tmp_path, _model("m"), {}))
    (run,) = store.runs().to_dict("records")
    assert run["status"] == "ok"
    verdict = json.loads(run["verdict"]) if isinstance(run["verdict"], str) else run["verdict"]
    (warning,) = [w for w in verdict["warnings"] if w["code"] == "outputs_not_kept"]
    assert "output vectors of 2 evaluation items were not kept" in warning["message"]
    acc = store.accuracy().sort_values("index")
    assert acc["output"].notna().tolist() == [True, True, False, False]
    assert acc["prediction"].tolist() == [1, 1, 1, 1]


def test_items_the_agent_could_not_send_are_counted_in_the_warning(tmp_path):
    _eval_file(tmp_path, [1, 1, 0, 1])
    store = open_store(_run(tmp_path, _model("m"), {"m": {"outputs_not_kept": 3}}))
    verdict = store.runs()["verdict"].iloc[0]
    verdict = json.loads(verdict) if isinstance(verdict, str) else verdict
    assert [w["message"].split(" (")[0] for w in verdict["warnings"] if w["code"] == "outputs_not_kept"] == [
        "the output vectors of 3 evaluation items were not kept"]
