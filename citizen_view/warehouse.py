"""The DuckDB warehouse file: connections and the tables every stage shares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

# The warehouse connection's memory ceiling (DuckDB's default is 80% of RAM); larger work spills to disk.
MEMORY_LIMIT = os.environ.get("CITIZEN_VIEW_DUCKDB_MEMORY", "4GB")

SHARED_TABLES = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS canonical;
CREATE TABLE IF NOT EXISTS rejected_records (
    source VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    line BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    raw VARCHAR,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS field_issues (
    source VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    line BIGINT NOT NULL,
    record_id VARCHAR NOT NULL,
    field VARCHAR NOT NULL,
    raw VARCHAR,
    reason VARCHAR NOT NULL,
    found_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ingest_log (
    source VARCHAR NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    files VARCHAR[] NOT NULL,
    rows_in BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL
);
-- write-audit-publish (ingest.py): what became of each load, its files' content hash, and who decided why
ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS load_id VARCHAR;
ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS status VARCHAR DEFAULT 'accepted';
ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS content_hash VARCHAR;
ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS reason VARCHAR;
ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS decided_by VARCHAR;
ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS decided_at TIMESTAMPTZ;
ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS decision_reason VARCHAR;
"""


@contextmanager
def connect(path: str | Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse file (created with its shared tables when writable)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config={"memory_limit": MEMORY_LIMIT})
    try:
        if not read_only:
            con.execute(SHARED_TABLES)
        yield con
    finally:
        con.close()


def quote(identifier: str) -> str:
    """An SQL identifier, double-quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    """Whether the connection's own database (not an attached one) has the table."""
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return rows[0][0] > 0


def column_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str) -> bool:
    """Whether the table has the column (a warehouse written by an older version may not)."""
    rows = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ? AND column_name = ?",
        [schema, table, column],
    ).fetchall()
    return rows[0][0] > 0


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, **frames) -> Iterator[duckdb.DuckDBPyConnection]:
    """A transaction that commits when the block ends and rolls back on any error; `frames` are registered
    as views for its length (name=frame), so a step replaces its tables all at once or not at all."""
    for name, frame in frames.items():
        con.register(name, frame)
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in frames:
            con.unregister(name)
