"""Telemetry of the device: pure readers per platform, discovery of sources, and the sampler thread.

Public API::

    Reading(sensor, value, unit, source="", reason=None, extra=None)
    KINDS                                   # the text formats parse_text knows
    detect_kind(text) -> kind or None       # every format but a bare sysfs number
    parse_text(kind, text) -> [Reading]     # kind None: detect it (ValueError if unknown)
    discover(root="/", pid=None) -> list of Source (with .missing)   # telemetry.discover
    Sampler(sources, rate_hz=10.0, emit=..., clock=time.monotonic_ns)  # telemetry.sampler

Sensor names are ``<namespace>.<name>[.<detail>]``: ``temp.*`` (C), ``power.*``
(mW), ``voltage.*`` (mV), ``current.*`` (mA), ``freq.*`` (MHz), ``load.*`` (%),
``mem.*``/``meminfo.*``/``proc.*`` (MB or KB), ``energy.*`` (uJ), plus state
readings (``throttle.*``, ``thermal.*``, ``battery.*``, ``nvpmodel.*``...) whose
text, where there is one, is in ``extra["text"]``. Each module's docstring has
its table. An unavailable sensor has ``value`` None and a ``reason``; it is
never reported as 0.

Runs on Python 3.7 with the standard library alone.
"""

import re

from hilbench_agent.telemetry.reading import Reading

__all__ = ["Reading", "KINDS", "detect_kind", "parse_text"]

#: Every text format :func:`parse_text` accepts.
KINDS = (
    "tegrastats",
    "jetson_clocks",
    "nvpmodel",
    "tegrastats-sources",
    "vcgencmd",
    "pmic_read_adc",
    "sysfs-temp",
    "trip-points",
    "apex-listing",
    "dumpsys-battery",
    "dumpsys-thermalservice",
    "uevent",
    "thermal-zone-types",
    "powermetrics",
    "pmset-therm",
    "macmon",
    "meminfo",
    "proc-status",
    "sysfs-ttar",
    "sysfs-grep",
    "sysfs-dump",
)


def detect_kind(text):
    """The kind of a recorded output, or None (a bare number such as a sysfs temp file is not detected)."""
    if not text or not text.strip():
        return None
    head = text[:65536]
    stripped = head.lstrip("\x00 \t\r\n")
    if stripped.startswith("<?xml") or "<plist" in head[:2048]:
        return "powermetrics"
    if re.search(r"^\*\*\*\*? ?(Sampled|Summary) system activity|^\*\*\*\* Processor usage", head, re.M):
        return "powermetrics"
    if re.search(r"CPU_Speed_Limit|CPU Power notify|No CPU power status has been recorded", head):
        return "pmset-therm"
    if stripped.startswith("{") and re.search(r'"(all|sys|cpu)_power"', head):
        return "macmon"
    if "Current Battery Service state" in head:
        return "dumpsys-battery"
    if re.search(r"^Thermal Status: \d|Temperature\{mValue=|^IsStatusOverride:", head, re.M):
        return "dumpsys-thermalservice"
    if re.search(r"(^|\s)RAM \d+/\d+MB", head, re.M):
        return "tegrastats"
    if re.search(r"^(cpu\d+|GPU|EMC):? .*(MinFreq|CurrentFreq)=", head, re.M) or "SOC family:" in head:
        return "jetson_clocks"
    if re.search(r"NVPM VERB|^NV Power Mode:|POWER_MODEL: ID=", head, re.M):
        return "nvpmodel"
    if re.search(r"^[A-Z0-9_]+,/sys/\S+$", head, re.M):
        return "tegrastats-sources"
    # [^\S\n]*, not \s*: from every line start \s* ran over all the blank lines that follow (quadratic).
    if re.search(r"^[^\S\n]*\S+_[AV] (current|volt)\(\d+\)=", head.replace("\x00", "\n"), re.M):
        return "pmic_read_adc"
    if re.search(r"^(temp=-?[\d.]+'C|frequency\(\d+\)=\d+|volt=[\d.]+V|throttled=(0x[0-9a-fA-F]+|\d+))\s*$",
                 head, re.M):
        return "vcgencmd"
    if re.search(r'^error=\d+ error_msg="Command not registered"', head, re.M):
        return "vcgencmd"
    if re.search(r"^# ttar |^Path: sys/", head, re.M):
        return "sysfs-ttar"
    if re.search(r"^---\s*\n/sys/\S+\s*\n---", head, re.M):
        return "sysfs-dump"
    if re.search(r"^/(sys|proc)/[^:\s]+:", head, re.M):
        return "sysfs-grep"
    if re.search(r"thermal_zone\d+/type\s*$", head, re.M):
        return "thermal-zone-types"
    if "node_0_page_table_entries" in head or re.search(r"/sys/class/apex/apex_\d+\s*$", head, re.M):
        return "apex-listing"
    if re.search(r"^MemTotal:\s+\d+ kB", head, re.M):
        return "meminfo"
    if re.search(r"^Vm(RSS|HWM|Size):\s+\d+ kB", head, re.M):
        return "proc-status"
    # A power_supply uevent: battery (STATUS, CAPACITY...) or mains/USB (ONLINE, VOLTAGE_MAX...). NAME= alone
    # is not enough (os-release has one).
    if re.search(r"^POWER_SUPPLY_[A-Z_]+=|^(STATUS|CAPACITY|ONLINE|(VOLTAGE|CURRENT)_(NOW|MAX|MIN|AVG)"
                 r"|INPUT_CURRENT_LIMIT|USB_TYPE)=", head, re.M):
        return "uevent"
    return None


def parse_text(kind, text):
    """Readings from a recorded output of ``kind`` (one of :data:`KINDS`); ``kind`` None detects it.

    Raises ``ValueError`` for an unknown kind or an unrecognised text. Partial
    or truncated input gives the readings that can be read, never a crash.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if kind is None:
        kind = detect_kind(text)
        if kind is None:
            raise ValueError("cannot recognise the format; pass a kind (one of %s)" % ", ".join(KINDS))
    if kind not in KINDS:
        raise ValueError("unknown kind %r (one of %s)" % (kind, ", ".join(KINDS)))
    from hilbench_agent.telemetry import android, coral, fs, jetson, linux, macos, raspberrypi

    if kind == "tegrastats":
        return jetson.parse_tegrastats(text)
    if kind == "jetson_clocks":
        return jetson.parse_jetson_clocks(text)
    if kind == "nvpmodel":
        return jetson.parse_nvpmodel(text)
    if kind == "tegrastats-sources":
        return jetson.source_map_readings(text)
    if kind == "vcgencmd":
        return raspberrypi.parse_vcgencmd(text)
    if kind == "pmic_read_adc":
        return raspberrypi.parse_pmic_read_adc(text)
    if kind == "sysfs-temp":
        return coral.parse_sysfs_temp(text)
    if kind == "trip-points":
        return coral.parse_trip_points(text)
    if kind == "apex-listing":
        return coral.parse_apex_listing(text)
    if kind == "dumpsys-battery":
        return android.parse_dumpsys_battery(text)
    if kind == "dumpsys-thermalservice":
        return android.parse_dumpsys_thermalservice(text)
    if kind == "uevent":
        return android.parse_uevent(text)
    if kind == "thermal-zone-types":
        return android.parse_thermal_zone_types(text)
    if kind == "powermetrics":
        return macos.parse_powermetrics(text)
    if kind == "pmset-therm":
        return macos.parse_pmset_therm(text)
    if kind == "macmon":
        return macos.parse_macmon(text)
    if kind == "meminfo":
        return linux.parse_meminfo(text)
    if kind == "proc-status":
        return linux.parse_proc_status(text)
    if kind == "sysfs-ttar":
        tree = fs.memfs_from_ttar(text)
    elif kind == "sysfs-grep":
        tree = fs.memfs_from_grep(text)
    else:
        tree = fs.memfs_from_dump(text)
    rails = jetson.find_ina_rails(tree)
    return (linux.read_sysfs_tree(tree, source=kind) + jetson.read_ina_rails(tree, rails, source=kind)
            + jetson.read_ina_unassigned(tree, rails, source=kind))
