"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from harness.agent.bundle import agent_bundle

PYENV = Path.home() / ".pyenv" / "versions"
T = TypeVar("T")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def missing_in_ci(what: str, reason: str) -> NoReturn:
    """Skip a test whose real part is missing here; fail it in CI, which must never pass by skipping."""
    if in_ci():
        pytest.fail(f"{what} cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"{what} unavailable: {reason}")


def pyenv_python(version_prefix: str) -> str | None:
    """Path of a pyenv interpreter whose version starts with ``version_prefix``, if installed."""
    if PYENV.is_dir():
        for d in sorted(PYENV.iterdir(), reverse=True):
            if d.name.startswith(version_prefix) and (d / "bin" / "python").exists():
                return str(d / "bin" / "python")
    found = shutil.which(f"python{version_prefix}")
    return found


def write_agent(tmp: Path) -> Path:
    path = tmp / "agent.pyz"
    path.write_bytes(agent_bundle().data)
    return path


def run_agent(python: str, agent: Path, job: dict[str, Any] | None, *args: str,
              timeout: float = 60, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]], str]:
    """Run the shipped agent with ``job`` on stdin; returns (exit code, messages, stderr)."""
    cmd = [python, str(agent), *args]
    if job is not None:
        cmd += ["--job", "-"]
    proc = subprocess.run(cmd, input=(json.dumps(job) + "\n") if job is not None else "", capture_output=True,
                          text=True, timeout=timeout, env=None if env is None else {**os.environ, **env})
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, messages, proc.stderr


def ctrl_c_mid_run(run_args: list[str], ready: Callable[[], T | None], *, presses: int = 1, settle_s: float = 0.3,
                   env: dict[str, str] | None = None) -> tuple[T, str]:
    """Start ``hilbench run RUN_ARGS`` as a child, wait up to 60 s for ``ready()`` to return a value, let the
    job go on ``settle_s``, press Ctrl-C (SIGINT) ``presses`` times, and check that the run ends with exit
    130 and no traceback. Returns (what ``ready`` returned, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *run_args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        end = time.monotonic() + 60
        while (value := ready()) is None:
            assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.05)
        time.sleep(settle_s)  # into its warm-up or timed phase
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    return value, err


#: A two-job plan on the synthetic STAND-IN backend (no model file): what CLI and store tests run.
SYNTH = """
name = "synth"
[[models]]
name = "fake"
backends = ["synthetic"]
[backends.synthetic]
latency_ms = [0.2, 0.4]
jitter_ms = 0.02
[policy]
warmup = 5
timed = { count = 80 }
telemetry = false
"""
