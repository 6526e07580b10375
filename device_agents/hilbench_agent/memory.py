"""The agent's own memory and CPU use during a job, and where each figure came from.

psutil is used when the device's Python can import it; it stays optional (the agent runs on a bare
Python 3.7 with the standard library), and the platform's own sources stand in for it. Setting
``HILBENCH_AGENT_NO_PSUTIL=1`` hides psutil (to compare the two, and for tests).

===============  ==========================================  =============================================
figure           with psutil                                 without psutil
===============  ==========================================  =============================================
``rss``          ``psutil`` (``memory_info().rss``)          ``procfs:VmRSS`` (``/proc/<pid>/status``:
                                                             Linux, Android); ``ps`` (``ps -o rss= -p
                                                             PID``, KiB: macOS and other Unixes)
``peak``         ``procfs:VmHWM``, else ``getrusage`` (``ru_maxrss``: KiB on Linux, **bytes** on macOS).
                 psutil has no peak on Linux or macOS, so the peak never comes from it.
``cpu``          ``psutil`` (``cpu_times()``)                ``getrusage`` (``ru_utime``, ``ru_stime``)
``footprint``    macOS only: ``libproc:phys_footprint`` (``proc_pid_rusage``, through ctypes; the
                 figure Activity Monitor shows as Memory), with or without psutil
``unified``      Jetson: ``psutil`` (``virtual_memory()``,   ``procfs:meminfo`` (MemTotal - MemAvailable;
                 total - available)                          tegrastats' RAM line reads the same counters)
                 macOS: ``vm_stat`` (App Memory + Wired + Compressed, Activity Monitor's Memory Used; psutil
                 counts neither compressed nor purgeable pages)
===============  ==========================================  =============================================

``unified`` is the memory the CPU and GPU share, used by everything on the device: a model's GPU buffers
are in it although they are not in the process's RSS. Platforms without shared memory (or where hilbench
does not know how to read it) say so instead.

The peak of the timed phase: on Linux the agent resets ``VmHWM`` just before the timed phase (writes 5 to
``/proc/self/clear_refs``, Linux 4.0+), so ``VmHWM`` after it is that phase's exact peak. Where that cannot
be done, a high-water mark that rose during the phase is its peak; else the peak is the larger of the RSS at
the phase's start and end (``peak_basis`` says which). Every figure that cannot be had is null and its
reason is in ``missing``.
"""

import os
import re
import subprocess
import sys
import time

__all__ = ["NO_PSUTIL_ENV", "PSUTIL_REMEDY", "load_psutil", "ProcessUsage", "JobUsage", "describe",
           "parse_proc_status", "parse_meminfo", "meminfo_used_kb", "parse_ps_rss", "parse_vm_stat",
           "vm_stat_used_kb", "maxrss_kb", "parse_rusage_info"]

NO_PSUTIL_ENV = "HILBENCH_AGENT_NO_PSUTIL"
PSUTIL_REMEDY = "pip install psutil on the device"
#: The figures of a memory snapshot, in the order they are read.
MEMORY_FIGURES = ("rss", "peak", "footprint", "unified")
COMMAND_TIMEOUT_S = 10.0
_UNSET = object()


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else exc.__class__.__name__


def load_psutil(environ=None):
    """(the psutil module, None) or (None, why it is not used)."""
    environ = os.environ if environ is None else environ
    if environ.get(NO_PSUTIL_ENV, "") not in ("", "0"):
        return None, "hidden by %s" % NO_PSUTIL_ENV
    try:
        import psutil
    except ImportError:
        return None, "not installed"
    except Exception as exc:  # a broken install must not break the job
        return None, "import failed: %s" % _first_line(exc)
    return psutil, None


# --- parsers of what the sources print (pure: tested on recorded-format text) -----------------------------

def parse_proc_status(text):
    """``{"VmRSS": kB, "VmHWM": kB, ...}`` from ``/proc/<pid>/status`` (``Key:\\t   value kB``; kB is KiB)."""
    out = {}
    for line in (text or "").splitlines():
        key, sep, rest = line.partition(":")
        if not sep or not key.startswith("Vm"):
            continue
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def parse_meminfo(text):
    """``{"MemTotal": kB, ...}`` from ``/proc/meminfo``; counts without a unit (HugePages_*) are left out."""
    out = {}
    for line in (text or "").splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def meminfo_used_kb(fields):
    """(used KiB, None) from parsed ``/proc/meminfo``: MemTotal - MemAvailable, or on kernels older than 3.14
    (no MemAvailable) MemTotal - MemFree - Buffers - Cached; (None, why) when neither can be computed."""
    total = fields.get("MemTotal")
    if total is None:
        return None, "no MemTotal in /proc/meminfo"
    if "MemAvailable" in fields:
        return total - fields["MemAvailable"], None
    if "MemFree" in fields:
        return total - fields["MemFree"] - fields.get("Buffers", 0) - fields.get("Cached", 0), None
    return None, "neither MemAvailable nor MemFree in /proc/meminfo"


def parse_ps_rss(text):
    """The RSS in KiB from ``ps -o rss= -p PID`` (one number, right-aligned, no header); None otherwise."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(lines) != 1 or not lines[0].isdigit():
        return None
    return int(lines[0])


_PAGE_SIZE_RE = re.compile(r"page size of (\d+) bytes")
_VM_STAT_RE = re.compile(r'^"?([^":]+?)"?:\s+(\d+)\.?\s*$')


def parse_vm_stat(text):
    """(page size in bytes or None, {"Pages free": count, ...}) from macOS ``vm_stat``."""
    page = None
    counts = {}
    for line in (text or "").splitlines():
        m = _PAGE_SIZE_RE.search(line)
        if m:
            page = int(m.group(1))
            continue
        m = _VM_STAT_RE.match(line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return page, counts


def vm_stat_used_kb(page, counts):
    """(KiB, None) of memory used as Activity Monitor's "Memory Used" counts it: App Memory (anonymous pages
    less purgeable ones) + Wired + Compressed (pages the compressor occupies); (None, why) otherwise. Before
    macOS 10.9 (no "Anonymous pages" line) App Memory is taken as the active pages."""
    if not page:
        return None, "vm_stat printed no page size"
    wired = counts.get("Pages wired down")
    if wired is None:
        return None, "vm_stat printed no 'Pages wired down'"
    if "Anonymous pages" in counts:
        app = counts["Anonymous pages"] - counts.get("Pages purgeable", 0)
    elif "Pages active" in counts:
        app = counts["Pages active"]
    else:
        return None, "vm_stat printed neither 'Anonymous pages' nor 'Pages active'"
    pages = max(app, 0) + wired + counts.get("Pages occupied by compressor", 0)
    return pages * page // 1024, None


def maxrss_kb(maxrss, platform):
    """``getrusage().ru_maxrss`` in KiB: macOS (and iOS) report bytes, Linux and the BSDs KiB."""
    return int(maxrss) // 1024 if platform == "darwin" else int(maxrss)


#: ``struct rusage_info_v0`` (sys/resource.h): ri_uuid[16], then uint64 ri_user_time, ri_system_time,
#: ri_pkg_idle_wkups, ri_interrupt_wkups, ri_pageins, ri_wired_size, ri_resident_size, ri_phys_footprint,
#: ri_proc_start_abstime, ri_proc_exit_abstime. Later versions only append fields.
RUSAGE_INFO_V0_SIZE = 96
_RESIDENT_OFFSET = 16 + 6 * 8
_FOOTPRINT_OFFSET = 16 + 7 * 8


def parse_rusage_info(buf):
    """``{"resident_bytes", "phys_footprint_bytes"}`` from the bytes ``proc_pid_rusage`` fills (little-endian:
    every Mac), or None when the buffer is too short."""
    import struct
    if len(buf) < RUSAGE_INFO_V0_SIZE:
        return None
    resident, footprint = struct.unpack_from("<QQ", buf, _RESIDENT_OFFSET)
    return {"resident_bytes": resident, "phys_footprint_bytes": footprint}


# --- the live sources ----------------------------------------------------------------------------------

def _run_command(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("%s timed out after %.0f s" % (argv[0], COMMAND_TIMEOUT_S))
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv), proc.returncode, tail[-1][:200]))
    return out.decode("utf-8", "replace")


def _getrusage_self():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF)


_LIBPROC = []


def _proc_pid_rusage(pid):
    """macOS: ``proc_pid_rusage(pid, RUSAGE_INFO_V0)`` through ctypes, as :func:`parse_rusage_info` reads it."""
    import ctypes
    if not _LIBPROC:
        lib = None
        for name in ("/usr/lib/libSystem.B.dylib", "/usr/lib/libproc.dylib"):
            try:
                lib = ctypes.CDLL(name, use_errno=True)
                lib.proc_pid_rusage
                break
            except (OSError, AttributeError):
                lib = None
        _LIBPROC.append(lib)
    lib = _LIBPROC[0]
    if lib is None:
        raise RuntimeError("no proc_pid_rusage in libSystem")
    buf = ctypes.create_string_buffer(512)  # larger than any rusage_info version: the kernel writes v0's 96 bytes
    if lib.proc_pid_rusage(int(pid), 0, buf) != 0:
        raise RuntimeError("proc_pid_rusage failed: %s" % os.strerror(ctypes.get_errno()))
    return parse_rusage_info(buf.raw)


def _read_text(root, path):
    with open(os.path.join(root, path.lstrip("/")), "rb") as f:
        return f.read().decode("utf-8", "replace")


def _jetson(root):
    """Why this is a Jetson (a short string), or None."""
    if os.path.exists(os.path.join(root, "etc/nv_tegra_release")):
        return "/etc/nv_tegra_release"
    for base in ("proc/device-tree", "sys/firmware/devicetree/base"):
        for name, word in (("compatible", "nvidia,tegra"), ("model", "jetson")):
            try:
                text = _read_text(root, base + "/" + name).lower()
            except (IOError, OSError):
                continue
            if word in text:
                return "device tree %s" % name
    return None


class ProcessUsage(object):
    """This process's memory and CPU figures. Each reader returns ``(value, source)`` when it has the figure
    and ``(None, why)`` when it has not; none raises.

    Everything it touches can be replaced (tests): ``psutil`` (a module, or None for none), ``platform``
    (``sys.platform``), ``root`` (where ``/proc`` and ``/etc`` are), ``run(argv) -> stdout`` for commands,
    ``getrusage() -> struct`` and ``rusage_info(pid) -> dict`` (macOS's ``proc_pid_rusage``).
    """

    def __init__(self, pid=None, psutil=_UNSET, platform=None, root="/", run=None, getrusage=None,
                 rusage_info=None, environ=None, machine=None):
        self.pid = os.getpid() if pid is None else pid
        if psutil is _UNSET:
            psutil, why = load_psutil(environ)
        else:
            why = None if psutil is not None else "not used"
        self._proc = None
        if psutil is not None:
            try:
                self._proc = psutil.Process(self.pid)
            except Exception as exc:
                psutil, why = None, "psutil.Process failed: %s" % _first_line(exc)
        self.psutil = psutil
        self.psutil_missing = why
        self.platform = platform or sys.platform
        self.root = root
        self._run = run or _run_command
        self._getrusage = getrusage or _getrusage_self
        self._rusage_info = rusage_info or _proc_pid_rusage
        self._status_path = "/proc/%s/status" % ("self" if pid is None else pid)
        self._clear_refs_path = "/proc/%s/clear_refs" % ("self" if pid is None else pid)
        if self.platform == "darwin":
            self.unified_kind, self.unified_why = "macos", "macOS: CPU and GPU share memory (Apple silicon)"
        else:
            found = _jetson(root)
            self.unified_kind = "jetson" if found else None
            self.unified_why = ("Jetson (%s): CPU and GPU share RAM" % found if found else
                                "not a Jetson or a Mac: no CPU/GPU shared-memory figure")

    @property
    def psutil_version(self):
        return getattr(self.psutil, "__version__", None) if self.psutil is not None else None

    def _status(self):
        try:
            return parse_proc_status(_read_text(self.root, self._status_path)), None
        except (IOError, OSError) as exc:
            return {}, "%s unreadable (%s)" % (self._status_path, exc.strerror or exc)

    def rss_kb(self):
        why = []
        if self._proc is not None:
            try:
                return int(self._proc.memory_info().rss) // 1024, "psutil"
            except Exception as exc:
                why.append("psutil: %s" % _first_line(exc))
        status, err = self._status()
        if "VmRSS" in status:
            return status["VmRSS"], "procfs:VmRSS"
        why.append(err or "no VmRSS in %s" % self._status_path)
        if self.platform.startswith("linux"):  # Linux and Android have /proc; ps there reads the same file
            return None, "; ".join(why)
        try:
            value = parse_ps_rss(self._run(["ps", "-o", "rss=", "-p", str(self.pid)]))
        except Exception as exc:
            why.append("ps: %s" % _first_line(exc))
        else:
            if value is not None:
                return value, "ps"
            why.append("ps -o rss= printed no number")
        return None, "; ".join(why)

    def peak_kb(self):
        status, err = self._status()
        if "VmHWM" in status:
            return status["VmHWM"], "procfs:VmHWM"
        try:
            return maxrss_kb(self._getrusage().ru_maxrss, self.platform), "getrusage"
        except Exception as exc:
            return None, "%s; getrusage: %s" % (err or "no VmHWM", _first_line(exc))

    def cpu_s(self):
        """((user seconds, system seconds), source) of this process (all its threads) since it started."""
        why = ""
        if self._proc is not None:
            try:
                t = self._proc.cpu_times()
                return (float(t.user), float(t.system)), "psutil"
            except Exception as exc:
                why = "psutil: %s; " % _first_line(exc)
        try:
            ru = self._getrusage()
            return (float(ru.ru_utime), float(ru.ru_stime)), "getrusage"
        except Exception as exc:
            return None, "%sgetrusage: %s" % (why, _first_line(exc))

    def footprint_kb(self):
        if self.platform != "darwin":
            return None, "macOS only (phys_footprint)"
        try:
            info = self._rusage_info(self.pid)
        except Exception as exc:
            return None, "proc_pid_rusage: %s" % _first_line(exc)
        if not info:
            return None, "proc_pid_rusage returned too few bytes"
        return int(info["phys_footprint_bytes"]) // 1024, "libproc:phys_footprint"

    def unified_kb(self):
        if self.unified_kind is None:
            return None, self.unified_why
        if self.unified_kind == "macos":
            try:
                value, why = vm_stat_used_kb(*parse_vm_stat(self._run(["vm_stat"])))
            except Exception as exc:
                return None, "vm_stat: %s" % _first_line(exc)
            return (value, "vm_stat") if value is not None else (None, why)
        why = ""
        if self.psutil is not None:
            try:
                vm = self.psutil.virtual_memory()
                return int(vm.total - vm.available) // 1024, "psutil"
            except Exception as exc:
                why = "psutil: %s; " % _first_line(exc)
        try:
            value, err = meminfo_used_kb(parse_meminfo(_read_text(self.root, "/proc/meminfo")))
        except (IOError, OSError) as exc:
            return None, "%s/proc/meminfo unreadable (%s)" % (why, exc.strerror or exc)
        return (value, "procfs:meminfo") if value is not None else (None, why + err)

    def reset_peak(self):
        """Linux 4.0+: make ``VmHWM`` the current RSS (write 5 to ``/proc/self/clear_refs``). True when done."""
        try:
            fd = os.open(os.path.join(self.root, self._clear_refs_path.lstrip("/")), os.O_WRONLY)
        except (IOError, OSError):
            return False
        try:
            os.write(fd, b"5")
            return True
        except (IOError, OSError):  # EINVAL before Linux 4.0; SELinux may refuse on Android
            return False
        finally:
            os.close(fd)

    def memory(self, figures=MEMORY_FIGURES):
        """{figure: (value, source or why)} for ``figures`` (of :data:`MEMORY_FIGURES`)."""
        readers = {"rss": self.rss_kb, "peak": self.peak_kb, "footprint": self.footprint_kb,
                   "unified": self.unified_kb}
        return dict((f, readers[f]()) for f in figures)


def _mb(kb):
    return "%.1f MiB" % (kb / 1024.0)


class JobUsage(object):
    """A job's memory and CPU figures from snapshots at four points: before the model is loaded, after it is,
    and around the timed phase (:meth:`timed_begin` just before the loop, :meth:`timed_end` just after it).
    The CPU window is the timed loop alone: CPU times are read last at the start and first at the end, so a
    ``ps`` or ``vm_stat`` process started for a memory figure is outside it."""

    def __init__(self, usage=None, clock=None):
        self.usage = usage if usage is not None else ProcessUsage()
        self.clock = clock or time.monotonic_ns
        self.points = {}
        self.sources = {}
        self.missing = {}
        self.peak_reset = False
        self._cpu = {}

    def _snapshot(self, point, figures=MEMORY_FIGURES):
        snap = {}
        for figure, (value, where) in self.usage.memory(figures).items():
            snap[figure] = value
            if value is not None:
                self.sources.setdefault(figure, where)
            else:
                self.missing.setdefault(figure, where)
        self.points[point] = snap

    def _cpu_now(self, point):
        times, where = self.usage.cpu_s()
        self._cpu[point] = (times, where, self.clock())

    def before_load(self):
        self._snapshot("before_load")

    def after_load(self):
        self._snapshot("after_load")

    def timed_begin(self):
        self._snapshot("timed_start", ("rss", "peak"))  # footprint and unified: before and after load, and after
        self.peak_reset = self.usage.reset_peak()
        self._cpu_now("timed_start")

    def timed_end(self):
        self._cpu_now("timed_end")
        self._snapshot("timed_end")

    def _get(self, point, figure):
        return (self.points.get(point) or {}).get(figure)

    def _timed_peak(self):
        start_rss, end_rss = self._get("timed_start", "rss"), self._get("timed_end", "rss")
        start_hwm, end_hwm = self._get("timed_start", "peak"), self._get("timed_end", "peak")
        source = self.sources.get("peak")
        if self.peak_reset and end_hwm is not None and source == "procfs:VmHWM":
            return end_hwm, "VmHWM, reset at the timed phase's start (/proc/self/clear_refs): its exact peak"
        if start_hwm is not None and end_hwm is not None and end_hwm > start_hwm:
            return end_hwm, "the high-water mark (%s) rose during the timed phase: its exact peak" % source
        known = [v for v in (start_rss, end_rss) if v is not None]
        if not known:
            return None, "no RSS reading around the timed phase (%s)" % self.missing.get("rss", "unknown")
        earlier = (" and the high-water mark (%s, set earlier) did not rise: the peak is at most that"
                   % _mb(start_hwm)) if start_hwm is not None else ""
        return max(known), "the larger RSS of the timed phase's start and end%s" % earlier

    def figures(self):
        """(memory, cpu): the result's ``memory`` and ``cpu`` objects."""
        peak, basis = self._timed_peak()
        before = self._get("before_load", "rss")
        hwms = [v for v in (self._get("timed_start", "peak"), self._get("timed_end", "peak")) if v is not None]
        memory = {
            "rss_before_load_kb": before,
            "rss_after_load_kb": self._get("after_load", "rss"),
            "rss_after_kb": self._get("timed_end", "rss"),
            # The process's peak since it started (what hwm_kb always was), whatever was reset for the timed phase.
            "hwm_kb": max(hwms) if hwms else None,
            "timed_start_rss_kb": self._get("timed_start", "rss"),
            "timed_peak_rss_kb": peak,
            "peak_basis": basis,
            "growth_kb": peak - before if peak is not None and before is not None else None,
        }
        for figure in ("footprint", "unified"):
            memory[figure + "_before_load_kb"] = self._get("before_load", figure)
            memory[figure + "_after_load_kb"] = self._get("after_load", figure)
            memory[figure + "_after_kb"] = self._get("timed_end", figure)
        memory["sources"] = dict((k, v) for k, v in self.sources.items())
        memory["missing"] = dict((k, v) for k, v in self.missing.items() if k not in self.sources)
        return memory, self._cpu_figures()

    def _cpu_figures(self):
        start, end = self._cpu.get("timed_start"), self._cpu.get("timed_end")
        if start is None or end is None:
            return {"source": None, "missing": "the timed phase did not run"}
        (t0, where0, c0), (t1, where1, c1) = start, end
        if t0 is None or t1 is None:
            return {"source": None, "missing": where0 if t0 is None else where1}
        wall = (c1 - c0) / 1e9
        user, system = max(0.0, t1[0] - t0[0]), max(0.0, t1[1] - t0[1])
        return {"user_s": user, "system_s": system, "wall_s": wall,
                "busy_cores": (user + system) / wall if wall > 0 else None,
                "source": where1, "missing": None}


def describe(usage=None):
    """What the hello says about this device's memory and CPU sources: ``{"psutil": version or None,
    "psutil_missing", "sources": {figure: source}, "missing": {figure: why}, "remedy"}``."""
    usage = usage if usage is not None else ProcessUsage()
    sources, missing = {}, {}
    readings = usage.memory()
    readings["cpu"] = usage.cpu_s()
    for figure, (value, where) in readings.items():
        (sources if value is not None else missing)[figure] = where
    remedy = None
    if usage.psutil is None:
        gains = [f for f in ("rss", "cpu") if f in missing]
        if usage.unified_kind == "jetson" and "unified" in missing:
            gains.append("unified")
        if gains:
            remedy = "%s: it gives %s" % (PSUTIL_REMEDY, ", ".join(gains))
        elif sources.get("rss") == "ps":
            remedy = "%s: RSS without starting ps for every reading" % PSUTIL_REMEDY
    return {"psutil": usage.psutil_version, "psutil_missing": usage.psutil_missing, "sources": sources,
            "missing": missing, "remedy": remedy, "platform": usage.platform}
