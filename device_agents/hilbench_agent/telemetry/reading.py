"""One sensor value, as every telemetry reader returns it.

Runs on the device's Python 3.7 with the standard library alone.
"""

__all__ = ["Reading"]

_INF = float("inf")


class Reading(object):
    """One value of one sensor at one moment.

    ``value`` is a float, or ``None`` when the sensor exists but has no usable
    value right now (offline, placeholder, unreadable); ``reason`` then says
    why. A missing or placeholder value is never reported as 0.

    ``unit`` is a short name (``mW``, ``mV``, ``mA``, ``C``, ``MHz``, ``%``,
    ``KB``, ``MB``, ``uJ``, ``mWh``, ``count``, or ``""`` for flags and codes).
    ``source`` names where it came from (``tegrastats``, ``sysfs:thermal``...).
    ``extra`` holds context that is not a number: the raw text of a state
    (``extra["text"]``), a channel id, the rails a total was summed from.
    """

    __slots__ = ("sensor", "value", "unit", "source", "reason", "extra")

    def __init__(self, sensor, value, unit, source="", reason=None, extra=None):
        self.sensor = sensor
        if value is not None:
            try:
                value = float(value)
            except OverflowError:  # an int beyond float range (a device printed 400 digits)
                value = _INF
            if value != value or value in (_INF, -_INF):
                # NaN/inf cannot travel as JSON (the protocol refuses them): unavailable instead.
                reason = reason or "not a finite number (%r)" % value
                value = None
        self.value = value
        self.unit = unit
        self.source = source
        self.reason = reason
        self.extra = extra if extra is not None else {}

    def to_dict(self, t_ns=None, extra=False):
        """The protocol form: ``{"t_ns", "sensor", "value", "unit", "source"}`` (+ ``reason``)."""
        d = {}
        if t_ns is not None:
            d["t_ns"] = int(t_ns)
        d["sensor"] = self.sensor
        d["value"] = self.value
        d["unit"] = self.unit
        d["source"] = self.source
        if self.value is None:
            d["reason"] = self.reason or "unavailable"
        if extra and self.extra:
            d["extra"] = dict(self.extra)
        return d

    def __eq__(self, other):
        if not isinstance(other, Reading):
            return NotImplemented
        return (self.sensor, self.value, self.unit, self.source, self.reason, self.extra) == (
            other.sensor, other.value, other.unit, other.source, other.reason, other.extra)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        if self.value is None:
            return "Reading(%r, None, %r, reason=%r)" % (self.sensor, self.unit, self.reason)
        return "Reading(%r, %r, %r)" % (self.sensor, self.value, self.unit)
