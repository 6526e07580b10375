"""The agent's memory and CPU sources (hilbench_agent/memory.py) compile and run on Python 3.7 without psutil: its
parsers on the recorded-format fixtures, the live /proc and getrusage sources, and a whole job of the real agent."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.helpers import missing_in_ci, pyenv_python

ROOT = Path(__file__).resolve().parents[1]
AGENT_DIR = ROOT / "device_agents"
FIX = Path(__file__).resolve().parent / "fixtures" / "memory"
PY37 = pyenv_python("3.7")


@pytest.fixture(autouse=True)
def _needs_python37() -> None:
    if PY37 is None:
        missing_in_ci("the Python 3.7 memory check", "no Python 3.7 interpreter here")


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(AGENT_DIR), PYTHONDONTWRITEBYTECODE="1")
    env.pop("HILBENCH_AGENT_NO_PSUTIL", None)
    return env


def test_memory_sources_compile_for_python37() -> None:
    files = [str(AGENT_DIR / "hilbench_agent" / name) for name in ("memory.py", "probe.py", "main.py")]
    code = "import py_compile, sys\nfor f in sys.argv[1:]:\n    py_compile.compile(f, doraise=True, cfile=f + '.37c')\n"
    proc = subprocess.run([PY37, "-c", code, *files], capture_output=True, text=True, timeout=60)
    for f in files:
        Path(f + ".37c").unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr


SCRIPT = r"""
import json, os, sys, time
from types import SimpleNamespace
assert sys.version_info[:2] == (3, 7), sys.version
try:
    import psutil
    raise SystemExit("psutil is importable on this 3.7: the test needs a bare one")
except ImportError:
    pass
from hilbench_agent import memory as M

fix = sys.argv[1]
def text(rel):
    with open(os.path.join(fix, rel)) as f:
        return f.read()

out = {}
out["status"] = M.parse_proc_status(text("linux/proc_self_status.txt"))
out["meminfo_used"] = M.meminfo_used_kb(M.parse_meminfo(text("jetson/proc_meminfo_orin_nano_8gb.txt")))[0]
out["ps"] = M.parse_ps_rss(text("macos/ps_o_rss_pid.txt"))
out["vm_stat"] = M.vm_stat_used_kb(*M.parse_vm_stat(text("macos/vm_stat_apple_silicon_16k_pages.txt")))[0]
out["maxrss_darwin"] = M.maxrss_kb(123731968, "darwin")

def run(argv):
    if argv[0] == "ps":
        return text("macos/ps_o_rss_pid.txt")
    return text("macos/vm_stat_apple_silicon_16k_pages.txt")
mac = M.ProcessUsage(pid=7, psutil=None, platform="darwin", root=fix, run=run,
                     getrusage=lambda: SimpleNamespace(ru_maxrss=2048 * 1024, ru_utime=1.0, ru_stime=0.5),
                     rusage_info=lambda pid: {"resident_bytes": 1, "phys_footprint_bytes": 4096 * 1024})
out["mac"] = M.describe(mac)

job = M.JobUsage()
job.before_load()
job.after_load()
job.timed_begin()
block = bytearray(32 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
del block
job.timed_end()
out["memory"], out["cpu"] = job.figures()
out["describe"] = M.describe()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_memory_sources_run_on_python37_without_psutil(tmp_path: Path) -> None:
    proc = subprocess.run([PY37, "-c", SCRIPT, str(FIX)], capture_output=True, text=True, env=_env(), cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["status"]["VmRSS"] == 72480 and out["meminfo_used"] == 1754116 and out["ps"] == 95264
    assert out["vm_stat"] == 10098160 and out["maxrss_darwin"] == 120832
    assert out["mac"]["sources"] == {"rss": "ps", "peak": "getrusage", "cpu": "getrusage",
                                     "footprint": "libproc:phys_footprint", "unified": "vm_stat"}
    assert out["mac"]["psutil"] is None and "pip install psutil" in out["mac"]["remedy"]
    mem, cpu = out["memory"], out["cpu"]
    assert mem["sources"] == {"rss": "procfs:VmRSS", "peak": "procfs:VmHWM"}
    assert mem["timed_peak_rss_kb"] >= mem["timed_start_rss_kb"] + 30 * 1024
    assert cpu["source"] == "getrusage" and cpu["busy_cores"] > 0
    assert out["describe"]["psutil_missing"] == "not installed"


@pytest.mark.slow
def test_the_agent_runs_a_job_on_python37_without_psutil(tmp_path: Path) -> None:
    job = {"backend": "synthetic", "settings": {"latency_ms": 0.2, "spin": True}, "warmup": {"count": 5},
           "timed": {"count": 200}}
    proc = subprocess.run([PY37, "-m", "hilbench_agent", "--job", "-"], input=json.dumps(job) + "\n",
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    messages = [json.loads(line) for line in proc.stdout.splitlines()]
    hello = next(m for m in messages if m["type"] == "hello")
    assert hello["usage_sources"]["psutil"] is None and hello["usage_sources"]["sources"]["cpu"] == "getrusage"
    result = next(m for m in messages if m["type"] == "result")
    assert result["memory"]["sources"]["rss"] == "procfs:VmRSS" and result["memory"]["timed_peak_rss_kb"] > 0
    assert result["cpu"]["source"] == "getrusage" and result["cpu"]["busy_cores"] > 0.3  # a spinning stand-in
