"""Quality gates block publication: a clean run publishes; a corrupted extract, a broken linkage and a
small cell each block it with the right check named, and leave the published bundle byte-identical."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, Definitions, define_asset_job

from citizen_view_app.cli import main
from citizen_view_app.runner import summarise
from pipelines.definitions import build_definitions
from tests.conftest import linked_copy
from tests.dcat_shapes import OFFICIAL_PROFILES, SHAPES, official_shapes, shacl_report


def _fingerprint(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def baseline(linked_world, tmp_path_factory) -> Path:
    """A clean run on generated data, published: root/{data, wh/cv.duckdb, wh/cv/{exports, published}}."""
    checks = linked_world.outcome.checks
    assert checks and all(c["passed"] for c in checks.values()), checks
    root, _ = linked_copy(linked_world, tmp_path_factory, "gates")
    assert (
        main(["publish", "--sources", str(root / "data/sources.yaml"), "--warehouse", str(root / "wh/cv.duckdb")]) == 0
    )
    return root


@pytest.fixture
def world(baseline, tmp_path) -> Path:
    root = tmp_path / "world"
    shutil.copytree(baseline, root)
    return root


def _args(root: Path) -> list[str]:
    return ["--sources", str(root / "data/sources.yaml"), "--warehouse", str(root / "wh/cv.duckdb")]


def _assert_refused(root: Path, check: str, capsys) -> None:
    before = _fingerprint(root / "wh/cv/published")
    assert main(["publish", *_args(root)]) == 1
    err = capsys.readouterr().err
    assert f"failed gate: {check}" in err, err
    assert _fingerprint(root / "wh/cv/published") == before


def test_a_clean_run_publishes_a_valid_protected_bundle(baseline):
    published = baseline / "wh/cv/published"
    assert (published / "PUBLISHED_FROM").is_file()
    for name in (
        "datapackage.json",
        "dcat.jsonld",
        "sdc-report.json",
        "gates.json",
        "checksums.sha256",
        "data-docs/index.html",
    ):
        assert (published / name).is_file(), name
    result = subprocess.run(
        [str(Path(sys.executable).parent / "frictionless"), "validate", "datapackage.json"],
        cwd=published,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    small = []
    for table in (published / "data").glob("*.csv"):
        with table.open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if "count" in row and row["count"] not in ("", "0") and int(row["count"]) < 10:
                    small.append((table.name, row))
                if "count" in row and row["count"] == "":
                    assert row["flag"] == "suppressed"
    assert small == []
    header = (published / "data/population_by_area.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "level,area_code,area_name,parent_code,age_band,sex,count,flag"


def _shacl_violations(document: dict, shapes: list[Path]) -> str:
    """The SHACL report of a JSON-LD document against shape files ('' when it conforms; warnings allowed)."""
    from rdflib import Graph

    return shacl_report(Graph().parse(data=json.dumps(document), format="json-ld"), shapes)


def test_the_dataset_description_has_what_dcat_ap_requires(baseline):
    document = json.loads((baseline / "wh/cv/published/dcat.jsonld").read_text(encoding="utf-8"))
    assert _shacl_violations(document, [SHAPES / "dcat_ap_mandatory.ttl"]) == ""
    broken = {k: v for k, v in document.items() if k != "dct:accessRights"}
    broken["dcat:distribution"] = [{**d, "dct:format": "CSV"} for d in document["dcat:distribution"]]
    report = _shacl_violations(broken, [SHAPES / "dcat_ap_mandatory.ttl"])
    assert "Result Path: dct:accessRights" in report and "Result Path: dct:format" in report, report


@pytest.mark.parametrize("profile", sorted(OFFICIAL_PROFILES))
def test_the_dataset_description_conforms_to_the_official_shapes(baseline, profile):
    paths = official_shapes(profile)
    document = json.loads((baseline / "wh/cv/published/dcat.jsonld").read_text(encoding="utf-8"))
    assert _shacl_violations(document, paths) == ""


def test_a_corrupted_extract_of_a_source_required_for_publication_blocks_publication(world, capsys):
    sources = world / "data/sources.yaml"
    sources.write_text(
        sources.read_text(encoding="utf-8").replace("- name: tax\n", "- name: tax\n  required_for_publication: true\n"),
        encoding="utf-8",
    )
    tax = world / "data/tax/tax_extract.csv"
    lines = tax.read_text(encoding="latin-1").splitlines()
    for i in range(1, len(lines), 4):  # a quarter of the rows get an impossible birth date (field 4)
        fields = lines[i].split(";")
        if len(fields) > 3:
            fields[3] = "31-13-1980"
            lines[i] = ";".join(fields)
    tax.write_text("\n".join(lines) + "\n", encoding="latin-1")
    assert main(["run", *_args(world)]) == 1
    err = capsys.readouterr().err
    # the rows are loaded into staging (a bad date is a field issue, not a bad row); a quarter of the dates impossible is
    # far beyond a keying-typo rate and holds the extract back, and since tax is required for publication, that blocks
    # the bundle
    assert "HELD BACK source/tax" in err and "date_of_birth_typos" in err
    assert "GATE FAILED citizen_area:required_sources_accepted" in err and "required for publication" in err
    assert "publication blocked" in err
    _assert_refused(world, "citizen_area:required_sources_accepted", capsys)


def test_rows_the_reader_cannot_split_hold_the_extract_back_not_publication(world, capsys):
    tax = world / "data/tax/tax_extract.csv"
    lines = tax.read_text(encoding="latin-1").splitlines()
    for i in range(1, len(lines), 4):  # a quarter of the rows lose a field separator
        lines[i] = lines[i].replace(";", " ", 1)
    tax.write_text("\n".join(lines) + "\n", encoding="latin-1")
    with duckdb.connect(str(world / "wh/cv.duckdb"), read_only=True) as con:
        linked = con.execute("SELECT count(*) FROM citizen_source_link WHERE source = 'tax'").fetchall()[0][0]
    assert main(["run", *_args(world)]) == 3
    out, err = capsys.readouterr()
    assert "HELD BACK source/tax" in err and "rejected_share" in err and "wrong field count" in err
    assert "export bundle:" in out
    with duckdb.connect(str(world / "wh/cv.duckdb"), read_only=True) as con:  # the bad extract never reached linkage
        assert con.execute("SELECT count(*) FROM citizen_source_link WHERE source = 'tax'").fetchall()[0][0] == linked
        assert con.execute("SELECT count(*) FROM staging.rejected_records WHERE source = 'tax'").fetchall()[0][0] > 0
    assert main(["publish", *_args(world)]) == 0


def _materialise(root: Path, selection) -> object:
    defs = build_definitions(sources_path=root / "data/sources.yaml", warehouse_path=root / "wh/cv.duckdb")
    job = define_asset_job("slice", selection=selection)
    merged = Definitions.merge(defs, Definitions(jobs=[job]))
    result = merged.resolve_job_def("slice").execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    return summarise(result)


def test_a_broken_linkage_blocks_publication(world, capsys):
    con = duckdb.connect(str(world / "wh/cv.duckdb"))
    con.execute("UPDATE citizen_source_link SET citizen_id = (SELECT min(citizen_id) FROM citizen_source_link)")
    con.close()
    outcome = _materialise(world, AssetSelection.assets(AssetKey("citizen")).downstream())
    assert outcome.checks["citizen:citizen_sizes"]["passed"] is False
    assert "open_data/bundle" not in outcome.materialized
    _assert_refused(world, "citizen:citizen_sizes", capsys)


def test_an_aggregate_with_a_small_cell_blocks_publication(world, capsys):
    con = duckdb.connect(str(world / "wh/cv.duckdb"))
    con.execute(
        "UPDATE open_data.population_by_area SET count = 3, flag = '' "
        "WHERE rowid = (SELECT min(rowid) FROM open_data.population_by_area WHERE flag = 'suppressed')"
    )
    con.close()
    table = AssetKey(["open_data", "population_by_area"])
    outcome = _materialise(
        world, AssetSelection.checks_for_assets(table) | AssetSelection.assets(AssetKey(["open_data", "bundle"]))
    )
    assert outcome.checks["open_data/population_by_area:disclosure_minimum_cell"]["passed"] is False
    assert outcome.checks["open_data/population_by_area:expectation_suite"]["passed"] is False
    assert "open_data/bundle" not in outcome.materialized
    _assert_refused(world, "open_data/population_by_area:disclosure_minimum_cell", capsys)
