"""A hostile device against the host's protocol path, for real: the device is a script (tests/support/hostile.py)
started through the local transport, whose real pipes the session reads. Every malformed message ends only
its own job, as an ``agent`` error with a one-line reason naming the field; the other job runs, the session
row is closed, and a flood or an endless line leaves the host's memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.hostile import HOSTILE_PLAN, hostile_target, plan_file

from harness import open_store
from harness.agent.protocol import MAX_LINE_BYTES
from harness.cli import main
from harness.config.plan import expand_jobs, load_plan
from harness.config.targets import load_targets
from harness.run.session import Progress, Runner
from harness.transport.local import LocalTransport

pytestmark = pytest.mark.slow  # every test here runs a hostile device in a child process

REPO = Path(__file__).resolve().parents[1]

#: The host's peak resident memory must stay under this (KB) whatever the device sends: it starts at
#: ~150-200 MB (numpy, pandas, pyarrow); one 200 MB line once took it to 670 MB and a flood to 3.6 GB.
PEAK_RSS_KB = 400 * 1024

_START = '''
emit(hello())
emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "load", "event": "begin"})
emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "load", "event": "end", "duration_ns": 1000})
'''
_FINISH = '''
emit(result())
'''


def _sample(**fields):
    msg = {"v": 1, "type": "sample", "t_ns": 5, "phase": "timed", "start": 0, "t0_ns": 100,
           "latency_ns": [10, 11, 12], "offset_ns": [0, 20, 40]}
    msg.update(fields)
    return msg


#: (case, what the device prints after its start, the stored reason after "evil: agent: ")
MALFORMED = [
    ("first end without duration_ns", 'emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "first", "event": "end"})',
     "phase message: duration_ns missing"),
    ("telemetry value abc", 'emit({"v": 1, "type": "telemetry", "t_ns": now(), "readings": [{"t_ns": 1, '
     '"sensor": "temp.cpu", "value": "abc", "unit": "C", "source": "thermal"}]})',
     "telemetry message: readings[0]: value must be a number, not str"),
    ("string latencies", f"emit({_sample(latency_ns=['1', '2', '3'])!r})",
     "sample message: latency_ns must be a list of integers"),
    ("nested 100000 deep", "raw('{\"v\": 1, \"type\": \"log\", \"x\": ' + '[' * 100000 + ']' * 100000 + '}\\n')",
     "a protocol line with more than 100000 objects and arrays"),
    ("nested 5000 deep", "raw('{\"v\": 1, \"type\": \"log\", \"x\": ' + '[' * 5000 + ']' * 5000 + '}\\n')",
     "a protocol line nested more than 32 deep"),
    ("a list for the message", "raw('[1, 2, 3]\\n')", "a protocol line must be a JSON object: '[1, 2, 3]'"),
    ("a list for the timed result", "emit(result(timed=[1, 2]))", "result message: timed must be an object, not list"),
    ("a list for a reading", 'emit({"v": 1, "type": "telemetry", "t_ns": now(), "readings": [[1, 2]]})',
     "telemetry message: readings[0] must be an object, not list"),
    ("mismatched offsets", f"emit({_sample(offset_ns=[0, 20])!r})", "sample message: offset_ns has 2 values, latency_ns 3"),
    ("latency beyond int64", f"emit({_sample(latency_ns=[10, 2 ** 64, 12])!r})",
     "sample message: latency_ns holds an integer beyond int64"),
    ("load_ns beyond int64", f"emit(result(load_ns={2 ** 70}))", "result message: load_ns is an integer beyond int64"),
    ("unknown phase", 'emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "evil", "event": "begin"})',
     "phase message: unknown phase 'evil'"),
    ("unknown sample phase", f"emit({_sample(phase='bogus')!r})", "sample message: unknown phase 'bogus'"),
    ("NaN", "raw('{\"v\": 1, \"type\": \"telemetry\", \"readings\": [{\"t_ns\": 1, \"sensor\": \"s\", \"value\": NaN}]}\\n')",
     "not a protocol line (NaN is not a number in this protocol"),
    ("1e999", "raw('{\"v\": 1, \"type\": \"telemetry\", \"readings\": [{\"t_ns\": 1, \"sensor\": \"s\", \"value\": 1e999}]}\\n')",
     "telemetry message: readings[0]: value is not a finite number"),
    ("more samples than the plan", "emit({'v': 1, 'type': 'sample', 'phase': 'timed', 'start': 0, 't0_ns': 1, "
     "'latency_ns': [5] * 21, 'offset_ns': list(range(21))})", "sample message: more timed samples than the plan allows (20)"),
    ("samples out of order", f"emit({_sample(start=7)!r})",
     "sample message: start is 7, expected 0 (the timed samples sent so far)"),
    ("negative latency", f"emit({_sample(latency_ns=[10, -1, 12])!r})", "sample message: latency_ns holds a negative latency"),
    ("an error message that is a list", 'emit({"v": 1, "type": "error", "category": "agent", "message": ["x"]})',
     "error message: message must be a string, not list"),
    ("a sensor name of 100 kB", 'emit({"v": 1, "type": "telemetry", "readings": [{"t_ns": 1, "sensor": "s" * 100000, '
     '"value": 1.0}]})', "telemetry message: readings[0]: sensor is longer than 256 characters"),
]


def _targets(tmp_path: Path, body: str) -> Path:
    """The hostile target ``evil`` and a well-behaved ``good`` (the real agent, local) in one folder."""
    folder = hostile_target(tmp_path, body)
    (folder / "good.toml").write_text(f'name = "good"\ntransport = "local"\nworkdir = "{tmp_path / "work-good"}"\n')
    return folder


def _run(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str], plan: str = HOSTILE_PLAN) -> tuple[int, str]:
    store = tmp_path / "res"
    code = main(["run", str(plan_file(tmp_path, plan)), "--targets-dir", str(_targets(tmp_path, body)),
                 "--target", "evil", "--target", "good", "--store", str(store), "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("case,line,reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_message_ends_only_its_job(tmp_path, capsys, case, line, reason):
    code, output = _run(tmp_path, _START + line + "\n" + _FINISH, capsys)
    assert code == 3, output
    assert "Traceback" not in output
    store = open_store(tmp_path / "res")
    runs = store.runs().set_index("target")
    evil, good = runs.loc["evil"], runs.loc["good"]
    assert good["status"] == "ok", good["error_message"]
    assert evil["status"] == "error" and evil["error_category"] == "agent"
    assert evil["error_message"].startswith("evil: agent: " + reason), evil["error_message"]
    assert "\n" not in evil["error_message"]
    (session,) = store.sessions().to_dict("records")
    assert session["status"] == "finished" and session["jobs_ok"] == 1 and session["jobs_failed"] == 1


def test_a_valid_hostile_stream_is_stored_as_sent(tmp_path, capsys):
    """The checker lets a legitimate job through unchanged: samples, first, telemetry nulls, names cut."""
    body = _START + '''
emit({"v": 1, "type": "phase", "t_ns": 500, "phase": "first", "event": "begin"})
emit({"v": 1, "type": "phase", "t_ns": 900, "phase": "first", "event": "end", "duration_ns": 321})
emit({"v": 1, "type": "sample", "phase": "warmup", "start": 0, "t0_ns": 1000, "latency_ns": [7] * 5,
      "offset_ns": [0, 10, 20, 30, 40]})
for start in (0, 10):
    emit({"v": 1, "type": "sample", "phase": "timed", "start": start, "t0_ns": 2000 + start * 100,
          "latency_ns": [100 + start + i for i in range(10)], "offset_ns": [i * 100 for i in range(10)]})
emit({"v": 1, "type": "telemetry", "readings": [{"t_ns": 2100, "sensor": "temp.cpu", "value": 41.5, "unit": "C",
      "source": "thermal"}, {"t_ns": 2100, "sensor": "power.soc", "value": None, "reason": "no rail"}]})
emit({"v": 1, "type": "error", "category": "model", "message": "x" * 100000})
'''
    code, output = _run(tmp_path, body, capsys)
    assert code == 3 and "Traceback" not in output
    store = open_store(tmp_path / "res")
    evil = store.runs().set_index("target").loc["evil"]
    assert evil["error_category"] == "model" and len(evil["error_message"]) < 2100  # cut, not refused
    assert evil["cpu_model"] == "Evil CPU"
    samples = store.samples()
    samples = samples[samples["run_id"] == evil["run_id"]]
    assert list(samples["phase"]) == ["warmup"] * 5 + ["timed"] * 20  # an error run keeps no "first"
    timed = samples[samples["phase"] == "timed"]
    assert list(timed["iteration"]) == list(range(20))
    assert list(timed["latency_ns"]) == [100 + i for i in range(10)] + [110 + i for i in range(10)]
    assert list(timed["t_ns"])[:3] == [2000, 2100, 2200] and list(timed["t_ns"])[10] == 3000
    tel = store.telemetry()
    tel = tel[tel["run_id"] == evil["run_id"]].reset_index(drop=True)
    assert list(tel["sensor"]) == ["temp.cpu", "power.soc"]
    assert tel.loc[0, "value"] == 41.5 and tel["value"].isna().tolist() == [False, True]
    assert tel["unit"][0] == "C" and tel["unit"].isna().tolist() == [False, True]


def test_a_failure_inside_the_session_costs_one_job(tmp_path, capsys, monkeypatch):
    """A bug in the host's own handling (here: the progress display raising) is stored as that job's
    error; the session goes on to the next job and its row is closed."""
    from harness.run import session as session_mod

    real = session_mod.JobRun.handle

    def handle(self, msg, progress):
        if self.job.target.name == "evil" and msg.get("type") == "phase":
            raise KeyError("boom")
        return real(self, msg, progress)

    monkeypatch.setattr(session_mod.JobRun, "handle", handle)
    code, output = _run(tmp_path, _START + _FINISH, capsys)
    assert code == 3 and "Traceback" not in output
    store = open_store(tmp_path / "res")
    runs = store.runs().set_index("target")
    assert runs.loc["good", "status"] == "ok"
    message = runs.loc["evil", "error_message"]
    assert runs.loc["evil", "error_category"] == "agent"
    assert message.startswith("evil: agent: hilbench failed on a phase message (a bug, please report it): KeyError")
    assert store.sessions()["status"].tolist() == ["finished"]


# --- memory: the host runs in a child that reports its own peak -------------------------------------------

_DRIVER = ("import sys\n"
           "from harness.cli import main\n"
           "code = main(sys.argv[1:])\n"
           # VmHWM: this process's own peak RSS. ru_maxrss would not do: Linux carries the parent's peak over
           # fork and exec, so under pytest it reports the test process's size.
           "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
           "print('HOST', code, hwm)\n")

#: 200 MB on one line, written 1 MB at a time (the fake device itself stays small).
LONG_LINE = '''
emit(hello())
raw('{"v": 1, "type": "log", "x": "')
for _ in range(200):
    raw("a" * 1000000)
raw('"}\\n')
emit(result())
'''

#: Sample batches of 5,000 as fast as the pipe takes them, for up to 6 s.
SAMPLE_FLOOD = '''
emit(hello())
batch = json.dumps({"v": 1, "type": "sample", "phase": "timed", "start": 0, "t0_ns": 10 ** 12,
                    "latency_ns": [1234567] * 5000, "offset_ns": list(range(0, 5000000, 1000))})
end = time.monotonic() + 6
start = 0
while time.monotonic() < end:
    raw(batch.replace('"start": 0', '"start": %d' % start) + "\\n")
    start += 5000
'''

#: Lines the host reads and drops (log messages), as fast as it takes them, for 4 s.
LOG_FLOOD = '''
emit(hello())
line = json.dumps({"v": 1, "type": "log", "message": "x" * 100000}) + "\\n"
end = time.monotonic() + 4
while time.monotonic() < end:
    raw(line)
'''

#: A plan whose timed phase is bounded by time only (min_s/max_s): up to 1 M samples are legitimate.
TIME_BOUNDED_PLAN = HOSTILE_PLAN.replace("timed = { count = 20 }", "timed = { count = 20, min_s = 1, max_s = 2 }")


def host_peak(tmp_path: Path, body: str, plan: str = HOSTILE_PLAN) -> tuple[int, int, dict]:
    """Run ``hilbench run`` against the hostile ``body`` in a child process; (exit code, peak RSS KB, run row)."""
    targets = hostile_target(tmp_path, body)
    store = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-c", _DRIVER, "run", str(plan_file(tmp_path, plan)), "--targets-dir",
                           str(targets), "--target", "evil", "--store", str(store), "--quiet"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stdout.strip().splitlines()[-1].split()
    assert last[0] == "HOST", proc.stdout + proc.stderr
    s = open_store(store)
    (row,) = s.runs().to_dict("records")
    assert s.sessions()["status"].tolist() == ["finished"]
    return int(last[1]), int(last[2]), row


def test_a_200_mb_line_ends_the_job_with_memory_bounded(tmp_path):
    code, peak_kb, row = host_peak(tmp_path, LONG_LINE)
    assert code == 3
    assert row["error_category"] == "agent"
    assert row["error_message"] == f"evil: agent: a protocol line longer than {MAX_LINE_BYTES} bytes"
    assert peak_kb < PEAK_RSS_KB, f"host peak {peak_kb / 1024:.0f} MB"


@pytest.mark.parametrize("plan,cap", [(HOSTILE_PLAN, 20), (TIME_BOUNDED_PLAN, 1_000_000)], ids=["count", "time-bounded"])
def test_a_sample_flood_ends_the_job_with_memory_bounded(tmp_path, plan, cap):
    code, peak_kb, row = host_peak(tmp_path, SAMPLE_FLOOD, plan)
    assert code == 3
    assert row["error_category"] == "agent"
    assert row["error_message"] == f"evil: agent: sample message: more timed samples than the plan allows ({cap})"
    assert peak_kb < PEAK_RSS_KB, f"host peak {peak_kb / 1024:.0f} MB"


def test_a_flood_of_lines_back_pressures_the_pipe(tmp_path):
    code, peak_kb, row = host_peak(tmp_path, LOG_FLOOD)
    assert code == 3
    assert row["error_category"] == "agent" and "before reporting a result" in row["error_message"]
    assert peak_kb < PEAK_RSS_KB, f"host peak {peak_kb / 1024:.0f} MB"


# --- recovery from a journal --------------------------------------------------------------------------------

def _job(tmp_path: Path):
    targets = hostile_target(tmp_path, "pass\n")
    plan = load_plan(plan_file(tmp_path))
    (job,) = expand_jobs(plan, load_targets([targets]), [load_targets([targets])["evil"]])
    return job


@pytest.mark.parametrize("bad,reason", [
    ('{"v": 1, "type": "phase", "phase": "first", "event": "end"}', "phase message: duration_ns missing"),
    ('{"v": 1, "type": "telemetry", "readings": [{"t_ns": 1, "sensor": "s", "value": "abc"}]}',
     "telemetry message: readings[0]: value must be a number, not str"),
    ('{"v": 1, "type": "log", "x": ' + "[" * 5000 + "]" * 5000 + "}", "a protocol line nested more than 32 deep"),
    ('{"v": 1, "type": "tel', "not a protocol line"),
], ids=["first without duration", "telemetry abc", "deep", "broken before the end"])
def test_a_journal_with_a_malformed_line_is_recovered_as_an_agent_error(tmp_path, bad, reason):
    job = _job(tmp_path)
    runner = Runner(open_store(tmp_path / "res"), "s-test", {}, Progress())
    hello = json.dumps({"v": 1, "type": "hello", "t_ns": 1, "python": "3.11"})
    result = json.dumps({"v": 1, "type": "result", "t_ns": 2, "load_ns": 5})
    run = runner._replay(job, "/x/journal/r1.jsonl", [hello, bad, result])
    assert run.error is not None and run.error[0] == "agent"
    assert run.error[1].startswith("evil: journal: " + reason), run.error[1]
    # A line cut short by the drop is still the end of what stands, not an error.
    run = runner._replay(job, "/x/journal/r1.jsonl", [hello, result, '{"v": 1, "type": "tel'])
    assert run.error is None and run.result is not None


def test_the_local_journal_read_stops_at_an_over_long_line(tmp_path):
    job = _job(tmp_path)
    path = tmp_path / "j.jsonl"
    with open(path, "w") as f:
        f.write('{"v": 1, "type": "hello"}\n')
        f.write("x" * (MAX_LINE_BYTES + 10) + "\n")
        f.write('{"v": 1, "type": "result"}\n')
    lines = LocalTransport(job.target).fetch_journal(str(path))
    assert lines == ['{"v": 1, "type": "hello"}']


def test_a_journal_of_millions_of_tiny_lines_is_refused_with_memory_bounded(tmp_path, monkeypatch):
    """A journal's bytes are capped, and so are its lines: 21 M lines of "ab" would cost ~3.5 GB as strings."""
    import tracemalloc

    from harness.errors import TransportError
    from harness.transport import base, local

    job = _job(tmp_path)
    t = LocalTransport(job.target)
    path = tmp_path / "j.jsonl"
    path.write_bytes(b"ab\n" * (base.JOURNAL_MAX_LINES + 1))
    tracemalloc.start()
    try:
        with pytest.raises(TransportError) as err:
            t.fetch_journal(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(err.value) and f"holds more than {base.JOURNAL_MAX_LINES} lines" in str(err.value)
    assert peak < 128 * 2**20  # ~330 bytes a line at the cap (21 M lines took 3.5 GB)
    # Blank lines cost nothing and count for nothing; a journal over the byte cap is not read at all.
    path.write_bytes(b"\n" * 10_000_000 + b'{"v": 1, "type": "hello"}\n')
    assert t.fetch_journal(str(path)) == ['{"v": 1, "type": "hello"}']
    monkeypatch.setattr(local, "JOURNAL_MAX", 1024)
    with pytest.raises(TransportError, match="is over 0 MB"):
        t.fetch_journal(str(path))


#: One line just under the length limit, made of ~4 M empty objects (a GB once decoded, were it decoded).
MANY_OBJECTS = '''
emit(hello())
raw('{"v": 1, "type": "log", "x": [' + "{}," * 4000000 + '{}]}\\n')
emit(result())
'''


def test_a_line_of_millions_of_tiny_objects_is_refused_before_it_is_decoded(tmp_path):
    from harness.agent.protocol import MAX_CONTAINERS

    code, peak_kb, row = host_peak(tmp_path, MANY_OBJECTS)
    assert code == 3 and row["error_category"] == "agent"
    assert row["error_message"] == f"evil: agent: a protocol line with more than {MAX_CONTAINERS} objects and arrays"
    assert peak_kb < PEAK_RSS_KB, f"host peak {peak_kb / 1024:.0f} MB"
