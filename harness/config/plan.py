"""Plans: which models, on which targets, with which backends and settings.

A plan file expands into a job matrix: model x target x backend x settings,
where every list-valued backend setting is one axis (``threads = [1, 2, 4]``),
then ``[[exclude]]`` rules drop combinations and ``[[include]]`` rules add them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hilbench_agent.backends import DEFAULT_BACKEND, MODEL_SUFFIXES, SETTINGS, canonical_name, validate_settings

from harness.agent.validate import MAX_PHASE_SAMPLES
from harness.config.targets import Target
from harness.config.toml import TableReader, load_toml
from harness.errors import ConfigError
from harness.files import file_sha256
from harness.text import key_values

__all__ = ["ModelSpec", "Policy", "Job", "Plan", "load_plan", "expand_jobs", "QUICKSTART_PLAN"]

#: the bundled quick start (``harness/samples/quickstart.toml``)
QUICKSTART_PLAN = Path(__file__).resolve().parents[1] / "samples" / "quickstart.toml"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path | None
    sha256: str | None
    tags: dict[str, str] = field(default_factory=dict)
    backends: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> str:
        return self.path.suffix.lstrip(".").lower() if self.path else "none"


@dataclass(frozen=True)
class Policy:
    """Warm-up and timed-run policy, as sent to the agent."""

    warmup: dict[str, Any] = field(default_factory=lambda: {"count": 10})
    # 700 >= the 662 samples MLPerf LoadGen asks for a p99, which the default percentiles include.
    timed: dict[str, Any] = field(default_factory=lambda: {"count": 700, "min_s": 1.0, "max_s": 60.0})
    affinity: tuple[int, ...] = ()
    telemetry: bool = True
    telemetry_rate_hz: float = 10.0
    timeout_s: float = 600.0
    percentiles: tuple[int, ...] = (50, 90, 95, 99)
    # Idle baseline before the timed runs (s; 0 = none); the agent skips it on a device without sensors.
    idle_s: float = 2.0
    #: sustained mode {duration_s, window_s}, run after the timed phase; None = off
    sustained: dict[str, Any] | None = None
    #: cool-down gate {max_temp_c, max_wait_s, settle_s, poll_s, min_drop_c} before each timed phase; None = off
    cooldown: dict[str, Any] | None = None
    #: per-phase limits in s, {phase: seconds} for load, first, warmup, timed, sustained, accuracy; the host
    #: kills an agent whose phase runs past its limit (timeout_s still bounds the whole job)
    phase_timeouts: dict[str, float] = field(default_factory=dict)
    #: how long a job waits for the device's lock while another run measures there (s; 0 = fail at once);
    #: None = as long as ``timeout_s``. The job's timeout starts once the lock is held.
    lock_wait_s: float | None = None
    #: fresh agent processes per configuration in one session, interleaved across configurations (A1 B1 A2 B2 ...):
    #: the spread between them is the noise a re-run sees (docs/analysis.md); not sent to the agent
    processes: int = 1
    #: fail a run the accelerator did not run whole (harness/analysis/offload.py); a backend's own
    #: ``require_offload`` setting overrides it
    require_offload: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = {
            "warmup": self.warmup,
            "timed": self.timed,
            "affinity": list(self.affinity),
            "telemetry": self.telemetry,
            "telemetry_rate_hz": self.telemetry_rate_hz,
            "timeout_s": self.timeout_s,
            "percentiles": list(self.percentiles),
        }
        # Only when not the default, so job keys (--resume) of plans written before these keys stay the same.
        if self.idle_s != 2.0:
            d["idle_s"] = self.idle_s
        if self.sustained is not None:
            d["sustained"] = self.sustained
        if self.cooldown is not None:
            d["cooldown"] = self.cooldown
        if self.phase_timeouts:
            d["timeouts"] = self.phase_timeouts
        if self.lock_wait_s is not None:
            d["lock_wait_s"] = self.lock_wait_s
        if self.require_offload:
            d["require_offload"] = True
        return d


@dataclass(frozen=True)
class Job:
    """One cell of the matrix: a model on a target with a backend and settings."""

    plan: str
    model: ModelSpec
    target: Target
    backend: str
    settings: dict[str, Any]
    policy: Policy
    #: which of the configuration's ``policy.processes`` agent processes this job is (1-based; 0 when one)
    process: int = 0
    #: ``compare --run``: the side ("A" baseline, "B" candidate) this job measures; "" otherwise
    arm: str = ""

    @property
    def key(self) -> str:
        """Stable identity of the job's configuration (used by ``--resume``)."""
        ident: dict[str, Any] = {
            "plan": self.plan,
            "model": self.model.name,
            "sha256": self.model.sha256,
            "target": self.target.name,
            "backend": self.backend,
            "settings": self.settings,
            # How long a job may wait for the device is not part of what it measures.
            "policy": {k: v for k, v in self.policy.to_dict().items() if k != "lock_wait_s"},
        }
        # Only when set, so job keys (--resume) of one-process plans stay as they were.
        if self.process:
            ident["process"] = self.process
        if self.arm:
            ident["arm"] = self.arm
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def require_offload(self) -> bool:
        """Whether a partly offloaded run fails: the backend's ``require_offload`` setting, else the policy's."""
        return bool(self.settings.get("require_offload", self.policy.require_offload))

    def describe(self) -> str:
        settings = key_values(self.settings)
        return f"{self.model.name} on {self.target.name} [{self.backend}{' ' + settings if settings else ''}]"


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path | None
    description: str
    models: tuple[ModelSpec, ...]
    targets: tuple[str, ...]
    backends: dict[str, dict[str, Any]]
    policy: Policy
    include: tuple[dict[str, Any], ...] = ()
    exclude: tuple[dict[str, Any], ...] = ()
    raw_text: str = ""


#: The longest any policy duration may be (timeout_s, idle_s, min_s, max_s, waits): a week.
MAX_SECONDS = 7 * 24 * 3600.0
#: The most iterations a phase may run: the host's limit on the samples one phase may send.
MAX_LOOP_COUNT = MAX_PHASE_SAMPLES
#: The agent's cap on timed iterations when timed.max_count is not given (hilbench_agent.main.timed_loop).
TIMED_MAX_COUNT = 1_000_000
#: The agent's cap on a stable warm-up's iterations when warmup.max_count is not given (hilbench_agent.main).
STABLE_WARMUP_MAX_COUNT = 1000
#: The most agent processes per configuration a plan may ask for (policy.processes).
MAX_PROCESSES = 100
#: Telemetry faster than this reads sysfs more often than sensors update (and costs the device CPU time).
MAX_TELEMETRY_HZ = 1000.0
#: A paced (rate_hz) run faster than this has frames shorter than the agent's own loop can keep.
MAX_RATE_HZ = 100_000.0


def _seconds(r: TableReader, key: str, default: Any, *, zero_ok: bool = False) -> Any:
    """A duration in seconds: finite, > 0 (>= 0 with ``zero_ok``) and at most :data:`MAX_SECONDS`."""
    if zero_ok:
        return r.number(key, default, least=0, most=MAX_SECONDS, unit="s")
    return r.number(key, default, above=0, most=MAX_SECONDS, unit="s")


def _count(r: TableReader, key: str, *, least: int = 1, most: int | None = MAX_LOOP_COUNT) -> Any:
    return r.number(key, None, integer=True, least=least, most=most)


def _warmup_policy(r: TableReader) -> dict[str, Any] | None:
    """``warmup``: a count, ``"stable"`` or a table; None for the default."""
    warmup_raw = r.get("warmup", (int, str, dict), None)
    if warmup_raw is None:
        return None
    if isinstance(warmup_raw, int):
        r.number("warmup", integer=True, least=0, most=MAX_LOOP_COUNT)
        return {"count": warmup_raw}
    if isinstance(warmup_raw, str):
        if warmup_raw != "stable":
            raise r.error("warmup", f"must be a count, \"stable\" or a table, not {warmup_raw!r}")
        return {"until_stable": True}
    w = TableReader(warmup_raw, r.file, r.prefix + "warmup.")
    warmup = {
        "count": _count(w, "count", least=0),
        "min_s": _seconds(w, "min_s", None, zero_ok=True),
        "max_s": _seconds(w, "max_s", None),
        "max_count": _count(w, "max_count"),
        "until_stable": w.get("until_stable", bool, False),
        # the rolling median compares two windows of this many runs
        "window": _count(w, "window", least=2, most=100_000),
        "tolerance": w.number("tolerance", None, above=0, most=1),
    }
    w.done()
    if warmup["max_s"] is not None and warmup["min_s"] is not None and warmup["max_s"] < warmup["min_s"]:
        raise w.error("max_s", "must be >= warmup.min_s")
    cap = warmup["max_count"]
    if cap is None and warmup["until_stable"]:
        cap = STABLE_WARMUP_MAX_COUNT
    if cap is not None and (warmup["count"] or 0) > cap:
        raise w.error("count", f"must be <= {cap}, where the warm-up stops (warmup.max_count"
                               f"{'' if warmup['max_count'] is not None else ', default for a stable warm-up'})")
    return {k: v for k, v in warmup.items() if v is not None}


def _timed_policy(r: TableReader, default: dict[str, Any]) -> dict[str, Any]:
    """``timed``: a count or a table (count, min_s, max_s, max_count, rate_hz, precision, min_count,
    check_every); every number bounded where it is read, so a plan never asks for what the agent cannot run."""
    timed_raw = r.get("timed", (int, dict), None)
    if timed_raw is None:
        return dict(default)
    if isinstance(timed_raw, int):
        t = TableReader({"count": timed_raw}, r.file, r.prefix + "timed.")
    else:
        t = TableReader(timed_raw, r.file, r.prefix + "timed.")
    timed = {
        "count": _count(t, "count", most=None),  # bounded by the cap below, which says what it is
        "min_s": _seconds(t, "min_s", None, zero_ok=True),
        "max_s": _seconds(t, "max_s", None),
        "max_count": _count(t, "max_count"),
        "rate_hz": t.number("rate_hz", None, above=0, most=MAX_RATE_HZ, unit="Hz"),
        # Adaptive count: stop once the median's 95% CI is within +-precision (a fraction) of it.
        "precision": t.get("precision", (int, float), None),
        "min_count": _count(t, "min_count"),
        "check_every": _count(t, "check_every"),
    }
    t.done()
    timed = {k: v for k, v in timed.items() if v is not None}
    if not timed:
        raise r.error("timed", "give at least one of count, min_s, max_s")
    cap = timed.get("max_count", TIMED_MAX_COUNT)
    if timed.get("count", 0) > cap:
        given = "timed.max_count" if "max_count" in timed else f"timed.max_count's default; it may be raised to " \
                                                                f"{MAX_LOOP_COUNT}"
        raise t.error("count", f"{timed['count']} runs is more than a timed phase makes: it stops at {cap} ({given})")
    if "min_count" in timed and timed["min_count"] > cap:
        raise t.error("min_count", f"must be <= {cap} (timed.max_count{'' if 'max_count' in timed else ', default'})")
    return timed


def _policy(r: TableReader) -> Policy:
    defaults = Policy()
    warmup = _warmup_policy(r) or defaults.warmup
    timed = _timed_policy(r, defaults.timed)
    rate = r.number("rate_hz", None, above=0, most=MAX_RATE_HZ, unit="Hz")
    if rate is not None:
        timed["rate_hz"] = float(rate)
    if "precision" in timed and not 0 < timed["precision"] < 1:
        raise r.error("timed.precision", "must be a fraction of the median between 0 and 1 (0.01 = +-1%)")
    if "precision" in timed and "rate_hz" in timed:
        raise r.error("timed.precision", "an adaptive count does not apply to a paced (rate_hz) run")
    if "min_s" in timed and "max_s" in timed and timed["max_s"] < timed["min_s"]:
        raise r.error("timed.max_s", "must be >= timed.min_s")
    affinity = r.get("affinity", list, [])
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in affinity):
        raise r.error("affinity", "expected a list of CPU numbers")
    telemetry = r.get("telemetry", bool, True)
    percentiles = r.get("percentiles", list, list(defaults.percentiles))
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 100 for p in percentiles):
        raise r.error("percentiles", "expected a list of integers between 1 and 99")
    if "precision" in timed:
        from harness.analysis.stability import min_samples_for_percentile

        # MLPerf LoadGen's floors (p90 64, p95 130, p99 662) for the percentiles reported.
        floor = max([min_samples_for_percentile(p) for p in percentiles] + [timed.get("min_count", 1)])
        timed["min_count"] = floor
        if "max_count" in timed and timed["max_count"] < floor:
            raise r.error("timed.max_count", f"must be >= {floor}, the fewest samples the percentiles "
                          f"{', '.join(map(str, percentiles))} need")
        timed.setdefault("max_s", 60.0)
    thermal = _thermal_policy(r)
    # The default timeout leaves room for the sustained phase and two cool-down waits.
    extra_s = (thermal["sustained"] or {}).get("duration_s", 0.0) + 2 * (thermal["cooldown"] or {}).get("max_wait_s", 0.0)
    telemetry_rate = r.number("telemetry_rate_hz", 10.0, above=0, most=MAX_TELEMETRY_HZ, unit="Hz")
    timeout_s = _seconds(r, "timeout_s", None)
    policy = Policy(
        warmup=warmup,
        timed=timed,
        affinity=tuple(affinity),
        telemetry=telemetry,
        telemetry_rate_hz=float(telemetry_rate),
        timeout_s=float(timeout_s if timeout_s is not None else 600.0 + extra_s),
        percentiles=tuple(percentiles),
        phase_timeouts=_phase_timeouts(r),
        lock_wait_s=_lock_wait_s(r),
        processes=int(r.number("processes", 1, integer=True, least=1, most=MAX_PROCESSES)),
        require_offload=r.get("require_offload", bool, False),
        **thermal,
    )
    r.done()
    return policy


def _lock_wait_s(r: TableReader) -> float | None:
    """``lock_wait_s``: seconds a job waits for the device's lock (0 = fail at once); unset = ``timeout_s``."""
    value = r.get("lock_wait_s", (int, float), None)
    if value is None:
        return None
    if not 0 <= value <= 7 * 86400:
        raise r.error("lock_wait_s", "must be between 0 (fail at once when the device is busy) and 604800 s (a week)")
    return float(value)


#: Phases the agent reports that ``[policy.timeouts]`` can bound, each as ``<phase>_s``.
TIMED_PHASES = ("load", "first", "warmup", "timed", "sustained", "accuracy")


def _phase_timeouts(r: TableReader) -> dict[str, float]:
    """``[policy.timeouts]``: ``load_s``, ``first_s``, ``warmup_s``, ``timed_s``, ``sustained_s``, ``accuracy_s``."""
    if r.get("timeouts", dict, None) is None:
        return {}
    t = r.table("timeouts")
    out = {}
    for phase in TIMED_PHASES:
        value = _seconds(t, f"{phase}_s", None)
        if value is not None:
            out[phase] = float(value)
    t.done()
    return out


def _thermal_policy(r: TableReader) -> dict[str, Any]:
    """``idle_s``, ``sustained`` and ``cooldown`` of ``[policy]`` (docs/telemetry.md)."""
    idle_s = float(_seconds(r, "idle_s", 2.0, zero_ok=True))
    sustained = None
    if r.get("sustained", dict, None) is not None:
        s = r.table("sustained")
        sustained = {"duration_s": float(_seconds(s, "duration_s", 60.0)),
                     "window_s": float(_seconds(s, "window_s", 5.0))}
        max_count = _count(s, "max_count")
        s.done()
        if not sustained["window_s"] <= sustained["duration_s"]:
            raise s.error("window_s", "must be > 0 and <= duration_s")
        if max_count is not None:
            sustained["max_count"] = max_count
    cooldown = None
    if r.get("cooldown", dict, None) is not None:
        c = r.table("cooldown")
        cooldown = {"max_temp_c": float(c.number("max_temp_c", 50.0, least=-50, most=150, unit="°C")),
                    "max_wait_s": float(_seconds(c, "max_wait_s", 120.0)),
                    "settle_s": float(_seconds(c, "settle_s", 10.0)),
                    "poll_s": float(_seconds(c, "poll_s", 1.0)),
                    "min_drop_c": float(c.number("min_drop_c", 0.5, least=0, most=100, unit="°C"))}
        c.done()
    return {"idle_s": idle_s, "sustained": sustained, "cooldown": cooldown}


def _model(data: Any, file: Path, index: int, base: Path) -> ModelSpec:
    r = TableReader(data, file, f"models[{index}].")
    path_text = r.get("path", str, None)
    path: Path | None = None
    sha = None
    if path_text is not None:
        path = (base / path_text).resolve() if not Path(path_text).is_absolute() else Path(path_text)
        _check_model_file(path, r)
        sha = file_sha256(path)
    name = r.get("name", str, path.stem if path else None)
    if not name:
        raise r.error("name", "a model without a path needs a name")
    tags = r.get("tags", dict, {})
    for key, value in tags.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise r.error(f"tags.{key}", "expected a string or number")
    backends = tuple(canonical_name(b) for b in r.str_list("backends", []))
    for b in backends:
        if b not in SETTINGS:
            raise r.error("backends", f"unknown backend {b!r} (known: {', '.join(sorted(SETTINGS))})")
    inputs_r = r.table("inputs")
    inputs: dict[str, Any] = {"seed": inputs_r.get("seed", int, 0)}
    shapes = inputs_r.get("shapes", dict, None)
    if shapes is not None:
        for key, shape in shapes.items():
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                      for d in shape):
                raise inputs_r.error(f"shapes.{key}", "expected a list of positive integers")
        names = _onnx_input_names(path) if path is not None and shapes else None
        unknown = sorted(k for k in shapes if names is not None and k not in names)
        if unknown:
            raise inputs_r.error(f"shapes.{unknown[0]}", f"the model {path.name if path else ''} has no input "
                                 f"{unknown[0]!r} (its inputs: {', '.join(names or ()) or 'none'})")
        inputs["shapes"] = shapes
    file_text = inputs_r.get("file", str, None)
    if file_text is not None:
        ipath = (base / file_text).resolve()
        if not ipath.is_file():
            raise inputs_r.error("file", f"inputs file not found: {ipath}")
        if ipath.suffix not in (".npy", ".npz"):
            raise inputs_r.error("file", f"inputs file must be .npy or .npz: {ipath}")
        problem = _array_file_problem(ipath)
        if problem:
            raise inputs_r.error("file", f"{ipath}: {problem}")
        inputs["file"] = str(ipath)
        inputs["file_sha256"] = file_sha256(ipath)
    inputs_r.done()
    evaluation = _eval(r.table("eval"), base)
    spec = ModelSpec(
        name=name,
        path=path,
        sha256=sha,
        tags={k: str(v) for k, v in tags.items()},
        backends=backends,
        inputs=inputs,
        eval=evaluation,
    )
    r.done()
    return spec


_LAYOUTS = ("NHWC", "NCHW")
_EVAL_DTYPES = ("float32", "float16", "uint8", "int8")


def _eval(e: TableReader, base: Path) -> dict[str, Any]:
    """``[models.eval]``: an evaluation set for the accuracy phase (see docs/analysis.md).

    Either ``data`` (an .npz with arrays ``x`` and ``y``, names changeable with ``x`` / ``y``)
    or ``images`` (a folder) + ``labels`` (one ``file label`` or ``label`` line per image)
    with a declared preprocessing, which the host applies once into a cached .npz.
    The result always names the .npz to ship (``path``) and its ``sha256``."""
    if not e.data:
        return {}
    data = e.get("data", str, None)
    images = e.get("images", str, None)
    if (data is None) == (images is None):
        raise e.error("data", "give either data (an .npz) or images (a folder) with labels")
    out: dict[str, Any] = {}
    limit = e.get("limit", int, None)
    if limit is not None and limit < 1:
        raise e.error("limit", "must be >= 1")
    top_k = e.get("top_k", int, 5)
    if top_k < 1:
        raise e.error("top_k", "must be >= 1")
    scorer = e.get("scorer", str, None)
    if scorer is not None and (":" not in scorer or not all(scorer.partition(":")[::2])):
        raise e.error("scorer", f"expected \"module:function\", got {scorer!r}")
    reference = e.get("reference", str, None)
    keep = e.get("keep_outputs", bool, True)
    pre = {
        "resize": e.get("resize", list, None),
        "layout": e.get("layout", str, "NHWC", choices=_LAYOUTS),
        "mean": e.get("mean", (list, int, float), None),
        "std": e.get("std", (list, int, float), None),
        "scale": e.get("scale", (int, float), None),
        "dtype": e.get("dtype", str, "float32", choices=_EVAL_DTYPES),
        "color": e.get("color", str, "RGB", choices=("RGB", "L", "BGR")),
        "quantization": e.get("quantization", list, None),
    }
    labels_text = e.get("labels", str, None)
    x_name = e.get("x", str, "x")
    y_name = e.get("y", str, "y")
    if data is not None:
        dpath = (base / data).resolve()
        if not dpath.is_file():
            raise e.error("data", f"evaluation file not found: {dpath}")
        if dpath.suffix != ".npz":
            raise e.error("data", f"evaluation data must be an .npz with arrays {x_name} and {y_name}: {dpath}")
        given = [k for k in ("resize", "mean", "std", "scale", "quantization") if pre[k] is not None]
        if given or labels_text is not None:
            raise e.error(given[0] if given else "labels", "preprocessing and labels apply to images = ...; "
                          "an .npz holds the model's input already")
        problem = _array_file_problem(dpath, (x_name, y_name))
        if problem:
            raise e.error("data", f"{dpath}: {problem}")
        out["path"] = str(dpath)
    else:
        if labels_text is None:
            raise e.error("labels", "images need a labels file")
        folder = (base / str(images)).resolve()
        labels = (base / labels_text).resolve()
        if not folder.is_dir():
            raise e.error("images", f"image folder not found: {folder}")
        if not labels.is_file():
            raise e.error("labels", f"labels file not found: {labels}")
        if pre["resize"] is not None and not (len(pre["resize"]) == 2 and all(
                isinstance(v, int) and v > 0 for v in pre["resize"])):
            raise e.error("resize", "expected [height, width]")
        if pre["quantization"] is not None and not (len(pre["quantization"]) == 2 and all(
                isinstance(v, (int, float)) for v in pre["quantization"])):
            raise e.error("quantization", "expected [scale, zero_point]")
        from harness.prep.evalsets import pack_images  # numpy and Pillow: only for a plan that packs images

        try:
            packed = pack_images(folder, labels, pre, limit=limit)
        except ValueError as exc:  # its message names the file: the labels file, an image or the folder
            raise e.error("labels" if str(exc).startswith(f"{labels}:") else "images", str(exc)) from exc
        out["path"] = str(packed)
        out["images"] = str(folder)
        out["preprocess"] = {k: v for k, v in pre.items() if v is not None}
        x_name, y_name = "x", "y"
    e.done()
    out["sha256"] = file_sha256(Path(out["path"]))
    out.update(x=x_name, y=y_name, top_k=top_k, keep_outputs=keep)
    if limit is not None:
        out["limit"] = limit
    if scorer is not None:
        out["scorer"] = scorer
    if reference is not None:
        out["reference"] = reference
    return out


def _array_file_problem(path: Path, arrays: tuple[str, ...] = ()) -> str | None:
    """Why ``path`` is not the NumPy file its suffix says (``.npy``: an array; ``.npz``: an archive holding
    ``arrays``), read from its header and index, not its data; None when it is."""
    import zipfile

    import numpy as np

    try:
        with path.open("rb") as f:
            head = f.read(6)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if path.suffix.lower() == ".npy":
        return None if head == b"\x93NUMPY" else "not a NumPy .npy file (no NUMPY header)"
    if head == b"\x93NUMPY":
        return "not an .npz archive (a single .npy array)"
    if not head.startswith(b"PK"):
        return "not an .npz archive (not a zip file)"
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [a for a in arrays if a not in data.files]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        return f"not an .npz archive ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if missing:
        return f"has no array {missing[0]!r} (its arrays: {', '.join(data.files) or 'none'})"
    return None


def _onnx_input_names(path: Path) -> list[str] | None:
    """The input names of an ONNX model (its graph's inputs that are not initializers), read with the ``onnx``
    package where it is installed; None for another format, without ``onnx``, or for a file it cannot parse
    (the agent checks the names on the device either way: hilbench_agent.backends.base.check_shape_names)."""
    if path.suffix.lower() != ".onnx":
        return None
    try:
        import onnx
    except ImportError:
        return None
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - not parsed here: the device says what is wrong with it
        return None
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]


def _check_model_file(path: Path, r: TableReader) -> None:
    if not path.exists():
        raise r.error("path", f"model file not found: {path}")
    if path.is_dir():
        if path.suffix == ".mlpackage":
            return
        raise r.error("path", f"model path is a folder, not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise r.error("path", f"model file is empty: {path}")
    suffix = path.suffix.lower()
    known = {s for suffixes in MODEL_SUFFIXES.values() if suffixes for s in suffixes}
    if suffix not in known:
        raise r.error("path", f"{path.name}: unknown model format {suffix or '(no suffix)'} (known: {', '.join(sorted(known))})")
    with path.open("rb") as f:
        head = f.read(8)
    if suffix == ".tflite" and (len(head) < 8 or head[4:8] != b"TFL3"):
        raise r.error("path", f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    if suffix in (".pt", ".pt2") and head[:4] != b"PK\x03\x04":
        # torch.jit.save and torch.export.save both write zip archives.
        raise r.error("path", f"{path}: not a PyTorch archive (a TorchScript or exported-program file is a zip)")
    if suffix == ".onnx" and head[:1] != b"\x08":
        # ONNX ModelProto files start with field 1 (ir_version) as a varint.
        raise r.error("path", f"{path}: does not look like an ONNX model (no ir_version at the start)")


def _settings_matrix(backend: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Every list-valued setting is an axis; a setting whose own value is a list
    (``providers``) is an axis only when given as a list of lists."""
    schema = SETTINGS[backend]
    axes: list[list[tuple[str, Any]]] = []
    for key, value in sorted(settings.items()):
        native_list = key in schema and list in schema[key].types
        if isinstance(value, list) and (not native_list or (value and all(isinstance(v, list) for v in value))):
            axes.append([(key, v) for v in value])
        else:
            axes.append([(key, value)])
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file. Paths in it are relative to the file."""
    path = path.resolve()
    data = load_toml(path)
    r = TableReader(data, path)
    base = path.parent
    name = r.get("name", str, path.stem)
    description = r.get("description", str, "")
    models_raw = r.get("models", list)
    if not models_raw:
        raise r.error("models", "the plan names no models")
    models = tuple(_model(m, path, i, base) for i, m in enumerate(models_raw))
    names = [m.name for m in models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise r.error("models", f"model name {dupes[0]!r} is used twice: give each a distinct name")
    for i, m in enumerate(models):
        ref = m.eval.get("reference")
        if ref is not None and ref not in names:
            raise ConfigError(f"{path}: models[{i}].eval.reference: no model named {ref!r} in this plan")
    targets = tuple(r.str_list("targets", ["local"]))
    backends_r = r.table("backends")
    backends: dict[str, dict[str, Any]] = {}
    for bname in list(backends_r.data):
        settings = backends_r.get(bname, dict)
        canonical = canonical_name(bname)
        if canonical not in SETTINGS:
            raise backends_r.error(bname, f"unknown backend (known: {', '.join(sorted(SETTINGS))})")
        for combo in _settings_matrix(canonical, settings):
            problems = validate_settings(canonical, combo)
            if problems:
                raise backends_r.error(bname, problems[0])
        backends[canonical] = settings
    backends_r.done()
    policy = _policy(r.table("policy"))
    include = tuple(_rule(x, path, f"include[{i}]") for i, x in enumerate(r.get("include", list, [])))
    exclude = tuple(_rule(x, path, f"exclude[{i}]") for i, x in enumerate(r.get("exclude", list, [])))
    r.done()
    return Plan(
        name=name,
        path=path,
        description=description,
        models=models,
        targets=targets,
        backends=backends,
        policy=policy,
        include=include,
        exclude=exclude,
        raw_text=path.read_text(encoding="utf-8"),
    )


_RULE_KEYS = {"model", "target", "backend"}


def _rule(data: Any, file: Path, where: str) -> dict[str, Any]:
    r = TableReader(data, file, where + ".")
    rule = r.rest()
    if not rule:
        raise ConfigError(f"{file}: {where}: an empty rule matches everything; name model, target, backend or settings")
    known_settings = {k for schema in SETTINGS.values() for k in schema}
    for key in rule:
        if key not in _RULE_KEYS and key not in known_settings and not key.startswith("tags."):
            raise ConfigError(
                f"{file}: {where}.{key}: unknown key (use model, target, backend, tags.NAME or a backend setting)"
            )
    return rule


def _matches(rule: dict[str, Any], model: ModelSpec, target: str, backend: str, settings: dict[str, Any]) -> bool:
    for key, want in rule.items():
        if key == "model":
            have: Any = model.name
        elif key == "target":
            have = target
        elif key == "backend":
            have, want = backend, canonical_name(str(want))
        elif key.startswith("tags."):
            have = model.tags.get(key[5:])
        else:
            if key not in settings:
                return False
            have = settings[key]
        if isinstance(want, str) and isinstance(have, str):
            if not fnmatch.fnmatchcase(have, want):
                return False
        elif have != want:
            return False
    return True


def _opens(backend: str, model: ModelSpec) -> bool:
    suffixes = MODEL_SUFFIXES.get(backend)
    if suffixes is None:  # the synthetic stand-in needs no model file
        return True
    return model.path is not None and model.path.suffix.lower() in suffixes


def _backends_for(model: ModelSpec, plan_backends: dict[str, dict[str, Any]]) -> list[str]:
    """The model's own ``backends``; else the plan's backends that open its format; else the
    format's default backend."""
    if model.backends:
        return [b for b in model.backends if _opens(b, model)]
    configured = [b for b in plan_backends if b != "synthetic" and _opens(b, model)]
    if configured:
        return configured
    default = DEFAULT_BACKEND.get(model.path.suffix.lower()) if model.path else None
    return [default] if default else []


def expand_jobs(plan: Plan, targets: dict[str, Target], only_targets: list[Target] | None = None) -> list[Job]:
    """The job matrix of ``plan`` on ``targets`` (or on ``only_targets`` when given)."""
    if only_targets:
        chosen = list(only_targets)
    else:
        chosen = []
        for name in plan.targets:
            if name not in targets:
                raise ConfigError(
                    f"{plan.path}: targets: unknown target {name!r} (known: {', '.join(sorted(targets))})"
                )
            chosen.append(targets[name])
    jobs: list[Job] = []
    seen: set[str] = set()

    def add(job: Job) -> None:
        if job.key not in seen:
            seen.add(job.key)
            jobs.append(job)

    for model in plan.models:
        for target in chosen:
            for backend in _backends_for(model, plan.backends):
                for settings in _settings_matrix(backend, plan.backends.get(backend, {})):
                    if any(_matches(rule, model, target.name, backend, settings) for rule in plan.exclude):
                        continue
                    add(Job(plan.name, model, target, backend, settings, plan.policy))
    for i, rule in enumerate(plan.include):
        model_names = [m for m in plan.models if fnmatch.fnmatchcase(m.name, str(rule.get("model", "*")))]
        target_list = [t for t in chosen if fnmatch.fnmatchcase(t.name, str(rule.get("target", "*")))]
        backend = canonical_name(str(rule.get("backend", "")))
        if not model_names or not target_list or not backend:
            raise ConfigError(f"{plan.path}: include[{i}]: an include rule needs a model, a backend and a known target")
        settings = {k: v for k, v in rule.items() if k not in _RULE_KEYS and not k.startswith("tags.")}
        problems = validate_settings(backend, settings)
        if problems:
            raise ConfigError(f"{plan.path}: include[{i}]: {problems[0]}")
        for model in model_names:
            for target in target_list:
                add(Job(plan.name, model, target, backend, settings, plan.policy))
    if not jobs:
        raise ConfigError(f"{plan.path}: the plan expands to no jobs (check backends, model formats and exclude rules)")
    _check_models_backends_refuse(plan, jobs)
    _check_edgetpu(plan, jobs)
    return interleave(jobs, plan.policy.processes)


def interleave(jobs: list[Job], processes: int) -> list[Job]:
    """Each job as ``processes`` jobs, one per agent process, round robin across the configurations (A1 B1 C1 A2 B2
    C2 ...): a slow spell of the device then touches every configuration alike instead of one. One process: as is."""
    if processes <= 1:
        return jobs
    return [replace(job, process=p) for p in range(1, processes + 1) for job in jobs]


def _check_edgetpu(plan: Plan, jobs: list[Job]) -> None:
    """The Edge TPU rules before anything is shipped (the agent applies them again): a model compiled for the Edge
    TPU needs its delegate; the Edge TPU delegate on a model never compiled is refused unless the job says
    ``allow_cpu_fallback = true``. Compiled or not is read with the TFLite schema (``hilbench inspect``)."""
    from hilbench_agent import edgetpu

    from harness.errors import ModelError
    from harness.prep.inspect import EDGETPU_CUSTOM_OP, tflite_ops

    compiled: dict[Path, bool] = {}
    for job in jobs:
        path = job.model.path
        if job.backend != "litert" or path is None or path.suffix.lower() != ".tflite":
            continue
        if path not in compiled:
            # Without the op's name anywhere in the file it has no such op (a quick scan, no LiteRT import); with
            # it, the flatbuffer says whether it is an operator (not, say, a word in the metadata).
            compiled[path] = edgetpu.is_compiled(str(path))
            if compiled[path]:
                with contextlib.suppress(ModelError):  # no schema bindings on this host: the scan decides
                    compiled[path] = EDGETPU_CUSTOM_OP in tflite_ops(path)
        problem = edgetpu.refusal(path.name, compiled[path], job.settings.get("delegate"),
                                  bool(job.settings.get("allow_cpu_fallback")))
        if problem:
            raise ConfigError(f"{plan.path}: model {job.model.name!r} on {job.target.name}: {problem}")


def _check_models_backends_refuse(plan: Plan, jobs: list[Job]) -> None:
    """A model a job's backend is known to refuse is an error before anything runs: asymmetric INT8 (a Q/DQ zero
    point other than 0) for TensorRT, which takes symmetric quantization only. Read with ``onnx`` where the host
    has it; else the device's TensorRT says it, as a stored model error."""
    from hilbench_agent.backends.tensorrt import asymmetric_zero_points

    checked: set[Path] = set()
    for job in jobs:
        path = job.model.path
        if job.backend != "tensorrt" or path is None or path.suffix.lower() != ".onnx" or path in checked:
            continue
        checked.add(path)
        try:
            bad = asymmetric_zero_points(str(path))
        except Exception:  # onnx cannot read it: the device's parser says why
            continue
        if bad:
            raise ConfigError(
                f"{plan.path}: model {job.model.name!r} ({path.name}) has asymmetric INT8 quantization ({len(bad)} "
                f"Q/DQ node(s) with a zero point other than 0, e.g. {bad[0]!r}), which TensorRT refuses: quantize it "
                "symmetrically (`hilbench variants MODEL.onnx --calibration DATA.npz --for tensorrt`), or "
                "leave tensorrt out for it (backends = [...] in its [[models]] table)")
