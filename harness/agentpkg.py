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
# before any of the agent (which needs 3.7) is imported.
_MAIN = """import json, sys, time
if sys.version_info < %r:
    sys.stdout.write(json.dumps({"v": 1, "type": "error", "t_ns": int(time.time() * 1e9), "category": "agent",
        "message": "the device's Python %%s is too old: hilbench's agent needs Python %s or newer"
        %% sys.version.split()[0]}) + "\\n")
    sys.exit(2)
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

    @property
    def filename(self) -> str:
        return f"hilbench-agent-{self.sha256[:16]}.pyz"


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
