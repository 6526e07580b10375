"""Evaluation sets made from a folder of images: :func:`pack_images` applies a plan's declared
preprocessing once, into a cached .npz that is shipped to the device like a model (plan loading calls it);
:func:`packed_path` says where that file is, so the host can find it again when it scores a run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from harness.files import read_utf8

__all__ = ["pack_images", "packed_path", "image_files", "cache_dir", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}


def cache_dir() -> Path:
    """Where packed evaluation sets are kept (``$HILBENCH_CACHE`` or ``~/.cache/hilbench``)."""
    return Path(os.environ.get("HILBENCH_CACHE") or Path.home() / ".cache" / "hilbench") / "eval"


def _read_labels(labels: Path, files: list[Path]) -> list[int]:
    """``file label`` lines (any order), or one ``label`` per line in sorted file order."""
    try:
        text = read_utf8(labels)
    except (OSError, ValueError) as exc:  # not UTF-8: which byte on which line
        raise ValueError(f"{labels}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from exc
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
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


def image_files(folder: Path) -> list[Path]:
    """The images in ``folder`` (by suffix), sorted by name: the order of a packed set."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def packed_path(files: list[Path], labels: Path, pre: dict[str, Any]) -> Path:
    """Where the packed set of ``files`` (after ``limit``) is cached: by preprocessing, labels and file stats."""
    h = hashlib.sha256(json.dumps(pre, sort_keys=True).encode())
    h.update(labels.read_bytes())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return cache_dir() / f"{h.hexdigest()[:24]}.npz"


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
    files = image_files(folder)
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ys = _read_labels(labels, files)
    if limit:
        files, ys = files[:limit], ys[:limit]
    pre = {k: v for k, v in pre.items() if v is not None}
    out = packed_path(files, labels, pre)
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
