"""The generator's reference tables (name lists, places, the sources files it writes) as package data in `data/`.

They are data, not code: one declaration each, read here. JSON lists come back as tuples, as the tables are shared
read-only by every run in a process.
"""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

import yaml

_DATA = files(__package__).joinpath("data")


def _frozen(value: Any) -> Any:
    """JSON's lists as tuples, all the way down."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


@lru_cache(maxsize=8)
def table(name: str) -> dict[str, Any]:
    """A JSON table from `data/` (read once per process)."""
    return _frozen(json.loads(_DATA.joinpath(name).read_text(encoding="utf-8")))


@lru_cache(maxsize=8)
def rows(name: str) -> tuple[dict[str, str], ...]:
    """The rows of a CSV table from `data/`, as text (read once per process)."""
    with _DATA.joinpath(name).open(encoding="utf-8", newline="") as fh:
        return tuple(csv.DictReader(fh))


def document(name: str) -> dict[str, Any]:
    """A YAML document from `data/`, a fresh copy the caller may fill in."""
    return yaml.safe_load(_DATA.joinpath(name).read_text(encoding="utf-8"))
