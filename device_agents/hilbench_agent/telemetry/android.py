"""Android: ``dumpsys battery``, ``dumpsys thermalservice``, power_supply uevent, thermal zone type listings.

On Android the agent is a shell program driven over ADB; these parsers run on
the host (or in the agent where Python exists) on the text it brings back.

Sensor names and units:

====================================  =====  ======================================================
``battery.level``                     %      level x 100 / scale
``battery.voltage``                   mV     0 is a placeholder (emulator): None
``battery.temp``                      C      tenths of a degree in dumpsys; 0 with voltage 0: None
``battery.max_charging_current``      mA     µA in dumpsys
``battery.max_charging_voltage``      mV     µV in dumpsys
``battery.charge_counter``            mAh    µAh in dumpsys; 0 means unsupported: None
``battery.status`` ``battery.health`` ""     Android codes; the name in ``extra["text"]``
``battery.{ac,usb,wireless}_powered`` ""     0/1
``thermal.status``                    ""     0 NONE .. 6 SHUTDOWN (name in extra)
``temp.<mName>``                      C      live "Current temperatures from HAL" only; -99.9: None
``bcl.<mName>``                       mV/mA/%  HAL types 6-8 are battery current limits, not temps
``cooling.<mName>``                   ""     cooling device value
``supply.<NAME>.*``                   -      power_supply uevent, see :func:`.linux.parse_power_supply_uevent`
====================================  =====  ======================================================
"""

import re

from hilbench_agent.telemetry.linux import parse_power_supply_uevent
from hilbench_agent.telemetry.reading import Reading

__all__ = ["parse_dumpsys_battery", "parse_dumpsys_thermalservice", "parse_uevent", "parse_thermal_zone_types",
           "detect_current_unit", "TEMPERATURE_TYPES", "THERMAL_STATUS", "MA_BELOW"]

#: android.os.Temperature TYPE_* values (AOSP).
TEMPERATURE_TYPES = {
    -1: "UNKNOWN", 0: "CPU", 1: "GPU", 2: "BATTERY", 3: "SKIN", 4: "USB_PORT", 5: "POWER_AMPLIFIER",
    6: "BCL_VOLTAGE", 7: "BCL_CURRENT", 8: "BCL_PERCENTAGE", 9: "NPU", 10: "TPU", 11: "DISPLAY", 12: "MODEM",
    13: "SOC", 14: "WIFI", 15: "CAMERA", 16: "FLASHLIGHT", 17: "SPEAKER", 18: "AMBIENT", 19: "POGO",
}
_BCL_UNITS = {"BCL_VOLTAGE": "mV", "BCL_CURRENT": "mA", "BCL_PERCENTAGE": "%"}
THERMAL_STATUS = {0: "NONE", 1: "LIGHT", 2: "MODERATE", 3: "SEVERE", 4: "CRITICAL", 5: "EMERGENCY", 6: "SHUTDOWN"}
BATTERY_STATUS = {1: "unknown", 2: "charging", 3: "discharging", 4: "not charging", 5: "full"}
BATTERY_HEALTH = {1: "unknown", 2: "good", 3: "overheat", 4: "dead", 5: "over-voltage", 6: "failure", 7: "cold"}
#: Samsung's thermal HAL reports -99.9 for a sensor that is not available.
HAL_SENTINELS = (-99.9,)


def _kv(text):
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key:
            out[key.strip()] = value.strip()
    return out


def parse_dumpsys_battery(text, source="dumpsys-battery"):
    """``dumpsys battery``: tolerant ``key: value`` parsing (tabs or spaces, OEM keys at column 0)."""
    kv = _kv(text)
    out = []

    def num(key):
        try:
            return float(kv[key])
        except (KeyError, ValueError):
            return None

    def add(sensor, value, unit, reason=None, **extra):
        out.append(Reading(sensor, value, unit, source, reason, extra or None))

    level, scale = num("level"), num("scale")
    if level is not None:
        add("battery.level", level * 100.0 / scale if scale else level, "%", None, level=level, scale=scale)
    volt = num("voltage")
    if volt is not None:
        if volt == 0:
            add("battery.voltage", None, "mV", "voltage 0 is a placeholder (emulator or no fuel gauge)")
        else:
            add("battery.voltage", volt, "mV")
    temp = num("temperature")
    if temp is not None:
        if temp == 0 and (volt is None or volt == 0):
            add("battery.temp", None, "C", "temperature 0 with voltage 0 is a placeholder (emulator)")
        else:
            add("battery.temp", temp / 10.0, "C", None, raw=temp)
    cur = num("Max charging current")
    if cur is not None:
        add("battery.max_charging_current", cur / 1000.0, "mA", None, raw_ua=cur)
    mv = num("Max charging voltage")
    if mv is not None:
        add("battery.max_charging_voltage", mv / 1000.0, "mV", None, raw_uv=mv)
    cc = num("Charge counter")
    if cc is not None:
        if cc == 0:
            add("battery.charge_counter", None, "mAh", "charge counter 0: not supported by this device")
        else:
            add("battery.charge_counter", cc / 1000.0, "mAh", None, raw_uah=cc)
    for key, table in (("status", BATTERY_STATUS), ("health", BATTERY_HEALTH)):
        code = num(key)
        if code is not None and code == code and abs(code) < 2 ** 31:  # int(inf) or int(nan) would raise
            add("battery." + key, code, "", None, text=table.get(int(code), "code %d" % code))
    for key in ("AC powered", "USB powered", "Wireless powered", "present"):
        if key in kv and kv[key] in ("true", "false"):
            add("battery." + key.lower().replace(" ", "_"), 1 if kv[key] == "true" else 0, "")
    return out


# Values and names stop at a brace: with ``[^,]+`` every repetition of the prefix on a line without the
# rest scanned to its end (quadratic). Real values are numbers, real names sensor names.
_TEMP_RE = re.compile(r"Temperature\{mValue=([^,{}]+), mType=(-?\d{1,9}), mName=([^,{}]+), mStatus=(-?\d{1,9})\}")
_COOL_RE = re.compile(r"CoolingDevice\{mValue=([^,{}]+), mType=(-?\d{1,9}), mName=([^{}]+)\}")


def _float_or_none(text):
    try:
        return float(text)
    except ValueError:
        return None


def _classify(name, mtype):
    """The HAL type name: by ``TYPE_*`` name where the vendor uses names (Samsung shifts the numbers)."""
    if name.startswith("TYPE_"):
        return name[len("TYPE_"):]
    return TEMPERATURE_TYPES.get(mtype, "UNKNOWN")


#: Block headings of ``dumpsys thermalservice`` -> the section their lines belong to.
_THERMAL_SECTIONS = (("Cached temperatures", "cached"), ("Current temperatures from HAL", "live"),
                     ("Current cooling devices from HAL", "cooling"))


class _ThermalDump(object):
    """What ``dumpsys thermalservice`` printed: status, HAL readiness, and the raw HAL tuples per block."""

    def __init__(self):
        self.status = None
        self.hal_ready = None
        self.live, self.cached, self.cooling = [], [], []


def _read_thermal_dump(text):
    """One pass over the dump: the ``Thermal Status``, ``HAL Ready`` and the regex groups of every
    ``Temperature{..}`` (live or cached block) and ``CoolingDevice{..}`` (cooling block)."""
    dump = _ThermalDump()
    section = None
    for raw in text.splitlines():
        section = _thermal_line(dump, raw.strip(), section)
    return dump


def _thermal_line(dump, line, section):
    """Read one stripped line into ``dump``; returns the section the next line is in."""
    if line.startswith("Thermal Status:"):
        try:
            dump.status = int(line.split(":", 1)[1].strip())
        except ValueError:
            pass
        return None
    if line.startswith("HAL Ready:"):
        dump.hal_ready = line.split(":", 1)[1].strip() == "true"
        return None
    for heading, name in _THERMAL_SECTIONS:
        if line.startswith(heading):
            return name
    if line.endswith(":") and not line.startswith(("Temperature{", "CoolingDevice{")):
        return None
    m = _TEMP_RE.search(line)
    if m and section in ("live", "cached"):
        (dump.live if section == "live" else dump.cached).append(m.groups())
        return section
    m = _COOL_RE.search(line)
    if m and section == "cooling":
        dump.cooling.append(m.groups())
    return section


def _hal_temperature(value, mtype, name, mstatus, source):
    """``temp.<mName>`` (C; NaN and the HAL sentinel: None), or ``bcl.<mName>`` for the battery-limit types."""
    mtype = int(mtype)
    kind = _classify(name, mtype)
    v = _float_or_none(value)
    extra = {"type": kind, "mType": mtype, "status": int(mstatus)}
    if kind in _BCL_UNITS:
        return Reading("bcl." + name, v, _BCL_UNITS[kind], source, None if v is not None else "not a number", extra)
    reason = None
    if v is None or v != v:
        v, reason = None, "not a number: %r" % value
    elif round(v, 1) in HAL_SENTINELS:
        v, reason = None, "HAL sentinel %s: not available" % value
    return Reading("temp." + name, v, "C", source, reason, extra)


def parse_dumpsys_thermalservice(text, source="dumpsys-thermalservice"):
    """``dumpsys thermalservice``: the live ``Current temperatures from HAL`` block, never the cached one.

    The cached block is stale (a Shield TV showed 37 °C cached while the live
    value was 66.5 °C). Without a live block (``HAL Ready: false``, or a
    truncated dump) a ``temp.hal`` reading says so; the cached values are kept
    in its ``extra["cached"]`` for the record only.
    """
    dump = _read_thermal_dump(text)
    out = []
    if dump.status is not None:
        out.append(Reading("thermal.status", dump.status, "", source, None,
                           {"text": THERMAL_STATUS.get(dump.status, "?")}))
    for value, mtype, name, mstatus in dump.live:
        out.append(_hal_temperature(value, mtype, name, mstatus, source))
    if not dump.live:
        why = "HAL not ready" if dump.hal_ready is False else "no 'Current temperatures from HAL' block"
        out.append(Reading("temp.hal", None, "C", source,
                           why + "; cached temperatures are stale and not reported",
                           {"cached": {name: _float_or_none(value) for value, _, name, _ in dump.cached}}))
    for value, mtype, name in dump.cooling:
        out.append(Reading("cooling." + name.strip(), _float_or_none(value), "", source, None, {"mType": int(mtype)}))
    return out


#: A battery ``CURRENT_NOW`` whose size is below this while discharging is in mA: 20000 µA (20 mA) is less
#: than a phone draws with its screen on, and 20000 mA more than a phone battery gives.
MA_BELOW = 20000


def _uevent_values(text):
    kv = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            if key.startswith("POWER_SUPPLY_"):
                key = key[len("POWER_SUPPLY_"):]
            kv[key] = value.strip()
    return kv


def detect_current_unit(text):
    """``"mA"`` or ``"uA"`` for the battery current of a power_supply uevent, or None when it cannot tell.

    Only a discharging battery with a non-zero ``CURRENT_NOW`` tells: its size is
    below :data:`MA_BELOW` in mA and above it in µA. While charging, full or idle
    at zero the size says nothing (a trickle charge of 15 mA is 15000 µA).
    """
    kv = _uevent_values(text)
    if (kv.get("STATUS") or "").lower() != "discharging":
        return None
    try:
        raw = abs(float(kv["CURRENT_NOW"]))
    except (KeyError, ValueError):
        return None
    if raw == 0:
        return None
    return "mA" if raw < MA_BELOW else "uA"


def parse_uevent(text, source="uevent", current_unit=None, current_sign=None):
    """power_supply uevent with vendor units and signs normalised: see :func:`.linux.parse_power_supply_uevent`.

    Pixels report µA; some devices report mA. ``current_unit="auto"`` tells them
    apart with :func:`detect_current_unit` (|value| below :data:`MA_BELOW` while
    discharging is mA) and falls back to µA when the reading cannot tell; the
    current reading's ``extra["unit_basis"]`` says which it was. A caller that
    reads repeatedly should keep the first unit detected (a charging phone's
    reading cannot tell). Qualcomm/Xiaomi report negative while charging
    (flipped from the status unless ``current_sign`` is given).
    """
    basis = None
    if current_unit == "auto":
        detected = detect_current_unit(text)
        current_unit = detected or "uA"
        basis = ("auto: |CURRENT_NOW| %s %d while discharging" % ("<" if detected == "mA" else ">=", MA_BELOW)
                 if detected else "auto: cannot tell from this reading, taken as uA")
    out = parse_power_supply_uevent(text, source, current_unit, current_sign)
    if basis is not None:
        for r in out:
            if r.sensor.endswith(".current"):
                r.extra["unit_basis"] = basis
    return out


def parse_thermal_zone_types(text, source="thermal-zone-types"):
    """A transcript of ``cat /sys/class/thermal/thermal_zoneN/type`` commands and answers.

    Gives one value-less ``temp.<type>`` reading per zone (the name a live read
    would carry), with the zone in extra and whether the type names a CPU
    sensor (``tsens_tz_sensor*``, ``cpu-*``, ``mtktscpu``). zone0 is not the CPU.
    """
    out = []
    zone = None
    for line in text.splitlines():
        m = re.search(r"thermal_zone(\d+)/type\s*$", line)
        if m:
            zone = int(m.group(1))
            continue
        t = line.strip()
        if zone is not None and t and re.match(r"^[\w.-]+$", t):
            is_cpu = bool(re.match(r"^(tsens_tz_sensor\d+|cpu[\w-]*|mtktscpu)$", t))
            out.append(Reading("temp." + t, None, "C", source, "type listing only: no temperature",
                               {"zone": "thermal_zone%d" % zone, "type": t, "cpu": is_cpu}))
            zone = None
    return out
