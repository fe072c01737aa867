"""The SHACL shapes a published catalogue is checked against, and the check (shared by the catalogue and gate tests).

The official DCAT-AP-NL 3.0 and DCAT-AP-NO SHACL files are published only on GitHub (Geonovum/DCAT-AP-NL30,
Informasjonsforvaltning/dcat-ap-no), so CI cannot install them; put them under ../shared/dcat-shapes (or
$DCAT_SHAPES_DIR) to run the official checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHAPES = Path(__file__).parent / "shapes"
OFFICIAL_SHAPES = Path(os.environ.get("DCAT_SHAPES_DIR", Path(__file__).resolve().parents[2] / "shared/dcat-shapes"))
OFFICIAL_PROFILES = {
    "DCAT-AP-NL 3.0": (
        "nl-300",
        [
            "dcat-ap-SHACL.ttl",
            "dcat-ap-nl-SHACL.ttl",
            "dcat-ap-nl-SHACL-klassebereik.ttl",
            "dcat-ap-nl-SHACL-klassebereik-codelijsten.ttl",
            "dcat-ap-nl-SHACL-aanbevolen.ttl",
        ],
    ),
    "DCAT-AP-NO 2.0": ("no-200", ["DCAT-AP-NO-shacl_shapes_2.00.ttl"]),
}


def official_shapes(profile: str) -> list[Path]:
    """The shape files of an official profile; the test is skipped when they are not on this machine."""
    folder, files = OFFICIAL_PROFILES[profile]
    paths = [OFFICIAL_SHAPES / folder / name for name in files]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"{profile} shapes not found under {OFFICIAL_SHAPES / folder} (set DCAT_SHAPES_DIR)")
    return paths


def shacl_report(data, shapes: list[Path]) -> str:
    """pyshacl's report of an RDF graph against shape files ('' when it conforms; warnings allowed)."""
    from pyshacl import validate
    from rdflib import Graph

    shape_graph = Graph()
    for path in shapes:
        shape_graph.parse(path, format="turtle")
    conforms, _, text = validate(data, shacl_graph=shape_graph, inference="rdfs", allow_warnings=True)
    return "" if conforms else text
