"""`source_records` in an incremental run: only the sources whose canonical records changed are written again, and the
table holds what a full collect would write."""

from __future__ import annotations

import pytest

from citizen_view.linkage.records import STATE, _source_records_sql, collect_source_records, sort_for_training
from tests.conftest import collected_chain


@pytest.fixture
def chain(generated, tmp_path):
    with collected_chain(generated, tmp_path) as (con, chain):
        yield con, chain


def _differs_from_a_full_collect(con, names: list[str]) -> int:
    """Rows of `source_records` and of a full collect of `names` that the other lacks (with duplicates counted)."""
    full = _source_records_sql(con, names)
    return con.execute(
        f"SELECT (SELECT count(*) FROM (SELECT * FROM source_records EXCEPT ALL ({full}))) "
        f"+ (SELECT count(*) FROM (({full}) EXCEPT ALL SELECT * FROM source_records))"
    ).fetchall()[0][0]


def _rows_of(con, sources: list[str]) -> list[tuple]:
    return con.execute(
        f"SELECT rowid, record_key FROM source_records WHERE source IN ({', '.join(repr(s) for s in sources)}) "
        "ORDER BY rowid"
    ).fetchall()


def test_an_incremental_collect_writes_only_the_sources_that_changed(chain):
    con, linkage = chain
    names = [s.name for s in linkage.sources.sources]
    others = [n for n in names if n != "licences"]
    kept = _rows_of(con, others)
    # a re-extract corrects one licence holder's family name and drops another record
    first, second = (
        r[0] for r in con.execute("SELECT source_record_id FROM canonical.licences ORDER BY 1 LIMIT 2").fetchall()
    )
    con.execute("UPDATE canonical.licences SET family_name = 'Corrected' WHERE source_record_id = ?", [first])
    con.execute("DELETE FROM canonical.licences WHERE source_record_id = ?", [second])

    report = linkage.collect(keep_unchanged=True)
    assert (report.whole, report.rewritten) == (False, ["licences"])
    assert _rows_of(con, others) == kept  # the other sources' records were not written again
    assert _differs_from_a_full_collect(con, names) == 0
    assert con.execute(
        "SELECT family_name FROM source_records WHERE record_key = ?", [f"licences:{first}"]
    ).fetchall() == [("Corrected",)]
    assert report.per_source["licences"] == con.execute("SELECT count(*) FROM canonical.licences").fetchall()[0][0]

    # nothing changed since: nothing is written
    again = linkage.collect(keep_unchanged=True)
    assert (again.whole, again.rewritten, again.records) == (False, [], report.records)
    # a full run's collect writes the table whole, as before
    assert linkage.collect().whole


def test_a_source_no_longer_declared_leaves_and_one_declared_anew_arrives(chain):
    con, linkage = chain
    names = [s.name for s in linkage.sources.sources]
    without = [n for n in names if n != "permits"]
    report = collect_source_records(con, without, keep_unchanged=True)
    assert (report.whole, report.rewritten) == (False, [])
    assert "permits" not in report.per_source
    assert _differs_from_a_full_collect(con, without) == 0
    back = collect_source_records(con, names, keep_unchanged=True)
    assert (back.whole, back.rewritten) == (False, ["permits"])
    assert _differs_from_a_full_collect(con, names) == 0


def test_records_collected_by_other_code_or_under_other_columns_are_written_whole(chain):
    con, linkage = chain
    names = [s.name for s in linkage.sources.sources]
    con.execute(f"UPDATE {STATE} SET code = 'another release'")
    assert linkage.collect(keep_unchanged=True).whole  # its hashes and SQL may differ from this code's
    assert not linkage.collect(keep_unchanged=True).whole
    # an extract that now maps another field: the table's columns change, so every row is written
    con.execute("ALTER TABLE canonical.tax ADD COLUMN unit_floor VARCHAR")
    report = linkage.collect(keep_unchanged=True)
    assert report.whole and sorted(report.rewritten) == sorted(names)
    assert _differs_from_a_full_collect(con, names) == 0


def test_training_after_an_incremental_collect_reads_the_records_in_a_full_collects_order(chain):
    con, linkage = chain
    names = [s.name for s in linkage.sources.sources]
    order = "SELECT record_key FROM source_records ORDER BY rowid"
    full_order = con.execute(order).fetchall()
    assert not sort_for_training(con)  # written whole: nothing to do
    assert not linkage.collect(keep_unchanged=True).rewritten  # nothing changed: still in order
    assert not sort_for_training(con)
    # licences (in the middle of the order) changes: its rows are appended at the end
    con.execute(
        "UPDATE canonical.licences SET family_name = 'Corrected' WHERE source_record_id IN "
        "(SELECT min(source_record_id) FROM canonical.licences)"
    )
    assert not linkage.collect(keep_unchanged=True).whole
    assert con.execute(order).fetchall() != full_order
    assert sort_for_training(con)
    assert con.execute(order).fetchall() == full_order
    assert _differs_from_a_full_collect(con, names) == 0
    assert not sort_for_training(con)
    # and the model's training does it itself
    con.execute(
        "UPDATE canonical.licences SET family_name = 'Again' WHERE source_record_id IN "
        "(SELECT min(source_record_id) FROM canonical.licences)"
    )
    linkage.collect(keep_unchanged=True)
    linkage.train()
    assert con.execute(order).fetchall() == full_order
    assert con.execute(f"SELECT bool_and(whole) FROM {STATE}").fetchall()[0][0]
