"""Incremental linkage: new records join the right citizens, untouched citizens keep their IDs, and a full
relink with the same model gives the same clusters."""

from __future__ import annotations

import shutil

import duckdb
import polars as pl

from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.evaluate import evaluate_links, load_truth
from citizen_view.linkage.steps import link_citizens, score_pairs
from citizen_view_app.cli import _describe
from citizen_view_app.runner import run_pipeline
from pipelines.definitions import INCREMENTAL_JOB


def _links(wh) -> pl.DataFrame:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.sql("SELECT record_key, source, source_record_id, citizen_id FROM citizen_source_link").pl()
    finally:
        con.close()


def _pairs(links: pl.DataFrame) -> set[tuple[str, str]]:
    grouped = links.group_by("citizen_id").agg(pl.col("record_key").sort())
    return {(a, b) for keys in grouped["record_key"].to_list() for i, a in enumerate(keys) for b in keys[i + 1 :]}


def test_an_incremental_batch_links_correctly_and_leaves_other_ids_alone(generated, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(generated, data)
    tax = data / "tax" / "tax_extract.csv"
    lines = tax.read_bytes().splitlines(keepends=True)
    tax.write_bytes(
        b"".join(lines[:1] + [ln for i, ln in enumerate(lines[1:], 1) if i % 20])
    )  # 5% of tax arrives later
    wh = tmp_path / "wh" / "cv.duckdb"
    assert run_pipeline(sources_path=data / "sources.yaml", warehouse_path=wh).success
    before = _links(wh)
    tax.write_bytes(b"".join(lines))
    outcome = run_pipeline(sources_path=data / "sources.yaml", warehouse_path=wh, job_name=INCREMENTAL_JOB)
    assert outcome.success and all(c["passed"] for c in outcome.checks.values()), outcome.checks
    assert "linkage_model" not in outcome.materialized and "match_edges" not in outcome.materialized
    # only the source whose extract changed is collected again
    collected = outcome.materialized["source_records"]
    assert collected["written_whole"] is False and collected["sources_written"] == ["tax"], collected
    meta = outcome.materialized["citizen_source_link"]
    after = _links(wh)
    assert meta["mode"] == "incremental" and meta["new_records"] == after.height - before.height > 0
    assert meta["records_relinked"] < 0.2 * meta["dagster/row_count"]
    new, earlier, alone = meta["new_records"], meta["earlier_records_relinked"], meta["records_left_alone"]
    assert new + earlier + alone == meta["dagster/row_count"] and alone > 0
    assert meta["changed_records"] == 0  # lines were added, none changed
    assert (
        f"incremental: {new:,} new records, 0 changed, {earlier:,} earlier records re-linked, {alone:,} left alone"
        in _describe(meta)
    )
    assert after["record_key"].n_unique() == after.height

    # untouched citizens keep their IDs: only records re-formed this run may have moved
    con = duckdb.connect(str(wh), read_only=True)
    changed = {r[0] for r in con.execute("SELECT citizen_id FROM linkage_changes").fetchall()}
    golden_ok = con.execute(
        "SELECT count(*) FROM citizen c FULL JOIN (SELECT DISTINCT citizen_id FROM citizen_source_link) l USING (citizen_id) "
        "WHERE c.citizen_id IS NULL OR l.citizen_id IS NULL"
    ).fetchall()[0][0]
    con.close()
    assert golden_ok == 0
    joined = before.join(after, on="record_key", suffix="_after")
    untouched = joined.filter(~pl.col("citizen_id").is_in(list(changed)))
    assert untouched.height > 0.8 * before.height
    assert (untouched["citizen_id"] == untouched["citizen_id_after"]).all()

    # the new records went where the truth says
    figures = evaluate_links(after.select("source", "source_record_id", "citizen_id"), load_truth(data / "truth"))
    assert figures["precision"] >= 0.99 and figures["recall"] >= 0.95, figures

    # A full relink with the same saved model and threshold forms the same clusters, except where it re-scored
    # a pair of existing records differently: term frequencies now count the new records too (documented).
    copy = tmp_path / "relink.duckdb"
    shutil.copy(wh, copy)
    con = duckdb.connect(str(copy))
    kept = con.execute("SELECT threshold_weight, method FROM linkage_threshold").fetchall()[0]
    con.execute("CREATE TABLE incremental_edges AS SELECT record_key_l, record_key_r, match_weight FROM match_edges")
    layout = WarehouseLayout.of(copy)
    shutil.copytree(WarehouseLayout.of(wh).root, layout.root)
    score_pairs(con, layout)
    con.execute("UPDATE linkage_threshold SET threshold_weight = ?, method = ?", list(kept))
    link_citizens(con, layout, run_id="full-relink")
    rescored = {
        k
        for (k,) in con.execute(
            """
        WITH i AS (SELECT least(record_key_l, record_key_r) a, greatest(record_key_l, record_key_r) b, match_weight w FROM incremental_edges),
             f AS (SELECT least(record_key_l, record_key_r) a, greatest(record_key_l, record_key_r) b, match_weight w FROM match_edges)
        SELECT a FROM i FULL JOIN f USING (a, b) WHERE i.w IS DISTINCT FROM f.w
        UNION SELECT b FROM i FULL JOIN f USING (a, b) WHERE i.w IS DISTINCT FROM f.w
        """
        ).fetchall()
    }
    con.close()
    relinked = _links(copy)
    differing = _pairs(after) ^ _pairs(relinked)
    unexplained = [p for p in differing if p[0] not in rescored and p[1] not in rescored]
    assert unexplained == [], unexplained[:5]
    agreement = 1 - len(differing) / max(len(_pairs(after) | _pairs(relinked)), 1)
    assert agreement >= 0.99, agreement
