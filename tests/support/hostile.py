"""A hostile device for tests: a local target whose ``python`` is a script that prints chosen protocol lines.

This is how an attacker who controls a device talks to the host: the host starts "the agent" through a
real transport (the local one: a real child process and real pipes) and reads whatever it writes. Nothing
here mocks the session or the transport; only the device is fake, and it is named as such.

Usage::

    targets = hostile_target(tmp_path, '''
        emit(hello())
        emit({"v": 1, "type": "phase", "phase": "first", "event": "end"})   # no duration_ns
    ''')
    code = main(["run", str(plan_file(tmp_path)), "--targets-dir", str(targets), "--target", "evil", ...])

The script's ``body`` runs for jobs; ``probe`` (default: a plain hello) answers ``--probe`` (doctor and the
session's device probe). In both, ``job`` is the job the host sent (``{}`` for a probe), ``emit(obj)``
writes one JSON line, ``raw(text)`` writes text as it is (no newline added), ``hello(**fields)`` is a
plausible hello and ``result(**fields)`` a plausible result.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

__all__ = ["hostile_python", "hostile_target", "plan_file", "HOSTILE_PLAN"]

#: One synthetic job: the hostile device answers it however its script says.
HOSTILE_PLAN = """
name = "hostile"
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = 0.2
[policy]
warmup = 5
timed = { count = 20 }
telemetry = false
"""

_PRELUDE = '''
import json, os, sys, time
_out = sys.stdout
def emit(obj):
    _out.write(json.dumps(obj) + "\\n")
    _out.flush()
def raw(text):
    _out.write(text)
    _out.flush()
def now():
    return time.monotonic_ns()
def hello(**fields):
    msg = {"v": 1, "type": "hello", "t_ns": now(), "agent_version": "0.1.0", "protocol": 1,
           "python": "3.11.7", "os": "Linux", "os_release": "6.1", "machine": "x86_64",
           "cpu_model": "Evil CPU", "cpu_count": 2, "device_model": "evil board", "emulated": None,
           "backends": {"synthetic": {"available": True, "version": "0.1", "stand_in": True}}}
    msg.update(fields)
    return msg
def result(**fields):
    msg = {"v": 1, "type": "result", "t_ns": now(), "load_ns": 1000, "first_ns": 2000,
           "warmup": {"count": 5, "duration_ns": 10000, "stop_reason": "count"},
           "timed": {"count": 20, "duration_ns": 40000, "stop_reason": "count"},
           "memory": {}, "effective_settings": {}}
    msg.update(fields)
    return msg
args = sys.argv[1:]
job = {}
if "--job" in args and args[args.index("--job") + 1] == "-":
    line = sys.stdin.readline()
    job = json.loads(line) if line.strip() else {}
'''


def hostile_python(folder: Path, body: str, probe: str | None = None) -> Path:
    """An executable stand-in for a device's ``python``: runs ``body`` for a job, ``probe`` for ``--probe``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "evil-python"
    probe_code = textwrap.dedent(probe) if probe is not None else "emit(hello())\n"
    script = (f"#!{sys.executable}\n" + _PRELUDE + "if '--probe' in args:\n"
              + textwrap.indent(probe_code, "    ") + "else:\n"
              + textwrap.indent(textwrap.dedent(body) or "pass\n", "    "))
    path.write_text(script)
    path.chmod(0o755)
    return path


def hostile_target(tmp_path: Path, body: str, probe: str | None = None, *, name: str = "evil",
                   extra: str = "") -> Path:
    """A ``targets`` folder holding one local target ``name`` whose python is :func:`hostile_python`.
    Returns the folder (for ``--targets-dir``). ``extra`` is appended to the target file."""
    python = hostile_python(tmp_path / "device", body, probe)
    folder = tmp_path / "targets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(
        f'name = "{name}"\ntransport = "local"\npython = "{python}"\nworkdir = "{tmp_path / "work"}"\n{extra}')
    return folder


def plan_file(tmp_path: Path, text: str = HOSTILE_PLAN) -> Path:
    path = tmp_path / "hostile-plan.toml"
    path.write_text(text)
    return path
