"""Transports: how the host reaches a target (local subprocess, SSH, ADB; FakeTransport for tests).

The contract every transport keeps is :mod:`harness.transport.base` (docs/protocol.md, "Transport contract").
"""

from __future__ import annotations

from harness.config.targets import Target
from harness.errors import ConfigError
from harness.transport.base import AgentProcess, LineTimeout, PipeAgentProcess, Transport
from harness.transport.fake import FakeAgentProcess, FakeScript, FakeTransport
from harness.transport.local import LocalTransport

__all__ = ["Transport", "AgentProcess", "PipeAgentProcess", "LineTimeout", "LocalTransport", "FakeTransport",
           "FakeAgentProcess", "FakeScript", "make_transport", "transport_class"]


def transport_class(target: Target) -> type[Transport]:
    """The transport class for ``target``'s kind (``local``, ``ssh``, ``adb``, or ``fake``, which is built
    in Python with its script: see :class:`FakeTransport`). Raises ConfigError for an unknown kind."""
    if target.transport == "local":
        return LocalTransport
    if target.transport == "fake":
        return FakeTransport
    if target.transport == "ssh":
        try:
            from harness.transport.ssh import SSHTransport  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError(f"{target.source}: transport: ssh is not available in this hilbench build") from None
        return SSHTransport  # type: ignore[no-any-return,unused-ignore]
    if target.transport == "adb":
        try:
            from harness.transport.adb.transport import ADBTransport  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError(f"{target.source}: transport: adb is not available in this hilbench build") from None
        return ADBTransport  # type: ignore[no-any-return,unused-ignore]
    raise ConfigError(f"{target.source}: transport: unknown transport {target.transport!r}")


def make_transport(target: Target) -> Transport:
    """The transport for ``target``'s kind."""
    cls = transport_class(target)
    if cls is FakeTransport:
        raise ConfigError(f"{target.source}: transport: a fake transport replays a script: build a FakeTransport in "
                          "Python and pass it to run_jobs(transports=...)")
    return cls(target)
