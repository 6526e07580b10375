"""Small helpers shared by tests (not fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

from harness.agentpkg import agent_bundle

PYENV = Path.home() / ".pyenv" / "versions"


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
