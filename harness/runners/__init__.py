"""Parsers for the output of vendors' benchmark runners, for runs hilbench drives or imports.

Runners (canonical names in :data:`RUNNERS`):

* ``tflite_benchmark_model``: LiteRT / TensorFlow Lite ``benchmark_model`` (:mod:`.tflite`);
* ``onnxruntime_perf_test``: ONNX Runtime ``onnxruntime_perf_test`` (:mod:`.onnxruntime_perf`);
* ``trtexec``: NVIDIA TensorRT ``trtexec`` logs and ``--exportTimes`` JSON (:mod:`.trtexec`);
* ``openvino_benchmark_app``: OpenVINO ``benchmark_app`` (:mod:`.openvino`).

Every parser returns a :class:`RunnerReport` with all durations in milliseconds
(see :mod:`.model` for the unit conventions) and raises :class:`harness.errors.InputError`
(a :class:`~harness.errors.HilbenchError`) with a one-line message when the text is not
recognisable or holds no timings. Samples are never invented: a report has
``samples_ms`` only when the runner wrote per-iteration times.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.errors import InputError
from harness.runners.model import RUNNERS, LatencyStats, RunnerReport, canonical_runner
from harness.runners.onnxruntime_perf import parse_onnxruntime_perf, score_onnxruntime_perf
from harness.runners.openvino import parse_openvino, score_openvino
from harness.runners.tflite import parse_tflite, score_tflite
from harness.runners.trtexec import parse_export_times, parse_trtexec, score_trtexec

__all__ = [
    "RUNNERS",
    "LatencyStats",
    "RunnerReport",
    "canonical_runner",
    "detect_runner",
    "parse_runner_output",
    "parse_runner_file",
    "parse_tflite",
    "parse_onnxruntime_perf",
    "parse_trtexec",
    "parse_export_times",
    "parse_openvino",
]

_Parser = Callable[..., RunnerReport]

_PARSERS: dict[str, _Parser] = {
    "tflite_benchmark_model": parse_tflite,
    "onnxruntime_perf_test": parse_onnxruntime_perf,
    "trtexec": parse_trtexec,
    "openvino_benchmark_app": parse_openvino,
}
_SCORERS: dict[str, Callable[[str], int]] = {
    "tflite_benchmark_model": score_tflite,
    "onnxruntime_perf_test": score_onnxruntime_perf,
    "trtexec": score_trtexec,
    "openvino_benchmark_app": score_openvino,
}


def detect_runner(text: str) -> str | None:
    """Which runner wrote ``text`` (a name from :data:`RUNNERS`), or ``None`` when none is recognised.

    Each runner's characteristic lines are counted; the runner with the most wins,
    and a tie between two runners is ``None`` (ambiguous).
    """
    scores = sorted(((score(text), name) for name, score in _SCORERS.items()), reverse=True)
    best_score, best = scores[0]
    if best_score == 0 or scores[1][0] == best_score:
        return None
    return best


def parse_runner_output(text: str, runner: str | None = None, *, source: str | None = None) -> RunnerReport:
    """Parse one runner's output into a :class:`RunnerReport`.

    ``runner`` is a name from :data:`RUNNERS` or an alias (``tflite``, ``ort``,
    ``openvino``…); ``None`` detects it with :func:`detect_runner`. ``source`` names the
    text in error messages (a file name, a job). Raises :class:`InputError` (one line)
    for an unknown runner name, unrecognisable text, or output without timings.
    """
    where = source or "runner output"
    if runner is None:
        if not text.strip():
            raise InputError(f"{where}: empty output, nothing to parse")
        name = detect_runner(text)
        if name is None:
            raise InputError(
                f"{where}: not recognised as output of {', '.join(RUNNERS)}; pass runner= to choose a parser"
            )
    else:
        found = canonical_runner(runner)
        if found is None:
            raise InputError(f"{where}: unknown runner {runner!r}; expected one of {', '.join(RUNNERS)}")
        name = found
    return _PARSERS[name](text, source=where)


def parse_runner_file(path: str | Path, runner: str | None = None) -> RunnerReport:
    """Read ``path`` (UTF-8, undecodable bytes replaced) and parse it with :func:`parse_runner_output`.

    Raises :class:`InputError` when the file cannot be read, as well as :func:`parse_runner_output` does.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{p}: cannot read runner output ({exc.strerror or exc})") from exc
    return parse_runner_output(text, runner, source=str(p))
