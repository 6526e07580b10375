"""The Edge TPU rules of the LiteRT backend (stdlib only, Python 3.7), shared with the host's pre-check.

* A model compiled for the Edge TPU (``edgetpu_compiler`` output: its TPU parts are ``edgetpu-custom-op`` custom
  operators) runs only with the Edge TPU delegate: without it, a one-line error naming the setting.
* The Edge TPU delegate on a model that was never compiled runs every op on the CPU: refused unless the plan
  says ``allow_cpu_fallback = true``.
* A device without libedgetpu: a one-line error naming the package to install (libedgetpu1-std).
* Recorded in the run's effective settings: USB or PCIe, the Edge TPU runtime version and the clock setting
  (the libedgetpu1-std or libedgetpu1-max package), where the device lets them be read.

On the device, for a job with the Edge TPU delegate, the compiled check looks for the custom operator's name, which a
.tflite stores verbatim as its operator code's ``custom_code`` string (other jobs read nothing more: a compiled model
without the delegate is LiteRT's own "unresolved custom op: edgetpu-custom-op", reworded). The host reads the
flatbuffer properly (``hilbench inspect``) and applies the same rules before anything is shipped.
"""

import ctypes
import os
import sys

EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"
#: the Edge TPU's USB ids: before its firmware is loaded (Global Unichip) and after (Google)
USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))
#: plan spellings of "the Edge TPU delegate", resolved to the platform's library name
ALIASES = ("edgetpu", "libedgetpu")
#: where the device's sysfs and dpkg status are (tests point them at stand-in trees)
SYS_ROOT = "/"
DPKG_STATUS = "/var/lib/dpkg/status"
INSTALL_HINT = ("install libedgetpu1-std from Coral's apt repository (https://coral.ai/software/#debian-packages; "
                "libedgetpu1-max for the faster clock)")


def library_name(platform=None):
    """The Edge TPU runtime library's name on ``platform`` (as pycoral loads it)."""
    platform = platform or sys.platform
    if platform.startswith("darwin"):
        return "libedgetpu.1.dylib"
    if platform.startswith("win"):
        return "edgetpu.dll"
    return "libedgetpu.so.1"


def is_edgetpu_delegate(delegate):
    """Whether a plan's ``delegate`` setting names the Edge TPU delegate (an alias or a libedgetpu path)."""
    if not delegate:
        return False
    base = os.path.basename(str(delegate)).lower()
    return base in ALIASES or base.startswith("libedgetpu") or base == "edgetpu.dll"


def resolve(delegate):
    """The library to load for a ``delegate`` setting: an alias becomes the platform's libedgetpu."""
    if str(delegate).lower() in ALIASES:
        return library_name()
    return delegate


def is_compiled(model_path):
    """Whether the .tflite holds an ``edgetpu-custom-op`` (its custom code string is stored verbatim)."""
    tail = b""
    with open(model_path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return False
            if EDGETPU_CUSTOM_OP in tail + chunk:
                return True
            tail = chunk[-len(EDGETPU_CUSTOM_OP):]


def refusal(name, compiled, delegate, allow_cpu_fallback):
    """A one-line refusal for a model (``compiled`` for the Edge TPU or not) and a ``delegate`` setting the Edge
    TPU rules do not allow, or None. The host's pre-check and the agent say the same."""
    if compiled and not is_edgetpu_delegate(delegate):
        return ("%s is compiled for the Edge TPU (it has edgetpu-custom-op nodes) and runs only with its delegate: "
                'set delegate = "libedgetpu.so.1" for litert (or give the model as it was before edgetpu_compiler)'
                % name)
    if not compiled and is_edgetpu_delegate(delegate) and not allow_cpu_fallback:
        return ("%s was not compiled for the Edge TPU: with the Edge TPU delegate every op would run on the CPU. "
                "Compile it (edgetpu_compiler %s), or set allow_cpu_fallback = true to measure it on the CPU anyway"
                % (name, name))
    return None


def summary(op_names, limit=32):
    """{"compiled", "ops_tpu", "ops_cpu", "cpu_ops"} from a model's operator names in graph order: ``ops_tpu``
    counts the edgetpu-custom-op nodes (each a compiled subgraph), ``ops_cpu`` the other ops, ``cpu_ops`` their
    distinct names (at most ``limit``). ``hilbench inspect`` reports this; an agent can build it from the
    interpreter's op list for a run's offload verdict."""
    name = EDGETPU_CUSTOM_OP.decode()
    cpu = [op for op in op_names if op != name]
    distinct = []
    for op in cpu:
        if op not in distinct and len(distinct) < limit:
            distinct.append(op)
    tpu = len(op_names) - len(cpu)
    return {"compiled": tpu > 0, "ops_tpu": tpu, "ops_cpu": len(cpu), "cpu_ops": distinct}


def needs_delegate(exc):
    """Whether LiteRT's load error is a compiled model's custom op without its delegate
    ("Encountered unresolved custom op: edgetpu-custom-op")."""
    return EDGETPU_CUSTOM_OP.decode() in str(exc)


def load_error(library, exc):
    """The one-line error for an Edge TPU delegate that would not load."""
    reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    return ("cannot load delegate %s (%s): this device has no usable Edge TPU runtime: %s, and plug in the Coral "
            "(USB) or install its PCIe driver (gasket-dkms)" % (library, reason, INSTALL_HINT))


def interface(sys_root=None):
    """"pcie", "usb", "pcie+usb" or None: the Edge TPUs this device shows (/sys/class/apex for PCIe and M.2,
    the USB ids in /sys/bus/usb/devices), and how many."""
    sys_root = sys_root or SYS_ROOT
    found = []
    apex = os.path.join(sys_root, "sys", "class", "apex")
    try:
        pcie = len([n for n in os.listdir(apex) if n.startswith("apex")])
    except OSError:
        pcie = 0
    if pcie:
        found.append("pcie")
    usb = 0
    devices = os.path.join(sys_root, "sys", "bus", "usb", "devices")
    try:
        names = sorted(os.listdir(devices))
    except OSError:
        names = []
    for name in names:
        ids = tuple(_read(os.path.join(devices, name, f)) for f in ("idVendor", "idProduct"))
        if ids in USB_IDS:
            usb += 1
    if usb:
        found.append("usb")
    return ("+".join(found) or None), pcie, usb


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip().lower()
    except (OSError, ValueError):
        return None


def runtime_package(status_path=None):
    """(clock, "package version") from dpkg's status file: libedgetpu1-max runs the Edge TPU at its maximum
    clock, libedgetpu1-std at the reduced one; (None, None) where neither is installed or dpkg is absent."""
    try:
        with open(status_path or DPKG_STATUS, errors="replace") as f:
            text = f.read()
    except (OSError, ValueError):
        return None, None
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if ":" in line and not line.startswith(" "):
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        package = fields.get("Package", "")
        if package in ("libedgetpu1-std", "libedgetpu1-max", "libedgetpu1-legacy-std", "libedgetpu1-legacy-max") \
                and fields.get("Status", "").endswith(" installed"):
            return package.rsplit("-", 1)[1], ("%s %s" % (package, fields.get("Version", ""))).strip()
    return None, None


def runtime_version(library):
    """The Edge TPU runtime's version string, from pycoral where it is installed, else from the library's own
    ``edgetpu_version()`` (edgetpu_c.h); None where neither answers."""
    try:
        from pycoral.utils.edgetpu import get_runtime_version
        return str(get_runtime_version())
    except Exception:
        pass
    try:
        fn = ctypes.CDLL(library).edgetpu_version
        fn.restype = ctypes.c_char_p
        value = fn()
        return value.decode("utf-8", "replace") if value else None
    except Exception:
        return None


def record(library, options, compiled, sys_root=None, status_path=None):
    """What a run with the Edge TPU delegate records in its effective settings (what cannot be read is None;
    reading never fails the run)."""
    try:
        kind, pcie, usb = interface(sys_root)
    except Exception:
        kind, pcie, usb = None, None, None
    try:
        clock, package = runtime_package(status_path)
    except Exception:
        clock, package = None, None
    out = {"compiled": compiled, "interface": kind, "pcie_devices": pcie, "usb_devices": usb,
           "runtime_version": runtime_version(library), "clock": clock, "runtime_package": package}
    if options and options.get("device"):
        out["device"] = str(options.get("device"))
    return out
