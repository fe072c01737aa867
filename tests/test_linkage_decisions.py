"""Reviewers' decisions are honoured by every linkage path: a full run and an incremental run with nothing new."""

from __future__ import annotations

import duckdb
import pytest

from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.review import record_decision
from citizen_view.linkage.steps import link_citizens
from tests.conftest import linked_copy


@pytest.fixture(scope="module")
def linked(linked_world, tmp_path_factory):
    return linked_copy(linked_world, tmp_path_factory, "decisions")


def _pairs(con) -> tuple[tuple[str, str], tuple[str, str]]:
    """A pair the model put in one citizen, and a scored pair it kept apart."""
    together = con.execute(
        "SELECT a.record_key, b.record_key FROM citizen_source_link a JOIN citizen_source_link b "
        "ON a.citizen_id = b.citizen_id AND a.record_key < b.record_key ORDER BY 1, 2 LIMIT 1"
    ).fetchall()[0]
    apart = con.execute(
        "SELECT e.record_key_l, e.record_key_r FROM match_edges e "
        "JOIN citizen_source_link a ON a.record_key = e.record_key_l JOIN citizen_source_link b ON b.record_key = e.record_key_r "
        "WHERE a.citizen_id <> b.citizen_id AND a.record_key NOT IN (?, ?) AND b.record_key NOT IN (?, ?) "
        "ORDER BY e.match_weight DESC, 1, 2 LIMIT 1",
        [*together, *together],
    ).fetchall()[0]
    return together, apart


def _citizen(con, key: str) -> str:
    return con.execute("SELECT citizen_id FROM citizen_source_link WHERE record_key = ?", [key]).fetchall()[0][0]


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
def test_decisions_made_after_the_last_run_split_and_join_on_the_next_run(linked, incremental, tmp_path):
    _, wh = linked
    copy = tmp_path / "wh" / "cv.duckdb"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(wh.read_bytes())
    layout = WarehouseLayout.of(copy)
    con = duckdb.connect(str(copy))
    try:
        together, apart = _pairs(con)
        for (left, right), decision, reason in ((together, "different", "twins"), (apart, "same", "birth certificate")):
            record_decision(
                layout.overrides_file, left=left, right=right, decision=decision, reviewer="ria", reason=reason
            )
        report = link_citizens(con, layout, run_id="after-review", incremental=incremental)
        assert report.incremental is incremental
        assert _citizen(con, together[0]) != _citizen(con, together[1])
        assert _citizen(con, apart[0]) == _citizen(con, apart[1])
        # the split taken back: `unsure` is no constraint, so the pair joins again, as a full run would join it
        record_decision(
            layout.overrides_file, left=together[0], right=together[1], decision="unsure", reviewer="ria", reason="no"
        )
        link_citizens(con, layout, run_id="after-second-thoughts", incremental=incremental)
        assert _citizen(con, together[0]) == _citizen(con, together[1])
    finally:
        con.close()
