"""Plots: every kind from a fake lab store as PNG and SVG, the Pareto front by hand, empty stores."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from support import fake_lab

from harness.cli import main
from harness.report.plots import (
    distribution_figure,
    history_figure,
    pareto_figure,
    pareto_front,
    plot,
    targets_figure,
    timeline_figure,
    trend_figure,
)
from harness.store import Store


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab") / "res"
    fake_lab.build(root, nights=1, n=300, eval_items=60)
    return root


def test_pareto_front_by_hand():
    # (latency, accuracy): b is beaten by a (faster, more accurate); d ties c's latency but is better.
    lat = [1.0, 2.0, 3.0, 3.0, 5.0]
    acc = [0.70, 0.60, 0.75, 0.80, 0.79]
    assert pareto_front(lat, acc) == [0, 3]
    assert pareto_front([1, 2, 3], [0.5, 0.6, 0.7]) == [0, 1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pareto", "distribution", "timeline", "targets", "energy"])
def test_every_kind_as_png_and_svg(lab, tmp_path, kind, capsys):
    png, svg = tmp_path / f"{kind}.png", tmp_path / f"{kind}.svg"
    assert main(["plot", kind, "--store", str(lab), "--output", str(png)]) == 0
    assert main(["plot", kind, "--store", str(lab), "--output", str(svg)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert ET.parse(svg).getroot().tag.endswith("svg")


def test_figures_hold_the_data(lab):
    store = Store(lab)
    fig = plot(store, "pareto")
    ax = fig.axes[0]
    assert len(ax.collections) == len(fake_lab.TARGETS)  # one scatter per target
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(fake_lab.TARGETS) * len(fake_lab.MODELS)
    assert "accuracy" in ax.get_ylabel()
    fig = plot(store, "distribution")
    assert len(fig.axes[0].get_yticklabels()) == len(fake_lab.TARGETS) * len(fake_lab.MODELS)
    fig = plot(store, "timeline", run_id="r000-0-06")
    labels = [t.get_text() for ax in fig.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]
    assert any("temp.cpu" in t for t in labels) and "throttling reported (flag set)" in labels


def test_empty_store_and_bad_output(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()  # a store folder that holds nothing yet (one that does not exist is an error: test_bad_inputs.py)
    assert main(["plot", "pareto", "--store", str(empty), "--output", str(tmp_path / "p.png")]) == 0
    assert main(["plot", "distribution", "--store", str(empty), "--output", str(tmp_path / "p.pdf")]) == 1
    assert ".png or .svg" in capsys.readouterr().err


def _spans(ax):
    """x ranges (data units) of the shaded spans on ``ax``."""
    out = []
    for p in ax.patches:
        xy = np.asarray(p.get_xy())
        xs = xy[:, 0] if xy.ndim == 2 else np.array([p.get_x(), p.get_x() + p.get_width()])
        out.append((float(xs.min()), float(xs.max())))
    return out


def _legend_texts(fig):
    return [t.get_text() for ax in fig.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]


@pytest.mark.slow
def test_timeline_shades_only_throttle_flags_that_are_set_and_every_derived_event(tmp_path):
    # The fake Pi reports throttle.raw and a sticky *_occurred bit > 0 from its first reading (as a Pi that
    # throttled once since boot does); only the soft_temp_limit now-bit, late in the run, is throttling.
    store = fake_lab.build(tmp_path / "res", nights=1, n=300, eval_items=0, sustained=("fake-pi5-coral",))
    run = store.run("r000-0-06")
    samples, tel = store.samples([run["run_id"]]), store.telemetry([run["run_id"]])
    assert (tel.loc[tel["sensor"] == "throttle.raw", "value"] > 0).all()
    t0 = samples["t_ns"].min()
    now_bit = tel[(tel["sensor"] == "throttle.soft_temp_limit") & (tel["value"] > 0)]
    first_flag_s = (now_bit["t_ns"].min() - t0) / 1e9
    fig = timeline_figure(run, samples, tel)
    spans = _spans(fig.axes[0])
    assert spans and min(a for a, _ in spans) >= first_flag_s - 0.06  # nothing shaded before the flag
    assert "throttling reported (flag set)" in _legend_texts(fig)
    assert "sustained inference" in _legend_texts(fig)  # the sustained phase is on the timeline too
    # Derived events of any kind: a clock drop with a duration is a span from its start, a trip a line,
    # a kind this module has never heard of still shows.
    timed0 = (samples.loc[samples["phase"] == "timed", "t_ns"].min() - t0) / 1e9
    run = dict(run, derived={"throttle_events": [
        {"t_s": 1.0, "kind": "clock", "sensor": "freq.cpu0", "duration_s": 0.75, "phase": "timed"},
        {"t_s": 2.0, "kind": "trip", "sensor": "temp.cpu", "phase": "timed"},
        {"t_s": 2.5, "kind": "fan_stall", "phase": "timed"}]})
    fig = timeline_figure(run, samples, tel[~tel["sensor"].str.startswith("throttle.")])
    spans = _spans(fig.axes[0])
    assert any(abs(a - (timed0 + 1.0)) < 1e-6 and abs(b - (timed0 + 1.75)) < 1e-6 for a, b in spans)
    texts = _legend_texts(fig)
    assert {"clock dropped (throttled)", "trip point reached", "throttle: fan_stall"} <= set(texts)
    assert "throttling reported (flag set)" not in texts


def test_timeline_without_a_temperature_sensor_says_so(tmp_path):
    store = fake_lab.build(tmp_path / "res", nights=1, n=200, eval_items=0)
    run = store.run("r000-0-01")
    tel = store.telemetry([run["run_id"]])
    fig = timeline_figure(run, store.samples([run["run_id"]]), tel[tel["sensor"] == "power.total"])
    assert len(fig.axes) == 1  # no empty temperature axis
    assert any("no temperature sensor" in t.get_text() for t in fig.axes[0].texts)
    fig = timeline_figure(run, store.samples([run["run_id"]]), tel[tel["sensor"] != "freq.cpu"])
    assert len(fig.axes) == 2 and not any("temperature" in t.get_text() for t in fig.axes[0].texts)


def test_distribution_rows_from_different_sessions_are_told_apart(tmp_path):
    store = fake_lab.build(tmp_path / "res", nights=2, n=100, eval_items=0, telemetry=False)
    fig = plot(store, "distribution")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 2 * len(fake_lab.TARGETS) * len(fake_lab.MODELS) and len(set(labels)) == len(labels)
    assert any("2026-10-01" in x and "s000-0" in x for x in labels)


def test_budgets_are_drawn_or_said_to_be_off_the_scale():
    runs = pd.DataFrame([{"run_id": r, "model": r, "backend": "onnxruntime", "settings": "{}", "target": "local"}
                         for r in ("a", "b")])
    rng = np.random.default_rng(0)
    fast = pd.DataFrame({"run_id": ["a"] * 200 + ["b"] * 200,
                         "latency_ns": np.r_[rng.normal(0.4e6, 2e4, 200), rng.normal(0.9e6, 3e4, 200)]})
    ax = distribution_figure(runs, fast).axes[0]
    assert not any(line.get_linestyle() == "--" for line in ax.lines)
    assert any(t.get_text().startswith("all runs under 11 ms") for t in ax.texts)
    slow = fast.assign(latency_ns=fast["latency_ns"] * 25)  # 10..23 ms: 11 and 16 and 33 ms all within reach
    ax = distribution_figure(runs, slow).axes[0]
    assert sum(1 for line in ax.lines if line.get_linestyle() == "--") == 3
    assert not any(t.get_text().startswith("all runs") for t in ax.texts)
    # The targets figure: every model's axis either draws the 33 ms line or says all runs are under it.
    table = pd.DataFrame([{"model": "m", "target": "t", "run_id": "a", "p50_ms": 7.0, "p99_ms": 9.0}])
    ax = targets_figure(table).axes[0]
    xs = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    assert 33.3 not in xs and 11.1 in xs
    assert any(t.get_text() == "all runs under 16 ms" for t in ax.texts)


def test_trend_legend_sits_below_the_series(tmp_path):
    points = pd.DataFrame([{"night": f"2026-10-{d:02d}", "series": f"series {k}", "value": 10 + k, "unit": "ms"}
                           for d in range(1, 11) for k in range(6)])
    fig = trend_figure(points, pd.DataFrame(columns=["series", "night", "change"]))
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_legend().get_window_extent().y1 <= ax.get_window_extent().y0


def test_pareto_labels_of_close_points_do_not_overlap():
    rows = []
    for target, dx in (("board-a", 0.0), ("board-b", 0.15)):
        for model, (lat, acc) in {"mobilenet-v2-fp32": (10, 0.72), "mobilenet-v2-fp16": (10.2, 0.719),
                                  "mobilenet-v2-int8": (10.4, 0.715), "resnet18-int8": (10.3, 0.70)}.items():
            rows.append({"target": target, "model": model, "backend": "onnxruntime", "settings": "{}",
                         "p50_ns": (lat + dx) * 1e6, "top1": acc - dx / 50})
    fig = pareto_figure(pd.DataFrame(rows))
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in fig.axes[0].texts]
    assert len(boxes) == len(rows)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)


#: A device's name with a screen clear, a window title (BEL), a colour, a bidi override, a C1 CSI, a NUL and
#: a formula that mathtext cannot parse.
_EVIL = "\x1b[2J\x1b]0;T\x07\x1b[31m\u202e\x9b\x00 $\\frac{$"


@pytest.mark.slow
def test_hostile_names_make_valid_svg_with_the_escapes_shown(tmp_path):
    import matplotlib

    from harness.report.plots import energy_figure, save, to_bytes

    rows = [{"target": "board" + _EVIL, "model": "model" + _EVIL, "backend": "ort" + _EVIL,
             "settings": '{"threads\\u001b": "4\\u0007"}', "p50_ns": (5 + i) * 1e6, "top1": 0.7 + i / 100,
             "run_id": f"r{i}", "session_id": "s" + _EVIL, "started_at": None} for i in range(2)]
    data = pd.DataFrame(rows)
    table = data.assign(p50_ms=[5.0, 6.0], p99_ms=[7.0, 8.0], energy_mj=[1.0, 2.0], price_usd=[10.0, np.nan])
    samples = pd.DataFrame({"run_id": ["r0"] * 50 + ["r1"] * 50, "latency_ns": np.linspace(4e6, 9e6, 100),
                            "phase": ["timed"] * 100, "t_ns": np.arange(100) * 1_000_000})
    tel = pd.DataFrame({"t_ns": [0, 50_000_000], "sensor": ["temp.cpu" + _EVIL, "freq.cpu" + _EVIL],
                        "value": [50.0, 1500.0], "unit": ["C", "MHz"], "source": ["x", "y"]})
    run = dict(rows[0], derived={"throttle_events": [{"t_s": 0.01, "kind": "odd" + _EVIL}]})
    points = pd.DataFrame([{"night": f"2026-10-{d:02d}", "series": "s" + _EVIL, "value": 10.0 + d, "unit": "ms" + _EVIL}
                           for d in range(1, 6)])
    changes = pd.DataFrame([{"series": "s" + _EVIL, "night": "2026-10-03", "change": 0.1, "git_after": "g" + _EVIL}])
    findings = pd.DataFrame([{"index": 2, "kind": "regression", "span": 1, "before": 11.0, "after": 13.0,
                              "nights_before": 2, "nights_after": 3, "change": 13 / 11 - 1,
                              "git_before": "a" + _EVIL, "git_after": "g" + _EVIL}])
    figures = {"pareto": lambda: pareto_figure(data), "distribution": lambda: distribution_figure(data, samples),
               "timeline": lambda: timeline_figure(run, samples.assign(run_id="r0"), tel),
               "targets": lambda: targets_figure(table), "energy": lambda: energy_figure(table),
               "trend": lambda: trend_figure(points, changes, title="t" + _EVIL),
               "history": lambda: history_figure(points, findings, title="t" + _EVIL)}
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text kept as text: what it says can be read back
        for kind, make in figures.items():
            svg = save(make(), tmp_path / f"{kind}.svg")
            text = svg.read_text(encoding="utf-8")
            ET.parse(svg)  # raises on a character XML does not allow
            for ch in ("\x1b", "\x07", "\x9b", "\u202e", "\x00"):
                assert ch not in text, (kind, ch)
            assert "\\x1b[2J" in text, kind  # the name is there, its escapes visible
            assert to_bytes(make(), "png")[:4] == b"\x89PNG"  # '$\frac{$' is text, not a formula to parse
