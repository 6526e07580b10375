"""Core ML variants of a PyTorch model, made on the host with coremltools (this works on Linux): an ML program
(``.mlpackage``) in FP16 (coremltools' default for ML programs) and, on request, FP32.

The source is a TorchScript file (``.pt``; its input names and shapes come from the ``hilbench.json`` extra file
scripts/build_models.py writes, since a TorchScript file does not say them) or an exported program (``.pt2``,
whose signature says them; it is decomposed to the ATen dialect first, as coremltools asks). The target is
macOS 13 (``minimum_deployment_target``), the oldest with ML programs on every compute unit.

Needs ``coremltools`` and ``torch`` on the host: ``pip install "hilbench[coreml,pytorch]"``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import AnalysisError, ModelError

#: variant kind -> (precision tag, coremltools compute precision name)
COREML_KINDS = {"coreml": ("fp16", "FLOAT16"), "coreml-fp32": ("fp32", "FLOAT32")}
EXTRA_FILE = "hilbench.json"


def _imports() -> tuple[Any, Any]:
    try:
        import coremltools as ct
        import torch
    except ImportError as exc:
        raise AnalysisError(f"Core ML variants need coremltools and torch on the host ({exc}): "
                            'pip install "hilbench[coreml,pytorch]"') from exc
    return ct, torch


def _source(model: Path, ct: Any, torch: Any) -> tuple[Any, dict[str, Any]]:
    """What coremltools converts, and the keyword arguments it needs for it."""
    try:
        if model.suffix.lower() == ".pt2":
            program = torch.export.load(str(model)).run_decompositions({})
            return program, {}
        extra = {EXTRA_FILE: ""}
        module = torch.jit.load(str(model), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch's errors for a file that is not its archive vary
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise ModelError(f"{model}: torch cannot load it ({first})") from exc
    if not extra[EXTRA_FILE]:
        raise ModelError(f"{model}: a TorchScript file does not say its inputs' shapes, and this one has no "
                         f"{EXTRA_FILE} extra file: export it with torch.export (.pt2), or save it with "
                         f'_extra_files={{"{EXTRA_FILE}": ...}} (docs/backends.md)')
    try:
        meta = json.loads(extra[EXTRA_FILE])
        inputs = [ct.TensorType(name=str(i["name"]), shape=[int(d) for d in i["shape"]]) for i in meta["inputs"]]
        outputs = [ct.TensorType(name=str(n)) for n in meta.get("outputs", [])] or None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{model}: its {EXTRA_FILE} extra file is not {{\"inputs\": [{{name, shape}}]}} ({exc})") from exc
    return module, {"inputs": inputs, "outputs": outputs}


def convert_variants(model: Path, out_dir: Path, kinds: tuple[str, ...], force: bool) -> list[tuple[str, Path, str, str]]:
    """Write ``<stem>_<precision>.mlpackage`` per kind into ``out_dir``; [(kind, path, precision, note)]. Every
    output is checked before anything is written; each package is built in a temporary folder beside it and
    renamed into place."""
    unknown = [k for k in kinds if k not in COREML_KINDS]
    if unknown:
        raise AnalysisError(f"unknown Core ML variant {unknown[0]!r} (known: {', '.join(COREML_KINDS)})")
    stem = model.stem.removesuffix("_fp32")
    paths = {k: out_dir / f"{stem}_{COREML_KINDS[k][0]}.mlpackage" for k in kinds}
    existing = [p for p in paths.values() if p.exists()]
    if existing and not force:
        raise AnalysisError(f"{existing[0]}: already exists, not overwriting it (remove it, or write elsewhere with "
                            "--out DIR)")
    ct, torch = _imports()
    source, kwargs = _source(model, ct, torch)
    made = []
    for kind in kinds:
        precision, compute = COREML_KINDS[kind]
        try:
            mlmodel = ct.convert(source, convert_to="mlprogram", compute_precision=getattr(ct.precision, compute),
                                 minimum_deployment_target=ct.target.macOS13, **kwargs)
        except Exception as exc:  # noqa: BLE001 - converter errors name the op it cannot convert
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
            raise AnalysisError(f"{model.name}: coremltools {ct.__version__} cannot convert it: {first}") from exc
        path = paths[kind]
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix="." + path.name, suffix=".tmp"))
        try:
            mlmodel.save(str(staging / path.name))
            os.chmod(staging / path.name, 0o777 & ~_umask())
            if path.exists():
                shutil.rmtree(path)
            os.replace(staging / path.name, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        note = (f"ML program (macOS 13+), {compute.lower()} compute precision, coremltools {ct.__version__}; "
                "runs on the coreml backend")
        made.append((kind, path, precision, note))
    return made


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def package_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
