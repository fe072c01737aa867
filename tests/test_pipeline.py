"""The whole pipeline through Dagster (the job the UI runs) on generated extracts, in a real warehouse file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.evaluate import evaluate_links, load_truth
from citizen_view_app.runner import run_pipeline
from tests.conftest import copy_world, linked_copy

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def first_run(linked_world, tmp_path_factory):
    _, warehouse = linked_copy(linked_world, tmp_path_factory, "pipeline")
    return linked_world.outcome, warehouse


def _sql(warehouse: Path, query: str) -> pl.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.sql(query).pl()
    finally:
        con.close()


def test_every_asset_materialises_with_balanced_counts(first_run):
    outcome, _ = first_run
    sources = {k: m for k, m in outcome.materialized.items() if k.startswith("source/")}
    assert set(sources) == {f"source/{s}" for s in ("population", "tax", "benefits", "permits", "licences")}
    for meta in sources.values():
        assert meta["rows_in"] == meta["rows_loaded"] + meta["rows_rejected"]
    assert {"source_records", "linkage_model", "match_edges", "citizen_source_link", "citizen"} <= set(
        outcome.materialized
    )


def test_every_loaded_record_is_linked_exactly_once(first_run):
    _, wh = first_run
    counts = _sql(
        wh,
        """
        SELECT (SELECT count(*) FROM source_records) AS records,
               (SELECT count(*) FROM citizen_source_link) AS links,
               (SELECT count(DISTINCT record_key) FROM citizen_source_link) AS distinct_links,
               (SELECT count(*) FROM citizen) AS citizens,
               (SELECT count(DISTINCT citizen_id) FROM citizen_source_link) AS linked_citizens
    """,
    ).row(0, named=True)
    assert counts["records"] == counts["links"] == counts["distinct_links"]
    assert counts["citizens"] == counts["linked_citizens"]


def test_linkage_is_accurate_on_generated_data(first_run, generated):
    outcome, wh = first_run
    links = _sql(wh, "SELECT source, source_record_id, citizen_id FROM citizen_source_link")
    figures = evaluate_links(links, load_truth(generated / "truth"))
    assert figures["precision"] >= 0.99, figures
    assert figures["recall"] >= 0.95, figures
    assert outcome.materialized["citizen_source_link"]["eval_f1"] == figures["f1"]


def test_twins_and_same_name_parent_child_stay_apart(first_run, generated):
    _, wh = first_run
    truth = load_truth(generated / "truth")
    reg = _sql(
        wh,
        """
        SELECT r.source, r.source_record_id, r.first_name_std, r.family_name_std, r.date_of_birth, r.postcode,
               r.house_number, l.citizen_id
        FROM source_records r JOIN citizen_source_link l USING (record_key) WHERE r.source = 'population'
    """,
    ).join(truth, on=["source", "source_record_id"])
    pairs = reg.join(reg, on=["family_name_std", "postcode", "house_number"], suffix="_b").filter(
        (pl.col("person_id") < pl.col("person_id_b"))
        & (
            (pl.col("date_of_birth") == pl.col("date_of_birth_b"))  # twins
            | (pl.col("first_name_std") == pl.col("first_name_std_b"))  # same-name parent and child
        )
    )
    assert pairs.height >= 2, "the generated set should contain twins or same-name parent/child pairs"
    assert pairs.filter(pl.col("citizen_id") == pl.col("citizen_id_b")).height == 0


def test_a_source_lacking_birth_date_and_national_id_still_links(first_run, generated):
    _, wh = first_run
    truth = load_truth(generated / "truth")
    links = _sql(wh, "SELECT source, source_record_id, citizen_id FROM citizen_source_link").join(
        truth, on=["source", "source_record_id"]
    )
    register_person_citizen = links.filter(pl.col("source") == "population").select("person_id", "citizen_id")
    permits = links.filter(pl.col("source") == "permits").join(register_person_citizen, on="person_id", suffix="_reg")
    share = (permits["citizen_id"] == permits["citizen_id_reg"]).mean()
    assert share >= 0.85, f"only {share:.1%} of permit records joined their register record"


def test_golden_record_provenance_points_to_real_source_rows(first_run):
    _, wh = first_run
    bad = _sql(
        wh,
        """
        SELECT c.citizen_id, c.date_of_birth, r.date_of_birth AS source_value
        FROM citizen c
        JOIN source_records r ON r.source || ':' || r.source_record_id = c.date_of_birth_from
        JOIN citizen_source_link l ON l.record_key = r.record_key
        WHERE c.date_of_birth IS DISTINCT FROM r.date_of_birth OR l.citizen_id <> c.citizen_id
    """,
    )
    assert bad.height == 0
    for group, column in [("name", "family_name"), ("address", "postcode"), ("national_id", "national_id")]:
        missing = _sql(
            wh,
            f"""
            SELECT count(*) AS n FROM citizen c
            LEFT JOIN source_records r ON r.source || ':' || r.source_record_id = c.{group}_from
            WHERE c.{group}_from IS NOT NULL AND (r.record_key IS NULL OR r.{column} IS DISTINCT FROM c.{column})
        """,
        )["n"][0]
        assert missing == 0, group
    # the register outranks the others: a citizen with a register record takes its name from there
    ranked = _sql(
        wh,
        """
        SELECT count(*) AS n FROM citizen
        WHERE list_contains(sources, 'population') AND NOT starts_with(name_from, 'population:')
    """,
    )["n"][0]
    assert ranked == 0


def test_rerun_keeps_every_citizen_id(linked_world, tmp_path):
    root, wh = copy_world(linked_world, tmp_path / "world")
    before = _sql(wh, "SELECT record_key, citizen_id FROM citizen_source_link")
    assert run_pipeline(sources_path=root / "data/sources.yaml", warehouse_path=wh).success
    after = _sql(wh, "SELECT record_key, citizen_id FROM citizen_source_link")
    assert before.sort("record_key").equals(after.sort("record_key"))


def test_new_records_change_ids_only_where_clusters_merged_or_split(generated, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(generated, data)
    tax = data / "tax" / "tax_extract.csv"
    lines = tax.read_bytes().splitlines(keepends=True)
    held_back = lines[1::25]  # ~4% of the tax rows (~1% of all records) arrive later
    tax.write_bytes(b"".join(lines[:1] + [ln for i, ln in enumerate(lines[1:], 1) if ln not in held_back]))
    wh = tmp_path / "cv.duckdb"
    assert run_pipeline(sources_path=data / "sources.yaml", warehouse_path=wh).success
    before = _sql(wh, "SELECT record_key, citizen_id FROM citizen_source_link")
    tax.write_bytes(b"".join(lines))
    assert run_pipeline(sources_path=data / "sources.yaml", warehouse_path=wh).success
    after = _sql(wh, "SELECT record_key, citizen_id AS new_id FROM citizen_source_link")
    moved = before.join(after, on="record_key")
    # an old citizen whose records all stayed together, with no other old citizen's records, keeps its ID
    per_old = moved.group_by("citizen_id").agg(pl.col("new_id").n_unique().alias("parts"), pl.col("new_id").first())
    per_new = moved.group_by("new_id").agg(pl.col("citizen_id").n_unique().alias("sources"))
    intact = per_old.filter(pl.col("parts") == 1).join(per_new.filter(pl.col("sources") == 1), on="new_id")
    assert intact.height > 0.9 * per_old.height
    assert (intact["citizen_id"] == intact["new_id"]).all()
    history = _sql(wh, "SELECT event, count(*) AS n FROM citizen_id_history GROUP BY event")
    assert set(history["event"]) <= {"created", "split", "merged", "retired"}


def test_definitions_validate_with_the_workspace():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_model_json_and_splink_charts_are_saved_in_the_warehouse_folder(first_run):
    outcome, wh = first_run
    folder = WarehouseLayout.of(wh).linkage_dir
    for name in ("splink_model.json", "match_weights_chart.html", "m_u_parameters_chart.html"):
        assert (folder / name).stat().st_size > 1000, name
    for chart in ("match_weights_chart.html", "m_u_parameters_chart.html"):  # they open offline: vega is inline
        html = (folder / chart).read_text(encoding="utf-8")
        assert 'src="http' not in html and "src='http" not in html and "vegaEmbed" in html
    assert outcome.materialized["linkage_model"]["fields_compared"][:3] == [
        "given_name",
        "family_name",
        "date_of_birth",
    ]


def test_explain_gives_per_field_evidence_for_linked_and_unlinked_pairs(first_run, capsys):
    from citizen_view_app.cli import main

    _, wh = first_run
    pair = _sql(
        wh,
        """
        SELECT a.record_key AS a, b.record_key AS b FROM citizen_source_link a
        JOIN citizen_source_link b ON a.citizen_id = b.citizen_id
        JOIN source_records ra ON ra.record_key = a.record_key JOIN source_records rb ON rb.record_key = b.record_key
        WHERE a.source = 'population' AND b.source = 'tax' AND ra.national_id = rb.national_id
        ORDER BY a.record_key, b.record_key LIMIT 1
    """,
    ).row(0)
    other = _sql(
        wh,
        f"SELECT record_key FROM citizen_source_link WHERE citizen_id <> (SELECT citizen_id FROM citizen_source_link WHERE record_key = '{pair[0]}') AND source = 'tax' ORDER BY record_key LIMIT 1",
    ).item()  # noqa: E501
    assert main(["explain", pair[0], pair[1], "--warehouse", str(wh)]) == 0
    linked = capsys.readouterr().out
    assert (
        "same national ID" in linked
        and "the same citizen" in linked
        and "model: linked directly: match weight" in linked
    )
    assert main(["explain", pair[0], other, "--warehouse", str(wh)]) == 0
    apart = capsys.readouterr().out
    assert "different citizens" in apart and "model: not linked: match weight" in apart
    assert main(["explain", pair[0], "tax:NOPE", "--warehouse", str(wh)]) == 2
    assert "no loaded record tax:NOPE" in capsys.readouterr().err


def test_evaluate_command_reports_the_figures(first_run, generated, capsys):
    from citizen_view_app.cli import main

    _, wh = first_run
    assert main(["evaluate", "--truth", str(generated / "truth"), "--warehouse", str(wh)]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "f1" in out and "persons_split_over_citizens" in out


def test_the_test_session_keeps_its_own_dagster_home():
    from citizen_view_app.runner import instance_for_cli
    from tests.conftest import ROOT, TEST_DAGSTER_HOME

    assert os.environ["DAGSTER_HOME"] == str(TEST_DAGSTER_HOME)
    instance = instance_for_cli()
    try:
        root = Path(instance.root_directory).resolve()
    finally:
        instance.dispose()
    assert root == TEST_DAGSTER_HOME.resolve() and not root.is_relative_to(ROOT)


def test_run_streams_each_step_as_it_happens(generated, tmp_path):
    """`citizen-view run` prints a step's start line while the run is still going, not all at the end."""
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "citizen-view"),
            "run",
            "--sources",
            str(generated / "sources.yaml"),
            "--warehouse",
            str(tmp_path / "cv.duckdb"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=os.environ.copy(),
    )
    seen_while_running = None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if seen_while_running is None and line.strip().startswith("> source/"):
                seen_while_running = proc.poll() is None  # the run has not ended when its first step's start arrives
    finally:
        proc.wait(timeout=600)
    assert seen_while_running is True, "".join(lines[:20])
    starts = [i for i, l in enumerate(lines) if l.strip().startswith("> ")]
    ends = [i for i, l in enumerate(lines) if l.strip().startswith("+ ") and " done (" in l]
    assert starts and ends and starts[0] < ends[0] < lines.index(next(l for l in lines if "quality gates:" in l))
    assert proc.returncode == 0


def test_the_ui_metadata_covers_every_scored_pair_and_shows_tables(first_run):
    from urllib.parse import urlparse

    from dagster import TableMetadataValue

    outcome, _ = first_run
    edges = outcome.materialized["match_edges"]
    bins = [r.data["scored pairs"] for r in edges["match_weight_histogram"].records]
    assert sum(bins) == edges["dagster/row_count"] > 0
    assert sum(r.data["threshold"] == "◀" for r in edges["match_weight_histogram"].records) == 1
    chart = edges["match_weight_chart"]
    assert chart.startswith("file:///") and Path(urlparse(chart).path).is_file()
    for name, check in outcome.checks.items():
        assert isinstance(check["metadata"]["offending_rows"], TableMetadataValue), name
        assert " of " in check["metadata"]["offending_rows_shown"], name
