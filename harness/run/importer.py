"""``hilbench import LOGFILE``: a vendor runner's recorded output stored as an aggregate-only run.

The runner is recognised from the log's content (:func:`harness.runners.detect_runner`), or named with
``--runner``; the log is parsed by the same parsers hilbench's own runner paths use, and stored as one run
of a one-run session (``plan = "import"``) so that ``results``, ``report``, ``show`` and ``compare`` read it
beside hilbench's own runs:

* ``transport = "import"`` and ``settings["source"] = "import:<runner>"``: the marker every reader shows
  (the settings are part of a run's configuration, so ``compare`` never mixes an imported run with a
  measured one);
* ``aggregate_only = true``, no samples and no telemetry: the run's latency figures are the tool's own summary
  (``result.aggregates``, ns), never samples made up from it; ``valid`` is null (no stability verdict
  without samples);
* ``offload``: what the log says of delegation and placement (:mod:`harness.runners.placement`).

The log is data, never trusted: it is read up to :data:`MAX_LOG_BYTES`, the paths it names (the graph, an
engine) are kept as text only, nothing in it is opened or run, and every string stored from it is bounded
(the store's readers print them through :func:`harness.safetext.safe`). A log that cannot be recognised is
one line naming the file and the runners known; nothing is stored.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import InputError, StoreError
from harness.runners import RUNNERS, detect_runner, parse_runner_output
from harness.runners.model import RunnerReport, canonical_runner
from harness.runners.placement import runner_offload

__all__ = ["import_log", "MAX_LOG_BYTES", "BACKEND_FOR_RUNNER", "RUNNER_COMMANDS"]

#: The largest log ``import`` reads (a verbose trtexec log is ~300 KB; a full ``--exportTimes`` JSON a few MB).
MAX_LOG_BYTES = 64 * 1024 * 1024
#: The backend a runner's run is stored under (``benchmark_app`` is OpenVINO's, a backend hilbench only imports).
BACKEND_FOR_RUNNER = {"tflite_benchmark_model": "litert", "onnxruntime_perf_test": "onnxruntime",
                      "trtexec": "tensorrt", "openvino_benchmark_app": "openvino"}
#: The runners' command names, as a user knows them (for messages).
RUNNER_COMMANDS = {"tflite_benchmark_model": "benchmark_model", "onnxruntime_perf_test": "onnxruntime_perf_test",
                   "trtexec": "trtexec", "openvino_benchmark_app": "benchmark_app"}
#: Runner settings copied into the run's ``settings`` (scalars only, each bounded): what tells two runs apart.
_SETTING_KEYS = ("delegate", "execution_provider", "device", "precision", "threads", "batch")
_TEXT_MAX = 200


def _known() -> str:
    return ", ".join(RUNNER_COMMANDS[r] for r in RUNNERS)


def _read_log(path: Path) -> str:
    """The log's text (UTF-8, undecodable bytes replaced); InputError (one line) when it cannot be read, is not
    a file, is empty or is larger than :data:`MAX_LOG_BYTES`."""
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_LOG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > MAX_LOG_BYTES:
        raise InputError(f"{path}: larger than {MAX_LOG_BYTES // (1024 * 1024)} MiB: not a runner log "
                         "(cut it to the run's output)")
    text = data.decode("utf-8", "replace")
    if not text.strip():
        raise InputError(f"{path}: empty: nothing to import")
    return text


def _bounded(value: Any) -> Any:
    """A scalar setting kept from a log: numbers and booleans as they are, text cut to a length."""
    if isinstance(value, (bool, int, float)):
        return value
    return "".join(ch for ch in str(value) if ch.isprintable())[:_TEXT_MAX]


def _settings(report: RunnerReport) -> dict[str, Any]:
    out: dict[str, Any] = {"source": f"import:{RUNNER_COMMANDS[report.runner]}"}
    for key in _SETTING_KEYS:
        value = report.settings.get(key)
        if value is not None and not isinstance(value, (dict, list)):
            out[key] = _bounded(value)
    return out


def _runner_settings(report: RunnerReport) -> dict[str, Any] | None:
    """Everything the tool echoed of its settings, as JSON data; None when it is larger than 100 kB."""
    text = json.dumps(report.to_dict()["settings"], default=str)
    return json.loads(text) if len(text) <= 100_000 else None


def _model(report: RunnerReport, model: str | None) -> tuple[str, str | None, str | None]:
    """(name, path, sha256) of the run's model: ``--model`` (hashed when it is a file here), else the base name
    of the graph the log names (text only: never opened), else ``unknown``."""
    if model:
        p = Path(model)
        digest = None
        if p.is_file():
            h = hashlib.sha256()
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        return p.stem or str(model), str(model), digest
    graph = report.settings.get("graph") or report.settings.get("model")
    if isinstance(graph, str) and graph.strip():
        base = graph.strip().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        name = base.rsplit(".", 1)[0] if "." in base else base
        return _bounded(name) or "unknown", None, None
    return "unknown", None, None


def _ns(ms: float | None) -> int | None:
    if ms is None:
        return None
    ns = ms * 1e6
    return int(round(ns)) if abs(ns) < 2**63 else None


def _timed_ns(report: RunnerReport) -> int | None:
    """The timed phase's duration by the tool's own figures (its total run or walltime, else count x mean)."""
    for key in ("total_run_time_s", "total_host_walltime_s", "trace_walltime_s"):
        value = report.extra.get(key)
        if isinstance(value, (int, float)) and value > 0:
            return _ns(value * 1e3)
    timed = report.timed
    if timed is not None and timed.count and timed.mean_ms:
        return _ns(timed.count * timed.mean_ms)
    return None


def _result(report: RunnerReport, path: Path, size: int, digest: str, offload: dict[str, Any]) -> dict[str, Any]:
    """The run's ``result``: the tool's own aggregates (ns), where it came from, and the report's figures."""
    aggregates: dict[str, Any] = {k: (int(v) if k == "count" else v) for k, v in report.aggregates_ns().items()}
    timed = report.timed
    if timed is not None and timed.std_ms is not None and timed.mean_ms:
        aggregates["cv"] = timed.std_ms / timed.mean_ms
    return {
        "source": f"import:{RUNNER_COMMANDS[report.runner]}",
        "runner": report.runner,
        "runner_version": report.version,
        "aggregate_only": True,
        "aggregates": aggregates,
        "aggregates_basis": (f"computed from the {len(report.samples_ms)} per-query records in the file (no samples "
                             "are stored from an import)" if report.samples_ms else "the tool's own printed summary"),
        "imported": {"file": _bounded(path.name), "bytes": size, "sha256": digest},
        "runner_report": {"init_ms": report.init_ms, "first_inference_ms": report.first_inference_ms,
                          "warmup": report.warmup.to_dict() if report.warmup else None,
                          "metrics": {k: v.to_dict() for k, v in report.metrics.items()},
                          "memory": dict(report.memory)},
        "offload": offload,
        "warnings": [_bounded(w) for w in report.warnings[:50]],
    }


def import_log(store: Any, path: str | Path, *, target: str | None = None, model: str | None = None,
               runner: str | None = None, labels: dict[str, str] | None = None,
               argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the runner log ``path`` and store it in ``store`` as an aggregate-only run; returns its runs row.

    ``runner`` names the parser (a name of :data:`RUNNERS` or an alias); by default the log's content decides.
    Raises InputError (one line, nothing stored) for a log that cannot be read, recognised or parsed."""
    from harness.run.jobrun import host_facts, now_utc
    from harness.store import new_id

    p = Path(path)
    text = _read_log(p)
    if runner is not None:
        name = canonical_runner(runner)
        if name is None:
            raise InputError(f"--runner {runner!r}: unknown runner; known: {_known()}")
    else:
        name = detect_runner(text)
        if name is None:
            raise InputError(f"{p}: not recognised as the output of a runner hilbench knows ({_known()}); "
                             "name one with --runner if it is one")
    report = parse_runner_output(text, name, source=str(p))
    offload = runner_offload(report, text)
    raw = text.encode("utf-8", "replace")
    digest = hashlib.sha256(raw).hexdigest()
    model_name, model_path, model_sha = _model(report, model)
    target_name = _bounded(target) if target else "import"
    started = now_utc()
    session_id, run_id = new_id(), new_id()
    timed = report.timed
    settings = _settings(report)
    device = report.settings.get("device")
    row = {
        "run_id": run_id, "session_id": session_id, "job_key": f"import:{digest[:16]}", "plan": "import",
        "model": model_name, "model_path": model_path, "model_sha256": model_sha,
        "model_format": Path(model_path).suffix.lstrip(".") or None if model_path else None,
        "model_tags": {}, "target": target_name, "transport": "import", "backend": BACKEND_FOR_RUNNER[name],
        "settings": settings, "effective_settings": {"runner": name, "runner_settings": _runner_settings(report)},
        "policy": None, "status": "ok", "error_category": None, "error_message": None,
        "started_at": started, "finished_at": started, "hilbench_version": __version__,
        "agent_version": f"{RUNNER_COMMANDS[name]} {report.version}" if report.version else RUNNER_COMMANDS[name],
        "device_model": _bounded(device) if isinstance(device, str) else None,
        "emulated": False, "stand_in": False, "host": host_facts(), "labels": dict(labels or {}),
        "load_ns": _ns(report.init_ms), "first_ns": _ns(report.first_inference_ms),
        "warmup_count": report.warmup.count if report.warmup else None,
        "timed_count": timed.count if timed else None, "timed_ns": _timed_ns(report),
        "timed_stop": "runner", "valid": None, "verdict": None,
        "result": _result(report, p, len(raw), digest, offload),
        "aggregate_only": True, "runner": name, "offload": offload,
    }
    session = {
        "session_id": session_id, "started_at": started, "finished_at": started, "plan": "import",
        "plan_path": None, "plan_sha256": None, "plan_text": None, "labels": dict(labels or {}),
        "hilbench_version": __version__, "host": host_facts(),
        "argv": argv if argv is not None else sys.argv[1:], "jobs": 1, "jobs_ok": 1, "jobs_failed": 0,
        "status": "finished",
    }
    store.ensure_writable()
    # The run first, then its session: a reader never sees a finished session without its run, and a session that
    # cannot be written takes its run back (nothing half-stored).
    run_file = store.write_table("runs", run_id, [row])
    try:
        store.write_table("sessions", session_id, [session])
    except StoreError:
        run_file.unlink(missing_ok=True)
        raise
    return row
