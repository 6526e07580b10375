"""One validation step for every protocol message from a device (docs/protocol.md, "Limits").

A device is not trusted: :class:`MessageChecker` checks each decoded message's fields (types, ranges,
list lengths, nesting, string lengths) against limits derived from the job's plan (:class:`Limits`) and
returns the message in the form the session stores (sample arrays as int64, strings cut to their
caps). Anything invalid raises :class:`harness.errors.MessageError` with one line naming the field
(``phase message: duration_ns missing``); the session ends that job as an ``agent`` error and goes on.

The normal path stays cheap: a batch of 5,000 samples is converted at C speed (``array('q')``, which
refuses non-integers and integers beyond int64) and checked with numpy.
"""

from __future__ import annotations

import math
import zipfile
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.agent.offload import OffloadError
from harness.agent.offload import normalize as normalize_offload
from harness.agent.protocol import MAX_DEPTH
from harness.errors import ERROR_CATEGORIES, MessageError

__all__ = ["Limits", "MessageChecker", "sanitize_hello", "phase_sample_cap", "MAX_OUTPUT_VALUES", "ITEM_OUTPUT_VALUES", "INT64_MIN", "INT64_MAX", "SAMPLE_PHASES", "PHASES"]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

#: Phases the agent (and the Android runner driver) report.
PHASES = frozenset({"load", "first", "warmup", "timed", "sustained", "accuracy", "cooldown", "idle", "runner"})
#: Phases that send ``sample`` messages.
SAMPLE_PHASES = ("warmup", "timed", "sustained")

#: Any string inside a message kept as JSON (hello, result, phase): longer ones are cut to this.
MAX_STRING = 4096
#: Free text stored in a column: the error message.
MAX_TEXT = 2000
#: Names: sensor, unit and source of a reading (longer is refused), hello fields and stop reasons stored
#: in columns (longer is cut).
MAX_NAME = 256
#: Values (scalars, objects, arrays) in one hello, result, phase or error message.
MAX_NODES = 100_000
#: No loop measures faster than this: the agent's own loop (two clock reads and two appends around the
#: invoke) takes more than 100 ns an iteration; the synthetic stand-in does ~3 M/s on a fast x86 host.
MAX_SAMPLES_PER_S = 10_000_000
#: The most samples one phase may send whatever the plan says (the agent's own largest default,
#: a sustained phase's max_count); 16 bytes each on the host.
MAX_PHASE_SAMPLES = 10_000_000
#: Telemetry readings per job: the plan's bound (timeout x rate x 128 sensors), never more than this.
MAX_TELEMETRY_READINGS = 1_000_000
MIN_TELEMETRY_READINGS = 10_000
TELEMETRY_SENSORS = 128
#: Distinct sensor, unit and source names per job (a device has tens).
MAX_TELEMETRY_NAMES = 4096
#: Accuracy items per job when the evaluation file cannot say how many it holds.
MAX_ACCURACY_ITEMS = 100_000
#: Output values (floats) kept per job: 10,000 items of 1,000 classes is 10 M (float32 on the host).
MAX_OUTPUT_VALUES = 16_000_000
#: The agent sends no output vector for an item with more values than this (hilbench_agent.accuracy.ITEM_VALUES).
ITEM_OUTPUT_VALUES = 500_000
#: ``lock`` messages per job: the agent sends one when it finds the device busy, one each time the holder
#: changes (at most one a tick of 2 s) and one when it gets the lock; the plan's wait allows one a second.
MIN_LOCK_MESSAGES = 100
MAX_LOCK_MESSAGES = 100_000
#: Values in a ``lock`` message's owner record (the agent's has about ten).
MAX_LOCK_RECORD_VALUES = 64


def _loop_cap(policy: Mapping[str, Any], *, default_max_count: int, counted: bool) -> int:
    """The most iterations a loop with ``policy`` (count, min_s, max_s, max_count) can make, as the
    agent runs it (device_agents/hilbench_agent/main.py). ``counted``: the count alone ends the loop
    (no min_s, not until-stable, not adaptive)."""
    cap = int(policy.get("max_count") or default_max_count)
    if counted:
        cap = min(cap, max(int(policy.get("count") or 0), 1))
    max_s = policy.get("max_s")
    if max_s:
        cap = min(cap, int(float(max_s) * MAX_SAMPLES_PER_S) + 1)
    return max(0, min(cap, MAX_PHASE_SAMPLES))


def phase_sample_cap(phase: str, warmup: Mapping[str, Any], timed: Mapping[str, Any],
                     sustained: Mapping[str, Any] | None) -> int:
    """The most samples ``phase`` of a job with these policies can send."""
    if phase == "warmup":
        w = warmup or {}
        stable = bool(w.get("until_stable"))
        count = int(w.get("count") or 0)
        if count == 0 and not w.get("min_s") and not stable:
            return 0
        return _loop_cap(w, default_max_count=1000 if stable else max(count, 1_000_000),
                         counted=not w.get("min_s") and not stable)
    if phase == "timed":
        t = timed or {}
        if t.get("precision"):
            default = max(int(t.get("min_count") or 1), int(t.get("max_count") or 1_000_000))
            return _loop_cap(dict(t, max_count=default, count=None), default_max_count=default, counted=False)
        return _loop_cap(t, default_max_count=1_000_000, counted=not t.get("min_s"))
    if phase == "sustained":
        if not sustained:
            return 0
        duration = float(sustained.get("duration_s") or 60.0)
        return _loop_cap({"max_s": duration, "max_count": sustained.get("max_count")}, default_max_count=10_000_000,
                         counted=False)
    return 0


def _eval_items(evaluation: Mapping[str, Any]) -> int:
    """How many items the job's evaluation set holds (its ``limit``, else the .npz array's length read from
    its header), or :data:`MAX_ACCURACY_ITEMS` when the file cannot say."""
    limit = evaluation.get("limit")
    items = None
    try:
        with zipfile.ZipFile(str(evaluation["path"])) as z, z.open(f"{evaluation.get('x') or 'x'}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = read(f)[0]
            items = int(shape[0]) if shape else 1
    except Exception:  # noqa: BLE001 - any unreadable file: the ceiling applies
        items = None
    if items is None:
        items = MAX_ACCURACY_ITEMS
    return min(items, int(limit)) if limit else items


@dataclass(frozen=True)
class Limits:
    """What one job may send, derived from its plan."""

    samples: Mapping[str, int]
    telemetry_readings: int = MAX_TELEMETRY_READINGS
    accuracy_items: int = MAX_ACCURACY_ITEMS
    top_k: int = 1000
    output_values: int = MAX_OUTPUT_VALUES
    lock_messages: int = MAX_LOCK_MESSAGES

    @classmethod
    def default(cls) -> Limits:
        """The ceilings, for a message with no plan (tests, fuzzing)."""
        return cls(samples={p: MAX_PHASE_SAMPLES for p in SAMPLE_PHASES})

    @classmethod
    def for_job(cls, job: Any) -> Limits:
        """The limits of ``job`` (a :class:`harness.config.plan.Job`)."""
        policy = job.policy
        samples = {p: phase_sample_cap(p, policy.warmup, policy.timed, policy.sustained) for p in SAMPLE_PHASES}
        tel = job.target.telemetry or {}
        rate = float(tel.get("rate_hz") or policy.telemetry_rate_hz or 10.0)
        readings = int((float(policy.timeout_s) + 60.0) * max(rate, 1.0) * TELEMETRY_SENSORS)
        readings = max(MIN_TELEMETRY_READINGS, min(readings, MAX_TELEMETRY_READINGS))
        if not (policy.telemetry and tel.get("enabled", True)):
            readings = MIN_TELEMETRY_READINGS  # none asked for (a runner driver may still send its own)
        evaluation = job.model.eval or {}
        items = _eval_items(evaluation) if evaluation.get("path") else 0
        top_k = int(evaluation.get("top_k") or 5)
        wait_s = policy.lock_wait_s if policy.lock_wait_s is not None else policy.timeout_s
        locks = max(MIN_LOCK_MESSAGES, min(int(float(wait_s)) + MIN_LOCK_MESSAGES, MAX_LOCK_MESSAGES))
        return cls(samples=samples, telemetry_readings=readings, accuracy_items=items, top_k=top_k,
                   output_values=MAX_OUTPUT_VALUES, lock_messages=locks)


class _Walk:
    """A sanitised copy of a JSON value: depth, size, integer range, finite floats; long strings cut."""

    def __init__(self, what: str, max_string: int = MAX_STRING) -> None:
        self.what = what
        self.max_string = max_string
        self.nodes = 0

    def copy(self, value: Any, field: str, depth: int = 1) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise MessageError(f"{self.what}: more than {MAX_NODES} values")
        kind = type(value)
        if kind is str:
            return value if len(value) <= self.max_string else value[:self.max_string] + "..."
        if kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise MessageError(f"{self.what}: {field} is an integer beyond int64")
            return value
        if kind is float:
            if not math.isfinite(value):
                raise MessageError(f"{self.what}: {field} is not a finite number")
            return value
        if value is None or kind is bool:
            return value
        if depth >= MAX_DEPTH:
            raise MessageError(f"{self.what}: {field} is nested more than {MAX_DEPTH} deep")
        if kind is list:
            return [self.copy(v, field, depth + 1) for v in value]
        if kind is dict:
            out = {}
            for k, v in value.items():
                if len(k) > MAX_NAME:
                    raise MessageError(f"{self.what}: {field} has a key longer than {MAX_NAME} characters")
                out[k] = self.copy(v, f"{field}.{k}" if field else k, depth + 1)
            return out
        raise MessageError(f"{self.what}: {field} has a value of type {kind.__name__}")


def _int(msg: Mapping[str, Any], key: str, what: str, *, required: bool = False, minimum: int | None = 0) -> int | None:
    value = msg.get(key)
    if value is None:
        if required:
            raise MessageError(f"{what}: {key} missing")
        return None
    if type(value) is not int:
        raise MessageError(f"{what}: {key} must be an integer, not {type(value).__name__}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise MessageError(f"{what}: {key} is an integer beyond int64")
    if minimum is not None and value < minimum:
        raise MessageError(f"{what}: {key} must be >= {minimum}")
    return value


def _number(msg: Mapping[str, Any], key: str, what: str) -> float | None:
    value = msg.get(key)
    if value is None:
        return None
    if type(value) not in (int, float):
        raise MessageError(f"{what}: {key} must be a number, not {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:
        raise MessageError(f"{what}: {key} is not a finite number") from None
    if not math.isfinite(out):
        raise MessageError(f"{what}: {key} is not a finite number")
    return out


def _str(msg: Mapping[str, Any], key: str, what: str, cap: int) -> str | None:
    """A string field cut to ``cap`` characters (None stays None)."""
    value = msg.get(key)
    if value is None:
        return None
    if type(value) is not str:
        raise MessageError(f"{what}: {key} must be a string, not {type(value).__name__}")
    return value if len(value) <= cap else value[:cap] + "..."


def _obj(msg: Mapping[str, Any], key: str, what: str) -> dict[str, Any] | None:
    value = msg.get(key)
    if value is None:
        return None
    if type(value) is not dict:
        raise MessageError(f"{what}: {key} must be an object, not {type(value).__name__}")
    return value


def _ints(value: Any, key: str, what: str) -> np.ndarray:
    """A JSON array of integers as int64 (C speed); refuses anything else."""
    if type(value) is not list:
        raise MessageError(f"{what}: {key} must be a list of integers, not {type(value).__name__}")
    try:
        return np.frombuffer(array("q", value), dtype=np.int64)
    except OverflowError:
        raise MessageError(f"{what}: {key} holds an integer beyond int64") from None
    except TypeError:
        raise MessageError(f"{what}: {key} must be a list of integers") from None


def _floats(value: Any, key: str, what: str) -> np.ndarray:
    """A JSON array of finite numbers as float64; refuses anything else."""
    if type(value) is not list:
        raise MessageError(f"{what}: {key} must be a list of numbers, not {type(value).__name__}")
    try:
        out = np.frombuffer(array("d", value), dtype=np.float64)
    except (OverflowError, TypeError):
        raise MessageError(f"{what}: {key} must be a list of finite numbers") from None
    if out.size and not np.isfinite(out).all():
        raise MessageError(f"{what}: {key} must be a list of finite numbers")
    return out


#: The hello's free-text fields, stored cut to :data:`MAX_NAME` characters.
HELLO_TEXT = ("agent_version", "python", "os", "os_release", "machine", "cpu_model", "device_model", "emulated")


def sanitize_hello(msg: Mapping[str, Any]) -> dict[str, Any]:
    """A hello made safe to keep without judging its fields' types: nesting, value count, integers within
    int64, finite floats, strings cut (:data:`HELLO_TEXT` to :data:`MAX_NAME`). Doctor reads a probe's hello
    this way and names wrong types itself (``harness.doctor.checks.clean_hello``); raises MessageError."""
    out: dict[str, Any] = _Walk("hello message").copy(msg, "")
    for key in HELLO_TEXT:
        value = out.get(key)
        if isinstance(value, str) and len(value) > MAX_NAME:
            out[key] = value[:MAX_NAME] + "..."
    return out


class MessageChecker:
    """Checks one job's messages in order (it counts what came: samples per phase, readings, items).

    :meth:`check` returns the message as the session stores it, or raises :class:`MessageError`.
    Sample messages come back with ``latency_ns`` and ``t_ns_each`` (int64 arrays, t0_ns + offset_ns);
    telemetry with ``readings`` as five columns; accuracy with checked columns and float32 outputs."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits.default()
        self.samples = dict.fromkeys(SAMPLE_PHASES, 0)
        self.readings = 0
        self.names: dict[str, str] = {}
        self.items = 0
        self.outputs = 0
        #: items whose output vector was not kept: the job's outputs passed :attr:`Limits.output_values`
        self.outputs_dropped = 0
        #: the device lock: None (no ``lock`` message yet), "wait" (the agent waits for it) or "acquired"
        self.lock: str | None = None
        self.lock_messages = 0
        #: a phase, sample, accuracy or result message came (the measurement began: no lock message after it)
        self.measuring = False

    def check(self, msg: dict[str, Any]) -> dict[str, Any]:
        kind = msg.get("type")
        if kind in ("sample", "phase", "accuracy", "result"):
            if self.lock == "wait":
                raise MessageError(f"{kind} message while the agent waits for the device lock (no measuring then)")
            self.measuring = True
        if kind == "lock":
            return self._lock(msg)
        if kind == "sample":
            return self._sample(msg)
        if kind == "telemetry":
            return self._telemetry(msg)
        if kind == "phase":
            return self._phase(msg)
        if kind == "accuracy":
            return self._accuracy(msg)
        if kind == "hello":
            return self._hello(msg)
        if kind == "result":
            return self._result(msg)
        if kind == "error":
            return self._error(msg)
        if kind == "log":
            return {"type": "log"}  # not stored, not shown
        raise MessageError(f"unknown message type {str(kind)[:40]!r}")

    # -- bulk messages ---------------------------------------------------------------------------------
    def _sample(self, msg: dict[str, Any]) -> dict[str, Any]:
        what = "sample message"
        phase = msg.get("phase")
        if phase is None:
            raise MessageError(f"{what}: phase missing")
        if type(phase) is not str or phase not in SAMPLE_PHASES:
            raise MessageError(f"{what}: unknown phase {str(phase)[:40]!r}")
        start = _int(msg, "start", what, required=True)
        t0 = _int(msg, "t0_ns", what, required=True, minimum=None)
        assert start is not None and t0 is not None
        if "latency_ns" not in msg:
            raise MessageError(f"{what}: latency_ns missing")
        lat = _ints(msg["latency_ns"], "latency_ns", what)
        n = len(lat)
        if msg.get("offset_ns") is None:
            offsets = np.zeros(n, dtype=np.int64)
        else:
            offsets = _ints(msg["offset_ns"], "offset_ns", what)
            if len(offsets) != n:
                raise MessageError(f"{what}: offset_ns has {len(offsets)} values, latency_ns {n}")
        had = self.samples[phase]
        if start != had:
            raise MessageError(f"{what}: start is {start}, expected {had} (the {phase} samples sent so far)")
        cap = self.limits.samples.get(phase, 0)
        if had + n > cap:
            raise MessageError(f"{what}: more {phase} samples than the plan allows ({cap})")
        gpu = None
        if msg.get("gpu_ns") is not None:
            gpu = _ints(msg["gpu_ns"], "gpu_ns", what)
            if len(gpu) != n:
                raise MessageError(f"{what}: gpu_ns has {len(gpu)} values, latency_ns {n}")
        if n:
            if int(lat.min()) < 0:
                raise MessageError(f"{what}: latency_ns holds a negative latency")
            if t0 + int(offsets.min()) < INT64_MIN or t0 + int(offsets.max()) > INT64_MAX:
                raise MessageError(f"{what}: t0_ns + offset_ns is beyond int64")
            if gpu is not None:
                # The agent clamps each GPU time to its host latency (the events lie inside the timed call):
                # one that is negative or longer than its latency is a broken agent, and the batch is refused.
                if int(gpu.min()) < 0:
                    raise MessageError(f"{what}: gpu_ns holds a negative time")
                if bool((gpu > lat).any()):
                    raise MessageError(f"{what}: gpu_ns holds a GPU time longer than its host latency")
        self.samples[phase] = had + n
        out = {"type": "sample", "phase": phase, "start": start, "latency_ns": lat, "t_ns_each": offsets + t0}
        if gpu is not None:
            out["gpu_ns"] = gpu
        return out

    def _name(self, reading: Mapping[str, Any], key: str, what: str, *, required: bool = False) -> str | None:
        value = reading.get(key)
        if value is None:
            if required:
                raise MessageError(f"{what}: {key} missing")
            return None
        if type(value) is not str:
            raise MessageError(f"{what}: {key} must be a string, not {type(value).__name__}")
        if len(value) > MAX_NAME:
            raise MessageError(f"{what}: {key} is longer than {MAX_NAME} characters")
        known = self.names.get(value)
        if known is None:
            if len(self.names) >= MAX_TELEMETRY_NAMES:
                raise MessageError(f"{what}: more than {MAX_TELEMETRY_NAMES} distinct sensor, unit and source names")
            self.names[value] = known = value
        return known

    def _telemetry(self, msg: dict[str, Any]) -> dict[str, Any]:
        what = "telemetry message"
        readings = msg.get("readings")
        if readings is None:
            readings = []
        if type(readings) is not list:
            raise MessageError(f"{what}: readings must be a list, not {type(readings).__name__}")
        if self.readings + len(readings) > self.limits.telemetry_readings:
            raise MessageError(f"{what}: more telemetry readings than the plan allows ({self.limits.telemetry_readings})")
        t_ns: list[int] = []
        sensor: list[str | None] = []
        value: list[float] = []
        unit: list[str | None] = []
        source: list[str | None] = []
        for i, r in enumerate(readings):
            where = f"{what}: readings[{i}]"
            if type(r) is not dict:
                raise MessageError(f"{where} must be an object, not {type(r).__name__}")
            t = _int(r, "t_ns", where, required=True, minimum=None)
            assert t is not None
            v = _number(r, "value", where)
            t_ns.append(t)
            sensor.append(self._name(r, "sensor", where, required=True))
            value.append(math.nan if v is None else v)
            unit.append(self._name(r, "unit", where))
            source.append(self._name(r, "source", where))
        self.readings += len(readings)
        return {"type": "telemetry", "t_ns": t_ns, "sensor": sensor, "value": value, "unit": unit, "source": source}

    def _accuracy(self, msg: dict[str, Any]) -> dict[str, Any]:
        what = "accuracy message"
        if "index" not in msg:
            raise MessageError(f"{what}: index missing")
        index = _ints(msg["index"], "index", what)
        n = len(index)
        if n and int(index.min()) < 0:
            raise MessageError(f"{what}: index holds a negative item")
        if self.items + n > self.limits.accuracy_items:
            raise MessageError(f"{what}: more items than the evaluation set holds ({self.limits.accuracy_items})")

        def column(key: str) -> list[Any]:
            value = msg.get(key)
            if value is None:
                return [None] * n
            if type(value) is not list:
                raise MessageError(f"{what}: {key} must be a list, not {type(value).__name__}")
            if len(value) != n:
                raise MessageError(f"{what}: {key} has {len(value)} values, index {n}")
            return value

        labels = column("label")
        for v in labels:
            if v is not None and (type(v) is not int or not INT64_MIN <= v <= INT64_MAX):
                raise MessageError(f"{what}: label must hold integers within int64 or null")
        scores = column("score")
        for v in scores:
            if v is not None and (type(v) not in (int, float) or not math.isfinite(float(v))):
                raise MessageError(f"{what}: score must hold finite numbers or null")
        tops: list[list[int]] = []
        for t in column("top"):
            if t is None:
                tops.append([])
                continue
            if type(t) is not list or len(t) > self.limits.top_k:
                raise MessageError(f"{what}: top must hold lists of at most {self.limits.top_k} classes")
            _ints(t, "top", what)
            tops.append([int(c) for c in t])
        outputs: list[np.ndarray | None] = []
        count = 0
        for o in column("output"):
            if o is None:
                outputs.append(None)
                continue
            arr = _floats(o, "output", what)
            if self.outputs + count + arr.size > self.limits.output_values:
                # A big evaluation set (50,000 items x 1,000 classes) is legitimate: keep its top-k and score,
                # drop the vectors beyond what the host keeps, and say so (the run stays ok).
                self.outputs_dropped += 1
                outputs.append(None)
                continue
            count += arr.size
            outputs.append(arr.astype(np.float32))
        self.items += n
        self.outputs += count
        return {"type": "accuracy", "index": index.tolist(), "label": labels, "top": tops,
                "score": [None if v is None else float(v) for v in scores], "output": outputs}

    # -- small messages: copied, checked and cut ------------------------------------------------------------
    def _lock(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The device lock (docs/protocol.md): ``wait`` (the device is busy: ``holder``, ``held_s``) and then
        ``acquired`` (``waited_ns``, ``waited_for``), each before the measurement begins; the owner records
        are walked like any JSON kept (strings cut to :data:`MAX_NAME`, at most
        :data:`MAX_LOCK_RECORD_VALUES` values)."""
        what = "lock message"
        self.lock_messages += 1
        if self.lock_messages > self.limits.lock_messages:
            raise MessageError(f"{what}: more lock messages than the plan's wait allows ({self.limits.lock_messages})")
        event = msg.get("event")
        if event not in ("wait", "acquired"):
            raise MessageError(f"{what}: event must be wait or acquired, not {str(event)[:40]!r}")
        if self.lock == "acquired" or self.measuring:
            raise MessageError(f"{what}: {event} after the device lock was acquired or the measurement began")
        waited = _int(msg, "waited_ns", what, required=True)
        out: dict[str, Any] = {"type": "lock", "event": event, "waited_ns": waited,
                               "t_ns": _int(msg, "t_ns", what, minimum=None),
                               "path": _str(msg, "path", what, MAX_STRING)}
        key = "holder" if event == "wait" else "waited_for"
        record = _obj(msg, key, what)
        if record is not None:
            walk = _Walk(f"{what}: {key}", max_string=MAX_NAME)
            record = walk.copy(record, key)
            if walk.nodes > MAX_LOCK_RECORD_VALUES:
                raise MessageError(f"{what}: {key} has more than {MAX_LOCK_RECORD_VALUES} values")
        out[key] = record
        if event == "wait":
            out["held_s"] = _number(msg, "held_s", what)
            out["wait_s"] = _number(msg, "wait_s", what)
        self.lock = event
        return out

    def _phase(self, msg: dict[str, Any]) -> dict[str, Any]:
        what = "phase message"
        out = _Walk(what).copy(msg, "")
        phase = out.get("phase")
        if phase is None:
            raise MessageError(f"{what}: phase missing")
        if type(phase) is not str or phase not in PHASES:
            raise MessageError(f"{what}: unknown phase {str(phase)[:40]!r}")
        event = out.get("event")
        if event not in ("begin", "end"):
            raise MessageError(f"{what}: event must be begin or end, not {str(event)[:40]!r}")
        _int(out, "t_ns", what, minimum=None)
        _int(out, "duration_ns", what, required=phase == "first" and event == "end")
        _int(out, "build_ns", what)
        gpu = _int(out, "gpu_ns", what)
        if gpu is not None and gpu > (out.get("duration_ns") or 0):
            raise MessageError(f"{what}: gpu_ns is longer than duration_ns")
        _int(out, "count", what)
        if "build_cache" in out:
            out["build_cache"] = _str(out, "build_cache", what, MAX_NAME)
        if "stop_reason" in out:
            out["stop_reason"] = _str(out, "stop_reason", what, MAX_NAME)
        return out

    def _hello(self, msg: dict[str, Any]) -> dict[str, Any]:
        what = "hello message"
        out = _Walk(what).copy(msg, "")
        for key in HELLO_TEXT:
            if out.get(key) is not None:
                out[key] = _str(out, key, what, MAX_NAME)
        for key in ("backends", "sensors"):
            _obj(out, key, what)
        return out

    def _result(self, msg: dict[str, Any]) -> dict[str, Any]:
        what = "result message"
        out = _Walk(what).copy(msg, "")
        for key in ("load_ns", "first_ns", "first_gpu_ns"):
            _int(out, key, what)
        build = _obj(out, "build", what)
        if build is not None:
            _int(build, "duration_ns", f"{what}: build")
            if "cache" in build:
                build["cache"] = _str(build, "cache", f"{what}: build", MAX_NAME)
        for loop in ("warmup", "timed", "sustained"):
            info = _obj(out, loop, what)
            if info is None:
                continue
            where = f"{what}: {loop}"
            for key in ("count", "duration_ns", "deadline_misses", "dropped_frames"):
                _int(info, key, where)
            _int(info, "t0_ns", where, minimum=None)
            _number(info, "rate_hz", where)
            if "stop_reason" in info:
                info["stop_reason"] = _str(info, "stop_reason", where, MAX_NAME)
        _usage(out, what)
        idle = _obj(out, "idle", what)
        for key in ("t0_ns", "t1_ns"):
            _int(idle or {}, key, f"{what}: idle", minimum=None)
        for key in ("telemetry", "accuracy", "effective_settings"):
            _obj(out, key, what)
        if "runner" in out:
            out["runner"] = _str(out, "runner", what, MAX_NAME)
        if out.get("offload") is not None:
            # The offload verdict (harness/analysis/offload.py): types, counts, bounded names; checked, not trusted.
            _obj(out, "offload", what)
            try:
                out["offload"] = normalize_offload(out["offload"])
            except OffloadError as exc:
                raise MessageError(f"{what}: offload: {exc}") from None
        return out

    def _error(self, msg: dict[str, Any]) -> dict[str, Any]:
        what = "error message"
        category = msg.get("category")
        message = _str(msg, "message", what, MAX_TEXT)
        out: dict[str, Any] = {"type": "error",
                                "category": category if type(category) is str and category in ERROR_CATEGORIES else "agent",
                                "message": message or "unknown error"}
        if msg.get("offload") is not None:  # the verdict of a run require_offload failed
            _obj(msg, "offload", what)
            try:
                out["offload"] = normalize_offload(_Walk(what).copy(msg["offload"], "offload"))
            except OffloadError as exc:
                raise MessageError(f"{what}: offload: {exc}") from None
        return out


#: The result's memory figures (KiB, >= 0) and CPU figures (seconds and cores, >= 0): hilbench_agent.memory.
MEMORY_KB = ("rss_before_load_kb", "rss_after_load_kb", "rss_after_kb", "hwm_kb", "timed_start_rss_kb",
             "timed_peak_rss_kb", "footprint_before_load_kb", "footprint_after_load_kb", "footprint_after_kb",
             "unified_before_load_kb", "unified_after_load_kb", "unified_after_kb")
CPU_FIGURES = ("user_s", "system_s", "wall_s", "busy_cores")


def _names(obj: dict[str, Any], key: str, where: str) -> None:
    """``obj[key]``: an object of short names to strings or null (sources, and why figures are missing)."""
    value = _obj(obj, key, where)
    if value is None:
        return
    if len(value) > 32:
        raise MessageError(f"{where}: {key} has more than 32 entries")
    for name in list(value):
        if len(name) > MAX_NAME:
            raise MessageError(f"{where}: {key} has a name longer than {MAX_NAME} characters")
        value[name] = _str(value, name, f"{where}: {key}", MAX_TEXT)


def _usage(out: dict[str, Any], what: str) -> None:
    """The result's ``memory`` and ``cpu`` objects, checked in place (types, signs, string lengths)."""
    memory = _obj(out, "memory", what)
    if memory is not None:
        where = f"{what}: memory"
        for key in MEMORY_KB:
            _int(memory, key, where)
        _int(memory, "growth_kb", where, minimum=None)  # the peak may be below the RSS before load
        if "peak_basis" in memory:
            memory["peak_basis"] = _str(memory, "peak_basis", where, MAX_TEXT)
        for key in ("sources", "missing"):
            _names(memory, key, where)
    cpu = _obj(out, "cpu", what)
    if cpu is not None:
        where = f"{what}: cpu"
        for key in CPU_FIGURES:
            v = _number(cpu, key, where)
            if v is not None and v < 0:
                raise MessageError(f"{where}: {key} must be >= 0")
        for key, cap in (("source", MAX_NAME), ("missing", MAX_TEXT)):
            if key in cpu:
                cpu[key] = _str(cpu, key, where, cap)
