"""The served view's part for resolving one record online: the model and its review band, the values linkage masks,
term frequencies, every linked record's model inputs (`resolve_records`, by record number `rid`, in that order), and
one table of keys (`resolve_keys`: a key of every blocking rule and side of every record, hashed with the key's
number, -> the record's `rid`), sorted by key. A service process holds both in memory once per view
(serving/resolve_index.py): a record's candidates are then found without a statement (linkage/candidates.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from citizen_view.linkage.candidates import probe_keys
from citizen_view.linkage.model import render_for, tf_columns
from citizen_view.linkage.online import INPUT_COLUMNS
from citizen_view.linkage.review import WEIGHT_BAND, _weight
from citizen_view.warehouse import table_exists

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

US = "chr(31)"
RECORD_NUMBER = "rid"


def publish_resolve_tables(con: duckdb.DuckDBPyConnection, sources: SourcesFile, schema: str) -> None:
    """The served view's part for online resolution (needs a trained model): the model and its band, the values
    linkage masks, term frequencies, and every linked record's model inputs with its probe keys, sorted by key."""
    from citizen_view.linkage.records import linkage_input_sql

    if not table_exists(con, "main", "linkage_model") or not table_exists(con, "main", "linkage_threshold"):
        return
    # the view resolves in DuckDB: a model trained on Spark is written for DuckDB first (its SQL is Spark's)
    model_json = json.dumps(
        render_for(json.loads(con.execute("SELECT model_json FROM linkage_model").fetchall()[0][0]), "duckdb")
    )
    if any(c["output_column_name"].endswith("_encoded") for c in json.loads(model_json)["comparisons"]):
        return  # a model on encodings made at the agencies: a plain record cannot be compared with it
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
    keys = probe_keys(model_json)
    # Each record's number is its row's position in this table plus one (the `rowid` of a table just written): one
    # number per record from 1 on, as `row_number() OVER ()` gave, without its single-threaded pass (at 1M: 1.5
    # against 6.6 s).
    con.execute(f"CREATE OR REPLACE TEMP TABLE _resolve_input AS SELECT * FROM ({linkage_input_sql(con)})")
    try:
        tfs = tf_columns(json.loads(model_json))
        parts = [
            f"SELECT '{c}' || {US} || {c} AS tf_key, count(*)::DOUBLE / (SELECT count({c}) FROM _resolve_input) AS tf "
            f"FROM _resolve_input WHERE {c} IS NOT NULL GROUP BY {c}"
            for c in tfs
        ] or ["SELECT NULL::VARCHAR AS tf_key, NULL::DOUBLE AS tf WHERE false"]
        con.execute(f"CREATE TABLE {schema}.resolve_tf AS {' UNION ALL '.join(parts)}")
        # The same counts per source, so that a role's term frequencies count the records of its sources only: with
        # every agency's, a rare name's weight told a role how many records other agencies hold with it.
        by_source = [
            f"SELECT '{c}' || {US} || {c} AS tf_key, source, count(*) AS n FROM _resolve_input "
            f"WHERE {c} IS NOT NULL GROUP BY {c}, source UNION ALL "
            f"SELECT '{c}', source, count({c}) FROM _resolve_input GROUP BY source"
            for c in tfs
        ] or ["SELECT NULL::VARCHAR AS tf_key, NULL::VARCHAR AS source, NULL::BIGINT AS n WHERE false"]
        con.execute(f"CREATE TABLE {schema}.resolve_tf_by_source AS {' UNION ALL '.join(by_source)} ORDER BY 1, 2")
        tf_join = " ".join(f"LEFT JOIN {schema}.resolve_tf t_{c} ON t_{c}.tf_key = '{c}' || {US} || i.{c}" for c in tfs)
        con.execute(  # the linked records (a record without a citizen resolves to none)
            f"CREATE OR REPLACE TEMP TABLE _resolve_linked AS SELECT (i.rowid + 1)::UINTEGER AS {RECORD_NUMBER}, i.*, "
            "l.citizen_id FROM _resolve_input i JOIN citizen_source_link l USING (record_key)"
        )
        con.execute(  # read whole by each service process (serving/resolve_index.py), never probed: no index
            f"CREATE TABLE {schema}.resolve_records AS SELECT i.{RECORD_NUMBER}, "
            f"{', '.join(f'i.{c}' for c in INPUT_COLUMNS)}, i.citizen_id FROM _resolve_linked i ORDER BY i.{RECORD_NUMBER}"
        )
        con.execute(  # no rows: the records' columns and term frequencies with their types, for a model whose levels
            # DuckDB evaluates (resolve.py)
            f"CREATE TABLE {schema}.resolve_columns AS SELECT "
            + ", ".join([*(f"i.{c}" for c in INPUT_COLUMNS), "i.citizen_id", *(f"t_{c}.tf AS tf_{c}" for c in tfs)])
            + f" FROM _resolve_linked i {tf_join} LIMIT 0"
        )
        key_rows = [
            f"SELECT {k.stored_sql('i.')} AS key_hash, i.{RECORD_NUMBER} FROM _resolve_linked i "
            f"WHERE {' AND '.join(f'i.{c} IS NOT NULL' for c in k.stored)}"
            for k in keys
        ] or [f"SELECT NULL::UBIGINT AS key_hash, NULL::UINTEGER AS {RECORD_NUMBER} WHERE false"]
        con.execute(  # sorted by key, so that a service process holds it as it is read (no sort, no index)
            f"CREATE TABLE {schema}.resolve_keys AS SELECT * FROM ({' UNION ALL '.join(key_rows)}) "
            f"ORDER BY key_hash, {RECORD_NUMBER}"
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _resolve_input")
        con.execute("DROP TABLE IF EXISTS _resolve_linked")
