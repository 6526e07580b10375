"""Property-based fuzzing of what the host reads from a device beyond protocol lines (tests/test_fuzz_protocol.py)
and runner and telemetry text (tests/test_fuzz_parsers.py), issue 14:

* **journals**: after a dropped connection the session fetches the agent's journal from the device and replays
  it. Whole journals (a job's lines cut at any byte, duplicated, dropped, reordered, spliced with junk; fields
  replaced by hostile values: huge counts, NUL and terminal escapes, lone surrogates, paths; non-UTF-8 bytes;
  CRLF) go through the real session (``run_jobs``) with :class:`FakeTransport` as the device: its connection
  drops mid-job and its journal's bytes are split by the transports' own ``Transport.journal_lines``;
* **the agent's hello**: the ``--probe`` answer (``device_facts``, doctor's ``hello_checks`` and
  ``format_checks``) and a job's own hello through the session, then ``hilbench show`` of the stored run;
* **the Android phone's shell outputs**: the telemetry snapshot (``parse_snapshot``, and doctor's checks on it),
  the vendor runner's output read by the real driver (``RunnerProcess``, with a scripted phone), and adb's shell
  wrapper (exit-status markers, ``getprop``, a journal read over adb).

Properties: only the documented errors come out (:class:`HilbenchError` subclasses; from ``run_jobs`` none), every
job ends stored (``ok`` or an error row, never the catch-all "a bug, please report it"), the store reads back,
every printed line is safe (:func:`harness.safetext.safe` leaves it as it is), and nothing is written outside the
store: sessions run with their cwd, HOME and TMPDIR in one folder whose file tree (names, sizes, mtimes) is
compared before and after; hostile paths in the input point into that folder.

Derandomized (a fixed sequence of examples) with bounded counts so CI is stable; the fuzz tests are in the slow
tier (whole sessions, threads), the failures they found are explicit regression tests in the fast one.
``HILBENCH_FUZZ_EXAMPLES=2000 HILBENCH_FUZZ_RANDOM=1`` for a longer hunt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import open_store
from harness.agent.protocol import decode_line
from harness.agent.validate import MessageChecker, sanitize_hello
from harness.cli import main
from harness.config.plan import Job, Plan, expand_jobs, load_plan
from harness.config.targets import ADBSettings, Target
from harness.doctor.checks import clean_hello, device_facts, format_checks, hello_checks
from harness.errors import HilbenchError, MessageError, ProtocolError
from harness.run.session import run_jobs
from harness.safetext import safe
from harness.store import TABLES, Store
from harness.transport import FakeTransport
from harness.transport.fake import FakeScript, agent_run, fake_target

#: Examples per property (CI's default keeps the file at a few seconds).
EXAMPLES = int(os.environ.get("HILBENCH_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,  # ms per example: a whole session with a store; a super-linear path shows up as seconds
    derandomize=not os.environ.get("HILBENCH_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
#: The catch-all messages of the session and of the Android driver: what a bug (an unexpected exception) reads as.
BUG_MARKS = ("a bug, please report it", "android runner driver failed")

# --- hostile material ---------------------------------------------------------------------------------

#: Text a hostile device puts where the host expects a name or a message, by kind. ``@ROOT@`` becomes the sandbox
#: folder: a path the host would write to lands where the tree check sees it.
CONTROL = ["", " ", "\x00", "a\x00b", "\x1b[2J\x1b]0;pwned\x07", "\x9b31m", "a\nb", "\r\n", "\t", "\x7f"]
UNICODE = ["\ud800", "\udcff", "x\udfff", "\udbff\udbff", "\u202e", "\u2028", "\ufeff", "\ufffd",
           "\ud83d\ude00", "\U0010ffff", "١٢٣", "²"]
PATHS = ["../../pwned", "@ROOT@/pwned", "~/pwned", "/dev/null", "$(touch @ROOT@/pwned)", "`id`", "a/../../b"]
OTHER = ["%s%n", "{}", "NaN", "1e999", "-0", "x" * 300, "x" * 5000]
#: One hostile string: every kind equally likely, then one of its kind.
HOSTILE_STRING = st.one_of(*(st.sampled_from(kind) for kind in (CONTROL, UNICODE, PATHS, OTHER)),
                           st.text(max_size=8))
#: One short enough for any name the host keeps (it refuses a sensor name or a key over 256 characters, in one
#: line, and cuts other text).
SHORT_STRING = HOSTILE_STRING.filter(lambda t: len(t) <= 200)
HOSTILE_NUMBERS = [0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**19, 10**30, 10**400, -(10**400), 1e308,
                   -1e308, 5e-324, -0.0, 0.5]
KEYS = ["v", "type", "t_ns", "phase", "event", "duration_ns", "start", "t0_ns", "latency_ns", "offset_ns",
        "readings", "sensor", "value", "unit", "source", "load_ns", "first_ns", "warmup", "timed", "memory",
        "count", "stop_reason", "category", "message", "agent_version", "python", "os", "machine", "cpu_model",
        "device_model", "emulated", "backends", "sensors", "effective_settings", "runner", "path", "job_id"]
SCALARS = (st.none() | st.booleans() | st.sampled_from(HOSTILE_NUMBERS) | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | HOSTILE_STRING)
VALUES = st.recursive(
    SCALARS,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | SHORT_STRING, c, max_size=4),
    max_leaves=12,
)
#: Bytes a broken or hostile device writes between and inside lines.
JUNK = [b"", b"\x00", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80abc", b"\x1b[2J", b"\r", b"NaN", b"1e999",
        b"[" * 64, b"}", b'"', b"\\ud800", b'"\\udcff"', b"{}", b'{"v": 1}', b'{"v": 2, "type": "hello"}',
        b'{"v": 1, "type": "result"}', b'{"v": 1, "type": "log", "message": "\\u001b[2J"}', b"\n\n\n",
        b"9" * 5000]


def _encode(msg: Any, ascii_only: bool) -> bytes:
    """``msg`` as one JSON line's bytes; a lone surrogate in it (ensure_ascii False) becomes invalid UTF-8."""
    return json.dumps(msg, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated_lines(draw: st.DrawFn, base: list[dict[str, Any]], max_ops: int = 4) -> bytes:
    """``base`` as JSON lines, mutated: fields replaced or removed (at the top or one level down), lines
    duplicated, dropped, reordered, junk inserted between or inside them, a byte made non-UTF-8; joined with LF,
    CRLF or blank lines and cut at any byte."""
    ascii_only = draw(st.booleans())
    lines = [_encode(m, ascii_only) for m in base]
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["field", "text", "text", "nested", "dup", "drop", "swap", "junk", "splice",
                                   "byte", "flood"]))
        if op == "junk" or not lines:
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(JUNK)))
            continue
        i = draw(st.integers(0, len(lines) - 1))
        if op == "text":  # a string the host keeps (a hello field, a stop reason, a message) made hostile
            try:
                msg = json.loads(lines[i])
            except ValueError:
                continue
            strings = _string_fields(msg)
            if strings:
                where, key = strings[draw(st.integers(0, len(strings) - 1))]
                where[key] = draw(HOSTILE_STRING) + draw(st.sampled_from(["", where[key]]))
                lines[i] = _encode(msg, ascii_only)
        elif op in ("field", "nested"):
            try:
                msg = json.loads(lines[i])
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            where = msg
            if op == "nested":
                inner = [k for k, v in msg.items() if isinstance(v, dict)]
                if not inner:
                    continue
                where = msg[draw(st.sampled_from(sorted(inner)))]
            key = draw(st.sampled_from(KEYS))
            if draw(st.integers(0, 4)) == 0:
                where.pop(key, None)
            else:
                where[key] = draw(VALUES)
            lines[i] = _encode(msg, ascii_only)
        elif op == "dup":
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
        elif op == "drop":
            del lines[i]
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "splice":
            k = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:k] + draw(st.sampled_from(JUNK)) + lines[i][k:]
        elif op == "byte" and lines[i]:
            k = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:k] + bytes([draw(st.integers(0x80, 0xFF))]) + lines[i][k + 1:]
        elif op == "flood":  # a sample batch far past the plan's count, or a huge claimed count
            n = draw(st.sampled_from([21, 5000, 60000]))
            lines.insert(i, _encode({"v": 1, "type": "sample", "t_ns": 1, "phase": "timed", "start": 0, "t0_ns": 1,
                                     "latency_ns": [1000] * n, "offset_ns": list(range(n))}, True))
    data = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"])).join(lines) + draw(st.sampled_from([b"", b"\n"]))
    if draw(st.integers(0, 2)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    return data


def _string_fields(msg: Any) -> list[tuple[dict[str, Any], str]]:
    """(object, key) of every string value in ``msg``'s objects, at any depth."""
    out: list[tuple[dict[str, Any], str]] = []
    stack = [msg]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out += [(node, k) for k, v in node.items() if isinstance(v, str)]
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
    return out


# --- the sandbox: cwd, HOME and TMPDIR in one folder; each session its own store there ---------------------

PLAN = """
name = "fuzz"
[[models]]
name = "m1"
backends = ["synthetic"]
[policy]
warmup = 5
timed = { count = 20 }
telemetry = false
"""


def _tree(root: Path, skip: Path | None = None) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root`` (but ``skip``) -> (is a folder, size, mtime): a file written, changed or made
    and removed again (its folder's mtime moves) shows."""
    out = {}
    for path in root.rglob("*"):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        st_ = path.lstat()
        out[str(path.relative_to(root))] = (path.is_dir(), st_.st_size, st_.st_mtime_ns)
    return out


@dataclass
class Sandbox:
    root: Path
    plan: Plan
    target: Target
    jobs: list[Job]
    count: Iterator[int]

    def __repr__(self) -> str:
        return f"Sandbox({self.root})"

    def path_bytes(self, data: bytes) -> bytes:
        return data.replace(b"@ROOT@", str(self.root).encode())

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """A fresh store in the sandbox; on the way out, nothing else in the sandbox changed, and it is removed."""
        folder = self.root / f"store-{next(self.count)}"
        before = _tree(self.root)
        yield open_store(folder)
        after = _tree(self.root, skip=folder)
        changed = sorted(set(before.items()) ^ set(after.items()))
        assert not changed, f"written outside the store: {changed[:5]}"
        shutil.rmtree(folder)

    def session(self, transport: FakeTransport, check: Any = None) -> list[dict[str, Any]]:
        """``run_jobs`` of the plan's one job through ``transport`` into a fresh store: it returns (never
        raises), its rows are stored and read back, and ``check(store, rows)`` runs before the store goes."""
        with self.store() as store:
            result = run_jobs(self.jobs, store, plan=self.plan, transports=lambda t: transport)
            check_store(store, result.session_id, result.runs)
            if check is not None:
                check(store, result.runs)
        return result.runs


def check_store(store: Store, session_id: str, rows: list[dict[str, Any]]) -> None:
    """The session is closed, every job has one row (ok or an error that is not a bug), every table reads back,
    and the store holds only its own files, named by the host's ids (nothing named by a device, no temp file)."""
    sessions = store.sessions()
    (session,) = sessions.to_dict("records")
    assert session["status"] == "finished" and session["jobs_ok"] + session["jobs_failed"] == len(rows) == 1
    runs = store.runs()
    assert sorted(runs["run_id"]) == sorted(r["run_id"] for r in rows)
    for row in rows:
        assert row["status"] in ("ok", "error")
        if row["status"] == "error":
            assert row["error_category"] and row["error_message"]
            assert not any(mark in row["error_message"] for mark in BUG_MARKS), row["error_message"]
        else:
            assert row["error_category"] is None
    ids = set(runs["run_id"]) | {session_id}
    store.samples(), store.telemetry(), store.accuracy(), store.summary()
    for path in store.root.rglob("*"):
        rel = path.relative_to(store.root)
        if path.is_dir():
            assert len(rel.parts) == 1 and rel.parts[0] in TABLES, rel
        elif rel.parts != ("hilbench-store.json",):
            assert rel.parts[0] in TABLES and path.suffix == ".parquet" and path.stem in ids, rel


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("device-input")
    for sub in ("cwd", "home", "tmp"):
        (root / sub).mkdir()
    (root / "plan.toml").write_text(PLAN)
    plan = load_plan(root / "plan.toml")
    target = fake_target("bench")
    jobs = expand_jobs(plan, {}, only_targets=[target])
    names = ("HOME", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")
    saved = {k: os.environ.get(k) for k in names}
    cwd, tempdir = os.getcwd(), tempfile.tempdir
    os.environ.update(HOME=str(root / "home"), TMPDIR=str(root / "tmp"))
    for name in names[2:]:
        os.environ.pop(name, None)
    os.chdir(root / "cwd")
    tempfile.tempdir = str(root / "tmp")
    box = Sandbox(root=root, plan=plan, target=target, jobs=jobs, count=itertools.count())
    try:
        # What a first session imports and builds once (the agent bundle, numpy, pyarrow), outside the deadlines.
        box.session(FakeTransport(target, [FakeScript(agent_run())]))
        yield box
    finally:
        os.chdir(cwd)
        tempfile.tempdir = tempdir
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- journals -----------------------------------------------------------------------------------------------

#: A legitimate job's lines, with a telemetry message and a log line among them.
JOB = [m for m in agent_run(extra=[
    {"v": 1, "type": "telemetry", "t_ns": 5, "readings": [
        {"t_ns": 6, "sensor": "temp.cpu", "value": 41.5, "unit": "C", "source": "thermal"}]},
    {"v": 1, "type": "log", "t_ns": 7, "level": "info", "message": "timed phase done"},
]) if isinstance(m, dict)]


class DeviceJournal(FakeTransport):
    """FakeTransport whose journal on the device (any path asked for) is ``data``, read as the real transports
    read theirs: the bytes through :meth:`Transport.journal_lines`."""

    def __init__(self, target: Target, scripts: list[FakeScript], data: bytes) -> None:
        super().__init__(target, scripts)
        self.data = data
        self.fetched = 0

    def fetch_journal(self, path: str) -> list[str] | None:
        self.agent_alive(path)
        self.fetched += 1
        return self.journal_lines(self.data, path)


def run_journal(sandbox: Sandbox, data: bytes, *, drop_after: int = 2, rerun_ok: bool = True,
                check: Any = None) -> tuple[dict[str, Any], DeviceJournal]:
    """One job whose connection drops after ``drop_after`` lines; the device's journal holds ``data``. The job
    runs again (a clean run, or one that drops the same way) when the journal holds no end."""
    dropping = FakeScript(agent_run(), drop_after=drop_after)
    fake = DeviceJournal(sandbox.target, [dropping, FakeScript(agent_run()) if rerun_ok else dropping],
                         sandbox.path_bytes(data))
    (row,) = sandbox.session(fake, check)
    assert fake.fetched >= 1  # the journal was read: the drop happened before the agent's end
    return row, fake


@pytest.mark.slow
@FUZZ
@given(data=mutated_lines(JOB), drop_after=st.integers(0, 4), rerun_ok=st.booleans())
def test_a_hostile_journal_after_a_drop_ends_stored(sandbox: Sandbox, data: bytes, drop_after: int,
                                                    rerun_ok: bool) -> None:
    row, _fake = run_journal(sandbox, data, drop_after=drop_after, rerun_ok=rerun_ok)
    if row["status"] == "ok":
        assert row["timed_count"] is None or 0 <= row["timed_count"] < 2**63


def _journal(messages: list[dict[str, Any]]) -> bytes:
    return b"\n".join(_encode(m, True) for m in messages)


@pytest.mark.parametrize("data, outcome, expect", [
    # the journal holds the whole job: recovered from it, not run again
    (_journal(JOB), "ok", {"timed_count": 20}),
    # cut inside its last line (the result): what came before stands, no end, so the job runs again
    (_journal(JOB)[:-7], "rerun", {}),
    # a Latin-1 byte and a NUL in the hello's CPU model: kept as U+FFFD and NUL (shown as \x00)
    (_journal(JOB).replace(b"FakeTransport stand-in", b"caf\xe9 \\u0000", 1), "ok",
     {"cpu_model": "caf\ufffd \x00"}),
    # lone surrogates (escaped, as Python's json writes a file name that is not UTF-8) in the hello, a sensor name
    # and a stop reason: kept as U+FFFD (before: UnicodeEncodeError writing the store, stored as "a bug")
    (_journal([dict(JOB[0], cpu_model="x\udcff", os="\ud800"), *JOB[1:-1],
               dict(JOB[-1], timed=dict(JOB[-1]["timed"], stop_reason="count\udcff"))]), "ok",
     {"cpu_model": "x\ufffd", "timed_stop": "count\ufffd"}),
    # a broken line before the end: the job is an agent error naming the journal
    (_journal(JOB[:3]) + b'\n{"v": 1, "ty\n' + _journal(JOB[-1:]), "error", {"error_category": "agent"}),
    # two results, then an error line: the job is the error the agent reported
    (_journal([*JOB, JOB[-1], {"v": 1, "type": "error", "category": "backend", "message": "boom\x1b[2J"}]), "error",
     {"error_category": "backend", "error_message": "boom\x1b[2J"}),
    # a claimed count far beyond int64: refused in one line
    (_journal([*JOB[:-1], dict(JOB[-1], timed={"count": 10**30})]), "error",
     {"error_message": "bench: journal: result message: timed.count is an integer beyond int64"}),
], ids=["whole", "cut-in-result", "latin1-and-nul", "lone-surrogates", "broken-before-end", "two-results-then-error",
        "count-beyond-int64"])
def test_journal_cases(sandbox: Sandbox, data: bytes, outcome: str, expect: dict[str, Any]) -> None:
    row, fake = run_journal(sandbox, data)
    assert row["status"] == ("error" if outcome == "error" else "ok"), row["error_message"]
    assert len(fake.started) == (2 if outcome == "rerun" else 1)
    assert {k: row[k] for k in expect} == expect


def test_a_journal_of_too_many_lines_is_a_stored_transport_error(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.transport import base

    monkeypatch.setattr(base, "JOURNAL_MAX_LINES", 50)
    row, _fake = run_journal(sandbox, b"{}\n" * 51)
    assert row["status"] == "error" and row["error_category"] == "transport"
    assert "holds more than 50 lines" in row["error_message"] and "\n" not in row["error_message"]


def complete_job_lines(messages: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """``messages`` whole and in order, every free-text string in them (hello fields, versions, sensor names and
    units, stop reasons, settings, log messages) hostile or not: a well-formed job whose text the host keeps."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        ascii_only = draw(st.booleans())
        out = []
        for msg in json.loads(json.dumps(messages)):
            for where, key in _string_fields(msg):
                if key not in STRUCTURE and draw(st.booleans()):
                    where[key] = draw(SHORT_STRING) + draw(
                        st.sampled_from(["", where[key]]))
            if msg["type"] in ("hello", "result") and draw(st.booleans()):
                msg["effective_settings" if msg["type"] == "result" else "extra"] = draw(
                    st.dictionaries(SHORT_STRING, HOSTILE_STRING, max_size=3))
            out.append(_encode(msg, ascii_only))
        return b"\n".join(out) + b"\n"

    return build()


#: Fields whose string is structure the protocol checks (a message type, a phase name), not text it keeps.
STRUCTURE = {"type", "phase", "event", "category"}


@pytest.mark.slow
@settings(FUZZ, max_examples=max(1, EXAMPLES * 5 // 8))
@given(data=complete_job_lines(JOB))
def test_hostile_text_in_a_complete_journal_is_stored_and_shown_safely(sandbox: Sandbox, data: bytes) -> None:
    def show(store: Store, rows: list[dict[str, Any]]) -> None:
        code, out, err = cli(["show", rows[0]["run_id"], "--store", str(store.root)])
        assert code == 0, err
        assert_printable(out + err)

    row, fake = run_journal(sandbox, data, rerun_ok=False, check=show)
    assert row["status"] == "ok", row["error_message"]  # recovered from the journal, whatever its text says
    assert len(fake.started) == 1


# --- the agent's hello: the --probe answer, doctor, the session --------------------------------------------

#: A full ``--probe`` hello (what doctor reads), as the agent writes it.
PROBE_HELLO: dict[str, Any] = {
    "v": 1, "type": "hello", "t_ns": 1, "agent_version": "0.1.0", "protocol": 1, "python": "3.11.7", "os": "Linux",
    "os_release": "6.1", "machine": "aarch64", "cpu_model": "Cortex-A76", "cpu_count": 4, "device_model": "board",
    "emulated": None, "cpu_governor": "ondemand", "free_disk_bytes": 10**10,
    "memory_kb": {"MemTotal": 4194304, "MemAvailable": 2097152},
    "sensors": {"sources": ["thermal_zone0", "hwmon0 ina3221 power"], "missing": ["fan: none"]},
    "usage_sources": {"sources": {"rss": "/proc", "peak": "/proc", "cpu": "getrusage"}, "missing": {},
                      "psutil": "5.9", "remedy": None},
    "backends": {"synthetic": {"available": True, "version": "0.1", "stand_in": True},
                 "onnxruntime": {"available": True, "version": "1.17", "providers": ["CPUExecutionProvider"]},
                 "litert": {"available": False, "reason": "not installed"}},
}


def pipe_lines(data: bytes) -> list[str]:
    """What the host's pipe reader makes of a device's bytes: lines split at LF, decoded with U+FFFD."""
    return [chunk.decode("utf-8", "replace") for chunk in data.split(b"\n") if chunk]


class ProbedDevice(FakeTransport):
    """A FakeTransport the session probes before its first job (as it probes SSH and local devices)."""

    probes_device = True


def assert_printable(text: str) -> None:
    """Every line of ``text`` is as :func:`safe` would print it: no control or format character of a device's."""
    for line in text.split("\n"):
        assert safe(line, None) == line, f"unsafe line: {line!r}"


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def probe_target() -> Target:
    return fake_target("probed", runtimes=("onnxruntime", "litert"))


#: What the probe may raise: the documented one-line errors (a line that is not the protocol, a hello that breaks
#: its limits, an agent that says nothing).
PROBE_ERRORS = ("ProtocolError", "MessageError", "TransportError")


@pytest.mark.slow
@FUZZ
@given(data=mutated_lines([PROBE_HELLO], max_ops=6))
def test_a_hostile_probe_answer_never_crashes_doctor(data: bytes) -> None:
    from harness.doctor.checks import _probe_checks

    target = probe_target()
    device = ProbedDevice(target, lambda payload: FakeScript(pipe_lines(data)))
    device.connect()
    # doctor: the probe's checks, printed; a probe that fails is one failed check
    text = format_checks(target, _probe_checks(device, target))
    assert_printable(text)
    # the session's device facts: a dict it can store, or a documented error
    try:
        facts = device_facts(device, target, timeout_s=10)
    except HilbenchError as exc:
        assert type(exc).__name__ in PROBE_ERRORS and "\n" not in str(exc)
        return
    json.dumps(facts, allow_nan=False)
    assert {c["status"] for c in facts["checks"]} <= {"ok", "warn", "fail", "info"}


@pytest.mark.slow
@FUZZ
@given(hello=st.dictionaries(st.sampled_from([*PROBE_HELLO, "usage_sources", "extra"]), VALUES, max_size=8),
       nested=st.dictionaries(st.sampled_from(["backends", "sensors", "memory_kb", "usage_sources"]),
                              st.dictionaries(st.sampled_from(KEYS + ["sources", "missing", "MemTotal",
                                                                      "MemAvailable", "onnxruntime", "providers",
                                                                      "psutil", "error"]), VALUES, max_size=4),
                              max_size=3))
def test_hostile_hello_fields_give_checks_and_clean_facts(hello: dict[str, Any], nested: dict[str, Any]) -> None:
    """Any JSON in any field doctor reads: ``sanitize_hello`` raises MessageError or gives a hello that
    ``clean_hello`` makes typed and ``hello_checks`` turns into safe lines."""
    msg = {**PROBE_HELLO, **hello, **nested, "v": 1, "type": "hello"}
    target = probe_target()
    try:
        clean = sanitize_hello(decode_line(json.dumps(msg)))
    except MessageError:
        return
    except ProtocolError:
        return
    facts, problems = clean_hello(clean)
    json.dumps(facts, allow_nan=False)
    assert all(isinstance(p, str) for p in problems)
    assert_printable(format_checks(target, hello_checks(clean, target)))


@pytest.mark.slow
@settings(FUZZ, max_examples=max(1, EXAMPLES * 5 // 8))
@given(probe=mutated_lines([PROBE_HELLO], max_ops=4), job=mutated_lines(JOB[:1], max_ops=4))
def test_a_hostile_hello_never_crashes_the_session(sandbox: Sandbox, probe: bytes, job: bytes) -> None:
    """The session probes the device (facts stored with every run) and the job's agent says hello: both hostile.
    The job runs (its hello stored, or refused as an agent error), the facts are stored or name a documented
    error, and ``hilbench show`` prints the run safely."""
    job_lines = pipe_lines(sandbox.path_bytes(job)) + [json.dumps(m) for m in JOB[1:]]
    device = ProbedDevice(sandbox.target, lambda payload: FakeScript(
        pipe_lines(sandbox.path_bytes(probe)) if payload == {} else job_lines))

    def show(store: Store, rows: list[dict[str, Any]]) -> None:
        code, out, err = cli(["show", rows[0]["run_id"], "--store", str(store.root)])
        assert code == 0, err
        assert_printable(out + err)

    (row,) = sandbox.session(device, check=show)
    facts = row["device_facts"]
    assert isinstance(facts, dict)
    if "error" in facts:
        assert facts["error"].split(":", 1)[0] in PROBE_ERRORS, facts["error"]
    else:
        json.dumps(facts, allow_nan=False)


# --- the Android phone's shell outputs ------------------------------------------------------------------------

#: Pieces of what the phone's shells print, for token soup: the snapshot's sections and their lines.
ANDROID_TOKENS = [
    "@@battery", "@@uevent", "@@thermalservice", "@@zones", "@@cpufreq", "@@", "@@battery ", "Current Battery "
    "Service state:", "  AC powered: true", "  USB powered: false", "  level: ", "  scale: 100", "  voltage: ",
    "  temperature: ", "  status: ", "  health: ", "POWER_SUPPLY_STATUS=Discharging", "POWER_SUPPLY_STATUS=Charging",
    "POWER_SUPPLY_CURRENT_NOW=", "POWER_SUPPLY_VOLTAGE_NOW=", "CURRENT_NOW=", "VOLTAGE_NOW=", "STATUS=",
    "Thermal Status: ", "Current temperatures from HAL:", "Cached temperatures:", "Temperature{mValue=", ", mType=",
    ", mName=", ", mStatus=", "}", "tsens_tz_sensor1 ", "battery ", "cpu0 ", "cpu4 ", "cpu ", "cpux ", "cpu٣ ",
    "1800000", "2800000", " ", "\t",
]
ANDROID_NUMBERS = st.one_of(
    st.integers(-(10**7), 10**7).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-0", "1e999", "1e200", "-1e200", "1.2.3", "-", "0x1F", ""]),
    st.sampled_from(["9" * 400, "9" * 5000, "-" + "9" * 5000]),  # beyond a float; beyond int()'s 4,300 digits
    st.sampled_from(["١٢٣", "²", "٣.٥", "①"]),  # Unicode digits: isdigit() is true, int() or float() may refuse
)


def soup(tokens: list[str], numbers: st.SearchStrategy[str] = ANDROID_NUMBERS) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(tokens), numbers, HOSTILE_STRING)
    return st.lists(st.lists(piece, max_size=8).map("".join), max_size=16).map("\n".join)


def _recorded(shared: Path, folder: str) -> list[str]:
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted((shared / folder).rglob("*"))
             if p.is_file() and p.suffix != ".md"]
    assert texts, f"no recorded samples under {shared / folder}"
    return texts


def snapshot(data: st.DataObject, shared: Path) -> str:
    """One TELEMETRY_SCRIPT output: recorded sections (cut) and token soup under real and junk headers."""
    parts = []
    for name in data.draw(st.lists(st.sampled_from(["battery", "uevent", "thermalservice", "zones", "cpufreq",
                                                    "junk"]), max_size=7)):
        recorded = [t for t in _recorded(shared, "telemetry-samples/android")
                    if name in ("battery", "uevent", "thermalservice") and (
                        ("dumpsys_battery" in t or "level:" in t) if name == "battery" else
                        ("STATUS=" in t) if name == "uevent" else ("Temperature{" in t or "Thermal" in t))]
        body = cut_text(data.draw, data.draw(st.sampled_from(recorded))) if recorded and data.draw(st.booleans()) \
            else data.draw(soup(ANDROID_TOKENS))
        parts.append(f"@@{name}\n{body}")
    return "\n".join(parts)


def check_readings(readings: list[dict[str, Any]]) -> None:
    """Readings the host's protocol check takes as they are: the telemetry line the Android driver sends."""
    from harness.transport.adb import vendor_runner as vr

    for r in readings:
        assert isinstance(r["sensor"], str) and isinstance(r["unit"], str) and isinstance(r["source"], str)
        assert r["value"] is None or (isinstance(r["value"], float) and math.isfinite(r["value"])), r
    line = vr._line("telemetry", readings=[dict(r, t_ns=1) for r in readings])
    MessageChecker().check(decode_line(line))


class ScriptedPhone:
    """What the Android driver and doctor call on an ADBTransport, answered from a script (the phone's outputs):
    ``output`` is what the runner's shell command prints, given the command's markers; ``shells`` maps a piece of
    a shell command to its output."""

    serial = "FUZZ01"

    def __init__(self, target: Target, output: Any = b"", shells: dict[str, str] | None = None,
                 props: dict[str, str] | None = None) -> None:
        self.target = target
        self.output = output
        self.shells = shells or {}
        self.props = props or {}
        self.killed: list[int] = []
        self.commands: list[str] = []

    def getprops(self) -> dict[str, str]:
        return self.props

    def shell(self, command: str, *, step: str = "shell", timeout: float | None = None, **_: Any) -> Any:
        from harness.transport.adb.transport import ShellResult

        self.commands.append(command)
        text = next((out for piece, out in self.shells.items() if piece in command), "")
        return ShellResult(0, text, "")

    def ensure_runner(self, name: str, host: str) -> str:
        return f"/data/local/tmp/hilbench/runners/{name}"

    def runner_env(self, device_runner: str) -> str:
        return ""

    def journal_path(self, run_id: str) -> str:
        return f"/data/local/tmp/hilbench/journal/{run_id}.jsonl"

    def popen_shell(self, command: str) -> Any:
        """The runner's shell: ``output`` (bytes, or a function of the command's markers by kind: PG, PID, RC)."""
        markers = {m.group(1): m.group(0) for m in re.finditer(r"__HILBENCH_(PG|PID|RC)=[0-9a-f]+:", command)}
        return _Popen(self.output(markers) if callable(self.output) else self.output)

    def kill_group(self, pgid: int) -> bool:
        self.killed.append(pgid)
        return True

    def recover(self, step: str) -> None:
        pass


class _Popen:
    """``adb shell``'s process as the driver reads it: its output, already all there."""

    def __init__(self, out: bytes) -> None:
        self.stdout, self.stderr = io.BytesIO(out), io.BytesIO(b"")
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        self.returncode = 0
        return 0

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


@pytest.mark.parametrize("fix", ["zones", "cpufreq", "power"])
def test_snapshot_regressions(fix: str) -> None:
    """What fuzzing found: a snapshot line that raised (ValueError: int() of "²" or of 5,000 digits; OverflowError:
    a 400-digit zone temperature to float) or gave an infinite battery power (a line the host refuses)."""
    from harness.transport.adb.vendor_runner import parse_snapshot

    text = {
        "zones": "@@zones\nz " + "9" * 400 + "\nw " + "9" * 5000 + "\nx ١٢\ny 41000\n",
        "cpufreq": "@@cpufreq\ncpu 100\ncpux 100\ncpu0 ²\ncpu1 1 ²\ncpu2 " + "9" * 5000 + "\ncpu" + "1" * 5000
                   + " 1\ncpu3 1800000 2800000\n",
        "power": "@@uevent\nPOWER_SUPPLY_STATUS=Discharging\nPOWER_SUPPLY_CURRENT_NOW=-1e200\n"
                 "POWER_SUPPLY_VOLTAGE_NOW=1e200\n",
    }[fix]
    readings = {r["sensor"]: r for r in parse_snapshot(text)}
    check_readings(list(readings.values()))
    if fix == "zones":
        assert [s for s in readings if s.startswith("zone.")] == ["zone.y"] and readings["zone.y"]["value"] == 41.0
    elif fix == "cpufreq":
        assert readings["freq.cluster1"]["value"] == 1800.0 and readings["freq.cluster1"]["source"].endswith("cpu3-3")
    else:
        assert readings["power.battery"]["value"] is None and "out of range" in readings["power.battery"]["reason"]


def test_android_doctor_regressions() -> None:
    """What fuzzing found in doctor's Android checks: 5,000 digits read as a CPU number, a clock or the SDK level
    (ValueError: int() refuses over 4,300 digits, a traceback out of ``hilbench doctor``)."""
    from harness.doctor import android as doctor

    target = Target(name="phone", transport="adb", adb=ADBSettings(big_cores=(4,)))
    phone = ScriptedPhone(target, shells={"cpuinfo_max_freq": f"cpu0 {'9' * 5000}\ncpu{'1' * 5000} 5\ncpu4 2000"})
    check = doctor._cores_check(phone, target)  # type: ignore[arg-type]
    assert (check.status, check.detail) == ("ok", "big [4] (2 MHz), others []")
    android = doctor._property_checks({"ro.build.version.sdk": "9" * 5000})[1]
    assert android.status == "ok" and android.name == "Android version"


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_phone_snapshots_give_readings_the_host_takes(shared_dir: Path, data: st.DataObject) -> None:
    """parse_snapshot never raises and gives finite values or none; doctor's thermal, power and cores checks on the
    same outputs print safely."""
    from harness.doctor import android as doctor
    from harness.transport.adb.vendor_runner import parse_snapshot

    text = snapshot(data, shared_dir)
    unit = data.draw(st.sampled_from(["auto", "uA", "mA"]))
    sign = data.draw(st.sampled_from(["auto", "discharge-negative", "discharge-positive"]))
    check_readings(parse_snapshot(text, current_unit=unit, current_sign=sign))
    target = Target(name="phone", transport="adb", adb=ADBSettings(battery_current_unit=unit,
                                                                   battery_current_sign=sign, big_cores=(4,)))
    cores = "\n".join(data.draw(st.lists(st.tuples(
        st.sampled_from(["cpu0", "cpu4", "cpu", "cpu١", "cpu" + "1" * 5000, "x"]) | HOSTILE_STRING,
        ANDROID_NUMBERS).map(" ".join), max_size=6)))
    phone = ScriptedPhone(target, shells={"@@battery": text, "cpuinfo_max_freq": cores})
    checks = doctor._thermal_and_power_checks(phone, target)  # type: ignore[arg-type]
    checks.append(doctor._cores_check(phone, target))  # type: ignore[arg-type]
    checks += doctor._property_checks(data.draw(st.fixed_dictionaries({}, optional={
        key: HOSTILE_STRING | ANDROID_NUMBERS for key in ("ro.product.cpu.abi", "ro.build.version.release",
                                                          "ro.build.version.sdk", "ro.soc.model", "ro.hardware",
                                                          "ro.soc.manufacturer")})))
    assert_printable(format_checks(target, checks))


#: Pieces of each runner's output and of onnxruntime_perf_test's result file, for token soup.
RUNNER_TOKENS = {
    "benchmark_model": [
        "INFO: ", "count=", " first=", " curr=", " min=", " max=", " avg=", " std=", "Inference timings in us: ",
        "Init: ", ", First inference: ", ", Warmup (avg): ", ", Inference (avg): ", "Memory footprint delta from the "
        "start of the tool (MB): init=", " overall=", "Peak memory footprint (MB): init=", "Running benchmark for at "
        "least ", " iterations and at least ", " seconds", "Num threads: [4]", "Graph: [m.tflite]",
        "Initialized session in ", "ms.", "The input model file size (MB): ", "\n"],
    "onnxruntime_perf_test": [
        "Session creation time cost: ", " s", "First inference time cost: ", " ms", "Total inference time cost: ",
        "Total inference requests: ", "Average inference time cost: ", "Total inference run time: ",
        "Number of inferences per second: ", "Avg CPU usage: ", " %", "Peak working set size: ", " bytes",
        "Min Latency: ", "Max Latency: ", "P50 Latency: ", "P90 Latency: ", "P99 Latency: ", "P999 Latency: ",
        "m.onnx,", ",", "\n"],
}
RUNNER_NUMBERS = ANDROID_NUMBERS | st.sampled_from(["1e300", "1e307", "-1e307", "3e16", "1e-320"])


@st.composite
def runner_output(draw: st.DrawFn, runner: str, recorded: list[str]) -> Any:
    """What the runner's shell command prints, given its markers: the process group first (or not, or a hostile
    one), the runner's output (a recording cut, spliced or whole, or token soup with extreme numbers) with forged
    markers and non-UTF-8 bytes among its lines, then the pid and exit status (or none: the connection was lost)."""
    if draw(st.booleans()):
        text = cut_text(draw, draw(st.sampled_from(recorded)))
    else:
        text = draw(soup(RUNNER_TOKENS[runner], RUNNER_NUMBERS))
    body = text.split("\n")
    pg = draw(st.sampled_from(["4242", "1", "0", "-1", "99999999999", "١٢", "x", None]))
    pid = draw(st.sampled_from(["4243", "-1", "", "9" * 30, None]))
    rc = draw(st.sampled_from(["0", "0", "0", "1", "137", "255", "9" * 30, "-1", "١", None]))
    forged = draw(st.lists(st.tuples(st.integers(0, max(len(body), 1)), st.sampled_from([
        "__HILBENCH_RC=deadbeefdeadbeef:0", "__HILBENCH_PG=deadbeefdeadbeef:1", "@RC0", "@PG1", "@PID1"])),
        max_size=3))
    noise = draw(st.lists(st.tuples(st.integers(0, max(len(body), 1)), st.sampled_from(JUNK)), max_size=3))

    def output(markers: dict[str, str]) -> bytes:
        def mark(line: str) -> str:
            return line.replace("@RC", markers["RC"]).replace("@PG", markers["PG"]).replace("@PID", markers["PID"])

        lines = [line.encode("utf-8", "surrogatepass") for line in body]
        for i, line in sorted(forged, reverse=True):
            lines.insert(i, mark(line).encode())
        for i, junk in sorted(noise, reverse=True):
            lines.insert(i, junk)
        head = [] if pg is None else [f"{markers['PG']}{pg}".encode()]
        tail = [] if pid is None else [f"{markers['PID']}{pid}".encode()]
        tail += [] if rc is None else [f"{markers['RC']}{rc}".encode()]
        return b"\n".join(head + lines + tail) + b"\n"

    return output


def cut_text(draw: st.DrawFn, text: str) -> str:
    """``text`` whole, cut at a random point, with a slice removed, or with a hostile piece inserted."""
    a = draw(st.integers(0, len(text)))
    b = draw(st.integers(a, len(text)))
    how = draw(st.sampled_from(["whole", "head", "hole", "insert"]))
    if how == "whole":
        return text
    if how == "head":
        return text[:a]
    if how == "hole":
        return text[:a] + text[b:]
    return text[:a] + draw(HOSTILE_STRING | RUNNER_NUMBERS) + text[a:]


PHONE = Target(name="phone", transport="adb", adb=ADBSettings(benchmark_model="/h/benchmark_model",
                                                              onnxruntime_perf_test="/h/onnxruntime_perf_test"))


def drive(phone: ScriptedPhone, backend: str, telemetry: bool = False) -> tuple[int | None, list[str], Any]:
    """One job through the real Android driver against ``phone``: its exit code, its protocol lines, and the
    job's run as the session collects it (a line the host refuses ends it as an agent error, as in a session).
    Never the driver's catch-all, nor the session's."""
    from harness.config.plan import ModelSpec, Policy
    from harness.run.jobrun import JobRun, Progress, take_line
    from harness.transport.adb.vendor_runner import start_runner

    policy = Policy(warmup={"count": 5}, timed={"count": 20}, telemetry=telemetry, idle_s=0.0)
    payload = {"v": 1, "job_id": "r-fuzz", "backend": backend, "settings": {}, "inputs": {},
               "model": {"path": "/data/local/tmp/hilbench/blobs/m", "sha256": None, "name": "m"},
               "warmup": policy.warmup, "timed": policy.timed, "affinity": None, "idle_s": 0,
               "telemetry": {"enabled": telemetry, "rate_hz": 10.0, "meter_command": None}}
    proc = start_runner(phone, payload, phone.journal_path("r-fuzz"))
    lines = []
    while (line := proc.next_line(30.0)) is not None:
        lines.append(line)
    code = proc.wait(30.0)
    assert code in (0, 2), (code, lines[-1:])
    run = JobRun(Job(plan="fuzz", model=ModelSpec(name="m", path=None, sha256=None), target=phone.target,
                     backend=backend, settings={}, policy=policy), "r-fuzz")
    for line in lines:
        assert not any(mark in line for mark in BUG_MARKS), line
        problem = take_line(run, line, "phone: agent", Progress())
        if problem is not None:
            assert "a bug" not in problem and "\n" not in problem, problem
            run.error = ("agent", problem)
            break
    json.dumps(run.rows(session_id="s", labels={}, started=dt.datetime.now(dt.timezone.utc), transport=None),
               default=str)
    return code, lines, run


ORT_RUN = ("Session creation time cost: 0.1 s\nTotal inference requests: 3\nAverage inference time cost: 1 ms\n"
           "Total inference run time: 0.003 s")


@pytest.mark.parametrize("backend, output, result_file, said", [
    ("litert", "count=50 first=3 curr=3 min=3 max=3 avg=3 std=0\nInference timings in us: Init: 1e307, "
     "First inference: 3, Warmup (avg): 3, Inference (avg): 3", "",
     "cannot read benchmark_model's output: its load time (1e+304 ms) is beyond any clock"),
    ("litert", "count=50 first=3 curr=3 min=3 max=3 avg=1e307 std=0\nInference timings in us: Init: 1, "
     "First inference: 1, Warmup (avg): 1, Inference (avg): 1e307", "", "cannot read benchmark_model's output: "),
    ("onnxruntime", ORT_RUN, "m.onnx,1e300,1,1\n",
     "cannot read onnxruntime_perf_test's output: a per-run time (1e+303 ms) is beyond any clock"),
], ids=["load-time", "mean", "per-run-time"])
def test_runner_driver_regressions(backend: str, output: str, result_file: str, said: str) -> None:
    """What fuzzing found: a runner printing a time no clock holds made the driver fail with its catch-all
    (OverflowError: cannot convert float infinity to integer); now it is the job's one-line backend error."""
    phone = ScriptedPhone(PHONE, lambda m: f"{m['PG']}42\n{output}\n{m['PID']}43\n{m['RC']}0\n".encode(),
                          shells={"cat ": result_file})
    code, _lines, run = drive(phone, backend)
    assert code == 2 and run.error is not None and said in run.error[1], run.error


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_the_android_runner_driver_on_hostile_phone_output(shared_dir: Path, data: st.DataObject) -> None:
    """The real driver (RunnerProcess) runs a job against a phone whose every answer is hostile: the runner's
    output and markers, its result file, getprop, the CPU list and the telemetry snapshots (see :func:`drive`)."""
    backend = data.draw(st.sampled_from(["litert", "onnxruntime"]))
    runner = "benchmark_model" if backend == "litert" else "onnxruntime_perf_test"
    folder = "tflite_benchmark_model" if backend == "litert" else "onnxruntime_perf_test"
    output = data.draw(runner_output(runner, _recorded(shared_dir, f"runner-outputs/{folder}")))
    props = data.draw(st.fixed_dictionaries({}, optional={
        key: HOSTILE_STRING | ANDROID_NUMBERS for key in ("ro.product.cpu.abi", "ro.build.version.release",
                                                          "ro.build.version.sdk", "ro.soc.model", "ro.hardware",
                                                          "ro.product.model", "ro.kernel.qemu")}))
    phone = ScriptedPhone(PHONE, output, props=props, shells={
        "@@battery": snapshot(data, shared_dir),
        "cpu/possible": data.draw(HOSTILE_STRING | st.just("0-7")),
        "cat ": data.draw(soup(RUNNER_TOKENS["onnxruntime_perf_test"], RUNNER_NUMBERS)),
    })
    drive(phone, backend, telemetry=data.draw(st.booleans()))


class ScriptedADB:
    """An ``adb`` whose every answer is chosen: :class:`ADBTransport` with its one way out to the adb client
    (``_run``) answering from ``answer(args, nonce)`` -> (exit status, stdout, stderr); the rest is the real
    transport. No waiting: a device that does not answer as it should is gone at once."""

    def __new__(cls, target: Target, answer: Any) -> Any:
        from harness.transport.adb.transport import ADBTransport

        class _ADB(ADBTransport):
            recover_timeout_s = connect_timeout_s = unauthorized_grace_s = 0.0

            def _run(self, args: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
                nonce = re.search(r"__HILBENCH_(?:PG|RC)=([0-9a-f]+):", " ".join(args))
                code, out, err = answer(args, nonce.group(1) if nonce else "")
                return subprocess.CompletedProcess(args, code, out, err)

        return _ADB(target)


@st.composite
def adb_answers(draw: st.DrawFn) -> Any:
    """adb's answers: ``adb devices`` (the serial's state, or junk), and each shell command's output between this
    call's markers (a process group first or not, the exit status last, hostile or missing), with lines and
    bytes that are getprop, sha256sum or a journal's, or junk."""
    devices = draw(st.sampled_from([b"List of devices attached\nFUZZ01\tdevice\n", b"FUZZ01\tunauthorized\n",
                                    b"FUZZ01 device usb:1-1\n", b"", b"\xff\xfe\n\t\n"]) | st.binary(max_size=40))
    prop = st.builds(lambda k, v: f"[{k}]: [{v}]", st.sampled_from(["ro.product.cpu.abi", "ro.build.version.sdk",
                                                                      "ro.soc.model", "x]"]) | SHORT_STRING,
                     HOSTILE_STRING | ANDROID_NUMBERS)
    sha = st.builds(lambda h, p: f"{h}  {p}", st.sampled_from(["a" * 64, "A" * 64, "g" * 64, "a" * 63, ""]),
                    HOSTILE_STRING)
    line = prop | sha | HOSTILE_STRING | st.sampled_from([json.dumps(m) for m in JOB])
    body = draw(st.lists(line, max_size=8).map("\n".join)).encode("utf-8", "surrogatepass") + draw(
        st.sampled_from(JUNK))
    pg = draw(st.sampled_from(["4242", "0", "-1", "1" * 30, "١٢", None]))
    rc = draw(st.sampled_from(["0", "0", "1", "127", "9" * 30, "9" * 5000, "١", "-1", None]))
    adb_code = draw(st.sampled_from([0, 0, 1, 255]))
    err = draw(st.sampled_from([b"", b"error: device offline", b"error: closed", b"\x1b[2J\xff"]))

    def answer(args: list[str], nonce: str) -> tuple[int, bytes, bytes]:
        if args[0] == "devices":
            return 0, devices, b""
        if args[0] != "shell":
            return 0, b"", b""
        head = b"" if pg is None else f"__HILBENCH_PG={nonce}:{pg}\n".encode()
        tail = b"" if rc is None else f"\n__HILBENCH_RC={nonce}:{rc}\n".encode()
        return adb_code, head + body + tail, err

    return answer


def test_adb_shell_regression() -> None:
    """What fuzzing found: an exit status of 5,000 digits between this call's markers (a hostile adbd knows the
    command, tag included) made ``shell`` raise ValueError (int() refuses over 4,300 digits), not a TransportError."""
    from harness.errors import TransportError

    t = ScriptedADB(Target(name="phone", transport="adb", adb=ADBSettings(serial="FUZZ01")),
                    lambda args, nonce: (0, f"hi\n__HILBENCH_RC={nonce}:{'9' * 5000}\n".encode(), b""))
    with pytest.raises(TransportError, match=r"^phone: probe: `echo hi` failed \(adb exit status 0\)"):
        t.shell("echo hi", step="probe")


@pytest.mark.slow
@FUZZ
@given(answer=adb_answers())
def test_adb_outputs_give_results_or_transport_errors(answer: Any) -> None:
    """The adb transport's readers of what the phone's shell printed (exit-status markers, getprop, sha256sum, a
    journal, adb devices) give their results or raise a one-line TransportError, nothing else."""
    from harness.errors import TransportError

    t = ScriptedADB(Target(name="phone", transport="adb", adb=ADBSettings(serial="FUZZ01")), answer)
    steps = [
        lambda: t.connect(),
        lambda: t.shell("echo hi", step="probe"),
        lambda: t.shell("echo hi", step="probe", retry=True, check=True),
        lambda: t.getprops(),
        lambda: t.fetch_journal(t.journal_path("r1")),
        lambda: t.remote_sha256(["/data/local/tmp/a", "/data/local/tmp/b c"]),
        lambda: t.kill_group(4242),
    ]
    for step in steps:
        try:
            got = step()
        except TransportError as exc:
            assert "\n" not in str(exc), str(exc)
            assert_printable(safe(exc))
            continue
        if isinstance(got, dict):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in got.items())
        elif isinstance(got, list):
            assert all(isinstance(line, str) and line and "\n" not in line for line in got)
        elif got is not None and not isinstance(got, bool):
            assert isinstance(got.code, int) and 0 <= got.code and isinstance(got.stdout, str)
