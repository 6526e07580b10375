"""The agent's memory and CPU figures (device_agents/hilbench_agent/memory.py) on every source: the real psutil
on this machine, the real /proc, recorded-format outputs of the macOS commands (tests/fixtures/memory, hand-written
in the exact formats: see its README) and of a Jetson's /proc/meminfo; then the host's side: validation of what a
device sends, the runs columns, old stores, doctor's check and ``show``'s lines."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hilbench_agent import memory as M

from harness.agent.validate import MessageChecker
from harness.analysis.derive import derive_run
from harness.analysis.usage import USAGE_COLUMNS, format_usage, usage_columns
from harness.doctor.checks import clean_hello, usage_check
from harness.errors import MessageError
from harness.store import SCHEMAS, Store

FIX = Path(__file__).resolve().parent / "fixtures" / "memory"


def _text(rel: str) -> str:
    return (FIX / rel).read_text()


# --- parsers, on recorded-format text ---------------------------------------------------------------------

def test_proc_status_gives_vmrss_and_vmhwm_in_kib():
    s = M.parse_proc_status(_text("linux/proc_self_status.txt"))
    assert s["VmRSS"] == 72480 and s["VmHWM"] == 81236 and s["VmPeak"] == 712944
    assert "Threads" not in s and "Name" not in s


def test_proc_status_of_the_shared_procfs_sample(shared_dir):
    path = shared_dir / "telemetry-samples" / "linux" / "proc_pid_status_prometheus_procfs_fixture.txt"
    s = M.parse_proc_status(path.read_text())
    assert s["VmRSS"] == 6716 and s["VmHWM"] == 8028  # SOURCES.md's expected values; its first line is blank


def test_meminfo_used_is_total_less_available_and_falls_back_without_memavailable(shared_dir):
    fields = M.parse_meminfo(_text("jetson/proc_meminfo_orin_nano_8gb.txt"))
    assert fields["MemTotal"] == 7620236 and "HugePages_Total" not in fields
    assert M.meminfo_used_kb(fields) == (7620236 - 5866120, None)
    old = M.parse_meminfo((shared_dir / "telemetry-samples" / "linux" / "proc_meminfo_node_exporter_fixture.txt").read_text())
    assert "MemAvailable" not in old  # an old kernel: MemFree + Buffers + Cached stand in for it
    assert M.meminfo_used_kb(old) == (3742148 - 225472 - 22040 - 930888, None)
    assert M.meminfo_used_kb({}) == (None, "no MemTotal in /proc/meminfo")


def test_ps_rss_is_one_number_in_kib():
    assert M.parse_ps_rss(_text("macos/ps_o_rss_pid.txt")) == 95264
    for bad in ("", "  RSS\n 95264\n", "95264 12\n", "-1\n", "abc\n"):
        assert M.parse_ps_rss(bad) is None


@pytest.mark.parametrize("name, page, used_kb", [
    ("macos/vm_stat_apple_silicon_16k_pages.txt", 16384, 10098160),
    ("macos/vm_stat_intel_4k_pages.txt", 4096, 7450640),
])
def test_vm_stat_memory_used_is_app_plus_wired_plus_compressed(name, page, used_kb):
    size, counts = M.parse_vm_stat(_text(name))
    assert size == page
    assert counts["Translation faults"] > 0 and counts["Pages wired down"] > 0  # the quoted label parses too
    assert M.vm_stat_used_kb(size, counts) == (used_kb, None)


def test_vm_stat_before_anonymous_pages_and_without_a_page_size():
    size, counts = M.parse_vm_stat(_text("macos/vm_stat_intel_4k_pages.txt"))
    old = {k: v for k, v in counts.items() if k not in ("Anonymous pages", "File-backed pages")}
    assert M.vm_stat_used_kb(size, old) == ((775395 + 502571 + 393640) * 4, None)
    assert M.vm_stat_used_kb(None, counts)[0] is None
    assert M.vm_stat_used_kb(4096, {})[0] is None


def test_getrusage_peak_is_bytes_on_macos_and_kib_on_linux():
    assert M.maxrss_kb(123731968, "darwin") == 120832
    assert M.maxrss_kb(120832, "linux") == 120832


def _rusage_info(resident: int, footprint: int) -> bytes:
    """struct rusage_info_v0 as proc_pid_rusage fills it: uuid[16], then ten uint64 (little-endian)."""
    return bytes(range(16)) + struct.pack("<10Q", 11, 12, 13, 14, 15, 16, resident, footprint, 17, 18) + b"\0" * 64


def test_rusage_info_v0_gives_resident_and_phys_footprint():
    assert M.parse_rusage_info(_rusage_info(97550336, 48627712)) == {"resident_bytes": 97550336,
                                                                     "phys_footprint_bytes": 48627712}
    assert M.parse_rusage_info(b"\0" * 95) is None


# --- the macOS path: ps, getrusage (bytes), libproc and vm_stat, without psutil --------------------------

class FakeMac:
    """The commands a Mac answers (recorded-format text) and its getrusage; counts what ran."""

    def __init__(self, rss_kb: int = 95264, maxrss_bytes: int = 100 * 1024 * 1024, footprint: int = 48627712,
                 vm_stat: str = "macos/vm_stat_apple_silicon_16k_pages.txt") -> None:
        self.rss_kb, self.maxrss, self.footprint, self.vm_stat = rss_kb, maxrss_bytes, footprint, vm_stat
        self.cpu = (1.0, 0.25)
        self.ran: list[list[str]] = []

    def run(self, argv: list[str]) -> str:
        self.ran.append(argv)
        if argv[:3] == ["ps", "-o", "rss="]:
            return _text("macos/ps_o_rss_pid.txt").replace("95264", str(self.rss_kb))
        if argv == ["vm_stat"]:
            return _text(self.vm_stat)
        raise OSError(f"no {argv[0]}")

    def getrusage(self) -> SimpleNamespace:
        return SimpleNamespace(ru_maxrss=self.maxrss, ru_utime=self.cpu[0], ru_stime=self.cpu[1])

    def rusage_info(self, pid: int) -> dict[str, int] | None:
        return M.parse_rusage_info(_rusage_info(self.rss_kb * 1024, self.footprint))

    def usage(self, tmp_path: Path) -> M.ProcessUsage:
        return M.ProcessUsage(pid=4242, psutil=None, platform="darwin", root=str(tmp_path), run=self.run,
                              getrusage=self.getrusage, rusage_info=self.rusage_info)


def test_macos_sources_without_psutil(tmp_path):
    mac = FakeMac()
    u = mac.usage(tmp_path)
    assert u.rss_kb() == (95264, "ps") and ["ps", "-o", "rss=", "-p", "4242"] in mac.ran
    assert u.peak_kb() == (102400, "getrusage")  # 100 MiB in bytes, not 100 GiB
    assert u.cpu_s() == ((1.0, 0.25), "getrusage")
    assert u.footprint_kb() == (47488, "libproc:phys_footprint")
    assert u.unified_kb() == (10098160, "vm_stat")
    assert u.reset_peak() is False  # no /proc/self/clear_refs on a Mac


def test_macos_job_figures_say_their_sources_and_how_exact_the_peak_is(tmp_path):
    mac = FakeMac(rss_kb=40000, maxrss_bytes=41000 * 1024)
    ticks = iter(range(0, 10 ** 12, 2 * 10 ** 9))  # every clock read is 2 s later
    job = M.JobUsage(mac.usage(tmp_path), clock=lambda: next(ticks))
    job.before_load()
    mac.rss_kb, mac.maxrss, mac.footprint = 90000, 120000 * 1024, 70000 * 1024  # the load's peak: 120000
    mac.vm_stat = "macos/vm_stat_intel_4k_pages.txt"
    job.after_load()
    mac.rss_kb = 95000
    job.timed_begin()
    mac.cpu = (4.0, 0.75)  # 3.5 s of CPU in the 2 s between the two clock reads: 1.75 cores busy
    mac.rss_kb = 96000
    job.timed_end()
    memory, cpu = job.figures()
    assert memory["rss_before_load_kb"] == 40000 and memory["rss_after_load_kb"] == 90000
    # The high-water mark (set by the load) did not rise: the peak is the larger RSS around the phase.
    assert memory["timed_peak_rss_kb"] == 96000 and memory["growth_kb"] == 56000
    assert "did not rise" in memory["peak_basis"] and memory["hwm_kb"] == 120000
    assert memory["footprint_before_load_kb"] == 47488 and memory["footprint_after_kb"] == 70000
    assert memory["unified_before_load_kb"] == 10098160 and memory["unified_after_load_kb"] == 7450640
    assert memory["sources"] == {"rss": "ps", "peak": "getrusage", "footprint": "libproc:phys_footprint",
                                 "unified": "vm_stat"}
    assert memory["missing"] == {}
    assert cpu == {"user_s": 3.0, "system_s": 0.5, "wall_s": 2.0, "busy_cores": 1.75, "source": "getrusage",
                   "missing": None}
    # The CPU window holds no process start: ps ran before the first CPU read and after the last.
    assert mac.ran.count(["vm_stat"]) == 3  # before load, after load, after the timed phase


def test_macos_peak_that_rose_during_the_timed_phase_is_exact(tmp_path):
    mac = FakeMac(rss_kb=50000, maxrss_bytes=60000 * 1024)
    job = M.JobUsage(mac.usage(tmp_path))
    job.before_load()
    job.after_load()
    job.timed_begin()
    mac.maxrss = 150000 * 1024
    job.timed_end()
    memory, _ = job.figures()
    assert memory["timed_peak_rss_kb"] == 150000 and "rose during the timed phase" in memory["peak_basis"]


def test_every_missing_figure_says_why(tmp_path):
    def broken(argv: list[str]) -> str:
        raise OSError("ps: command not found")

    def no_rusage() -> None:
        raise OSError("getrusage unavailable")

    u = M.ProcessUsage(pid=1, psutil=None, platform="freebsd", root=str(tmp_path), run=broken, getrusage=no_rusage)
    job = M.JobUsage(u)
    for step in (job.before_load, job.after_load, job.timed_begin, job.timed_end):
        step()
    memory, cpu = job.figures()
    assert memory["timed_peak_rss_kb"] is None and memory["growth_kb"] is None
    assert set(memory["missing"]) == {"rss", "peak", "footprint", "unified"}
    assert "ps: command not found" in memory["missing"]["rss"] and "getrusage" in memory["missing"]["peak"]
    assert memory["peak_basis"].startswith("no RSS reading")
    assert cpu["source"] is None and "getrusage unavailable" in cpu["missing"]
    d = M.describe(u)
    assert d["remedy"] == "pip install psutil on the device: it gives rss, cpu"


# --- the /proc path (Linux, Android, a Jetson), without psutil -------------------------------------------

def _fake_root(tmp_path: Path, jetson: bool) -> Path:
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "status").write_text(_text("linux/proc_self_status.txt"))
    (tmp_path / "proc" / "self" / "clear_refs").write_text("")
    (tmp_path / "proc" / "meminfo").write_text(_text("jetson/proc_meminfo_orin_nano_8gb.txt"))
    if jetson:
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    return tmp_path


def test_proc_sources_on_a_jetson(tmp_path):
    root = _fake_root(tmp_path, jetson=True)
    u = M.ProcessUsage(psutil=None, platform="linux", root=str(root), run=lambda argv: pytest.fail(f"ran {argv}"))
    assert u.rss_kb() == (72480, "procfs:VmRSS") and u.peak_kb() == (81236, "procfs:VmHWM")
    assert u.unified_kb() == (1754116, "procfs:meminfo")
    assert u.footprint_kb() == (None, "macOS only (phys_footprint)")
    assert u.reset_peak() is True and (root / "proc" / "self" / "clear_refs").read_text() == "5"
    job = M.JobUsage(u)
    for step in (job.before_load, job.after_load, job.timed_begin, job.timed_end):
        step()
    memory, cpu = job.figures()
    assert memory["timed_peak_rss_kb"] == 81236 and "reset at the timed phase's start" in memory["peak_basis"]
    assert memory["sources"] == {"rss": "procfs:VmRSS", "peak": "procfs:VmHWM", "unified": "procfs:meminfo"}
    assert memory["missing"] == {"footprint": "macOS only (phys_footprint)"}
    assert cpu["source"] == "getrusage" and cpu["busy_cores"] is not None


def test_no_unified_figure_off_a_jetson_or_a_mac_and_no_reset_without_clear_refs(tmp_path):
    root = _fake_root(tmp_path, jetson=False)
    (root / "proc" / "self" / "clear_refs").unlink()
    u = M.ProcessUsage(psutil=None, platform="linux", root=str(root))
    value, why = u.unified_kb()
    assert value is None and "not a Jetson or a Mac" in why
    assert u.reset_peak() is False and not (root / "proc" / "self" / "clear_refs").exists()  # never created


def test_linux_without_proc_does_not_start_ps(tmp_path):
    u = M.ProcessUsage(psutil=None, platform="linux", root=str(tmp_path), run=lambda argv: pytest.fail(f"ran {argv}"))
    value, why = u.rss_kb()
    assert value is None and "unreadable" in why
    assert u.peak_kb()[1] == "getrusage"  # ru_maxrss in KiB on Linux


# --- the real sources of this machine ------------------------------------------------------------------

def test_real_proc_path_without_psutil():
    u = M.ProcessUsage(psutil=None)
    rss, where = u.rss_kb()
    assert where == "procfs:VmRSS" and rss > 10_000
    peak, where = u.peak_kb()
    assert where == "procfs:VmHWM" and peak >= rss
    (user, system), where = u.cpu_s()
    assert where == "getrusage" and user > 0


def test_real_psutil_path_agrees_with_proc_and_getrusage():
    psutil = pytest.importorskip("psutil")
    with_ps, without = M.ProcessUsage(psutil=psutil), M.ProcessUsage(psutil=None)
    assert with_ps.psutil_version == psutil.__version__
    (a, wa), (b, wb) = with_ps.rss_kb(), without.rss_kb()
    assert (wa, wb) == ("psutil", "procfs:VmRSS") and abs(a - b) <= 0.02 * b
    assert with_ps.peak_kb()[1] == "procfs:VmHWM"  # psutil has no peak on Linux
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    (ua, sa), wa = with_ps.cpu_s()
    (ub, sb), wb = without.cpu_s()
    assert (wa, wb) == ("psutil", "getrusage")
    assert abs((ua + sa) - (ub + sb)) <= 0.03  # /proc/self/stat ticks (10 ms) against getrusage's microseconds


def test_real_job_peak_and_busy_cores():
    job = M.JobUsage(M.ProcessUsage())
    job.before_load()
    job.after_load()
    job.timed_begin()
    block = bytearray(64 * 1024 * 1024)  # touched: 64 MiB resident, then freed before the end
    for i in range(0, len(block), 4096):
        block[i] = 1
    del block
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    job.timed_end()
    memory, cpu = job.figures()
    if job.peak_reset:
        assert "reset" in memory["peak_basis"]
    assert memory["timed_peak_rss_kb"] >= memory["timed_start_rss_kb"] + 60 * 1024
    assert memory["timed_peak_rss_kb"] > memory["rss_after_kb"] + 50 * 1024  # freed: only the peak saw it
    assert memory["hwm_kb"] >= memory["timed_peak_rss_kb"]
    assert cpu["user_s"] + cpu["system_s"] >= 0.15 and 0 < cpu["busy_cores"] <= (os.cpu_count() or 1) + 0.5


def test_the_environment_variable_hides_psutil(monkeypatch):
    pytest.importorskip("psutil")
    assert M.load_psutil({})[0] is not None
    assert M.load_psutil({M.NO_PSUTIL_ENV: "1"}) == (None, "hidden by HILBENCH_AGENT_NO_PSUTIL")
    monkeypatch.setenv(M.NO_PSUTIL_ENV, "1")
    u = M.ProcessUsage()
    assert u.psutil is None and u.rss_kb()[1] == "procfs:VmRSS"
    assert M.describe()["psutil_missing"] == "hidden by HILBENCH_AGENT_NO_PSUTIL"


# --- the host: what a device may send, the columns, old stores, doctor, show ----------------------------------

def _result(**fields):
    msg = {"v": 1, "type": "result", "t_ns": 1, "load_ns": 10, "first_ns": 10,
           "timed": {"count": 5, "duration_ns": 100, "stop_reason": "target"},
           "memory": {"rss_before_load_kb": 40000, "rss_after_load_kb": 90000, "timed_peak_rss_kb": 96000,
                      "growth_kb": 56000, "hwm_kb": 120000, "peak_basis": "the larger RSS",
                      "footprint_before_load_kb": 47488, "footprint_after_kb": 70000,
                      "unified_before_load_kb": 7450640, "unified_after_kb": 10098160,
                      "sources": {"rss": "ps", "peak": "getrusage", "footprint": "libproc:phys_footprint",
                                  "unified": "vm_stat"}, "missing": {}},
           "cpu": {"user_s": 3.0, "system_s": 0.5, "wall_s": 2.0, "busy_cores": 1.75, "source": "getrusage",
                   "missing": None}}
    msg.update(fields)
    return msg


def test_the_host_takes_the_figures_and_stores_them_as_columns():
    res = MessageChecker().check(_result())
    cols = usage_columns(res)
    assert set(cols) == set(USAGE_COLUMNS)
    assert cols["timed_peak_rss_kb"] == 96000 and cols["rss_growth_kb"] == 56000
    assert cols["cpu_busy_cores"] == 1.75 and cols["cpu_user_s"] == 3.0 and cols["cpu_system_s"] == 0.5
    assert cols["footprint_kb"] == 70000 and cols["footprint_growth_kb"] == 70000 - 47488
    assert cols["unified_used_kb"] == 10098160 and cols["unified_growth_kb"] == 10098160 - 7450640
    assert cols["usage_sources"]["cpu"] == "getrusage" and cols["usage_sources"]["rss"] == "ps"
    assert cols["usage_missing"] is None
    d = derive_run(res, {}, {"phase": [], "latency_ns": [], "t_ns": []}, {})
    assert d["memory"]["timed_peak_rss_kb"] == 96000 and d["memory"]["peak_basis"] == "the larger RSS"


@pytest.mark.parametrize("result, failed, why", [
    (None, True, "the job failed"),
    ({"memory": {"hwm_kb": 5}, "runner": "benchmark_model"}, False, "the vendor runner benchmark_model"),
    ({"memory": {"rss_before_load_kb": 1, "hwm_kb": 5}}, False, "not reported by this agent version"),
])
def test_a_run_without_figures_says_why(result, failed, why):
    cols = usage_columns(result, failed=failed)
    assert cols["usage_sources"] is None
    assert set(cols["usage_missing"]) == {"rss", "peak", "cpu", "footprint", "unified"}
    assert all(why in v for v in cols["usage_missing"].values())


@pytest.mark.parametrize("memory, cpu, reason", [
    ({"timed_peak_rss_kb": -1}, None, "memory: timed_peak_rss_kb must be >= 0"),
    ({"rss_after_kb": "lots"}, None, "memory: rss_after_kb must be an integer, not str"),
    ({"footprint_after_kb": 1.5}, None, "memory: footprint_after_kb must be an integer, not float"),
    ({"sources": ["psutil"]}, None, "memory: sources must be an object, not list"),
    ({"sources": {"rss": 5}}, None, "memory: sources: rss must be a string, not int"),
    ({"missing": {f"f{i}": "x" for i in range(40)}}, None, "memory: missing has more than 32 entries"),
    ({"peak_basis": {"a": 1}}, None, "memory: peak_basis must be a string, not dict"),
    (None, {"busy_cores": -2.0}, "cpu: busy_cores must be >= 0"),
    (None, {"user_s": "1"}, "cpu: user_s must be a number, not str"),
    (None, {"source": ["psutil"]}, "cpu: source must be a string, not list"),
    (None, [1, 2], "cpu must be an object, not list"),
])
def test_a_hostile_device_cannot_send_bad_figures(memory, cpu, reason):
    msg = _result()
    if memory is not None:
        msg["memory"] = dict(msg["memory"], **memory)
    if cpu is not None:
        msg["cpu"] = cpu if not isinstance(cpu, dict) else dict(msg["cpu"], **cpu)
    with pytest.raises(MessageError, match=f"result message: {reason}"):
        MessageChecker().check(msg)


def test_long_source_names_are_cut_not_stored_whole():
    msg = _result()
    msg["memory"]["sources"] = {"rss": "p" * 50_000}
    msg["memory"]["peak_basis"] = "b" * 50_000
    out = MessageChecker().check(msg)
    assert len(out["memory"]["sources"]["rss"]) <= 2003 and len(out["memory"]["peak_basis"]) <= 2003
    usage_columns(out)  # and the columns take it


def test_an_old_store_without_the_new_columns_still_reads(tmp_path):
    store = Store(tmp_path / "results")
    store.ensure_writable()
    old = pa.schema([f for f in SCHEMAS["runs"] if f.name not in USAGE_COLUMNS])
    row = {f.name: None for f in old}
    row.update(run_id="20260101T000000-abcdef", session_id="s", status="ok", hwm_kb=81236, rss_before_load_kb=40000,
               started_at=None)
    pq.write_table(pa.Table.from_pylist([row], schema=old), tmp_path / "results" / "runs" / "old.parquet")
    store.write_table("runs", "new", [dict(row, run_id="20260102T000000-123456", cpu_busy_cores=1.5,
                                           usage_sources={"cpu": "psutil"})])
    runs = store.runs()
    assert set(USAGE_COLUMNS) <= set(runs.columns) and len(runs) == 2
    got = store.run("abcdef")
    assert got["cpu_busy_cores"] is None and got["usage_sources"] is None and got["hwm_kb"] == 81236
    assert format_usage(got) == ["memory    peak RSS 79.3 MiB (before load 39.1 MiB)"]
    new = store.run("123456")
    assert new["cpu_busy_cores"] == 1.5 and new["usage_sources"] == {"cpu": "psutil"}


def test_show_lines_say_growth_cpu_and_sources():
    res = MessageChecker().check(_result())
    row = {"rss_before_load_kb": 40000, "rss_after_load_kb": 90000, "hwm_kb": 120000, "result": res,
           "settings": {"threads": 1}, **usage_columns(res)}
    lines = format_usage(row)
    assert lines[0] == ("memory    RSS before load 39.1 MiB, after load 87.9 MiB, timed peak 93.8 MiB, growth "
                        "+54.7 MiB  (rss: ps; peak: getrusage)")
    assert "memory    footprint 68.4 MiB (+22.0 MiB over before load)  (libproc:phys_footprint)" in lines
    assert any(line.startswith("memory    unified memory used 9861.5 MiB (+2585.5 MiB") for line in lines)
    assert lines[-1] == ("cpu       1.75 busy cores during the timed runs (user 3.00 s, system 0.50 s)  (getrusage): "
                         "more than the 1 thread the settings ask for")
    row = {"result": {}, **usage_columns({"memory": {"sources": {"rss": "procfs:VmRSS"}}, "cpu": {"missing": "no clock"}})}
    assert format_usage(row)[-1] == "cpu       none (missing: no clock)"


def test_doctor_says_the_sources_and_the_remedy(tmp_path):
    mac = FakeMac()
    ok = usage_check(M.describe(mac.usage(tmp_path)))
    assert ok.status == "ok" and "no psutil (not used)" in ok.detail and "rss from ps" in ok.detail
    assert "pip install psutil on the device" in ok.detail  # it would spare a ps process per reading

    def broken(argv: list[str]) -> str:
        raise OSError("not found")

    bare = M.describe(M.ProcessUsage(pid=1, psutil=None, platform="sunos5", root=str(tmp_path), run=broken))
    warn = usage_check(bare)
    assert warn.status == "warn" and "runs will lack rss" in warn.detail
    assert warn.fix == "pip install psutil on the device: it gives rss"
    assert usage_check({}).status == "info"
    hello, problems = clean_hello({"usage_sources": {"sources": {"rss": 5}, "psutil": 7}})
    assert problems == ["usage_sources.sources is not an object of strings", "usage_sources.psutil is an integer, "
                        "not a string"]
    assert usage_check(hello["usage_sources"]).status == "warn"
    hello, problems = clean_hello({"usage_sources": "psutil"})
    assert problems == ["usage_sources is a string, not an object"] and usage_check(hello["usage_sources"]).status == "info"


def test_hello_names_the_sources():
    from hilbench_agent.probe import hello_fields

    fields = hello_fields({})
    json.dumps(fields)
    assert fields["usage_sources"]["sources"]["rss"] in ("psutil", "procfs:VmRSS")


@pytest.mark.slow
def test_a_real_run_stores_shows_and_reports_the_figures(tmp_path, capsys):
    from harness import open_store
    from harness.cli import main
    from harness.report.html import build_report, ranking_table

    plan = tmp_path / "plan.toml"
    plan.write_text('name = "usage"\n[[models]]\nname = "fake"\nbackends = ["synthetic"]\n'
                    '[backends.synthetic]\nlatency_ms = 0.3\nspin = true\n'
                    '[policy]\nwarmup = 5\ntimed = { count = 300 }\ntelemetry = false\n')
    store_dir = str(tmp_path / "res")
    assert main(["run", str(plan), "--store", store_dir, "--quiet"]) == 0
    store = open_store(store_dir)
    run = store.runs().iloc[-1]
    assert run["timed_peak_rss_kb"] > 0 and run["cpu_busy_cores"] > 0.2  # a spinning stand-in keeps a core busy
    row = store.run(run["run_id"])
    assert row["usage_sources"]["rss"] in ("psutil", "procfs:VmRSS") and row["usage_sources"]["cpu"]
    assert set(row["usage_missing"]) == {"footprint", "unified"}
    capsys.readouterr()
    assert main(["show", run["run_id"], "--store", store_dir]) == 0
    out = capsys.readouterr().out
    assert "  memory    RSS before load " in out and "growth " in out and "busy cores during the timed runs" in out
    assert "no footprint (macOS only (phys_footprint))" in out
    assert sum(line.startswith("  memory    peak RSS") for line in out.splitlines()) == 0  # not said twice
    table = ranking_table(store)
    assert table.iloc[0]["busy_cores"] == pytest.approx(run["cpu_busy_cores"])
    text = build_report(store, plots=False)
    assert "timed peak RSS MiB (growth)" in text and f"{run['cpu_busy_cores']:.2f}" in text
    assert f"{run['timed_peak_rss_kb'] / 1024:.1f}</span>" in text
