"""Find the telemetry sources this machine has, by name, and read them cheaply.

``discover(root="/", pid=None, meter_command=None)`` probes the tree under
``root`` once and returns a list of :class:`Source` objects (a
:class:`Discovered` list, whose ``missing`` attribute lists ``(source, reason)``
for what was looked for and not found). Each source resolves its file paths at
discovery, so a ``read()`` is a handful of plain ``open``/``read`` calls: no
directory walks and no subprocess per tick for sysfs.

Source contract (small on purpose)::

    name             str, unique within a discovery
    min_interval_s   0.0, or the slowest rate the source should be read at
    describe()       one line for the ``hello`` message
    read()           -> [Reading]; may raise (the sampler counts failures)
    close()          release a subprocess, if any
"""

import os
import re
import shlex
import subprocess
import sys
import threading
import time

from hilbench_agent.telemetry import android, coral, jetson, linux, macos, raspberrypi
from hilbench_agent.telemetry.fs import as_fs, read_int
from hilbench_agent.telemetry.reading import Reading

__all__ = ["Source", "Discovered", "discover", "ThermalSource", "CoolingSource", "CpufreqSource", "HwmonSource",
           "RaplSource", "ProcessMemorySource", "MeminfoSource", "PowerSupplySource", "InaRailsSource", "JetsonGpuSource",
           "ApexSource", "CommandSource", "StreamCommandSource", "TegrastatsSource", "ExternalMeterSource", "which"]


class Source(object):
    """One telemetry source: a set of sensors read together."""

    name = "source"
    min_interval_s = 0.0

    def describe(self):
        return self.name

    def read(self):
        raise NotImplementedError

    def close(self):
        pass

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.describe())


class Discovered(list):
    """The sources found (a list), with ``missing``: ``[(source, reason)]`` for what was not, and
    ``facts``: what discovery read once and the run needs (``trip_points``, ``jetson_clocks``)."""

    def __init__(self, sources=(), missing=(), facts=None):
        list.__init__(self, sources)
        self.missing = list(missing)
        self.facts = dict(facts or {})

    def describe(self):
        """``{"sources": [...], "missing": [...]}`` (+ ``"facts"``) for ``hello`` and the result.

        ``facts["trip_points"]``: ``{zone sensor: [{"trip", "temp_c", "type"}]}``
        (passive, hot, critical); ``facts["jetson_clocks"]``: ``{"active": 1|0|None,
        "text": "on"|"off"|reason, ...}`` on a Jetson.
        """
        out = {"sources": [s.describe() for s in self],
               "missing": ["%s: %s" % (name, reason) for name, reason in self.missing]}
        if self.facts:
            out["facts"] = dict(self.facts)
        return out


# --- sysfs / procfs sources ---------------------------------------------------------------------

class _ListedSource(Source):
    """A source whose discovered entries (zones, devices) are read by one reader in ``linux``."""

    reader = None  # set by each subclass: reader(fs, entries) -> [Reading]

    def __init__(self, root, entries):
        self.fs = as_fs(root)
        self.entries = entries

    def read(self):
        return self.reader(self.fs, self.entries)


class ThermalSource(_ListedSource):
    name = "thermal"
    reader = staticmethod(linux.read_thermal_zones)

    def describe(self):
        return "thermal: %d zones (%s)" % (len(self.entries), ", ".join(z[2] for z in self.entries[:8]))


class CoolingSource(_ListedSource):
    """Cooling devices' ``cur_state``: above 0 on a cpufreq/Processor device means the CPU is throttled."""

    name = "cooling"
    min_interval_s = 0.5  # the thermal governor re-evaluates every polling_delay (typically 0.25 to 1 s)
    reader = staticmethod(linux.read_cooling_devices)

    def describe(self):
        return "cooling: %d devices (%s)" % (len(self.entries), ", ".join(d[2] for d in self.entries[:6]))


class CpufreqSource(Source):
    name = "cpufreq"

    def __init__(self, root, cpus):
        self.fs = as_fs(root)
        self.cpus = cpus

    def describe(self):
        return "cpufreq: %d CPUs (cur/max MHz)" % len(self.cpus)

    def read(self):
        out = []
        for cpu, d in self.cpus:
            for suffix, fname in (("", "scaling_cur_freq"), (".max", "scaling_max_freq")):
                raw, reason = read_int(self.fs, d + "/" + fname)
                out.append(Reading("freq.%s%s" % (cpu, suffix), raw / 1000.0 if raw is not None else None, "MHz",
                                   "sysfs:cpufreq", reason))
        return out


class HwmonSource(_ListedSource):
    name = "hwmon"
    reader = staticmethod(linux.read_hwmon)

    def describe(self):
        return "hwmon: %s" % ", ".join("%s(%d)" % (n, len(c)) for n, _, c in self.entries)


class RaplSource(Source):
    """RAPL counters: ``energy.<domain>`` as read (uJ) and ``power.<domain>`` (mW) between reads."""

    name = "rapl"

    def __init__(self, root, zones, clock=None):
        self.fs = as_fs(root)
        self.zones = []
        for name, d in zones:
            mx, _ = read_int(self.fs, d + "/max_energy_range_uj")
            self.zones.append((name, d, mx))
        self.meter = linux.RaplMeter()
        self.clock = clock or time.monotonic_ns

    def describe(self):
        return "rapl: %s" % ", ".join(z[0] for z in self.zones)

    def read(self):
        out = []
        for name, d, mx in self.zones:
            raw, reason = read_int(self.fs, d + "/energy_uj")
            t = self.clock()
            out.append(Reading("energy." + name, raw, "uJ", "sysfs:powercap", reason))
            if raw is not None:
                mw = self.meter.update(name, raw, mx, t)
                if mw is not None:
                    out.append(Reading("power." + name, mw, "mW", "sysfs:powercap"))
        return out


class ProcessMemorySource(Source):
    name = "process"

    def __init__(self, root, pid):
        self.fs = as_fs(root)
        self.pid = pid
        self.path = "/proc/%s/status" % pid

    def describe(self):
        return "process %s: VmRSS, VmHWM (KB)" % self.pid

    def read(self):
        try:
            text = self.fs.read(self.path)
        except OSError as exc:
            reason = "process gone or unreadable: %s" % exc.strerror
            return [Reading("proc.VmRSS", None, "KB", "procfs:status", reason),
                    Reading("proc.VmHWM", None, "KB", "procfs:status", reason)]
        out = []
        for line in text.splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                parts = line.split()
                try:
                    out.append(Reading("proc." + parts[0][:-1], int(parts[1]), "KB", "procfs:status"))
                except (IndexError, ValueError):
                    pass
        return out


class MeminfoSource(Source):
    name = "meminfo"
    min_interval_s = 0.5

    def __init__(self, root):
        self.fs = as_fs(root)

    def describe(self):
        return "meminfo: MemAvailable, MemTotal (KB)"

    def read(self):
        out = []
        for r in linux.read_meminfo(self.fs):
            if r.sensor in ("mem.available", "meminfo.MemTotal", "meminfo.SwapFree"):
                out.append(r)
        return out


class PowerSupplySource(Source):
    name = "power_supply"
    min_interval_s = 1.0

    def __init__(self, root, supplies):
        self.fs = as_fs(root)
        self.supplies = supplies

    def describe(self):
        return "power_supply: %s" % ", ".join(n for n, _ in self.supplies)

    def read(self):
        return linux.read_power_supplies(self.fs, self.supplies)


def _board_rail_total(out, board_rail):
    """``out`` with ``power.total`` replaced by the ``board_rail`` reading (the target file's choice), if any."""
    if board_rail:
        for r in out:
            if r.sensor == "power." + board_rail:
                out = [x for x in out if x.sensor != "power.total"]
                out.append(Reading("power.total", r.value, "mW", r.source, r.reason,
                                   {"method": "board_rail %s (target file)" % board_rail}))
                break
    return out


class InaRailsSource(Source):
    name = "jetson_rails"

    def __init__(self, root, rails, board_rail=None):
        self.fs = as_fs(root)
        self.rails = rails
        self.board_rail = board_rail

    def describe(self):
        return "jetson rails (%s): %s" % (self.rails[0]["kind"], ", ".join(r["rail"] for r in self.rails))

    def read(self):
        return _board_rail_total(jetson.read_ina_rails(self.fs, self.rails), self.board_rail)


class JetsonGpuSource(Source):
    name = "jetson_gpu"

    def __init__(self, root, load_path, devfreq_dir):
        self.fs = as_fs(root)
        self.load_path = load_path
        self.devfreq_dir = devfreq_dir

    def describe(self):
        return "jetson gpu: load %s, devfreq %s" % (self.load_path, self.devfreq_dir)

    def read(self):
        return jetson.read_gpu(self.fs, self.load_path, self.devfreq_dir)


class ApexSource(Source):
    name = "edgetpu"
    min_interval_s = 1.0  # the driver re-reads the sensor every temp_poll_interval (5 s)

    def __init__(self, root, devices):
        self.fs = as_fs(root)
        self.devices = devices

    def describe(self):
        return "edgetpu: %s" % ", ".join(n for n, _ in self.devices)

    def read(self):
        return coral.read_apex(self.fs, self.devices)


# --- command sources ----------------------------------------------------------------------------

def which(cmd, path=None):
    """Like ``shutil.which`` (kept here so a test can pass its own PATH)."""
    for d in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        p = os.path.join(d, cmd)
        if d and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


class CommandSource(Source):
    """Runs a command on each read and parses its output (``vcgencmd``, ``pmset``, ``dumpsys``)."""

    def __init__(self, name, argv, parse, min_interval_s=1.0, timeout_s=5.0):
        self.name = name
        self.argv = list(argv)
        self.parse = parse
        self.min_interval_s = min_interval_s
        self.timeout_s = timeout_s

    def describe(self):
        return "%s: `%s` every >= %gs" % (self.name, " ".join(self.argv), self.min_interval_s)

    def run(self):
        proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError("%s timed out after %gs" % (" ".join(self.argv), self.timeout_s))
        if proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError("%s exited %d: %s" % (" ".join(self.argv), proc.returncode, tail[0]))
        return out.decode("utf-8", "replace")

    def read(self):
        return self.parse(self.run())


class ExternalMeterSource(CommandSource):
    """An external power meter: a command that prints watts (the first number of its output).

    Reported as ``power.meter`` in mW. A command that prints nothing numeric
    gives a None reading with the output in the reason.
    """

    def __init__(self, argv, name="meter", min_interval_s=0.0, timeout_s=5.0):
        if isinstance(argv, str):
            argv = shlex.split(argv)
        CommandSource.__init__(self, name, argv, self._parse, min_interval_s, timeout_s)

    def _parse(self, text):
        m = re.search(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)
        if not m:
            return [Reading("power." + self.name, None, "mW", "meter", "no number in output: %r" % text[:60])]
        return [Reading("power." + self.name, float(m.group(0)) * 1000.0, "mW", "meter", None,
                        {"command": " ".join(self.argv)})]

    def describe(self):
        return "%s: external meter `%s` (W)" % (self.name, " ".join(self.argv))


class StreamCommandSource(Source):
    """A long-running command (``tegrastats --interval``, ``powermetrics -f plist``) read by a thread.

    Records are split on ``separator`` (newline, or NUL for plist); ``read()``
    returns the readings parsed since the previous read. With a ``clock`` each
    record is stamped when its line arrives and ``read()`` returns protocol
    dicts with that ``t_ns`` (the sampler keeps it), not the later read time.
    The command starts on the first ``read()``; ``close()`` ends it.
    """

    def __init__(self, name, argv, parse, separator=b"\n", clock=None):
        self.name = name
        self.argv = list(argv)
        self.parse = parse
        self.separator = separator
        self.clock = clock
        self._lock = threading.Lock()
        self._pending = []
        self._proc = None
        self._thread = None
        self._error = None

    def describe(self):
        return "%s: streaming `%s`" % (self.name, " ".join(self.argv))

    def _start(self):
        self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._pump, name="hilbench-" + self.name, daemon=True)
        self._thread.start()

    def _pump(self):
        buf = b""
        stream = self._proc.stdout
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(4096)
            if not chunk:
                break
            buf += chunk
            while self.separator in buf:
                record, buf = buf.split(self.separator, 1)
                if not record.strip():
                    continue
                t_ns = self.clock() if self.clock is not None else None
                try:
                    readings = self.parse(record.decode("utf-8", "replace"))
                except Exception as exc:  # a bad record must not kill the pump
                    readings = [Reading(self.name + ".record", None, "", self.name, "unparseable: %s" % exc)]
                if t_ns is not None:
                    readings = [r.to_dict(t_ns) for r in readings]
                with self._lock:
                    self._pending.extend(readings)
        self._error = "%s exited with status %s" % (self.argv[0], self._proc.wait())

    def read(self):
        if self._proc is None:
            self._start()
        with self._lock:
            out, self._pending = self._pending, []
        if not out and self._error:
            raise RuntimeError(self._error)
        return out

    def close(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(2)


class TegrastatsSource(StreamCommandSource):
    """``tegrastats --interval N`` on a Jetson whose INA sysfs nodes are not readable (a container
    without /sys, a kernel that hides them): rails, board power, temperatures, clocks and loads
    from every line, each stamped when the line arrives. ``board_rail`` (the target's) replaces
    the parser's choice of ``power.total``.
    """

    def __init__(self, command, interval_ms=100, board_rail=None, clock=None):
        StreamCommandSource.__init__(self, "tegrastats", [command, "--interval", str(int(interval_ms))],
                                     self._parse, clock=clock or time.monotonic_ns)
        self.board_rail = board_rail

    def describe(self):
        return "tegrastats: power rails, temperatures, clocks from `%s` (INA sysfs nodes not readable)" % (
            " ".join(self.argv))

    def _parse(self, line):
        return _board_rail_total(jetson.parse_tegrastats_line(line), self.board_rail)


# --- discovery ----------------------------------------------------------------------------------

def _is_root():
    """True when this process runs as root (powermetrics needs it)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def discover(root="/", pid=None, meter_command=None, board_rail=None, path=None, platform=None, commands=None,
             tegrastats_interval_ms=100):
    """Probe ``root`` for every known source; returns a :class:`Discovered` list.

    ``pid``: also sample that process's VmRSS/VmHWM. ``meter_command``: an
    external meter (argv list or string) printing watts. ``board_rail``: the
    rail that is the board total when a target file knows better.
    ``path``/``platform`` default to ``$PATH``/``sys.platform`` (tests pass their own).
    Command sources (vcgencmd, nvpmodel, pmset, powermetrics, dumpsys, and
    tegrastats on a Jetson whose INA rails are not readable) are probed when
    ``commands`` is true; by default only when ``root`` is ``/``.
    """
    fs = as_fs(root)
    live = commands if commands is not None else (isinstance(root, str) and os.path.abspath(root) == "/")
    found = Discovered()
    zones = _find_thermal(fs, found)
    _find_cooling(fs, found)
    _find_cpufreq(fs, found)
    rails = _find_ina_rails(fs, found, board_rail)
    _find_hwmon(fs, found, skip_ina=rails.present)
    _find_rapl(fs, found)
    _find_power_supplies(fs, found)
    _find_memory(fs, found, pid)
    _find_jetson(fs, found, rails, live, path, board_rail, tegrastats_interval_ms)
    _find_coral(fs, found)
    if live:
        _command_sources(found, path, platform or sys.platform, have_thermal=bool(zones))
    if meter_command:
        found.append(ExternalMeterSource(meter_command))
    _unique_names(found)
    return found


# --- discovery steps: each probes one kind of source and appends to ``found`` (sources),
# ``found.missing`` and ``found.facts``, in the order ``hello`` reports them.

def _find_thermal(fs, found):
    """Thermal zones and their throttling trip points (a fact); returns the zones."""
    zones = linux.find_thermal_zones(fs)
    if zones:
        found.append(ThermalSource(fs, zones))
        trips = linux.trip_points_c(fs, zones)
        if trips:
            found.facts["trip_points"] = trips
    else:
        found.missing.append(("thermal", "no /sys/class/thermal/thermal_zone*/type"))
    return zones


def _find_cooling(fs, found):
    """Cooling devices (not reported missing: many machines have none)."""
    cooling = linux.find_cooling_devices(fs)
    if cooling:
        found.append(CoolingSource(fs, cooling))


def _find_cpufreq(fs, found):
    """cpufreq of every CPU that has it (none in most VMs)."""
    cpus = linux.find_cpufreq(fs)
    if cpus:
        found.append(CpufreqSource(fs, cpus))
    else:
        found.missing.append(("cpufreq", "no /sys/devices/system/cpu/cpu*/cpufreq (VM or no driver)"))


class _InaRails(object):
    """What the INA probe found: ``present`` (a chip is bound, readable or not), ``readable``
    (the rails, empty when none reads) and ``missing`` (why there is no rails source)."""

    def __init__(self, present, readable, missing):
        self.present = present
        self.readable = readable
        self.missing = missing


def _find_ina_rails(fs, found, board_rail):
    """Jetson INA3221/INA238 rails: a source when one rail reads a power, else the reason (reported
    by :func:`_find_jetson`, which may fall back to tegrastats)."""
    rails = jetson.find_ina_rails(fs)
    if not rails:
        return _InaRails(False, [], "no INA3221/INA238 in /sys/bus/i2c/drivers (container without /sys?)")
    probe = jetson.read_ina_rails(fs, rails, with_total=False)
    if any(r.sensor.startswith("power.") and r.value is not None for r in probe):
        found.append(InaRailsSource(fs, rails, board_rail))
        return _InaRails(True, rails, None)
    why = [r.reason for r in probe if r.reason][:1] or ["no value"]
    return _InaRails(True, [], "INA rails %s found but not readable (%s)" % (
        ", ".join(r["rail"] for r in rails), why[0]))


def _find_hwmon(fs, found, skip_ina):
    """hwmon chips with readable channels; INA chips are left to the rails source when one is bound."""
    hwmons = [(n, d, linux.hwmon_channels(fs, d))
              for n, d in linux.find_hwmon(fs, skip_names=("ina3221", "ina238") if skip_ina else ())]
    hwmons = [h for h in hwmons if h[2]]
    if hwmons:
        found.append(HwmonSource(fs, hwmons))
    else:
        found.missing.append(("hwmon", "no /sys/class/hwmon chip with readable channels"))


def _find_rapl(fs, found):
    """RAPL zones, when the first zone's counter reads (root-only since Linux 5.10)."""
    rapl = linux.find_rapl_zones(fs)
    if not rapl:
        found.missing.append(("rapl", "no /sys/class/powercap/intel-rapl:* (not x86, VM, or no driver)"))
        return
    raw, reason = read_int(fs, rapl[0][1] + "/energy_uj")
    if raw is None:
        found.missing.append(("rapl", "energy_uj unreadable (%s); root-only since Linux 5.10 (CVE-2020-8694)" % reason))
    else:
        found.append(RaplSource(fs, rapl))


def _find_power_supplies(fs, found):
    """Batteries and supplies that measure something (UCSI ports are skipped by the finder)."""
    supplies = linux.find_power_supplies(fs)
    if supplies:
        found.append(PowerSupplySource(fs, supplies))
    else:
        found.missing.append(("power_supply", "no battery or supply in /sys/class/power_supply"))


def _find_memory(fs, found, pid):
    """``/proc/meminfo``, and ``/proc/<pid>/status`` when a ``pid`` is given."""
    if fs.exists("/proc/meminfo"):
        found.append(MeminfoSource(fs))
    else:
        found.missing.append(("meminfo", "no /proc/meminfo"))
    if pid is not None:
        if fs.exists("/proc/%s/status" % pid):
            found.append(ProcessMemorySource(fs, pid))
        else:
            found.missing.append(("process", "no /proc/%s/status" % pid))


def _find_jetson(fs, found, rails, live, path, board_rail, interval_ms):
    """On a Jetson (or a machine with INA rails or a GPU load file): the jetson_clocks fact, the GPU
    source, and tegrastats (looked for on ``path`` when ``live``) when no INA rail is readable."""
    is_jetson = bool(jetson.jetson_evidence(fs))
    if is_jetson:
        state = jetson.read_jetson_clocks_state(fs)
        found.facts["jetson_clocks"] = dict(state.extra, active=state.value) if state.value is not None else {
            "active": None, "text": state.reason}
    load_path, devfreq = jetson.find_gpu(fs)
    if not (is_jetson or rails.present or load_path):
        return
    if load_path or devfreq:
        found.append(JetsonGpuSource(fs, load_path, devfreq))
    else:
        found.missing.append(("jetson_gpu", "no gpu load file or gpu devfreq node"))
    if not rails.readable:
        _tegrastats_fallback(found, rails.missing, live and is_jetson, path, board_rail, interval_ms)


def _tegrastats_fallback(found, rails_missing, look, path, board_rail, interval_ms):
    """No readable INA rails: power from tegrastats when ``look`` (a live Jetson) finds it on ``path``;
    the ``jetson_rails`` reason says which case it was."""
    tegrastats = which("tegrastats", path) if look else None
    if tegrastats:
        found.append(TegrastatsSource(tegrastats, interval_ms, board_rail))
        found.missing.append(("jetson_rails", rails_missing + "; power from tegrastats instead"))
    elif look:
        found.missing.append(("jetson_rails", rails_missing + "; no tegrastats on PATH either"))
    else:
        found.missing.append(("jetson_rails", rails_missing))


def _find_coral(fs, found):
    """Edge TPU apex devices (a temperature each); a USB Accelerator has no sensor: reported missing."""
    apex = coral.find_apex(fs)
    if apex:
        found.append(ApexSource(fs, apex))
    if coral.find_usb_accelerators(fs):
        found.missing.append(("edgetpu_temp", coral.NO_SENSOR_USB))


def _unique_names(sources):
    """Suffix ``2``, ``3``... to a source name already taken, so every name is unique."""
    names = set()
    for s in sources:
        base, k = s.name, 2
        while s.name in names:
            s.name = "%s%d" % (base, k)
            k += 1
        names.add(s.name)


def _command_sources(found, path, platform, have_thermal):
    """Sources that run a command: vcgencmd (Raspberry Pi), nvpmodel (Jetson), pmset and
    powermetrics (macOS), dumpsys (Android); each only where its command is on ``path``."""
    vcgencmd = which("vcgencmd", path)
    if vcgencmd:
        _vcgencmd_sources(found, vcgencmd, have_thermal)
    nvpmodel = which("nvpmodel", path)
    if nvpmodel:
        # The power mode changes only when someone changes it: read it rarely.
        found.append(CommandSource("nvpmodel", [nvpmodel, "-q"], jetson.parse_nvpmodel, 30.0))
    if platform == "darwin":
        _macos_sources(found, path)
    dumpsys = which("dumpsys", path)
    if dumpsys:
        found.append(CommandSource("dumpsys_thermal", [dumpsys, "thermalservice"],
                                   android.parse_dumpsys_thermalservice, 2.0))
        found.append(CommandSource("dumpsys_battery", [dumpsys, "battery"], android.parse_dumpsys_battery, 2.0))


def _vcgencmd_sources(found, vcgencmd, have_thermal):
    """Raspberry Pi firmware: temperature (without a thermal zone), ARM clock, throttled bits, and the
    PMIC rails where ``pmic_read_adc`` answers (a Pi 5)."""
    if not have_thermal:
        # thermal_zone0 (cpu-thermal) reads the same sensor without a process spawn.
        found.append(CommandSource("vcgencmd_temp", [vcgencmd, "measure_temp"], raspberrypi.parse_vcgencmd, 1.0))
    # measure_clock shows the firmware's real clock; scaling_cur_freq does not show throttling.
    found.append(CommandSource("vcgencmd_clock", [vcgencmd, "measure_clock", "arm"],
                               raspberrypi.parse_vcgencmd, 1.0))
    # Never pass an argument to get_throttled: it would clear the sticky bits.
    found.append(CommandSource("vcgencmd_throttled", [vcgencmd, "get_throttled"],
                               raspberrypi.parse_vcgencmd, 2.0))
    pmic = CommandSource("pmic", [vcgencmd, "pmic_read_adc"], raspberrypi.parse_pmic_read_adc, 0.5)
    try:
        probe = pmic.read()
    except Exception as exc:
        probe = [Reading("power.pmic_rails", None, "mW", "pmic_read_adc", str(exc))]
    if any(r.sensor == "power.pmic_rails" and r.value is not None for r in probe):
        found.append(pmic)
    else:
        found.missing.append(("pmic", "vcgencmd pmic_read_adc unsupported (not a Pi 5)"))


def _macos_sources(found, path):
    """``pmset -g therm`` (thermal pressure), and ``powermetrics`` when running as root."""
    pmset = which("pmset", path)
    if pmset:
        found.append(CommandSource("pmset", [pmset, "-g", "therm"], macos.parse_pmset_therm, 5.0))
    if _is_root() and which("powermetrics", path):
        found.append(StreamCommandSource(
            "powermetrics", ["powermetrics", "-i", "1000", "-f", "plist",
                             "--samplers", "cpu_power,gpu_power,ane_power,thermal"],
            macos.parse_powermetrics_plist, separator=b"\x00"))
    else:
        found.missing.append(("powermetrics", "needs root (sudo) and /usr/bin/powermetrics"))
