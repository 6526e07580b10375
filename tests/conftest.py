"""Shared pytest fixtures for hilbench."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Recorded real outputs live beside the checkout, never inside it.
SHARED = ROOT.parent / "shared"
AGENT_DIR = ROOT / "device_agents"

if str(AGENT_DIR) not in sys.path:
    # Host-side tests import the agent's pure readers directly.
    sys.path.insert(0, str(AGENT_DIR))


@pytest.fixture
def shared_dir() -> Path:
    """The ``../shared`` folder of recorded outputs; skips the test where it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"recorded samples not found at {SHARED}")
    return SHARED
