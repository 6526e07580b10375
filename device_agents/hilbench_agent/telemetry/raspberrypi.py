"""Raspberry Pi: ``vcgencmd`` (temperature, ARM clock, volts, throttled bits) and the Pi 5 PMIC ADC.

Sensor names and units:

=================================  =====  =========================================================
``temp.soc``                       C      ``measure_temp`` (``temp=62.3'C``)
``freq.arm``                       MHz    ``measure_clock arm``; the firmware's real clock (the
                                          clock id in parentheses varies by model: extra)
``voltage.<domain>``               mV     ``measure_volts``: the *requested* voltage, not measured
``throttle.raw``                   ""     ``get_throttled`` bit field (``extra["hex"]``)
``throttle.<flag>``                ""     0/1 per bit, now (bits 0-3) and ``<flag>_occurred``
                                          since boot (bits 16-19)
``current.<RAIL>`` ``voltage.<RAIL>``  mA/mV  ``pmic_read_adc`` channels, paired by rail name
``power.<RAIL>``                   mW     V x I of a rail that has both
``power.pmic_rails``               mW     sum of the paired rails: a **partial** measure of board
                                          power (no 5 V loads: USB, HATs, NVMe; no PMIC losses)
``power.board_estimate``           mW     1.1451 x sum + 0.5879 W (jfikar's calibration of one
                                          board): a labelled estimate, not a measurement
=================================  =====  =========================================================
"""

import re

from hilbench_agent.telemetry.reading import Reading

__all__ = ["THROTTLE_BITS", "decode_throttled", "parse_vcgencmd", "parse_pmic_read_adc"]

#: get_throttled bits (raspberrypi/documentation, graphics-utilities.adoc).
THROTTLE_BITS = (
    (0, "undervoltage"),
    (1, "arm_freq_capped"),
    (2, "throttled"),
    (3, "soft_temp_limit"),
    (16, "undervoltage_occurred"),
    (17, "arm_freq_capped_occurred"),
    (18, "throttled_occurred"),
    (19, "soft_temp_limit_occurred"),
)

PMIC_PARTIAL_NOTE = ("sum of PMIC rails: a partial measure of board power (excludes 5 V loads such as USB, "
                     "HATs and NVMe, and PMIC conversion losses)")
JFIKAR_NOTE = "estimate: 1.1451 x rails + 0.5879 W, calibrated on one Pi 5 against a USB-C meter"

_DEC = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNSUPPORTED_RE = re.compile(r'error=(\d+)\s+error_msg="([^"]*)"')


def decode_throttled(value, source="vcgencmd"):
    """Readings for a ``get_throttled`` value: ``throttle.raw`` and one 0/1 reading per documented bit."""
    out = [Reading("throttle.raw", value, "", source, None, {"hex": "0x%x" % value})]
    for bit, name in THROTTLE_BITS:
        out.append(Reading("throttle." + name, (value >> bit) & 1, "", source, None, {"bit": bit}))
    return out


def parse_vcgencmd(text, source="vcgencmd"):
    """Any mix of ``temp=``, ``frequency(N)=``, ``volt=`` and ``throttled=`` lines.

    ``error=1 error_msg="Command not registered"`` (exit status may still be 0)
    becomes an unavailable ``vcgencmd.command`` reading.
    """
    out = []
    for line in text.replace("\x00", "\n").splitlines():
        line = line.strip()
        # Numbers as ``\d+(\.\d*)?|\.\d+``: ``[\d.]+`` let "1.2.3" or "." through to float() (ValueError).
        m = re.match(r"^temp=(-?%s)'C$" % _DEC, line)
        if m:
            out.append(Reading("temp.soc", float(m.group(1)), "C", source))
            continue
        m = re.match(r"^frequency\((\d+)\)=(\d+)$", line)
        if m:
            hz = int(m.group(2))
            if hz == 0:
                out.append(Reading("freq.arm", None, "MHz", source, "clock reads 0 (off or unsupported)",
                                   {"clock_id": int(m.group(1))}))
            else:
                out.append(Reading("freq.arm", hz / 1e6, "MHz", source, None, {"clock_id": int(m.group(1))}))
            continue
        m = re.match(r"^volt=(%s)V$" % _DEC, line)
        if m:
            out.append(Reading("voltage.core", float(m.group(1)) * 1000.0, "mV", source, None,
                               {"note": "requested voltage, not measured (read pmic_read_adc VDD_CORE_V)"}))
            continue
        m = re.match(r"^throttled=(0x[0-9a-fA-F]+|\d+)$", line)
        if m:
            out.extend(decode_throttled(int(m.group(1), 0), source))
            continue
        m = _UNSUPPORTED_RE.search(line)
        if m:
            out.append(Reading("vcgencmd.command", None, "", source, "unsupported: " + m.group(2),
                               {"error": int(m.group(1))}))
    return out


_PMIC_RE = re.compile(r"^\s*(\S+)_(A|V)\s+(current|volt)\((\d+)\)=(-?%s)(A|V)\s*$" % _DEC)


def parse_pmic_read_adc(text, source="pmic_read_adc"):
    """``vcgencmd pmic_read_adc`` (Pi 5): rails paired by name, never by channel order.

    The mailbox returns the text NUL-separated; both separators are accepted.
    """
    out = []
    amps, volts, channels = {}, {}, {}
    order = []
    for line in text.replace("\x00", "\n").splitlines():
        m = _PMIC_RE.match(line)
        if not m:
            mu = _UNSUPPORTED_RE.search(line)
            if mu:
                out.append(Reading("power.pmic_rails", None, "mW", source,
                                   "unsupported: %s (no PMIC ADC: not a Pi 5)" % mu.group(2)))
            continue
        rail, kind, _, chan, value = m.group(1), m.group(2), m.group(3), int(m.group(4)), float(m.group(5))
        if rail not in order:
            order.append(rail)
        if kind == "A":
            amps[rail] = value
            out.append(Reading("current." + rail, value * 1000.0, "mA", source, None, {"channel": chan}))
        else:
            volts[rail] = value
            out.append(Reading("voltage." + rail, value * 1000.0, "mV", source, None, {"channel": chan}))
        channels.setdefault(rail, []).append(chan)
    paired = [r for r in order if r in amps and r in volts]
    total_w = 0.0
    for rail in paired:
        w = amps[rail] * volts[rail]
        total_w += w
        out.append(Reading("power." + rail, w * 1000.0, "mW", source, None, {"channels": channels[rail]}))
    if paired:
        out.append(Reading("power.pmic_rails", total_w * 1000.0, "mW", source, None,
                           {"partial": True, "note": PMIC_PARTIAL_NOTE, "rails": paired}))
        out.append(Reading("power.board_estimate", (1.1451 * total_w + 0.5879) * 1000.0, "mW", source, None,
                           {"estimate": True, "note": JFIKAR_NOTE}))
    return out
