"""The generator's reference tables are package data: every file in citizen_view_synth/data/ goes into the wheel."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

from citizen_view_synth import reference

ROOT = Path(__file__).resolve().parents[1]


def test_every_reference_table_is_declared_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["citizen_view_synth"]
    folder = ROOT / "citizen_view_synth" / "data"
    files = sorted(p.relative_to(folder.parent).as_posix() for p in folder.iterdir() if p.is_file())
    assert files, folder
    assert [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)] == []


def test_tables_are_read_as_tuples_and_shared():
    names = reference.table("names.json")
    assert names is reference.table("names.json")  # read once per process
    assert isinstance(names["NL"]["surname_prefixes"], tuple)
    assert all(isinstance(pair, tuple) for pair in names["en"]["twin_names"]["F"])
    assert {r["country"] for r in reference.rows("municipalities.csv")} == {"NL", "NO"}
    first = reference.document("dense_sources.yaml")
    first["sources"][0]["path"] = "elsewhere.csv"
    assert reference.document("dense_sources.yaml")["sources"][0]["path"] != "elsewhere.csv"  # a fresh copy each
