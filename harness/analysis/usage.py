"""A run's memory and CPU figures as ``runs`` columns, and as the lines ``hilbench show`` prints.

The agent measures them (``device_agents/hilbench_agent/memory.py``) and sends them in its result's
``memory`` and ``cpu`` objects, with the source of each figure and why any is missing. :func:`usage_columns`
turns a result into the run's columns; a figure a run lacks gets its reason in ``usage_missing``, so no
column is empty without saying why (an older agent, or a vendor runner that does not report it).

=====================  ==================================================================================
column                 what
=====================  ==================================================================================
``timed_peak_rss_kb``  peak RSS during the timed phase (KiB; ``result.memory.peak_basis`` says how exact)
``rss_growth_kb``      that peak less the RSS before the model was loaded
``cpu_user_s``         the agent process's user CPU seconds during the timed phase (all its threads)
``cpu_system_s``       ... and system CPU seconds
``cpu_busy_cores``     (user + system) / wall time of the timed phase: 1.0 is one core busy all the time
``footprint_kb``       macOS: the process's physical footprint after the timed phase
``footprint_growth_kb``  that footprint less the footprint before load
``unified_used_kb``    Jetson and macOS: memory in use on the device (CPU and GPU share it) after the timed
                       phase
``unified_growth_kb``  that less the same figure before load (a model's GPU buffers show here, not in RSS)
``usage_sources``      {figure: source}: rss, peak, cpu, footprint, unified (psutil, procfs:VmRSS, ps, ...)
``usage_missing``      {figure: why it is missing}
=====================  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["USAGE_COLUMNS", "FIGURES", "usage_columns", "format_usage", "asked_threads"]

#: The figures whose source (or reason for missing) every run records.
FIGURES = ("rss", "peak", "cpu", "footprint", "unified")
USAGE_COLUMNS = ("timed_peak_rss_kb", "rss_growth_kb", "cpu_user_s", "cpu_system_s", "cpu_busy_cores",
                 "footprint_kb", "footprint_growth_kb", "unified_used_kb", "unified_growth_kb", "usage_sources",
                 "usage_missing")


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


def _diff(a: int | None, b: int | None) -> int | None:
    return a - b if a is not None and b is not None else None


def _dict(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def usage_columns(result: Mapping[str, Any] | None, *, failed: bool = False) -> dict[str, Any]:
    """The run's usage columns from the agent's result (None or {} for a job that sent none)."""
    res = _dict(result)
    mem, cpu = _dict(res.get("memory")), _dict(res.get("cpu"))
    peak, before = _int(mem.get("timed_peak_rss_kb")), _int(mem.get("rss_before_load_kb"))
    footprint, unified = _int(mem.get("footprint_after_kb")), _int(mem.get("unified_after_kb"))
    out: dict[str, Any] = {
        "timed_peak_rss_kb": peak,
        "rss_growth_kb": _int(mem.get("growth_kb")) if _int(mem.get("growth_kb")) is not None else _diff(peak, before),
        "cpu_user_s": _float(cpu.get("user_s")),
        "cpu_system_s": _float(cpu.get("system_s")),
        "cpu_busy_cores": _float(cpu.get("busy_cores")),
        "footprint_kb": footprint,
        "footprint_growth_kb": _diff(footprint, _int(mem.get("footprint_before_load_kb"))),
        "unified_used_kb": unified,
        "unified_growth_kb": _diff(unified, _int(mem.get("unified_before_load_kb"))),
    }
    sources = {str(k): str(v) for k, v in _dict(mem.get("sources")).items() if isinstance(v, str)}
    missing = {str(k): str(v) for k, v in _dict(mem.get("missing")).items() if isinstance(v, str)}
    if isinstance(cpu.get("source"), str):
        sources["cpu"] = cpu["source"]
    elif isinstance(cpu.get("missing"), str):
        missing["cpu"] = cpu["missing"]
    if failed:
        why = "the job failed before the agent sent its figures"
    elif not res:
        why = "no result from the device"
    elif res.get("runner"):
        why = f"the vendor runner {res['runner']} does not report it"
    elif not mem.get("sources"):
        why = "not reported by this agent version (older than the memory/CPU sources)"
    else:
        why = "not reported"
    for figure in FIGURES:
        if figure not in sources:
            missing.setdefault(figure, why)
    if peak is None and "peak" in sources and mem.get("peak_basis"):
        missing.setdefault("timed_peak", str(mem["peak_basis"]))
    out["usage_sources"] = sources or None
    out["usage_missing"] = missing or None
    return out


def asked_threads(settings: Mapping[str, Any] | None) -> int | None:
    """The thread count a job's settings ask for (ONNX Runtime ``intra_op_threads``, LiteRT ``threads``), or
    None when they leave it to the runtime."""
    s = _dict(settings)
    for key in ("intra_op_threads", "threads", "num_threads"):
        v = s.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _mb(kb: Any) -> str:
    return f"{kb / 1024:.1f} MiB"


def format_usage(row: Mapping[str, Any]) -> list[str]:
    """``hilbench show``'s memory and CPU lines for one run (a ``runs`` row with JSON columns decoded)."""
    lines = []
    src = _dict(row.get("usage_sources"))
    miss = _dict(row.get("usage_missing"))
    if not src and not miss:  # a run stored before these columns
        hwm = _int(row.get("hwm_kb"))
        if hwm:
            lines.append(f"memory    peak RSS {_mb(hwm)} (before load {_mb(_int(row.get('rss_before_load_kb')) or 0)})")
        return lines
    mem = _dict(_dict(row.get("result")).get("memory"))

    def where(figure: str) -> str:
        return src.get(figure) or "missing: " + str(miss.get(figure) or "not reported")

    before, after_load = _int(row.get("rss_before_load_kb")), _int(row.get("rss_after_load_kb"))
    peak, growth = _int(row.get("timed_peak_rss_kb")), _int(row.get("rss_growth_kb"))
    parts = [f"before load {_mb(before)}" if before is not None else "before load -",
             f"after load {_mb(after_load)}" if after_load is not None else "after load -",
             f"timed peak {_mb(peak)}" if peak is not None else "timed peak -"]
    if growth is not None:
        parts.append(f"growth {growth / 1024:+.1f} MiB")
    lines.append(f"memory    RSS {', '.join(parts)}  (rss: {where('rss')}; peak: {where('peak')})")
    if peak is not None and isinstance(mem.get("peak_basis"), str):
        lines.append(f"  peak basis: {mem['peak_basis']}")
    hwm = _int(row.get("hwm_kb"))
    if hwm is not None:
        lines.append(f"  process high-water mark {_mb(hwm)}")
    none = []
    for figure, label in (("footprint", "footprint"), ("unified", "unified memory used")):
        value = _int(row.get(figure + "_kb" if figure == "footprint" else "unified_used_kb"))
        if value is not None:
            g = _int(row.get(figure + "_growth_kb"))
            lines.append(f"memory    {label} {_mb(value)}" + (f" ({g / 1024:+.1f} MiB over before load)"
                                                              if g is not None else "") + f"  ({where(figure)})")
        elif figure in miss:
            none.append(f"no {label.replace(' used', '')} ({miss[figure]})")
    if none:
        lines.append("memory    " + ", ".join(none))
    busy = _float(row.get("cpu_busy_cores"))
    user, system = _float(row.get("cpu_user_s")), _float(row.get("cpu_system_s"))
    if busy is not None and user is not None and system is not None:
        line = (f"cpu       {busy:.2f} busy cores during the timed runs (user {user:.2f} s, system {system:.2f} s)"
                f"  ({where('cpu')})")
        threads = asked_threads(row.get("settings"))
        if threads is not None and busy > threads + 0.5:
            line += f": more than the {threads} thread{'s' if threads > 1 else ''} the settings ask for"
        lines.append(line)
    else:
        lines.append(f"cpu       none ({where('cpu')})")
    return lines
