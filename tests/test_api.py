"""``harness.__all__`` is the documented public API, read from the docs themselves.

The README's Python section shows the API in use (``harness.<name>``); README.md and docs/*.md name the
rest in code spans (``Store.summary()``, ``HilbenchError``). Each test here fails when the code or the docs
change alone: a name exported but documented nowhere, a name the README uses but ``harness`` does not
export, or a version that differs from pyproject's.
"""

from __future__ import annotations

import re
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.M | re.S)


def _readme_python_names() -> set[str]:
    """``harness.<name>`` in the README's Python code blocks."""
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "the README has no Python section (a ```python block)"
    return {name for block in blocks for name in re.findall(r"\bharness\.([A-Za-z_]\w*)", block)}


def _code_spans() -> set[str]:
    """The leading identifier of every inline code span and every ``harness.<name>`` in README.md and docs/."""
    assert DOCS, "no docs/*.md found"
    names: set[str] = set()
    for path in [README, *DOCS]:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"`([A-Za-z_]\w*)", text))
        names |= set(re.findall(r"\bharness\.([A-Za-z_]\w*)", text))
    return names


def test_all_names_exist_once_and_star_import_gives_exactly_them() -> None:
    assert len(harness.__all__) == len(set(harness.__all__))
    for name in harness.__all__:
        assert hasattr(harness, name), name
    namespace: dict[str, object] = {}
    exec("from harness import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(harness.__all__)


def test_the_readme_python_section_uses_only_exported_names() -> None:
    used = _readme_python_names()
    assert "open_store" in used  # the README's way in to the results
    assert used <= set(harness.__all__), f"the README uses names harness does not export: {used - set(harness.__all__)}"


def test_every_exported_name_is_documented() -> None:
    spans = _code_spans()
    undocumented = sorted(n for n in harness.__all__ if not n.startswith("__") and n not in spans)
    assert not undocumented, f"exported in harness.__all__ but named nowhere in README.md or docs/: {undocumented}"


def test_version_matches_pyproject() -> None:
    # (a regex, not tomllib: the host supports Python 3.10)
    found = re.search(r'^\[project\].*?^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
                      flags=re.M | re.S)
    assert found, "no version in pyproject.toml's [project] table"
    assert "__version__" in harness.__all__
    assert harness.__version__ == found.group(1)


def test_the_readme_lists_exactly_the_public_api() -> None:
    """The README's one-line list of the public API and ``harness.__all__`` are the same names."""
    found = re.search(r"^The public Python API is `harness.__all__`: (.*?)\n\(", README.read_text(encoding="utf-8"),
                      flags=re.M | re.S)
    assert found, "the README no longer says what the public API is"
    listed = re.findall(r"`([A-Za-z_]\w*)`", found.group(1))
    assert sorted(listed) == sorted(harness.__all__)
