"""The telemetry readers and the sampler import and run on Python 3.7 (Coral's Mendel Linux) with the stdlib alone."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.helpers import missing_in_ci

ROOT = Path(__file__).resolve().parents[1]
AGENT_DIR = ROOT / "device_agents"


def _python37() -> str | None:
    """A working 3.7 interpreter (a pyenv shim that is not activated does not count)."""
    for cand in [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7*/bin/python"))), shutil.which("python3.7")]:
        if not cand or not os.access(cand, os.X_OK):
            continue
        try:
            proc = subprocess.run([cand, "-c", "import sys; print(sys.version_info[:2] == (3, 7))"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.stdout.strip() == "True":
            return cand
    return None


PY37 = _python37()


@pytest.fixture(autouse=True)
def _needs_python37() -> None:
    if PY37 is None:
        missing_in_ci("the Python 3.7 telemetry check", "no Python 3.7 interpreter here")

SCRIPT = r"""
import json, os, sys, tempfile, time
assert sys.version_info[:2] == (3, 7), sys.version
from hilbench_agent.telemetry import KINDS, detect_kind, parse_text
from hilbench_agent.telemetry import android, coral, fs, jetson, linux, macos, raspberrypi  # noqa
from hilbench_agent.telemetry.discover import discover
from hilbench_agent.telemetry.sampler import Sampler

out = {"kinds": len(KINDS), "samples": {}}
shared = sys.argv[1]
if os.path.isdir(shared):
    for plat in sorted(os.listdir(shared)):
        d = os.path.join(shared, plat)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
                text = f.read()
            kind = detect_kind(text) or "trip-points"
            rs = parse_text(kind, text)
            out["samples"][plat + "/" + name] = [kind, len(rs), [r.to_dict() for r in rs[:3]]]

line = ("RAM 1923/3964MB (lfb 2x2MB) SWAP 191/1982MB (cached 6MB) CPU [5%@1224,off] GR3D_FREQ 0%@76 "
        "PMIC@50C GPU@-256C POM_5V_IN 1750/1628 POM_5V_CPU 366/406")
out["tegrastats"] = {r.sensor: r.value for r in parse_text("tegrastats", line)}

root = tempfile.mkdtemp()
zone = os.path.join(root, "sys/class/thermal/thermal_zone0")
os.makedirs(zone)
with open(os.path.join(zone, "type"), "w") as f:
    f.write("cpu-thermal\n")
with open(os.path.join(zone, "temp"), "w") as f:
    f.write("48250\n")
batches = []
sources = discover(root)
with Sampler(sources, rate_hz=50, emit=batches.append, flush_interval_s=0.05):
    time.sleep(0.3)
readings = [r for b in batches for r in b]
out["sampler"] = {"sources": [s.name for s in sources], "n": len(readings), "first": readings[0]}

# A fake Jetson: trip points, a cooling device, pinned clocks, no INA rails, a stand-in tegrastats on PATH.
jet = tempfile.mkdtemp()
files = {"etc/nv_tegra_release": "# R32\n", "sys/class/thermal/thermal_zone0/type": "CPU-therm\n",
         "sys/class/thermal/thermal_zone0/temp": "40000\n",
         "sys/class/thermal/thermal_zone0/trip_point_0_temp": "97000\n",
         "sys/class/thermal/thermal_zone0/trip_point_0_type": "passive\n",
         "sys/class/thermal/cooling_device0/type": "thermal-cpufreq-0\n",
         "sys/class/thermal/cooling_device0/cur_state": "1\n",
         "sys/devices/system/cpu/cpu0/cpufreq/scaling_min_freq": "1479000\n",
         "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq": "1479000\n",
         "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "1479000\n",
         # a stand-in for tegrastats (a fake, named as one)
         "bin/tegrastats": "#!/bin/sh\nwhile true; do echo 'RAM 1/2MB CPU [1%@102] POM_5V_IN 900/900'; "
                           "sleep 0.02; done\n"}
for rel, text in files.items():
    p = os.path.join(jet, rel)
    if not os.path.isdir(os.path.dirname(p)):
        os.makedirs(os.path.dirname(p))
    with open(p, "w") as f:
        f.write(text)
os.chmod(os.path.join(jet, "bin/tegrastats"), 0o755)
found = discover(jet, path=os.path.join(jet, "bin"), commands=True, platform="linux")
batches = []
with Sampler(found, rate_hz=50, emit=batches.append, flush_interval_s=0.05):
    time.sleep(0.4)
got = dict((r["sensor"], r["value"]) for b in batches for r in b)
out["jetson"] = {"facts": found.describe()["facts"], "sources": [s.name for s in found],
                 "power": got.get("power.total"), "cooling": got.get("cooling.thermal-cpufreq-0")}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_readers_and_sampler_run_on_python37(tmp_path: Path) -> None:
    shared = ROOT.parent / "shared" / "telemetry-samples"
    env = dict(os.environ, PYTHONPATH=str(AGENT_DIR), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([PY37, "-c", SCRIPT, str(shared)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kinds"] >= 9
    t = out["tegrastats"]
    assert t["power.total"] == 1750 and t["temp.GPU"] is None and t["temp.PMIC"] is None
    assert t["load.cpu1"] is None and t["freq.gpu"] == 76
    s = out["sampler"]
    assert s["sources"] == ["thermal"] and s["n"] >= 5
    assert s["first"]["sensor"] == "temp.cpu-thermal" and s["first"]["value"] == 48.25
    assert isinstance(s["first"]["t_ns"], int)
    j = out["jetson"]
    assert j["facts"]["jetson_clocks"]["active"] == 1
    assert j["facts"]["trip_points"] == {"temp.CPU-therm": [{"trip": 0, "temp_c": 97.0, "type": "passive"}]}
    assert {"tegrastats", "cooling"} <= set(j["sources"]) and j["power"] == 900 and j["cooling"] == 1
    if not shared.is_dir():
        missing_in_ci("the recorded-sample half of the Python 3.7 test", f"recorded samples not found at {shared}")
    files = [p for p in shared.rglob("*") if p.is_file() and p.suffix != ".md"]
    assert files and len(out["samples"]) == len(files)
    assert all(n > 0 for _, n, _ in out["samples"].values())


def test_agent_telemetry_sources_compile_for_python37() -> None:
    files = sorted(str(p) for p in (AGENT_DIR / "hilbench_agent" / "telemetry").glob("*.py"))
    assert files, "no telemetry sources found"
    code = "import py_compile, sys\nfor f in sys.argv[1:]:\n    py_compile.compile(f, doraise=True, cfile=f + '.37c')\n"
    proc = subprocess.run([PY37, "-c", code, *files], capture_output=True, text=True, timeout=60)
    for f in files:
        Path(f + ".37c").unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr
