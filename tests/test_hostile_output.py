"""A hostile device cannot drive the user's terminal (issue 18, item 4), crash ``hilbench doctor`` with a
malformed hello, or make an SVG figure invalid XML.

The device is played for real (tests/support/hostile.py: a local target whose ``python`` is a script printing chosen
protocol lines through the real local transport). It puts terminal escapes (clear screen, window title with
BEL, colour), a C1 CSI and a bidirectional override into every text field it can; the commands that print
device text must show them as visible escapes and never pass the raw bytes on.
"""

from __future__ import annotations

import io
import json
import re
import socket
import sys
import threading
import xml.etree.ElementTree as ET

import pytest
from support.hostile import hostile_target, plan_file

from harness import open_store
from harness.cli import main

#: What the hostile device writes, as Python source (the fake device's script is Python).
EVIL_SRC = r'"\x1b[2J\x1b]0;TITLE\x07\x1b[31m\u202e\x9b"'
EVIL = "\x1b[2J\x1b]0;TITLE\x07\x1b[31m\u202e\x9b"
#: The same text as it must be shown: every control and format character a visible escape.
SHOWN = r"\x1b[2J\x1b]0;TITLE\x07\x1b[31m\u202e\x9b"
#: The bytes that must never reach the terminal from a device.
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\u202e")

#: The hello of the hostile device: escapes in every text field doctor and show print.
HELLO = f"""
E = {EVIL_SRC}
def evil_hello():
    return hello(cpu_model="cpu" + E, device_model="board" + E, os="Linux" + E, os_release="6.1" + E,
                 python="3.11" + E, machine="x86_64" + E, agent_version="0.1" + E, cpu_governor="ondemand" + E,
                 emulated="qemu" + E, free_disk_bytes=10 ** 10, memory_kb={{"MemTotal": 4194304, "MemAvailable": 2097152}},
                 sensors={{"sources": ["hwmon power" + E], "missing": ["fan" + E]}},
                 backends={{"synthetic": {{"available": True, "version": "0.1" + E, "stand_in": True}},
                           "onnxruntime": {{"available": True, "version": "1.17" + E,
                                           "providers": ["CPUExecutionProvider" + E]}},
                           "litert": {{"available": False, "reason": "missing" + E}}}})
"""

#: A job that succeeds, with escapes in the hello, the stop reasons, the runner, settings and sensor names.
OK_JOB = HELLO + """
emit(evil_hello())
emit({"v": 1, "type": "phase", "phase": "first", "event": "begin", "t_ns": now()})
emit({"v": 1, "type": "phase", "phase": "first", "event": "end", "t_ns": now(), "duration_ns": 2000})
emit({"v": 1, "type": "phase", "phase": "warmup", "event": "begin", "t_ns": now()})
emit({"v": 1, "type": "phase", "phase": "warmup", "event": "end", "t_ns": now()})
t0 = now()
emit({"v": 1, "type": "sample", "phase": "warmup", "start": 0, "t0_ns": t0, "latency_ns": [200000] * 5,
      "offset_ns": [i * 200000 for i in range(5)]})
emit({"v": 1, "type": "telemetry", "readings": [
    {"t_ns": t0 + i * 1000, "sensor": s + E, "value": 50.0 + i, "unit": "C" + E, "source": "sysfs" + E}
    for i in range(3) for s in ("temp.cpu", "power.board")]})
emit({"v": 1, "type": "sample", "phase": "timed", "start": 0, "t0_ns": t0, "latency_ns": [200000 + i for i in range(20)],
      "offset_ns": [i * 200000 for i in range(20)]})
emit(result(warmup={"count": 5, "duration_ns": 10000, "stop_reason": "count" + E},
            timed={"count": 20, "duration_ns": 40000, "stop_reason": "count" + E},
            runner="runner" + E, effective_settings={"threads" + E: "4" + E}))
"""

#: A job that fails: escapes in the error message and on stderr, then exit status 1.
FAILED_JOB = HELLO + """
emit(evil_hello())
sys.stderr.write("Traceback" + E + "\\nsecond line " + E + "\\n")
sys.stderr.flush()
emit({"v": 1, "type": "error", "category": "backend", "message": "boom" + E})
sys.exit(1)
"""

PROBE = HELLO + "emit(evil_hello())\n"
#: What the fake python answers when doctor asks its version (``python -c ...``): doctor then probes it.
VERSION = 'if "-c" in args:\n    print("3.11.7")\n'


def _assert_clean(text: str, *, shown: bool = True) -> None:
    for ch in FORBIDDEN:
        assert ch not in text, f"{ch!r} reached the terminal:\n{text!r}"
    if shown:
        assert SHOWN in text, f"the device's text is not shown as escapes:\n{text}"


class _Terminal(io.StringIO):
    """stderr that says it is a terminal: the run draws its live display (cursor movement) there."""

    def isatty(self) -> bool:
        return True


#: The live display's own control sequences (cursor up, erase line): everything else must be the device's.
_OWN = re.compile(r"\r?\x1b\[(?:\d+A|2K|K)")


def _run(tmp_path, body: str, *, live: bool = False, monkeypatch=None, capsys=None) -> tuple[int, str, str, str]:
    targets = hostile_target(tmp_path, body, probe=PROBE)
    store = tmp_path / "res"
    argv = ["run", str(plan_file(tmp_path)), "--targets-dir", str(targets), "--target", "evil", "--store", str(store)]
    if live:
        term = _Terminal()
        monkeypatch.setenv("TERM", "xterm")
        monkeypatch.setattr(sys, "stderr", term)
        code = main(argv)
        monkeypatch.undo()
        out, err = capsys.readouterr().out, term.getvalue()
    else:
        code = main(argv)
        out, err = capsys.readouterr()
    return code, out, err, str(store)


def test_a_live_display_shows_a_failed_job_s_error_as_escapes(tmp_path, monkeypatch, capsys):
    code, out, err, _store = _run(tmp_path, FAILED_JOB, live=True, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 3, (out, err)
    assert "\x1b[2K" in err, "the live display was not drawn"
    own_removed = _OWN.sub("", err)  # the display's own cursor movement: everything else is text
    _assert_clean(own_removed, shown=False)
    assert "FAILED (backend): boom" + SHOWN in own_removed
    _assert_clean(out, shown=False)


def test_a_successful_hostile_run_shows_device_text_as_escapes(tmp_path, monkeypatch, capsys):
    code, out, err, store = _run(tmp_path, OK_JOB, live=True, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, (out, err)
    _assert_clean(_OWN.sub("", err), shown=False)
    _assert_clean(out, shown=False)
    run_id = open_store(store).runs()["run_id"].iloc[0]

    # show: device and CPU model, python, os, runner, effective settings, stop reasons, sensors
    assert main(["show", run_id, "--store", store]) == 0
    shown = capsys.readouterr()
    _assert_clean(shown.out)
    _assert_clean(shown.err, shown=False)
    for field in ("board", "cpu", "3.11", "Linux", "x86_64", "runner", "count"):
        assert field + SHOWN in shown.out, field

    # results: the table, and the JSON (faithful data; JSON escapes control characters itself)
    assert main(["results", "--store", store]) == 0
    _assert_clean(capsys.readouterr().out, shown=False)
    assert main(["results", "--store", store, "--format", "json"]) == 0
    _assert_clean(capsys.readouterr().out, shown=False)


def test_a_failed_job_shows_its_error_and_stderr_as_escapes(tmp_path, capsys):
    code, out, err, store = _run(tmp_path, FAILED_JOB, capsys=capsys)
    assert code == 3, (out, err)
    assert "FAILED (backend): boom" + SHOWN in err
    _assert_clean(err)
    _assert_clean(out, shown=False)
    run_id = open_store(store).runs()["run_id"].iloc[0]
    assert main(["show", run_id, "--store", store]) == 0
    shown = capsys.readouterr().out
    _assert_clean(shown)
    assert "ERROR (backend): boom" + SHOWN in shown
    assert "    Traceback" + SHOWN in shown and "    second line " + SHOWN in shown  # the stderr tail, line by line
    assert main(["results", "--store", store]) == 0
    _assert_clean(capsys.readouterr().out, shown=False)


@pytest.mark.slow
def test_csv_is_faithful_data_in_a_pipe_and_escaped_on_a_terminal(tmp_path, monkeypatch, capsys):
    code, *_rest, store = _run(tmp_path, OK_JOB, capsys=capsys)
    assert code == 0
    from harness.store import open_store as _open

    _open(store).runs()  # the store is readable
    # The summary carries no device text today; give the stored model name the device's bytes to test both.
    import pandas as pd

    path = tmp_path / "res"
    assert path.is_dir()
    summary = _open(store).summary()
    assert not summary.empty
    from harness.cli import commands as cli

    evil = summary.assign(model="fake" + EVIL)
    monkeypatch.setattr(cli, "open_store", lambda root: _Summary(evil))
    assert main(["results", "--format", "csv", "--store", store]) == 0
    piped = capsys.readouterr().out
    assert "fake" + EVIL in piped  # faithful: a CSV read by a program gets the data as stored
    assert pd.read_csv(io.StringIO(piped))["model"].iloc[0] == "fake" + EVIL
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    assert main(["results", "--format", "csv", "--store", store]) == 0
    _assert_clean(term.getvalue())
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["results", "--store", store]) == 0  # the table: always shown safe
    _assert_clean(sys.stdout.getvalue())


class _Summary:
    """A store whose summary is given (a shared results store someone wrote hostile strings into)."""

    def __init__(self, summary):
        self._summary = summary
        self.root = "shared"

    def runs(self):
        return self._summary

    def summary(self, run_ids=None):
        return self._summary

    def sessions(self):
        import pandas as pd

        return pd.DataFrame({"session_id": [], "status": [], "status_detail": []})


def test_doctor_shows_hello_fields_as_escapes(tmp_path, capsys):
    targets = hostile_target(tmp_path, VERSION, probe=PROBE, extra='runtimes = ["tflite"]\n')
    code = main(["doctor", "evil", "--targets-dir", str(targets)])
    out, err = capsys.readouterr()
    assert code == 1, out  # tflite (an alias: litert) is declared but missing
    _assert_clean(out)
    _assert_clean(err, shown=False)
    for field in ("cpu", "Linux", "x86_64", "1.17", "CPUExecutionProvider", "ondemand", "missing", "qemu",
                  "hwmon power"):
        assert field + SHOWN in out, field


@pytest.mark.parametrize("fields, problem", [
    ('backends=["onnxruntime"]', "backends"),
    ('backends="x"', "backends"),
    ('cpu_count="many"', "cpu_count"),
    ('backends={"onnxruntime": "yes", "tflite": {"available": True, "providers": "CPU"}}', "backends"),
    ('sensors=["hwmon"], memory_kb={"MemTotal": "lots"}, free_disk_bytes="1", cpu_governor=["x"]', "sensors"),
    ('sensors={"sources": [1, None, "power"], "missing": "x"}, memory_kb=[1], emulated=True', "sensors"),
])
def test_doctor_says_in_one_line_which_hello_fields_are_malformed(tmp_path, capsys, fields, problem):
    probe = f"emit(hello({fields}))\n"
    targets = hostile_target(tmp_path, VERSION, probe=probe)
    code = main(["doctor", "evil", "--targets-dir", str(targets)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code in (0, 1), (out, err)
    malformed = [line for line in out.splitlines() if "malformed" in line]
    assert len(malformed) == 1 and problem in malformed[0], out


def _banner_server(banner: bytes) -> tuple[int, threading.Thread]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                conn.sendall(banner)
                conn.settimeout(2)
                try:
                    conn.recv(1024)  # the client's own banner, then the server hangs up
                except OSError:
                    pass
        except OSError:
            pass
        finally:
            server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


@pytest.mark.parametrize("banner", [
    b"SSH-2.0-Evil" + EVIL.encode("utf-8") + b"\r\n",  # an SSH banner: printed before the host key is checked
    b"HTTP/1.1 200" + EVIL.encode("utf-8") + b"\r\n",  # not SSH at all
])
def test_doctor_prints_an_ssh_banner_safely(tmp_path, capsys, banner):
    port, thread = _banner_server(banner)
    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "banner.toml").write_text(
        f'name = "banner"\ntransport = "ssh"\nhost = "127.0.0.1"\nport = {port}\nuser = "nobody"\n'
        f'[ssh]\nknown_hosts = "{tmp_path / "known_hosts"}"\nuse_ssh_config = false\nconnect_timeout_s = 5\n')
    code = main(["doctor", "banner", "--targets-dir", str(folder)])
    thread.join(10)
    out, err = capsys.readouterr()
    assert code == 1, out
    assert "Traceback" not in out + err
    for text in (out, err):
        for ch in FORBIDDEN:
            assert ch not in text, f"{ch!r} reached the terminal:\n{text!r}"
    assert "Evil\\x1b[2J" in out or "\\x1b[2J" in out, out  # the banner shown, its escapes visible


@pytest.mark.slow
def test_plots_of_hostile_runs_are_valid_svg(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code, *_rest, store = _run(tmp_path, OK_JOB, capsys=capsys)
    assert code == 0
    run_id = open_store(store).runs()["run_id"].iloc[0]
    for kind in ("timeline", "distribution", "targets"):
        svg = tmp_path / f"{kind}.svg"
        args = ["plot", kind, "--output", str(svg), "--store", store] + (["--run", run_id] if kind == "timeline" else [])
        assert main(args) == 0, capsys.readouterr()
        ET.parse(svg)  # raises on a character XML does not allow


def test_the_html_report_shows_device_text_as_escapes(tmp_path, capsys):
    code, *_rest, store = _run(tmp_path, OK_JOB, capsys=capsys)
    assert code == 0
    html_path = tmp_path / "report.html"
    assert main(["report", "--store", store, "--output", str(html_path), "--no-plots"]) == 0
    capsys.readouterr()
    page = html_path.read_text(encoding="utf-8")
    _assert_clean(page)  # escaped for HTML, and a bidi override or escape cannot reorder or hide what is read
    assert "board" + SHOWN in page and "count" + SHOWN in page


@pytest.mark.parametrize("fields", ['memory_kb={"MemTotal": 10 ** 400}', "free_disk_bytes=10 ** 400",
                                    'cpu_model="x" * 100000'])
def test_doctor_validates_the_probe_hello_like_a_jobs(tmp_path, capsys, fields):
    """The probe's hello passes the same validation as a job's (int64, string caps): no OverflowError."""
    targets = hostile_target(tmp_path, VERSION, probe=f"emit(hello({fields}))\n")
    code = main(["doctor", "evil", "--targets-dir", str(targets)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if "10 ** 400" in fields:
        assert code == 1 and "hello message" in out and "int64" in out, out
    else:
        assert code == 0 and "x" * 300 not in out, out  # cut to 256 characters


@pytest.mark.slow
def test_a_probe_hello_of_the_wrong_shape_is_stored_cleaned_and_report_reads_it(tmp_path, capsys):
    """The session's device probe is stored with every run (device_facts); a later report must not trip on it."""
    body = '''
emit(hello())
emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "first", "event": "begin"})
emit({"v": 1, "type": "phase", "t_ns": now(), "phase": "first", "event": "end", "duration_ns": 2000})
emit({"v": 1, "type": "sample", "phase": "timed", "start": 0, "t0_ns": now(),
      "latency_ns": [200000 + i for i in range(20)], "offset_ns": [i * 200000 for i in range(20)]})
emit(result())
'''
    targets = hostile_target(tmp_path, body, probe='emit(hello(backends=["x"], cpu_governor={"a": 1}))\n')
    store = str(tmp_path / "res")
    assert main(["run", str(plan_file(tmp_path)), "--targets-dir", str(targets), "--target", "evil",
                 "--store", store, "--quiet"]) == 0
    facts = open_store(store).runs()["device_facts"].iloc[0]
    probe = (json.loads(facts) if isinstance(facts, str) else facts)["probe"]
    assert probe["backends"] == {} and probe["cpu_governor"] is None
    capsys.readouterr()
    assert main(["report", "--store", store, "--output", str(tmp_path / "r.html")]) == 0
    assert "Traceback" not in capsys.readouterr().err
