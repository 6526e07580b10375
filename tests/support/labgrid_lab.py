"""A real labgrid lab on loopback for tests: ``labgrid-coordinator`` and ``labgrid-exporter`` processes (labgrid's
own programs, not stand-ins), places made through the coordinator's gRPC API.

    with Coordinator(tmp / "coord") as coord:                       # labgrid-coordinator --listen 127.0.0.1:0
        exp = coord.exporter("lab1", {"board1": {"NetworkService": {"address": "127.0.0.1", "port": 2222,
                                                                   "username": "me"}}})
        coord.add_place("board1", match="lab1/board1/*", tags={"board": "pi"})
        exp.stop()                                                  # the exporter vanishes
        coord.restart()                                             # same port and folder: places.yaml kept
        coord.restart_exporter(exp)                                 # labgrid's exporters exit (100) meanwhile

What labgrid 25/26's coordinator keeps across a restart: the places it has saved to places.yaml (it saves at most
every 15 s, and not on shutdown), without their acquired state or reservation; reservations are dropped. Its
exporters exit with status 100 when it goes away (for a supervisor to start them again). ``Coordinator(folder,
places=...)`` writes places.yaml first, as a coordinator that has run a while leaves it.

Used by tests/test_labgrid.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Coordinator", "Exporter", "labgrid_unavailable"]


def labgrid_unavailable() -> str | None:
    """Why the labgrid tests cannot run here, or None when they can."""
    try:
        import labgrid  # noqa: F401
    except ImportError:
        return "labgrid is not installed (pip install 'hilbench[lab]', or the dev extra)"
    for tool in ("labgrid-coordinator", "labgrid-exporter"):
        if _tool(tool) is None:
            return f"{tool} not found beside {sys.executable} or on PATH"
    return None


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


class _Proc:
    """A child whose output is drained by a thread (kept, for messages), started in its own process group."""

    def __init__(self, argv: list[str], cwd: Path, log: Path) -> None:
        self.log = log
        self.argv = argv
        self.cwd = cwd
        self._cond = threading.Condition()
        self._start()

    def _start(self) -> None:
        """(Re)start the program: a new process, its output read from here on."""
        with self._cond:
            self.lines: list[str] = []
        argv, cwd = self.argv, self.cwd
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log, "a") as f:
            for line in self.proc.stdout:
                f.write(line)
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
        rx = re.compile(pattern)
        end = time.monotonic() + timeout_s
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = end - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and seen == len(self.lines)):
                    raise RuntimeError(f"{self.proc.args[0]} did not say {pattern!r}: {''.join(self.lines)[-1500:]}")
                self._cond.wait(min(left, 0.2))

    def stop(self, sig: int = signal.SIGKILL, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout_s)
        self._reader.join(5)


class Exporter(_Proc):
    def __init__(self, coordinator: str, name: str, resources: dict[str, Any], folder: Path,
                 extra_args: tuple[str, ...] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / f"{name}.yaml"
        config.write_text(json.dumps(resources))  # YAML is a superset of JSON
        tool = _tool("labgrid-exporter")
        assert tool is not None
        super().__init__([tool, "--coordinator", coordinator, "--name", name, "--hostname", "127.0.0.1",
                          *extra_args, str(config)], folder, folder / f"{name}.log")
        self.name = name
        self.resources = resources


class Coordinator(_Proc):
    """``labgrid-coordinator --listen 127.0.0.1:0`` in ``folder`` (its places.yaml goes there)."""

    def __init__(self, folder: Path, *, places: dict[str, dict[str, Any]] | None = None) -> None:
        """``places``: name -> {"match": "EXPORTER/GROUP/CLASS", "tags": {...}}, written to places.yaml before the
        coordinator starts (as it saves them), so that they survive :meth:`restart`."""
        folder.mkdir(parents=True, exist_ok=True)
        if places:
            saved = {}
            for name, spec in places.items():
                exporter, group, cls = spec["match"].split("/")
                saved[name] = {"matches": [{"exporter": exporter, "group": group, "cls": cls}],
                               "tags": dict(spec.get("tags") or {})}
            (folder / "places.yaml").write_text(json.dumps(saved))  # YAML is a superset of JSON
        tool = _tool("labgrid-coordinator")
        assert tool is not None
        super().__init__([tool, "--listen", "127.0.0.1:0"], folder, folder / "coordinator.log")
        self.folder = folder
        self.address = "127.0.0.1:" + self.wait_for(r"listening on [^\s]*:(\d+)").group(1)
        self.exporters: list[Exporter] = []
        self._admin: Any = None

    def restart(self, sig: int = signal.SIGKILL) -> None:
        """Stop the coordinator with ``sig`` (SIGTERM: labgrid's graceful stop, which waits 5 s for open calls)
        and start it again on the same port in the same folder; returns once it listens. Exporters are left as
        they are (labgrid's exit with status 100 when the coordinator goes away): :meth:`restart_exporter`."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self.stop(sig, timeout_s=30)
        self.argv = [*self.argv[:-1], self.address]  # --listen 127.0.0.1:PORT, the port it had
        self._start()
        port = self.wait_for(r"listening on [^\s]*:(\d+)").group(1)
        assert self.address == f"127.0.0.1:{port}", (self.address, port)

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        for exp in self.exporters:
            exp.stop()
        self.stop()

    def admin(self) -> Any:
        """A client of the coordinator (hilbench's LabClient) named ``admin/tests``."""
        from harness.transport.labgrid import LabClient

        if self._admin is None:
            self._admin = LabClient(self.address, name="admin/tests")
        return self._admin

    def exporter(self, name: str, resources: dict[str, Any], *, isolated: bool = False) -> Exporter:
        """A ``labgrid-exporter`` named ``name`` with ``resources`` (group -> class -> params), up and its
        resources known to the coordinator when this returns."""
        exp = Exporter(self.address, name, resources, self.folder / "exporters",
                       ("--isolated",) if isolated else ())
        self.exporters.append(exp)
        self._wait_exported(exp)
        return exp

    def restart_exporter(self, exp: Exporter) -> None:
        """Start ``exp`` again (as its supervisor does after it exits), its resources known when this returns."""
        exp.stop()
        exp._start()
        self._wait_exported(exp)

    def _wait_exported(self, exp: Exporter) -> None:
        admin = self.admin()
        end = time.monotonic() + 30
        while True:
            admin.sync()
            with admin._cond:
                groups = admin.resources.get(exp.name, {})
                if all(g in groups and groups[g] for g in exp.resources):
                    return
            if time.monotonic() > end or exp.proc.poll() is not None:
                raise RuntimeError(f"exporter {exp.name} did not export its resources: {''.join(exp.lines)[-1500:]}")
            time.sleep(0.05)

    def add_place(self, name: str, *, match: str, tags: dict[str, str] | None = None) -> None:
        admin = self.admin()
        pb = admin.lg.pb
        admin.rpc("AddPlace", pb.AddPlaceRequest(name=name))
        admin.rpc("AddPlaceMatch", pb.AddPlaceMatchRequest(placename=name, pattern=match))
        if tags:
            admin.rpc("SetPlaceTags", pb.SetPlaceTagsRequest(placename=name, tags=tags))
        admin.sync()

    def place(self, name: str) -> Any:
        admin = self.admin()
        admin.sync()
        with admin._cond:
            return admin.places[name]

    def reservations(self) -> list[Any]:
        admin = self.admin()
        return list(admin.rpc("GetReservations", admin.lg.pb.GetReservationsRequest()).reservations)
