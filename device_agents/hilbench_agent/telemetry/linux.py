"""Generic Linux telemetry: thermal zones, cooling devices, cpufreq, hwmon, RAPL, power_supply, /proc.

Every function that reads files takes ``root`` (a folder or a :class:`~.fs.MemFS`).
Sensors are found by their *names* (``type``, ``name``, ``label``), never by
index: thermal zone and hwmon numbers change between boots.

Sensor names and units:

========================================  =====  ==================================================
``temp.<zone type>``                      C      thermal zone (``temp.cpu-thermal``); a type seen
                                                 twice gets ``/<thermal_zoneN>`` appended
``trip.<zone type>.<k>``                  C      trip point k of a zone (not sorted by temperature)
``cooling.<type>``                        count  cooling device cur_state (``extra.max_state``); a type
                                                 seen twice gets ``/<cooling_deviceN>`` appended
``freq.cpu<N>`` / ``.max`` / ``.min``     MHz    cpufreq scaling_cur/max/min_freq (kHz in sysfs)
``temp|power|voltage|current|energy``
``.<hwmon name>.<label>``                 C/mW/mV/mA/uJ  hwmon channels (power is uW in sysfs)
``energy.<rapl domain>``                  uJ     RAPL counter as read (wraps at max_energy_range_uj)
``power.<rapl domain>``                   mW     from two counter reads, wraparound handled
``supply.<name>.<field>``                 mV/mA/mW/mWh/%/C  power_supply uevent
``meminfo.<Key>``                         KB     /proc/meminfo (KB means KiB); HugePages_* in count
``mem.available``                         KB     MemAvailable, or MemFree+Buffers+Cached on old kernels
``proc.<VmKey>``                          KB     /proc/<pid>/status (VmRSS, VmHWM = peak RSS...)
========================================  =====  ==================================================
"""

import os
import re

from hilbench_agent.telemetry.fs import as_fs, read_int, read_text
from hilbench_agent.telemetry.reading import Reading

__all__ = [
    "millideg_to_c", "find_thermal_zones", "read_thermal_zones", "read_trip_points", "trip_points_c",
    "THROTTLE_TRIP_TYPES", "CPU_COOLING_RE", "find_cooling_devices", "read_cooling_devices",
    "find_cpufreq", "read_cpufreq", "find_hwmon", "read_hwmon", "find_rapl_zones", "read_rapl",
    "rapl_delta_uj", "RaplMeter", "find_power_supplies", "read_power_supplies", "parse_power_supply_uevent",
    "parse_meminfo", "read_meminfo", "parse_proc_status", "read_proc_status", "read_sysfs_tree",
]

THERMAL_DIR = "/sys/class/thermal"
CPU_DIR = "/sys/devices/system/cpu"
HWMON_DIR = "/sys/class/hwmon"
POWERCAP_DIR = "/sys/class/powercap"
POWER_SUPPLY_DIR = "/sys/class/power_supply"

#: tegrastats and jtop print -256 C for an offline sensor; thermal zones read -256000.
OFFLINE_MILLIDEG = (-256000, -256)


def _num_suffix(name):
    m = re.search(r"(?<!\d)(\d+)$", name)  # (?<!\d): one scan per digit run, not one per digit
    return int(m.group(1)) if m else -1


def millideg_to_c(raw):
    """``(celsius, None)`` or ``(None, reason)`` for a thermal value in m°C.

    A few BSP kernels report whole °C; a magnitude of 150 or less is taken as
    °C (0.15 °C read as m°C is not a temperature an electronic part has).
    -256 C is the offline sentinel; anything outside -60..250 C is implausible.
    """
    if raw in OFFLINE_MILLIDEG:
        return None, "sensor offline (-256 C sentinel)"
    if abs(raw) > 10 ** 12:  # also keeps raw / 1000.0 from overflowing on a 400-digit value
        return None, "implausible temperature (raw has %d digits)" % len(str(abs(raw)))
    value = raw / 1000.0 if abs(raw) > 150 else float(raw)
    if value < -60 or value > 250:
        return None, "implausible temperature %r (raw %r)" % (value, raw)
    return value, None


# --- thermal zones ------------------------------------------------------------------------------

def find_thermal_zones(root="/"):
    """``[(sensor_name, zone_dir, zone_type)]`` for every zone with a readable ``type``."""
    fs = as_fs(root)
    zones = []
    for entry in sorted(fs.listdir(THERMAL_DIR), key=_num_suffix):
        if not entry.startswith("thermal_zone"):
            continue
        d = THERMAL_DIR + "/" + entry
        ztype, _ = read_text(fs, d + "/type")
        if ztype:
            zones.append((ztype, d))
    return _named("temp.", zones)


def _named(prefix, found):
    """``[(prefix + type, dir, type)]`` for ``found`` = ``[(type, dir)]``; a type seen twice gets ``/<dir name>``."""
    counts = {}
    for kind, _ in found:
        counts[kind] = counts.get(kind, 0) + 1
    out = []
    for kind, d in found:
        name = prefix + kind
        if counts[kind] > 1:
            name += "/" + d.rsplit("/", 1)[1]
        out.append((name, d, kind))
    return out


def read_thermal_zones(root="/", zones=None, source="sysfs:thermal"):
    """One ``temp.<type>`` reading (C) per zone; unreadable or offline zones have value None."""
    fs = as_fs(root)
    if zones is None:
        zones = find_thermal_zones(fs)
    out = []
    for name, d, ztype in zones:
        raw, reason = read_int(fs, d + "/temp")
        value = None
        if raw is not None:
            value, reason = millideg_to_c(raw)
        out.append(Reading(name, value, "C", source, reason, {"zone": d.rsplit("/", 1)[1], "type": ztype}))
    return out


def read_trip_points(root, zone_dir, prefix, source="sysfs:thermal"):
    """``trip.<prefix>.<k>`` in C for every ``trip_point_<k>_temp`` (in k order, not temperature order)."""
    fs = as_fs(root)
    out = []
    entries = [e for e in fs.listdir(zone_dir) if re.match(r"^trip_point_?\d+_temp$", e)]
    for entry in sorted(entries, key=lambda e: int(re.findall(r"\d+", e)[0])):
        k = re.findall(r"\d+", entry)[0]
        raw, reason = read_int(fs, zone_dir + "/" + entry)
        value = None
        if raw is not None:
            value, reason = millideg_to_c(raw)
        ttype, _ = read_text(fs, zone_dir + "/trip_point_%s_type" % k)
        extra = {"type": ttype} if ttype else None
        out.append(Reading("trip.%s.%s" % (prefix, k), value, "C", source, reason, extra))
    return out


#: Trip point types at which the kernel starts to throttle (passive) or acts on an emergency (hot, critical).
#: ``active`` trips switch fans on and are left out.
THROTTLE_TRIP_TYPES = ("passive", "hot", "critical")


def trip_points_c(root, zones):
    """``{zone sensor: [{"trip": k, "temp_c": C, "type": t}]}``: the passive/hot/critical trips of each zone.

    Read once at discovery (trip points change only when someone writes them);
    the host compares them with the zone's temperatures during the run.
    """
    fs = as_fs(root)
    out = {}
    for name, d, ztype in zones:
        trips = []
        for r in read_trip_points(fs, d, ztype):
            ttype = (r.extra or {}).get("type")
            if r.value is not None and ttype in THROTTLE_TRIP_TYPES:
                trips.append({"trip": int(r.sensor.rsplit(".", 1)[1]), "temp_c": r.value, "type": ttype})
        if trips:
            out[name] = trips
    return out


#: Cooling device types that slow the CPU when their cur_state is above 0: cpufreq cooling
#: (``thermal-cpufreq-N``, ``cpufreq-cpuN``), ACPI ``Processor`` (P-state/T-state limits) and
#: ``intel_powerclamp`` (forced idle). Fans and devfreq (GPU) devices are not among them.
CPU_COOLING_RE = re.compile(r"(cpufreq|^processor$|^intel_powerclamp$)", re.I)


def find_cooling_devices(root="/"):
    """``[(sensor_name, dir, type)]`` of every cooling device; a type seen twice gets ``/cooling_deviceN``."""
    fs = as_fs(root)
    found = []
    for entry in sorted(fs.listdir(THERMAL_DIR), key=_num_suffix):
        if not entry.startswith("cooling_device"):
            continue
        d = THERMAL_DIR + "/" + entry
        ctype, _ = read_text(fs, d + "/type")
        found.append((ctype or entry, d))
    return _named("cooling.", found)


def read_cooling_devices(root="/", devices=None, source="sysfs:thermal"):
    """``cooling.<type>`` = cur_state (count); cur_state > 0 means active cooling or throttling.

    ``extra``: the device, ``max_state`` and ``cpu`` (True for the types in
    :data:`CPU_COOLING_RE`, whose state above 0 means the CPU is throttled).
    """
    fs = as_fs(root)
    if devices is None:
        devices = find_cooling_devices(fs)
    out = []
    for name, d, ctype in devices:
        cur, reason = read_int(fs, d + "/cur_state")
        mx, _ = read_int(fs, d + "/max_state")
        extra = {"device": d.rsplit("/", 1)[1], "cpu": bool(CPU_COOLING_RE.search(ctype))}
        if mx is not None:
            extra["max_state"] = mx
        out.append(Reading(name, cur, "count", source, reason, extra))
    return out


# --- cpufreq ------------------------------------------------------------------------------------

def find_cpufreq(root="/"):
    """``[(cpu_name, cpufreq_dir)]`` for every CPU with a cpufreq directory (offline CPUs have none)."""
    fs = as_fs(root)
    out = []
    for entry in sorted(fs.listdir(CPU_DIR), key=_num_suffix):
        if re.match(r"^cpu\d+$", entry) and fs.isdir(CPU_DIR + "/" + entry + "/cpufreq"):
            out.append((entry, CPU_DIR + "/" + entry + "/cpufreq"))
    return out


def read_cpufreq(root="/", cpus=None, with_limits=True, source="sysfs:cpufreq"):
    """``freq.cpuN`` (scaling_cur_freq) and ``freq.cpuN.max``/``.min`` in MHz.

    scaling_cur_freq is the governor's view: on a Raspberry Pi it does not show
    firmware throttling, and with intel_pstate it is an averaged estimate.
    """
    fs = as_fs(root)
    if cpus is None:
        cpus = find_cpufreq(fs)
    out = []
    for cpu, d in cpus:
        files = [("", "scaling_cur_freq")]
        if with_limits:
            files += [(".max", "scaling_max_freq"), (".min", "scaling_min_freq")]
        for suffix, fname in files:
            raw, reason = read_int(fs, d + "/" + fname)
            extra = None
            if not suffix and with_limits:
                gov, _ = read_text(fs, d + "/scaling_governor")
                drv, _ = read_text(fs, d + "/scaling_driver")
                extra = {k: v for k, v in (("governor", gov), ("driver", drv)) if v}
            value = raw / 1000.0 if raw is not None else None
            out.append(Reading("freq.%s%s" % (cpu, suffix), value, "MHz", source, reason, extra))
    return out


# --- hwmon --------------------------------------------------------------------------------------

_HWMON_KINDS = (
    # prefix, sensor namespace, unit, divisor
    ("temp", "temp", "C", 1000.0),
    ("in", "voltage", "mV", 1.0),
    ("curr", "current", "mA", 1.0),
    ("power", "power", "mW", 1000.0),      # hwmon power is in microwatts
    ("energy", "energy", "uJ", 1.0),
)
_HWMON_INPUT_RE = re.compile(r"^(temp|in|curr|power|energy)(\d+)_(input|average)$")


def find_hwmon(root="/", skip_names=()):
    """``[(chip_name, hwmon_dir)]``; chips are named by their ``name`` file, not by hwmonN."""
    fs = as_fs(root)
    out = []
    for entry in sorted(fs.listdir(HWMON_DIR), key=_num_suffix):
        d = HWMON_DIR + "/" + entry
        name, _ = read_text(fs, d + "/name")
        if not name:
            name, _ = read_text(fs, d + "/device/name")
        if not name or name in skip_names:
            continue
        out.append((name, d))
    counts = {}
    for name, _ in out:
        counts[name] = counts.get(name, 0) + 1
    seen = {}
    result = []
    for name, d in out:
        if counts[name] > 1:
            # Same chip twice (two NVMe drives): the device link tells them apart across boots.
            real = fs.realpath(d + "/device") if fs.exists(d + "/device") else d
            seen[name] = seen.get(name, 0) + 1
            label = os.path.basename(real.rstrip("/")) or str(seen[name])
            name = "%s@%s" % (name, label)
        result.append((name, d))
    return result


def hwmon_channels(root, hwmon_dir):
    """``[(namespace, unit, divisor, label, input_path)]`` for one chip; ``_average`` preferred over ``_input``."""
    fs = as_fs(root)
    chans = {}
    for entry in fs.listdir(hwmon_dir):
        m = _HWMON_INPUT_RE.match(entry)
        if not m:
            continue
        prefix, idx, kind = m.groups()
        key = (prefix, int(idx))
        if key in chans and kind == "input":
            continue
        chans[key] = entry
    out = []
    for (prefix, idx), entry in sorted(chans.items()):
        for p, ns, unit, div in _HWMON_KINDS:
            if p == prefix:
                label, _ = read_text(fs, "%s/%s%d_label" % (hwmon_dir, prefix, idx))
                out.append((ns, unit, div, label or "%s%d" % (prefix, idx), hwmon_dir + "/" + entry))
    return out


def read_hwmon(root="/", devices=None, skip_names=(), source="sysfs:hwmon"):
    fs = as_fs(root)
    if devices is None:
        devices = [(name, d, hwmon_channels(fs, d)) for name, d in find_hwmon(fs, skip_names)]
    out = []
    for name, _, chans in devices:
        for ns, unit, div, label, path in chans:
            raw, reason = read_int(fs, path)
            value = None
            if raw is not None:
                if ns == "temp":
                    value, reason = millideg_to_c(raw)
                else:
                    value = raw / div
            out.append(Reading("%s.%s.%s" % (ns, name, label), value, unit, source, reason))
    return out


# --- RAPL (powercap) ----------------------------------------------------------------------------

def rapl_delta_uj(e0, e1, max_range_uj):
    """Energy in µJ between two reads of a RAPL counter that wraps at ``max_range_uj``.

    ``e1 < e0`` means the counter wrapped once (read at least twice per wrap
    period: a double wrap cannot be detected). The counter counts 0..max, so a
    wrap adds ``max - e0 + e1 + 1``.
    """
    if e1 >= e0:
        return e1 - e0
    if not max_range_uj:
        return None
    return (max_range_uj - e0) + e1 + 1


def find_rapl_zones(root="/"):
    """``[(domain_name, zone_dir)]`` for intel-rapl (and amd) powercap zones.

    Top-level zones are named by their ``name`` (``package-0``, ``psys``);
    subzones by ``<parent name>.<name>`` (``package-0.core``, ``package-0.dram``).
    """
    fs = as_fs(root)
    zone_dirs = {}
    for entry in fs.listdir(POWERCAP_DIR):
        if re.match(r"^[a-z-]*rapl(-mmio)?:[\d:]+$", entry):
            zone_dirs[entry] = POWERCAP_DIR + "/" + entry
    # A grep or find listing may show only the nested layout (intel-rapl/intel-rapl:0/intel-rapl:0:2).
    for top in fs.listdir(POWERCAP_DIR):
        if top in zone_dirs or not fs.isdir(POWERCAP_DIR + "/" + top):
            continue
        for sub in fs.listdir(POWERCAP_DIR + "/" + top):
            if ":" in sub and sub not in zone_dirs:
                zone_dirs[sub] = POWERCAP_DIR + "/" + top + "/" + sub
                for sub2 in fs.listdir(zone_dirs[sub]):
                    if sub2.startswith(sub + ":") and sub2 not in zone_dirs:
                        zone_dirs[sub2] = zone_dirs[sub] + "/" + sub2
    names = {}
    for zid, d in zone_dirs.items():
        name, _ = read_text(fs, d + "/name")
        names[zid] = name or zid
    out = []
    # (0, int) before (1, text): comparing an int with a str raised on oddly named recorded zones.
    for zid in sorted(zone_dirs, key=lambda z: [(0, int(x)) if x.isdecimal() and len(x) <= 18 else (1, x)
                                                for x in re.split(r"[:]", z)]):
        d = zone_dirs[zid]
        if not fs.exists(d + "/energy_uj") and not fs.exists(d + "/name"):
            continue
        parts = zid.split(":")
        if len(parts) > 2:
            parent = ":".join(parts[:-1])
            name = "%s.%s" % (names.get(parent, parent), names[zid])
        else:
            name = names[zid]
        out.append((name, d))
    return out


def read_rapl(root="/", zones=None, source="sysfs:powercap"):
    """``energy.<domain>`` counters (uJ) as read, with ``max_energy_range_uj`` and the power limits in extra.

    Since Linux 5.10 energy_uj is readable by root only (CVE-2020-8694): the
    reading is then None with that reason.
    """
    fs = as_fs(root)
    if zones is None:
        zones = find_rapl_zones(fs)
    out = []
    for name, d in zones:
        raw, reason = read_int(fs, d + "/energy_uj")
        if reason and "EACCES" in reason:
            reason = "energy_uj is root-only since Linux 5.10 (CVE-2020-8694): " + reason
        extra = {"zone": d.rsplit("/", 1)[1]}
        mx, _ = read_int(fs, d + "/max_energy_range_uj")
        if mx is not None:
            extra["max_energy_range_uj"] = mx
        for k in range(4):
            cname, _ = read_text(fs, "%s/constraint_%d_name" % (d, k))
            if cname is None:
                break
            lim, _ = read_int(fs, "%s/constraint_%d_power_limit_uw" % (d, k))
            win, _ = read_int(fs, "%s/constraint_%d_time_window_us" % (d, k))
            extra.setdefault("constraints", []).append(
                {"name": cname, "power_limit_uw": lim, "time_window_us": win})
        out.append(Reading("energy." + name, raw, "uJ", source, reason, extra))
    return out


class RaplMeter(object):
    """Turns successive RAPL counter reads into power, handling wraparound.

    ``update(name, energy_uj, max_range_uj, t_ns)`` returns the mean power in
    mW since the previous update of that domain, or None on the first one.
    """

    def __init__(self):
        self._last = {}

    def update(self, name, energy_uj, max_range_uj, t_ns):
        prev = self._last.get(name)
        self._last[name] = (energy_uj, t_ns)
        if prev is None or t_ns <= prev[1]:
            return None
        delta = rapl_delta_uj(prev[0], energy_uj, max_range_uj)
        if delta is None:
            return None
        # uJ / ns * 1e6 = mW
        return delta * 1e6 / float(t_ns - prev[1])


# --- power_supply -------------------------------------------------------------------------------

_STATUS_CODES = {"unknown": 1, "charging": 2, "discharging": 3, "not charging": 4, "full": 5}


def _uevent_fields(text):
    """``{KEY: value}`` of a uevent's ``KEY=value`` lines, without the ``POWER_SUPPLY_`` prefix."""
    kv = {}
    for line in text.splitlines():
        line = line.strip()
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key.startswith("POWER_SUPPLY_"):
            key = key[len("POWER_SUPPLY_"):]
        kv[key] = value.strip()
    return kv


class _Supply(object):
    """One supply's uevent fields, its calibration, and the readings made from them so far."""

    def __init__(self, kv, source, current_unit, current_sign):
        self.kv = kv
        self.source = source
        self.current_unit = current_unit
        self.current_sign = current_sign
        self.prefix = "supply.%s." % (kv.get("NAME") or "battery")
        self.out = []

    def num(self, key):
        """The field as a float; None when it is absent or not a number."""
        try:
            return float(self.kv[key])
        except (KeyError, ValueError):
            return None

    def add(self, field, value, unit, reason=None, **extra):
        """Append ``supply.<NAME>.<field>``."""
        self.out.append(Reading(self.prefix + field, value, unit, self.source, reason, extra or None))


# --- one handler per uevent field: ``handler(supply, key)`` adds its readings when the field is there.

def _supply_status(supply, key):
    """``.status``: a code (see :data:`_STATUS_CODES`), the text in extra; other text: None."""
    status = supply.kv.get(key)
    if status is None:
        return
    code = _STATUS_CODES.get(status.lower())
    supply.add("status", code, "", None if status.lower() in _STATUS_CODES else "unknown status text", text=status)


def _supply_online(supply, key):
    """``.online`` (0/1) of a mains or USB input, with its ``TYPE``/``USB_TYPE`` in extra."""
    online = supply.num(key)
    if online is not None:
        extra = {k.lower(): supply.kv[k] for k in ("TYPE", "USB_TYPE") if supply.kv.get(k)}
        supply.add("online", online, "", **extra)


def _scaled(field, unit, divisor=None, raw=None):
    """A handler for a field reported as its value / ``divisor`` (as is: None), the raw value as ``extra[raw]``."""
    def handler(supply, key):
        value = supply.num(key)
        if value is None:
            return
        extra = {raw: value} if raw else {}
        supply.add(field, value / divisor if divisor is not None else value, unit, **extra)
    handler.__doc__ = "``.%s`` (%s)." % (field, unit)
    return handler


def _supply_voltage(supply, key):
    """``.voltage`` (mV, raw µV in extra); 0 is a placeholder (emulator, no fuel gauge): None."""
    v = supply.num(key)
    if v is None:
        return
    if v == 0:
        supply.add("voltage", None, "mV", "voltage 0 is a placeholder (emulator or no fuel gauge)")
    else:
        supply.add("voltage", v / 1000.0, "mV", raw_uv=v)


def _supply_current(supply, key):
    """``.current`` (mA, positive = into the battery) in the calibrated unit and sign (see the caller)."""
    c = supply.num(key)
    if c is None:
        return
    unit = supply.current_unit or "uA"
    ma = c / 1000.0 if unit == "uA" else c
    extra = {"raw": c, "raw_unit": unit}
    sign = supply.current_sign
    if sign is None:
        sign = _current_sign_from_status(supply.kv, ma)
        if sign < 0:
            extra["sign_flipped"] = True
    supply.add("current", ma * sign, "mA", **extra)


def _current_sign_from_status(kv, ma):
    """-1 when a battery's current contradicts its ``Charging``/``Discharging`` status, else 1.

    A USB or mains input's current is what it delivers: never flipped.
    """
    s = (kv.get("STATUS") or "").lower()
    is_input = (kv.get("TYPE") or "").lower() not in ("", "battery")
    if not is_input and ((s == "charging" and ma < 0) or (s == "discharging" and ma > 0)):
        return -1
    return 1


#: ``(uevent key, handler)`` in the order the readings are reported.
_SUPPLY_FIELDS = (
    ("STATUS", _supply_status),
    ("ONLINE", _supply_online),
    ("VOLTAGE_MAX", _scaled("voltage_max", "mV", 1000.0)),
    ("VOLTAGE_MIN", _scaled("voltage_min", "mV", 1000.0)),
    ("CURRENT_MAX", _scaled("current_max", "mA", 1000.0)),
    ("INPUT_CURRENT_LIMIT", _scaled("input_current_limit", "mA", 1000.0)),
    ("VOLTAGE_NOW", _supply_voltage),
    ("CURRENT_NOW", _supply_current),
    ("POWER_NOW", _scaled("power", "mW", 1000.0, raw="raw_uw")),
    ("ENERGY_NOW", _scaled("energy", "mWh", 1000.0)),
    ("CHARGE_NOW", _scaled("charge", "mAh", 1000.0)),
    ("CAPACITY", _scaled("capacity", "%")),
    ("TEMP", _scaled("temp", "C", 10.0)),
)


def parse_power_supply_uevent(text, source="power_supply", current_unit=None, current_sign=None):
    """Readings from a ``power_supply`` uevent (``POWER_SUPPLY_`` prefix optional).

    Kernel ABI units: voltage µV, current µA, power µW, energy µWh, charge µAh,
    temp in tenths of °C. Reported as ``supply.<NAME>.voltage`` (mV),
    ``.current`` (mA, positive = into the battery), ``.power`` (mW),
    ``.energy`` (mWh), ``.charge`` (mAh), ``.capacity`` (%), ``.temp`` (C),
    ``.status`` (code: 1 unknown, 2 charging, 3 discharging, 4 not charging, 5 full).
    Mains and USB supplies: ``.online`` (0/1; ``TYPE`` and ``USB_TYPE`` in
    extra), ``.voltage_max`` ``.voltage_min`` (mV), ``.current_max``
    ``.input_current_limit`` (mA), besides ``.voltage``/``.current`` where
    present (a USB input's current is what it delivers: never sign-flipped).

    Real devices break the ABI. ``current_unit`` (``"uA"`` or ``"mA"``) and
    ``current_sign`` (+1 kernel convention, -1 inverted) are per-device
    calibrations; without them the status is used: a current whose sign
    contradicts ``Charging``/``Discharging`` is flipped (Qualcomm reports
    negative while charging), and the unit is µA (what Pixels report).
    """
    supply = _Supply(_uevent_fields(text), source, current_unit, current_sign)
    for key, handler in _SUPPLY_FIELDS:
        handler(supply, key)
    return supply.out


def find_power_supplies(root="/"):
    """``[(name, dir)]`` of power_supply entries that measure something; UCSI USB-C ports are skipped.

    A UCSI entry describes negotiated USB-PD, not measured power.
    """
    fs = as_fs(root)
    out = []
    for entry in fs.listdir(POWER_SUPPLY_DIR):
        if entry.startswith("ucsi"):
            continue
        d = POWER_SUPPLY_DIR + "/" + entry
        if fs.exists(d + "/uevent"):
            out.append((entry, d))
    return out


def read_power_supplies(root="/", supplies=None, source="sysfs:power_supply"):
    fs = as_fs(root)
    if supplies is None:
        supplies = find_power_supplies(fs)
    out = []
    for name, d in supplies:
        text, reason = read_text(fs, d + "/uevent")
        if text is None:
            out.append(Reading("supply.%s.status" % name, None, "", source, reason))
            continue
        if "NAME=" not in text:
            text = "POWER_SUPPLY_NAME=%s\n%s" % (name, text)
        out.extend(parse_power_supply_uevent(text, source))
    return out


# --- /proc --------------------------------------------------------------------------------------

def _kv_kb(text):
    out = []
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        unit = parts[1] if len(parts) > 1 else ""
        out.append((key.strip(), value, unit))
    return out


def parse_meminfo(text, source="procfs:meminfo"):
    """``meminfo.<Key>`` in KB (``kB`` in the file means KiB) and ``mem.available`` (KB).

    Old kernels have no MemAvailable: it is then MemFree + Buffers + Cached,
    marked so in extra.
    """
    out = []
    values = {}
    for key, value, unit in _kv_kb(text):
        values[key] = value
        out.append(Reading("meminfo." + key, value, "KB" if unit == "kB" else "count", source))
    if "MemAvailable" in values:
        out.append(Reading("mem.available", values["MemAvailable"], "KB", source, None, {"method": "MemAvailable"}))
    elif all(k in values for k in ("MemFree", "Buffers", "Cached")):
        out.append(Reading("mem.available", values["MemFree"] + values["Buffers"] + values["Cached"], "KB",
                           source, None, {"method": "MemFree+Buffers+Cached (no MemAvailable: old kernel)"}))
    elif values:
        out.append(Reading("mem.available", None, "KB", source, "no MemAvailable nor MemFree/Buffers/Cached"))
    return out


def read_meminfo(root="/", source="procfs:meminfo"):
    text, reason = read_text(as_fs(root), "/proc/meminfo")
    if text is None:
        return [Reading("mem.available", None, "KB", source, reason)]
    return parse_meminfo(text, source)


_STATUS_KEYS = ("VmPeak", "VmSize", "VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap",
                "VmData", "VmStk")


def parse_proc_status(text, source="procfs:status"):
    """``proc.VmRSS`` (current RSS), ``proc.VmHWM`` (peak RSS) and the other Vm*/Rss* fields in KB, ``proc.Threads``."""
    out = []
    extra = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if sep and key in ("Name", "Pid"):
            extra[key.lower()] = rest.strip()
    for key, value, unit in _kv_kb(text):
        if key in _STATUS_KEYS and unit == "kB":
            out.append(Reading("proc." + key, value, "KB", source, None, dict(extra)))
        elif key == "Threads":
            out.append(Reading("proc.Threads", value, "count", source, None, dict(extra)))
    return out


def read_proc_status(root="/", pid=None, source="procfs:status"):
    """VmRSS/VmHWM of ``pid`` (default: this process). A process that exited gives None readings."""
    pid = os.getpid() if pid is None else pid
    text, reason = read_text(as_fs(root), "/proc/%s/status" % pid)
    if text is None:
        return [Reading("proc.VmRSS", None, "KB", source, reason, {"pid": str(pid)}),
                Reading("proc.VmHWM", None, "KB", source, reason, {"pid": str(pid)})]
    return parse_proc_status(text, source)


# --- a whole recorded tree ----------------------------------------------------------------------

def read_sysfs_tree(root, source="sysfs"):
    """Everything the generic readers find under ``root``: used for recorded trees (ttar, grep, dumps)."""
    fs = as_fs(root)
    out = []
    zones = find_thermal_zones(fs)
    out += read_thermal_zones(fs, zones, source=source)
    for name, d, ztype in zones:
        out += read_trip_points(fs, d, ztype, source=source)
    out += read_cooling_devices(fs, source=source)
    out += read_cpufreq(fs, source=source)
    out += read_hwmon(fs, source=source)
    out += read_rapl(fs, source=source)
    out += read_power_supplies(fs, source=source)
    if fs.exists("/proc/meminfo"):
        out += read_meminfo(fs, source=source)
    return out
