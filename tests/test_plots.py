"""Plots: every kind from a fake lab store as PNG and SVG, the Pareto front by hand, empty stores."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from harness.cli import main
from harness.plots import pareto_front, plot
from harness.store import Store
from tests import fake_lab


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
    assert any("temp.cpu" in t for t in labels) and "throttling reported" in labels


def test_empty_store_and_bad_output(tmp_path, capsys):
    empty = tmp_path / "empty"
    assert main(["plot", "pareto", "--store", str(empty), "--output", str(tmp_path / "p.png")]) == 0
    assert main(["plot", "distribution", "--store", str(empty), "--output", str(tmp_path / "p.pdf")]) == 1
    assert ".png or .svg" in capsys.readouterr().err
