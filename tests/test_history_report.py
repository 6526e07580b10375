"""hilbench report --history: the nightly team's page, one self-contained HTML file, opened in a real
headless browser (Debian's chromium) like the buyer's report (tests/test_report.py)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from support import fake_lab
from support.helpers import missing_in_ci

from harness import open_store
from harness.cli import main
from harness.report.history_html import build_history_report

pytest.importorskip("ruptures")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERIES = "effnet-lite0-int8 @ fake-orin-nano [litert threads=4] p50"


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly") / "res"
    fake_lab.build(root, nights=24, n=200, eval_items=0, telemetry=False, regress_from=16, git=True)
    return root


@pytest.mark.slow
def test_the_page_is_self_contained_with_the_findings_and_git_refs(nightly, tmp_path, capsys):
    out = tmp_path / "nightly.html"
    assert main(["report", "--history", "--metric", "p50", "--store", str(nightly), "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from anywhere
    n_series = len(fake_lab.TARGETS) * len(fake_lab.MODELS)
    assert len(re.findall(r'src="data:image/png;base64,', text)) == n_series  # one trend per configuration
    # The regressed series comes first, with the refs on each side and the compare to run.
    first = re.search(r'<h2 id="s0">(.*?)</h2>', text)
    assert first and first.group(1) == SERIES
    before, after = fake_lab.git_ref(15), fake_lab.git_ref(16)
    assert f"hilbench compare git={before} git={after}" in text
    assert "REGRESSION" in text and "1 regression</b> in 1 series" in text
    assert text.count('<span class="tag bad">REGRESSED</span>') == 1


@pytest.mark.slow
def test_the_page_loads_in_a_headless_browser(nightly, tmp_path):
    if CHROMIUM is None:
        missing_in_ci("the headless-browser check of the history page", "chromium is not installed (apt-get install chromium)")
    quiet = [*QUIET, f"--user-data-dir={tmp_path / 'profile'}"]
    page = tmp_path / "check.html"
    text = build_history_report(open_store(nightly), ("p50",))
    n_series = len(fake_lab.TARGETS) * len(fake_lab.MODELS)
    probe = ("<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
             "const ok=imgs.filter(i=>i.complete&&i.naturalWidth>400).length;"
             "document.title='LOADED '+ok+'/'+imgs.length;});</script>")
    page.write_text(text.replace("</body>", probe + "</body>"), encoding="utf-8")
    proc = subprocess.run([CHROMIUM, *quiet, "--enable-logging=stderr", "--virtual-time-budget=5000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Uncaught" not in proc.stderr and "Not allowed to load" not in proc.stderr, proc.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", proc.stdout)
    assert title and title.group(1) == f"LOADED {n_series}/{n_series}", proc.stdout[:500]
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *quiet, "--window-size=1300,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_an_empty_store_says_so_and_options_are_checked(tmp_path, capsys):
    out = tmp_path / "h.html"
    assert main(["report", "--history", "--store", str(tmp_path / "none"), "--output", str(out)]) == 0
    assert "No nightly points" in out.read_text(encoding="utf-8")
    assert main(["report", "--history", "--session", "last", "--store", str(tmp_path)]) == 1
    assert "--session applies to the buyer's report" in capsys.readouterr().err
    assert main(["report", "--metric", "p50", "--store", str(tmp_path)]) == 1
    assert "--metric applies to --history" in capsys.readouterr().err
