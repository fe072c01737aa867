"""Shared fixtures: small extracts written by hand, and a generated sample set per session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


def write(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding=encoding)
    return path


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    """A generated NL set of 400 persons (extracts, sources.yaml and truth)."""
    from citizen_view_synth import generate

    out = tmp_path_factory.mktemp("generated")
    generate(out, persons=400, seed=7, country="NL")
    return out
