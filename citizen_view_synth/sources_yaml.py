"""The `sources.yaml` that describes the five generated extracts in the contract of `citizen_view.contract`.

The file itself is package data (data/default_sources.yaml); this module adds what depends on the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from citizen_view.contract import dump_sources
from citizen_view_synth import reference
from citizen_view_synth.register import WIDTHS

# Below this many persons most municipality x age band x sex cells hold fewer than 10 people: a small sample
# cannot have 90% of its people in published municipality-level cells, so its sources file sets no bound.
SMALL_SAMPLE = 10_000


def sources_document(country: str, *, persons: int = SMALL_SAMPLE) -> dict[str, Any]:
    """The sources file as a plain mapping (country, survivorship, sources)."""
    quality = {"quality": {"min_published_person_share": 0.0}} if persons < SMALL_SAMPLE else {}
    document = reference.document("default_sources.yaml")
    population = next(s for s in document["sources"] if s["name"] == "population")
    population["options"]["widths"] = dict(WIDTHS)  # the columns register.py writes
    return {"country": country, **quality, **document}


def write_sources_yaml(path: Path, *, country: str, persons: int = SMALL_SAMPLE) -> None:
    """Write `sources.yaml` for the generated extracts."""
    dump_sources(sources_document(country, persons=persons), path)
