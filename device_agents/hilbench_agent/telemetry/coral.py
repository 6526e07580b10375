"""Google Coral Edge TPU: the apex driver's temperature and trip points, and the devices with no sensor.

* PCIe/M.2 (gasket/apex driver): ``/sys/class/apex/apex_N/temp`` in m°C, with
  ``trip_point{0,1,2}_temp`` (defaults 85/90/95 °C: the chip clock drops to
  250/125/62.5 MHz above each) and ``hw_temp_warn{1,2}`` (warn2 shuts the chip down).
  Readings are quantised to 0.25 °C. A dead or hung chip reads about -87.9 °C:
  anything below -40 °C is invalid.
* The older in-tree staging driver has no ``temp`` attribute at all.
* The USB Accelerator has **no temperature sensor and no API**; the host's
  thermal_zone0 is the host, not the TPU.

Sensor names: ``temp.<apex_N>`` (C), ``trip.<apex_N>.<k>`` (C), ``warn.<apex_N>.<k>`` (C),
``throttle.<apex_N>.level`` (0 none .. 3, inferred from temp vs trip points).
"""

import re

from hilbench_agent.telemetry.fs import as_fs, read_int
from hilbench_agent.telemetry.linux import millideg_to_c
from hilbench_agent.telemetry.reading import Reading

__all__ = ["APEX_DIR", "apex_temp", "parse_sysfs_temp", "parse_trip_points", "parse_apex_listing",
           "find_apex", "read_apex", "find_usb_accelerators", "NO_SENSOR_USB", "NO_TEMP_ATTR"]

APEX_DIR = "/sys/class/apex"
SOURCE = "sysfs:apex"
#: Below this an apex reading is a saturated ADC (dead or hung chip), not a temperature.
APEX_MIN_VALID_C = -40.0
NO_SENSOR_USB = "no temperature sensor: the Coral USB Accelerator has none and no API to read one"
NO_TEMP_ATTR = "temperature unsupported by this driver build (no temp attribute)"
#: USB ids of the Edge TPU accelerator before and after its firmware is loaded.
USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))


def apex_temp(raw_millideg):
    """``(celsius, None)`` or ``(None, reason)`` for an apex ``temp`` value in m°C."""
    value = raw_millideg / 1000.0
    if value < APEX_MIN_VALID_C:
        return None, "invalid reading %.1f C: the chip is dead or hung (saturated ADC)" % value
    return value, None


def parse_sysfs_temp(text, sensor="temp.sysfs", source="sysfs"):
    """A single m°C value (``apex_0/temp``, ``thermal_zoneN/temp``) as a ``C`` reading."""
    body = text.strip()
    try:
        raw = int(body.split()[0])
    except (ValueError, IndexError):
        return [Reading(sensor, None, "C", source, "not a number: %r" % body[:40])]
    value, reason = millideg_to_c(raw)
    return [Reading(sensor, value, "C", source, reason, {"raw": raw})]


def parse_trip_points(text, prefix="zone", source="sysfs"):
    """``cat trip_point_*_temp`` output: one m°C value per line, in glob (lexical) order.

    The order is kept: on the Coral Dev Board trip 4 (65 °C) is the fan-on
    point and comes after 90 °C. Do not sort them by temperature.
    """
    out = []
    k = 0
    for line in text.splitlines():
        line = line.strip()
        if not re.match(r"^-?\d{1,18}$", line):  # no real trip point has more digits (and 400 overflow a float)
            continue
        out.append(Reading("trip.%s.%d" % (prefix, k), int(line) / 1000.0, "C", source, None, {"index": k}))
        k += 1
    return out


def parse_apex_listing(text, source="apex-listing"):
    """An ``ls /sys/class/apex/apex_N`` listing: says whether the driver exposes a temperature."""
    names = []
    device = "apex_0"
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(">"):
            line = line[1:].strip()
        m = re.search(r"/sys/class/apex/(apex_\d+)", line)
        if m:
            device = m.group(1)
            continue
        names.extend(w.strip("'\"") for w in line.split())
    out = []
    if "temp" in names:
        out.append(Reading("temp." + device, None, "C", source, "listing only: read the temp file",
                           {"attributes": sorted(names)}))
    else:
        out.append(Reading("temp." + device, None, "C", source, NO_TEMP_ATTR,
                           {"attributes": sorted(names), "unsupported": True}))
    return out


def find_apex(root="/"):
    """``[(name, dir)]`` of Edge TPU PCIe devices."""
    fs = as_fs(root)
    return [(e, APEX_DIR + "/" + e) for e in fs.listdir(APEX_DIR) if e.startswith("apex_")]


def find_usb_accelerators(root="/"):
    """USB device folders that are a Coral USB Accelerator (by vendor:product id)."""
    fs = as_fs(root)
    out = []
    base = "/sys/bus/usb/devices"
    for entry in fs.listdir(base):
        d = base + "/" + entry
        try:
            vid = fs.read(d + "/idVendor").strip().lower()
            pid = fs.read(d + "/idProduct").strip().lower()
        except OSError:
            continue
        if (vid, pid) in USB_IDS:
            out.append(d)
    return out


def read_apex(root="/", devices=None, with_trips=True, source=SOURCE):
    """Temperature, trip points, warn thresholds and the inferred throttle level of every apex device."""
    fs = as_fs(root)
    if devices is None:
        devices = find_apex(fs)
    out = []
    for name, d in devices:
        if not fs.exists(d + "/temp"):
            out.append(Reading("temp." + name, None, "C", source, NO_TEMP_ATTR, {"unsupported": True}))
            continue
        raw, reason = read_int(fs, d + "/temp")
        temp = None
        if raw is not None:
            temp, reason = apex_temp(raw)
        out.append(Reading("temp." + name, temp, "C", source, reason, {"raw": raw} if raw is not None else None))
        if not with_trips:
            continue
        trips = []
        for k in range(3):
            t, r = read_int(fs, "%s/trip_point%d_temp" % (d, k))
            if t is None and not fs.exists("%s/trip_point%d_temp" % (d, k)):
                continue
            trips.append(t / 1000.0 if t is not None else None)
            out.append(Reading("trip.%s.%d" % (name, k), t / 1000.0 if t is not None else None, "C", source, r))
        for k in (1, 2):
            w, r = read_int(fs, "%s/hw_temp_warn%d" % (d, k))
            if w is None and not fs.exists("%s/hw_temp_warn%d" % (d, k)):
                continue
            en, _ = read_int(fs, "%s/hw_temp_warn%d_en" % (d, k))
            out.append(Reading("warn.%s.%d" % (name, k), w / 1000.0 if w is not None else None, "C", source, r,
                               {"enabled": en} if en is not None else None))
        if temp is not None and trips and all(t is not None for t in trips):
            level = sum(1 for t in trips if temp >= t)
            out.append(Reading("throttle.%s.level" % name, level, "", source, None,
                               {"note": "inferred from temp vs trip points: 0 = 500 MHz, 1 = 250, 2 = 125, 3 = 62.5"}))
    return out
