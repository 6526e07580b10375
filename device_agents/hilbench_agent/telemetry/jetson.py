"""NVIDIA Jetson: tegrastats lines of every generation, INA3221/INA238 rails, GPU load/clock, nvpmodel, jetson_clocks.

tegrastats is parsed with an explicit token grammar, not a generic ``NAME x/y``
regex: on AGX Xavier the rails ``GPU``/``CPU`` share their names with the
temperatures ``GPU@``/``CPU@`` and the ``CPU [..]`` token, and ``RAM a/bMB``
looks like a rail. Temperatures, rails and clocks live in separate namespaces.

Sensor names and units (tegrastats):

==============================================  =====  ============================================
``mem.ram_used`` ``mem.ram_total``              MB
``mem.swap_used`` ``.swap_total`` ``.swap_cached``  MB  (absent on some lines: then not reported)
``mem.iram_used`` ``mem.iram_total``            KB     Nano/TX1 only
``mem.iram_lfb``                                KB     IRAM largest free block (``(lfb 252kB)``)
``mem.lfb_blocks``                              count  RAM largest free block, in blocks of
                                                       ``extra["block_size_mb"]`` (``(lfb 2x2MB)``)
``load.cpuN`` ``freq.cpuN``                     %/MHz  ``off`` core: None, reason "core offline"
``load.cpu``                                    %      mean of the online cores
``load.gpu`` ``freq.gpu``                       %/MHz  GR3D_FREQ; freq is max() over GPCs
``load.emc`` ``freq.emc``                       %/MHz  EMC_FREQ (the @freq needs root)
``freq.<ENGINE>``                               MHz    APE, VIC, NVENC... (``off``: None)
``load.mts_fg`` ``load.mts_bg``                 %
``temp.<name>``                                 C      as printed (``CPU``, ``tj``); -256: None;
                                                       PMIC (a constant 100/50): None
``power.<rail>`` / ``.avg`` / ``.max``          mW     cur / average since tegrastats started /
                                                       max (JetPack 7.2); NC rails skipped
``power.total``                                 mW     the board-input rail, or a sum (see
                                                       :func:`board_total`); None without rails
==============================================  =====  ============================================
"""

import re

from hilbench_agent.telemetry.fs import as_fs, read_int, read_text
from hilbench_agent.telemetry.reading import Reading

__all__ = [
    "parse_tegrastats_line", "parse_tegrastats", "board_total", "parse_jetson_clocks", "parse_nvpmodel",
    "parse_source_map", "find_ina_rails", "read_ina_rails", "read_ina_unassigned", "find_gpu", "read_gpu",
    "INA_SKIP_LABELS", "jetson_evidence", "clocks_pinned", "read_jetson_clocks_state",
]

SOURCE = "tegrastats"

_TS_RE = re.compile(r"^\s*(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s+")
_RAIL_VALUE_RE = re.compile(r"^(-?\d+)(?:mW)?/(-?\d+)(?:mW)?(?:/(-?\d+)(?:mW)?)?$")
_TEMP_RE = re.compile(r"^([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C(?:/(-?\d+(?:\.\d+)?)C)?$")
_USED_TOTAL_RE = re.compile(r"^(\d+)/(\d+)(MB|kB)(\(lfb)?$")
_IRAM_LFB_RE = re.compile(r"^(\d+)kB\)$")
_MEM_NOTE_RE = re.compile(r"^(\d+)(?:x(\d+))?(MB|kB)\)$")
_LOAD_FREQ_RE = re.compile(r"^(?:(\d+)%)?(?:@(\d+|\[[\d,\s]*\]))?$")
_ENGINE_RE = re.compile(r"^(?:(\d+)%@)?(\d+)$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: Memory pools: ``RAM a/bMB``, ``SWAP a/bMB``, ``IRAM a/bkB``.
_MEM_TOKENS = ("RAM", "SWAP", "IRAM")
#: Tokens followed by a ``load%@freq`` value: the memory controller and the GPU.
_CLOCK_TOKENS = ("EMC_FREQ", "EMC", "GR3D_FREQ", "GR3D", "GR3D2_FREQ")

#: tegrastats prints a constant for the PMIC die, not a measurement (100 on JP4, 50 later).
PMIC_NAMES = ("PMIC",)
#: Unconnected INA3221 channels and the INA3221 channel 7 sum are not rails.
INA_SKIP_LABELS = ("NC", "sum of shunt voltages")

#: Rail that measures the whole module/board input, in order of preference.
BOARD_INPUT_RAILS = ("VIN", "VDD_IN", "POM_5V_IN")


def board_total(rails):
    """``(mW, method, rails_used)`` for a dict of rail name -> mW, or ``(None, reason, [])``.

    * ``VIN`` (Thor carrier INA238), ``VDD_IN`` (TX2, Xavier NX, Orin NX/Nano),
      ``POM_5V_IN`` (Nano) measure the module input: used alone.
    * AGX Xavier and AGX Orin have no input rail: the total is the sum of the
      connected rails (what jtop reports). On AGX Orin ``VIN_SYS_5V0`` is only
      the 5 V I/O rail, not the total.
    Sub-rails are never added to an input rail.
    """
    if not rails:
        return None, "no power rails reported", []
    for name in BOARD_INPUT_RAILS:
        if name in rails and rails[name] is not None:
            return rails[name], "board input rail %s" % name, [name]
    used = sorted(n for n, v in rails.items() if v is not None and n not in INA_SKIP_LABELS)
    if not used:
        return None, "no readable rails", []
    return sum(rails[n] for n in used), "sum of module rails (no board-input rail on this module)", used


def _parse_load_freq(value):
    """``12%@204`` / ``0%`` / ``@0`` / ``39%@[305,0]`` -> (load or None, freq or None, gpcs or None)."""
    m = _LOAD_FREQ_RE.match(value)
    if not m or (m.group(1) is None and m.group(2) is None):
        return None
    load = float(m.group(1)) if m.group(1) is not None else None
    freq, gpcs = None, None
    if m.group(2) is not None:
        f = m.group(2)
        if f.startswith("["):
            gpcs = [int(x) for x in f.strip("[]").split(",") if x.strip()]
            freq = float(max(gpcs)) if gpcs else None
        else:
            freq = float(f)
    return load, freq, gpcs


class _Line(object):
    """The tokens of one tegrastats line and what has been read from them so far.

    ``out``: the readings in line order; ``rails``: rail name -> current mW (for
    :func:`board_total`); ``seen``: the units whose load was printed (``gpu``...).
    """

    __slots__ = ("toks", "n", "out", "rails", "seen")

    def __init__(self, toks):
        self.toks = toks
        self.n = len(toks)
        self.out = []
        self.rails = {}
        self.seen = set()

    def add(self, sensor, value, unit, reason=None, extra=None):
        """Append one tegrastats reading."""
        self.out.append(Reading(sensor, value, unit, SOURCE, reason, extra))


# --- one handler per token kind: ``handler(line, i, tok, nxt)`` -> the index after what it read, or None
# when ``toks[i]`` is not its kind. The handlers are tried in _TOKEN_HANDLERS order; the first that
# answers wins (the order matters: ``RAM``/``CPU``/``GPU`` also fit the later, looser kinds).

def _mem_token(line, i, tok, nxt):
    """``RAM a/bMB``, ``SWAP a/bMB``, ``IRAM a/bkB`` and the ``(lfb ..)``/``(cached ..)`` note after them."""
    if tok not in _MEM_TOKENS:
        return None
    mm = _USED_TOTAL_RE.match(nxt)
    if not mm:
        return None
    key = tok.lower()
    unit = "KB" if mm.group(3) == "kB" else "MB"
    line.add("mem.%s_used" % key, float(mm.group(1)), unit)
    line.add("mem.%s_total" % key, float(mm.group(2)), unit)
    if mm.group(4):
        return _iram_lfb(line, i + 2, key)
    return _mem_note(line, i + 2, key)


def _iram_lfb(line, i, key):
    """``IRAM 0/252kB(lfb 252kB)``: the bracket is glued to the value; ``toks[i]`` is ``252kB)``."""
    ml = _IRAM_LFB_RE.match(line.toks[i]) if i < line.n else None
    if not ml:
        return i
    line.add("mem.%s_lfb" % key, float(ml.group(1)), "KB", None, {"note": "largest free block"})
    return i + 1


def _mem_note(line, i, key):
    """``(lfb NxSMB)`` (RAM's largest free block) or ``(cached NMB)`` (swap) at ``toks[i]``, if there."""
    toks = line.toks
    if not (i + 1 < line.n and toks[i] in ("(lfb", "(cached")):
        return i
    mv = _MEM_NOTE_RE.match(toks[i + 1])
    if not mv:
        return i
    if toks[i] == "(cached":
        line.add("mem.%s_cached" % key, float(mv.group(1)), "MB")
    elif mv.group(2):
        line.add("mem.lfb_blocks", float(mv.group(1)), "count", None, {"block_size_mb": int(mv.group(2))})
    return i + 2


def _cpu_token(line, i, tok, nxt):
    """``CPU [12%@204,off,..]`` (per-core clocks) or the old ``cpu [a%,b%]@F`` (one shared clock)."""
    if tok not in ("CPU", "cpu") or not nxt.startswith("["):
        return None
    j, body = _cpu_bracket(line, i + 1)
    inner, _, tail = body[1:].partition("]")
    shared = float(tail[1:]) if tail.startswith("@") and _is_int(tail[1:]) else None
    loads = _cpu_cores(line, inner.split(","), shared)
    if loads:
        line.add("load.cpu", sum(loads) / len(loads), "%", None, {"online_cores": len(loads)})
    line.seen.add("CPU")
    return j + 1


def _cpu_bracket(line, j):
    """``(index of the last token, text)`` of the bracket that starts at ``toks[j]``, spaces dropped."""
    toks = line.toks
    parts = [toks[j]]
    # Test each new token, not the growing body (that was quadratic on a '[' never closed).
    while "]" not in parts[-1] and j + 1 < line.n:
        j += 1
        parts.append(toks[j])
    return j, "".join(parts)


def _cpu_cores(line, entries, shared):
    """``load.cpuN``/``freq.cpuN`` per bracket entry; returns the loads of the online cores."""
    loads = []
    for k, entry in enumerate(entries):
        entry = entry.strip()
        if entry == "off":
            line.add("load.cpu%d" % k, None, "%", "core offline")
            line.add("freq.cpu%d" % k, None, "MHz", "core offline")
            continue
        lf = _parse_load_freq(entry)
        if lf is None:
            line.add("load.cpu%d" % k, None, "%", "unparsed %r" % entry)
            continue
        load, freq, _ = lf
        if freq is None:
            freq = shared
        line.add("load.cpu%d" % k, load, "%", None if load is not None else "load not printed")
        line.add("freq.cpu%d" % k, freq, "MHz", None if freq is not None else "frequency not printed")
        if load is not None:
            loads.append(load)
    return loads


def _clock_token(line, i, tok, nxt):
    """``EMC_FREQ``/``GR3D_FREQ`` (and the old ``EMC``/``GR3D``) ``load%@MHz``; ``GR3D2_FREQ``: its clock only."""
    if tok not in _CLOCK_TOKENS:
        return None
    lf = _parse_load_freq(nxt)
    if tok == "GR3D2_FREQ":
        # Same load figure as GR3D_FREQ for the second GPC: keep only its clock.
        if lf is not None and lf[1] is not None:
            line.add("freq.gpu.gpc1", lf[1], "MHz")
        return i + 2
    if lf is None:
        return i + 1
    unit_name = "emc" if tok.startswith("EMC") else "gpu"
    load, freq, gpcs = lf
    line.seen.add(unit_name)
    line.add("load." + unit_name, load, "%", None if load is not None else "no load printed (GPU rail-gated)")
    line.add("freq." + unit_name, freq, "MHz", None if freq is not None else "frequency not printed (needs root)",
             {"gpcs_mhz": gpcs} if gpcs else None)
    return i + 2


def _mts_token(line, i, tok, nxt):
    """``MTS fg 0% bg 0%``."""
    if not (tok == "MTS" and nxt == "fg" and i + 4 < line.n + 1):
        return None
    toks = line.toks
    try:
        line.add("load.mts_fg", float(toks[i + 2].rstrip("%")), "%")
        line.add("load.mts_bg", float(toks[i + 4].rstrip("%")), "%")
    except (ValueError, IndexError):
        pass
    return i + 5


def _temp_token(line, i, tok, nxt):
    """``NAME@42.5C`` (``/43C``: a second figure, in extra); -256 (offline) and PMIC (a constant) are None."""
    mt = _TEMP_RE.match(tok)
    if not mt:
        return None
    name, v1, v2 = mt.group(1), float(mt.group(2)), mt.group(3)
    extra = {"temp_aux": float(v2)} if v2 is not None else None
    if v1 == -256:
        line.add("temp." + name, None, "C", "sensor offline (-256 C)", extra)
    elif name in PMIC_NAMES:
        extra = dict(extra or {}, raw=v1)
        line.add("temp." + name, None, "C", "PMIC@%gC is a constant placeholder, not a measurement" % v1, extra)
    else:
        line.add("temp." + name, v1, "C", None, extra)
    return i + 1


def _rail_token(line, i, tok, nxt):
    """``RAIL cur/avg`` or ``RAIL cur/avg/max`` (mW, the ``mW`` suffix optional); ``NC`` rails are skipped."""
    mr = _RAIL_VALUE_RE.match(nxt) if nxt else None
    if not (mr and _NAME_RE.match(tok) and tok not in _MEM_TOKENS):
        return None
    cur, avg, mx = float(mr.group(1)), float(mr.group(2)), mr.group(3)
    if tok != "NC":
        line.add("power." + tok, cur, "mW", None, {"negative": True} if cur < 0 else None)
        line.add("power.%s.avg" % tok, avg, "mW", None, {"note": "average since tegrastats started"})
        if mx is not None:
            line.add("power.%s.max" % tok, float(mx), "mW")
        line.rails[tok] = cur
    return i + 2


def _engine_token(line, i, tok, nxt):
    """``APE 150``, ``NVENC 1036``, ``VIC_FREQ 12%@115`` (clock, maybe load) or ``NVDEC off``."""
    if not (_NAME_RE.match(tok) and tok.isupper() and nxt):
        return None
    engine = tok.replace("_FREQ", "")
    if nxt == "off":
        line.add("freq." + engine, None, "MHz", "off (engine idle or clock-gated)")
        return i + 2
    me = _ENGINE_RE.match(nxt)
    if not me:
        return None
    line.add("freq." + engine, float(me.group(2)), "MHz")
    if me.group(1) is not None:
        line.add("load." + engine, float(me.group(1)), "%")
    return i + 2


#: Tried in this order on every token; see the comment above :func:`_mem_token`.
_TOKEN_HANDLERS = (_mem_token, _cpu_token, _clock_token, _mts_token, _temp_token, _rail_token, _engine_token)


def _read_token(line, i):
    """Read ``toks[i]`` (and what belongs to it) with the first handler that takes it; the next index."""
    tok = line.toks[i]
    nxt = line.toks[i + 1] if i + 1 < line.n else ""
    for handler in _TOKEN_HANDLERS:
        j = handler(line, i, tok, nxt)
        if j is not None:
            return j
    return i + 1


def _add_line_summary(line):
    """``load.gpu`` None when no GR3D token was printed, and ``power.total`` from the rails."""
    if "gpu" not in line.seen:
        line.add("load.gpu", None, "%", "GR3D_FREQ not printed (needs root, or absent on this JetPack)")
    total, how, used = board_total(line.rails)
    if total is None:
        line.add("power.total", None, "mW", "no power rails in this tegrastats line")
    else:
        line.add("power.total", total, "mW", None, {"method": how, "rails": used})


def parse_tegrastats_line(line):
    """Readings of one tegrastats line; ``[]`` for a line that is not tegrastats (a prompt, a blank line).

    A leading ``MM-DD-YYYY HH:MM:SS`` stamp goes to every reading's ``extra["timestamp"]``.
    """
    stamp = None
    m = _TS_RE.match(line)
    if m:
        stamp = m.group(1)
        line = line[m.end():]
    toks = line.split()
    if "RAM" not in toks and "cpu" not in toks and "CPU" not in toks:
        return []
    parsed = _Line(toks)
    i = 0
    while i < parsed.n:
        i = _read_token(parsed, i)
    _add_line_summary(parsed)
    if stamp:
        for r in parsed.out:
            r.extra = dict(r.extra, timestamp=stamp)
    return parsed.out


def parse_tegrastats(text):
    """Readings of every tegrastats line in ``text``; ``extra["line"]`` numbers the samples from 0."""
    out = []
    k = 0
    for line in text.splitlines():
        readings = parse_tegrastats_line(line)
        if not readings:
            continue
        for r in readings:
            r.extra = dict(r.extra, line=k)
        out.extend(readings)
        k += 1
    return out


# --- jetson_clocks --show -----------------------------------------------------------------------

# ``(?<!\w)``: a key starts at the start of a word (same matches; without it every start inside a long
# word scanned to its end: quadratic).
_KV_RE = re.compile(r"(?<!\w)(\w+)=(\S+)")


#: The most CPUs an ``Online CPUs`` range may name.
MAX_CPUS = 4096


def _is_int(text):
    """True for decimal digits that int() takes, at most 18 of them (str.isdigit() is True for a
    superscript two that int() refuses; int() of 4,301 digits raises on newer Pythons)."""
    return text.isdecimal() and len(text) <= 18


def parse_jetson_clocks(text):
    """``jetson_clocks --show``: CPU values are kHz, GPU and EMC are Hz; all reported in MHz.

    Readings: ``freq.cpuN`` / ``.min`` / ``.max`` (governor and ``idle_states`` in
    extra), ``online.cpuN``, ``freq.gpu`` ``freq.emc`` (+ ``.min``/``.max``),
    ``jetson_clocks.emc_freq_override``, ``fan.speed`` (PWM 0-255), ``nvpmodel.mode``
    (name in ``extra["text"]``), ``jetson.soc_family`` and ``jetson.machine`` (names,
    in ``extra["text"]``), and ``jetson_clocks.active`` (see :func:`clocks_pinned`).
    L4T 28's ``Gonvernor=`` typo is accepted.
    """
    show = _ClocksShow()
    for line in text.splitlines():
        line = line.strip()
        for pattern, handler in _CLOCKS_LINES:
            m = pattern.match(line)
            if m and handler(show, m) is not False:
                break
    if show.cpus:
        show.out.append(clocks_pinned(show.cpus, show.gpu, show.override, _CLOCKS_SRC, "jetson_clocks --show"))
    return show.out


_CLOCKS_SRC = "jetson_clocks"
#: ``(key, sensor suffix)`` of the frequencies on a ``jetson_clocks --show`` line.
_CLOCKS_FREQS = (("CurrentFreq", ""), ("MinFreq", ".min"), ("MaxFreq", ".max"))


class _ClocksShow(object):
    """What ``jetson_clocks --show`` said so far: the readings, and what :func:`clocks_pinned` compares
    (``cpus``: ``[(cpu, min, max)]`` of the online cores, ``gpu``: ``(min, max)``, the EMC override)."""

    def __init__(self):
        self.out = []
        self.cpus = []
        self.gpu = None
        self.override = None

    def add(self, sensor, value, unit="", reason=None, extra=None):
        """Append one jetson_clocks reading."""
        self.out.append(Reading(sensor, value, unit, _CLOCKS_SRC, reason, extra))


# --- one handler per kind of line: ``handler(show, match)``; False: not its line after all (try the next).

def _clocks_soc(show, m):
    """``SOC family:tegra210  Machine:jetson_tx1``: names, not numbers."""
    for sensor, name in (("jetson.soc_family", m.group(1)), ("jetson.machine", m.group(2))):
        if name:
            show.add(sensor, None, "", "a name, not a number (extra.text)", {"text": name})


def _clocks_cpu(show, m):
    """``cpu0: Online=1 Governor=schedutil MinFreq=.. MaxFreq=.. CurrentFreq=.. IdleStates: C1=1 ..`` (kHz)."""
    cpu, body = m.group(1), m.group(2)
    body, _, idle = body.partition("IdleStates:")
    kv = dict(_KV_RE.findall(body))
    gov = kv.get("Governor") or kv.get("Gonvernor")
    extra = {}
    if gov:
        extra["governor"] = gov
    if idle.strip():
        extra["idle_states"] = {k: int(v) if _is_int(v) else v for k, v in _KV_RE.findall(idle)}
    if "Online" in kv and _is_int(kv["Online"]):
        show.add("online." + cpu, int(kv["Online"]))
    for key, suffix in _CLOCKS_FREQS:
        if key in kv and _is_int(kv[key]):
            show.add("freq.%s%s" % (cpu, suffix), int(kv[key]) / 1000.0, "MHz", None,
                     extra or None if not suffix else None)
    if kv.get("Online", "1") != "0" and _is_int(kv.get("MinFreq", "")) and _is_int(kv.get("MaxFreq", "")):
        show.cpus.append((cpu, int(kv["MinFreq"]), int(kv["MaxFreq"])))


def _clocks_unit(show, m):
    """``GPU MinFreq=.. MaxFreq=.. CurrentFreq=..`` (Hz), ``EMC .. FreqOverride=1``, DLA/PVA engines."""
    if "Freq" not in m.group(2):
        return False
    unit, kv = m.group(1).lower(), dict(_KV_RE.findall(m.group(2)))
    for key, suffix in _CLOCKS_FREQS:
        if key in kv and _is_int(kv[key]):
            show.add("freq.%s%s" % (unit, suffix), int(kv[key]) / 1e6, "MHz")
    if "FreqOverride" in kv and _is_int(kv["FreqOverride"]):
        show.add("jetson_clocks.%s_freq_override" % unit, int(kv["FreqOverride"]))
        if unit == "emc":
            show.override = int(kv["FreqOverride"])
    if unit == "gpu" and _is_int(kv.get("MinFreq", "")) and _is_int(kv.get("MaxFreq", "")):
        show.gpu = (int(kv["MinFreq"]), int(kv["MaxFreq"]))
    return None


def _clocks_fan(show, m):
    """``Fan: PWM=0 speed=255``."""
    show.add("fan.speed", int(m.group(1)), "PWM")


def _clocks_mode(show, m):
    """``NV Power Mode: MAXN`` (the name only; nvpmodel -q prints the id)."""
    show.add("nvpmodel.mode", None, "", "mode id not printed; name in extra", {"text": m.group(1)})


def _clocks_online(show, m):
    """``Online CPUs: 0-3``: how many, and which in extra."""
    online = _expand_cpu_list(m.group(1))
    show.add("online.cpus", len(online), "count", None, {"text": m.group(1), "cpus": online})


#: ``(pattern, handler)`` tried in order on every stripped line; the first match whose handler takes it wins.
_CLOCKS_LINES = (
    (re.compile(r"^SOC family:\s*(\S+)(?:\s+Machine:\s*(\S+))?"), _clocks_soc),
    (re.compile(r"^(cpu\d+):\s*(.*)$"), _clocks_cpu),
    (re.compile(r"^(GPU|EMC|DLA\d+_\w+|PVA\d+_\w+):?\s+(.*)$"), _clocks_unit),
    (re.compile(r"^Fan:.*?speed=(\d+)"), _clocks_fan),
    (re.compile(r"^NV Power Mode:\s*(\S+)"), _clocks_mode),
    (re.compile(r"^Online CPUs:\s*(\S+)"), _clocks_online),
)


def clocks_pinned(cpus, gpu=None, emc_override=None, source="sysfs:cpufreq", method=""):
    """``jetson_clocks.active``: 1 when the clocks are pinned at their maximum as ``jetson_clocks`` leaves them.

    ``cpus``: ``[(name, min, max)]`` of the online cores; ``gpu``: ``(min, max)``
    or None; ``emc_override``: EMC ``FreqOverride`` or None. jetson_clocks raises
    every online core's and the GPU's minimum to its maximum and sets the EMC
    override; a governor at work leaves min below max. Value 1 (on) or 0 (off)
    with what is not pinned in ``extra["unpinned"]``; None without any CPU.
    """
    if not cpus:
        return Reading("jetson_clocks.active", None, "", source, "no cpufreq limits to compare")
    unpinned = ["%s min %g < max %g MHz" % (c, lo / 1000.0, hi / 1000.0) for c, lo, hi in cpus if lo < hi]
    checked = ["%d CPUs" % len(cpus)]
    if gpu is not None:
        checked.append("GPU")
        if gpu[0] < gpu[1]:
            unpinned.append("gpu min %g < max %g MHz" % (gpu[0] / 1e6, gpu[1] / 1e6))
    if emc_override is not None:
        checked.append("EMC override")
        if not emc_override:
            unpinned.append("EMC FreqOverride=0")
    extra = {"text": "off" if unpinned else "on", "checked": checked, "method": method or "scaling_min_freq == max"}
    if unpinned:
        extra["unpinned"] = unpinned[:8]
    return Reading("jetson_clocks.active", 0 if unpinned else 1, "", source, None, extra)


def read_jetson_clocks_state(root="/", source="sysfs:cpufreq"):
    """``jetson_clocks.active`` from sysfs, without running ``jetson_clocks --show`` (which needs root).

    Compares every online core's ``scaling_min_freq`` with its ``scaling_max_freq``
    (kHz) and the GPU devfreq ``min_freq`` with ``max_freq`` (Hz) where readable.
    """
    fs = as_fs(root)
    cpus = []
    base = "/sys/devices/system/cpu"
    for entry in fs.listdir(base):
        if not re.match(r"^cpu\d+$", entry) or not fs.isdir(base + "/" + entry + "/cpufreq"):
            continue
        online, _ = read_int(fs, base + "/" + entry + "/online")
        if online == 0:
            continue
        lo, _ = read_int(fs, base + "/" + entry + "/cpufreq/scaling_min_freq")
        hi, _ = read_int(fs, base + "/" + entry + "/cpufreq/scaling_max_freq")
        if lo is not None and hi is not None:
            cpus.append((entry, lo, hi))
    cpus.sort(key=lambda c: int(c[0][3:]))
    gpu = None
    _, devfreq = find_gpu(fs)
    if devfreq:
        lo, _ = read_int(fs, devfreq + "/min_freq")
        hi, _ = read_int(fs, devfreq + "/max_freq")
        if lo is not None and hi is not None:
            gpu = (lo, hi)
    return clocks_pinned(cpus, gpu, None, source, "sysfs: scaling_min_freq == scaling_max_freq per online core"
                         + (", GPU devfreq min_freq == max_freq" if gpu else ""))


def _expand_cpu_list(text):
    cpus = []
    for part in text.split(","):
        if "-" in part:
            a, _, b = part.partition("-")
            # At most MAX_CPUS per range: "0-999999999999" from a device is not a list to build.
            if _is_int(a) and _is_int(b) and int(b) - int(a) < MAX_CPUS:
                cpus.extend(range(int(a), int(b) + 1))
        elif _is_int(part):
            cpus.append(int(part))
    return cpus


# --- nvpmodel -----------------------------------------------------------------------------------

def parse_nvpmodel(text):
    """``nvpmodel -q`` (``NV Power Mode: NAME`` then the id) or ``nvpmodel -p --verbose``.

    Readings: ``nvpmodel.mode`` (id; name in ``extra["text"]``), ``nvpmodel.default``
    (id; name, all modes and the sysfs paths of each parameter in extra), and
    ``nvpmodel.<MODE>.<PARAM>.<KEY>`` for every numeric mode setting, in the
    file's own unit (CPU kHz, GPU/EMC Hz; CPU_ONLINE 0/1).
    """
    src = "nvpmodel"
    out = []
    lines = [ln.replace("NVPM VERB:", "").strip() for ln in text.splitlines()]
    modes = {}
    paths = {}
    param = None
    mode = None
    default = None
    for k, line in enumerate(lines):
        m = re.match(r"^NV Power Mode:\s*(\w+)", line)
        if m:
            ident = None
            if k + 1 < len(lines) and _is_int(lines[k + 1]):
                ident = int(lines[k + 1])
            out.append(Reading("nvpmodel.mode", ident, "", src, None if ident is not None else "mode id not printed",
                               {"text": m.group(1)}))
            continue
        m = re.match(r"^PM_CONFIG: DEFAULT=(\w+)\((\d+)\)", line)
        if m:
            default = (m.group(1), int(m.group(2)))
            continue
        m = re.match(r"^POWER_MODEL: ID=(\d+) NAME=(\w+)", line)
        if m:
            mode = m.group(2)
            modes[int(m.group(1))] = mode
            param = None
            continue
        m = re.match(r"^PARAM TYPE=(\w+) NAME=(\w+)", line)
        if m:
            param = m.group(2)
            mode = None
            continue
        parts = line.split()
        if mode and len(parts) == 3:
            pname, key, value = parts
            try:
                num = float(value)
            except ValueError:
                continue
            unit, reason = "", None
            if key.endswith("_FREQ"):
                unit = "kHz" if pname.startswith("CPU") else "Hz"
                if num == 2147483647 or (key == "MAX_FREQ" and num == 0):
                    # INT_MAX (and a 0 cap) mean "no limit", not a frequency.
                    num, reason = None, "no limit (%s)" % value
            out.append(Reading("nvpmodel.%s.%s.%s" % (mode, pname, key), num, unit, src, reason))
        elif param and len(parts) == 2 and parts[1].startswith("/"):
            paths["%s.%s" % (param, parts[0])] = parts[1]
    if default is not None:
        out.append(Reading("nvpmodel.default", default[1], "", src, None,
                           {"text": default[0], "modes": modes, "paths": paths}))
    return out


# --- tegrastats' own source map (/tmp/.tstats.txt, jtop issue 360) ------------------------------

def parse_source_map(text):
    """``FIELD,/sys/path`` lines grouped by board heading: ``{board: {field: path}}``."""
    boards = {}
    board = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("```"):
            continue
        m = re.match(r"^([A-Z0-9_]+),(/\S+)$", line)
        if m:
            boards.setdefault(board or "unknown", {})[m.group(1)] = m.group(2)
        else:
            board = line
    return boards


def source_map_readings(text):
    """One value-less reading per field: the map says where a value lives, not what it is."""
    out = []
    for board, fields in parse_source_map(text).items():
        for field, path in fields.items():
            root_only = path.startswith("/sys/kernel/debug/")
            out.append(Reading("tegrastats_source.%s" % field, None, "", "tegrastats-sources",
                               "source map only: no value", {"board": board, "path": path, "root_only": root_only}))
    return out


# --- INA3221 / INA238 rails from sysfs ----------------------------------------------------------

IIO_DRIVER_DIR = "/sys/bus/i2c/drivers/ina3221x"     # JetPack 4
HWMON_DRIVER_DIR = "/sys/bus/i2c/drivers/ina3221"    # JetPack 5 and 6
INA238_DRIVER_DIR = "/sys/bus/i2c/drivers/ina238"    # Thor carrier (VIN), power in uW


def find_ina_rails(root="/"):
    """Every labelled INA rail on the board: ``[dict(rail, kind, device, power, voltage, current, alarms)]``.

    * JetPack 4 (iio): ``ina3221x/<bus-addr>/iio:deviceN/rail_name_k``,
      ``in_power<k>_input`` (mW, precomputed), ``in_voltage<k>_input`` (mV),
      ``in_current<k>_input`` (mA).
    * JetPack 5/6 (hwmon): ``ina3221/<bus-addr>/hwmon/hwmonN/in<k>_label``,
      ``in<k>_input`` (bus mV), ``curr<k>_input`` (mA); power = mV x mA / 1000.
      Only channels with an ``in<k>_label`` and a ``curr<k>_input`` are rails:
      the driver also exposes ``in4..in6_input`` (shunt voltages of channels
      1-3), ``in7`` (sum of shunt voltages) and ``curr4_input`` (the summed
      current), which are not rails.
    * Thor (INA238): one rail per chip, ``power1_input`` (µW), ``in1_input``
      (bus mV), ``curr1_input`` (mA), named by the chip's ``label`` file or
      ``VIN``; ``in0_input`` is the shunt voltage and is not read.
    Channels labelled ``NC`` and the "sum of shunt voltages" are skipped.
    """
    fs = as_fs(root)
    rails = []
    for dev in fs.listdir(IIO_DRIVER_DIR):
        ddir = IIO_DRIVER_DIR + "/" + dev
        for sub in fs.listdir(ddir):
            if not sub.startswith("iio:device"):
                continue
            idir = ddir + "/" + sub
            for entry in fs.listdir(idir):
                m = re.match(r"^rail_name_(\d+)$", entry)
                if not m:
                    continue
                k = m.group(1)
                label, _ = read_text(fs, idir + "/" + entry)
                if not label or label in INA_SKIP_LABELS:
                    continue
                rails.append({"rail": label, "kind": "iio", "device": dev,
                              "power": idir + "/in_power%s_input" % k,
                              "voltage": idir + "/in_voltage%s_input" % k,
                              "current": idir + "/in_current%s_input" % k, "alarms": {}})
    for hdir, dev, entries in _ina_hwmon_dirs(fs, HWMON_DRIVER_DIR):
        for entry in sorted(entries):
            m = re.match(r"^in(\d+)_label$", entry)
            if not m:
                continue
            k = int(m.group(1))
            label, _ = read_text(fs, hdir + "/" + entry)
            if not label or label in INA_SKIP_LABELS or label.startswith("NC"):
                continue
            if "curr%d_input" % k not in entries and "power%d_input" % k not in entries:
                continue  # a label without current or power (the shunt sum) is not a rail
            rails.append(_hwmon_rail(hdir, dev, entries, k, label, "hwmon"))
    for hdir, dev, entries in _ina_hwmon_dirs(fs, INA238_DRIVER_DIR):
        if "power1_input" not in entries and "curr1_input" not in entries:
            continue
        label, _ = read_text(fs, hdir + "/label")
        rails.append(_hwmon_rail(hdir, dev, entries, 1, label or "VIN", "ina238"))
    return rails


def _ina_hwmon_dirs(fs, driver):
    """``(hwmon_dir, device, set of file names)`` for every chip bound to ``driver``."""
    for dev in fs.listdir(driver):
        parent = driver + "/" + dev + "/hwmon"
        for hw in fs.listdir(parent):
            hdir = parent + "/" + hw
            yield hdir, dev, set(fs.listdir(hdir))


def _hwmon_rail(hdir, dev, entries, k, name, kind):
    alarms = {}
    for a in ("crit_alarm", "max_alarm"):
        if "curr%d_%s" % (k, a) in entries:
            alarms[a] = "%s/curr%d_%s" % (hdir, k, a)
    return {"rail": name, "kind": kind, "device": dev,
            "voltage": "%s/in%d_input" % (hdir, k) if "in%d_input" % k in entries else None,
            "current": "%s/curr%d_input" % (hdir, k) if "curr%d_input" % k in entries else None,
            "power": "%s/power%d_input" % (hdir, k) if "power%d_input" % k in entries else None,
            "alarms": alarms}


_RAW_UNITS = (("in", "mV"), ("curr", "mA"), ("power", "uW"))


def read_ina_unassigned(root="/", rails=None, source="sysfs:ina3221"):
    """The channel files of INA chips that no rail claims, as raw readings (recorded trees only).

    A recorded listing may hold a chip's alarm and input files without the
    ``in<k>_label`` that names a rail (the alumet dump is truncated before
    them). They are reported as ``ina.<device>.<file>`` in the file's own unit,
    never as ``power.*``/``voltage.*``: without a label there is no rail, and
    the shunt and sum channels are not rails at all.
    """
    fs = as_fs(root)
    if rails is None:
        rails = find_ina_rails(fs)
    claimed = set()
    for rail in rails:
        claimed.update(p for p in (rail.get("power"), rail.get("voltage"), rail.get("current")) if p)
        claimed.update(rail.get("alarms", {}).values())
    out = []
    for driver in (HWMON_DRIVER_DIR, INA238_DRIVER_DIR):
        for hdir, dev, entries in _ina_hwmon_dirs(fs, driver):
            for entry in sorted(entries):
                m = re.match(r"^(in|curr|power)(\d+)_(input|crit_alarm|max_alarm)$", entry)
                if not m or hdir + "/" + entry in claimed:
                    continue
                unit = "" if m.group(3) != "input" else dict(_RAW_UNITS)[m.group(1)]
                value, reason = read_int(fs, hdir + "/" + entry)
                out.append(Reading("ina.%s.%s" % (dev, entry), value, unit, source, reason,
                                   {"note": "channel file with no labelled rail"}))
    return out


def read_ina_rails(root="/", rails=None, source="sysfs:ina3221", with_total=True):
    """``power.<rail>`` (mW), ``voltage.<rail>`` (mV), ``current.<rail>`` (mA), alarms, and ``power.total``.

    An unconnected channel that fails with EIO gives None readings, never a crash.
    """
    fs = as_fs(root)
    if rails is None:
        rails = find_ina_rails(fs)
    out = []
    powers = {}
    for rail in rails:
        name = rail["rail"]
        mv = ma = None
        if rail.get("voltage"):
            mv, reason = read_int(fs, rail["voltage"])
            out.append(Reading("voltage." + name, mv, "mV", source, reason))
        if rail.get("current"):
            ma, reason = read_int(fs, rail["current"])
            out.append(Reading("current." + name, ma, "mA", source, reason))
        mw, reason = None, "no power, voltage or current file"
        if rail.get("power"):
            raw, reason = read_int(fs, rail["power"])
            if raw is not None:
                mw = raw / 1000.0 if rail["kind"] == "ina238" else float(raw)
        elif rail.get("voltage") or rail.get("current"):
            if mv is not None and ma is not None:
                mw, reason = mv * ma / 1000.0, None
            else:
                reason = "voltage or current unreadable"
        if rail.get("power") or rail.get("voltage") or rail.get("current"):
            out.append(Reading("power." + name, mw, "mW", source, reason))
            powers[name] = mw
        for alarm, path in sorted(rail.get("alarms", {}).items()):
            v, reason = read_int(fs, path)
            out.append(Reading("alarm.%s.curr_%s" % (name, alarm), v, "", source, reason))
    if with_total and powers:
        total, how, used = board_total(powers)
        out.append(Reading("power.total", total, "mW", source, None if total is not None else how,
                           {"method": how, "rails": used} if total is not None else None))
    return out


# --- is this a Jetson? ----------------------------------------------------------------------------

def jetson_evidence(root="/"):
    """What says this is a Jetson (a list of short strings; empty: nothing does).

    ``/etc/nv_tegra_release`` (L4T), ``/sys/devices/soc0/family`` naming tegra,
    or the device tree: a ``compatible`` naming ``nvidia,tegra*`` or a model
    naming Jetson. Each is enough alone; containers often lack the first.
    """
    fs = as_fs(root)
    found = []
    if fs.exists("/etc/nv_tegra_release"):
        found.append("/etc/nv_tegra_release")
    family, _ = read_text(fs, "/sys/devices/soc0/family")
    if family and "tegra" in family.lower():
        found.append("soc0 family %s" % family)
    for base in ("/proc/device-tree", "/sys/firmware/devicetree/base"):
        compat, _ = read_text(fs, base + "/compatible")
        model, _ = read_text(fs, base + "/model")
        if compat and "nvidia,tegra" in compat:
            found.append("device tree compatible nvidia,tegra")
            break
        if model and "jetson" in model.lower():
            found.append("device tree model %s" % model.strip("\x00"))
            break
    return found


# --- GPU load and clock -------------------------------------------------------------------------

GPU_LOAD_PATHS = ("/sys/devices/platform/gpu.0/load", "/sys/devices/gpu.0/load",
                  "/sys/devices/17000000.gv11b/load", "/sys/devices/17000000.gp10b/load",
                  "/sys/devices/platform/17000000.gpu/load")
DEVFREQ_DIR = "/sys/class/devfreq"


def find_gpu(root="/"):
    """``(load_path or None, devfreq_dir or None)``: the devfreq node is the one whose of_node name says gpu."""
    fs = as_fs(root)
    load = None
    for p in GPU_LOAD_PATHS:
        if fs.exists(p):
            load = p
            break
    node = None
    for entry in fs.listdir(DEVFREQ_DIR):
        d = DEVFREQ_DIR + "/" + entry
        ofname, _ = read_text(fs, d + "/device/of_node/name")
        if (ofname and "gpu" in ofname) or "gpu" in entry or entry.endswith(("gv11b", "gp10b", "ga10b")):
            node = d
            break
    return load, node


def read_gpu(root="/", load_path=None, devfreq_dir=None, source="sysfs:gpu"):
    """``load.gpu`` (%; the file is in tenths of a percent) and ``freq.gpu`` (MHz; devfreq is in Hz)."""
    fs = as_fs(root)
    out = []
    if load_path:
        raw, reason = read_int(fs, load_path)
        out.append(Reading("load.gpu", raw / 10.0 if raw is not None else None, "%", source, reason))
    if devfreq_dir:
        raw, reason = read_int(fs, devfreq_dir + "/cur_freq")
        out.append(Reading("freq.gpu", raw / 1e6 if raw is not None else None, "MHz", source, reason))
    return out
