"""hilbench device agent.

One small program that runs on the device's own Python (3.7 or newer) with the
standard library plus the runtime it drives. It reads one job (JSON) and speaks
the versioned JSON-lines protocol on stdout; logs go to stderr. Every message is
also journalled to a file on the device, so a dropped connection loses nothing.

It is shipped to devices as a zip application named by its sha256; on the host
the same package is importable as ``hilbench_agent``.
"""

AGENT_VERSION = "0.1.0"
PROTOCOL_VERSION = 1

__all__ = ["AGENT_VERSION", "PROTOCOL_VERSION"]
