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


class InaRailsSource(Source):
    name = "jetson_rails"

    def __init__(self, root, rails, board_rail=None):
        self.fs = as_fs(root)
        self.rails = rails
        self.board_rail = board_rail

    def describe(self):
        return "jetson rails (%s): %s" % (self.rails[0]["kind"], ", ".join(r["rail"] for r in self.rails))

    def read(self):
        out = jetson.read_ina_rails(self.fs, self.rails)
        if self.board_rail:
            for r in out:
                if r.sensor == "power." + self.board_rail:
                    out = [x for x in out if x.sensor != "power.total"]
                    out.append(Reading("power.total", r.value, "mW", r.source, r.reason,
                                       {"method": "board_rail %s (target file)" % self.board_rail}))
                    break
        return out


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
        self.interval_ms = int(interval_ms)
        self.board_rail = board_rail

    def describe(self):
        return "tegrastats: power rails, temperatures, clocks from `%s` (INA sysfs nodes not readable)" % (
            " ".join(self.argv))

    def _parse(self, line):
        out = jetson.parse_tegrastats_line(line)
        if self.board_rail:
            for r in out:
                if r.sensor == "power." + self.board_rail:
                    out = [x for x in out if x.sensor != "power.total"]
                    out.append(Reading("power.total", r.value, "mW", r.source, r.reason,
                                       {"method": "board_rail %s (target file)" % self.board_rail}))
                    break
        return out


# --- discovery ----------------------------------------------------------------------------------

def _is_root():
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
    platform = platform or sys.platform
    sources, missing, facts = [], [], {}

    zones = linux.find_thermal_zones(fs)
    if zones:
        sources.append(ThermalSource(fs, zones))
        trips = linux.trip_points_c(fs, zones)
        if trips:
            facts["trip_points"] = trips
    else:
        missing.append(("thermal", "no /sys/class/thermal/thermal_zone*/type"))
    cooling = linux.find_cooling_devices(fs)
    if cooling:
        sources.append(CoolingSource(fs, cooling))

    cpus = linux.find_cpufreq(fs)
    if cpus:
        sources.append(CpufreqSource(fs, cpus))
    else:
        missing.append(("cpufreq", "no /sys/devices/system/cpu/cpu*/cpufreq (VM or no driver)"))

    rails = jetson.find_ina_rails(fs)
    ina_names = ("ina3221", "ina238")
    ina_found = bool(rails)
    rails_missing = "no INA3221/INA238 in /sys/bus/i2c/drivers (container without /sys?)"
    if rails:
        probe = jetson.read_ina_rails(fs, rails, with_total=False)
        readable = [r for r in probe if r.sensor.startswith("power.") and r.value is not None]
        if readable:
            sources.append(InaRailsSource(fs, rails, board_rail))
        else:
            why = [r.reason for r in probe if r.reason][:1] or ["no value"]
            rails_missing = "INA rails %s found but not readable (%s)" % (
                ", ".join(r["rail"] for r in rails), why[0])
            rails = []
    hwmons = [(n, d, linux.hwmon_channels(fs, d))
              for n, d in linux.find_hwmon(fs, skip_names=ina_names if ina_found else ())]
    hwmons = [h for h in hwmons if h[2]]
    if hwmons:
        sources.append(HwmonSource(fs, hwmons))
    else:
        missing.append(("hwmon", "no /sys/class/hwmon chip with readable channels"))

    rapl = linux.find_rapl_zones(fs)
    if rapl:
        raw, reason = read_int(fs, rapl[0][1] + "/energy_uj")
        if raw is None:
            missing.append(("rapl", "energy_uj unreadable (%s); root-only since Linux 5.10 (CVE-2020-8694)" % reason))
        else:
            sources.append(RaplSource(fs, rapl))
    else:
        missing.append(("rapl", "no /sys/class/powercap/intel-rapl:* (not x86, VM, or no driver)"))

    supplies = linux.find_power_supplies(fs)
    if supplies:
        sources.append(PowerSupplySource(fs, supplies))
    else:
        missing.append(("power_supply", "no battery or supply in /sys/class/power_supply"))

    if fs.exists("/proc/meminfo"):
        sources.append(MeminfoSource(fs))
    else:
        missing.append(("meminfo", "no /proc/meminfo"))
    if pid is not None:
        if fs.exists("/proc/%s/status" % pid):
            sources.append(ProcessMemorySource(fs, pid))
        else:
            missing.append(("process", "no /proc/%s/status" % pid))

    # Jetson
    is_jetson = bool(jetson.jetson_evidence(fs))
    if is_jetson:
        state = jetson.read_jetson_clocks_state(fs)
        facts["jetson_clocks"] = dict(state.extra, active=state.value) if state.value is not None else {
            "active": None, "text": state.reason}
    load_path, devfreq = jetson.find_gpu(fs)
    if is_jetson or ina_found or load_path:
        if load_path or devfreq:
            sources.append(JetsonGpuSource(fs, load_path, devfreq))
        else:
            missing.append(("jetson_gpu", "no gpu load file or gpu devfreq node"))
        if not rails:
            tegrastats = which("tegrastats", path) if live and is_jetson else None
            if tegrastats:
                sources.append(TegrastatsSource(tegrastats, tegrastats_interval_ms, board_rail))
                missing.append(("jetson_rails", rails_missing + "; power from tegrastats instead"))
            elif live and is_jetson:
                missing.append(("jetson_rails", rails_missing + "; no tegrastats on PATH either"))
            else:
                missing.append(("jetson_rails", rails_missing))

    # Coral
    apex = coral.find_apex(fs)
    if apex:
        sources.append(ApexSource(fs, apex))
    usb = coral.find_usb_accelerators(fs)
    if usb:
        missing.append(("edgetpu_temp", coral.NO_SENSOR_USB))

    if live:
        _command_sources(sources, missing, path, platform, have_thermal=bool(zones))

    if meter_command:
        sources.append(ExternalMeterSource(meter_command))

    names = set()
    for s in sources:
        base, k = s.name, 2
        while s.name in names:
            s.name = "%s%d" % (base, k)
            k += 1
        names.add(s.name)
    return Discovered(sources, missing, facts)


def _command_sources(sources, missing, path, platform, have_thermal):
    vcgencmd = which("vcgencmd", path)
    if vcgencmd:
        if not have_thermal:
            # thermal_zone0 (cpu-thermal) reads the same sensor without a process spawn.
            sources.append(CommandSource("vcgencmd_temp", [vcgencmd, "measure_temp"], raspberrypi.parse_vcgencmd, 1.0))
        # measure_clock shows the firmware's real clock; scaling_cur_freq does not show throttling.
        sources.append(CommandSource("vcgencmd_clock", [vcgencmd, "measure_clock", "arm"],
                                     raspberrypi.parse_vcgencmd, 1.0))
        # Never pass an argument to get_throttled: it would clear the sticky bits.
        sources.append(CommandSource("vcgencmd_throttled", [vcgencmd, "get_throttled"],
                                     raspberrypi.parse_vcgencmd, 2.0))
        pmic = CommandSource("pmic", [vcgencmd, "pmic_read_adc"], raspberrypi.parse_pmic_read_adc, 0.5)
        try:
            probe = pmic.read()
        except Exception as exc:
            probe = [Reading("power.pmic_rails", None, "mW", "pmic_read_adc", str(exc))]
        if any(r.sensor == "power.pmic_rails" and r.value is not None for r in probe):
            sources.append(pmic)
        else:
            missing.append(("pmic", "vcgencmd pmic_read_adc unsupported (not a Pi 5)"))
    nvpmodel = which("nvpmodel", path)
    if nvpmodel:
        # The power mode changes only when someone changes it: read it rarely.
        sources.append(CommandSource("nvpmodel", [nvpmodel, "-q"], jetson.parse_nvpmodel, 30.0))
    if platform == "darwin":
        pmset = which("pmset", path)
        if pmset:
            sources.append(CommandSource("pmset", [pmset, "-g", "therm"], macos.parse_pmset_therm, 5.0))
        if _is_root() and which("powermetrics", path):
            sources.append(StreamCommandSource(
                "powermetrics", ["powermetrics", "-i", "1000", "-f", "plist",
                                 "--samplers", "cpu_power,gpu_power,ane_power,thermal"],
                macos.parse_powermetrics_plist, separator=b"\x00"))
        else:
            missing.append(("powermetrics", "needs root (sudo) and /usr/bin/powermetrics"))
    dumpsys = which("dumpsys", path)
    if dumpsys:
        sources.append(CommandSource("dumpsys_thermal", [dumpsys, "thermalservice"],
                                     android.parse_dumpsys_thermalservice, 2.0))
        sources.append(CommandSource("dumpsys_battery", [dumpsys, "battery"], android.parse_dumpsys_battery, 2.0))
