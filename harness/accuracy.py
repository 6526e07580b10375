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
  dict of metric name -> number. The file is found by the sha256 the run recorded:
  the plan's ``data`` file (from the session's plan), else a packed image set in
  :func:`cache_dir`;
* fidelity against a reference variant (``reference = "model-name"``, e.g. the
  FP32 model for its INT8 variant), matched on target and backend, preferring the
  same session: top-1 agreement and the mean absolute output error. A variant that
  is fast because it is wrong shows up here.

:func:`pack_images` applies a plan's declared preprocessing to a folder of images
once, into a cached .npz that is shipped to the device like a model.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import AnalysisError, ConfigError
from harness.plan import file_sha256
from harness.store import Store

__all__ = ["pack_images", "load_scorer", "score_runs", "eval_file", "ACCURACY_COLUMNS", "cache_dir"]

ACCURACY_COLUMNS = ("run_id", "model", "target", "backend", "settings", "session_id", "eval_count", "top1", "top5",
                    "reference", "reference_run_id", "agreement", "output_error", "metrics")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}


def cache_dir() -> Path:
    """Where packed evaluation sets are kept (``$HILBENCH_CACHE`` or ``~/.cache/hilbench``)."""
    return Path(os.environ.get("HILBENCH_CACHE") or Path.home() / ".cache" / "hilbench") / "eval"


def _read_labels(labels: Path, files: list[Path]) -> list[int]:
    """``file label`` lines (any order), or one ``label`` per line in sorted file order."""
    lines = [ln.split() for ln in labels.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if lines and all(len(p) >= 2 for p in lines):
        table = {p[0]: p[-1] for p in lines}
        missing = [f.name for f in files if f.name not in table]
        if missing:
            raise ValueError(f"{labels}: no label for {missing[0]} ({len(missing)} images unlabelled)")
        raw = [table[f.name] for f in files]
    else:
        if len(lines) != len(files):
            raise ValueError(f"{labels}: {len(lines)} labels for {len(files)} images")
        raw = [p[0] for p in lines]
    try:
        return [int(v) for v in raw]
    except ValueError as exc:
        raise ValueError(f"{labels}: labels must be integer class indices ({exc})") from exc


def pack_images(folder: Path, labels: Path, pre: dict[str, Any], *, limit: int | None = None) -> Path:
    """Preprocess a folder of images into ``x`` (the model's input) and ``y`` (labels), cached.

    ``pre``: resize [h, w], layout NHWC/NCHW, color RGB/L/BGR, scale (multiply first,
    e.g. 1/255), mean and std (per channel, after scale), dtype float32/float16/uint8/int8,
    quantization [scale, zero_point] (real -> integer, for integer dtypes).
    Raises ValueError with a one-line reason.
    """
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency of matplotlib
        raise ValueError("reading images needs Pillow: pip install pillow") from exc
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    ys = _read_labels(labels, files)
    if limit:
        files, ys = files[:limit], ys[:limit]
    pre = {k: v for k, v in pre.items() if v is not None}
    h = hashlib.sha256(json.dumps(pre, sort_keys=True).encode())
    h.update(labels.read_bytes())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    out = cache_dir() / f"{h.hexdigest()[:24]}.npz"
    if out.is_file():
        return out
    arrays = []
    for f in files:
        try:
            img = Image.open(f).convert("L" if pre.get("color") == "L" else "RGB")
        except OSError as exc:
            raise ValueError(f"{f}: not a readable image ({exc})") from exc
        if pre.get("resize"):
            hh, ww = pre["resize"]
            img = img.resize((int(ww), int(hh)), Image.Resampling.BILINEAR)
        a = np.asarray(img, dtype=np.float32)
        if a.ndim == 2:
            a = a[:, :, None]
        if pre.get("color") == "BGR":
            a = a[:, :, ::-1]
        arrays.append(a)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{folder}: images have different sizes {sorted(shapes)[:2]}...: give resize = [h, w]")
    x = np.stack(arrays)
    if pre.get("scale") is not None:
        x = x * float(pre["scale"])
    if pre.get("mean") is not None:
        x = x - np.asarray(pre["mean"], dtype=np.float32)
    if pre.get("std") is not None:
        x = x / np.asarray(pre["std"], dtype=np.float32)
    if pre.get("layout") == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    dtype = np.dtype(pre.get("dtype") or "float32")
    if dtype.kind in "iu":
        if pre.get("quantization"):
            qs, zp = pre["quantization"]
            x = np.round(x / float(qs) + float(zp))
        info = np.iinfo(dtype)
        x = np.clip(x, info.min, info.max)
    x = x.astype(dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=np.asarray(ys, dtype=np.int64))
    os.replace(tmp, out)
    return out


def load_scorer(spec: str) -> Callable[..., dict[str, float]]:
    """Import ``module:function``; ConfigError naming it when it cannot be found."""
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"scorer {spec!r}: cannot import ({exc})") from exc
    if not callable(fn):
        raise ConfigError(f"scorer {spec!r}: not a function")
    return fn


def _acc_info(result: Any) -> dict[str, Any]:
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return {}
    return (result or {}).get("accuracy") or {} if isinstance(result, dict) else {}


def _stack(outputs: pd.Series) -> np.ndarray | None:
    if any(o is None or (isinstance(o, float) and np.isnan(o)) for o in outputs):
        return None
    try:
        return np.stack([np.asarray(o, dtype=np.float64) for o in outputs])
    except ValueError:
        return None


def _plan_eval_file(store: Store, session_id: Any, model: str) -> Path | None:
    """The ``[models.eval] data`` file of ``model`` in the plan its session ran (None if not named)."""
    from harness import tomlconf

    sessions = store.sessions()
    row = sessions[sessions["session_id"] == session_id]
    if row.empty or not isinstance(row.iloc[-1]["plan_text"], str):
        return None
    plan_path = row.iloc[-1]["plan_path"]
    try:
        plan = tomlconf.tomllib.loads(row.iloc[-1]["plan_text"])
    except tomlconf.tomllib.TOMLDecodeError:
        return None
    base = Path(plan_path).parent if isinstance(plan_path, str) else Path.cwd()
    for m in plan.get("models") or []:
        name = m.get("name") or (Path(m["path"]).stem if m.get("path") else None)
        data = (m.get("eval") or {}).get("data")
        if name == model and isinstance(data, str):
            return (base / data).resolve()
    return None


def eval_file(store: Store, run: Any, info: dict[str, Any]) -> Path:
    """The host's copy of the evaluation file a run used; AnalysisError when it cannot be found."""
    want = info.get("sha256")
    candidates: list[Path] = []
    planned = _plan_eval_file(store, run.session_id, run.model)
    if planned is not None:
        candidates.append(planned)
    if want:
        candidates += sorted(cache_dir().glob("*.npz"))
    for path in candidates:
        if path.is_file() and (not want or file_sha256(path) == want):
            return path
    where = f" ({planned})" if planned is not None else ""
    changed = " has changed since the run" if planned is not None and planned.is_file() else " is not on this host"
    raise AnalysisError(f"run {run.run_id}: the evaluation file{where}{changed}: the scorer needs its labels; "
                        "pass eval_labels, or restore the file")


def _file_labels(path: Path, info: dict[str, Any], index: np.ndarray) -> np.ndarray:
    key = str(info.get("y") or "y")
    try:
        with np.load(path, allow_pickle=False) as data:
            if key not in data:
                raise AnalysisError(f"{path}: no label array {key!r} (arrays: {', '.join(data.files)})")
            return np.asarray(data[key])[index]
    except (OSError, ValueError, IndexError) as exc:
        raise AnalysisError(f"{path}: cannot read the labels ({exc})") from exc


def score_runs(store: Store, run_ids: Iterable[str] | None = None, *,
               eval_labels: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per run that has accuracy records (see the module docstring for the columns).

    A scorer receives the labels from the run's evaluation file on this host
    (:func:`eval_file`); ``eval_labels`` (scorer spec or model name -> label array,
    indexed like the evaluation items) overrides that.
    """
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
    rows = []
    for run in wanted.itertuples(index=False):
        g = by_run[run.run_id]
        info = _acc_info(run.result)
        labels = g["label"]
        row: dict[str, Any] = {
            "run_id": run.run_id, "model": run.model, "target": run.target, "backend": run.backend,
            "settings": run.settings, "session_id": run.session_id, "eval_count": len(g),
            "top1": np.nan, "top5": np.nan, "reference": info.get("reference"), "reference_run_id": None,
            "agreement": np.nan, "output_error": np.nan, "metrics": None,
        }
        lab: np.ndarray | None = None
        if info.get("scorer"):
            fn = load_scorer(str(info["scorer"]))
            outputs = _stack(g["output"])
            if outputs is None:
                raise AnalysisError(f"run {run.run_id}: scorer {info['scorer']} needs the outputs; "
                                    "the plan set keep_outputs = false")
            given = eval_labels or {}
            index = g["index"].to_numpy(dtype=np.int64)
            if str(info["scorer"]) in given or run.model in given:
                lab = np.asarray(given.get(str(info["scorer"]), given.get(run.model)))[index]
            else:
                lab = _file_labels(eval_file(store, run, info), info, index)
            try:
                metrics = fn(outputs, lab)
            except Exception as exc:  # a user's function: keep its message, one line
                raise AnalysisError(f"run {run.run_id}: scorer {info['scorer']} failed: {exc}") from exc
            row["metrics"] = {str(k): float(v) for k, v in dict(metrics).items()}
        # Only integer class labels (one per item) score top-1/top-5. Runs since the agent recorded
        # class_labels store no other kind; for older runs with a scorer the file's labels decide, so
        # a real-number label that an older agent stored as its integer part scores no top-1.
        is_class = bool(info.get("class_labels", True))
        if lab is not None and "class_labels" not in info:
            is_class = lab.dtype.kind in "iub" and lab.size == len(g)
        if is_class and labels.notna().all() and len(g):
            y = labels.to_numpy(dtype=np.int64)
            pred = g["prediction"].to_numpy(dtype=np.int64)
            row["top1"] = float(np.mean(pred == y))
            if int(info.get("top_k") or 5) >= 5:
                row["top5"] = float(np.mean([int(t) in list(top)[:5] for t, top in zip(y, g["top5"], strict=True)]))
        ref_name = info.get("reference")
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
