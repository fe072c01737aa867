"""`citizen-view publish` writes a DCAT catalogue of the published versions that portals' harvesters read, and says
what actually happened when it refuses."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, RDF

from citizen_view.contract import load_sources
from citizen_view.export import write_catalog
from citizen_view.quality.results import record
from citizen_view.quality.rules import RuleResult
from citizen_view.warehouse import connect
from citizen_view_app.cli import main
from tests.conftest import linked_copy
from tests.dcat_shapes import official_shapes, shacl_report

SPDX = Namespace("http://spdx.org/rdf/terms#")
DCAT = Namespace("http://www.w3.org/ns/dcat#")  # open: rdflib's own DCAT namespace lacks the DCAT 3 terms
ACCESS_URL = "https://portal.example.net/open-data"


def _publish(root: Path) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(
            ["publish", "--sources", str(root / "data/sources.yaml"), "--warehouse", str(root / "wh/cv.duckdb")]
        )
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def published_twice(linked_world, tmp_path_factory) -> tuple[Path, str]:
    """A pipeline run, refused once while there is no bundle, then published twice: (root, the refusal's message)."""
    root, _ = linked_copy(linked_world, tmp_path_factory, "catalog")
    sources = root / "data/sources.yaml"
    text = sources.read_text(encoding="utf-8")
    sources.write_text(
        text.replace("publication:", f"publication:\n  access_url: {ACCESS_URL}", 1)
        if "publication:" in text
        else text + f"publication:\n  access_url: {ACCESS_URL}\n",
        encoding="utf-8",
    )
    exports = root / "wh/cv/exports"
    shutil.move(exports, root / "aside")
    refused = _publish(root)
    shutil.move(root / "aside", exports)
    for _ in range(2):
        code, out, err = _publish(root)
        assert code == 0, err
        assert "catalog.ttl" in out
    return root, refused[2]


def test_a_refusal_before_anything_was_published_says_so(published_twice):
    _, message = published_twice
    assert "no complete bundle whose gates all passed" in message
    assert "nothing has been published yet" in message
    assert "unchanged" not in message


def test_a_refusal_after_a_publication_says_the_previous_bundle_stays(published_twice, tmp_path_factory):
    root = tmp_path_factory.mktemp("refused")
    shutil.copytree(published_twice[0], root, dirs_exist_ok=True, symlinks=True)
    before = os.readlink(root / "wh/cv/published")
    with connect(root / "wh/cv.duckdb") as con:
        record(con, run_id="a-later-run", asset="citizen", result=RuleResult("citizen_sizes", False, "too big"))
    code, _, err = _publish(root)
    assert code == 1
    assert "failed gate: citizen:citizen_sizes" in err
    assert f"the previously published bundle stays published: {root / 'wh/cv/published'} -> {Path(before).name}" in err
    assert "nothing was published" not in err and "nothing has been published yet" not in err
    assert os.readlink(root / "wh/cv/published") == before


def test_the_catalogue_lists_both_versions_with_checksums_of_their_files(published_twice):
    root, _ = published_twice
    published = root / "wh/cv/published"
    graph = Graph().parse(published / "catalog.ttl", format="turtle")
    assert isomorphic(graph, Graph().parse(published / "catalog.jsonld", format="json-ld"))
    (catalogue,) = graph.subjects(RDF.type, DCAT.Catalog)
    versions = {str(graph.value(d, DCAT.version)): d for d in graph.objects(catalogue, DCAT.dataset)}
    held = sorted(p.name for p in (root / "wh/cv/.published-versions").iterdir() if not p.name.startswith("."))
    assert sorted(versions) == held and len(held) == 2
    newest, older = versions[held[1]], versions[held[0]]
    assert published.resolve().name == held[1]
    assert graph.value(newest, DCAT.previousVersion) == older
    assert (graph.value(newest, RDF.type), graph.value(older, DCTERMS.issued) is not None) == (DCAT.Dataset, True)
    # every table in CSV and Parquet, under the configured base URL, with the sha256 of the file served there
    distributions = list(graph.objects(newest, DCAT.distribution))
    tables = {p.stem for p in (published / "data").iterdir()}
    assert len(distributions) == 2 * len(tables)
    url = URIRef(f"{ACCESS_URL}/{held[1]}/data/population_by_area.csv")
    (dist,) = graph.subjects(DCAT.downloadURL, url)
    assert dist in distributions and graph.value(dist, DCAT.accessURL) == url
    checksum = graph.value(dist, SPDX.checksum)
    assert graph.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
    expected = hashlib.sha256((published / "data/population_by_area.csv").read_bytes()).hexdigest()
    assert str(graph.value(checksum, SPDX.checksumValue)) == expected
    assert isinstance(graph.value(dist, DCTERMS.modified), Literal)


def _violations(catalogue: Path, profile: str) -> str:
    """pyshacl's report of a catalogue against an official profile ('' when it conforms; warnings allowed)."""
    return shacl_report(Graph().parse(catalogue, format="turtle"), official_shapes(profile))


def test_the_catalogue_conforms_to_dcat_ap_nl(published_twice):
    assert _violations(published_twice[0] / "wh/cv/published/catalog.ttl", "DCAT-AP-NL 3.0") == ""


def test_with_sha1_checksums_the_catalogue_conforms_to_dcat_ap_no(published_twice, tmp_path):
    """DCAT-AP-NO 2.0 admits only sha1 checksums: `publication.catalog_checksum: sha1` is for its harvesters."""
    root, _ = published_twice
    sources = load_sources(root / "data/sources.yaml")
    versions = [
        (p.name, p) for p in sorted((root / "wh/cv/.published-versions").iterdir()) if not p.name.startswith(".")
    ]
    report = _violations(root / "wh/cv/published/catalog.ttl", "DCAT-AP-NO 2.0")
    assert "checksumAlgorithm_sha1" in report  # sha256, the default, is what it rejects, and only that:
    assert {line.split(":", 1)[1].strip() for line in report.splitlines() if "Result Path" in line} == {
        "spdx:algorithm"
    }
    pub = sources.publication.model_copy(update={"catalog_checksum": "sha1"})
    write_catalog(tmp_path, versions, sources=sources.model_copy(update={"publication": pub}))
    assert _violations(tmp_path / "catalog.ttl", "DCAT-AP-NO 2.0") == ""
    graph = Graph().parse(tmp_path / "catalog.ttl", format="turtle")
    (dist,) = graph.subjects(
        DCAT.downloadURL, URIRef(f"{ACCESS_URL}/{versions[-1][0]}/data/agencies_per_citizen.parquet")
    )
    checksum = graph.value(dist, SPDX.checksum)
    assert graph.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha1
    expected = hashlib.sha1((versions[-1][1] / "data/agencies_per_citizen.parquet").read_bytes()).hexdigest()
    assert str(graph.value(checksum, SPDX.checksumValue)) == expected
