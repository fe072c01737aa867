"""`source_records`: every loaded record of every source in one table, keyed `source:source_record_id`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from citizen_view.linkage.golden import COLUMNS_READ as GOLDEN_READ
from citizen_view.warehouse import column_exists, literal, quote, table_exists, transaction

if TYPE_CHECKING:
    import duckdb

# The columns the linkage model compares, computed from `source_records` (with the values that are no
# evidence masked: common_values.py; `*_block` keep them, for blocking only): canonical columns as they are,
# the birth date as yyyymmdd text (also for a date that did not parse: its characters in place), with
# day and month swapped, and the national ID as given (compacted), whether or not it passed its checksum.
LINKAGE_INPUT_SQL = """
    SELECT record_key, source, first_name_std, initials, family_name_std, string_split(family_name_std, ' ') AS family_name_words, sex,
           first_name_block, family_name_block,
           national_id_text AS national_id, street_std, house_number, postcode, city_std, birth_place_std, email, phone,
           date_of_birth_text AS dob,
           CASE WHEN day(date_of_birth) <= 12
                THEN strftime(date_of_birth, '%Y') || lpad(day(date_of_birth)::VARCHAR, 2, '0')
                     || lpad(month(date_of_birth)::VARCHAR, 2, '0') END AS dob_swapped,
           enc_national_id, enc_initial, blk_date_of_birth, blk_year_family, blk_names,
           enc_given_name, enc_family_name, enc_date_of_birth, enc_address
    FROM source_records
"""
# The linkage input's columns that are not encoded, in LINKAGE_INPUT_SQL's order (the online scorer builds them for
# one incoming record), and the encoded ones.
INPUT_COLUMNS = (
    "record_key",
    "source",
    "first_name_std",
    "initials",
    "family_name_std",
    "family_name_words",
    "sex",
    "first_name_block",
    "family_name_block",
    "national_id",
    "street_std",
    "house_number",
    "postcode",
    "city_std",
    "birth_place_std",
    "email",
    "phone",
    "dob",
    "dob_swapped",
)
ENCODED_COLUMNS = (
    "enc_national_id",
    "enc_initial",
    "enc_given_name",
    "enc_family_name",
    "enc_date_of_birth",
    "enc_address",
    "blk_date_of_birth",
    "blk_year_family",
    "blk_names",
)
# Keys, and columns made from another one (its words, its blocking copy, the date with day and month swapped): a
# share of records holding a value is measured on the column they are made from.
_KEYS_AND_DERIVED = (
    "record_key",
    "source",
    "family_name_words",
    "first_name_block",
    "family_name_block",
    "dob_swapped",
)
LINKAGE_COLUMNS = (*(c for c in INPUT_COLUMNS if c not in _KEYS_AND_DERIVED), *ENCODED_COLUMNS)
# The `source_records` columns the linkage input is computed from. A digest of them (and of what the golden record
# reads, DIGESTED below) with the record's key: a record whose digest differs from the one it was linked with
# (key_index.py keeps that) changed in what linkage or the golden record reads. A change in any other column (an
# attribute, the source file's line) leaves it as it is.
# (The `*_block` columns are copies common_values.masked_records_sql makes of the names.)
SOURCE_COLUMNS = tuple(
    sorted(
        {c.name for c in sqlglot.parse_one(LINKAGE_INPUT_SQL, read="duckdb").find_all(exp.Column)}
        - {"record_key", "first_name_block", "family_name_block"}
    )
)
DIGEST = "linkage_digest"
# Tables keyed by record carry each key's integer hash beside it (match_edges one per side): an update looks up a few
# thousand records among millions, and probing an integer column costs several times less than probing the text key.
# Two keys may share a hash, so a lookup on the hash finds a superset, checked on the keys where that matters.
KEY_HASH = "key_hash"
KEY_HASHES = {
    "source_records": {KEY_HASH: "record_key"},
    "linkage_components": {KEY_HASH: "record_key"},
    "citizen_source_link": {KEY_HASH: "record_key"},
    "match_edges": {"key_hash_l": "record_key_l", "key_hash_r": "record_key_r"},
}


_KEY_HASH = "hash({})"  # DuckDB's own: only DuckDB computes and compares these (ensure_key_hashes: if it changes)


def key_hash_sql(key: str = "record_key") -> str:
    """The integer hash of the record key `key` (a column or an expression) that KEY_HASHES columns hold."""
    return _KEY_HASH.format(key)


def key_hash_items(table: str) -> list[str]:
    """The select items that compute `table`'s KEY_HASHES columns from its key columns (none for another table)."""
    return [f"{key_hash_sql(key)} AS {column}" for column, key in KEY_HASHES.get(table, {}).items()]


def with_key_hash(keys: str) -> str:
    """A query of record keys (one column) as the hashes a KEY_HASHES column holds for them."""
    return f"SELECT {key_hash_sql('k')} FROM ({keys}) _keys(k)"


def ensure_key_hashes(con: duckdb.DuckDBPyConnection) -> None:
    """Give the KEY_HASHES tables present their hash columns where a writer left them out (a warehouse from before them,
    a table Splink wrote) or left a row without one, and write them anew where they were written by another hash (a
    DuckDB release whose `hash` differs, seen on the table's first rows): a lookup on the hash must not miss a row."""
    present: dict[str, set[str]] = {}
    for table, column in con.execute(  # one look at the catalog for every table (an update runs this each time)
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name IN (SELECT unnest(?::VARCHAR[]))",
        [list(KEY_HASHES)],
    ).fetchall():
        present.setdefault(table, set()).add(column)
    checked = [(t, column, key) for t, columns in KEY_HASHES.items() if t in present for column, key in columns.items()]
    for table, column, _key in checked:
        if column not in present[table]:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} UBIGINT")
    if not checked:
        return
    # every column's two checks in one statement, each its own branch of a UNION ALL (as scalar subqueries of one
    # SELECT they took 23 against 6 ms at 1M, warm; one by one, 10 ms); of the first rows, the two columns only (every
    # column of a wide table took 16 ms cold)
    checks = [
        check
        for table, column, key in checked
        for check in (
            f"SELECT count(*) FROM (SELECT {column}, {key} FROM {table} LIMIT 2048) WHERE {column} <> {key_hash_sql(key)}",
            f"SELECT count(*) FROM {table} WHERE {column} IS NULL",
        )
    ]
    found = dict(
        con.execute(" UNION ALL ".join(f"SELECT {i} AS i, ({c}) AS n" for i, c in enumerate(checks))).fetchall()
    )
    for i, (table, column, key) in enumerate(checked):
        other, missing = found[2 * i], found[2 * i + 1]
        if other:
            con.execute(f"UPDATE {table} SET {column} = {key_hash_sql(key)}")
        elif missing:
            con.execute(f"UPDATE {table} SET {column} = {key_hash_sql(key)} WHERE {column} IS NULL")


# The digest also holds what the golden record reads of a record beyond the linkage input (golden.COLUMNS_READ): a
# change there alone (a death recorded, a flat number, a name's spelling as written) makes the record "changed", so
# an update re-forms its citizen and rebuilds its golden record; without it the citizen kept the old value, with
# provenance naming a record that no longer held it. Not the extract's time: a file delivered again unchanged
# would make every record of its source changed.
DIGESTED = tuple(sorted(set(SOURCE_COLUMNS) | (GOLDEN_READ - {"record_key", "source_record_id", "extracted_at"})))


def digest_sql(key: str = "record_key") -> str:
    """The digest of a `source_records` row whose key is `key` (a column or an expression)."""
    return f"hash({key}, {', '.join(DIGESTED)})"


def _source_records_sql(con: duckdb.DuckDBPyConnection, source_names: list[str]) -> str:
    """The union of the canonical tables present, keyed `source:source_record_id`."""
    parts = [f"SELECT * FROM canonical.{quote(name)}" for name in source_names if table_exists(con, "canonical", name)]
    if not parts:
        raise RuntimeError("no canonical source tables in the warehouse: ingest at least one source first")
    union = " UNION ALL BY NAME ".join(parts)
    key = "source || ':' || source_record_id"
    return f"""
        SELECT {key} AS record_key, *, {digest_sql(key)} AS {DIGEST}, {key_hash_sql(key)} AS {KEY_HASH}
        FROM ({union})
        ORDER BY {COLLECT_ORDER}
    """


def ensure_digest(con: duckdb.DuckDBPyConnection) -> None:
    """Give a `source_records` written before the digest existed its digest column (computed from the rows as they are)."""
    if not column_exists(con, "main", "source_records", DIGEST):
        con.execute(f"ALTER TABLE source_records ADD COLUMN {DIGEST} UBIGINT")
        con.execute(f"UPDATE source_records SET {DIGEST} = {digest_sql()}")


def linkage_input_sql(
    con: duckdb.DuckDBPyConnection,
    common_values: str | None = None,
    *,
    where: str | None = None,
    digest: bool = False,
) -> str:
    """LINKAGE_INPUT_SQL over `source_records` with the values linkage treats as missing set to null
    (`common_values`: the table listing them; default the list stored with the model). `where`: a condition on
    `source_records` for the records wanted, applied before anything is computed. `digest`: with the records' digest
    (column linkage_digest) after the input's columns. (DuckDB does not push a filter
    on the result through the masking's joins: every record went through them, 0.2-0.3 s of CPU at 1M for a lookup
    of a thousand records.)"""
    from citizen_view.linkage.common_values import masked_records_sql

    head, _, tail = LINKAGE_INPUT_SQL.rpartition("FROM source_records")
    if digest:
        head = f"{head.rstrip()}, {DIGEST}\n    "
    return f"{head}FROM {masked_records_sql(con, common_values, where=where)}{tail}"


def field_shares(con: duckdb.DuckDBPyConnection, common_values: str | None = None) -> dict[str, float]:
    """For each column the model may compare, the share of all loaded records that hold a value (common values masked)."""
    selects = ", ".join(f"avg(({quote(c)} IS NOT NULL)::INT) AS {quote(c)}" for c in LINKAGE_COLUMNS)
    row = con.execute(f"SELECT {selects} FROM ({linkage_input_sql(con, common_values)})").fetchall()[0]
    return {c: float(v or 0.0) for c, v in zip(LINKAGE_COLUMNS, row)}


@dataclass
class SourceRecordsReport:
    records: int
    per_source: dict[str, int]
    rewritten: list[str]  # the sources whose records were written (every source when the table was written whole)
    whole: bool = True  # the table written whole, not only the rows of the sources that changed


# What `source_records` was collected from: per source, a digest of its canonical table's rows (count, XOR and sum of
# each row's hash: order-free), the code that collected it (extract_state.code_fingerprint: its SQL, DuckDB's hash),
# and whether the table is in COLLECT_ORDER, the order training samples in (written whole, or nothing appended since).
STATE = "source_records_state"
COLLECT_ORDER = "source, source_file, source_line, source_record_id"  # unique: one order, whoever writes it


def _canonical_digests_sql(names: list[str]) -> str:
    return " UNION ALL ".join(
        f"SELECT {literal(name)} AS source, count(*) AS n, bit_xor(h) AS x, sum(h::HUGEINT) AS s "
        f"FROM (SELECT hash(*COLUMNS(c.*)) AS h FROM canonical.{quote(name)} c)"
        for name in names
    )


def collect_source_records(
    con: duckdb.DuckDBPyConnection, source_names: list[str], *, keep_unchanged: bool = False
) -> SourceRecordsReport:
    """(Re)create `source_records` from the canonical tables present and say how many records each source put in.

    `keep_unchanged` (an incremental run): the records of a source whose canonical table holds the rows it held when
    they were collected stay as they are; only the sources that changed, arrived or left are deleted and written (at
    the table's end). When 1,000 records land in one agency's extract, the other agencies' millions are not sorted and
    written again. The table is written whole, as a full run writes it (sorted by source and line, the order training
    samples in), when it has no state yet, when another code collected it, or when the canonical tables' columns no
    longer make its columns."""
    from citizen_view.extract_state import code_fingerprint

    present = [name for name in source_names if table_exists(con, "canonical", name)]
    if not present:
        raise RuntimeError("no canonical source tables in the warehouse: ingest at least one source first")
    code = code_fingerprint()
    with transaction(con):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _canonical_now AS {_canonical_digests_sql(present)}")
        changed = _sources_changed(con, present, code) if keep_unchanged else None
        # in COLLECT_ORDER after this collect: written whole, or nothing appended to a table that was
        in_order = changed is None or (not set(present) & changed and _in_order(con))
        if changed is None:
            con.execute(f"CREATE OR REPLACE TABLE source_records AS {_source_records_sql(con, present)}")
            rewritten = present
        else:
            rewritten = [name for name in present if name in changed]
            if changed:
                con.execute(
                    f"DELETE FROM source_records WHERE source IN ({', '.join(literal(n) for n in sorted(changed))})"
                )
            if rewritten:
                con.execute(f"INSERT INTO source_records BY NAME {_source_records_sql(con, rewritten)}")
        con.execute(
            f"CREATE OR REPLACE TABLE {STATE} AS SELECT *, ? AS code, ? AS whole FROM _canonical_now",
            [code, in_order],
        )
        con.execute("DROP TABLE _canonical_now")
    n = con.execute("SELECT count(*) FROM source_records").fetchall()[0][0]
    per_source = dict(con.execute("SELECT source, count(*) FROM source_records GROUP BY 1 ORDER BY 1").fetchall())
    return SourceRecordsReport(n, per_source, rewritten, whole=changed is None)


def _in_order(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the kept state says `source_records` is in COLLECT_ORDER (before this collect replaces the state)."""
    return bool(con.execute(f"SELECT coalesce(bool_and(whole), false) FROM {STATE}").fetchall()[0][0])


def sort_for_training(con: duckdb.DuckDBPyConnection) -> bool:
    """Write `source_records` whole in COLLECT_ORDER when an incremental collect left rows appended out of it (its
    state says so), as a full run's collect leaves it: training samples records in the table's order, so a model
    trained after an incremental run (the model asset materialised alone) is trained as a full run trains it. Returns
    whether it was written."""
    if not (table_exists(con, "main", STATE) and column_exists(con, "main", STATE, "whole")):
        return False
    if not con.execute(f"SELECT count(*) FROM {STATE} WHERE NOT whole").fetchall()[0][0]:
        return False
    with transaction(con):
        con.execute(f"CREATE OR REPLACE TABLE source_records AS SELECT * FROM source_records ORDER BY {COLLECT_ORDER}")
        con.execute(f"UPDATE {STATE} SET whole = true")
    return True


def _sources_changed(con: duckdb.DuckDBPyConnection, present: list[str], code: str) -> set[str] | None:
    """The sources whose records `source_records` must take anew: those whose canonical table's digest differs from the
    one kept when they were collected, or that were not collected, and those it holds that are no longer present.
    None when it must be written whole (no table or state, another code, other columns)."""
    if not (table_exists(con, "main", "source_records") and table_exists(con, "main", STATE)):
        return None
    if con.execute(f"SELECT count(*) FROM {STATE} WHERE code IS DISTINCT FROM ?", [code]).fetchall()[0][0]:
        return None
    union = _source_records_sql(con, present)
    columns = [(d[0], str(d[1])) for d in con.execute(f"SELECT * FROM ({union}) LIMIT 0").description]
    if columns != [(d[0], str(d[1])) for d in con.execute("SELECT * FROM source_records LIMIT 0").description]:
        return None
    differ = con.execute(
        f"SELECT source FROM (SELECT source, n, x, s FROM _canonical_now EXCEPT SELECT source, n, x, s FROM {STATE})"
    ).fetchall()
    # the sources it holds are those the state lists (both written in one transaction): no scan of the table
    held = {s for (s,) in con.execute(f"SELECT source FROM {STATE}").fetchall()}
    return {s for (s,) in differ} | (held - set(present))
