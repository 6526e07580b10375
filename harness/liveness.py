"""Whether the process that wrote something to the results store is still alive.

A session row says who runs it: the host name, the pid and the process's *identity* (on Linux the boot id,
the pid namespace and the process start time in clock ticks, so a pid the kernel has since given to another
process is not mistaken for the owner; elsewhere psutil's create time where psutil is installed). A reader on
the same machine (same boot, same pid namespace) can then tell for certain whether the owner is gone. A reader
elsewhere cannot see the owner's processes: it can only go by the owner's heartbeat (the session row is
rewritten every :data:`HEARTBEAT_S` seconds while it runs) and calls the session abandoned once that heartbeat is
:data:`STALE_AFTER_S` old. Temporary files carry the writer's pid and a tag of its machine in their names and
are held with ``flock`` while written (:func:`lock_free`), for the same judgement.

Only the standard library (psutil when it happens to be installed, off Linux).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from functools import lru_cache
from typing import Any, Literal

__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "TEMP_GRACE_S", "this_process", "process_identity",
           "owner_state", "machine_tag", "pid_alive", "lock_free", "hold_lock"]

#: How often a running session's row is rewritten with a fresh ``heartbeat_at``.
HEARTBEAT_S = 60.0
#: A session whose owner cannot be seen from here (another host) is abandoned when its heartbeat is this old.
STALE_AFTER_S = 600.0
#: A temporary file no writer holds is stale once this old, when its writer's process cannot be checked.
TEMP_GRACE_S = 600.0

State = Literal["alive", "gone", "unknown"]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


@lru_cache(maxsize=1)
def _linux_context() -> str | None:
    """``<boot id>:<pid namespace>`` of this machine and namespace, or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = "pid:[?]"
    if not boot:
        return None
    return f"{boot}:{ns.removeprefix('pid:').strip('[]')}"


def _linux_start_ticks(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks since boot."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def process_identity(pid: int) -> str | None:
    """What tells process ``pid`` from a later one given the same pid, or None when it does not exist (or
    nothing here can tell)."""
    context = _linux_context()
    if context is not None:
        ticks = _linux_start_ticks(pid)
        return f"linux:{context}:{ticks}" if ticks is not None else None
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    try:
        return f"psutil:{platform.node()}:{psutil.Process(pid).create_time():.6f}"
    except (psutil.Error, OSError):
        return None


def this_process() -> dict[str, Any]:
    """``{"host", "pid", "process"}`` of this process (what a session row records of its owner)."""
    pid = os.getpid()
    return {"host": platform.node(), "pid": pid, "process": process_identity(pid)}


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    except OSError:
        return False
    return True


def owner_state(host: str | None, pid: int | None, process: str | None) -> State:
    """``alive`` or ``gone`` when this machine can tell for certain; ``unknown`` when the owner ran
    elsewhere (another host, boot or pid namespace): then only its heartbeat can say."""
    if pid is None:
        return "unknown"
    if process and process.startswith("linux:"):
        context = _linux_context()
        recorded_context = process[len("linux:"):].rsplit(":", 1)[0]
        if context is None or recorded_context != context:
            return "unknown"
        return "alive" if process_identity(pid) == process else "gone"
    if host != platform.node():
        return "unknown"
    if process and process.startswith("psutil:"):
        current = process_identity(pid)
        if current is not None and current.startswith("psutil:"):
            return "alive" if current == process else "gone"
    # Same host name, nothing better recorded: the pid alone (a reused pid reads as alive).
    return "alive" if pid_alive(pid) else "gone"


@lru_cache(maxsize=1)
def machine_tag() -> str:
    """8 hex digits naming this machine and pid namespace (in temporary file names)."""
    return hashlib.sha256((_linux_context() or platform.node()).encode()).hexdigest()[:8]


def hold_lock(fd: int) -> None:
    """Hold an exclusive ``flock`` on ``fd`` until it is closed (no-op where flock does not exist)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    for _ in range(20):  # a checker holds it for a moment only (lock_free)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            return  # a file system without locks: the name and the age still say whose it is


def lock_free(path: str | os.PathLike[str]) -> bool:
    """True when no live process holds ``path``'s ``flock`` (its writer is gone or never took one)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # gone already, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # no locks on this file system: the name and the age decide
    finally:
        os.close(fd)
    return True
