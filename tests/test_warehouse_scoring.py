"""A full run on DuckDB scores in the warehouse with the model's own Splink SQL: exactly the pairs, orientation and
weights Splink's Linker gives the same records, for every link type (their rules differ: source conditions) and model
shape (with and without term frequencies, one blocking rule or many); and a scoring statement that fails leaves its
own error and the last good match_edges."""

from __future__ import annotations

import copy
import json

import duckdb
import pytest

from citizen_view.contract import Backend, LinkageConfig, LinkType
from citizen_view.linkage.engine import Engine
from citizen_view.linkage.model import tf_columns
from citizen_view.linkage.scoring import POOL, predict_edges, predict_with_linker
from citizen_view.linkage.steps import saved_model
from tests.conftest import collected_chain

POOL_LEFT = f"SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = '{POOL}'"


@pytest.fixture(scope="module", params=[LinkType.DEDUPE_ONLY, LinkType.LINK_AND_DEDUPE, LinkType.LINK_ONLY], ids=str)
def trained(request, generated, tmp_path_factory):
    """The generated set collected and trained once per link type, shared by this module's tests."""
    with collected_chain(generated, tmp_path_factory.mktemp("scoring")) as (con, chain):
        chain.linkage = LinkageConfig(link_type=request.param)
        chain.train()
        yield con, chain


def _without_term_frequencies(model):
    model = copy.deepcopy(model)
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            level.pop("tf_adjustment_column", None)
            level.pop("tf_adjustment_weight", None)
    return model


def _one_blocking_rule(model):
    """All the model's rules as one (each alone yields few pairs or none for some link types on this set)."""
    model = copy.deepcopy(model)
    rules = model["blocking_rules_to_generate_predictions"]
    one = " OR ".join(f"({r['blocking_rule']})" for r in rules)
    model["blocking_rules_to_generate_predictions"] = [{**rules[0], "blocking_rule": one}]
    return model


SHAPES = {"as trained": lambda m: m, "no term frequencies": _without_term_frequencies, "one rule": _one_blocking_rule}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_warehouse_scores_what_splinks_linker_scores(trained, tmp_path, shape):
    con, chain = trained
    trained_model = saved_model(con)
    model = SHAPES[shape](trained_model)
    rules = model["blocking_rules_to_generate_predictions"]
    assert len(rules) > 1 or shape == "one rule"
    assert bool(tf_columns(model)) == (shape != "no term frequencies")  # the shape is what its name says
    predict_edges(con, model, engine=Engine(Backend.DUCKDB, tmp_path), into="ours")
    predict_with_linker(con, model, engine=Engine(Backend.DUCKDB, tmp_path), into="splinks")

    columns = con.sql("SELECT * FROM ours LIMIT 0").columns
    assert columns == con.sql("SELECT * FROM splinks LIMIT 0").columns
    assert {"record_key_l", "record_key_r", "match_weight", "match_probability"} <= set(columns)
    n = con.execute("SELECT count(*) FROM ours").fetchall()[0][0]
    assert n > 10 and n == con.execute("SELECT count(*) FROM splinks").fetchall()[0][0]
    # every row the same, to the bit: pairs, which record is left, levels' weights, term frequencies, prior
    for a, b in (("ours", "splinks"), ("splinks", "ours")):
        assert con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchall()[0][0] == 0
    if chain.linkage.link_type == LinkType.LINK_ONLY:
        assert con.execute("SELECT count(*) FROM ours WHERE source_l = source_r").fetchall()[0][0] == 0
    assert con.execute(POOL_LEFT).fetchall()[0][0] == 0  # the pool of records it scored from is gone


def _failing(model):
    """The model with a comparison level that fails at run time, once the scoring statement compares a pair."""
    model = copy.deepcopy(model)
    levels = model["comparisons"][0]["comparison_levels"]
    level = next(lv for lv in levels if not lv.get("is_null_level") and "tf_adjustment_column" not in lv)
    level["sql_condition"] = "error('scoring failed on purpose') IS NULL"
    return model


def test_a_failing_score_raises_its_own_error_and_keeps_the_last_match_edges(trained, tmp_path):
    con, chain = trained
    chain.score()
    edges = "SELECT count(*), sum(hash(record_key_l, record_key_r, match_weight)) FROM match_edges"
    last_good = con.execute(edges).fetchall()
    stored = con.execute("SELECT model_json FROM linkage_model").fetchall()[0][0]
    con.execute("UPDATE linkage_model SET model_json = ?", [json.dumps(_failing(json.loads(stored)))])
    try:
        # in the step's transaction: not "Current transaction is aborted" from cleaning up after it
        with pytest.raises(duckdb.Error, match="scoring failed on purpose"):
            chain.score()
    finally:
        con.execute("UPDATE linkage_model SET model_json = ?", [stored])
    assert con.execute(edges).fetchall() == last_good
    assert con.execute(POOL_LEFT).fetchall()[0][0] == 0  # rolled back with the transaction
    # outside a transaction: the same error, and the pool dropped
    with pytest.raises(duckdb.Error, match="scoring failed on purpose"):
        predict_edges(con, _failing(saved_model(con)), engine=Engine(Backend.DUCKDB, tmp_path), into="ours")
    assert con.execute(POOL_LEFT).fetchall()[0][0] == 0
