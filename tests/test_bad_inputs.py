"""The bad-input table (issue 14): every bad input a user can give, through the real ``hilbench`` entry point.

Each case builds its files in a fresh folder (the current folder too), runs ``harness.cli.app.main`` in-process
(a subprocess where the case is the process's environment: its stdout, its encoding, its variables), and
asserts:

* the exit status (1: a user error; 2: the command line itself is wrong; harness/cli/exits.py);
* one line on stderr, ``hilbench: error: ...`` (``hilbench CMD: error: ...`` for a usage error), holding what
  is wrong and where (the file and the key, the flag, the variable), and no traceback;
* nothing written: no file or folder appears (no store, no cache, no stray output).

The table holds PLANS, TARGET_FILES, FLAGS, MODEL_FILES, STORES and ENVIRONMENTS: 222 bad inputs in all
(``len(CASES) + len(ENV_CASES)``; ``test_the_table_is_at_least_100_bad_inputs`` counts them). The closing note
of issue 14 reports that count. docs/reliability.md ("Bad input") shows what the messages look like.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli.app import main
from harness.cli.exits import EXIT_USAGE, EXIT_USER

SAMPLES = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
ONNX = SAMPLES / "digits_cnn_fp32.onnx"
TFLITE = SAMPLES / "digits_cnn_fp32.tflite"
EVAL = SAMPLES / "digits_eval.npz"

#: a plan that is fine: the bad ones change one thing in it
OK_MODEL = 'models = [{ name = "m", backends = ["synthetic"] }]\n'
#: that model with one more key: M + 'inputs = { seed = 1 } }]\n'
M = 'models = [{ name = "m", backends = ["synthetic"], '


@dataclass(frozen=True)
class Case:
    """One bad input: ``files`` to write ({relative path: text or bytes}; a name ending in ``/`` is a folder),
    the command line (``{d}`` is the case's folder), the exit status, and the parts the one error line must hold
    (``{d}`` again)."""

    id: str
    argv: tuple[str, ...]
    parts: tuple[str, ...]
    files: tuple[tuple[str, str | bytes], ...] = ()
    status: int = EXIT_USER


def case(
    id: str, argv: str | list[str], *parts: str, files: dict[str, str | bytes] | None = None, status: int = EXIT_USER
) -> Case:
    args = argv.split() if isinstance(argv, str) else argv
    return Case(id, tuple(args), parts, tuple((files or {}).items()), status)


def plan(id: str, text: str | bytes, *parts: str, extra: dict[str, str | bytes] | None = None) -> Case:
    """``hilbench run {d}/plan.toml`` with ``text`` as the plan; ``{plan}`` in a part is ``{d}/plan.toml: ``."""
    parts = tuple(p.replace("{plan}", "{d}/plan.toml: ") for p in parts)
    return case(id, "run {d}/plan.toml --store {d}/res", *parts, files={"plan.toml": text, **(extra or {})})


def policy(id: str, line: str, *parts: str) -> Case:
    """A plan whose ``[policy]`` has ``line``; parts name ``policy.<key>``."""
    return plan(f"policy-{id}", OK_MODEL + "[policy]\n" + line + "\n", *parts)


# --------------------------------------------------------------------------------------------------- plans
PLANS = [
    case("plan-missing", "run {d}/nosuch.toml --store {d}/res", "{d}/nosuch.toml: file not found"),
    case("plan-is-a-folder", "run {d}/sub --store {d}/res", "{d}/sub: is a folder, not a file", files={"sub/": ""}),
    plan(
        "plan-not-utf8",
        b'name = "caf\xe9"\n' + OK_MODEL.encode(),
        "{plan}not UTF-8 text (byte 0xe9 on line 1): TOML files are UTF-8",
    ),
    plan("plan-bad-toml", "models = [\n", "{plan}invalid TOML"),
    plan("plan-empty", "", "{plan}models: missing (required)"),
    plan("plan-no-models", "models = []\n", "{plan}models: the plan names no models"),
    plan("plan-models-not-a-list", "models = 3\n", "{plan}models: expected a list, got int 3"),
    plan("plan-unknown-key", 'nmae = "x"\n' + OK_MODEL, "{plan}nmae: unknown key"),
    plan("plan-model-not-a-table", "models = [3]\n", "{plan}models[0]: expected a table, got int 3"),
    plan(
        "plan-model-unknown-key", 'models = [{ name = "m", backend = "ort" }]\n', "{plan}models[0].backend: unknown key"
    ),
    plan(
        "plan-model-no-name-no-path",
        'models = [{ backends = ["synthetic"] }]\n',
        "{plan}models[0].name: a model without a path needs a name",
    ),
    plan(
        "plan-model-name-twice",
        '[[models]]\nname = "m"\nbackends = ["synthetic"]\n' * 2,
        "{plan}models: model name 'm' is used twice",
    ),
    plan(
        "plan-model-backend-unknown",
        'models = [{ name = "m", backends = ["tensorflow"] }]\n',
        "{plan}models[0].backends: unknown backend 'tensorflow'",
    ),
    plan(
        "plan-model-backends-not-strings",
        'models = [{ name = "m", backends = [1] }]\n',
        "{plan}models[0].backends: expected a list of strings",
    ),
    plan("plan-model-tag-list", M + "tags = { a = [1] } }]\n", "{plan}models[0].tags.a: expected a string or number"),
    plan(
        "plan-shape-zero",
        M + "inputs = { shapes = { x = [0] } } }]\n",
        "{plan}models[0].inputs.shapes.x: expected a list of positive integers",
    ),
    plan(
        "plan-shape-bool",
        M + "inputs = { shapes = { x = [true] } } }]\n",
        "{plan}models[0].inputs.shapes.x: expected a list of positive integers",
    ),
    plan(
        "plan-shape-not-a-list",
        M + "inputs = { shapes = { x = 3 } } }]\n",
        "{plan}models[0].inputs.shapes.x: expected a list of positive integers",
    ),
    plan(
        "plan-shape-unknown-input",
        f'models = [{{ path = "{ONNX}", inputs = {{ shapes = {{ nosuch = [1, 8, 8, 1] }} }} }}]\n',
        "{plan}models[0].inputs.shapes.nosuch: the model digits_cnn_fp32.onnx has no input 'nosuch' "
        "(its inputs: input)",
    ),
    plan("plan-inputs-unknown-key", M + "inputs = { sed = 1 } }]\n", "{plan}models[0].inputs.sed: unknown key"),
    plan(
        "plan-inputs-seed-string",
        M + 'inputs = { seed = "1" } }]\n',
        "{plan}models[0].inputs.seed: expected an integer",
    ),
    plan(
        "plan-inputs-file-missing",
        M + 'inputs = { file = "x.npz" } }]\n',
        "{plan}models[0].inputs.file: inputs file not found: {d}/x.npz",
    ),
    plan(
        "plan-inputs-file-suffix",
        M + 'inputs = { file = "x.txt" } }]\n',
        "{plan}models[0].inputs.file: inputs file must be .npy or .npz: {d}/x.txt",
        extra={"x.txt": "1 2 3\n"},
    ),
    plan(
        "plan-inputs-file-not-npz",
        M + 'inputs = { file = "x.npz" } }]\n',
        "{plan}models[0].inputs.file: {d}/x.npz: not an .npz archive (not a zip file)",
        extra={"x.npz": "1 2 3\n"},
    ),
    plan(
        "plan-inputs-file-not-npy",
        M + 'inputs = { file = "x.npy" } }]\n',
        "{plan}models[0].inputs.file: {d}/x.npy: not a NumPy .npy file (no NUMPY header)",
        extra={"x.npy": "1 2\n"},
    ),
    plan(
        "plan-targets-unknown",
        'targets = ["nosuch"]\n' + OK_MODEL,
        "{plan}targets: unknown target 'nosuch' (known: local)",
    ),
    plan("plan-targets-not-strings", "targets = [1]\n" + OK_MODEL, "{plan}targets: expected a list of strings"),
    plan("plan-name-not-a-string", "name = 3\n" + OK_MODEL, "{plan}name: expected a string, got int 3"),
    plan(
        "plan-backend-unknown",
        OK_MODEL + "[backends.tensorflow]\nthreads = 1\n",
        "{plan}backends.tensorflow: unknown backend",
    ),
    plan(
        "plan-backend-not-a-table",
        OK_MODEL + "backends = { onnxruntime = 1 }\n",
        "{plan}backends.onnxruntime: expected a table, got int 1",
    ),
    plan(
        "plan-backend-bad-choice",
        OK_MODEL + '[backends.onnxruntime]\ngraph_optimization = "max"\n',
        "{plan}backends.onnxruntime: setting 'graph_optimization' must be one of disable, basic, extended, all",
    ),
    plan(
        "plan-backend-negative-threads",
        OK_MODEL + "[backends.ort]\nintra_op_threads = -4\n",
        "{plan}backends.ort: setting 'intra_op_threads' must be at least 0, not -4",
    ),
    plan(
        "plan-backend-unknown-setting",
        OK_MODEL + "[backends.litert]\nthread = 1\n",
        "{plan}backends.litert: unknown setting 'thread' for backend litert",
    ),
    plan(
        "plan-backend-setting-type",
        OK_MODEL + '[backends.litert]\nxnnpack = "yes"\n',
        "{plan}backends.litert: setting 'xnnpack' must be bool, not str",
    ),
    plan("plan-include-empty", OK_MODEL + "[[include]]\n", "{plan}include[0]: an empty rule matches everything"),
    plan("plan-exclude-unknown-key", OK_MODEL + '[[exclude]]\ncolour = "x"\n', "{plan}exclude[0].colour: unknown key"),
    plan(
        "plan-include-no-backend",
        OK_MODEL + '[[include]]\nmodel = "m"\n',
        "{plan}include[0]: an include rule needs a model, a backend and a known target",
    ),
    plan(
        "plan-include-bad-setting",
        OK_MODEL + '[[include]]\nmodel = "m"\nbackend = "litert"\nthreads = "x"\n',
        "{plan}include[0]: setting 'threads' must be int, not str",
    ),
    plan(
        "plan-no-jobs",
        f'models = [{{ path = "{ONNX}", backends = ["litert"] }}]\n',
        "{plan}the plan expands to no jobs",
    ),
    plan(
        "plan-eval-data-missing",
        M + 'eval = { data = "e.npz" } }]\n',
        "{plan}models[0].eval.data: evaluation file not found: {d}/e.npz",
    ),
    plan(
        "plan-eval-data-suffix",
        M + 'eval = { data = "e.txt" } }]\n',
        "{plan}models[0].eval.data: evaluation data must be an .npz",
        extra={"e.txt": "x"},
    ),
    plan(
        "plan-eval-data-not-zip",
        M + 'eval = { data = "e.npz" } }]\n',
        "{plan}models[0].eval.data: {d}/e.npz: not an .npz archive (not a zip file)",
        extra={"e.npz": "hello"},
    ),
    plan(
        "plan-eval-data-no-x",
        M + f'eval = {{ data = "{EVAL}", x = "images" }} }}]\n',
        "{plan}models[0].eval.data: " + str(EVAL) + ": has no array 'images' (its arrays: x, y)",
    ),
    plan(
        "plan-eval-both",
        M + 'eval = { data = "e.npz", images = "i" } }]\n',
        "{plan}models[0].eval.data: give either data (an .npz) or images (a folder) with labels",
    ),
    plan(
        "plan-eval-images-no-labels",
        M + 'eval = { images = "i" } }]\n',
        "{plan}models[0].eval.labels: images need a labels file",
    ),
    plan(
        "plan-eval-images-missing",
        M + 'eval = { images = "i", labels = "l.txt" } }]\n',
        "{plan}models[0].eval.images: image folder not found: {d}/i",
    ),
    plan(
        "plan-eval-labels-missing",
        M + 'eval = { images = "i", labels = "l.txt" } }]\n',
        "{plan}models[0].eval.labels: labels file not found: {d}/l.txt",
        extra={"i/": ""},
    ),
    plan(
        "plan-eval-no-images",
        M + 'eval = { images = "i", labels = "l.txt" } }]\n',
        "{plan}models[0].eval.images: {d}/i: no images",
        extra={"i/": "", "l.txt": "1\n"},
    ),
    plan(
        "plan-eval-labels-not-utf8",
        M + 'eval = { images = "i", labels = "l.txt" } }]\n',
        "{plan}models[0].eval.labels: {d}/l.txt: not UTF-8 text (byte 0xe9 on line 2)",
        extra={"i/a.png": b"", "l.txt": b"a.png 1\n# \xe9t\xe9\n"},
    ),
    plan(
        "plan-eval-limit-zero",
        M + f'eval = {{ data = "{EVAL}", limit = 0 }} }}]\n',
        "{plan}models[0].eval.limit: must be >= 1",
    ),
    plan(
        "plan-eval-top-k-zero",
        M + f'eval = {{ data = "{EVAL}", top_k = 0 }} }}]\n',
        "{plan}models[0].eval.top_k: must be >= 1",
    ),
    plan(
        "plan-eval-scorer",
        M + f'eval = {{ data = "{EVAL}", scorer = "nocolon" }} }}]\n',
        "{plan}models[0].eval.scorer: expected \"module:function\", got 'nocolon'",
    ),
    plan(
        "plan-eval-reference",
        M + f'eval = {{ data = "{EVAL}", reference = "zz" }} }}]\n',
        "{plan}models[0].eval.reference: no model named 'zz' in this plan",
    ),
    plan(
        "plan-eval-layout",
        M + 'eval = { images = "i", labels = "l", layout = "HWC" } }]\n',
        "{plan}models[0].eval.layout: must be one of NHWC, NCHW, not 'HWC'",
    ),
    plan(
        "plan-eval-preprocessing-on-npz",
        M + f'eval = {{ data = "{EVAL}", scale = 0.5 }} }}]\n',
        "{plan}models[0].eval.scale: preprocessing and labels apply to images",
    ),
]

# -------------------------------------------------------------------------------------------- the policy
POLICIES = [
    policy("warmup-negative", "warmup = -1", "{plan}policy.warmup: must be >= 0, not -1"),
    policy("warmup-word", 'warmup = "hot"', "{plan}policy.warmup: must be a count, \"stable\" or a table, not 'hot'"),
    policy("warmup-bool", "warmup = true", "{plan}policy.warmup: expected an integer or a string or a table"),
    policy("warmup-count-negative", "warmup = { count = -1 }", "{plan}policy.warmup.count: must be >= 0, not -1"),
    policy(
        "warmup-window-one",
        "warmup = { until_stable = true, window = 1 }",
        "{plan}policy.warmup.window: must be >= 2, not 1",
    ),
    policy(
        "warmup-tolerance",
        "warmup = { until_stable = true, tolerance = 2 }",
        "{plan}policy.warmup.tolerance: must be <= 1, not 2",
    ),
    policy(
        "warmup-tolerance-zero",
        "warmup = { until_stable = true, tolerance = 0 }",
        "{plan}policy.warmup.tolerance: must be > 0, not 0",
    ),
    policy("warmup-max-s-zero", "warmup = { count = 5, max_s = 0 }", "{plan}policy.warmup.max_s: must be > 0 s, not 0"),
    policy(
        "warmup-max-below-min",
        "warmup = { min_s = 5, max_s = 1 }",
        "{plan}policy.warmup.max_s: must be >= warmup.min_s",
    ),
    policy(
        "warmup-count-over-cap",
        "warmup = { count = 50, max_count = 10 }",
        "{plan}policy.warmup.count: must be <= 10, where the warm-up stops (warmup.max_count)",
    ),
    policy(
        "warmup-stable-count-over-cap",
        "warmup = { until_stable = true, count = 5000 }",
        "{plan}policy.warmup.count: must be <= 1000, where the warm-up stops",
    ),
    policy("warmup-unknown-key", "warmup = { cuont = 5 }", "{plan}policy.warmup.cuont: unknown key"),
    policy("timed-zero", "timed = 0", "{plan}policy.timed.count: must be >= 1, not 0"),
    policy("timed-empty", "timed = {}", "{plan}policy.timed: give at least one of count, min_s, max_s"),
    policy(
        "timed-count-1e17",
        "timed = { count = 100000000000000000 }",
        "{plan}policy.timed.count: 100000000000000000 runs is more than a timed phase makes: it stops at 1000000 "
        "(timed.max_count's default; it may be raised to 10000000)",
    ),
    policy(
        "timed-count-over-max-count",
        "timed = { count = 5000, max_count = 100 }",
        "{plan}policy.timed.count: 5000 runs is more than a timed phase makes: it stops at 100 (timed.max_count)",
    ),
    policy(
        "timed-max-count-too-big",
        "timed = { max_count = 100000000 }",
        "{plan}policy.timed.max_count: must be <= 10000000, not 100000000",
    ),
    policy("timed-min-s-negative", "timed = { min_s = -1 }", "{plan}policy.timed.min_s: must be >= 0 s, not -1"),
    policy("timed-max-s-zero", "timed = { max_s = 0 }", "{plan}policy.timed.max_s: must be > 0 s, not 0"),
    policy(
        "timed-max-below-min", "timed = { min_s = 10, max_s = 5 }", "{plan}policy.timed.max_s: must be >= timed.min_s"
    ),
    policy("timed-max-s-inf", "timed = { max_s = inf }", "{plan}policy.timed.max_s: must be a finite number, not inf"),
    policy("timed-max-s-week", "timed = { max_s = 1e9 }", "{plan}policy.timed.max_s: must be <= 604800 s"),
    policy(
        "timed-rate-zero", "timed = { count = 10, rate_hz = 0 }", "{plan}policy.timed.rate_hz: must be > 0 Hz, not 0"
    ),
    policy("timed-precision-one", "timed = { precision = 1.5 }", "{plan}policy.timed.precision: must be a fraction"),
    policy(
        "timed-precision-paced",
        "timed = { precision = 0.01, rate_hz = 30 }",
        "{plan}policy.timed.precision: an adaptive count does not apply to a paced (rate_hz) run",
    ),
    policy(
        "timed-precision-max-count",
        "timed = { precision = 0.01, max_count = 100 }",
        "{plan}policy.timed.max_count: must be >= 662",
    ),
    policy("timed-min-count-zero", "timed = { min_count = 0 }", "{plan}policy.timed.min_count: must be >= 1, not 0"),
    policy(
        "timed-check-every-zero",
        "timed = { count = 5, check_every = 0 }",
        "{plan}policy.timed.check_every: must be >= 1",
    ),
    policy(
        "timed-count-float", "timed = { count = 5.5 }", "{plan}policy.timed.count: expected an integer, got float 5.5"
    ),
    policy("timed-unknown-key", "timed = { cout = 5 }", "{plan}policy.timed.cout: unknown key"),
    policy("rate-zero", "rate_hz = 0", "{plan}policy.rate_hz: must be > 0 Hz, not 0"),
    policy("rate-huge", "rate_hz = 1e9", "{plan}policy.rate_hz: must be <= 100000 Hz"),
    policy("telemetry-rate-zero", "telemetry_rate_hz = 0", "{plan}policy.telemetry_rate_hz: must be > 0 Hz, not 0"),
    policy(
        "telemetry-rate-negative", "telemetry_rate_hz = -5", "{plan}policy.telemetry_rate_hz: must be > 0 Hz, not -5"
    ),
    policy(
        "telemetry-rate-nan",
        "telemetry_rate_hz = nan",
        "{plan}policy.telemetry_rate_hz: must be a finite number, not nan",
    ),
    policy("telemetry-rate-huge", "telemetry_rate_hz = 1e6", "{plan}policy.telemetry_rate_hz: must be <= 1000 Hz"),
    policy("timeout-zero", "timeout_s = 0", "{plan}policy.timeout_s: must be > 0 s, not 0"),
    policy("timeout-negative", "timeout_s = -1", "{plan}policy.timeout_s: must be > 0 s, not -1"),
    policy("timeout-inf", "timeout_s = inf", "{plan}policy.timeout_s: must be a finite number, not inf"),
    policy("timeout-huge", "timeout_s = 1e12", "{plan}policy.timeout_s: must be <= 604800 s"),
    policy(
        "timeout-string", 'timeout_s = "10"', "{plan}policy.timeout_s: expected an integer or a number, got str '10'"
    ),
    policy("idle-negative", "idle_s = -1", "{plan}policy.idle_s: must be >= 0 s, not -1"),
    policy("idle-nan", "idle_s = nan", "{plan}policy.idle_s: must be a finite number, not nan"),
    policy(
        "percentile-100",
        "percentiles = [100]",
        "{plan}policy.percentiles: expected a list of integers between 1 and 99",
    ),
    policy(
        "percentile-bool",
        "percentiles = [true]",
        "{plan}policy.percentiles: expected a list of integers between 1 and 99",
    ),
    policy("percentiles-string", 'percentiles = "p99"', "{plan}policy.percentiles: expected a list, got str 'p99'"),
    policy("affinity-negative", "affinity = [-1]", "{plan}policy.affinity: expected a list of CPU numbers"),
    policy("affinity-range", 'affinity = "0-3"', "{plan}policy.affinity: expected a list, got str '0-3'"),
    policy("telemetry-string", 'telemetry = "yes"', "{plan}policy.telemetry: expected true or false, got str 'yes'"),
    policy(
        "sustained-zero", "sustained = { duration_s = 0 }", "{plan}policy.sustained.duration_s: must be > 0 s, not 0"
    ),
    policy(
        "sustained-window",
        "sustained = { duration_s = 10, window_s = 20 }",
        "{plan}policy.sustained.window_s: must be > 0 and <= duration_s",
    ),
    policy(
        "sustained-max-count", "sustained = { max_count = 0 }", "{plan}policy.sustained.max_count: must be >= 1, not 0"
    ),
    policy("sustained-unknown-key", "sustained = { duration = 5 }", "{plan}policy.sustained.duration: unknown key"),
    policy("cooldown-poll-zero", "cooldown = { poll_s = 0 }", "{plan}policy.cooldown.poll_s: must be > 0 s, not 0"),
    policy("cooldown-temp", "cooldown = { max_temp_c = 1000 }", "{plan}policy.cooldown.max_temp_c: must be <= 150 °C"),
    policy(
        "cooldown-drop", "cooldown = { min_drop_c = -1 }", "{plan}policy.cooldown.min_drop_c: must be >= 0 °C, not -1"
    ),
    policy("phase-timeout-zero", "timeouts = { load_s = 0 }", "{plan}policy.timeouts.load_s: must be > 0 s, not 0"),
    policy("phase-timeout-unknown", "timeouts = { warmup = 5 }", "{plan}policy.timeouts.warmup: unknown key"),
    policy("unknown-key", "timout_s = 5", "{plan}policy.timout_s: unknown key"),
    plan("policy-not-a-table", OK_MODEL + "policy = 3\n", "{plan}policy: expected a table, got int 3"),
]

# ------------------------------------------------------------------------------------------ model files
MODEL_FILES = [
    plan("model-missing", 'models = [{ path = "m.onnx" }]\n', "{plan}models[0].path: model file not found: {d}/m.onnx"),
    plan(
        "model-folder",
        'models = [{ path = "m.onnx" }]\n',
        "{plan}models[0].path: model path is a folder",
        extra={"m.onnx/": ""},
    ),
    plan(
        "model-empty",
        'models = [{ path = "m.onnx" }]\n',
        "{plan}models[0].path: model file is empty: {d}/m.onnx",
        extra={"m.onnx": ""},
    ),
    plan(
        "model-unknown-suffix",
        'models = [{ path = "m.bin" }]\n',
        "{plan}models[0].path: m.bin: unknown model format .bin",
        extra={"m.bin": "x"},
    ),
    plan(
        "model-no-suffix",
        'models = [{ path = "model" }]\n',
        "{plan}models[0].path: model: unknown model format (no suffix)",
        extra={"model": "x"},
    ),
    plan(
        "model-tflite-text",
        'models = [{ path = "m.tflite" }]\n',
        "{plan}models[0].path: {d}/m.tflite: not a TFLite model (no TFL3 flatbuffer identifier)",
        extra={"m.tflite": "not a flatbuffer at all\n"},
    ),
    plan(
        "model-tflite-short",
        'models = [{ path = "m.tflite" }]\n',
        "{plan}models[0].path: {d}/m.tflite: not a TFLite model",
        extra={"m.tflite": b"TFL"},
    ),
    plan(
        "model-onnx-text",
        'models = [{ path = "m.onnx" }]\n',
        "{plan}models[0].path: {d}/m.onnx: does not look like an ONNX model",
        extra={"m.onnx": "hello\n"},
    ),
    plan("model-path-not-a-string", "models = [{ path = 3 }]\n", "{plan}models[0].path: expected a string, got int 3"),
    case(
        "variants-text-onnx",
        "variants {d}/m.onnx --only fp16",
        "{d}/m.onnx: not a readable ONNX model",
        files={"m.onnx": "hello\n"},
    ),
    case("variants-missing", "variants {d}/m.onnx", "{d}/m.onnx: model file not found"),
    case("telemetry-parse-missing", "telemetry parse {d}/t.log", "{d}/t.log: cannot read"),
    case(
        "telemetry-parse-unknown-kind",
        "telemetry parse {d}/t.log --kind nosuch",
        "{d}/t.log",
        "nosuch",
        files={"t.log": "RAM 1/2MB\n"},
    ),
]


# ------------------------------------------------------------------------------------------ target files
def target(id: str, text: str | bytes, *parts: str, name: str = "t.toml") -> Case:
    """``hilbench run`` of a fine plan with ``--targets-dir {d}/targets`` holding ``text``; ``{t}`` in a part is
    the target file."""
    parts = tuple(p.replace("{t}", "{d}/targets/" + name + ": ") for p in parts)
    return case(
        f"target-{id}",
        "run {d}/plan.toml --targets-dir {d}/targets --store {d}/res",
        *parts,
        files={"plan.toml": OK_MODEL, f"targets/{name}": text},
    )


SSH = 'transport = "ssh"\nhost = "dev.lab"\n'
TARGET_FILES = [
    target("transport", 'transport = "telnet"\n', "{t}transport: must be one of local, ssh, adb, labgrid, not 'telnet'"),
    target("port-zero", SSH + "port = 0\n", "{t}port: must be 1-65535, not 0"),
    target("port-big", SSH + "port = 70000\n", "{t}port: must be 1-65535, not 70000"),
    target("port-string", SSH + 'port = "22"\n', "{t}port: expected an integer, got str '22'"),
    target(
        "address-ipv6-open",
        'transport = "ssh"\naddress = "root@[::1"\n',
        "{t}address: no closing ']' after the IPv6 address in 'root@[::1'",
    ),
    target(
        "address-space-user",
        'transport = "ssh"\naddress = "ro ot@host"\n',
        "{t}address: user 'ro ot' is not a user name",
    ),
    target("address-port-word", 'transport = "ssh"\naddress = "host:ssh"\n', "{t}address: port 'ssh' is not a number"),
    target(
        "address-not-ipv6",
        'transport = "ssh"\naddress = "[host]:22"\n',
        "{t}address: 'host' in brackets is not an IPv6 address",
    ),
    target(
        "address-and-host", 'transport = "ssh"\naddress = "h"\nhost = "h"\n', "{t}address: give either address or host"
    ),
    target("address-no-host", 'transport = "ssh"\naddress = "root@"\n', "{t}address: no host in 'root@'"),
    target("ssh-no-host", 'transport = "ssh"\n', "{t}host: an ssh target needs host"),
    target(
        "host-space", 'transport = "ssh"\nhost = "dev lab"\n', "{t}host: host 'dev lab' is not a host name or address"
    ),
    target(
        "host-dash",
        'transport = "ssh"\nhost = "-oProxyCommand=x"\n',
        "{t}host: host '-oProxyCommand=x' is not a host name",
    ),
    target("user-space", SSH + 'user = "a b"\n', "{t}user: user 'a b' is not a user name"),
    target(
        "ssh-password",
        SSH + '[ssh]\npassword = "hunter2"\n',
        "{t}ssh.password: passwords do not belong in target files",
    ),
    target(
        "ssh-connect-timeout-zero",
        SSH + "[ssh]\nconnect_timeout_s = 0\n",
        "{t}ssh.connect_timeout_s: must be > 0 s, not 0",
    ),
    target(
        "ssh-command-timeout-negative",
        SSH + "[ssh]\ncommand_timeout_s = -1\n",
        "{t}ssh.command_timeout_s: must be > 0 s, not -1",
    ),
    target(
        "ssh-keepalive-nan", SSH + "[ssh]\nkeepalive_s = nan\n", "{t}ssh.keepalive_s: must be a finite number, not nan"
    ),
    target("ssh-unknown-key", SSH + '[ssh]\nidentity = "k"\n', "{t}ssh.identity: unknown key"),
    target("telemetry-rate-zero", "[telemetry]\nrate_hz = 0\n", "{t}telemetry.rate_hz: must be > 0 Hz, not 0"),
    target(
        "telemetry-meter-not-list",
        '[telemetry]\nmeter_command = "usb-meter"\n',
        "{t}telemetry.meter_command: expected a list, got str 'usb-meter'",
    ),
    target("env-bad-key", 'env = { "1BAD" = "x" }\n', "{t}env: key '1BAD' is not a shell variable name"),
    target("env-value-number", "env = { A = 1 }\n", "{t}env.A: expected a string"),
    target("runtimes-unknown", 'runtimes = ["tensorflow"]\n', "{t}runtimes: unknown runtime 'tensorflow'"),
    target("adb-big-cores", 'transport = "adb"\n[adb]\nbig_cores = [-1]\n', "{t}adb.big_cores: expected CPU numbers"),
    target(
        "adb-current-unit",
        'transport = "adb"\n[adb]\nbattery_current_unit = "A"\n',
        "{t}adb.battery_current_unit: must be one of auto, uA, mA, not 'A'",
    ),
    target(
        "adb-python-private",
        'transport = "adb"\npython = "/data/data/com.termux/files/usr/bin/python"\n',
        "{t}python: /data/data/com.termux/files/usr/bin/python is inside an app's private folder",
    ),
    target("not-utf8", b'name = "d\xe9v"\n', "{t}not UTF-8 text (byte 0xe9 on line 1): TOML files are UTF-8"),
    target("bad-toml", "name = \n", "{t}invalid TOML"),
    target("unknown-key", 'nmae = "x"\n', "{t}nmae: unknown key"),
    target(
        "facts-tops-string",
        '[facts]\ntops = "many"\n',
        "{t}facts.tops: expected an integer or a number, got str 'many'",
    ),
    case(
        "target-name-twice",
        "run {d}/plan.toml --targets-dir {d}/targets --store {d}/res",
        "{d}/targets/b.toml: name: target 'dev' is also defined in {d}/targets/a.toml",
        files={"plan.toml": OK_MODEL, "targets/a.toml": 'name = "dev"\n', "targets/b.toml": 'name = "dev"\n'},
    ),
    case(
        "targets-lists-a-bad-file",
        "targets --targets-dir {d}/targets",
        "{d}/targets/t.toml: port: must be 1-65535",
        files={"targets/t.toml": SSH + "port = 0\n"},
    ),
]

# ----------------------------------------------------------------------------------------- command line
RUN = "run {d}/plan.toml --store {d}/res"
INLINE = RUN + " --target ssh://u@127.0.0.1:9"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIo0vd5nWfD7vSPXMvuPYlm1r4sGzTpD1P6Wj1pXGRnq test\n"
FLAGS = [
    case(
        "target-ipv6-unclosed",
        RUN + " --target ssh://root@[::1",
        "--target ssh://root@[::1: no closing ']' after the IPv6 address in 'root@[::1' "
        "(expected ssh://user@host[:port])",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "target-space-in-user",
        [*RUN.split(), "--target", "ssh://ro ot@host"],
        "--target ssh://ro ot@host: user 'ro ot' is not a user name",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "target-spec-port-big",
        RUN + " --target ssh://h:99999",
        "--target ssh://h:99999: port must be 1-65535, not 99999",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "target-port-word",
        RUN + " --target ssh://h:ssh",
        "--target ssh://h:ssh: port 'ssh' is not a number",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "target-path",
        RUN + " --target ssh://h/x",
        "--target ssh://h/x: host 'h/x' is not a host name or address",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "target-empty-host", RUN + " --target ssh://", "--target ssh://: no host in ''", files={"plan.toml": OK_MODEL}
    ),
    case(
        "target-unknown-name",
        RUN + " --target nosuch",
        "--target nosuch: unknown target (known: local",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "target-telnet",
        RUN + " --target telnet://x",
        "--target telnet://x: unknown target",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "label-no-equals",
        RUN + " --label novalue",
        "--label novalue: expected KEY=VALUE",
        files={"plan.toml": OK_MODEL},
    ),
    case("label-no-key", RUN + " --label =x", "--label =x: expected KEY=VALUE", files={"plan.toml": OK_MODEL}),
    case(
        "identity-missing",
        INLINE + " --identity {d}/nokey",
        "--identity {d}/nokey: not found",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "identity-public",
        INLINE + " --identity {d}/id.pub",
        "--identity {d}/id.pub: is a public key: give the private key (the file without .pub)",
        files={"plan.toml": OK_MODEL, "id.pub": PUBLIC_KEY},
    ),
    case(
        "identity-garbage",
        INLINE + " --identity {d}/id",
        "--identity {d}/id: is not a private key",
        files={"plan.toml": OK_MODEL, "id": b"\x00\xff garbage"},
    ),
    case(
        "identity-folder",
        INLINE + " --identity {d}/keys",
        "--identity {d}/keys: is a folder, not a key file",
        files={"plan.toml": OK_MODEL, "keys/": ""},
    ),
    case(
        "known-hosts-not-utf8",
        INLINE + " --known-hosts {d}/kh",
        "--known-hosts {d}/kh: is not UTF-8 text (byte 0xe9 on line 2)",
        files={"plan.toml": OK_MODEL, "kh": b"# ok\n# h\xe9te\n"},
    ),
    case(
        "target-file-identity-missing",
        "run {d}/plan.toml --targets-dir {d}/targets --store {d}/res",
        "{d}/targets/dev.toml: ssh.identity_file: {d}/nokey: not found",
        files={
            "plan.toml": 'targets = ["dev"]\n' + OK_MODEL,
            "targets/dev.toml": SSH + '[ssh]\nidentity_file = "{d}/nokey"\nuse_ssh_config = false\n',
        },
    ),
    case(
        "target-file-known-hosts-not-utf8",
        "run {d}/plan.toml --targets-dir {d}/targets --store {d}/res",
        "{d}/targets/dev.toml: ssh.known_hosts: {d}/kh: is not UTF-8 text (byte 0xe9 on line 1)",
        files={
            "plan.toml": 'targets = ["dev"]\n' + OK_MODEL,
            "kh": b"dev.lab ssh-ed25519 AAAA \xe9\n",
            "targets/dev.toml": SSH + '[ssh]\nknown_hosts = "{d}/kh"\nuse_ssh_config = false\n',
        },
    ),
    case("targets-dir-missing", "targets --targets-dir {d}/nosuch", "--targets-dir {d}/nosuch: no such folder"),
    case(
        "targets-dir-file",
        "targets --targets-dir {d}/f",
        "--targets-dir {d}/f: is a file, not a folder",
        files={"f": "x"},
    ),
    case("targets-dir-empty", ["targets", "--targets-dir", ""], "--targets-dir is empty"),
    case(
        "run-targets-dir-missing",
        RUN + " --targets-dir {d}/nosuch",
        "--targets-dir {d}/nosuch: no such folder",
        files={"plan.toml": OK_MODEL},
    ),
    case("doctor-targets-dir-missing", "doctor --targets-dir {d}/nosuch", "--targets-dir {d}/nosuch: no such folder"),
    case("doctor-bad-target", "doctor ssh://root@[::1", "--target ssh://root@[::1: no closing ']'"),
    case(
        "compare-one-selection",
        "compare a --store {d}/s",
        "compare: give both BASELINE and CANDIDATE",
        files={"s/": ""},
    ),
    case("usage-unknown-option", "run --bogus", "unrecognized arguments: --bogus", status=EXIT_USAGE),
    case("usage-unknown-command", "bogus", "invalid choice: 'bogus'", status=EXIT_USAGE),
    case("usage-no-command", [], "the following arguments are required: command", status=EXIT_USAGE),
    case("usage-bad-format", "results --format xml", "argument --format: invalid choice: 'xml'", status=EXIT_USAGE),
    case(
        "usage-alpha-not-a-number",
        "compare --alpha abc",
        "argument --alpha: invalid float value: 'abc'",
        status=EXIT_USAGE,
    ),
    case(
        "usage-persist-not-an-int",
        "history --persist 2.5",
        "argument --persist: invalid int value: '2.5'",
        status=EXIT_USAGE,
    ),
    case("usage-plot-kind", "plot nosuch --output x.png", "argument kind: invalid choice: 'nosuch'", status=EXIT_USAGE),
    case("usage-plot-no-output", "plot pareto", "the following arguments are required: --output", status=EXIT_USAGE),
    case("usage-scorer", "accuracy --scorer nocolon", "argument --scorer", status=EXIT_USAGE),
    case("usage-metric", "compare --metric speed", "argument --metric: invalid choice: 'speed'", status=EXIT_USAGE),
    case("usage-show-no-run", "show", "the following arguments are required: run_id", status=EXIT_USAGE),
    case(
        "usage-telemetry-no-command",
        "telemetry",
        "the following arguments are required: telemetry_command",
        status=EXIT_USAGE,
    ),
]

# --------------------------------------------------------------------------------------------------- stores
STORES = [
    case(
        "run-store-empty",
        ["run", "{d}/plan.toml", "--store", ""],
        "--store is empty: name the results folder",
        files={"plan.toml": OK_MODEL},
    ),
    case(
        "run-store-blank", ["run", "{d}/plan.toml", "--store", " "], "--store is empty", files={"plan.toml": OK_MODEL}
    ),
    case(
        "run-store-file",
        RUN,
        "--store {d}/res: is a file, not a results folder",
        files={"plan.toml": OK_MODEL, "res": "x"},
    ),
    case(
        "results-store-missing",
        "results --store {d}/nosuch",
        "--store {d}/nosuch: no such folder: no results are stored there",
    ),
    case(
        "results-store-file",
        "results --store {d}/f",
        "--store {d}/f: is a file, not a results folder",
        files={"f": "x"},
    ),
    case("results-store-empty", ["results", "--store", ""], "--store is empty"),
    case("results-session-unknown", "results --store {d}/s --session nosuch", "nosuch", files={"s/": ""}),
    case("show-store-missing", "show abc --store {d}/nosuch", "--store {d}/nosuch: no such folder"),
    case("show-run-unknown", "show abc --store {d}/s", "abc", files={"s/": ""}),
    case("report-store-missing", "report --store {d}/nosuch --output {d}/r.html", "--store {d}/nosuch: no such folder"),
    case(
        "report-session-unknown",
        "report --store {d}/s --session nosuch --output {d}/r.html",
        "nosuch",
        files={"s/": ""},
    ),
    case("compare-store-missing", "compare --store {d}/nosuch", "--store {d}/nosuch: no such folder"),
    case("history-store-missing", "history --store {d}/nosuch", "--store {d}/nosuch: no such folder"),
    case("accuracy-store-missing", "accuracy --store {d}/nosuch", "--store {d}/nosuch: no such folder"),
    case(
        "plot-store-missing", "plot pareto --output {d}/p.png --store {d}/nosuch", "--store {d}/nosuch: no such folder"
    ),
    case(
        "store-marker-corrupt",
        "results --store {d}/s",
        "{d}/s/hilbench-store.json: not a hilbench store marker",
        files={"s/hilbench-store.json": "{not json"},
    ),
    case(
        "store-marker-newer",
        "results --store {d}/s",
        "store schema v99 is newer than this hilbench",
        files={"s/hilbench-store.json": '{"schema_version": 99}'},
    ),
]

CASES = PLANS + POLICIES + MODEL_FILES + TARGET_FILES + FLAGS + STORES


def _tree(root: Path) -> set[str]:
    """Every file and folder under ``root``, relative."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def _write(root: Path, files: tuple[tuple[str, str | bytes], ...]) -> None:
    for rel, content in files:
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{d}", str(root)), encoding="utf-8")


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_ssh_dir: Path) -> Path:
    """A case's folder, as the current folder too; no HILBENCH_* variable from the caller; ~/.ssh a fresh folder
    outside it (conftest's own_ssh_dir)."""
    for var in ("HILBENCH_STORE", "HILBENCH_TARGETS"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "case"
    folder.mkdir()
    monkeypatch.setenv("HILBENCH_CACHE", str(folder / "cache"))
    monkeypatch.chdir(folder)
    return folder


#: cases that import a large library on their first use (scipy for the adaptive count's floors, onnx to read a
#: model's input names or to make variants): over ~0.3 s in a fresh process
SLOW = {"policy-timed-precision-max-count", "plan-shape-unknown-input", "variants-text-onnx"}


@pytest.mark.parametrize("bad", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.id in SLOW else []) for c in CASES])
def test_bad_input(bad: Case, clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = clean_env
    _write(d, bad.files)
    before = _tree(d)
    argv = [a.replace("{d}", str(d)) for a in bad.argv]
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse: a usage error
        status = exc.code
    out, err = capsys.readouterr()
    assert status == bad.status, err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    head = "hilbench: error: " if bad.status == EXIT_USER else "hilbench"
    assert lines[0].startswith(head) and ": error: " in lines[0], lines[0]
    for part in bad.parts:
        assert part.replace("{d}", str(d)) in lines[0], lines[0]
    assert _tree(d) == before, f"written: {sorted(_tree(d) - before)}"


# -------------------------------------------------------------------------------------------- environments
@dataclass(frozen=True)
class EnvCase:
    """A bad environment: the command runs as a child process (``python -m harness.cli``) with ``env`` set
    (``None`` unsets a variable), and ``stdout`` is ``"closed"`` (fd 1 closed), ``"full"`` (/dev/full) or a pipe."""

    id: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str | None], ...]
    parts: tuple[str, ...]
    files: tuple[tuple[str, str | bytes], ...] = ()
    stdout: str = "pipe"
    status: int = EXIT_USER


ENV_CASES = [
    EnvCase("store-variable-empty", ("results",), (("HILBENCH_STORE", ""),), ("HILBENCH_STORE is empty",)),
    EnvCase(
        "store-variable-missing",
        ("results",),
        (("HILBENCH_STORE", "{d}/nosuch"),),
        ("HILBENCH_STORE {d}/nosuch: no such folder",),
    ),
    EnvCase(
        "store-variable-empty-run",
        ("run", "{d}/plan.toml"),
        (("HILBENCH_STORE", ""),),
        ("HILBENCH_STORE is empty",),
        files=(("plan.toml", OK_MODEL),),
    ),
    EnvCase(
        "targets-variable-missing",
        ("targets",),
        (("HILBENCH_TARGETS", "{d}/nosuch"),),
        ("HILBENCH_TARGETS {d}/nosuch: no such folder",),
    ),
    EnvCase(
        "ascii-output-non-ascii-path",
        ("run", "{d}/été/plan.toml", "--store", "{d}/res"),
        (("PYTHONIOENCODING", "ascii"),),
        ("{d}/\\xe9t\\xe9/plan.toml: policy.timeout_s: must be > 0 s, not 0",),
        files=(("été/plan.toml", OK_MODEL + "[policy]\ntimeout_s = 0\n"),),
    ),
    EnvCase(
        "ascii-locale-non-ascii-path",
        ("run", "{d}/été/plan.toml", "--store", "{d}/res"),
        (("LC_ALL", "C"), ("LANG", "C"), ("PYTHONIOENCODING", None)),
        ("policy.timeout_s: must be > 0 s, not 0",),
        files=(("été/plan.toml", OK_MODEL + "[policy]\ntimeout_s = 0\n"),),
    ),
    EnvCase(
        "stdout-closed",
        ("results", "--store", "{d}/s"),
        (),
        ("standard output is closed",),
        files=(("s/", ""),),
        stdout="closed",
    ),
    EnvCase(
        "stdout-full",
        ("targets", "--targets-dir", "{d}/t"),
        (),
        ("cannot write to standard output: No space left on device",),
        files=(("t/", ""),),
        stdout="full",
    ),
]


def _env(d: Path, changes: tuple[tuple[str, str | None], ...]) -> dict[str, str]:
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HILBENCH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "device_agents"), env.get("PYTHONPATH", "")])
    env["HILBENCH_CACHE"] = str(d / "cache")
    env["HOME"] = str(d.parent / "home")  # ~/.ssh and ~/.cache outside the case folder
    for key, value in changes:
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value.replace("{d}", str(d))
    return env


@pytest.mark.slow
@pytest.mark.parametrize("bad", ENV_CASES, ids=[c.id for c in ENV_CASES])
def test_bad_environment(bad: EnvCase, tmp_path: Path) -> None:
    d = tmp_path / "case"
    d.mkdir()
    (tmp_path / "home").mkdir()
    _write(d, bad.files)
    before = _tree(d)
    argv = [a.replace("{d}", str(d)) for a in bad.argv]
    stdout: int | None = subprocess.PIPE
    if bad.stdout == "full":
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full here")
        stdout = os.open("/dev/full", os.O_WRONLY)
    cmd = [sys.executable, "-m", "harness.cli", *argv]
    if bad.stdout == "closed":  # the shell's `>&-`: the child starts with fd 1 closed
        cmd = ["sh", "-c", 'exec "$@" >&-', "sh", *cmd]
        stdout = None
    try:
        proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, env=_env(d, bad.env), cwd=d, timeout=120)
    finally:
        if isinstance(stdout, int) and stdout >= 0 and bad.stdout == "full":
            os.close(stdout)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == bad.status, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hilbench: error: "), err
    for part in bad.parts:
        assert part.replace("{d}", str(d)) in lines[0], lines[0]
    assert _tree(d) == before, f"written: {sorted(_tree(d) - before)}"


def test_the_table_is_at_least_100_bad_inputs() -> None:
    ids = [c.id for c in CASES] + [c.id for c in ENV_CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 100
    count = f"{len(ids)} bad inputs in all"
    assert count in (__doc__ or ""), f"update the module docstring: {count}"


def test_show_of_a_run_that_never_reached_its_device_prints_only_what_is_known(tmp_path: Path, capsys) -> None:
    """Issue 14, item 15: a run stored before any hello (the device refused the connection) has no Python, agent
    or OS: ``show`` leaves that line out instead of printing ``python None agent None os None None``."""
    from harness import open_store
    from harness.config.plan import expand_jobs, load_plan
    from harness.run.session import run_jobs
    from harness.transport.fake import FakeScript, FakeTransport, agent_run, fake_target

    path = tmp_path / "plan.toml"
    path.write_text(OK_MODEL + "[policy]\ntimed = 10\ntelemetry = false\n")
    plan = load_plan(path)
    target = fake_target("bench")
    store = open_store(tmp_path / "res")
    fake = FakeTransport(target, [FakeScript(agent_run())], refuse_connects=100)
    run_jobs(expand_jobs(plan, {}, only_targets=[target]), store, plan=plan, transports=lambda t: fake,
             on_runner=lambda r: setattr(r, "connect_backoff_s", 0.0))
    (run_id,) = store.runs()["run_id"]
    assert main(["show", run_id, "--store", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "  python" not in out
    assert "status    ERROR (transport): bench: connect: no connection after 3 attempts" in out


@pytest.mark.slow
def test_output_a_terminal_cannot_encode_is_escaped_and_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """Issue 14, item 15: under ``PYTHONIOENCODING=ascii`` a target named ``été`` in a folder ``été`` is printed
    with escapes (was: UnicodeEncodeError); a reader that closes the pipe early ends nothing in a traceback."""
    d = tmp_path / "case"
    (d / "été").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (d / "été" / "t.toml").write_text('name = "été"\n', encoding="utf-8")
    env = _env(d, (("PYTHONIOENCODING", "ascii"),))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "targets", "--targets-dir", str(d / "été")],
                          capture_output=True, env=env, cwd=d, timeout=120)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert b"\\xe9t\\xe9" in proc.stdout and b"2 targets valid" in proc.stdout
    reader = subprocess.Popen([sys.executable, "-m", "harness.cli", "targets", "--targets-dir", str(d / "été")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(d, ()), cwd=d)
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # as `| head -0` does
    assert reader.wait(timeout=120) == 0
    assert reader.stderr.read() == b""
