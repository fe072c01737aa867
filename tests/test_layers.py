"""Layers a newcomer can see: the domain library imports neither Dagster nor the application nor the tools; the Dagster
code location (pipelines/) never imports the application (citizen_view_app/); assets never import each other; there
is no import circle; the base install carries no tool-only dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = ROOT / "citizen_view"
DAGSTER = ("dagster", "dagster_webserver", "dagster_duckdb", "dagster_postgres", "pipelines")
APPLICATION = ("citizen_view_app",)
TOOLS = ("citizen_view_synth", "citizen_view_bench")
TOOL_ONLY_DEPENDENCIES = ("faker", "xlsxwriter", "psutil", "httpx", "recordlinkage", "pseudopeople")
PACKAGES = ("citizen_view", "pipelines", "citizen_view_app", "citizen_view_synth", "citizen_view_bench")


def _imports(path: Path) -> set[str]:
    """Module names a file imports (anywhere in it, lazily inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def _offenders(folder: Path, forbidden: set[str]) -> dict[str, list[str]]:
    offenders = {}
    for path in sorted(folder.rglob("*.py")):
        bad = _top(_imports(path)) & forbidden
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    return offenders


def test_the_domain_imports_neither_dagster_nor_the_application_nor_the_tools():
    assert not _offenders(DOMAIN, {*DAGSTER, *APPLICATION, *TOOLS, *TOOL_ONLY_DEPENDENCIES})


def test_the_dagster_code_location_never_imports_the_application_or_the_tools():
    assert not _offenders(ROOT / "pipelines", {*APPLICATION, *TOOLS})


def test_assets_do_not_import_each_other():
    offenders = {}
    for path in sorted((ROOT / "pipelines" / "assets").glob("*.py")):
        bad = sorted(n for n in _imports(path) if n.startswith("pipelines.assets."))
        if bad:
            offenders[path.name] = bad
    assert not offenders, offenders


def _module_graph() -> dict[str, set[str]]:
    """Our modules and the modules of ours each imports (module-level and lazy imports alike)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def test_there_is_no_import_circle():
    graph = _module_graph()
    seen: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in seen:
                visit(nxt, stack)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [])
    assert not cycles, cycles[:5]


def test_importing_every_domain_module_loads_no_dagster():
    code = (
        "import importlib, pkgutil, sys, citizen_view\n"
        "for m in pkgutil.walk_packages(citizen_view.__path__, 'citizen_view.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('dagster', 'pipelines', 'citizen_view_app', 'citizen_view_synth', 'citizen_view_bench')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_the_base_install_has_no_tool_only_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {d.split("=")[0].split(">")[0].split("<")[0].split("[")[0].strip().lower() for d in project["dependencies"]}
    assert not base & set(TOOL_ONLY_DEPENDENCIES), base & set(TOOL_ONLY_DEPENDENCIES)
    extras = project["optional-dependencies"]
    assert any(d.startswith("faker") for d in extras["synth"]) and any(d.startswith("psutil") for d in extras["bench"])
