"""The linkage steps as warehouse operations: train, score, link, build the golden record.

Each step reads tables the previous one wrote and replaces its own tables in one transaction, so a
step that fails leaves the previous run's outputs as they were.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

# DuckDB hands results to Polars (.pl()) through Arrow: loaded with this module, as Polars is, rather than on the
# first hand-over, which put ~65 ms of loading a library inside an update
import pyarrow  # noqa: F401

import citizen_view.linkage.common_values as common_values
import citizen_view.linkage.components as components
import citizen_view.linkage.golden as _golden
import citizen_view.linkage.key_index as key_index
import citizen_view.linkage.new_pairs as new_pairs
from citizen_view.contract import LinkageConfig, LinkType
from citizen_view.linkage.citizen_ids import HistoryEvent, assign_checked
from citizen_view.linkage.clusters import ClusterResult, IdentityEvidence, cluster_records, size_bound
from citizen_view.linkage.engine import Engine
from citizen_view.linkage.evaluate import evaluate_links, load_truth
from citizen_view.linkage.incremental import predict_new_edges
from citizen_view.linkage.records import (
    DIGEST,
    KEY_HASH,
    KEY_HASHES,
    ensure_digest,
    ensure_key_hashes,
    key_hash_sql,
    sort_for_training,
    with_key_hash,
)
from citizen_view.linkage.review import EDGE_ROW, build_review_queue, constraints, load_overrides, store_overrides
from citizen_view.linkage.scoring import (
    EDGE_COLUMN_PREFIXES,
    EDGE_FLOOR_WEIGHT,
    TrainedModel,
    predict_edges,
    save_model,
    train,
)
from citizen_view.linkage.threshold import choose_threshold
from citizen_view.warehouse import column_exists, rows_where, table_columns, table_exists, transaction

if TYPE_CHECKING:
    from citizen_view.layout import WarehouseLayout

if TYPE_CHECKING:
    import duckdb

LINKAGE_TABLES = """
CREATE TABLE IF NOT EXISTS citizen_id_history (
    citizen_id VARCHAR NOT NULL,
    event VARCHAR NOT NULL,            -- created | split | merged | retired | revived
    related_citizen_id VARCHAR,        -- split: the ID it split from; merged: the surviving ID
    records BIGINT,
    run_id VARCHAR,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS retired_links (  -- the records an ID held when it was retired: if they return, it does
    record_key VARCHAR NOT NULL,
    citizen_id VARCHAR NOT NULL,
    run_id VARCHAR
);
"""


def store_model(con: duckdb.DuckDBPyConnection, trained: TrainedModel, layout: WarehouseLayout) -> Path:
    """Save the fitted model as JSON in the warehouse's linkage folder and in `linkage_model`."""
    path = save_model(trained.model, layout.model_file)
    with transaction(con):
        con.execute(
            "CREATE OR REPLACE TABLE linkage_model (trained_at TIMESTAMPTZ, model_json JSON, fields_used VARCHAR[], notes VARCHAR[])"
        )
        con.execute(
            "INSERT INTO linkage_model VALUES (now(), ?, ?, ?)",
            [json.dumps(trained.model), trained.fields_used, trained.training_notes],
        )
        common_values.store(con, trained.common_values)
        new_pairs.store_pipeline(con, trained.model, floor=EDGE_FLOOR_WEIGHT)  # an update scores with it
    return path


def saved_model(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    if not table_exists(con, "main", "linkage_model"):
        raise RuntimeError("no trained linkage model in the warehouse: materialise linkage_model first")
    return json.loads(con.execute("SELECT model_json FROM linkage_model").fetchall()[0][0])


@dataclass
class EdgeReport:
    pairs_kept: int
    threshold: float
    threshold_method: str
    links_above_threshold: int
    histogram: list[tuple[float, float, int]] = field(
        default_factory=list
    )  # (from, to, scored pairs), every pair counted
    seconds: float = 0.0
    chart: Path | None = None


def score_pairs(
    con: duckdb.DuckDBPyConnection, layout: WarehouseLayout, *, linkage: LinkageConfig | None = None
) -> EdgeReport:
    """Score candidate pairs with the saved model into `match_edges` and choose the link threshold."""
    started = time.perf_counter()
    model = saved_model(con)
    # The scored pairs go straight into match_edges, read back for the threshold, in the transaction that stores it.
    with layout.scratch("score") as scratch, transaction(con):
        predict_edges(con, model, engine=Engine.of(linkage, scratch), into="match_edges")
        # records as their row numbers in source_records (records in no pair change no cluster's expected F1): two
        # joins, without collecting, sorting and numbering the pairs' keys first (0.6 s of CPU at 200k persons)
        pairs = con.sql(
            "SELECT kl.rowid AS l, kr.rowid AS r, e.match_weight AS w, e.match_probability AS p FROM match_edges e "
            "JOIN source_records kl ON kl.record_key = e.record_key_l "
            "JOIN source_records kr ON kr.record_key = e.record_key_r"
        ).fetchnumpy()
        weights = pairs["w"]
        threshold, method = choose_threshold(pairs["l"], pairs["r"], weights, pairs["p"])
        con.execute(
            "CREATE OR REPLACE TABLE linkage_threshold (threshold_weight DOUBLE, method VARCHAR, chosen_at TIMESTAMPTZ)"
        )
        con.execute("INSERT INTO linkage_threshold VALUES (?, ?, now())", [threshold, method])
        key_index.invalidate(con)  # stale until rewritten below, should the run die in between
    key_index.write(con, model)  # an incremental run looks new records' candidates up in it
    histogram = weight_histogram(weights)
    return EdgeReport(
        pairs_kept=int(weights.size),
        threshold=threshold,
        threshold_method=method,
        links_above_threshold=int((weights >= threshold).sum()),
        histogram=histogram,
        seconds=time.perf_counter() - started,
        chart=_histogram_chart(histogram, threshold, layout.linkage_dir / "match_weight_histogram.html"),
    )


MAX_HISTOGRAM_BINS = 60


def weight_histogram(weights: np.ndarray) -> list[tuple[float, float, int]]:
    """Scored pairs per match-weight bin, over the whole range of the weights (so the counts add up to the pairs):
    whole-number edges, one unit wide unless that makes more than MAX_HISTOGRAM_BINS bins."""
    if not weights.size:
        return []
    low, high = math.floor(float(weights.min())), math.ceil(float(weights.max()))
    width = max(1, math.ceil((high - low) / MAX_HISTOGRAM_BINS))
    bins = max(1, math.ceil((high - low) / width))
    edges = low + width * np.arange(bins + 1, dtype=float)
    counts, _ = np.histogram(weights, bins=edges)  # the last bin includes its right edge
    return [(float(a), float(b), int(c)) for a, b, c in zip(edges[:-1], edges[1:], counts)]


def _histogram_chart(histogram: list[tuple[float, float, int]], threshold: float, path: Path) -> Path:
    """The scored pairs' match weights as a bar chart with the threshold marked (Vega-Lite, inline: opens offline).

    The spec is written as the dict Vega-Lite reads, for the version Splink's page bundles: building it with Altair
    from a pandas frame took longer than the rest of choosing the threshold."""
    from splink.internals.html_utils import chart_html  # Splink's page with its bundled Vega libraries (no CDN)

    bars = {
        "data": {"values": [{"weight": a, "end": b, "pairs": n} for a, b, n in histogram]},
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "weight", "type": "quantitative", "bin": {"binned": True}, "title": "match weight"},
            "x2": {"field": "end"},
            "y": {"field": "pairs", "type": "quantitative", "title": "scored pairs"},
        },
    }
    rule = {
        "data": {"values": [{"threshold": threshold}]},
        "mark": {"type": "rule", "color": "firebrick"},
        "encoding": {"x": {"field": "threshold", "type": "quantitative"}},
    }
    chart = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"Scored pairs by match weight (threshold {threshold:+.2f})",
        "width": 640,
        "layer": [bars, rule],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(chart_html(chart, inline=True, fullhtml=True), encoding="utf-8")
    return path


@dataclass
class LinkReport:
    records: int
    citizens: int
    created: int
    split: int
    merged: int
    retired: int
    components_with_conflicts: int
    merges_refused: int
    bridges_cut: int = 0
    size_bound: int | None = None  # records per citizen above which a citizen looks chained (from the data)
    overrides_same: int = 0
    overrides_different: int = 0
    review_queue: int = 0
    incremental: bool = False
    new_records: int = 0
    changed_records: int = 0  # records changed under their key since they were linked, re-linked like new ones
    records_relinked: int = 0
    seconds: float = 0.0
    evaluation: dict[str, Any] | None = None  # against a ground truth, when the data set ships one


UNMATCHED_BUCKETS = 16384  # buckets of digests compared by count and xor before any row is joined


def _unmatched_keys(con: duckdb.DuckDBPyConnection) -> None:
    """`_unmatched`: records not linked yet (new_key) and links whose record is gone (gone_key, citizen_id);
    `_changed_keys`: linked records whose link holds another digest than their row in `source_records` has now (what
    linkage reads of them changed under the same key since they were linked).

    The digest (records.py) has the record's key in it, so a new, gone or changed record is a digest on one side
    only, and one pass over each big table's digest column (an integer) finds all three: the digests are put in
    buckets and each bucket's count and xor compared, only the rows of buckets that differ are joined (a few thousand
    changes touch a few per cent of the buckets), and only the unmatched rows' keys are fetched, by row id (in one
    transaction, so the row ids stay those read). A key on both sides of the unmatched rows changed; on one side, it is
    new or gone. A link without a digest is always unmatched. The digest is written with the link, in the transaction
    that stores it, so a run that dies before leaves the old one and its rerun sees the change. Should a digest repeat
    in a table (two rows sharing one), the rows are joined on key and digest instead."""
    sides = (("_digests_now", "source_records"), ("_digests_linked", "citizen_source_link"))
    bucket = f"{DIGEST} % {UNMATCHED_BUCKETS}"
    per_bucket = f"SELECT {bucket} AS b, count(*) AS n, bit_xor({DIGEST}) AS x FROM {{}} GROUP BY b"
    with transaction(con):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _changed_buckets AS SELECT b FROM ({per_bucket.format(sides[0][1])}) s "
            f"FULL JOIN ({per_bucket.format(sides[1][1])}) l USING (b) "
            "WHERE s.n IS DISTINCT FROM l.n OR s.x IS DISTINCT FROM l.x"
        )
        for name, table in sides:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {DIGEST} AS h, rowid AS rid FROM {table} "
                f"WHERE {DIGEST} IS NULL OR {bucket} IN (SELECT b FROM _changed_buckets)"
            )
        repeated = "SELECT count(h) - count(DISTINCT h) FROM {}"
        if any(con.execute(repeated.format(name)).fetchall()[0][0] for name, _ in sides):
            _unmatched_rows_by_text(con)
        else:
            _unmatched_rows_by_digest(con)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _changed_keys AS "
            "SELECT record_key FROM _unmatched_now INTERSECT SELECT record_key FROM _unmatched_linked"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _unmatched AS SELECT record_key AS new_key, NULL::VARCHAR AS gone_key, "
            "NULL::VARCHAR AS citizen_id FROM _unmatched_now ANTI JOIN _changed_keys USING (record_key) "
            "UNION ALL SELECT NULL, record_key, citizen_id FROM _unmatched_linked ANTI JOIN _changed_keys USING (record_key)"
        )
        for name in ("_changed_buckets", "_digests_now", "_digests_linked", "_unmatched_now", "_unmatched_linked"):
            con.execute(f"DROP TABLE {name}")


def _unmatched_rows_by_digest(con: duckdb.DuckDBPyConnection) -> None:
    """`_unmatched_now` (record_key) and `_unmatched_linked` (record_key, citizen_id): the rows of the changed buckets
    whose digest the other table lacks (no digest repeats in a table), their keys fetched by row id."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _unmatched_now AS SELECT record_key FROM source_records WHERE rowid IN "
        "(SELECT rid FROM _digests_now ANTI JOIN _digests_linked USING (h))"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _unmatched_linked AS SELECT record_key, citizen_id FROM citizen_source_link "
        "WHERE rowid IN (SELECT rid FROM _digests_linked ANTI JOIN _digests_now USING (h))"
    )


def _unmatched_rows_by_text(con: duckdb.DuckDBPyConnection) -> None:
    """`_unmatched_now` and `_unmatched_linked` as _unmatched_rows_by_digest makes them, the rows of the changed buckets
    joined on key and digest."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _rows_now AS SELECT record_key, {DIGEST} AS h FROM source_records "
        "WHERE rowid IN (SELECT rid FROM _digests_now)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _rows_linked AS SELECT record_key, citizen_id, {DIGEST} AS h "
        "FROM citizen_source_link WHERE rowid IN (SELECT rid FROM _digests_linked)"
    )
    same = "ON a.record_key = b.record_key AND a.h = b.h"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _unmatched_now AS SELECT DISTINCT a.record_key FROM _rows_now a "
        f"ANTI JOIN _rows_linked b {same}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _unmatched_linked AS SELECT a.record_key, a.citizen_id FROM _rows_linked a "
        f"ANTI JOIN _rows_now b {same}"
    )
    con.execute("DROP TABLE _rows_now")
    con.execute("DROP TABLE _rows_linked")


def ensure_link_digest(con: duckdb.DuckDBPyConnection) -> bool:
    """Give a `citizen_source_link` written before the digest existed the digest its records have now (a change made
    before that is not seen): the links then say what linkage read of each record when it was linked. Whether it
    was written."""
    if not table_exists(con, "main", "citizen_source_link") or column_exists(
        con, "main", "citizen_source_link", DIGEST
    ):
        return False
    ensure_digest(con)
    with transaction(con):
        con.execute(f"ALTER TABLE citizen_source_link ADD COLUMN {DIGEST} UBIGINT")
        con.execute(
            f"UPDATE citizen_source_link SET {DIGEST} = r.{DIGEST} FROM source_records r "
            "WHERE r.record_key = citizen_source_link.record_key"
        )
    return True


def _incremental_scope(
    con: duckdb.DuckDBPyConnection,
    *,
    threshold: float,
    same: list[tuple[str, str]],
    different: list[tuple[str, str]],
    decided: list[tuple[str, str]],
) -> tuple[int, int]:
    """Score new records with the saved model and collect what must be re-clustered into `_scope`.

    The scope is the connected components (links at or above the threshold, reviewers' `same`, shared
    citizens) of the new records, of citizens that lost a record and of every record a reviewer decided on,
    whatever the verdict (a decision made since the last run must split or join its pair as a full run would, and
    a `different` later changed to `unsure` must let its pair join again). Returns (new records, changed records,
    records in scope).
    """
    # A record changed under its key (its digest is not the one its link holds) is re-linked like a new one: its
    # old keys and counts are taken back when it is indexed again, its old pairs replaced, its old component re-formed.
    _unmatched_keys(con)
    model = saved_model(con)
    n_changed = con.execute("SELECT count(*) FROM _changed_keys").fetchall()[0][0]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _new_keys AS SELECT new_key AS record_key FROM _unmatched WHERE new_key IS NOT NULL "
        "UNION SELECT record_key FROM _changed_keys"
    )
    con.execute("DROP TABLE _changed_keys")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _gone_keys AS SELECT gone_key AS record_key, citizen_id FROM _unmatched "
        "WHERE gone_key IS NOT NULL"
    )
    con.execute("DROP TABLE _unmatched")
    n_relinked = con.execute("SELECT count(*) FROM _new_keys").fetchall()[0][0]
    if con.execute("SELECT count(*) FROM _gone_keys").fetchall()[0][0]:
        con.execute(
            "DELETE FROM match_edges WHERE record_key_l IN (SELECT record_key FROM _gone_keys) "
            "OR record_key_r IN (SELECT record_key FROM _gone_keys)"
        )
    if not components.exists(con):  # a warehouse linked before the table existed: once, from its links
        components.write_from_links(con, threshold=threshold, same=same, different=different)
    if n_relinked:
        predict_new_edges(con, model, "_new_keys", gone="_gone_keys")
    elif key_index.is_current(con, model):
        key_index.forget(con, model, "_gone_keys")
    # The scope is whole connected components (strong links, reviewers' `same`, shared citizens) of the new
    # records, of the citizens that lost one and of every record a reviewer decided on: the full run clusters each
    # component on its own, so re-forming whole components gives the same clusters.
    con.execute(  # a list parameter, not a registered frame: no conversion to Arrow for a handful of keys
        "CREATE OR REPLACE TEMP TABLE _decided_keys AS SELECT unnest(?::VARCHAR[]) AS record_key",
        [sorted({k for pair in decided for k in pair})],
    )
    in_scope = components.scope(
        con,
        new_keys="_new_keys",
        new_edges="_new_edges" if n_relinked else None,
        gone="_gone_keys",
        decided="_decided_keys",
        threshold=threshold,
    )
    con.execute("DROP TABLE _decided_keys")
    return n_relinked - n_changed, n_changed, in_scope


def prepare_update(con: duckdb.DuckDBPyConnection, layout: WarehouseLayout) -> list[str]:
    """Write the tables an incremental run looks records up in where they are missing or stale (a warehouse linked
    before they existed, or a model trained since); returns the tables written. An update writes them itself."""
    written = []
    model = saved_model(con)
    if ensure_link_digest(con):
        written.append("citizen_source_link")
    ensure_key_hashes(con)
    if key_index.keys_of(model) is not None and not key_index.is_current(con, model):
        key_index.write(con, model)
        written += [key_index.KEYS, key_index.TF]
    if not new_pairs.is_stored(con, model, floor=EDGE_FLOOR_WEIGHT):
        new_pairs.store_pipeline(con, model, floor=EDGE_FLOOR_WEIGHT)
        written.append(new_pairs.TABLE)
    if table_exists(con, "main", "citizen_source_link") and not components.exists(con):
        threshold = con.execute("SELECT threshold_weight FROM linkage_threshold").fetchall()[0][0]
        same, different = constraints(load_overrides(layout.overrides_file))
        components.write_from_links(con, threshold=threshold, same=same, different=different)
        written.append(components.TABLE)
    return written


def take_back(con: duckdb.DuckDBPyConnection, keys: str) -> None:
    """Undo the linkage of the records in the table `keys` (record_key) as if they had not arrived: their links,
    scored pairs, blocking keys and components go, their records stay (the next update finds them new)."""
    with transaction(con):
        con.execute(f"DELETE FROM citizen_source_link WHERE record_key IN (SELECT record_key FROM {keys})")
        con.execute(
            f"DELETE FROM match_edges WHERE record_key_l IN (SELECT record_key FROM {keys}) "
            f"OR record_key_r IN (SELECT record_key FROM {keys})"
        )
        if components.exists(con):
            con.execute(f"DELETE FROM {components.TABLE} WHERE record_key IN (SELECT record_key FROM {keys})")
    model = saved_model(con)
    if key_index.is_current(con, model):
        key_index.forget(con, model, keys)


def link_citizens(
    con: duckdb.DuckDBPyConnection,
    layout: WarehouseLayout,
    *,
    run_id: str,
    linkage: LinkageConfig | None = None,
    review_band: tuple[float, float] | None = None,
    max_citizen_records: int | None = None,
    incremental: bool = False,
    truth_dir: Path | None = None,
) -> LinkReport:
    """Cluster records on the scored pairs (reviewers' decisions first), give every cluster its stable
    citizen ID, and queue what still needs a reviewer.

    `incremental`: score only records not linked yet, with the saved model, and re-form only the citizens
    they touch; everyone else keeps their citizen untouched. Falls back to a full link on a first run.
    """
    started = time.perf_counter()
    con.execute(LINKAGE_TABLES)
    threshold = con.execute("SELECT threshold_weight FROM linkage_threshold").fetchall()[0][0]
    linkage = linkage or LinkageConfig()
    overrides = load_overrides(layout.overrides_file)
    same, different = constraints(overrides)
    incremental = incremental and table_exists(con, "main", "citizen_source_link")
    ensure_digest(con)  # the links keep the digest of what linkage read of each record (a warehouse from before it)
    n_new = n_changed = 0
    if incremental:
        ensure_link_digest(con)
        ensure_key_hashes(con)
        decided = overrides.select("record_key_l", "record_key_r").rows()
        n_new, n_changed, _ = _incremental_scope(
            con, threshold=threshold, same=same, different=different, decided=decided
        )
        _read_scope(con)
    clustered = _cluster_in_scope(
        con, threshold=threshold, linkage=linkage, same=same, different=different, scoped=incremental
    )
    links, history, retiring = _assign_ids(con, clustered, scoped=incremental)
    _store_links(con, links, history, clustered, run_id=run_id, incremental=incremental, retiring=retiring)
    store_overrides(con, overrides)
    sizes, citizens = _citizen_sizes(con, incremental=incremental)  # once
    bound = size_bound(sizes, counts=citizens, cap=max_citizen_records)
    queued = build_review_queue(
        con,
        overrides,
        threshold=threshold,
        band=review_band,
        max_citizen_records=bound or int(sizes.max(initial=0)),
        run_id=run_id,
        scope="_scope" if incremental else None,
        scope_tables=("_scope_touching", "_scope_rows", "_scope_links_now") if incremental else None,
        gone="_gone_keys" if incremental else None,
    )
    events = history.get_column("event").value_counts()
    count = dict(zip(events.get_column("event").to_list(), events.get_column("count").to_list()))
    return LinkReport(
        records=int((sizes * citizens).sum()),
        citizens=int(citizens.sum()),
        created=count.get("created", 0),
        split=count.get("split", 0),
        merged=count.get("merged", 0),
        retired=count.get("retired", 0),
        components_with_conflicts=clustered.components_with_conflicts,
        merges_refused=clustered.merges_refused,
        bridges_cut=clustered.bridges_cut,
        size_bound=bound,
        overrides_same=len(same),
        overrides_different=len(different),
        review_queue=queued,
        incremental=incremental,
        new_records=n_new,
        changed_records=n_changed,
        records_relinked=links.height,
        seconds=time.perf_counter() - started,
        evaluation=_evaluation(con, truth_dir),
    )


def _citizen_sizes(con: duckdb.DuckDBPyConnection, *, incremental: bool) -> tuple[np.ndarray, np.ndarray]:
    """Records per citizen, as (size, citizens of that size) for each size. After an incremental run, from the links'
    own `citizen_record_count` (a citizen of k records has k links saying k: one pass over a number column instead of
    grouping every link by citizen), when those counts add up; else counted."""
    rows = None
    if incremental:
        links = con.execute(
            "SELECT citizen_record_count, count(*) FROM citizen_source_link GROUP BY 1 ORDER BY 1"
        ).fetchall()
        if all(k and n % k == 0 for k, n in links):
            rows = [(k, n // k) for k, n in links]
    if rows is None:
        rows = con.execute(
            "SELECT n, count(*) FROM (SELECT count(*) AS n FROM citizen_source_link GROUP BY citizen_id) GROUP BY 1 "
            "ORDER BY 1"
        ).fetchall()
    return np.array([k for k, _ in rows], dtype=np.int64), np.array([c for _, c in rows], dtype=np.int64)


_IN_SCOPE = " WHERE record_key IN (SELECT record_key FROM _scope)"
# the record columns an incremental run reads after scoring: clustering, the links' rows, the review queue, golden
_SCOPE_COLUMNS = {
    "source_file",
    "source_line",
    "national_id",
    "national_id_valid",
    "date_of_birth_text",
    "date_of_birth",
}


# the keys of the scope's records and of every record its scored pairs reach
_REACHED = (
    "SELECT record_key FROM _scope UNION ALL SELECT record_key_l FROM _scope_touching "
    "UNION ALL SELECT record_key_r FROM _scope_touching"
)


def _read_scope(con: duckdb.DuckDBPyConnection) -> None:
    """`_scope_rows`: the scope's records (the columns the rest of the run reads), `_scope_touching`: the scored
    pairs with a record in the scope, and `_scope_links_before`: the links of the records of both (ID assignment reads
    the scope's, the review queue those of the records its pairs reach outside the scope, which this run leaves as
    they are); one pass over each big table, read by every later step instead of it. The rows are found on their keys'
    hashes and fetched by row id (warehouse.rows_where)."""
    present = set(table_columns(con, "source_records"))
    read = ", ".join(f'"{c}"' for c in sorted((_SCOPE_COLUMNS | _golden.COLUMNS_READ | {DIGEST}) & present))
    scope = with_key_hash("SELECT record_key FROM _scope")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope_rows AS SELECT {read} FROM source_records "
        f"WHERE {rows_where('source_records', f'{KEY_HASH} IN ({scope})')}"
    )
    # found on the key hashes: the few rows of another key sharing a hash go
    con.execute("DELETE FROM _scope_rows WHERE record_key NOT IN (SELECT record_key FROM _scope)")
    if not _scope_pairs_by_hash(con, scope):
        _scope_pairs_by_key(con, scope)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _scope_links_before AS SELECT record_key, citizen_id FROM _scope_links_hashed "
        f"WHERE record_key IN ({_REACHED})"
    )
    con.execute("DROP TABLE _scope_links_hashed")


def _touching_rows(scope: str) -> str:
    """Row ids of the scored pairs with an end whose key hash is one of `scope`'s: a row id set per end (one scan with
    an OR of two semi-joins costs a third more)."""
    ends = KEY_HASHES["match_edges"]
    return " UNION ALL ".join(f"SELECT rowid FROM match_edges WHERE {column} IN ({scope})" for column in ends)


def _scope_pairs_by_hash(con: duckdb.DuckDBPyConnection, scope: str) -> bool:
    """`_scope_touching` without reading the pairs' keys (two text columns of every pair: most of the read): each end's
    key from its hash, by the scope's keys and the links of the records the pairs reach (every record a pair reaches is
    in the scope or linked), and `_scope_links_hashed`, those links. False, with nothing kept of the pairs, when a hash
    there stands for two keys or an end has no key: then only the pairs' own keys say which record is which.

    Assumed, not checked: a pair's end is in the scope or linked (a record without a link is new, and every new record
    is in the scope; a gone record's pairs are deleted before). An end outside both whose hash equals a key found here
    would be named by that key; that takes the assumption broken and a 64-bit hash collision at once."""
    (l_hash, l_key), (r_hash, r_key) = ((h, k) for h, k in KEY_HASHES["match_edges"].items())
    columns = table_columns(con, "match_edges")
    # not the per-comparison evidence (mw_ ...): only the review queue reads it, of the few pairs in its uncertainty
    # band, and fetches it for those by the row id kept here (review.with_evidence); read for every pair, it was 52 of
    # 127 MB at 1M
    kept = [c for c in columns if c not in (l_hash, r_hash) and not c.startswith(EDGE_COLUMN_PREFIXES)] + [EDGE_ROW]
    read = ", ".join(f'"{c}"' for c in kept if c not in (l_key, r_key, EDGE_ROW))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _touching_hashed AS SELECT {l_hash}, {r_hash}, {read}, rowid AS {EDGE_ROW} "
        f"FROM match_edges WHERE rowid IN ({_touching_rows(scope)})"
    )
    ends = f"{scope} UNION ALL SELECT {l_hash} FROM _touching_hashed UNION ALL SELECT {r_hash} FROM _touching_hashed"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope_links_hashed AS SELECT record_key, citizen_id, {KEY_HASH} "
        f"FROM citizen_source_link WHERE {rows_where('citizen_source_link', f'{KEY_HASH} IN ({ends})')}"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _key_of AS SELECT DISTINCT h, record_key FROM ("
        f"SELECT {key_hash_sql('record_key')} AS h, record_key FROM _scope "
        f"UNION ALL SELECT {KEY_HASH}, record_key FROM _scope_links_hashed)"
    )
    # a hash standing for two keys is found before the pairs are joined to the keys: each pair would take every key of
    # its ends' hashes (with many shared, a join of every pair with every pair of keys)
    shared = con.execute("SELECT count(*) - count(DISTINCT h) FROM _key_of").fetchall()[0][0]
    unnamed = 0
    if not shared:
        named = {l_key: f"kl.record_key AS {l_key}", r_key: f"kr.record_key AS {r_key}"}
        select = ", ".join(named.get(c, f't."{c}"') for c in kept)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _scope_touching AS SELECT {select} FROM _touching_hashed t "
            f"JOIN _key_of kl ON kl.h = t.{l_hash} JOIN _key_of kr ON kr.h = t.{r_hash}"
        )
        unnamed = con.execute(
            "SELECT (SELECT count(*) FROM _touching_hashed) - (SELECT count(*) FROM _scope_touching)"
        ).fetchall()[0][0]
    con.execute("DROP TABLE _touching_hashed")
    con.execute("DROP TABLE _key_of")
    return not shared and not unnamed


def _scope_pairs_by_key(con: duckdb.DuckDBPyConnection, scope: str) -> None:
    """`_scope_touching` and `_scope_links_hashed` as _scope_pairs_by_hash makes them, from the pairs' own keys: found
    on the hashes, the pairs and links of another key sharing a hash are dropped by key."""
    hashed = KEY_HASHES["match_edges"]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope_touching AS SELECT * EXCLUDE ({', '.join(hashed)}) FROM match_edges "
        f"WHERE rowid IN ({_touching_rows(scope)})"
    )
    con.execute(
        "DELETE FROM _scope_touching WHERE record_key_l NOT IN (SELECT record_key FROM _scope) "
        "AND record_key_r NOT IN (SELECT record_key FROM _scope)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope_links_hashed AS SELECT record_key, citizen_id, {KEY_HASH} "
        f"FROM citizen_source_link WHERE {rows_where('citizen_source_link', f'{KEY_HASH} IN ({with_key_hash(_REACHED)})')}"
    )


def _cluster_in_scope(
    con: duckdb.DuckDBPyConnection,
    *,
    threshold: float,
    linkage: LinkageConfig,
    same: list[tuple[str, str]],
    different: list[tuple[str, str]],
    scoped: bool,
) -> ClusterResult:
    """Cluster every record (or, `scoped`, the records in `_scope`: from `_scope_rows` and `_scope_touching`) on
    their scored pairs."""
    records = con.sql(
        "SELECT record_key, source, national_id, national_id_valid, date_of_birth_text AS dob FROM "
        + ("_scope_rows" if scoped else "source_records")
        + " ORDER BY source, source_file, source_line, source_record_id"
    ).pl()
    edge_scope = (
        "_scope_touching WHERE record_key_l IN (SELECT record_key FROM _scope) "
        "AND record_key_r IN (SELECT record_key FROM _scope)"
        if scoped
        else "match_edges"
    )
    edges = con.sql(f"SELECT record_key_l, record_key_r, match_weight FROM {edge_scope}").pl()
    duplicate_free = (
        set(records.get_column("source").unique().to_list()) if linkage.link_type == LinkType.LINK_ONLY else set()
    )
    return cluster_records(
        records,
        edges,
        threshold=threshold,
        evidence=IdentityEvidence.from_model(saved_model(con)),
        duplicate_free=duplicate_free,
        same=same,
        different=different,
    )


def _assign_ids(
    con: duckdb.DuckDBPyConnection, clustered: ClusterResult, *, scoped: bool
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """Stable citizen IDs for the clusters, against the previous links (of the scope), the IDs retired and every ID
    ever used: (links, history, the previous links of the IDs this run retires, or None)."""
    # an update's previous links: the scope's, and those of the records gone (a citizen they leave with no record is
    # retired, as a full run, whose previous links still hold them, retires it)
    previous = (
        con.sql(
            "SELECT record_key, citizen_id FROM "
            + (
                f"_scope_links_before{_IN_SCOPE} UNION ALL SELECT record_key, citizen_id FROM _gone_keys"
                if scoped
                else "citizen_source_link"
            )
        ).pl()
        if table_exists(con, "main", "citizen_source_link")
        else None
    )

    # A minted ID is checked against the history afterwards (and minted again if ever used) instead of reading
    # every ID ever used into memory first: a million IDs for the few an incremental run mints.
    def used_before(ids: list[str]) -> set[str]:
        sql = "SELECT DISTINCT citizen_id FROM citizen_id_history WHERE citizen_id IN (SELECT unnest(?::VARCHAR[]))"
        return {r[0] for r in con.execute(sql, [ids]).fetchall()}

    # For ties only (a few IDs, if any): the golden record's identity as it was before this run, and when each ID
    # was first seen.
    def identity(ids: list[str]) -> pl.DataFrame:
        empty = pl.DataFrame(schema={"citizen_id": pl.String, "record_key": pl.String})
        if not table_exists(con, "main", "citizen"):
            return empty
        found = con.sql(
            "SELECT citizen_id, unnest([name_from, date_of_birth_from, national_id_from]) AS record_key FROM citizen "
            "WHERE citizen_id IN (SELECT unnest(?::VARCHAR[]))",
            params=[ids],
        ).pl()
        return found.drop_nulls() if found.height else empty

    def first_seen(ids: list[str]) -> dict[str, Any]:
        sql = (
            "SELECT citizen_id, min(recorded_at) FROM citizen_id_history "
            "WHERE citizen_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1"
        )
        return dict(con.execute(sql, [ids]).fetchall())

    def retired(keys: pl.DataFrame) -> pl.DataFrame:
        if not con.execute("SELECT count(*) FROM retired_links").fetchall()[0][0]:  # none retired yet: no join
            return pl.DataFrame(schema={"record_key": pl.String, "citizen_id": pl.String})
        con.register("_waiting_keys", keys)
        try:
            return con.sql(
                "SELECT record_key, citizen_id FROM retired_links SEMI JOIN _waiting_keys USING (record_key)"
            ).pl()
        finally:
            con.unregister("_waiting_keys")

    links, history = assign_checked(
        clustered.labels, previous, used_before=used_before, identity=identity, first_seen=first_seen, retired=retired
    )
    gone = history.filter(pl.col("event") == HistoryEvent.RETIRED).get_column("citizen_id").to_list()
    retiring = previous.filter(pl.col("citizen_id").is_in(gone)) if previous is not None and gone else None
    return links, history, retiring


# One row per linked record with its best link inside its citizen and the digest of what linkage read of it (an
# update compares it with the record's digest now); `?` is the run ID.
_LINK_ROWS = """
    WITH inside AS MATERIALIZED (  -- the pairs inside a citizen, joined once for both their ends (at 1M: 2.2 -> 1.5 s)
        SELECT e.record_key_l, e.record_key_r, e.match_probability, e.match_weight
        FROM {edges} e JOIN _links a ON a.record_key = e.record_key_l
        JOIN _links b ON b.record_key = e.record_key_r AND a.citizen_id = b.citizen_id
    ),
    best AS (
        SELECT record_key, max(match_probability) AS match_probability, max(match_weight) AS match_weight
        FROM (
            SELECT record_key_l AS record_key, match_probability, match_weight FROM inside
            UNION ALL SELECT record_key_r, match_probability, match_weight FROM inside
        ) GROUP BY record_key
    )
    SELECT l.citizen_id, r.source, r.source_record_id, l.record_key, {key_hash} AS key_hash,
           best.match_probability, best.match_weight, r.{digest},
           count(*) OVER (PARTITION BY l.citizen_id) AS citizen_record_count,
           ?::VARCHAR AS run_id, now() AS linked_at
    FROM _links l JOIN {records} r USING (record_key) LEFT JOIN best USING (record_key)
"""


def _store_links(
    con: duckdb.DuckDBPyConnection,
    links: pl.DataFrame,
    history: pl.DataFrame,
    clustered: ClusterResult,
    *,
    run_id: str,
    incremental: bool,
    retiring: pl.DataFrame | None = None,
) -> None:
    """Write `citizen_source_link` (whole, or the scope's rows), the records' components, `linkage_changes`, the
    ID history and `retired_links` (the records of the IDs retired now kept, those of IDs revived dropped) in one
    transaction."""
    keys = clustered.labels.get_column("record_key")
    if retiring is None:
        retiring = pl.DataFrame(schema={"record_key": pl.String, "citizen_id": pl.String})
    with transaction(con, _links=links, _history=history, _retiring=retiring.select("record_key", "citizen_id")):
        if incremental:
            components.replace_scope(con, keys, clustered.component)
        else:
            components.write_all(con, keys, clustered.component)
        if incremental:
            _delete_scope_links(con)
            rows = _LINK_ROWS.format(
                edges="_scope_touching", records="_scope_rows", digest=DIGEST, key_hash=key_hash_sql("l.record_key")
            )
            con.execute(f"INSERT INTO citizen_source_link BY NAME {rows}", [run_id])
            con.execute("CREATE OR REPLACE TEMP TABLE _relinked AS SELECT record_key, citizen_id FROM _links")
            # the scope's links as now written, and as they were for records outside it (this run left those alone)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _scope_links_now AS SELECT record_key, citizen_id FROM _links UNION ALL "
                "SELECT record_key, citizen_id FROM _scope_links_before "
                "WHERE record_key NOT IN (SELECT record_key FROM _scope)"
            )
        else:
            rows = _LINK_ROWS.format(
                edges="match_edges", records="source_records", digest=DIGEST, key_hash=key_hash_sql("l.record_key")
            )
            con.execute(
                f"CREATE OR REPLACE TABLE citizen_source_link AS {rows} ORDER BY l.citizen_id, r.source, r.source_record_id",
                [run_id],
            )
        # The citizens whose golden record must be rebuilt: all of them, or those the incremental run touched.
        con.execute(
            "CREATE OR REPLACE TABLE linkage_changes AS SELECT DISTINCT citizen_id, ? AS incremental FROM "
            "(SELECT citizen_id FROM _links UNION ALL SELECT citizen_id FROM _history UNION ALL "
            "SELECT related_citizen_id FROM _history WHERE related_citizen_id IS NOT NULL)",
            [incremental],
        )
        con.execute(
            "INSERT INTO citizen_id_history (citizen_id, event, related_citizen_id, records, run_id) "
            "SELECT citizen_id, event, related_citizen_id, records, ? FROM _history",
            [run_id],
        )
        con.execute(
            f"DELETE FROM retired_links WHERE citizen_id IN (SELECT citizen_id FROM _history "
            f"WHERE event = '{HistoryEvent.REVIVED}')"
        )
        con.execute("INSERT INTO retired_links SELECT record_key, citizen_id, ? FROM _retiring", [run_id])


def _delete_scope_links(con: duckdb.DuckDBPyConnection) -> None:
    """Delete the links of the scope's records and of the records gone, on their key hashes when those pick exactly
    the links there are of them (counted from `_scope_links_before` and `_gone_keys`: then no other key shares a hash
    with one of them), else on their keys. Probing the integers costs a fifth of probing the text."""
    keys = "SELECT record_key FROM _scope UNION ALL SELECT record_key FROM _gone_keys"
    expected = con.execute(
        "SELECT (SELECT count(*) FROM _scope_links_before SEMI JOIN _scope USING (record_key)) "
        "+ (SELECT count(*) FROM _gone_keys)"
    ).fetchall()[0][0]
    by_hash = f"{KEY_HASH} IN ({with_key_hash(keys)})"
    found = con.execute(f"SELECT count(*) FROM citizen_source_link WHERE {by_hash}").fetchall()[0][0]
    con.execute(f"DELETE FROM citizen_source_link WHERE {by_hash if found == expected else f'record_key IN ({keys})'}")


def _evaluation(con: duckdb.DuckDBPyConnection, truth_dir: Path | None) -> dict[str, Any] | None:
    """Pairwise precision, recall and F1 against the data set's truth, when it ships one (only evaluation reads truth)."""
    if truth_dir is None or not truth_dir.is_dir():
        return None
    links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    return evaluate_links(links, load_truth(truth_dir))


def train_and_store(
    con: duckdb.DuckDBPyConnection,
    layout: WarehouseLayout,
    *,
    seed: int = 1,
    linkage: LinkageConfig | None = None,
) -> tuple[TrainedModel, Path]:
    """Fit the model on `source_records` (in the order a full collect writes it) and keep it (JSON in the layout's
    linkage folder, and `linkage_model`)."""
    linkage = linkage or LinkageConfig()
    sort_for_training(con)
    with layout.scratch("train") as scratch:
        trained = train(
            con,
            engine=Engine.of(linkage, scratch),
            seed=seed,
            reports_dir=layout.linkage_dir,
            link_type=linkage.link_type,
            min_share=linkage.min_field_share,
        )
    return trained, store_model(con, trained, layout)
