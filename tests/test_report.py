"""hilbench report: the ranking, a self-contained HTML file, an end-to-end report of the bundled
models on the local target, and the file opened in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import fake_lab
from support.helpers import missing_in_ci

from harness import open_store
from harness.cli import main
from harness.report.html import build_report, ranking_table

MODELS = Path(__file__).resolve().parents[1] / "harness" / "samples" / "models"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab") / "res"
    fake_lab.build(root, nights=1, n=300, eval_items=60)
    return root


@pytest.mark.slow
def test_ranking(lab):
    table = ranking_table(open_store(lab), deadline_ms=10.0)
    for _, t in table.groupby("model"):
        assert t["rank"].tolist() == list(range(1, len(t) + 1))
        meets = t["meets_deadline"].tolist()
        assert meets == sorted(meets, reverse=True)  # every target that meets the deadline comes first
        for flag in (True, False):
            part = t[t["meets_deadline"] == flag]
            assert part["p99_ms"].is_monotonic_increasing
    row = table.iloc[0]
    assert row["fps_per_usd"] == pytest.approx(row["fps"] / row["price_usd"])
    assert row["inf_per_j"] == pytest.approx(1000 / row["energy_mj"])
    assert table["stand_in"].all() and table["top1"].between(0.5, 1).all()
    orin_int8 = table[(table["model"] == "effnet-lite0-int8") & (table["target"] == "fake-orin-nano")].iloc[0]
    assert "90 fps" in orin_int8["budgets"] and orin_int8["meets_deadline"]


@pytest.mark.slow
def test_html_is_self_contained(lab):
    text = build_report(open_store(lab), deadline_ms=16.7)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from anywhere
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 4  # targets, distribution, pareto, energy
    for model in fake_lab.MODELS:
        assert f"<h2>{model}</h2>" in text
    assert "STAND-IN" in text and "must not decide a purchase" in text


@pytest.mark.slow
@pytest.mark.skipif(not (MODELS / "digits_eval.npz").is_file(), reason="sample models not built")
def test_report_of_the_bundled_models_end_to_end(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""
name = "e2e"
[[models]]
name = "digits-fp32"
path = "{MODELS / 'digits_cnn_fp32.onnx'}"
eval = {{ data = "{MODELS / 'digits_eval.npz'}", limit = 100 }}
[[models]]
name = "digits-int8"
path = "{MODELS / 'digits_cnn_int8.onnx'}"
eval = {{ data = "{MODELS / 'digits_eval.npz'}", limit = 100, reference = "digits-fp32" }}
[policy]
timed = 700
warmup = 10
""")
    store_dir = str(tmp_path / "res")
    assert main(["run", str(plan), "--store", store_dir, "--quiet"]) == 0
    out = tmp_path / "report.html"
    assert main(["report", "--store", store_dir, "--session", "last", "--output", str(out)]) == 0
    text = out.read_text()
    assert "<h2>digits-fp32</h2>" in text and "<h2>digits-int8</h2>" in text
    assert "meets the 33.3 ms deadline" in text and "STAND-IN" not in text
    assert re.search(r"<td>\d+\.\d%</td>", text)  # top-1 measured on the device


# Flags that keep Chromium off the network (this machine's is closed) and out of the user's profile.
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
def test_report_loads_in_a_headless_browser(lab, tmp_path):
    if CHROMIUM is None:
        missing_in_ci("the headless-browser check of the report", "chromium is not installed (apt-get install chromium)")
    quiet = [*QUIET, f"--user-data-dir={tmp_path / 'profile'}"]
    page = tmp_path / "check.html"
    text = build_report(open_store(lab))
    # The report has no script of its own; this copy gets one that checks every figure decoded.
    probe = ("<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
             "const ok=imgs.filter(i=>i.complete&&i.naturalWidth>200).length;"
             "document.title='LOADED '+ok+'/'+imgs.length;});</script>")
    page.write_text(text.replace("</body>", probe + "</body>"))
    proc = subprocess.run([CHROMIUM, *quiet, "--enable-logging=stderr", "--virtual-time-budget=5000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Uncaught" not in proc.stderr and "Not allowed to load" not in proc.stderr, proc.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", proc.stdout)
    assert title and title.group(1) == "LOADED 4/4", proc.stdout[:500]
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *quiet, "--window-size=1300,1600",
                    f"--screenshot={shot}", (tmp_path / "check.html").as_uri()], capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


@pytest.mark.slow
def test_stability_under_sustained_load_and_the_environment(tmp_path):
    # The Pi and the Orin ran a sustained phase (the Pi slows by a quarter and throttles); the N100 did not.
    store = fake_lab.build(tmp_path / "res", nights=1, n=300, eval_items=0,
                           sustained=("fake-pi5-coral", "fake-orin-nano"))
    table = ranking_table(store).set_index(["model", "target"])
    pi = table.loc[("effnet-lite0-int8", "fake-pi5-coral")]
    orin = table.loc[("effnet-lite0-int8", "fake-orin-nano")]
    n100 = table.loc[("effnet-lite0-int8", "fake-n100-box")]
    derived = store.run(pi["run_id"])["derived"]["sustained"]
    assert pi["stability"] == pytest.approx(derived["stability"]) and 1.2 < pi["stability"] < 1.3
    assert pi["time_to_throttle_s"] == pytest.approx(derived["time_to_throttle_s"])
    assert pi["throttle_cause"] == derived["throttle_cause"]
    assert pi["temp_rise_c"] == pytest.approx(derived["temp_rise_c"]) and pi["temp_rise_c"] > 10
    assert 0.97 < orin["stability"] < 1.03 and math.isnan(orin["time_to_throttle_s"])
    assert math.isnan(n100["stability"]) and math.isnan(n100["sustained_s"])
    # Environment: runtime version and CPU governor from the run's device facts; the adaptive stop's precision.
    assert pi["env"]["runtime_version"] == "2.14.0" and pi["env"]["cpu_governor"] == "ondemand"
    assert orin["timed_stop"] == "precision: median ±0.87% (asked ±1%)"
    text = build_report(store, plots=False)
    section = text[text.index("<h2>effnet-lite0-int8</h2>"):text.index("<h2>Environment")]
    assert "sustained: p50 last/first window" in section
    assert f"×{pi['stability']:.2f}" in section and f"throttled at {pi['time_to_throttle_s']:.0f} s" in section
    assert f"{pi['temp_rise_c']:+.1f} °C" in section and "no throttle" in section
    hint = "fake-n100-box: no sustained run: add [policy] sustained = { duration_s = 300 }"
    assert section.count(hint) == 1 and "fake-pi5-coral: no sustained" not in section
    env = text[text.index("<h2>Environment"):]
    assert "CPU governor" in env and "ondemand" in env and "performance" in env and "litert 2.14.0" in env
    assert "build=b0" in env and "median ±0.87% (asked ±1%)" in env


def test_git_ref_label_is_shown_with_the_run(tmp_path):
    # The documented convention: hilbench run --label git=$(git rev-parse --short HEAD)
    store = fake_lab.build(tmp_path / "res", nights=1, n=100, eval_items=0, telemetry=False,
                           labels={"git": "3f9a2c1"})
    env = build_report(store, plots=False).split("<h2>Environment")[1]
    assert env.count("build=b0 git=3f9a2c1") == len(fake_lab.TARGETS) * len(fake_lab.MODELS)
