"""The agent's program: read one job, report every phase, exit.

Usage (the host does this; a person rarely needs to)::

    python3 hilbench-agent.pyz --job job.json [--journal FILE]   # or --job - for stdin
    python3 hilbench-agent.pyz --probe                            # hello, then exit

Exit status: 0 the job finished, 2 the job failed and an ``error`` message says
why, 3 the agent itself broke (a bug: the traceback is on stderr).
"""

import argparse
import gc
import json
import os
import signal
import sys
import time
import traceback

from hilbench_agent import PROTOCOL_VERSION
from hilbench_agent.backends import canonical_name, get_backend_class, probe_all, validate_settings
from hilbench_agent.backends.base import generate_inputs, load_inputs
from hilbench_agent.probe import hello_fields, process_memory_kb
from hilbench_agent.protocol import AgentError, Channel

SAMPLE_BATCH = 5000
clock = time.monotonic_ns


def log(message):
    sys.stderr.write("hilbench-agent: %s\n" % message)
    sys.stderr.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hilbench-agent")
    parser.add_argument("--job", help="job file (JSON), or - to read it from stdin")
    parser.add_argument("--journal", help="append every protocol message to this file")
    parser.add_argument("--probe", action="store_true", help="say hello (device facts) and exit")
    args = parser.parse_args(argv)

    channel = Channel.from_stdout(args.journal)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        channel.send("hello", sensors=_sensors(), **hello_fields(probe_all()))
        if args.probe or not args.job:
            return 0
        job = _read_job(args.job)
        run_job(channel, job)
        return 0
    except AgentError as exc:
        channel.send("error", category=exc.category, message=exc.message)
        return 2
    except KeyboardInterrupt:
        channel.send("error", category="interrupted", message="the agent was interrupted")
        return 2
    except Exception as exc:
        traceback.print_exc()
        channel.send("error", category="agent", message="agent bug: %s: %s" % (exc.__class__.__name__, exc))
        return 3
    finally:
        channel.close()


def _sensors():
    """What telemetry sources this device has (and lacks), for ``hello``."""
    try:
        from hilbench_agent.telemetry.discover import discover
        found = discover(root="/", pid=os.getpid())
        described = found.describe()
        for source in found:
            source.close()
        return described
    except Exception as exc:  # sensors are optional; never fail the hello for them
        return {"sources": [], "missing": [], "error": str(exc).splitlines()[0] if str(exc) else repr(exc)}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt()


def _read_job(source):
    try:
        if source == "-":
            text = sys.stdin.readline()
        else:
            with open(source) as f:
                text = f.read()
        job = json.loads(text)
    except (IOError, OSError, ValueError) as exc:
        raise AgentError("agent", "cannot read the job: %s" % exc)
    if not isinstance(job, dict):
        raise AgentError("agent", "the job must be a JSON object")
    version = job.get("v", PROTOCOL_VERSION)
    if not isinstance(version, int) or version > PROTOCOL_VERSION:
        raise AgentError("agent", "job protocol version %r is newer than this agent's (%d): update the agent"
                         % (version, PROTOCOL_VERSION))
    return job


def run_job(channel, job):
    backend_name = canonical_name(job.get("backend", ""))
    settings = job.get("settings") or {}
    problems = validate_settings(backend_name, settings)
    if problems:
        raise AgentError("backend", "; ".join(problems))
    cls = get_backend_class(backend_name)
    found = cls.probe()
    if not found.get("available"):
        raise AgentError("backend", "backend %s is not available on this device: %s"
                         % (backend_name, found.get("reason", "unknown reason")))

    affinity = job.get("affinity")
    if affinity:
        if not hasattr(os, "sched_setaffinity"):
            raise AgentError("resource", "CPU affinity is not supported on this OS")
        try:
            os.sched_setaffinity(0, set(int(c) for c in affinity))
        except (OSError, ValueError) as exc:
            raise AgentError("resource", "cannot pin to CPUs %s: %s" % (affinity, exc))

    sampler = _start_telemetry(channel, job.get("telemetry"))
    try:
        result = _measure(channel, job, cls, backend_name, settings)
    finally:
        if sampler is not None:
            sampler.stop()
    if sampler is not None:
        result["telemetry"] = {"rate_hz": sampler.rate_hz}
    channel.send("result", status="ok", **result)


def _start_telemetry(channel, config):
    if not config or not config.get("enabled", True):
        return None
    try:
        from hilbench_agent.telemetry.discover import discover
        from hilbench_agent.telemetry.sampler import Sampler
    except ImportError as exc:
        log("telemetry unavailable: %s" % exc)
        return None
    sources = discover(root=config.get("root", "/"), pid=os.getpid(), meter_command=config.get("meter_command"),
                       board_rail=config.get("board_rail"))
    sampler = Sampler(list(sources), rate_hz=float(config.get("rate_hz", 10.0)),
                      emit=lambda readings: channel.send("telemetry", readings=readings), clock=clock)
    sampler.start()
    return sampler


def _measure(channel, job, cls, backend_name, settings):
    backend = cls()
    model_path = (job.get("model") or {}).get("path")
    mem_before = process_memory_kb()

    channel.send("phase", phase="load", event="begin")
    t0 = clock()
    backend.load(model_path, settings)
    load_ns = clock() - t0
    mem_loaded = process_memory_kb()
    channel.send("phase", phase="load", event="end", duration_ns=load_ns)

    specs = backend.input_specs()
    spec_inputs = job.get("inputs") or {}
    if not backend.needs_model:
        arrays, source = {}, "none (stand-in backend)"
    elif spec_inputs.get("file"):
        arrays, source = load_inputs(spec_inputs["file"], specs, spec_inputs.get("shapes")), "file"
    else:
        seed = int(spec_inputs.get("seed", 0))
        arrays = generate_inputs(specs, spec_inputs.get("shapes"), seed)
        source = "generated (seed %d)" % seed
    backend.set_inputs(arrays)
    input_info = [dict(s.to_dict(), used_shape=list(arrays[s.name].shape) if s.name in arrays else None)
                  for s in specs]
    invoke = backend.invoke

    channel.send("phase", phase="first", event="begin")
    t0 = clock()
    _invoke_checked(invoke)
    first_ns = clock() - t0
    channel.send("phase", phase="first", event="end", duration_ns=first_ns)

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        channel.send("phase", phase="warmup", event="begin")
        w_lat, w_start, w_info = warmup_loop(invoke, job.get("warmup") or {})
        channel.send("phase", phase="warmup", event="end", **w_info)
        _send_samples(channel, "warmup", w_lat, w_start)
        del w_lat, w_start

        timed = job.get("timed") or {}
        channel.send("phase", phase="timed", event="begin")
        if timed.get("rate_hz"):
            lat, starts, t_info = paced_loop(invoke, timed)
        else:
            lat, starts, t_info = timed_loop(invoke, timed)
        channel.send("phase", phase="timed", event="end", **t_info)
    finally:
        if gc_was_enabled:
            gc.enable()
    _send_samples(channel, "timed", lat, starts)
    mem_after = process_memory_kb()
    effective = backend.effective_settings()
    accuracy = None
    if job.get("eval") and backend.needs_model:
        # After the timed runs and the memory reading, so neither sees the evaluation set.
        from hilbench_agent.accuracy import run_accuracy
        accuracy = run_accuracy(channel, backend, specs, job["eval"])
    backend.close()
    return {
        "accuracy": accuracy,
        "backend": backend_name,
        "load_ns": load_ns,
        "first_ns": first_ns,
        "warmup": w_info,
        "timed": t_info,
        "inputs": input_info,
        "input_source": source,
        "effective_settings": effective,
        "memory": {
            "rss_before_load_kb": mem_before.get("VmRSS"),
            "rss_after_load_kb": mem_loaded.get("VmRSS"),
            "rss_after_kb": mem_after.get("VmRSS"),
            "hwm_kb": mem_after.get("VmHWM"),
        },
        "gc_disabled": True,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def _invoke_checked(invoke):
    try:
        invoke()
    except AgentError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise AgentError("backend", "inference failed: %s" % (text[0] if text else exc.__class__.__name__))


def _send_samples(channel, phase, latencies, starts):
    for i in range(0, len(latencies), SAMPLE_BATCH):
        chunk = starts[i:i + SAMPLE_BATCH]
        base = chunk[0]
        channel.send("sample", phase=phase, start=i, t0_ns=base,
                     latency_ns=latencies[i:i + SAMPLE_BATCH],
                     offset_ns=[s - base for s in chunk])


def _seconds_ns(value, default=None):
    if value is None:
        return default
    return int(float(value) * 1e9)


def warmup_loop(invoke, policy):
    """Warm up by count, by minimum time, or until the rolling median is stable.

    ``policy``: count, min_s, max_s, max_count, until_stable, window, tolerance.
    Returns (latencies, starts, info) with info's ``stop_reason`` saying why it ended.
    """
    count = int(policy.get("count") or 0)
    min_ns = _seconds_ns(policy.get("min_s"), 0)
    stable = bool(policy.get("until_stable"))
    window = int(policy.get("window") or 10)
    tolerance = float(policy.get("tolerance") or 0.02)
    max_count = int(policy.get("max_count") or (1000 if stable else max(count, 1000000)))
    max_ns = _seconds_ns(policy.get("max_s"), 60 * 10 ** 9 if stable else 10 ** 13)
    min_count = max(count, 2 * window) if stable else count
    lat = []
    starts = []
    if count == 0 and min_ns == 0 and not stable:
        return lat, starts, {"count": 0, "duration_ns": 0, "stop_reason": "none"}
    begin = clock()
    reason = "target"
    n = 0
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        lat.append(t1 - t0)
        starts.append(t0)
        n += 1
        elapsed = t1 - begin
        if n >= max_count:
            reason = "max_count"
            break
        if elapsed >= max_ns:
            reason = "max_time"
            break
        if n < min_count or elapsed < min_ns:
            continue
        if not stable:
            break
        if n % window == 0:
            now = _median(lat[-window:])
            before = _median(lat[-2 * window:-window])
            if before > 0 and abs(now - before) / float(before) <= tolerance:
                reason = "stable"
                break
    info = {"count": n, "duration_ns": clock() - begin, "stop_reason": reason}
    if stable:
        info.update(window=window, tolerance=tolerance)
    return lat, starts, info


def timed_loop(invoke, policy):
    """The measured loop: a monotonic ns clock around ``invoke`` alone, nothing else
    inside. Runs until both the count and the minimum time are reached, or the
    maximum time or hard cap ends it. With ``precision`` it is :func:`adaptive_loop`."""
    if policy.get("precision"):
        return adaptive_loop(invoke, policy)
    count = max(1, int(policy.get("count") or 1))
    min_ns = _seconds_ns(policy.get("min_s"), 0)
    max_ns = _seconds_ns(policy.get("max_s"), 10 ** 13)
    max_count = int(policy.get("max_count") or 10 ** 6)
    lat = []
    starts = []
    add_lat = lat.append
    add_start = starts.append
    n = 0
    begin = clock()
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        add_lat(t1 - t0)
        add_start(t0)
        n += 1
        if n >= max_count:
            reason = "max_count"
            break
        if t1 - begin >= max_ns:
            reason = "max_time"
            break
        if n >= count and t1 - begin >= min_ns:
            reason = "target"
            break
    duration = clock() - begin
    return lat, starts, {"count": n, "duration_ns": duration, "stop_reason": reason, "t0_ns": begin}


def adaptive_loop(invoke, policy):
    """Runs until the distribution-free 95% CI of the median is within +-``precision``
    (a fraction) of the median, after ``min_count`` runs (the host raises it to MLPerf's
    floors for the percentiles reported) and ``min_s``; ``max_count`` / ``max_s`` cap it.

    The timed region is the same bare ``clock(); invoke(); clock()`` as :func:`timed_loop`.
    The check (a sort of the samples so far) runs between two invokes, never inside
    one, and only every ``check_every`` runs (default: every 10% more samples, >= 25),
    so its cost per iteration stays small. ``stop_reason``: precision, max_count or max_time.
    """
    precision = float(policy["precision"])
    min_count = max(10, int(policy.get("min_count") or 1))
    min_ns = _seconds_ns(policy.get("min_s"), 0)
    max_ns = _seconds_ns(policy.get("max_s"), 60 * 10 ** 9)
    max_count = max(min_count, int(policy.get("max_count") or 10 ** 6))
    every = int(policy.get("check_every") or 0)
    lat = []
    starts = []
    add_lat = lat.append
    add_start = starts.append
    n = 0
    checks = 0
    half = None
    next_check = min_count
    begin = clock()
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        add_lat(t1 - t0)
        add_start(t0)
        n += 1
        if n >= max_count:
            reason = "max_count"
            break
        if t1 - begin >= max_ns:
            reason = "max_time"
            break
        if n >= next_check and t1 - begin >= min_ns:
            checks += 1
            half = median_ci_halfwidth(lat)
            if half is not None and half <= precision:
                reason = "precision"
                break
            next_check = n + (every or max(25, n // 10))
    duration = clock() - begin
    if reason != "precision":
        half = median_ci_halfwidth(lat)
    return lat, starts, {"count": n, "duration_ns": duration, "stop_reason": reason, "t0_ns": begin,
                         "precision": precision, "achieved_precision": half, "checks": checks,
                         "min_count": min_count}


def median_ci_halfwidth(values):
    """Half-width of the distribution-free 95% CI of the median, relative to the median.

    The CI is two order statistics, symmetric ranks ``lo`` and ``n - 1 - lo`` (0-based)
    with ``lo = floor(n/2 - 1.96 sqrt(n)/2) - 1`` from the normal approximation of
    Binomial(n, 1/2): equal to the exact ranks (``scipy.stats.quantile_test``) or one
    rank wider, never narrower (checked for n < 50,000). None when the sample is too
    small or the median is 0.
    """
    n = len(values)
    if n < 6:
        return None
    ordered = sorted(values)
    spread = 1.959964 * (n ** 0.5) / 2.0
    lo = int(n / 2.0 - spread) - 1
    hi = n - 1 - lo
    if lo < 0 or hi >= n:
        return None
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
    if median <= 0:
        return None
    return max(median - ordered[lo], ordered[hi] - median) / float(median)


def paced_loop(invoke, policy):
    """Invokes at a fixed frame rate, as a camera feeds them. A frame's deadline is
    the next frame's arrival; frames that arrive while an invoke is still running
    are dropped except the newest, which starts at once (late)."""
    rate = float(policy["rate_hz"])
    period = int(1e9 / rate)
    count = max(1, int(policy.get("count") or 1))
    min_ns = _seconds_ns(policy.get("min_s"), 0)
    max_ns = _seconds_ns(policy.get("max_s"), 10 ** 13)
    max_count = int(policy.get("max_count") or 10 ** 6)
    lat = []
    starts = []
    misses = dropped = 0
    max_queue = 0
    n = 0
    begin = clock()
    arrival = begin
    sleep = time.sleep
    while True:
        now = clock()
        if now < arrival:
            wait = arrival - now
            if wait > 1500000:
                sleep((wait - 1000000) / 1e9)
            while clock() < arrival:
                pass
        t0 = clock()
        invoke()
        t1 = clock()
        lat.append(t1 - t0)
        starts.append(t0)
        n += 1
        if t0 - arrival > max_queue:
            max_queue = t0 - arrival
        if t1 > arrival + period:
            misses += 1
        arrival += period
        if t1 > arrival:
            behind = (t1 - arrival) // period
            dropped += behind
            arrival += behind * period
        if n >= max_count:
            reason = "max_count"
            break
        if t1 - begin >= max_ns:
            reason = "max_time"
            break
        if n >= count and t1 - begin >= min_ns:
            reason = "target"
            break
    duration = clock() - begin
    return lat, starts, {
        "count": n, "duration_ns": duration, "stop_reason": reason, "t0_ns": begin,
        "rate_hz": rate, "period_ns": period, "deadline_misses": misses, "dropped_frames": dropped,
        "achieved_fps": (n - 1) / ((starts[-1] - starts[0]) / 1e9) if n > 1 and starts[-1] > starts[0] else None,
        "max_queue_ns": max_queue,
    }


def _median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0
