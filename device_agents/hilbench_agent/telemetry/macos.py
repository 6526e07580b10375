"""macOS: ``powermetrics`` (text and ``-f plist``), ``pmset -g therm``, and macmon's JSON line.

powermetrics needs root and its power figures are Apple's *estimates*. Values
are rounded independently, so ``Combined Power`` / ``Package Power`` is taken
as printed and never re-summed (211 + 147 + 0 = 358, Combined says 359).

Sensor names and units:

====================================  =====  ======================================================
``power.cpu`` ``.gpu`` ``.ane``       mW     processor section (``GPU Power`` printed twice: the
                                             first of the sample wins)
``power.combined``                    mW     ``Combined Power (CPU + GPU + ANE)`` (macOS 13+)
``power.package`` ``.dram`` ``.dcs``  mW     Monterey; Intel ``package power`` (printed in W)
``power.<cluster>``                   mW     ``E-Cluster Power`` (older macOS)
``freq.<cluster>`` ``freq.cpuN``      MHz    HW active frequency
``freq.gpu`` ``load.gpu``             MHz/%  load = 100 - GPU idle residency
``thermal.pressure``                  ""     0 Nominal, 1 Moderate, 2 Heavy, 3 Trapping, 4 Sleeping
``powermetrics.elapsed``              ms     the sample's own length (not exactly the interval)
``pmset.cpu_speed_limit``             %      percent of nominal clock (Intel only)
``pmset.cpu_scheduler_limit``         %
``pmset.cpu_available_cpus``          count
====================================  =====  ======================================================
"""

import json
import plistlib
import re

from hilbench_agent.telemetry.reading import Reading

__all__ = ["parse_powermetrics", "parse_powermetrics_text", "parse_powermetrics_plist", "parse_pmset_therm",
           "parse_macmon", "PRESSURE_LEVELS"]

PRESSURE_LEVELS = ("Nominal", "Moderate", "Heavy", "Trapping", "Sleeping")
SRC = "powermetrics"

# Numbers as ``\d+(\.\d*)?|\.\d+``: ``[\d.]+`` let "1.2.3" or "." through to float() (ValueError).
_DEC = r"(?:\d+(?:\.\d*)?|\.\d+)"
_SAMPLE_RE = re.compile(r"^\*\*\* (?:Sampled|Summary) system activity \((.*)\) \((%s)ms elapsed\) \*\*\*" % _DEC)
_POWER_RE = re.compile(r"^(.+?) Power(?: \(CPU \+ GPU \+ ANE\))?: (-?%s) ?(mW|W)$" % _DEC)
_INTEL_RE = re.compile(r"^Intel energy model derived package power \(CPUs\+GT\+SA\): (%s)W" % _DEC)
_FREQ_RE = re.compile(r"^(\S+-Cluster|GPU) HW active frequency: (%s) MHz" % _DEC)
_CPU_FREQ_RE = re.compile(r"^CPU (\d+) frequency: (%s) MHz" % _DEC)
_GPU_IDLE_RE = re.compile(r"^GPU idle residency:\s*(%s)%%" % _DEC)
_PRESSURE_RE = re.compile(r"^Current pressure level: (\w+)")


def _num(value):
    """``value`` as a finite float when it is a JSON/plist number, else None (a device may send anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _dict(value):
    return value if isinstance(value, dict) else {}


def _scaled(value, factor):
    value = _num(value)
    return None if value is None else value * factor


def _pressure(text, source, extra):
    text = text if isinstance(text, str) else repr(text)[:80]
    level = PRESSURE_LEVELS.index(text) if text in PRESSURE_LEVELS else None
    e = dict(extra, text=text)
    return Reading("thermal.pressure", level, "", source, None if level is not None else "unknown level", e)


def _power_name(label):
    label = label.strip()
    low = label.lower()
    if low in ("cpu", "gpu", "ane", "dram", "dcs", "package"):
        return low
    if low.startswith("combined"):
        return "combined"
    return label


def parse_powermetrics_text(text, source=SRC):
    """Every ``*** Sampled system activity`` block; ``extra["sample"]`` numbers them from 0.

    A sample holding only the tasks table gives just ``powermetrics.elapsed``.
    """
    out = []
    sample = -1
    extra = {}
    seen = set()
    for raw in text.splitlines():
        line = raw.strip()
        m = _SAMPLE_RE.match(line)
        if m:
            sample += 1
            extra = {"sample": sample, "date": m.group(1)}
            seen = set()
            out.append(Reading("powermetrics.elapsed", float(m.group(2)), "ms", source, None, dict(extra)))
            continue
        if sample < 0:
            extra = {"sample": 0}
        m = _INTEL_RE.match(line)
        if m:
            out.append(Reading("power.package", float(m.group(1)) * 1000.0, "mW", source, None,
                               dict(extra, note="Intel energy model estimate")))
            continue
        m = _POWER_RE.match(line)
        if m:
            name = _power_name(m.group(1))
            if name in seen:
                continue  # GPU Power again in the GPU section
            seen.add(name)
            value = float(m.group(2)) * (1000.0 if m.group(3) == "W" else 1.0)
            out.append(Reading("power." + name, value, "mW", source, None, dict(extra)))
            continue
        m = _FREQ_RE.match(line)
        if m:
            name = "gpu" if m.group(1) == "GPU" else m.group(1)
            out.append(Reading("freq." + name, float(m.group(2)), "MHz", source, None, dict(extra)))
            continue
        m = _CPU_FREQ_RE.match(line)
        if m:
            out.append(Reading("freq.cpu" + m.group(1), float(m.group(2)), "MHz", source, None, dict(extra)))
            continue
        m = _GPU_IDLE_RE.match(line)
        if m:
            out.append(Reading("load.gpu", round(100.0 - float(m.group(1)), 6), "%", source, None,
                               dict(extra, idle_residency=float(m.group(1)))))
            continue
        m = _PRESSURE_RE.match(line)
        if m:
            out.append(_pressure(m.group(1), source, extra))
    return out


def parse_powermetrics_plist(text, source=SRC):
    """``powermetrics -f plist``: one plist per sample, separated by NUL bytes.

    Power fields are mW (``<real>``). Without ``*_power``, ``*_energy`` (mJ per
    sample, inferred from asitop) is divided by ``elapsed_ns``.
    """
    out = []
    data = text.encode("utf-8") if not isinstance(text, bytes) else text
    chunks = [c.strip() for c in data.split(b"\x00") if c.strip()]
    for k, chunk in enumerate(chunks):
        try:
            doc = plistlib.loads(chunk)
        except Exception as exc:  # plistlib raises several kinds on a truncated document
            out.append(Reading("powermetrics.sample", None, "", source, "unparseable plist: %s" % exc,
                               {"sample": k}))
            continue
        # Every field is checked for its type: a plist from a device may hold anything anywhere.
        doc = _dict(doc)
        extra = {"sample": k}
        if isinstance(doc.get("hw_model"), str) and doc["hw_model"]:
            extra["hw_model"] = doc["hw_model"]
        elapsed_ns = _num(doc.get("elapsed_ns"))
        if elapsed_ns:
            out.append(Reading("powermetrics.elapsed", elapsed_ns / 1e6, "ms", source, None, dict(extra)))
        proc = _dict(doc.get("processor"))
        for key in ("cpu", "gpu", "ane", "combined", "package", "dram"):
            if (key + "_power") in proc:
                out.append(Reading("power." + key, _num(proc[key + "_power"]), "mW", source, None, dict(extra)))
            elif (key + "_energy") in proc and elapsed_ns:
                energy = _num(proc[key + "_energy"])
                out.append(Reading("power." + key, None if energy is None else energy / (elapsed_ns / 1e9), "mW",
                                   source, None, dict(extra, note="energy / elapsed (energy unit mJ inferred)")))
        clusters = proc.get("clusters")
        for cl in clusters if isinstance(clusters, list) else []:
            cl = _dict(cl)
            if "freq_hz" in cl and isinstance(cl.get("name"), str) and cl["name"]:
                out.append(Reading("freq." + cl["name"], _scaled(cl["freq_hz"], 1e-6), "MHz", source, None,
                                   dict(extra)))
        gpu = _dict(doc.get("gpu"))
        if "freq_hz" in gpu:
            out.append(Reading("freq.gpu", _scaled(gpu["freq_hz"], 1e-6), "MHz", source, None, dict(extra)))
        idle = _num(gpu.get("idle_ratio"))
        if idle is not None:
            out.append(Reading("load.gpu", round((1.0 - idle) * 100.0, 6), "%", source, None,
                               dict(extra, idle_ratio=idle)))
        if "thermal_pressure" in doc:
            out.append(_pressure(doc["thermal_pressure"], source, extra))
    return out


def parse_powermetrics(text, source=SRC):
    """Text or plist output, told apart by the content."""
    if "<plist" in text[:4096] or text.lstrip("\x00 \n").startswith("<?xml"):
        return parse_powermetrics_plist(text, source)
    return parse_powermetrics_text(text, source)


_PMSET_RE = re.compile(r"^\s*(CPU_Scheduler_Limit|CPU_Available_CPUs|CPU_Speed_Limit)\s*=\s*(\d+)")


def parse_pmset_therm(text, source="pmset"):
    """``pmset -g therm`` / ``thermlog`` (Intel). Apple silicon records no limits: then None readings.

    CPU_Speed_Limit is the percent of nominal clock; 100 does not prove the
    machine is not throttled on every model (look at the frequency as well).
    """
    out = []
    names = {"CPU_Scheduler_Limit": ("pmset.cpu_scheduler_limit", "%"),
             "CPU_Available_CPUs": ("pmset.cpu_available_cpus", "count"),
             "CPU_Speed_Limit": ("pmset.cpu_speed_limit", "%")}
    for line in text.splitlines():
        m = _PMSET_RE.match(line)
        if m:
            sensor, unit = names[m.group(1)]
            out.append(Reading(sensor, int(m.group(2)), unit, source))
    if not out:
        reason = "no CPU power status recorded (Apple silicon: use powermetrics thermal pressure)"
        for sensor, unit in names.values():
            out.append(Reading(sensor, None, unit, source, reason))
    return out


def parse_macmon(text, source="macmon"):
    """macmon's JSON lines (no sudo; IOReport): power in **W** (reported in mW), usage as [MHz, fraction]."""
    out = []
    for k, line in enumerate(ln for ln in text.splitlines() if ln.strip().startswith("{")):
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
            out.append(Reading("macmon.sample", None, "", source, "unparseable JSON: %s" % exc, {"sample": k}))
            continue
        # Every field is checked for its type: a device may send any JSON.
        doc = _dict(doc)
        extra = {"sample": k}
        if isinstance(doc.get("timestamp"), (str, int, float)) and doc.get("timestamp"):
            extra["timestamp"] = doc["timestamp"]
        for key, value in sorted(doc.items()):
            if key.endswith("_power") and _num(value) is not None:
                out.append(Reading("power." + key[:-len("_power")], _scaled(value, 1000.0), "mW", source, None,
                                   dict(extra)))
            elif key.endswith("_usage") and isinstance(value, list) and len(value) == 2:
                name = key[:-len("_usage")]
                out.append(Reading("freq." + name, _num(value[0]), "MHz", source, None, dict(extra)))
                out.append(Reading("load." + name, _scaled(value[1], 100.0), "%", source, None, dict(extra)))
        for key, value in sorted(_dict(doc.get("temp")).items()):
            if _num(value) is not None:
                out.append(Reading("temp." + key.replace("_temp", ""), _num(value), "C", source, None, dict(extra)))
        mem = _dict(doc.get("memory"))
        for key in ("ram_total", "ram_usage", "swap_total", "swap_usage"):
            if _num(mem.get(key)) is not None:
                out.append(Reading("mem." + key, _scaled(mem[key], 1 / 1048576.0), "MB", source, None, dict(extra)))
    return out
