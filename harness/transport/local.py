"""The local transport: the agent as a subprocess of the host, over the same protocol."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.agent.bundle import agent_bundle
from harness.errors import TransportError
from harness.transport.base import JOURNAL_MAX, AgentProcess, SubprocessAgentProcess, Transport

__all__ = ["LocalTransport", "LocalAgentProcess"]


class LocalAgentProcess(SubprocessAgentProcess):
    """The local agent: a child process in a session (and process group) of its own, so that a Ctrl-C or
    SIGTERM meant for hilbench never reaches it, and :meth:`kill` stops it with whatever it started."""

    def kill(self) -> None:
        """SIGKILL to the agent's process group (a runner, a meter command it started go with it)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                if os.getpgid(self.proc.pid) == self.proc.pid:  # its own group, as start_agent made it
                    os.killpg(self.proc.pid, signal.SIGKILL)
        super().kill()


class LocalTransport(Transport):
    """Runs the shipped agent (the same zipapp a device gets) with a local Python.

    Models are used where they are: nothing is copied, so ``bytes_sent`` stays 0."""

    name = "local"
    probes_device = True

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        self.python = target.python or sys.executable
        self.workdir = Path(os.path.expanduser(os.environ.get("HILBENCH_CACHE") or target.workdir))

    @classmethod
    def device_key(cls, target: Any) -> tuple[Any, ...]:
        """``("local",)``: every local target is this one machine."""
        return ("local",)

    def prepare(self, files: dict[str, tuple[str, str]]) -> dict[str, str]:
        bundle = agent_bundle()
        agent_path = self.workdir / "agents" / f"{bundle.sha256}.pyz"
        try:
            if not agent_path.is_file():
                self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)  # private when new (issue 18)
                agent_path.parent.mkdir(mode=0o700, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=agent_path.parent, suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    f.write(bundle.data)
                os.replace(tmp, agent_path)
        except OSError as exc:
            raise TransportError(f"cannot write the agent to {agent_path}: {exc.strerror or exc}",
                                 target=self.target.name, step="prepare") from exc
        out = {role: host_path for role, (host_path, _sha) in files.items()}
        out["agent"] = str(agent_path)
        return out

    def run_shell(self, command: str, timeout: float = 20.0, *, step: str = "doctor") -> tuple[int, str]:
        try:
            proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return 127, ""
        return proc.returncode, proc.stdout

    def journal_path(self, run_id: str) -> str:
        return str(self.workdir / "journal" / f"{run_id}.jsonl")

    def start_agent(self, payload: dict[str, Any], journal: str, args: list[str] | None = None) -> AgentProcess:
        from harness.transport.shell_runner import runner_for_job, start_shell_runner

        picked = runner_for_job(self.target, payload) if args is None else None
        if picked is not None:  # the target's [runners] runs this backend's jobs (docs/runners.md)
            return start_shell_runner(self, payload, *picked)
        agent = self.prepare({})["agent"]
        cmd = [self.python, agent, "--journal", journal] + (args if args is not None else ["--job", "-"])
        env = dict(os.environ)
        env.update(self.target.env)
        env.pop("PYTHONPATH", None)  # the zipapp must stand alone, as on a device
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, start_new_session=True)
        except OSError as exc:
            raise TransportError(f"cannot start {self.python}: {exc.strerror or exc}",
                                 target=self.target.name, step="start agent") from exc
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(payload).encode() + b"\n")
            proc.stdin.close()
        except OSError:
            pass  # the agent died at once; its stderr says why
        return LocalAgentProcess(proc)

    def fetch_journal(self, path: str) -> list[str] | None:
        """The journal's lines (:meth:`Transport.journal_lines`); None when it cannot be read. One over
        :data:`JOURNAL_MAX` bytes is refused with a one-line TransportError (reading stops there)."""
        try:
            with open(path, "rb") as f:
                data = f.read(JOURNAL_MAX + 1)
        except OSError:
            return None
        if len(data) > JOURNAL_MAX:
            raise TransportError(f"the journal {path} is over {JOURNAL_MAX // 2**20} MB, more than any job writes: "
                                 "not read, so this job cannot be recovered from it",
                                 target=self.target.name, step="fetch journal")
        return self.journal_lines(data, path)
