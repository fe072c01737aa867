"""Three layers a newcomer can see: the domain library imports neither Dagster nor the application nor the
tools; assets never import each other; the base install carries no tool-only dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = ROOT / "citizen_view"
APPLICATION = ("dagster", "dagster_webserver", "dagster_duckdb", "pipelines", "assets")
TOOLS = ("citizen_view_synth", "citizen_view_bench")
TOOL_ONLY_DEPENDENCIES = ("faker", "xlsxwriter", "psutil", "httpx", "recordlinkage")


def _imports(path: Path) -> set[str]:
    """Top-level module names a file imports (anywhere in it, lazily inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_the_domain_imports_neither_dagster_nor_the_application_nor_the_tools():
    offenders = {}
    for path in sorted(DOMAIN.rglob("*.py")):
        bad = _top(_imports(path)) & {*APPLICATION, *TOOLS, *TOOL_ONLY_DEPENDENCIES}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, offenders


def test_assets_do_not_import_each_other():
    offenders = {}
    for path in sorted((ROOT / "assets").glob("*.py")):
        bad = sorted(n for n in _imports(path) if n == "assets" or n.startswith("assets."))
        if bad:
            offenders[path.name] = bad
    assert not offenders, offenders


def test_importing_every_domain_module_loads_no_dagster():
    code = (
        "import importlib, pkgutil, sys, citizen_view\n"
        "for m in pkgutil.walk_packages(citizen_view.__path__, 'citizen_view.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('dagster', 'pipelines', 'assets', 'citizen_view_synth', 'citizen_view_bench')))\n"
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
