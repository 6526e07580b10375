"""Transports: how the host reaches a target (local subprocess, SSH, ADB)."""

from __future__ import annotations

from harness.config.targets import Target
from harness.errors import ConfigError
from harness.transport.base import AgentProcess, LineTimeout, PipeAgentProcess, Transport
from harness.transport.local import LocalTransport

__all__ = ["Transport", "AgentProcess", "PipeAgentProcess", "LineTimeout", "LocalTransport", "make_transport"]


def make_transport(target: Target) -> Transport:
    """The transport for ``target``'s kind."""
    if target.transport == "local":
        return LocalTransport(target)
    if target.transport == "ssh":
        try:
            from harness.transport.ssh import SSHTransport  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError(f"{target.source}: transport: ssh is not available in this hilbench build") from None
        return SSHTransport(target)  # type: ignore[no-any-return,unused-ignore]
    if target.transport == "adb":
        try:
            from harness.transport.adb.transport import ADBTransport  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError(f"{target.source}: transport: adb is not available in this hilbench build") from None
        return ADBTransport(target)  # type: ignore[no-any-return,unused-ignore]
    raise ConfigError(f"{target.source}: transport: unknown transport {target.transport!r}")
