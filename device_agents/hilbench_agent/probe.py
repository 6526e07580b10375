"""What the agent finds about the device it runs on (the ``hello`` message)."""

import os
import platform
import sys

from hilbench_agent import AGENT_VERSION, PROTOCOL_VERSION

_X86_MARKERS = ("GenuineIntel", "AuthenticAMD", "HygonGenuine")


def _read(path, root="/"):
    try:
        with open(os.path.join(root, path.lstrip("/")), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def cpu_model(cpuinfo):
    """The CPU's name from /proc/cpuinfo text (x86 'model name', Arm 'Hardware'/'Model')."""
    if not cpuinfo:
        return None
    fields = {}
    for line in cpuinfo.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "hardware", "model", "cpu model", "processor"):
        value = fields.get(key)
        if value and not value.isdigit():
            return value
    part = fields.get("cpu part")
    if part:
        return "Arm CPU part %s (implementer %s)" % (part, fields.get("cpu implementer", "?"))
    return None


def detect_emulation(machine, cpuinfo):
    """A reason string when the machine says one architecture while the CPU
    information describes another (qemu user-mode emulation), else None."""
    if not cpuinfo:
        return None
    machine = (machine or "").lower()
    looks_x86 = any(marker in cpuinfo for marker in _X86_MARKERS) or "\nflags\t" in cpuinfo or cpuinfo.startswith("flags\t")
    looks_arm = "CPU implementer" in cpuinfo or "CPU architecture" in cpuinfo
    if machine in ("aarch64", "arm64", "armv7l", "armv6l", "armv8l") and looks_x86:
        return "machine is %s but /proc/cpuinfo describes an x86 CPU: user-mode emulation (qemu)" % machine
    if machine in ("x86_64", "amd64", "i686") and looks_arm and not looks_x86:
        return "machine is %s but /proc/cpuinfo describes an Arm CPU: emulation" % machine
    return None


def device_model(root="/"):
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        text = _read(path, root)
        if text:
            return text.strip("\x00\n ")
    vendor = _read("/sys/class/dmi/id/sys_vendor", root)
    product = _read("/sys/class/dmi/id/product_name", root)
    if product:
        return ("%s %s" % ((vendor or "").strip(), product.strip())).strip()
    if sys.platform == "darwin":
        try:
            import subprocess
            return subprocess.check_output(["sysctl", "-n", "hw.model"]).decode().strip()
        except Exception:
            return None
    return None


def cpu_governor(root="/"):
    text = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", root)
    return text.strip() if text else None


def memory_kb(root="/"):
    text = _read("/proc/meminfo", root)
    out = {}
    if text:
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                try:
                    out[key] = int(rest.split()[0])
                except (ValueError, IndexError):
                    pass
    return out


def process_memory_kb(pid="self", root="/"):
    """VmRSS and VmHWM of a process in KiB from /proc; {} where /proc is absent."""
    text = _read("/proc/%s/status" % pid, root)
    out = {}
    if text:
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                try:
                    out[key] = int(rest.split()[0])
                except (ValueError, IndexError):
                    pass
    if not out:
        try:
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            # Linux reports KiB, macOS bytes.
            out["VmHWM"] = int(peak // 1024) if sys.platform == "darwin" else int(peak)
        except Exception:
            pass
    return out


def hello_fields(backends):
    cpuinfo = _read("/proc/cpuinfo")
    machine = platform.machine()
    free_disk = None
    try:
        st = os.statvfs(os.path.expanduser("~"))
        free_disk = st.f_bavail * st.f_frsize
    except (OSError, AttributeError):
        pass
    affinity = None
    if hasattr(os, "sched_getaffinity"):
        affinity = sorted(os.sched_getaffinity(0))
    return {
        "agent_version": AGENT_VERSION,
        "protocol": PROTOCOL_VERSION,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": machine,
        "cpu_model": cpu_model(cpuinfo) or platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_governor": cpu_governor(),
        "device_model": device_model(),
        "hostname": platform.node(),
        "memory_kb": memory_kb(),
        "free_disk_bytes": free_disk,
        "emulated": detect_emulation(machine, cpuinfo),
        "backends": backends,
        "pid": os.getpid(),
        "usage_sources": usage_sources(),
    }


def usage_sources():
    """Which memory and CPU sources this device offers (hilbench_agent.memory.describe); never fails the hello."""
    try:
        from hilbench_agent.memory import describe
        return describe()
    except Exception as exc:
        return {"error": str(exc).splitlines()[0][:200] if str(exc) else repr(exc)}
