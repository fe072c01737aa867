"""A full run on DuckDB scores in the warehouse with the model's own Splink SQL: exactly the pairs, orientation and
weights Splink's Linker gives the same records, for every link type (their rules differ: source conditions)."""

from __future__ import annotations

import pytest

from citizen_view.contract import Backend, LinkageConfig, LinkType
from citizen_view.linkage.engine import Engine
from citizen_view.linkage.scoring import predict_edges, predict_with_linker
from citizen_view.linkage.steps import saved_model
from tests.conftest import collected_chain


@pytest.mark.parametrize("link_type", [LinkType.LINK_AND_DEDUPE, LinkType.LINK_ONLY])
def test_the_warehouse_scores_what_splinks_linker_scores(generated, tmp_path, link_type):
    with collected_chain(generated, tmp_path) as (con, chain):
        chain.linkage = LinkageConfig(link_type=link_type)
        chain.train()
        model = saved_model(con)
        predict_edges(con, model, engine=Engine(Backend.DUCKDB, tmp_path / "scratch"), into="ours")
        predict_with_linker(con, model, engine=Engine(Backend.DUCKDB, tmp_path / "scratch"), into="splinks")

        columns = con.sql("SELECT * FROM ours LIMIT 0").columns
        assert columns == con.sql("SELECT * FROM splinks LIMIT 0").columns
        assert {"record_key_l", "record_key_r", "match_weight", "match_probability"} <= set(columns)
        n = con.execute("SELECT count(*) FROM ours").fetchall()[0][0]
        assert n > 1000 and n == con.execute("SELECT count(*) FROM splinks").fetchall()[0][0]
        # every row the same, to the bit: pairs, which record is left, levels' weights, term frequencies, prior
        for a, b in (("ours", "splinks"), ("splinks", "ours")):
            assert con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchall()[0][0] == 0
        if link_type == LinkType.LINK_ONLY:
            assert con.execute("SELECT count(*) FROM ours WHERE source_l = source_r").fetchall()[0][0] == 0
        # the pool of records the warehouse scored from is gone with the step
        temp = "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name LIKE '_linkage%'"
        assert con.execute(temp).fetchall()[0][0] == 0
