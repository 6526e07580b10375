"""The ADB transport: :mod:`~harness.transport.adb.transport` (the device through ``adb``) and
:mod:`~harness.transport.adb.vendor_runner` (the phone's own benchmark binary in the agent's place)."""

from __future__ import annotations

from harness.transport.adb.transport import ADBTransport

__all__ = ["ADBTransport"]
