"""The agent's program: read one job, report every phase, exit.

Usage (the host does this; a person rarely needs to)::

    python3 hilbench-agent.pyz --job job.json [--journal FILE]   # or --job - for stdin
    python3 hilbench-agent.pyz --probe                            # hello, then exit

Exit status: 0 the job finished, 2 the job failed and an ``error`` message says
why, 3 the agent itself broke (a bug: the traceback is on stderr).
"""

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import time
import traceback

from hilbench_agent import PROTOCOL_VERSION
from hilbench_agent.backends import canonical_name, get_backend_class, probe_all, probe_some, validate_settings
from hilbench_agent.backends.base import generate_inputs, load_inputs, offload_problem, offload_verdict
from hilbench_agent.devicelock import DeviceLock, LockBusy, LockUnavailable, describe, held_s
from hilbench_agent.memory import JobUsage
from hilbench_agent.probe import hello_fields
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
    lock = None
    try:
        job = job_error = None
        if args.job and not args.probe:
            try:
                job = _read_job(args.job)
            except AgentError as exc:
                job_error = exc
        if job is not None:
            # The device's lock before anything that loads the device (the hello imports the runtime).
            lock = take_device_lock(channel, job)
        # A job needs only its own backend probed: importing every runtime would cost
        # hundreds of milliseconds per job on a small board. --probe probes them all.
        backends = probe_some([job.get("backend", "")]) if job is not None else probe_all()
        channel.send("hello", sensors=_sensors(), **hello_fields(backends))
        if job_error is not None:
            raise job_error
        if job is None:
            return 0
        run_job(channel, job)
        return 0
    except AgentError as exc:
        extra = {"offload": exc.offload} if getattr(exc, "offload", None) is not None else {}
        channel.send("error", category=exc.category, message=exc.message, **extra)
        return 2
    except KeyboardInterrupt:
        channel.send("error", category="interrupted", message="the agent was interrupted")
        return 2
    except Exception as exc:
        traceback.print_exc()
        channel.send("error", category="agent", message="agent bug: %s: %s" % (exc.__class__.__name__, exc))
        return 3
    finally:
        if lock is not None:
            lock.release()
        channel.close()


def take_device_lock(channel, job):
    """The device's lock for this job (docs/reliability.md, "the device lock"), waiting as the job's ``lock``
    says: ``wait_s`` (0: fail at once), ``setting`` (what set it, for the message) and ``owner`` (the host's
    side of the owner record). Sends ``lock`` messages: ``wait`` when the device is busy (again when the
    holder changes), ``acquired`` once it is ours. Raises AgentError("busy") when the wait ends first."""
    config = job.get("lock")
    if not isinstance(config, dict):
        config = {}
    try:
        wait_s = max(0.0, float(config.get("wait_s", 600.0)))
    except (TypeError, ValueError):
        raise AgentError("agent", "the job's lock.wait_s must be a number of seconds")
    owner = dict(config.get("owner") or {}) if isinstance(config.get("owner"), dict) else {}
    owner["run_id"] = job.get("job_id")
    lock = DeviceLock(owner)

    def on_wait(holder, waited_ns):
        channel.send("lock", event="wait", path=lock.path, holder=holder, held_s=held_s(holder), waited_ns=waited_ns,
                     wait_s=wait_s)

    try:
        got = lock.acquire(wait_s, on_wait)
    except LockUnavailable as exc:
        raise AgentError("resource", str(exc))
    except LockBusy as exc:
        lock.release()
        setting = str(config.get("setting") or "policy.lock_wait_s")[:40]
        if wait_s > 0:
            tail = "gave up after %d s (%s)" % (round(exc.waited_ns / 1e9), setting)
        else:
            tail = "not waiting (%s)" % setting
        raise AgentError("busy", "the device is in use by %s: %s" % (describe(exc.holder), tail))
    except BaseException:
        lock.release()
        raise
    channel.send("lock", event="acquired", path=got["path"], waited_ns=got["waited_ns"], waited_for=got["waited_for"])
    return lock


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
        result = _measure(channel, job, cls, backend_name, settings, sampler)
    finally:
        if sampler is not None:
            sampler.stop()
    if sampler is not None:
        result["telemetry"] = {"rate_hz": sampler.rate_hz, "sensors": getattr(sampler, "described", None),
                               "cpu_time_s": sampler.cpu_time_s, "overruns": sampler.overruns}
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
    rate_hz = float(config.get("rate_hz", 10.0))
    # tegrastats (the fallback for unreadable INA rails) prints at the sampler's rate, 1 to 10 lines a second.
    sources = discover(root=config.get("root", "/"), pid=os.getpid(), meter_command=config.get("meter_command"),
                       board_rail=config.get("board_rail"),
                       tegrastats_interval_ms=min(1000, max(100, int(round(1000.0 / rate_hz)))) if rate_hz > 0 else 1000)
    sampler = Sampler(list(sources), rate_hz=rate_hz,
                      emit=lambda readings: channel.send("telemetry", readings=readings), clock=clock)
    sampler.described = sources.describe()  # what this job's sampler found and lacks (its own root)
    sampler.start()
    return sampler


@contextlib.contextmanager
def _gc_paused():
    """The garbage collector off for a measured loop (a collection inside it would be timed), back on after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _bind_inputs(backend, job):
    """Generate or load the job's inputs and bind them; (input specs, what was bound, where it came from)."""
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
    return specs, input_info, source


def _timed_phase(channel, invoke, timed, usage, gpu_times=None):
    """The warm-up and the timed loop, garbage collector paused, with their samples sent; (warm-up info,
    timed info). The usage window spans the timed loop only. ``gpu_times`` (the backend's
    ``take_gpu_ns``) gives each loop's accelerator times, sent beside the host latencies."""
    take = gpu_times or _no_gpu_times
    with _gc_paused():
        channel.send("phase", phase="warmup", event="begin")
        w_lat, w_start, w_info = warmup_loop(invoke, timed["warmup"])
        w_gpu = _gpu_beside(take(), w_lat, w_info)
        channel.send("phase", phase="warmup", event="end", **w_info)
        _send_samples(channel, "warmup", w_lat, w_start, w_gpu)
        del w_lat, w_start, w_gpu
        usage.timed_begin()
        channel.send("phase", phase="timed", event="begin")
        if timed["timed"].get("rate_hz"):
            lat, starts, t_info = paced_loop(invoke, timed["timed"])
        else:
            lat, starts, t_info = timed_loop(invoke, timed["timed"])
        usage.timed_end()
        gpu = _gpu_beside(take(), lat, t_info)
        channel.send("phase", phase="timed", event="end", **t_info)
    _send_samples(channel, "timed", lat, starts, gpu)
    return w_info, t_info


def _sustained_phase(channel, invoke, job, temps, gates, gpu_times=None):
    """The sustained loop after the timed one (after its own cool-down gate, when the job has one); its info,
    or None when the job asks for none."""
    if not job.get("sustained"):
        return None
    take = gpu_times or _no_gpu_times
    if job.get("cooldown"):
        gates.append(cooldown_phase(channel, job["cooldown"], temps, "sustained"))
    take()  # nothing the cool-down gate did belongs to the sustained loop
    with _gc_paused():
        channel.send("phase", phase="sustained", event="begin")
        s_lat, s_starts, sustained = sustained_loop(invoke, job["sustained"])
        s_gpu = _gpu_beside(take(), s_lat, sustained)
        channel.send("phase", phase="sustained", event="end", **sustained)
    _send_samples(channel, "sustained", s_lat, s_starts, s_gpu)
    return sustained


def _no_gpu_times():
    return None


def _gpu_beside(gpu, latencies, info):
    """The accelerator times of one loop, one per host latency, each at most its host latency; None when the
    backend has none, or not one per invoke. Clamps in place and counts them in ``info["gpu_clamped"]``:
    a GPU interval measured between two events inside the host's timed call cannot be longer than it, so a
    longer one is clock skew between the two clocks, never GPU time to keep."""
    if gpu is None:
        return None
    if len(gpu) != len(latencies):
        info["gpu_ns_missing"] = "%d GPU times for %d invokes" % (len(gpu), len(latencies))
        return None
    clamped = 0
    for i, (g, lat) in enumerate(zip(gpu, latencies)):
        if g > lat:
            gpu[i] = lat
            clamped += 1
        elif g < 0:
            gpu[i] = 0
            clamped += 1
    info["gpu_clamped"] = clamped
    return gpu


def _measure(channel, job, cls, backend_name, settings, sampler=None):
    """Load, first inference, cool-down and idle baseline, warm-up and timed loop, sustained loop, accuracy:
    one job on ``backend_name``, every phase announced on ``channel``; the result message's fields."""
    backend = cls()
    model_path = (job.get("model") or {}).get("path")
    required = job.get("require_offload")
    if required is None:
        required = bool(settings.get("require_offload", False))
    if required:
        settings = dict(settings, require_offload=True)  # the backend asks its runtime for no CPU fallback
    usage = JobUsage()
    usage.before_load()

    channel.send("phase", phase="load", event="begin")
    # A backend that compiles or builds the model (a TensorRT engine, a compiled Core ML model) does it in
    # ``prepare``, timed apart: load_ns is the load of what it built (or found in its cache).
    t0 = clock()
    build = backend.prepare(model_path, settings, (job.get("inputs") or {}).get("shapes"))
    t1 = clock()
    backend.load(model_path, settings)
    load_ns = clock() - t1
    if build is not None:
        build = dict(build, duration_ns=t1 - t0)
    usage.after_load()
    channel.send("phase", phase="load", event="end", duration_ns=load_ns,
                 **({"build_ns": build["duration_ns"], "build_cache": build.get("cache")} if build else {}))

    specs, input_info, source = _bind_inputs(backend, job)
    invoke = backend.invoke
    # Where the nodes run, before anything is timed: a partly offloaded run that must not be fails here.
    offload = _offload(backend, False)
    if offload is not None:
        _check_offload(offload, required)

    channel.send("phase", phase="first", event="begin")
    t0 = clock()
    _invoke_checked(invoke)
    first_ns = clock() - t0
    first_gpu = backend.take_gpu_ns()
    first_gpu = min(first_gpu[0], first_ns) if first_gpu and len(first_gpu) == 1 else None
    channel.send("phase", phase="first", event="end", duration_ns=first_ns,
                 **({"gpu_ns": first_gpu} if first_gpu is not None else {}))

    # Before the timed runs: wait for the device to cool (between jobs too: each job passes here
    # before its timed phase), then an idle baseline. Both precede the warm-up, which re-primes
    # caches and clocks after the wait; nothing of either runs inside a timed loop.
    temps = TempReader(job, sampler)
    gates = []
    if job.get("cooldown"):
        gates.append(cooldown_phase(channel, job["cooldown"], temps, "timed"))
    idle = idle_phase(channel, job.get("idle_s"), sampler)

    backend.take_gpu_ns()  # the cool-down and idle phases ran nothing, but start each loop clean
    w_info, t_info = _timed_phase(channel, invoke, {"warmup": job.get("warmup") or {},
                                                    "timed": job.get("timed") or {}}, usage, backend.take_gpu_ns)
    memory, cpu = usage.figures()
    effective = backend.effective_settings()
    sustained = _sustained_phase(channel, invoke, job, temps, gates, backend.take_gpu_ns)
    if offload is None:
        # A runtime that tells placement only from a run (an older ONNX Runtime's profiler): after the measured
        # loops, in a session of its own, so nothing of it is timed.
        offload = _offload(backend, True) or offload_verdict(None, source="the backend gave no verdict after the run")
        _check_offload(offload, required)
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
        "build": build,
        "first_ns": first_ns,
        "first_gpu_ns": first_gpu,
        "warmup": w_info,
        "timed": t_info,
        "inputs": input_info,
        "input_source": source,
        "effective_settings": effective,
        "memory": memory,
        "cpu": cpu,
        "gc_disabled": True,
        "idle": idle,
        "cooldown": gates or None,
        "sustained": sustained,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "offload": offload,
    }


def _offload(backend, after_run):
    """The backend's offload verdict (None: ask again after the run); a failure to read it is a verdict with
    null counts saying why, never a failed run (require_offload then fails it for being unverifiable)."""
    try:
        return backend.offload(after_run)
    except AgentError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        return offload_verdict(None, source="reading where the nodes run failed: %s: %s"
                               % (exc.__class__.__name__, text[0] if text else ""))


def _check_offload(offload, required):
    """``require_offload``: a run the accelerator did not run whole fails (category backend), naming the first
    op left on the CPU; the error carries the verdict, so the failed run still stores it."""
    problem = offload_problem(offload) if required else None
    if problem:
        exc = AgentError("backend", problem)
        exc.offload = offload
        raise exc


def _invoke_checked(invoke):
    try:
        invoke()
    except AgentError:
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise AgentError("backend", "inference failed: %s" % (text[0] if text else exc.__class__.__name__))


def _send_samples(channel, phase, latencies, starts, gpu=None):
    for i in range(0, len(latencies), SAMPLE_BATCH):
        chunk = starts[i:i + SAMPLE_BATCH]
        base = chunk[0]
        extra = {"gpu_ns": gpu[i:i + SAMPLE_BATCH]} if gpu is not None else {}
        channel.send("sample", phase=phase, start=i, t0_ns=base,
                     latency_ns=latencies[i:i + SAMPLE_BATCH],
                     offset_ns=[s - base for s in chunk], **extra)


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


# --- cool-down gate, idle baseline, sustained mode --------------------------------------------------

#: Sources whose ``temp.*`` readings stand for the device's temperature (read by the cool-down gate).
TEMP_SOURCES = ("thermal", "hwmon", "edgetpu", "vcgencmd_temp")
#: Sources that measure power (an idle baseline is worth its seconds only with one of these, or a temperature).
POWER_SOURCES = ("rapl", "jetson_rails", "pmic", "meter", "powermetrics", "tegrastats")


def _usable_temp(sensor, value):
    # Jetson's PMIC zone is a constant (100 or 50 C), not a measurement; below -40 C is an offline sentinel.
    return value is not None and sensor.startswith("temp.") and "pmic" not in sensor.lower() and value > -40.0


class TempReader(object):
    """The device's temperature now: the hottest usable ``temp.*`` reading of its thermal sources.

    Uses the sampler's sources when telemetry runs (they are stateless sysfs reads, safe beside the
    sampler thread), else discovers them under the job's telemetry ``root``. ``read()`` -> C or None.
    """

    def __init__(self, job, sampler=None):
        self._job = job
        self._sources = None
        if sampler is not None:
            self._sources = [s for s in sampler.sources if _base_name(s) in TEMP_SOURCES]

    def _discover(self):
        try:
            from hilbench_agent.telemetry.discover import discover
            root = (self._job.get("cooldown") or {}).get("root") or (self._job.get("telemetry") or {}).get("root")
            found = discover(root=root or "/")
            self._sources = [s for s in found if _base_name(s) in TEMP_SOURCES]
        except Exception as exc:  # no sensors is a recorded fact, never a failed job
            log("cool-down gate: no temperature sources: %s" % exc)
            self._sources = []

    def read(self):
        if self._sources is None:
            self._discover()
        best = None
        for source in self._sources:
            try:
                readings = source.read()
            except Exception:
                continue
            for r in readings or ():
                if _usable_temp(r.sensor, r.value) and (best is None or r.value > best):
                    best = r.value
        return best


def _base_name(source):
    return getattr(source, "name", "").rstrip("0123456789")


def cooldown_gate(read_temp, config, sleep=time.sleep, now=None):
    """Wait until the device is at or below ``max_temp_c``, or its temperature stops falling, or
    ``max_wait_s`` passes. "Stops falling": it fell less than ``min_drop_c`` (0.5) over the last
    ``settle_s`` (10 s). Polls every ``poll_s`` (1 s). Returns the record of the wait::

        {"status": "below" | "stopped_falling" | "timeout" | "no_sensor", "waited_ns",
         "start_temp_c", "end_temp_c", "max_temp_c", "max_wait_s"}

    A timeout is not an error: the host stores it as a stability warning.
    """
    now = now or clock
    max_temp = float(config.get("max_temp_c", 50.0))
    max_wait_ns = _seconds_ns(config.get("max_wait_s"), 120 * 10 ** 9)
    settle_ns = _seconds_ns(config.get("settle_s"), 10 * 10 ** 9)
    poll_s = float(config.get("poll_s", 1.0))
    min_drop = float(config.get("min_drop_c", 0.5))
    begin = now()
    temp = read_temp()
    info = {"max_temp_c": max_temp, "max_wait_s": max_wait_ns / 1e9, "start_temp_c": temp}
    if temp is None:
        info.update(status="no_sensor", waited_ns=0, end_temp_c=None)
        return info
    history = [(begin, temp)]
    while True:
        t = now()
        if temp <= max_temp:
            status = "below"
            break
        if t - begin >= max_wait_ns:
            status = "timeout"
            break
        settled = [old for (ts, old) in history if t - ts >= settle_ns]
        if settled and settled[-1] - temp < min_drop:
            status = "stopped_falling"
            break
        sleep(max(0.0, min(poll_s, (begin + max_wait_ns - t) / 1e9)))
        reading = read_temp()
        if reading is not None:
            temp = reading
            history.append((now(), temp))
    info.update(status=status, waited_ns=now() - begin, end_temp_c=temp)
    return info


def cooldown_phase(channel, config, temps, before):
    """The cool-down gate as a ``cooldown`` phase (begin/end) ahead of the ``before`` phase."""
    channel.send("phase", phase="cooldown", event="begin", before=before)
    info = cooldown_gate(temps.read, config)
    info["before"] = before
    channel.send("phase", phase="cooldown", event="end", **info)
    return info


def idle_phase(channel, idle_s, sampler):
    """``idle_s`` seconds with the sampler running and no inference: the power/temperature baseline.

    Returns ``{"t0_ns", "t1_ns", "duration_ns"}`` (the host averages the readings in that window),
    ``{"skipped": why}`` when there is nothing to measure, or None when not asked for.
    """
    if not idle_s or float(idle_s) <= 0:
        return None
    if sampler is None:
        return {"skipped": "telemetry is off"}
    names = set(_base_name(s) for s in sampler.sources)
    if not names & set(POWER_SOURCES + TEMP_SOURCES) and not _hwmon_power(sampler.sources):
        return {"skipped": "no power or temperature sensor on this device"}
    channel.send("phase", phase="idle", event="begin")
    t0 = clock()
    time.sleep(float(idle_s))
    t1 = clock()
    channel.send("phase", phase="idle", event="end", duration_ns=t1 - t0, t0_ns=t0, t1_ns=t1)
    return {"t0_ns": t0, "t1_ns": t1, "duration_ns": t1 - t0}


def _hwmon_power(sources):
    for s in sources:
        for _, _, chans in getattr(s, "devices", None) or ():
            if any(c[0] == "power" for c in chans):
                return True
    return False


def sustained_loop(invoke, policy):
    """Sustained mode: invoke back to back for ``duration_s`` (default 60) and keep every latency.

    The same bare timed region as :func:`timed_loop`; the host cuts the samples into ``window_s``
    windows (stability, time to throttle) against the telemetry on the same clock.
    """
    duration_s = float(policy.get("duration_s") or 60.0)
    # timed_loop's bare region, bounded by time alone: minimum and maximum time are both the duration.
    lat, starts, info = timed_loop(invoke, {"count": 1, "min_s": duration_s, "max_s": duration_s,
                                            "max_count": int(policy.get("max_count") or 10 ** 7)})
    info["stop_reason"] = "duration" if info["stop_reason"] == "max_time" else info["stop_reason"]
    info.update(duration_s=duration_s, window_s=float(policy.get("window_s") or 5.0))
    return lat, starts, info
