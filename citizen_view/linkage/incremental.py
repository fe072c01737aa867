"""The incremental path: score new records against only the old records they can meet, and find what to re-cluster.

A full run writes every record for Splink and lets it compute term frequencies over them; for a thousand new
records in a million that is nearly all of the time. Here the warehouse's DuckDB picks the old records that
share a blocking key with a new one (any prediction rule's equi-join expressions, in either orientation: a
superset of the pairs Splink's `predict_between` blocks), computes the term-frequency tables over all records
the way Splink does (count / non-null count), and only the new records and those candidates cross to Splink.
A rule with no equality in it could pair a new record with any old one: then every old record is a candidate.

With the key index a full run writes (key_index.py), the candidates and term frequencies are looked up instead.
What to re-cluster is found by components.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlglot
from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator
from sqlglot import exp

import citizen_view.linkage.key_index as key_index
from citizen_view.linkage.model import render_for, tf_columns
from citizen_view.linkage.new_pairs import insert_scored, pool_columns, scoring_pipeline, term_frequency_sql
from citizen_view.linkage.records import KEY_HASH, linkage_input_sql, with_key_hash
from citizen_view.linkage.scoring import EDGE_FLOOR_WEIGHT
from citizen_view.warehouse import rows_where, transaction

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)


def _on(expression: str, alias: str) -> str:
    """A blocking expression over input columns, with its columns read from table `alias`."""
    tree = sqlglot.parse_one(expression, read="duckdb")
    for column in tree.find_all(exp.Column):
        column.set("table", exp.to_identifier(alias))
    return tree.sql(dialect="duckdb")


def _equalities(model: dict[str, Any]) -> list[list[tuple[str, str]]] | None:
    """Each prediction rule's equi-join expressions (left, right); None when some rule has none."""
    rules = render_for(model, "duckdb")["blocking_rules_to_generate_predictions"]
    found = [to_blocking_rule_creator(rule).get_blocking_rule("duckdb")._equi_join_conditions for rule in rules]
    return None if any(not pairs for pairs in found) else found


def columns_read(model: dict[str, Any], rules: list[list[tuple[str, str]]] | None) -> list[str]:
    """The input columns the prediction rules' equalities (`rules`, from _equalities) and the term-frequency tables read."""
    names = set(tf_columns(model))
    for pairs in rules or []:
        for expression in (e for pair in pairs for e in pair):
            names |= {c.name for c in sqlglot.parse_one(expression, read="duckdb").find_all(exp.Column)}
    return sorted(names)


def candidates_sql(
    model: dict[str, Any], new: str, old: str, rules: list[list[tuple[str, str]]] | None = None
) -> str | None:
    """SQL for the keys of the records in `old` any prediction rule could pair with a record in `new` (in either
    orientation); None when some rule has no equality to join on (every old record is then a candidate)."""
    rules = rules if rules is not None else _equalities(model)
    if rules is None:
        return None
    parts: dict[frozenset[tuple[str, str]], str] = {}  # a symmetric rule's two orientations are one join
    for pairs in rules:
        for left, right in ((0, 1), (1, 0)):
            sides = frozenset((_on(p[left], "n"), _on(p[right], "o")) for p in pairs)
            cond = " AND ".join(f"{n} = {o}" for n, o in sorted(sides))
            parts.setdefault(sides, f"SELECT o.record_key FROM {old} o SEMI JOIN {new} n ON {cond}")
    return " UNION ".join(parts.values())


def predict_new_edges(
    con: duckdb.DuckDBPyConnection, model: dict[str, Any], new_keys: str, gone: str | None = None
) -> int:
    """Score the records in the table `new_keys` (one column, record_key) against the old records they can meet and
    against each other, with the saved model and term frequencies over all records, into `match_edges` (replacing
    any edges they had). Returns how many pairs were kept. `gone`: the keys of records no longer there.

    With the key index (key_index.py; written now if the full run did not) the candidates and term frequencies are
    looked up; for a model it cannot index, every record's linkage input is read."""
    if key_index.keys_of(model) is not None:
        if not key_index.is_current(con, model):
            key_index.write(con, model)
        return _predict_indexed(con, model, new_keys, gone)
    # One pass over all records for the columns blocking and term frequencies read; the rest reads this narrow table.
    rules = _equalities(model)  # parsing the rules costs a few tenths of a second: once
    read = ", ".join(f'"{c}"' for c in columns_read(model, rules))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _linkage_keys AS SELECT record_key, {read} FROM ({linkage_input_sql(con)})"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _linkage_new AS SELECT * FROM _linkage_keys SEMI JOIN {new_keys} USING (record_key)"
    )
    candidates = candidates_sql(model, "_linkage_new", "_linkage_keys", rules)
    # the old records some rule pairs with a new one (kept for inspection: small); every record when a rule has no equality
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _linkage_candidates AS "
        + (candidates if candidates is not None else "SELECT record_key FROM _linkage_keys")
        + f" EXCEPT SELECT record_key FROM {new_keys}"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _linkage_pool_input AS SELECT *, record_key IN (SELECT record_key FROM {new_keys}) "
        f"AS is_new FROM ({linkage_input_sql(con)}) WHERE record_key IN "
        f"(SELECT record_key FROM _linkage_candidates UNION ALL SELECT record_key FROM {new_keys})"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _linkage_pool AS "
        + term_frequency_sql(model, "_linkage_keys", "_linkage_pool_input")
    )
    with transaction(con):
        con.execute(
            f"DELETE FROM match_edges WHERE record_key_l IN (SELECT record_key FROM {new_keys}) "
            f"OR record_key_r IN (SELECT record_key FROM {new_keys})"
        )
        kept = insert_scored(con, model, "_linkage_pool", floor=EDGE_FLOOR_WEIGHT)
    for table in ("_linkage_keys", "_linkage_new", "_linkage_pool_input", "_linkage_pool"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return kept


def _predict_indexed(con: duckdb.DuckDBPyConnection, model: dict[str, Any], new_keys: str, gone: str | None) -> int:
    """predict_new_edges with the key index: the new records' input, then their candidates by key, then theirs."""
    # the new records are fetched by row id (new lines of an extract sit together), found on their key hashes and
    # then checked on their keys (two keys may share a hash)
    new_hashes = with_key_hash(f"SELECT record_key FROM {new_keys}")
    new = rows_where("source_records", f"{KEY_HASH} IN ({new_hashes})")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _linkage_new AS SELECT *, true AS is_new "
        f"FROM ({linkage_input_sql(con, where=new, digest=True)})"
    )
    con.execute(f"DELETE FROM _linkage_new WHERE record_key NOT IN (SELECT record_key FROM {new_keys})")
    fresh = key_index.sync(con, model, "_linkage_new", gone)  # never indexed, so never scored
    n_new = con.execute("SELECT count(*) FROM _linkage_new").fetchall()[0][0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _linkage_candidates AS " + key_index.candidates_sql(model, "_linkage_new")
    )
    # The candidates' input, found on their key hashes: tens of thousands of records spread over every vector are read
    # as cheaply by a plain filter as by row id. A record sharing a hash with a candidate comes too and forms no pair
    # the rules do not form (scoring blocks the pool by the rules); the new records, by key, are left out.
    # The pool's input and its term frequencies in one statement (the input held once, not copied into a second table),
    # of the columns the scoring reads (a model on plain values reads no encoding: at 1M, 168 -> 150 ms).
    candidates = f"{KEY_HASH} IN (SELECT {KEY_HASH} FROM _linkage_candidates)"
    pipeline = scoring_pipeline(con, model, floor=EDGE_FLOOR_WEIGHT)
    read = ", ".join(f'"{c}"' for c in pool_columns(model, pipeline))
    pool_input = (
        f"SELECT {read}, is_new FROM _linkage_new UNION ALL "
        f"SELECT {read}, false AS is_new FROM ({linkage_input_sql(con, where=candidates)}) "
        f"WHERE record_key NOT IN (SELECT record_key FROM {new_keys})"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _linkage_pool AS WITH _linkage_pool_input AS MATERIALIZED ({pool_input}) "
        + key_index.term_frequency_sql(model, "_linkage_pool_input")
    )
    with transaction(con):
        if fresh < n_new:  # some were indexed, so perhaps scored before: their pairs are replaced
            con.execute(
                f"DELETE FROM match_edges WHERE record_key_l IN (SELECT record_key FROM {new_keys}) "
                f"OR record_key_r IN (SELECT record_key FROM {new_keys})"
            )
        kept = insert_scored(con, model, "_linkage_pool", floor=EDGE_FLOOR_WEIGHT, pipeline=pipeline)
    for table in ("_linkage_new", "_linkage_pool"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return kept
