"""Transports: how the host reaches a target (local subprocess, SSH, ADB; FakeTransport for tests).

The contract every transport keeps is :mod:`harness.transport.base` (docs/protocol.md, "Transport contract").
Each transport class declares its ``name`` and what it can do (``can_reconnect``, ``probes_device``,
``run_shell``, ``device_key``); :data:`TRANSPORT_CLASSES` is the one place that maps a name to its class, so
adding a transport is one module plus one line here (and the ``[its-name]`` table of a target file in
:mod:`harness.config.targets`, with its ``doctor`` in :mod:`harness.doctor.checks`).
"""

from __future__ import annotations

import importlib

from harness.config.targets import Target
from harness.errors import ConfigError
from harness.transport.base import AgentProcess, LineTimeout, PipeAgentProcess, Transport
from harness.transport.fake import FakeAgentProcess, FakeScript, FakeTransport
from harness.transport.local import LocalTransport

__all__ = ["Transport", "AgentProcess", "PipeAgentProcess", "LineTimeout", "LocalTransport", "FakeTransport",
           "FakeAgentProcess", "FakeScript", "TRANSPORT_CLASSES", "make_transport", "transport_class"]

#: transport name -> "module:Class"; imported on first use (paramiko takes a while to import)
TRANSPORT_CLASSES = {
    "local": "harness.transport.local:LocalTransport",
    "ssh": "harness.transport.ssh:SSHTransport",
    "adb": "harness.transport.adb.transport:ADBTransport",
    "labgrid": "harness.transport.labgrid:LabgridTransport",
    "fake": "harness.transport.fake:FakeTransport",
}


def transport_class(target: Target) -> type[Transport]:
    """The transport class for ``target``'s kind (``local``, ``ssh``, ``adb``, or ``fake``, which is built
    in Python with its script: see :class:`FakeTransport`). Raises ConfigError for an unknown kind."""
    where = TRANSPORT_CLASSES.get(target.transport)
    if where is None:
        raise ConfigError(f"{target.source}: transport: unknown transport {target.transport!r} "
                          f"(known: {', '.join(sorted(TRANSPORT_CLASSES))})")
    module, _, name = where.partition(":")
    cls: type[Transport] = getattr(importlib.import_module(module), name)
    return cls


def make_transport(target: Target) -> Transport:
    """The transport for ``target``'s kind."""
    cls = transport_class(target)
    if cls is FakeTransport:
        raise ConfigError(f"{target.source}: transport: a fake transport replays a script: build a FakeTransport in "
                          "Python and pass it to run_jobs(transports=...)")
    return cls(target)
