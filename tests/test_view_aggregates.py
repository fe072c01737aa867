"""The served view's lists are aggregated per group with `list_sort` instead of an ordered `string_agg` (cheaper in
DuckDB 2.0): the texts must be the same, in the same order, whatever the values (case, accents, empty text)."""

from __future__ import annotations

import random

import duckdb

from citizen_view.serving.documents import in_storage_order


def _table(con: duckdb.DuckDBPyConnection) -> None:
    rng = random.Random(11)
    letters = ["a", "B", "é", "Ø", "z", " ", "", "0", '"', "ĳ"]
    rows = [(rng.randrange(300), "".join(rng.choice(letters) for _ in range(rng.randrange(0, 6)))) for _ in range(6000)]
    con.execute("CREATE TABLE t (g INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", rows)
    con.execute("CREATE TABLE s AS SELECT * FROM t ORDER BY g, v DESC")  # storage order is not the text order


def test_in_storage_order_is_string_agg_ordered_by_rowid():
    con = duckdb.connect()
    _table(con)
    ours = con.execute(f"SELECT g, {in_storage_order('v', 's')} FROM s GROUP BY g ORDER BY g").fetchall()
    theirs = con.execute("SELECT g, string_agg(v, ',' ORDER BY s.rowid) FROM s GROUP BY g ORDER BY g").fetchall()
    assert len(ours) == 300 and ours == theirs


def test_a_sorted_list_is_string_agg_ordered_by_the_text():
    con = duckdb.connect()
    _table(con)
    ours = con.execute("SELECT g, array_to_string(list_sort(list(v)), ',') FROM s GROUP BY g ORDER BY g").fetchall()
    theirs = con.execute("SELECT g, string_agg(v, ',' ORDER BY v) FROM s GROUP BY g ORDER BY g").fetchall()
    assert len(ours) == 300 and ours == theirs
    # and not by accident: the storage order gives other lists
    stored = con.execute(f"SELECT g, {in_storage_order('v', 's')} FROM s GROUP BY g ORDER BY g").fetchall()
    assert stored != ours
