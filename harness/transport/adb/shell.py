"""What the adb transport (:mod:`harness.transport.adb.transport`) and the phone's vendor-runner driver
(:mod:`harness.transport.adb.vendor_runner`) share: ``adb devices`` and adb's error messages read and
explained, and the random tags and process-group ids of device shell commands."""

from __future__ import annotations

import re
import secrets

__all__ = ["STATE_FIXES", "parse_devices", "explain_adb_error", "new_nonce", "valid_pgid"]

#: the one-line fix for each device state adb reports
STATE_FIXES = {
    "unauthorized": "the phone has not authorized this computer: unlock it, accept the 'Allow USB debugging?' "
                    "prompt (tick 'Always allow'), then retry; no prompt? revoke USB debugging authorizations in "
                    "Developer options and reconnect",
    "offline": "the device is offline: reconnect the cable (or `adb reconnect`), check the phone is awake, then "
               "retry",
    "no permissions": "no permission to open the USB device: add a udev rule for the phone's vendor id and put "
                      "your user in the plugdev group (see `adb devices` and developer.android.com/studio/run/device)",
    "authorizing": "the device is still authorizing this computer: accept the prompt on the phone and retry",
    "connecting": "the device is still connecting: check the cable or the network, then retry",
    "not found": "no such device: check `adb devices` (USB debugging on, cable with data lines) or the target's "
                 "adb.serial",
    "recovery": "the device is in recovery mode: reboot it into Android",
    "bootloader": "the device is in the bootloader: reboot it into Android",
    "sideload": "the device is in sideload mode: reboot it into Android",
}


def parse_devices(text: str) -> dict[str, str]:
    """``adb devices`` output as serial -> state (``device``, ``unauthorized``, ``offline``, ``no permissions`` ...)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(("List of devices", "*", "adb server")):
            continue
        serial, _, state = line.partition("\t")
        if not state:
            parts = line.split(None, 1)
            if len(parts) != 2:
                continue
            serial, state = parts
        state = state.strip()
        if state.startswith("no permissions"):
            state = "no permissions"
        out[serial.strip()] = state
    return out


def explain_adb_error(stderr: str, serial: str | None) -> str | None:
    """The one-line fix for an adb error message, or None when it is not one adb prints about device state."""
    low = stderr.lower()
    who = f"device {serial}" if serial else "the device"
    if "unauthorized" in low:
        return f"{who} is unauthorized: {STATE_FIXES['unauthorized']}"
    if "insufficient permissions" in low or "no permissions" in low:
        return f"{who}: {STATE_FIXES['no permissions']}"
    if "device offline" in low:
        return f"{who} is offline: {STATE_FIXES['offline']}"
    if "not found" in low and ("device" in low or "emulator" in low):
        return f"{who} not found: {STATE_FIXES['not found']}"
    if "no devices/emulators found" in low:
        return f"no device attached: {STATE_FIXES['not found']}"
    if "more than one device" in low:
        return "more than one device is attached: set adb.serial in the target file (see `adb devices`)"
    if "cannot connect to daemon" in low or "failed to start daemon" in low:
        return "the adb server cannot start: run `adb kill-server; adb start-server` and look at its message"
    if "error: closed" in low or "protocol fault" in low or "connection reset" in low:
        return f"{who} dropped the connection (cable pulled, phone rebooted or adbd restarted)"
    return None


def new_nonce() -> str:
    """A per-command random tag for the markers a device shell echoes: output that merely contains a marker
    cannot pass for one."""
    return secrets.token_hex(8)


def valid_pgid(value: object) -> int | None:
    """A process group id worth a ``kill -9 -PGID``: an integer > 1 (``-1`` or ``-0`` would reach every process
    the shell user may signal, or the caller's own group); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        pgid = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,10}", value.strip()):
        pgid = int(value.strip())
    else:
        return None
    return pgid if 1 < pgid < 2**31 else None
