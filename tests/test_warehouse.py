"""The warehouse's small catalog helpers, on a real DuckDB file."""

from __future__ import annotations

import duckdb

from citizen_view.warehouse import table_columns, table_exists


def test_table_exists_sees_the_own_database_s_tables_and_views_only(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as o:
        o.execute("CREATE TABLE only_there AS SELECT 1 AS a")
    con.execute(f"ATTACH '{other}' AS other")
    con.execute("CREATE TABLE citizen AS SELECT 1 AS a")
    con.execute("CREATE SCHEMA staging")
    con.execute('CREATE VIEW staging."odd ""name""" AS SELECT 1 AS a')
    con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS a")
    con.execute("CREATE TABLE gone AS SELECT 1 AS a")
    con.execute("CREATE VIEW over_gone AS SELECT * FROM gone")
    con.execute("DROP TABLE gone")
    con.execute("CREATE TABLE narrowed AS SELECT 1 AS a, 2 AS b")
    con.execute("CREATE VIEW over_a AS SELECT a FROM narrowed")
    con.execute("ALTER TABLE narrowed DROP COLUMN a")  # the view now fails to bind with a binder error
    con.execute('CREATE VIEW "Mixed" AS SELECT 1 AS a')

    assert table_exists(con, "main", "citizen")
    assert table_exists(con, "staging", 'odd "name"')  # a view, its name quoted
    assert table_exists(con, "main", "over_gone")  # a view that no longer binds still exists
    assert table_exists(con, "main", "over_a")  # ... whatever the error its binding raises
    assert table_exists(con, "MAIN", "CITIZEN") and table_exists(con, "main", "mixed")  # as DuckDB compares names
    assert not table_exists(con, "main", "scratch")  # temporary: not the warehouse's
    assert not table_exists(con, "main", "only_there")  # in an attached database
    assert not table_exists(con, "main", "missing")
    assert not table_exists(con, "nowhere", "citizen")  # no such schema
    con.execute("BEGIN TRANSACTION")
    con.execute("CREATE TABLE made_inside AS SELECT 1 AS a")
    assert table_exists(con, "main", "made_inside")  # seen within the transaction that made it
    con.execute("ROLLBACK")
    assert not table_exists(con, "main", "made_inside")


def test_table_columns_lists_a_table_s_columns_in_order_a_temporary_one_first(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE records (b INTEGER, a VARCHAR, c DOUBLE)")
    assert table_columns(con, "records") == ["b", "a", "c"]
    con.execute("CREATE TEMP TABLE records (z INTEGER)")  # what a query naming `records` now reads
    assert table_columns(con, "records") == ["z"]
