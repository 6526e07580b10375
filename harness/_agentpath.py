"""Makes the device agent package (``device_agents/hilbench_agent``) importable from a source checkout.

An installed hilbench maps ``hilbench_agent`` as a package of its own; running
from the checkout needs ``device_agents/`` on ``sys.path``. Host code that
imports the agent's pure readers calls :func:`ensure_agent_importable` first.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["AGENT_ROOT", "ensure_agent_importable"]

#: The folder that holds the ``hilbench_agent`` package in a source checkout.
AGENT_ROOT = Path(__file__).resolve().parents[1] / "device_agents"


def ensure_agent_importable() -> None:
    """Put :data:`AGENT_ROOT` on ``sys.path`` when ``hilbench_agent`` is not importable otherwise."""
    try:
        import hilbench_agent  # noqa: F401
    except ImportError:
        if AGENT_ROOT.is_dir() and str(AGENT_ROOT) not in sys.path:
            sys.path.insert(0, str(AGENT_ROOT))
