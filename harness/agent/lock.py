"""The device lock as the host reads it (docs/reliability.md, "One measurement per device").

The agent holds an advisory lock on one file of the device for the length of a job
(``device_agents/hilbench_agent/devicelock.py``); its ``lock`` messages carry the owner record of whoever
holds it. :func:`describe_holder` says who that is on one line, for the progress display, ``show`` and errors.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_holder", "LOCK_NAME", "ANDROID_LOCK_DIR"]

#: The lock file's name in the device's shared folder (the agent's ``LOCK_NAME``).
LOCK_NAME = "hilbench-device.lock"
#: Where a phone keeps it: adb's shell user has no /tmp (the agent looks here first, too).
ANDROID_LOCK_DIR = "/data/local/tmp"


def describe_holder(holder: dict[str, Any] | None, held_s: float | None = None) -> str:
    """Who holds a device's lock, on one line, from the owner record a ``lock`` message carries (device text:
    the caller makes it safe to print): ``session S (host H, hilbench pid P, run R; agent pid A as U)``, and
    ``for N s`` (by the device's clock) when known."""
    if not holder:
        return "another process (its owner record was not written yet)"
    if holder.get("unreadable"):
        return f"another process (its owner record is unreadable: {str(holder['unreadable'])[:80]})"
    host_side = [f"{label} {holder[key]}" for key, label in (("host", "host"), ("host_pid", "hilbench pid"),
                                                              ("run_id", "run")) if holder.get(key) not in (None, "")]
    who = holder.get("runner") or "agent"  # a phone's vendor runner holds it from its shell
    agent = f"{who} pid {holder.get('pid', '?')}" + (f" as {holder['user']}" if holder.get("user") else "")
    text = f"session {holder['session']}" if holder.get("session") else "a hilbench agent"
    text += f" ({'; '.join([', '.join(host_side), agent] if host_side else [agent])})"
    if isinstance(held_s, (int, float)) and held_s >= 0:
        text += f" for {held_s:.0f} s"
    return text
