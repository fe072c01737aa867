"""Score a few records against the records they can meet with the saved model's own Splink SQL, in the warehouse.

Splink's scoring for a saved model is plain SQL: blocked pairs, each comparison's level (gamma), each level's
weight with its term-frequency adjustment, and the prior added up. A Linker builds that pipeline, plus its own
tables, on every construction (seconds at a million records); here the same SQL (Splink's own generators, from the
model's settings) runs once, in one DuckDB statement over every new-vs-candidate pair, with term frequencies over all
records counted as Splink counts them. Pairs are formed as Splink's dedupe forms them (left key below right key, any
prediction rule true for that orientation), so the weights are those a full run gives the same pair.

Splink takes a few tenths of a second of CPU to generate that SQL (settings parsed, every level's SQL run through
sqlglot), whatever the population: it is generated when the model is saved and kept in `linkage_scoring_sql`, with a
fingerprint of the model, the floor and Splink's version; an update reads it, and generates (and keeps) it only when
the fingerprint differs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

import splink

from citizen_view.linkage.model import render_for, tf_columns
from citizen_view.linkage.records import KEY_HASHES, key_hash_items
from citizen_view.warehouse import table_columns, table_exists

if TYPE_CHECKING:
    import duckdb


TABLE = "linkage_scoring_sql"
Pipeline = tuple[list[str], str, list[tuple[str, str]], list[str]]


@functools.lru_cache(maxsize=4)
def _pipeline(model_json: str, floor: float) -> Pipeline:
    """(blocked columns, comparison-vector columns, Splink's predict SQL steps, prediction rules) of a saved model."""
    from splink import SettingsCreator
    from splink.internals.predict import predict_from_comparison_vectors_sqls_using_settings

    settings = dict(render_for(json.loads(model_json), "duckdb"))
    settings["retain_matching_columns"] = False
    obj = SettingsCreator.from_path_or_dict(settings).get_settings("duckdb")
    steps = predict_from_comparison_vectors_sqls_using_settings(obj, threshold_match_weight=floor)
    rules = [r["blocking_rule"] for r in settings["blocking_rules_to_generate_predictions"]]
    return (
        obj._columns_to_select_for_blocking,
        ", ".join(obj._columns_to_select_for_comparison_vector_values),
        [(s["output_table_name"], s["sql"]) for s in steps],
        rules,
    )


def _fingerprint(model_json: str, floor: float) -> str:
    return hashlib.sha256(f"{model_json}|{floor!r}|splink {splink.__version__}".encode()).hexdigest()


def store_pipeline(con: duckdb.DuckDBPyConnection, model: dict[str, Any], *, floor: float) -> Pipeline:
    """Generate the model's scoring SQL and keep it in `linkage_scoring_sql` (replacing it); returns it."""
    model_json = json.dumps(model, sort_keys=True)
    pipeline = _pipeline(model_json, floor)
    con.execute(f"CREATE OR REPLACE TABLE {TABLE} (fingerprint VARCHAR, pipeline JSON)")
    con.execute(f"INSERT INTO {TABLE} VALUES (?, ?)", [_fingerprint(model_json, floor), json.dumps(pipeline)])
    return pipeline


def is_stored(con: duckdb.DuckDBPyConnection, model: dict[str, Any], *, floor: float) -> bool:
    """Whether `linkage_scoring_sql` holds the scoring SQL of this model, floor and Splink version."""
    return _stored(con, json.dumps(model, sort_keys=True), floor) is not None


def _stored(con: duckdb.DuckDBPyConnection, model_json: str, floor: float) -> Pipeline | None:
    if not table_exists(con, "main", TABLE):
        return None
    rows = con.execute(
        f"SELECT pipeline FROM {TABLE} WHERE fingerprint = ?", [_fingerprint(model_json, floor)]
    ).fetchall()
    if not rows:
        return None
    blocked, vectors, steps, rules = json.loads(rows[0][0])
    return blocked, vectors, [(name, sql) for name, sql in steps], rules


def scoring_pipeline(con: duckdb.DuckDBPyConnection, model: dict[str, Any], *, floor: float) -> Pipeline:
    """The model's scoring SQL as kept in the warehouse; generated and kept when it is missing or stale."""
    stored = _stored(con, json.dumps(model, sort_keys=True), floor)
    return stored if stored is not None else store_pipeline(con, model, floor=floor)


_SIDE_COLUMN = re.compile(r'\b[lr]"?\."?([A-Za-z_][A-Za-z0-9_]*)')  # l.x, "l"."x", r."x": a column of one side


def pool_columns(model: dict[str, Any], pipeline: Pipeline) -> list[str]:
    """The input columns a pool for score_pairs_sql must hold: the record key, those the blocked pairs select and the
    prediction rules join on (the term-frequency columns are made from the columns they count); the others (say,
    encodings a model on plain values never compares) need not be read."""
    blocked, _, _, rules = pipeline
    named = {m for text in (*blocked, *rules) for m in _SIDE_COLUMN.findall(text)}
    tf = {f"tf_{c}" for c in tf_columns(model)}
    return sorted({"record_key"} | (named - tf) | set(tf_columns(model)))


def score_pairs_sql(
    model: dict[str, Any],
    pool: str,
    *,
    floor: float,
    pipeline: Pipeline | None = None,
    key: str = "record_key",
    new_only: bool = True,
) -> str:
    """SQL for the scored pairs (Splink's predict columns) among the records of `pool` in which at least one record
    is new (`pool`: the model's input columns, tf_ columns, and a boolean `is_new`), at or above `floor`.
    `pipeline`: the model's scoring SQL (scoring_pipeline); generated here when not given. `key`: the pool's column
    pairs are formed and looked up by: record_key, or a number in record_key's order (cheaper to join on); `new_only`
    False: every pair of the pool (no `is_new` column needed)."""
    blocked, vectors, steps, rules = pipeline or _pipeline(json.dumps(model, sort_keys=True), floor)
    # With new records, each rule joins them with the pool twice (new on the left; new on the right, an old one on
    # the left) rather than the pool with itself and then dropping the old pairs: tens of thousands of candidates
    # sharing a common name formed every pair among themselves first (at 1M, ~40% of scoring's CPU).
    new = f"(SELECT * FROM {pool} WHERE is_new)"
    sides = [(new, pool, ""), (pool, new, " AND NOT l.is_new")] if new_only else [(pool, pool, "")]
    pairs = " UNION ALL ".join(
        f"SELECT l.{key} AS key_l, r.{key} AS key_r, {i} AS match_key FROM {left} l JOIN {right} r "
        f"ON ({rule}) AND l.{key} < r.{key}{extra}"
        for i, rule in enumerate(rules)
        for left, right, extra in sides
    )
    ctes = [
        f"__splink__pairs AS (SELECT key_l, key_r, min(match_key) AS match_key FROM ({pairs}) GROUP BY key_l, key_r)",
        f"__splink__df_blocked AS (SELECT {', '.join(blocked)}, b.match_key FROM __splink__pairs b "
        f"JOIN {pool} l ON l.{key} = b.key_l JOIN {pool} r ON r.{key} = b.key_r)",
        f"__splink__df_comparison_vectors AS (SELECT {vectors}, match_key FROM __splink__df_blocked)",
        *(f"{name} AS ({sql})" for name, sql in steps),
    ]
    return f"WITH {', '.join(ctes)} SELECT * FROM {steps[-1][0]}"


def term_frequency_sql(model: dict[str, Any], records: str, pool: str, *, pool_values_only: bool = True) -> str:
    """SQL for `pool`'s rows with each term-frequency column of the model (`tf_<column>`), counted over all of
    `records` as Splink counts it (rows with the value / rows with any value), for the values in `pool` only
    (`pool_values_only` False: every value is counted, for a pool that is all of `records`)."""
    joins, selects = [], []
    for i, column in enumerate(tf_columns(model)):
        c = f'"{column}"'
        values = f"{c} IN (SELECT {c} FROM {pool})" if pool_values_only else f"{c} IS NOT NULL"
        joins.append(
            f"LEFT JOIN (SELECT {c}, cast(count(*) AS float8) / (SELECT count({c}) FROM {records}) AS tf "
            f"FROM {records} WHERE {values} GROUP BY {c}) t{i} USING ({c})"
        )
        selects.append(f't{i}.tf AS "tf_{column}"')
    return f"SELECT p.*{''.join(', ' + s for s in selects)} FROM {pool} p {' '.join(joins)}"


def insert_scored(
    con: duckdb.DuckDBPyConnection, model: dict[str, Any], pool: str, *, floor: float, pipeline: Pipeline | None = None
) -> int:
    """Append the scored pairs of `pool` (see score_pairs_sql) to `match_edges`, its columns only; returns how many.
    They are kept in the temporary table `_new_edges` too (the incremental scope starts from their links).
    `pipeline`: the model's scoring SQL when the caller has read it (scoring_pipeline); else read here."""
    columns = table_columns(con, "match_edges")
    names = ", ".join(f'"{c}"' for c in columns)
    hashed = KEY_HASHES["match_edges"]
    items = ", ".join([f'"{c}"' for c in columns if c not in hashed] + key_hash_items("match_edges"))
    pipeline = pipeline or scoring_pipeline(con, model, floor=floor)
    scored = score_pairs_sql(model, pool, floor=floor, pipeline=pipeline)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _new_edges AS SELECT {items} FROM ({scored})")
    return con.execute(f"INSERT INTO match_edges ({names}) SELECT {names} FROM _new_edges").fetchall()[0][0]
