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


_LOCK_DIR: tuple[str | None, str] | None = None  # (HILBENCH_LOCK_DIR before, the test session's folder)


def pytest_configure(config: pytest.Config) -> None:
    """Agents the tests start on this machine take the device lock (docs/reliability.md) in a folder of this
    test session, not in /tmp: another test session on the same machine (a CI run, a colleague's) is another
    "device", and never waits for this one. Set before the test modules are imported, so that an environment a
    module copies at import (``dict(os.environ, ...)``) has it too."""
    import os
    import tempfile

    global _LOCK_DIR
    _LOCK_DIR = (os.environ.get("HILBENCH_LOCK_DIR"), tempfile.mkdtemp(prefix="hilbench-test-device-lock-"))
    os.environ["HILBENCH_LOCK_DIR"] = _LOCK_DIR[1]


def pytest_unconfigure(config: pytest.Config) -> None:
    import os
    import shutil

    if _LOCK_DIR is None:
        return
    before, folder = _LOCK_DIR
    if before is None:
        os.environ.pop("HILBENCH_LOCK_DIR", None)
    else:
        os.environ["HILBENCH_LOCK_DIR"] = before
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def shared_dir() -> Path:
    """The ``../shared`` folder of recorded outputs; skips the test where it is absent (fails it in CI, like
    the other missing real parts)."""
    from support.helpers import missing_in_ci

    if not SHARED.is_dir():
        missing_in_ci("the recorded-output tests", f"recorded samples not found at {SHARED}")
    return SHARED


# ---------------------------------------------------------------- the real-sshd fixtures (tests/support/sshd.py)
# ``keys`` and ``servers`` start real OpenSSH servers; a module that uses them also marks itself
# ``pytest.mark.usefixtures("own_ssh_dir")`` so the user's ~/.ssh is never read or written.
@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory):
    """User keys for the module's servers; skips (fails in CI) where a real sshd cannot run."""
    from support.helpers import missing_in_ci
    from support.sshd import UserKeys, sshd_unavailable

    reason = sshd_unavailable()
    if reason:
        missing_in_ci("the real-sshd tests", reason)
    return UserKeys.make(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def own_ssh_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's ~/.ssh (config, known_hosts, default keys) is a fresh folder: tests never read or write
    the real one."""
    import harness.transport.ssh as ssh

    folder = tmp_path / "dot-ssh"
    folder.mkdir()
    monkeypatch.setattr(ssh, "USER_SSH_DIR", str(folder))
    return folder


@pytest.fixture
def servers(tmp_path: Path, keys):
    """``servers(name, **options)`` starts a real sshd; all are stopped (and their agents killed) after the test."""
    from support.sshd import kill_agents, start_sshd

    started: list = []

    def make(name: str = "dev", **options: object):
        server = start_sshd(tmp_path / name, keys, **options)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        kill_agents(server)


#: The kinds of hardware a ``hardware(kind)`` test may ask for (docs/hardware.md says how a lab runs each).
HARDWARE_KINDS = ("cuda", "tensorrt", "jetson", "dla", "coreml", "edgetpu")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hardware", action="append", default=[], metavar="KIND",
        help="run the hardware(KIND) tests: this machine has that hardware (repeat it or give a comma list; "
             f"kinds: {', '.join(HARDWARE_KINDS)}). Without it those tests skip, saying which option runs them.")


def hardware_kinds(config: pytest.Config) -> set[str]:
    """The kinds named by ``--hardware`` (an unknown kind is a usage error, not a silent skip)."""
    kinds = {k.strip() for value in config.getoption("--hardware") for k in value.split(",") if k.strip()}
    unknown = kinds - set(HARDWARE_KINDS)
    if unknown:
        raise pytest.UsageError(f"--hardware: unknown kind {', '.join(sorted(unknown))} "
                                f"(known: {', '.join(HARDWARE_KINDS)})")
    return kinds


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that starts a real sshd (through ``keys``/``servers``) carries the ``sshd`` marker, so
    ``-m "not sshd"`` leaves it out wherever it is written. A ``hardware(kind)`` test runs only where
    ``--hardware kind`` says the hardware is here (and then a missing part fails it); elsewhere it skips
    with the reason."""
    kinds = hardware_kinds(config)
    for item in items:
        if {"keys", "servers"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sshd)
        for mark in item.iter_markers("hardware"):
            if not mark.args or mark.args[0] not in HARDWARE_KINDS:
                raise pytest.UsageError(f"{item.nodeid}: hardware() needs one of {', '.join(HARDWARE_KINDS)}")
            if mark.args[0] not in kinds:
                item.add_marker(pytest.mark.skip(
                    reason=f"needs {mark.args[0]} hardware: run with --hardware {mark.args[0]} where it is "
                           "(docs/hardware.md)"))
