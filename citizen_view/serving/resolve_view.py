"""The served view's part for resolving one record online: the model and its review band, the values linkage masks,
term frequencies, every linked record's model inputs (`resolve_records`, by record number `rid`, in that order), and
one table of keys (`resolve_keys`: a key of every blocking rule and side of every record, hashed with the key's
number, -> the record's `rid`), sorted by key. A service process holds both in memory once per view
(serving/resolve_index.py): a record's candidates are then found without a statement (linkage/candidates.py).

An incremental run's view update (`update_resolve_tables`) rewrites only the records whose linkage input or citizen
changed, by `resolve_digests` (each record's number, key and a digest of what linkage read of it and its citizen):
the others keep their numbers, the changed and new ones get numbers after the highest the view holds, theirs
included (so `resolve_records` stays in number order; a number whose record left in an earlier update may be given
again), and their keys are appended after the sorted ones (the service merges that tail in when it reads them). Which
records a resolve compares when more than its cap are found does not depend on the numbers
(`ResolveIndex.records_of`). Written whole, the tables took about 10 s at 1M (2.7M records, 21.7M keys); updated for a landing of
1,000 records, about 1.8 s. The term frequencies count every record and are counted anew either way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from citizen_view.linkage.candidates import probe_keys
from citizen_view.linkage.model import render_for, tf_columns
from citizen_view.linkage.online import INPUT_COLUMNS
from citizen_view.linkage.records import DIGEST, KEY_HASH, key_hash_sql
from citizen_view.linkage.review import WEIGHT_BAND, _weight
from citizen_view.warehouse import column_exists, rows_where, table_exists

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

US = "chr(31)"
RECORD_NUMBER = "rid"
DIGESTS = "resolve_digests"
# what a record's row in the resolve tables is made of: what linkage reads of it (records.DIGEST) and its citizen
_RECORD_DIGEST = f"hash(r.{DIGEST}, l.citizen_id)"
_TEMPS = (
    "_resolve_input",
    "_resolve_linked",
    "_resolve_now",
    "_resolve_held",
    "_resolve_stale",
    "_resolve_fresh",
    "_resolve_tf_input",
)


def publish_resolve_tables(con: duckdb.DuckDBPyConnection, sources: SourcesFile, schema: str) -> None:
    """The served view's part for online resolution (needs a trained model), written whole: the model and its band,
    the values linkage masks, term frequencies, and every linked record's model inputs with its probe keys, sorted by
    key."""
    from citizen_view.linkage.records import linkage_input_sql

    _drop(con, schema)
    model_json = _model_tables(con, sources, schema)
    if model_json is None:
        return
    # Each record's number is its row's position in this table plus one (the `rowid` of a table just written): one
    # number per record from 1 on, as `row_number() OVER ()` gave, without its single-threaded pass (at 1M: 1.5
    # against 6.6 s).
    digested = column_exists(con, "main", "source_records", DIGEST)  # else no digests: the next update writes whole
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _resolve_input AS SELECT * FROM ({linkage_input_sql(con, digest=digested)})"
    )
    try:
        _tf_tables(con, schema, model_json, "_resolve_input")
        con.execute(  # the linked records (a record without a citizen resolves to none)
            f"CREATE OR REPLACE TEMP TABLE _resolve_linked AS SELECT (r.rowid + 1)::UINTEGER AS {RECORD_NUMBER}, r.*, "
            f"l.citizen_id, {_RECORD_DIGEST if digested else 'NULL::UBIGINT'} AS digest "
            "FROM _resolve_input r JOIN citizen_source_link l USING (record_key)"
        )
        con.execute(  # read whole by each service process (serving/resolve_index.py), never probed: no index
            f"CREATE TABLE {schema}.resolve_records AS {_records_sql()} ORDER BY i.{RECORD_NUMBER}"
        )
        _columns_table(con, schema, model_json)
        con.execute(  # sorted by key, so that a service process holds it as it is read (no sort, no index)
            f"CREATE TABLE {schema}.resolve_keys AS {_keys_sql(model_json)} ORDER BY key_hash, {RECORD_NUMBER}"
        )
        if digested:
            con.execute(
                f"CREATE TABLE {schema}.{DIGESTS} AS SELECT {RECORD_NUMBER}, record_key, digest FROM _resolve_linked"
            )
    finally:
        _drop_temps(con)


def update_resolve_tables(con: duckdb.DuckDBPyConnection, sources: SourcesFile, schema: str) -> int | None:
    """Bring the resolve tables of a view (attached as `schema`, written under the same model) to the warehouse's
    state, rewriting only the records whose digest (what linkage read of them, and their citizen) differs from the
    one they were written with, and those that arrived or left (module docstring); returns how many records it wrote.
    Written whole (returns None) for a view without digests (from before them, or written from a warehouse without
    them) or when the warehouse's records or links lack their key hashes or digests, or hold key hashes this DuckDB
    does not compute (a warehouse an incremental link has not brought up to date: records.ensure_key_hashes). As in a full publish, only linked records are held, and the term frequencies count
    every record."""
    from citizen_view.linkage.records import linkage_input_sql

    present = _tables(con, schema)
    hashed = all(
        column_exists(con, "main", t, c) for t in ("source_records", "citizen_source_link") for c in (KEY_HASH, DIGEST)
    )
    if hashed:  # and hashed by this DuckDB (a new release may hash otherwise: then every stored hash differs)
        current = " AND ".join(
            f"(SELECT bool_and({KEY_HASH} = {key_hash_sql()}) FROM (SELECT {KEY_HASH}, record_key FROM {t} LIMIT 2048))"
            for t in ("source_records", "citizen_source_link")
        )
        hashed = con.execute(f"SELECT coalesce({current}, false)").fetchall()[0][0]
    if not {"resolve_records", "resolve_keys", DIGESTS} <= present or not hashed:
        publish_resolve_tables(con, sources, schema)
        return None
    for table in ("resolve_model", "resolve_masked", "resolve_tf", "resolve_tf_by_source", "resolve_columns"):
        con.execute(f"DROP TABLE IF EXISTS {schema}.{table}")
    model_json = _model_tables(con, sources, schema)
    if model_json is None:  # no model any more (a view under another model is written whole before this)
        _drop(con, schema)
        return None
    try:
        # Compared on integers: each record's key hash and its digest, which holds the key itself (records.DIGEST);
        # at 1M, 0.8 against 1.1 s compared on the keys.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _resolve_now AS SELECT r.{KEY_HASH}, {_RECORD_DIGEST} AS digest "
            f"FROM source_records r JOIN citizen_source_link l ON l.{KEY_HASH} = r.{KEY_HASH} "
            "AND l.record_key = r.record_key"
        )
        held = f"{schema}.{DIGESTS}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _resolve_held AS SELECT {RECORD_NUMBER}, {key_hash_sql()} AS {KEY_HASH}, "
            f"digest FROM {held}"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _resolve_stale AS SELECT {RECORD_NUMBER} FROM _resolve_held "
            f"ANTI JOIN _resolve_now USING ({KEY_HASH}, digest)"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _resolve_fresh AS SELECT {KEY_HASH}, digest FROM _resolve_now "
            f"ANTI JOIN _resolve_held USING ({KEY_HASH}, digest)"
        )
        # numbers after the highest the view holds (the stale ones' too): the new rows come after the rows kept
        (last,) = con.execute(f"SELECT coalesce(max({RECORD_NUMBER}), 0) FROM _resolve_held").fetchall()[0]
        for table in ("resolve_records", "resolve_keys", DIGESTS):
            con.execute(
                f"DELETE FROM {schema}.{table} WHERE {RECORD_NUMBER} IN (SELECT {RECORD_NUMBER} FROM _resolve_stale)"
            )
        # the fresh records' input, found on their key hashes and then kept by hash and digest (two keys may share a
        # hash; the digest holds the key)
        hashes = f"{KEY_HASH} IN (SELECT {KEY_HASH} FROM _resolve_fresh)"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _resolve_input AS SELECT * FROM "
            f"({linkage_input_sql(con, where=rows_where('source_records', hashes), digest=True)})"
        )
        links = (
            f"SELECT record_key, citizen_id FROM citizen_source_link WHERE {rows_where('citizen_source_link', hashes)}"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _resolve_linked AS "
            f"SELECT ({last} + row_number() OVER (ORDER BY x.record_key))::UINTEGER AS {RECORD_NUMBER}, x.* FROM ("
            f"SELECT r.*, l.citizen_id, {_RECORD_DIGEST} AS digest FROM _resolve_input r JOIN ({links}) l "
            f"USING (record_key)) x SEMI JOIN _resolve_fresh f ON f.{KEY_HASH} = {key_hash_sql('x.record_key')} "
            "AND f.digest = x.digest"
        )
        con.execute(f"INSERT INTO {schema}.resolve_records {_records_sql()} ORDER BY i.{RECORD_NUMBER}")
        con.execute(f"INSERT INTO {schema}.resolve_keys {_keys_sql(model_json)} ORDER BY key_hash, {RECORD_NUMBER}")
        con.execute(f"INSERT INTO {held} SELECT {RECORD_NUMBER}, record_key, digest FROM _resolve_linked")
        written = con.execute("SELECT count(*) FROM _resolve_linked").fetchall()[0][0]
        # every record's term frequencies, counted anew from their columns alone
        columns = ", ".join(["source", *(f'"{c}"' for c in tf_columns(json.loads(model_json)))])
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _resolve_tf_input AS SELECT {columns} FROM ({linkage_input_sql(con)})"
        )
        _tf_tables(con, schema, model_json, "_resolve_tf_input")
        _columns_table(con, schema, model_json)
    finally:
        _drop_temps(con)
    return written


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    """The resolve tables the view attached as `schema` holds."""
    return {
        t
        for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND starts_with(table_name, 'resolve_')",
            [schema],
        ).fetchall()
    }


def _drop(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    for table in _tables(con, schema):
        con.execute(f"DROP TABLE {schema}.{table}")


def _drop_temps(con: duckdb.DuckDBPyConnection) -> None:
    for table in _TEMPS:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _model_tables(con: duckdb.DuckDBPyConnection, sources: SourcesFile, schema: str) -> str | None:
    """Write `resolve_model` and `resolve_masked`; the model's JSON (for DuckDB), or None (and nothing written) when
    the warehouse has no model, or one records cannot be resolved with."""
    if not table_exists(con, "main", "linkage_model") or not table_exists(con, "main", "linkage_threshold"):
        return None
    # the view resolves in DuckDB: a model trained on Spark is written for DuckDB first (its SQL is Spark's)
    model_json = json.dumps(
        render_for(json.loads(con.execute("SELECT model_json FROM linkage_model").fetchall()[0][0]), "duckdb")
    )
    if any(c["output_column_name"].endswith("_encoded") for c in json.loads(model_json)["comparisons"]):
        return None  # a model on encodings made at the agencies: a plain record cannot be compared with it
    threshold = float(con.execute("SELECT threshold_weight FROM linkage_threshold").fetchall()[0][0])
    band = sources.review.band
    low, high = (threshold - WEIGHT_BAND, threshold + WEIGHT_BAND) if band is None else map(_weight, band)
    q = sources.quality
    con.execute(
        f"CREATE TABLE {schema}.resolve_model AS SELECT ?::VARCHAR AS model_json, ?::DOUBLE AS threshold, "
        "?::DOUBLE AS low, ?::DOUBLE AS high, ?::DATE AS earliest, ?::DATE AS latest",
        [model_json, threshold, low, high, q.earliest_date_of_birth, q.latest_date_of_birth],
    )
    masked = "linkage_common_values" if table_exists(con, "main", "linkage_common_values") else None
    con.execute(
        f"CREATE TABLE {schema}.resolve_masked AS SELECT field, value FROM {masked}"
        if masked
        else f"CREATE TABLE {schema}.resolve_masked (field VARCHAR, value VARCHAR)"
    )
    return model_json


def _tf_tables(con: duckdb.DuckDBPyConnection, schema: str, model_json: str, records: str) -> None:
    """`resolve_tf` and `resolve_tf_by_source`, counted over every record of `records` (linkage input rows)."""
    tfs = tf_columns(json.loads(model_json))
    parts = [
        f"SELECT '{c}' || {US} || {c} AS tf_key, count(*)::DOUBLE / (SELECT count({c}) FROM {records}) AS tf "
        f"FROM {records} WHERE {c} IS NOT NULL GROUP BY {c}"
        for c in tfs
    ] or ["SELECT NULL::VARCHAR AS tf_key, NULL::DOUBLE AS tf WHERE false"]
    con.execute(f"CREATE TABLE {schema}.resolve_tf AS {' UNION ALL '.join(parts)}")
    # The same counts per source, so that a role's term frequencies count the records of its sources only: with
    # every agency's, a rare name's weight told a role how many records other agencies hold with it.
    by_source = [
        f"SELECT '{c}' || {US} || {c} AS tf_key, source, count(*) AS n FROM {records} "
        f"WHERE {c} IS NOT NULL GROUP BY {c}, source UNION ALL "
        f"SELECT '{c}', source, count({c}) FROM {records} GROUP BY source"
        for c in tfs
    ] or ["SELECT NULL::VARCHAR AS tf_key, NULL::VARCHAR AS source, NULL::BIGINT AS n WHERE false"]
    con.execute(f"CREATE TABLE {schema}.resolve_tf_by_source AS {' UNION ALL '.join(by_source)} ORDER BY 1, 2")


def _records_sql() -> str:
    return (
        f"SELECT i.{RECORD_NUMBER}, {', '.join(f'i.{c}' for c in INPUT_COLUMNS)}, i.citizen_id FROM _resolve_linked i"
    )


def _columns_table(con: duckdb.DuckDBPyConnection, schema: str, model_json: str) -> None:
    """No rows: the records' columns and term frequencies with their types, for a model whose levels DuckDB
    evaluates (resolve.py)."""
    tfs = tf_columns(json.loads(model_json))
    tf_join = " ".join(f"LEFT JOIN {schema}.resolve_tf t_{c} ON t_{c}.tf_key = '{c}' || {US} || i.{c}" for c in tfs)
    con.execute(
        f"CREATE TABLE {schema}.resolve_columns AS SELECT "
        + ", ".join([*(f"i.{c}" for c in INPUT_COLUMNS), "i.citizen_id", *(f"t_{c}.tf AS tf_{c}" for c in tfs)])
        + f" FROM _resolve_linked i {tf_join} LIMIT 0"
    )


def _keys_sql(model_json: str) -> str:
    """Every probe key of the records of `_resolve_linked`, with the record's number."""
    key_rows = [
        f"SELECT {k.stored_sql('i.')} AS key_hash, i.{RECORD_NUMBER} FROM _resolve_linked i "
        f"WHERE {' AND '.join(f'i.{c} IS NOT NULL' for c in k.stored)}"
        for k in probe_keys(model_json)
    ] or [f"SELECT NULL::UBIGINT AS key_hash, NULL::UINTEGER AS {RECORD_NUMBER} WHERE false"]
    return f"SELECT * FROM ({' UNION ALL '.join(key_rows)})"
