"""Property-based fuzzing of the host's protocol path with hostile and truncated input: the decoder
(harness/agent/protocol.py) and the session's message handling (JobRun.handle through the validation step,
then rows()). Only ProtocolError (MessageError is one) may come out; each example is time-bounded
(hypothesis deadline) and the whole run memory-bounded (tracemalloc peak)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.agent.protocol import decode_line
from harness.config.plan import Job, ModelSpec, Policy
from harness.config.targets import Target
from harness.errors import ProtocolError
from harness.run.jobrun import JobRun
from harness.run.session import Progress

FUZZ = settings(max_examples=100, deadline=1000, suppress_health_check=[HealthCheck.too_slow], database=None)

#: A legitimate job's lines, to mutate and cut.
LEGIT = [
    {"v": 1, "type": "hello", "t_ns": 1, "agent_version": "0.1.0", "python": "3.11.7", "os": "Linux",
     "backends": {"synthetic": {"available": True}}},
    {"v": 1, "type": "phase", "t_ns": 2, "phase": "first", "event": "begin"},
    {"v": 1, "type": "phase", "t_ns": 3, "phase": "first", "event": "end", "duration_ns": 1000},
    {"v": 1, "type": "sample", "t_ns": 4, "phase": "warmup", "start": 0, "t0_ns": 10, "latency_ns": [5, 6, 7],
     "offset_ns": [0, 8, 16]},
    {"v": 1, "type": "sample", "t_ns": 5, "phase": "timed", "start": 0, "t0_ns": 40, "latency_ns": [5] * 20,
     "offset_ns": list(range(0, 200, 10))},
    {"v": 1, "type": "telemetry", "t_ns": 6, "readings": [{"t_ns": 7, "sensor": "temp.cpu", "value": 40.5,
                                                           "unit": "C", "source": "thermal"}]},
    {"v": 1, "type": "accuracy", "t_ns": 8, "start": 0, "index": [0, 1], "label": [3, 4], "top": [[3, 1], [4, 2]],
     "score": [0.9, 0.8], "output": [[0.1, 0.9], [0.2, 0.8]]},
    {"v": 1, "type": "result", "t_ns": 9, "load_ns": 100, "first_ns": 1000,
     "warmup": {"count": 3, "duration_ns": 30, "stop_reason": "target"},
     "timed": {"count": 20, "duration_ns": 200, "stop_reason": "target"}, "memory": {"hwm_kb": 10}},
]

_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
_keys = st.sampled_from(["v", "type", "t_ns", "phase", "event", "duration_ns", "start", "t0_ns", "latency_ns",
                         "offset_ns", "readings", "index", "label", "top", "score", "output", "load_ns", "first_ns",
                         "warmup", "timed", "memory", "category", "message", "count", "stop_reason", "cpu_model",
                         "emulated", "runner", "idle", "sensors", "backends"])


@st.composite
def hostile_message(draw):
    """A legitimate message with fields replaced, removed or added: wrong types, huge ints, deep values."""
    msg = dict(draw(st.sampled_from(LEGIT)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(_keys)
        choice = draw(st.integers(0, 2))
        if choice == 0:
            msg.pop(key, None)
        else:
            msg[key] = draw(_json)
    return msg


def _job() -> Job:
    target = Target(name="fuzz", transport="local")
    model = ModelSpec(name="m", path=None, sha256=None, eval={"path": "/nonexistent/eval.npz", "limit": 50, "top_k": 5})
    return Job(plan="fuzz", model=model, target=target, backend="synthetic",
               settings={}, policy=Policy(warmup={"count": 3}, timed={"count": 20}, telemetry=False))


#: The most one example may allocate at its peak (the largest input here is a few kB).
PEAK_BYTES = 16 * 1024 * 1024


@contextlib.contextmanager
def memory_bound() -> Iterator[None]:
    """Traces allocations of the code under test (not of Hypothesis's generation) and bounds their peak."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"one example peaked at {peak / 2 ** 20:.1f} MB"


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """What a first rows() imports and builds once (the agent bundle's sha256), outside the deadlines."""
    from harness.agent.bundle import agent_bundle

    agent_bundle()
    run = JobRun(_job(), "r-warm")
    for msg in LEGIT:
        run.handle(json.loads(json.dumps(msg)), Progress())
    run.rows(session_id="s", labels={}, started=dt.datetime.now(dt.timezone.utc), transport=None)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_decode_line_raises_only_protocol_error_on_any_bytes(data):
    with memory_bound():
        try:
            decode_line(data)
        except ProtocolError:
            pass


@FUZZ
@given(st.sampled_from([json.dumps(m) for m in LEGIT]), st.data())
def test_decode_line_on_truncated_and_spliced_lines(line, data):
    cut = data.draw(st.integers(0, len(line)))
    junk = data.draw(st.sampled_from(["", "NaN", "Infinity", "1e999", "[" * 3000, "\x00", "\\ud800", "}", '"']))
    for text in (line[:cut], line[:cut] + junk + line[cut:]):
        with memory_bound():
            try:
                msg = decode_line(text)
            except ProtocolError:
                continue
        assert isinstance(msg, dict)


@pytest.mark.slow
@FUZZ
@given(st.lists(hostile_message(), min_size=1, max_size=6))
def test_session_handling_raises_only_protocol_error(messages):
    run = JobRun(_job(), "r-fuzz")
    lines = [json.dumps(m) for m in LEGIT[:2] + messages + LEGIT[2:]]
    with memory_bound():
        for line in lines:
            try:
                run.handle(decode_line(line), Progress())
            except ProtocolError:
                run.error = ("agent", "rejected")
                break
        # Whatever got in, the rows can be built and hold storable values.
        row = run.rows(session_id="s", labels={}, started=dt.datetime.now(dt.timezone.utc), transport=None)
    assert row["status"] in ("ok", "error")
    assert run.samples.table("r-fuzz") is None or run.samples.table("r-fuzz").num_rows == len(run.samples)
    json.dumps(row, default=str)


@FUZZ
@given(st.lists(st.integers(min_value=-(2 ** 64), max_value=2 ** 64), max_size=50), st.data())
def test_sample_batches_reject_or_store_exactly(latencies, data):
    offsets = data.draw(st.lists(st.integers(min_value=-(2 ** 64), max_value=2 ** 64), min_size=len(latencies),
                                 max_size=len(latencies) + 1))
    run = JobRun(_job(), "r-fuzz")
    msg = {"v": 1, "type": "sample", "phase": "timed", "start": 0, "t0_ns": 0, "latency_ns": latencies,
           "offset_ns": offsets}
    with memory_bound():
        try:
            run.handle(msg, Progress())
        except ProtocolError:
            return
    assert len(latencies) <= 20 and len(offsets) == len(latencies)
    assert all(0 <= v < 2 ** 63 for v in latencies) and all(-(2 ** 63) <= o < 2 ** 63 for o in offsets)
    assert run.samples.latencies("timed").tolist() == latencies
