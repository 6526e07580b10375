"""The Android runner driver's and Android doctor's steps on their own, without adb: where the timed window is
placed on the host clock, how samples are chunked, what is kept of a runner's output, the shell command's
markers, and the doctor checks that a failed read stops or skips."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from harness.config.targets import ADBSettings, Target
from harness.doctor import android as doctor
from harness.errors import TransportError
from harness.transport.adb import vendor_runner as vr

MS = 1_000_000


def _report(*, samples: list[float] | None = None, count: int | None = None, mean_ms: float | None = None) -> Any:
    timed = SimpleNamespace(count=count, mean_ms=mean_ms) if count is not None else None
    return SimpleNamespace(samples_ms=samples, timed=timed, extra={})


def test_timed_window_ends_at_the_summary_line_when_it_came_well_before_exit() -> None:
    out = vr._Output("benchmark_model", t_start=0, t_end=900 * MS, timed_end=500 * MS)
    w = vr._timed_window(_report(count=10, mean_ms=20.0), out)
    assert (w.count, w.duration_ns, w.t0, w.t1) == (10, 200 * MS, 300 * MS, 500 * MS)
    assert w.basis == "the runner's count x mean"
    assert w.t0_basis is not None and w.t0_basis.endswith("its timed summary line arrived (host clock)")


def test_timed_window_ends_at_exit_and_never_starts_before_the_runner() -> None:
    out = vr._Output("benchmark_model", t_start=100 * MS, t_end=300 * MS)
    w = vr._timed_window(_report(samples=[150.0, 150.0]), out)  # 300 ms of runs in a 200 ms run: clamped
    assert (w.count, w.duration_ns, w.t0, w.t1) == (2, 300 * MS, 100 * MS, 300 * MS)
    assert w.t0_basis is not None and w.t0_basis.endswith("it exited (host clock)")
    none = vr._timed_window(_report(), out)
    assert (none.count, none.duration_ns, none.t0, none.t0_basis) == (None, None, None, None)


def test_samples_are_placed_back_to_back_in_chunks() -> None:
    msgs = vr._sample_messages([1.0] * 12001, base=7)
    assert [m["start"] for m in msgs] == [0, 5000, 10000]
    assert [len(m["latency_ns"]) for m in msgs] == [5000, 5000, 2001]
    assert msgs[1]["t0_ns"] == 7 + 5000 * MS and msgs[1]["offset_ns"][:2] == [0, MS]
    assert all(m["phase"] == "timed" for m in msgs)


def test_output_keeps_head_and_tail_and_says_what_was_cut() -> None:
    out = vr._Output("benchmark_model", t_start=0)
    total = vr.OUTPUT_HEAD_LINES + vr.OUTPUT_TAIL_LINES + 3
    for i in range(total):
        out.keep(f"line {i} count={i}", arrived=i)
    assert out.timed_end == total - 1  # benchmark_model: the last count= line ends the timed loop
    assert len(out.lines) == vr.OUTPUT_HEAD_LINES + vr.OUTPUT_TAIL_LINES
    assert out.lines[-1] == f"line {total - 1} count={total - 1}"
    out.cut = 1
    assert out.cut_note() == (f"benchmark_model's output was cut to fit (3 lines dropped between its first "
                              f"{vr.OUTPUT_HEAD_LINES} and last {vr.OUTPUT_TAIL_LINES}, 1 line longer than "
                              f"{vr.OUTPUT_LINE_MAX} bytes shortened): the figures come from what was kept")
    ort = vr._Output("onnxruntime_perf_test", t_start=0)
    for i, line in enumerate(["Session creation time cost: 1 s", "Total inference requests: 5", "x"]):
        ort.keep(line, arrived=i)
    assert ort.timed_end == 0 and ort.cut_note() is None  # ORT: the first summary line


def test_bounded_lines_cut_a_long_line_without_holding_it() -> None:
    stream = io.BytesIO(b"short\r\n" + b"x" * 50 + b"\nend")
    assert list(vr._bounded_lines(stream, limit=10)) == [("short", True), ("x" * 10, False), ("end", True)]


def test_shell_command_echoes_this_runs_markers_around_the_runner() -> None:
    markers = vr._Markers.new()
    assert markers.pg.startswith("__HILBENCH_PG=") and markers.pg.endswith(":")
    assert markers.pg[len("__HILBENCH_PG="):] == markers.rc[len("__HILBENCH_RC="):]
    cmd = vr._shell_command("A=1 ", "/d/run ner", ["--x=a b"], "/d/j dir", markers)
    assert cmd.startswith(f"echo {markers.pg}$$; mkdir -p -m 700 '/d/j dir' && cd '/d/j dir' && ")
    assert cmd.endswith(f"{{ A=1 '/d/run ner' '--x=a b' 2>&1 & pid=$!; echo {markers.pid}$pid; wait $pid; "
                        f"echo {markers.rc}$?; }}")


class _Phone:
    """A doctor's view of a phone whose reads fail where told."""

    serial = "S1"

    def __init__(self, fail: set[str]) -> None:
        self.fail = fail

    def ensure_runner(self, name: str, host: str) -> str:
        if "push" in self.fail:
            raise TransportError("push refused")
        return f"/data/local/tmp/{name}"

    def runner_env(self, device_path: str) -> str:
        return ""

    def shell(self, command: str, step: str | None = None, timeout: float | None = None) -> Any:
        what = "telemetry" if "@@battery" in command else "cores" if "cpuinfo_max_freq" in command else "help"
        if what in self.fail:
            raise TransportError(f"{what} unreadable")
        text = {"help": "usage: ... version: 2.16", "cores": "cpu0 1800000\ncpu4 2800000\n", "telemetry": ""}[what]
        return SimpleNamespace(code=1, stdout=text)


def _target(**adb: Any) -> Target:
    return Target(name="p", transport="adb", adb=ADBSettings(**adb))


def test_doctor_thermal_unreadable_gives_one_warning_and_no_power_source() -> None:
    checks = doctor._thermal_and_power_checks(_Phone({"telemetry"}), _target())  # type: ignore[arg-type]
    assert [(c.name, c.status, c.fix) for c in checks] == [
        ("thermal status", "warn", "dumpsys thermalservice is not readable")]
    ok = doctor._thermal_and_power_checks(_Phone(set()), _target())  # type: ignore[arg-type]
    assert [(c.name, c.status, c.detail) for c in ok] == [("thermal status", "ok", "thermal status unknown"),
                                                          ("power source", "ok", "on battery")]


def test_doctor_runner_and_cores_checks_when_reads_fail() -> None:
    target = _target(benchmark_model="/h/bm", big_cores=(4,))
    bad = doctor._runner_check(_Phone({"push"}), target, "benchmark_model", "arm64-v8a")  # type: ignore[arg-type]
    assert (bad.status, bad.detail, bad.fix) == ("fail", "push refused", "rebuild benchmark_model for arm64-v8a")
    good = doctor._runner_check(_Phone(set()), target, "benchmark_model", "arm64-v8a")  # type: ignore[arg-type]
    assert (good.status, good.detail) == ("ok", "/data/local/tmp/benchmark_model (version 2.16)")
    unset = doctor._runner_check(_Phone(set()), target, "onnxruntime_perf_test", "")  # type: ignore[arg-type]
    assert (unset.status, unset.detail) == ("warn", "not configured") and "the phone" in unset.fix
    cores = doctor._cores_check(_Phone({"cores"}), target)  # type: ignore[arg-type]
    assert (cores.status, cores.fix) == ("warn", "cpufreq is not readable")
    named = doctor._cores_check(_Phone(set()), target)  # type: ignore[arg-type]
    assert (named.status, named.detail) == ("ok", "big [4] (2800 MHz), others [0]")
