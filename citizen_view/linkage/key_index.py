"""Every record's blocking keys and the term-frequency counts, kept so an incremental run looks a few records up.

A full run's scoring step writes, for the saved model:

- `linkage_keys`: per record, the digest of what linkage read of it when it was indexed (records.DIGEST; the one it
  was linked with is kept in `citizen_source_link`, written with the link), one hashed key per blocking rule and
  side (the keys of linkage/candidates.py, 32 bits of DuckDB's `hash`, not the MD5 the served view's resolve keys
  use: see HASH and KEY_BITS) and the values of the term-frequency columns;
- `linkage_tf`: per term-frequency column, rows (value, n) whose sums are the records holding each value, and a
  row with value NULL whose sum is the records holding any value (Splink's count / non-null count);
- `linkage_keys_model`: which model they were written for.

An incremental run adds the records it has not seen (their keys appended, +1 rows appended to `linkage_tf`),
drops the records gone (-1 rows), and finds the old records a new one can meet by comparing small sets of key
hashes with the key columns: one pass over narrow integer columns instead of the linkage input of every record.
A model whose rules have a condition with no equality, or an equality over an expression rather than a column,
is not indexed: the incremental run then reads every record as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import duckdb

from citizen_view.linkage.candidates import ProbeKey, probe_keys, unprobed_rules
from citizen_view.linkage.model import render_for, tf_columns
from citizen_view.linkage.records import (
    DIGEST,
    ENCODED_COLUMNS,
    INPUT_COLUMNS,
    KEY_HASH,
    ensure_digest,
    key_hash_sql,
    linkage_input_sql,
)
from citizen_view.warehouse import rows_where, table_exists, transaction

KEYS, TF, MODEL = "linkage_keys", "linkage_tf", "linkage_keys_model"
# DuckDB's own hash: only DuckDB compares these keys (resolve's MD5 keys are for Python to compute; here they cost
# ~5x the CPU, 2.8 against 0.5 s at 200k). Part of the fingerprint with DuckDB's version (its hash may change between
# releases), so an index written with another hash, or by another DuckDB, is rewritten rather than silently missed.
HASH = "hash"
# A blocking key is kept as the high 32 bits of that hash: every key column is read whole when an update looks its new
# records' keys up, so its width is what that costs (at 1M, eleven columns: about 95 MB read at 64 bits, half at 32).
# A shared 32-bit key only adds a candidate, which scoring (blocked by the rules themselves) pairs with nothing it
# should not: about one extra candidate per key column per thousand new records at 2.7M records.
KEY_BITS = 32
# What an index holds besides its keys, part of the fingerprint: an index written without them is rewritten.
HOLDS = f"digest {KEY_HASH}"
_COLUMNS = set(INPUT_COLUMNS) | set(ENCODED_COLUMNS)


def _model_json(model: dict[str, Any]) -> str:
    return json.dumps(render_for(model, "duckdb"), sort_keys=True)


def keys_of(model: dict[str, Any]) -> tuple[ProbeKey, ...] | None:
    """The model's probe keys, or None when some rule cannot be looked up by key (see the module's note)."""
    model_json = _model_json(model)
    keys = probe_keys(model_json)
    if unprobed_rules(model_json) or not keys:
        return None
    if any(c not in _COLUMNS for k in keys for c in (*k.stored, *k.incoming)):
        return None
    return keys


def _fingerprint(model: dict[str, Any]) -> str:
    return hashlib.sha256((_model_json(model) + HASH + str(KEY_BITS) + HOLDS + duckdb.__version__).encode()).hexdigest()


def _block_key(key: ProbeKey, alias: str = "") -> str:
    """A record's key for `key` as the index holds it: the top KEY_BITS bits of its hash (NULL stays NULL)."""
    return f"({key.stored_sql(alias, HASH)} >> {64 - KEY_BITS})::UINTEGER"


def invalidate(con: duckdb.DuckDBPyConnection) -> None:
    """Mark the index stale (it is rewritten before its next use): called in the transaction that replaces the scored
    pairs, so a run that dies before the index is rewritten leaves no index that claims records it does not hold."""
    con.execute(f"DROP TABLE IF EXISTS {MODEL}")


def is_current(con: duckdb.DuckDBPyConnection, model: dict[str, Any]) -> bool:
    """Whether the index exists and was written for this model."""
    if not table_exists(con, "main", MODEL):
        return False
    rows = con.execute(f"SELECT fingerprint FROM {MODEL}").fetchall()
    return bool(rows) and rows[0][0] == _fingerprint(model)


def _key_columns(model: dict[str, Any], keys: tuple[ProbeKey, ...], alias: str = "") -> str:
    """The stored record's key hash, digest, keys and term-frequency values, as select items over input columns (with
    the digest: linkage_input_sql(digest=True))."""
    items = [f"{key_hash_sql(alias + 'record_key')} AS {KEY_HASH}", f"{alias}{DIGEST} AS digest"]
    items += [f"{_block_key(k, alias)} AS {k.column}" for k in keys]
    items += [f'{alias}"{c}"::VARCHAR AS "tf_{c}"' for c in tf_columns(model)]
    return ", ".join(items)


def _tf_rows(model: dict[str, Any], table: str, sign: str = "") -> str:
    """`linkage_tf` rows counting the term-frequency values of the records in `table` (its tf_ columns)."""
    parts = []
    for c in tf_columns(model):
        t = f'"tf_{c}"'
        parts.append(
            f"SELECT '{c}' AS column_name, {t} AS value, {sign}count(*) AS n FROM {table} WHERE {t} IS NOT NULL "
            f"GROUP BY {t} UNION ALL SELECT '{c}', NULL, {sign}count({t}) FROM {table}"
        )
    return (
        " UNION ALL ".join(parts) or "SELECT NULL::VARCHAR AS column_name, NULL::VARCHAR AS value, 0 AS n WHERE false"
    )


def write(con: duckdb.DuckDBPyConnection, model: dict[str, Any]) -> bool:
    """(Re)write the index over every record of `source_records` for `model`; False (and no index) when the
    model's rules cannot be looked up by key."""
    keys = keys_of(model)
    with transaction(con):
        for table in (MODEL, KEYS, TF):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        if keys is None:
            return False
        ensure_digest(con)
        con.execute(
            f"CREATE TABLE {KEYS} AS SELECT record_key, {_key_columns(model, keys)} "
            f"FROM ({linkage_input_sql(con, digest=True)})"
        )
        con.execute(f"CREATE TABLE {TF} AS {_tf_rows(model, KEYS)}")
        con.execute(
            f"CREATE TABLE {MODEL} AS SELECT ?::VARCHAR AS fingerprint, now() AS written_at", [_fingerprint(model)]
        )
    return True


def sync(con: duckdb.DuckDBPyConnection, model: dict[str, Any], new_input: str, gone: str | None) -> int:
    """Index the records of `new_input` (linkage input rows with their digest) as they are now, and drop the records of `gone`
    (record_key) it holds, appending their term-frequency counts (+1 / -1). A record the index holds with other keys
    or values (its content changed since, e.g. a run that died after indexing it, rerun on a corrected extract) has
    its old entry taken back and the new one added. Returns how many the index did not hold: such a record was never
    scored (a full run indexes every record it scores, an update every record before it scores it), so it has no
    scored pairs to replace."""
    keys = keys_of(model)
    with transaction(con):  # keys and counts together, or a rerun would find the keys and never add the counts
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _keys_now AS SELECT record_key, {_key_columns(model, keys)} FROM {new_input}"
        )
        # the few of them already indexed (a semi-join on the key hashes, its filter pushed into the scan of the
        # index; an anti join against the whole index probed every indexed key, three times the CPU at 1M), and of
        # those only the ones whose key is one of them (two keys may share a hash)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _keys_held AS SELECT * FROM {KEYS} "
            f"WHERE {rows_where(KEYS, f'{KEY_HASH} IN (SELECT {KEY_HASH} FROM _keys_now)')}"
        )
        con.execute("DELETE FROM _keys_held WHERE record_key NOT IN (SELECT record_key FROM _keys_now)")
        fresh = con.execute("SELECT count(*) FROM _keys_now ANTI JOIN _keys_held USING (record_key)").fetchall()[0][0]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _keys_stale AS SELECT * FROM _keys_held EXCEPT ALL SELECT * FROM _keys_now"
        )
        _forget(con, model, "_keys_stale")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _keys_added AS SELECT * FROM _keys_now "
            "ANTI JOIN (SELECT record_key FROM _keys_held EXCEPT SELECT record_key FROM _keys_stale) USING (record_key)"
        )
        con.execute(f"INSERT INTO {KEYS} SELECT * FROM _keys_added")
        con.execute(f"INSERT INTO {TF} {_tf_rows(model, '_keys_added')}")
        for table in ("_keys_now", "_keys_held", "_keys_stale", "_keys_added"):
            con.execute(f"DROP TABLE {table}")
        if gone:
            _forget(con, model, gone)
    return fresh


def forget(con: duckdb.DuckDBPyConnection, model: dict[str, Any], gone: str) -> None:
    """Drop the records of `gone` (record_key) from the index, their term-frequency counts taken back (-1 rows)."""
    with transaction(con):  # counts and keys together, or a rerun would take the counts back twice
        _forget(con, model, gone)


def _forget(con: duckdb.DuckDBPyConnection, model: dict[str, Any], gone: str) -> None:
    if not con.execute(f"SELECT count(*) FROM {gone}").fetchall()[0][0]:
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE _keys_gone AS SELECT * FROM {KEYS} SEMI JOIN {gone} USING (record_key)")
    con.execute(f"INSERT INTO {TF} {_tf_rows(model, '_keys_gone', '-')}")
    # a value no record holds any more is not kept (a name of a record an agency deleted): its rows, summing to 0, go
    con.execute(
        f"DELETE FROM {TF} t USING (SELECT column_name, value FROM {TF} GROUP BY ALL HAVING sum(n) = 0) z "
        "WHERE t.column_name = z.column_name AND t.value = z.value"
    )
    con.execute(f"DELETE FROM {KEYS} WHERE record_key IN (SELECT record_key FROM _keys_gone)")
    con.execute("DROP TABLE _keys_gone")


def candidates_sql(model: dict[str, Any], new_input: str) -> str:
    """SQL for the key hashes (records.KEY_HASH) of indexed records some blocking rule could pair with a record of
    `new_input` (linkage input rows), in either orientation: a superset of the pairs the rules form (a hash collision
    adds a candidate)."""
    keys = keys_of(model)
    probes = []
    for k in keys:
        incoming = _block_key(dataclasses.replace(k, stored=k.incoming), "n.")
        probes.append(f"SELECT rowid FROM {KEYS} WHERE {k.column} IN (SELECT {incoming} FROM {new_input} n)")
    # each key column probed for row ids, the key hashes read once for the rows found (not once per key column)
    return f"SELECT {KEY_HASH} FROM {KEYS} WHERE rowid IN ({' UNION '.join(probes)})"


def term_frequency_sql(model: dict[str, Any], pool: str) -> str:
    """`pool`'s rows with each term-frequency column (`tf_<column>`) from the counts, for the values in `pool` only:
    the same numbers new_pairs.term_frequency_sql counts over every record."""
    joins, selects = [], []
    for i, column in enumerate(tf_columns(model)):
        c = f'"{column}"'
        total = f"(SELECT sum(n) FROM {TF} WHERE column_name = '{column}' AND value IS NULL)"
        joins.append(
            f"LEFT JOIN (SELECT value, cast(sum(n) AS float8) / {total} AS tf FROM {TF} "
            f"WHERE column_name = '{column}' AND value IN (SELECT {c}::VARCHAR FROM {pool}) GROUP BY value) t{i} "
            f"ON t{i}.value = p.{c}::VARCHAR"
        )
        selects.append(f't{i}.tf AS "tf_{column}"')
    return f"SELECT p.*{''.join(', ' + s for s in selects)} FROM {pool} p {' '.join(joins)}"
