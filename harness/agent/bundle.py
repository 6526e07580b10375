"""The device agent as one file: a deterministic zip application named by sha256.

The same bytes are produced from the same sources on every host, so a device's
cache entry ``<sha256>.pyz`` is reused across hosts and runs.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import hilbench_agent

__all__ = ["AgentBundle", "agent_bundle", "agent_source_dir"]

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
MIN_PYTHON = (3, 7)

# The zipapp's entry point refuses a too-old Python in the protocol's own terms,
# before any of the agent (which needs 3.7) is imported. Then it unpacks the zip once,
# beside itself, with the bytecode compiled for the device's Python: importing the
# sources from inside a zip compiles them on every start, which is most of an agent's
# start-up (tens of ms per job on x86, several times that on a Pi or a Coral).
_MAIN = """import json, sys, time
if sys.version_info < %r:
    sys.stdout.write(json.dumps({"v": 1, "type": "error", "t_ns": int(time.time() * 1e9), "category": "agent",
        "message": "the device's Python %%s is too old: hilbench's agent needs Python %s or newer"
        %% sys.version.split()[0]}) + "\\n")
    sys.exit(2)


def _trusted(path):
    \"\"\"Whether the folder ``path`` may hold code this agent runs: a real folder (not a link) owned by this
    user and writable by no one else. Else a line on stderr, and False.\"\"\"
    import os
    import stat
    st = os.lstat(path)
    why = None
    if not stat.S_ISDIR(st.st_mode):
        why = "not a folder"
    elif hasattr(os, "getuid") and st.st_uid != os.getuid():
        why = "owned by uid " + str(st.st_uid) + ", not by this user (uid " + str(os.getuid()) + ")"
    elif st.st_mode & 0o022:
        why = "writable by group or others (mode " + oct(stat.S_IMODE(st.st_mode)) + ")"
    if why is None:
        return True
    sys.stderr.write("hilbench agent: not using " + path + ": " + why + "; running from the zip instead\\n")
    return False


def _unpacked():
    \"\"\"The folder <zip's folder>/unpacked/<sha256 of the zip>, made once (in a temporary folder,
    then renamed) with .pyc files for this Python; None (import from the zip) where that cannot be,
    or where the folder (or unpacked/) is not this user's own and private (see _trusted).\"\"\"
    import hashlib
    import os
    zpath = os.path.abspath(sys.argv[0])
    if os.environ.get("HILBENCH_AGENT_UNPACK") == "0" or not zpath.endswith(".pyz") or not os.path.isfile(zpath):
        return None
    try:
        with open(zpath, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:32]
        base = os.path.join(os.path.dirname(zpath), "unpacked")
        folder = os.path.join(base, digest)
        stamp = os.path.join(folder, "compiled-%%s" %% sys.implementation.cache_tag)
        if not os.path.lexists(base):
            try:
                os.makedirs(base, 0o700)
            except OSError:
                pass  # made meanwhile by another agent, or not writable: checked below
        if not _trusted(base):
            return None
        if os.path.lexists(folder):
            if not _trusted(folder):
                return None
            if os.path.isfile(stamp):
                return folder
        else:
            import shutil
            import tempfile
            import zipfile
            tmp = tempfile.mkdtemp(prefix=".tmp-", dir=base)
            try:
                with zipfile.ZipFile(zpath) as zf:
                    zf.extractall(tmp)
                os.rename(tmp, folder)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not os.path.isdir(folder):
                    return None
            if not _trusted(folder):  # another process's, made meanwhile
                return None
        if sys.implementation.cache_tag:
            import compileall
            if compileall.compile_dir(os.path.join(folder, "hilbench_agent"), quiet=2):
                open(stamp, "w").close()
        return folder
    except Exception:
        return None


_folder = _unpacked()
if _folder:
    sys.path.insert(0, _folder)
from hilbench_agent.main import main
sys.exit(main())
""" % (MIN_PYTHON, ".".join(map(str, MIN_PYTHON)))  # noqa: UP031 - the text is Python 3.6 code


def agent_source_dir() -> Path:
    """Folder of the ``hilbench_agent`` package on this host."""
    return Path(hilbench_agent.__file__).resolve().parent


@dataclass(frozen=True)
class AgentBundle:
    data: bytes
    sha256: str


@lru_cache(maxsize=1)
def agent_bundle() -> AgentBundle:
    """Build the agent zipapp in memory (cached for the life of the process)."""
    src = agent_source_dir()
    files = sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        main = zipfile.ZipInfo("__main__.py", _FIXED_TIME)
        main.external_attr = 0o644 << 16
        zf.writestr(main, _MAIN)
        for path in files:
            info = zipfile.ZipInfo("hilbench_agent/" + path.relative_to(src).as_posix(), _FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    data = buf.getvalue()
    return AgentBundle(data=data, sha256=hashlib.sha256(data).hexdigest())
