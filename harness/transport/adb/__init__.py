"""The ADB transport: an Android phone through the ``adb`` client.

* :mod:`~harness.transport.adb.transport`: :class:`ADBTransport` (device shell, pushes, the regular agent);
* :mod:`~harness.transport.adb.vendor_runner`: the phone's own benchmark binary driven in the agent's place
  (its arguments, phone telemetry, the energy figures);
* :mod:`~harness.transport.adb.shell`: what both share (adb's messages explained, shell command markers).
"""

from __future__ import annotations

from harness.transport.adb.transport import ADBTransport

__all__ = ["ADBTransport"]
