"""Accuracy measured on the device, scored on the host.

The agent's accuracy phase stores, per evaluation item, the top-k class indices,
the best score and (unless ``keep_outputs = false``) the whole output vector in
the ``accuracy`` table. :func:`score_runs` turns that into one row per run:

* classifiers (one integer class label per item): top-1 and top-5 accuracy; for any
  other labels (real numbers, boxes, vectors) top-1/top-5 stay empty;
* a user's scorer (``scorer = "module:function"`` in ``[models.eval]``) for other
  tasks: called as ``function(outputs, labels)`` with the stacked output vectors
  (items x outputs, float) and the label array read from the evaluation file on the
  host, as stored there (any shape and dtype, the items the device ran), it returns a
  dict of metric name -> number. A scorer is imported **only when the caller trusts
  it** (``scorers=``, ``hilbench accuracy --scorer module:function``); any other
  gets a one-line ``note`` and the run is scored with the built-ins;
* fidelity against a reference variant (``reference = "model-name"``, e.g. the
  FP32 model for its INT8 variant), matched on target and backend, preferring the
  same session: top-1 agreement and the mean absolute output error. A variant that
  is fast because it is wrong shows up here.

Nothing a device sends chooses the scorer, the reference, the evaluation file or its
label array: they come from the host's record of the run, the plan text the host
stored with the session (:func:`plan_eval`). The sha256 the device echoes is only a
witness: it can make its own run's scorer refuse a file, never pick one. A results
store can be shared (a CI artefact, a bucket), so the plan stored there is not
trusted to name code either: that is why a scorer must also be trusted by the caller.

An image folder named by a plan is packed into an .npz by :func:`harness.prep.evalsets.pack_images`.
"""

from __future__ import annotations

import functools
import importlib
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.config.toml import tomllib
from harness.errors import AnalysisError, ConfigError
from harness.files import file_sha256
from harness.prep.evalsets import image_files, packed_path
from harness.safetext import safe
from harness.store import Store

__all__ = ["load_scorer", "score_runs", "eval_file", "plan_eval", "parse_scorer_spec", "ACCURACY_COLUMNS"]

ACCURACY_COLUMNS = ("run_id", "model", "target", "backend", "settings", "session_id", "eval_count", "top1", "top5",
                    "reference", "reference_run_id", "agreement", "output_error", "metrics", "scorer", "note")
def parse_scorer_spec(text: Any) -> str:
    """``module:function`` (dotted Python names), stripped; ValueError with a one-line reason otherwise."""
    spec = text.strip() if isinstance(text, str) else ""
    module, sep, name = spec.partition(":")
    if not (sep and name.isidentifier() and all(part.isidentifier() for part in module.split("."))):
        raise ValueError(f"expected module:function (Python names), got '{safe(text, 200)}'")
    return spec


def load_scorer(spec: str) -> Callable[..., dict[str, float]]:
    """Import ``module:function``; ConfigError naming it when it cannot be found.

    Only for a spec the user gave (``--scorer``, ``scorers=``): importing runs the module's code."""
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"scorer {spec!r}: cannot import ({exc})") from exc
    if not callable(fn):
        raise ConfigError(f"scorer {spec!r}: not a function")
    return fn


def _acc_info(result: Any) -> dict[str, Any]:
    """The device's own accuracy summary (count, top_k, class_labels, the sha256 it echoed): data, never a choice."""
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return {}
    info = (result or {}).get("accuracy") if isinstance(result, dict) else None
    return info if isinstance(info, dict) else {}


def _stack(outputs: pd.Series) -> np.ndarray | None:
    if any(o is None or (isinstance(o, float) and np.isnan(o)) for o in outputs):
        return None
    try:
        return np.stack([np.asarray(o, dtype=np.float64) for o in outputs])
    except (ValueError, TypeError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _eval_record(entry: dict[str, Any], base: Path) -> dict[str, Any]:
    """``[models.eval]`` of one plan model as the host's record: scorer, reference, y, top_k, path.

    The plan text may come from a shared store, so every value is type-checked and nothing is imported."""
    top_k = entry.get("top_k")
    rec: dict[str, Any] = {
        "scorer": _text(entry.get("scorer")), "reference": _text(entry.get("reference")),
        "y": _text(entry.get("y")) or "y",
        "top_k": top_k if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 1 else 5,
        "path": None,
    }
    data, images, labels = _text(entry.get("data")), _text(entry.get("images")), _text(entry.get("labels"))
    if data is not None:
        rec["path"] = (base / data).resolve()
    elif images is not None and labels is not None:
        # The packed set plan loading made: the same preprocessing (with plan.py's defaults) gives the same file.
        rec["y"] = "y"
        pre = {"resize": entry.get("resize"), "layout": entry.get("layout", "NHWC"), "mean": entry.get("mean"),
               "std": entry.get("std"), "scale": entry.get("scale"), "dtype": entry.get("dtype", "float32"),
               "color": entry.get("color", "RGB"), "quantization": entry.get("quantization")}
        limit = entry.get("limit")
        try:
            files = image_files((base / images).resolve())
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                files = files[:limit]
            rec["path"] = packed_path(files, (base / labels).resolve(), {k: v for k, v in pre.items()
                                                                            if v is not None})
        except (OSError, TypeError, ValueError):
            rec["path"] = None
    return rec


class _HostPlans:
    """The plan each session ran, as the host stored it with the session (``plan_text``), parsed once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._sessions: pd.DataFrame | None = None
        self._plans: dict[Any, tuple[dict[str, Any], Path] | None] = {}

    def _plan(self, session_id: Any) -> tuple[dict[str, Any], Path] | None:
        if session_id not in self._plans:
            if self._sessions is None:
                self._sessions = self.store.sessions()
            s = self._sessions
            row = s[s["session_id"] == session_id] if "session_id" in s.columns else s.iloc[0:0]
            text = row.iloc[-1].get("plan_text") if not row.empty else None
            parsed: tuple[dict[str, Any], Path] | None = None
            if isinstance(text, str):
                plan_path = row.iloc[-1].get("plan_path")
                base = Path(plan_path).parent if isinstance(plan_path, str) else Path.cwd()
                try:
                    parsed = (tomllib.loads(text), base)
                except (tomllib.TOMLDecodeError, RecursionError):
                    parsed = None
            self._plans[session_id] = parsed
        return self._plans[session_id]

    def eval(self, session_id: Any, model: Any) -> dict[str, Any]:
        """``model``'s evaluation record (see :func:`plan_eval`); empty when there is none."""
        found = self._plan(session_id)
        if found is None:
            return {}
        plan, base = found
        models = plan.get("models")
        for m in models if isinstance(models, list) else []:
            if not isinstance(m, dict):
                continue
            name = _text(m.get("name"))
            if name is None and _text(m.get("path")):
                name = Path(m["path"]).stem
            if name == model:
                entry = m.get("eval")
                return _eval_record(entry, base) if isinstance(entry, dict) and entry else {}
        return {}


def plan_eval(store: Store, session_id: Any, model: str) -> dict[str, Any]:
    """The host's record of ``model``'s ``[models.eval]`` in the plan its session ran (the plan text the
    host stored with the session): ``scorer`` and ``reference`` (None when not named), ``y`` (the label
    array's name), ``top_k`` and ``path`` (the evaluation .npz on this host: the plan's ``data``, or the
    image set its ``images``/``labels``/preprocessing packed into the cache; None when neither). Empty
    when the session stored no plan or its plan has no such model with an evaluation set."""
    return _HostPlans(store).eval(session_id, model)


@functools.lru_cache(maxsize=64)
def _sha_of(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def eval_file(store: Store, run: Any, info: dict[str, Any] | None = None, *,
              record: dict[str, Any] | None = None) -> Path:
    """The host's copy of the evaluation file a run used, from the host's record of its plan
    (:func:`plan_eval`); AnalysisError when there is none or it is not on this host.

    The file must match the sha256 the host recorded with the run (``eval_sha256``; for older runs the
    device's echo in ``info``, a witness only): it is never used to look a file up. A file that does not
    match is refused (changed since the run)."""
    rec = record if record is not None else plan_eval(store, run.session_id, run.model)
    path = rec.get("path")
    what = f"run {run.run_id}: the evaluation file"
    if path is None:
        raise AnalysisError(f"{what} of model {safe(run.model)} is not named by the plan stored with its session: "
                            "the scorer needs its labels; pass eval_labels")
    if not path.is_file():
        raise AnalysisError(f"{what} ({path}) is not on this host: the scorer needs its labels; pass eval_labels, "
                            "or restore the file")
    # The host's own record of the file's sha256 (runs since it was stored), else the device's echo.
    host_sha = getattr(run, "eval_sha256", None)
    want = host_sha if isinstance(host_sha, str) and host_sha else (info or {}).get("sha256")
    st = path.stat()
    if isinstance(want, str) and want and _sha_of(str(path), st.st_size, st.st_mtime_ns) != want:
        raise AnalysisError(f"{what} ({path}) has changed since the run: the scorer needs its labels; "
                            "pass eval_labels, or restore the file")
    return path


def _file_labels(path: Path, key: str, index: np.ndarray) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data:
                raise AnalysisError(f"{path}: no label array {key!r} (arrays: {', '.join(data.files)})")
            return np.asarray(data[key])[index]
    except (OSError, ValueError, IndexError, EOFError, zipfile.BadZipFile) as exc:  # a damaged or replaced file
        raise AnalysisError(f"{path}: cannot read the labels ({exc})") from exc


def _labels(store: Store, run: Any, rec: dict[str, Any], info: dict[str, Any], index: np.ndarray,
            given: dict[str, np.ndarray]) -> np.ndarray:
    """The labels of the items a run ran: the caller's (by scorer or model name), else the host's file."""
    spec = rec.get("scorer")
    if (spec is not None and spec in given) or run.model in given:
        return np.asarray(given[spec] if spec is not None and spec in given else given[run.model])[index]
    return _file_labels(eval_file(store, run, info, record=rec), str(rec.get("y") or "y"), index)


def _trusted_scorers(scorers: Iterable[str] | Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """spec -> the function (given), or None (imported when a run first needs it)."""
    items = scorers.items() if isinstance(scorers, Mapping) else ((s, None) for s in scorers)
    out: dict[str, Any] = {}
    for spec, fn in items:
        try:
            out[parse_scorer_spec(spec)] = fn
        except ValueError as exc:
            raise ConfigError(f"scorer: {exc}") from exc
    return out


def _untrusted_note(run: Any, spec: str) -> str:
    who = f"run {safe(run.run_id, 80)} (model {safe(run.model, 80)})"
    try:
        parse_scorer_spec(spec)
    except ValueError:
        return f"{who}: the plan stored with it names scorer '{safe(spec, 200)}', not module:function: not run"
    return (f"{who}: scorer {spec} not run: a scorer named by the store is imported only when you trust it; "
            f"to trust it: --scorer {spec}")


def score_runs(store: Store, run_ids: Iterable[str] | None = None, *,
               scorers: Iterable[str] | Mapping[str, Callable[..., Any]] = (),
               eval_labels: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per run that has accuracy records (see the module docstring for the columns).

    The scorer, reference and evaluation file of a run come from the plan the host stored with its
    session (:func:`plan_eval`), never from the device. ``scorers`` are the ``module:function`` specs
    the caller trusts (or spec -> function): a run's scorer runs only when it is one of them, else the
    row's ``note`` says so (one line, with the flag that trusts it) and the run gets the built-ins.
    A scorer receives the labels from the run's evaluation file on this host (:func:`eval_file`);
    ``eval_labels`` (scorer spec or model name -> label array, indexed like the evaluation items)
    overrides that. A trusted scorer that cannot score (no outputs kept, no labels, it raised) is an
    AnalysisError naming the run.
    """
    trusted = _trusted_scorers(scorers)
    runs = store.runs()
    runs = runs[runs["status"] == "ok"]
    acc = store.accuracy()
    if acc.empty:
        return pd.DataFrame(columns=list(ACCURACY_COLUMNS))
    acc = acc.sort_values(["run_id", "index"], kind="stable")
    by_run = {rid: g for rid, g in acc.groupby("run_id", sort=False)}
    wanted = runs[runs["run_id"].isin(by_run)]
    if run_ids is not None:
        wanted = wanted[wanted["run_id"].isin(set(run_ids))]
    plans = _HostPlans(store)
    given = eval_labels or {}
    rows = []
    for run in wanted.itertuples(index=False):
        g = by_run[run.run_id]
        info = _acc_info(run.result)
        rec = plans.eval(run.session_id, run.model)
        spec, ref_name = rec.get("scorer"), rec.get("reference")
        labels = g["label"]
        index = g["index"].to_numpy(dtype=np.int64)
        row: dict[str, Any] = {
            "run_id": run.run_id, "model": run.model, "target": run.target, "backend": run.backend,
            "settings": run.settings, "session_id": run.session_id, "eval_count": len(g),
            "top1": np.nan, "top5": np.nan, "reference": ref_name, "reference_run_id": None,
            "agreement": np.nan, "output_error": np.nan, "metrics": None, "scorer": spec, "note": None,
        }
        lab: np.ndarray | None = None
        if spec is not None and spec in trusted:
            fn = trusted[spec]
            if fn is None:
                fn = trusted[spec] = load_scorer(spec)
            outputs = _stack(g["output"])
            if outputs is None:
                raise AnalysisError(f"run {run.run_id}: scorer {spec} needs the outputs; "
                                    "the plan set keep_outputs = false")
            lab = _labels(store, run, rec, info, index, given)
            try:
                metrics = fn(outputs, lab)
            except Exception as exc:  # a user's function: keep its message, one line
                raise AnalysisError(f"run {run.run_id}: scorer {spec} failed: {exc}") from exc
            row["metrics"] = {str(k): float(v) for k, v in dict(metrics).items()}
        elif spec is not None:
            row["note"] = _untrusted_note(run, spec)
        # Only integer class labels (one per item) score top-1/top-5. Runs since the agent recorded
        # class_labels store no other kind; for older runs whose plan names a scorer the host's file
        # decides (read as data, whether or not the scorer is trusted), so a real-number label that an
        # older agent stored as its integer part scores no top-1.
        is_class = bool(info.get("class_labels", True))
        if spec is not None and "class_labels" not in info:
            if lab is None:
                try:
                    lab = _labels(store, run, rec, info, index, given)
                except AnalysisError:
                    lab = None
            if lab is not None:
                is_class = lab.dtype.kind in "iub" and lab.size == len(g)
        if is_class and labels.notna().all() and len(g):
            y = labels.to_numpy(dtype=np.int64)
            pred = g["prediction"].to_numpy(dtype=np.int64)
            row["top1"] = float(np.mean(pred == y))
            top_k = rec.get("top_k") if rec else info.get("top_k")
            top_k = top_k if isinstance(top_k, int) and not isinstance(top_k, bool) else 5  # a store's data
            if top_k >= 5:
                row["top5"] = float(np.mean([int(t) in list(top)[:5] for t, top in zip(y, g["top5"], strict=True)]))
        if ref_name:
            ref = _reference_run(runs, run, str(ref_name), by_run)
            if ref is not None:
                rg = by_run[ref].set_index("index")
                mine = g.set_index("index")
                common = mine.index.intersection(rg.index)
                row["reference_run_id"] = ref
                if len(common):
                    row["agreement"] = float(np.mean(mine.loc[common, "prediction"].to_numpy()
                                                     == rg.loc[common, "prediction"].to_numpy()))
                    a, b = _stack(mine.loc[common, "output"]), _stack(rg.loc[common, "output"])
                    if a is not None and b is not None and a.shape == b.shape:
                        row["output_error"] = float(np.mean(np.abs(a - b)))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(ACCURACY_COLUMNS))


def _reference_run(runs: pd.DataFrame, run: Any, ref_name: str, by_run: dict[str, Any]) -> str | None:
    """The reference model's run on the same target and backend, same session first, else the latest."""
    cand = runs[(runs["model"] == ref_name) & (runs["target"] == run.target) & runs["run_id"].isin(by_run)]
    same_backend = cand[cand["backend"] == run.backend]
    cand = same_backend if not same_backend.empty else cand
    if cand.empty:
        return None
    same_session = cand[cand["session_id"] == run.session_id]
    pick = same_session if not same_session.empty else cand
    return str(pick.sort_values("started_at").iloc[-1]["run_id"])
