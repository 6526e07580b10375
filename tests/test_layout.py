"""The host package's layout: no import cycles among ``harness`` modules, the layering rules below, and a
README "Layout" table whose every path exists.

Every import statement counts, at module level or inside a function (a lazy import is still a dependency;
one that closes a cycle only works by the accident of import order). ``from P import name`` is an import of
the module ``P.name`` when there is one, else of ``P``; importing ``P.Q`` also runs ``P/__init__.py``, which
the graph leaves implicit (a package's ``__init__`` may re-export its own modules).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"

#: (importer prefix, forbidden imported prefixes, why). A prefix ``harness.x`` covers ``harness.x`` and
#: everything under it.
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("harness.errors", ("harness.",), "the error tree is the bottom layer"),
    ("harness.safetext", ("harness.",), "text made safe to print needs nothing else"),
    ("harness.files", ("harness.",), "file hashing needs nothing else"),
    ("harness.text", ("harness.",), "the shared text helpers need nothing else"),
    ("harness.agent", ("harness.config", "harness.run", "harness.transport", "harness.doctor", "harness.analysis",
                       "harness.report", "harness.cli", "harness.store"),
     "the agent's wire protocol and bundle sit below everything that talks to a device"),
    ("harness.prep", ("harness.config", "harness.run", "harness.transport", "harness.doctor", "harness.analysis",
                      "harness.report", "harness.cli"),
     "preparing inputs (variants, eval sets) needs no plan, device or results"),
    ("harness.config", ("harness.run", "harness.transport", "harness.doctor", "harness.report", "harness.cli"),
     "configuration is read before anything runs"),
    ("harness.runners", ("harness.config", "harness.run", "harness.transport", "harness.doctor", "harness.report",
                         "harness.cli"),
     "a vendor tool's output parser reads text, nothing more"),
    ("harness.analysis", ("harness.run", "harness.transport", "harness.doctor", "harness.report", "harness.cli"),
     "analysis reads the store, never a device"),
    ("harness.store", ("harness.config", "harness.run", "harness.transport", "harness.doctor", "harness.report",
                       "harness.cli", "harness.agent"),
     "the results store is read by analysis, it reads nothing above it"),
    ("harness.transport", ("harness.run", "harness.doctor", "harness.report", "harness.cli"),
     "a transport reaches a device; it knows nothing of sessions, doctor, reports or the CLI"),
    ("harness.doctor", ("harness.run", "harness.report", "harness.cli"), "doctor checks a target, outside any run"),
    ("harness.run", ("harness.report", "harness.cli"), "a session measures; it neither reports nor prints"),
    ("harness.report", ("harness.run", "harness.transport", "harness.doctor", "harness.cli"),
     "reports are made from the store"),
]


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    assert out, f"no modules found under {PACKAGE}"
    return out


def _resolve(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The longest harness module that ``name`` is or lies in (``harness.x.y.attr`` -> ``harness.x.y``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, dict[str, int]]:
    """harness module -> {imported harness module: line of the first such import}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_pkg) in modules.items():
        package = name if is_pkg else name.rpartition(".")[0]
        deps: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in modules else source)
            for target in targets:
                dep = _resolve(target, modules) if target.startswith("harness") else None
                if dep is not None and dep != name:
                    deps.setdefault(dep, node.lineno)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, {})):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _under(module: str, prefix: str) -> bool:
    if prefix.endswith("."):
        return module.startswith(prefix)
    return module == prefix or module.startswith(prefix + ".")


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert len(graph) >= 40, sorted(graph)
    # spot checks: a module-level import, a function-level import, a package re-export
    assert "harness.errors" in graph["harness.store"]
    assert "harness.prep.evalsets" in graph["harness.config.plan"]  # imported inside a function
    assert "harness.cli.app" in graph["harness.cli"]


def test_a_cycle_is_found() -> None:
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) is None


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)]
        pytest.fail("import cycle in harness/:\n  " + "\n  ".join(steps))


def test_layering() -> None:
    graph = import_graph()
    broken = []
    for module, deps in sorted(graph.items()):
        for importer, forbidden, why in RULES:
            if not _under(module, importer):
                continue
            for dep, line in sorted(deps.items()):
                if not _under(dep, importer) and any(_under(dep, f) for f in forbidden):
                    broken.append(f"{module} imports {dep} (line {line}): {why}")
        for dep, line in sorted(deps.items()):
            if _under(dep, "harness.cli") and not _under(module, "harness.cli"):
                broken.append(f"{module} imports {dep} (line {line}): only the CLI itself imports the CLI")
    assert not broken, "\n".join(broken)


def _layout_table() -> list[tuple[str, list[str]]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, "README.md has no '## Layout' section"
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and not set(cells[0]) <= set("-: ") and cells[0].lower() != "to change":
            rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


def test_readme_layout_table_paths_exist() -> None:
    rows = _layout_table()
    assert len(rows) >= 15, rows
    missing = []
    for what, paths in rows:
        assert paths, f"README Layout row {what!r} names no path"
        for p in paths:
            path = p.split("::")[0].rstrip("/")
            if not (ROOT / path).exists():
                missing.append(f"{what}: {p}")
    assert not missing, "paths in README's Layout table that do not exist:\n" + "\n".join(missing)


def test_every_harness_folder_is_in_the_layout_table() -> None:
    named = {p.split("::")[0].rstrip("/") for _, paths in _layout_table() for p in paths}
    folders = {str(d.relative_to(ROOT)) for d in PACKAGE.iterdir() if (d / "__init__.py").is_file()}
    unnamed = sorted(f for f in folders if not any(n == f or n.startswith(f + "/") for n in named))
    assert not unnamed, f"harness subpackages the README's Layout table never points to: {unnamed}"


def test_pyproject_ships_every_harness_package() -> None:
    from harness.config.toml import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    packages = {name for name, (_, is_pkg) in _modules().items() if is_pkg}
    assert packages <= listed, f"packages missing from pyproject.toml [tool.setuptools] packages: {sorted(packages - listed)}"
