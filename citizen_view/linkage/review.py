"""Clerical review: uncertain links and suspicious citizens go to a queue; reviewers' decisions stick.

Decisions are appended to `review/link_overrides.jsonl` beside the warehouse (not the warehouse:
the service and the CLI may record one while a pipeline run holds the warehouse), keyed by record
keys so they survive re-runs. Every run reads them: a `same` decision is a link the model can never
split, a `different` decision a pair it can never put in one citizen. The latest decision on a pair
wins; `unsure` keeps the model's view and takes the pair out of the queue.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.linkage.records import KEY_HASHES, with_key_hash
from citizen_view.warehouse import column_exists, quote, rows_where, table_columns, table_exists

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    """A reviewer's decision on a pair of records."""

    SAME = "same"  # one person: never split by the model
    DIFFERENT = "different"  # two people: never in one citizen
    UNSURE = "unsure"  # the model's view stands; the pair leaves the queue


class ReviewKind(StrEnum):
    """What a review-queue item is about."""

    UNCERTAIN_LINK = "uncertain link"
    SUSPICIOUS_CITIZEN = "suspicious citizen"


class PairDecision(StrEnum):
    """What the model made of a pair of records."""

    LINKED = "linked directly"  # match weight at or above the threshold, and one citizen
    THROUGH_OTHERS = "in one citizen through other records"  # below the threshold, joined by a chain of other links
    KEPT_APART = "kept apart"  # at or above the threshold, but split (a conflict, a weak bridge cut or a reviewer)
    NOT_LINKED = "not linked"  # below the threshold, in different citizens


def pair_decision(match_weight: float | None, threshold: float | None, *, same_citizen: bool) -> PairDecision:
    """The model's decision on a pair: linked directly only when its own weight reaches the threshold."""
    above = match_weight is not None and threshold is not None and match_weight >= threshold
    if same_citizen:
        return PairDecision.LINKED if above else PairDecision.THROUGH_OTHERS
    return PairDecision.KEPT_APART if above else PairDecision.NOT_LINKED


def describe_pair(match_weight: float | None, threshold: float | None, *, same_citizen: bool) -> str:
    """The model's decision on a pair in words, the same for the review queue, `review next` and `explain`."""
    decision = pair_decision(match_weight, threshold, same_citizen=same_citizen)
    if match_weight is None or threshold is None:
        return f"{decision} (no match weight or threshold to compare)"
    relation = "at or above" if match_weight >= threshold else "below"
    text = f"{decision}: match weight {match_weight:+.2f} is {relation} the threshold {threshold:+.2f}"
    if decision is PairDecision.THROUGH_OTHERS:
        return text + " (not linked directly)"
    if decision is PairDecision.KEPT_APART:
        return (
            text
            + ", but the records are in different citizens (a conflict, a weak bridge cut or a reviewer's decision)"
        )
    return text


DECISIONS: tuple[str, ...] = tuple(Verdict)
WEIGHT_BAND = 1.5  # default uncertainty band: this many match-weight units either side of the threshold


def pair_id(a: str, b: str) -> str:
    """A pair's stable name: its two record keys in order, joined by ' ~ '."""
    left, right = sorted((a, b))
    return f"{left} ~ {right}"


@dataclass(frozen=True)
class Decision:
    record_key_l: str
    record_key_r: str
    decision: str
    reviewer: str
    role: str | None
    reason: str
    decided_at: str


def record_decision(
    path: Path, *, left: str, right: str, decision: str, reviewer: str, reason: str, role: str | None = None
) -> Decision:
    """Append one reviewer decision (file-locked, fsync'ed)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not reason or not reason.strip():
        raise ValueError("a decision needs a reason")
    l_key, r_key = sorted((left, right))
    if l_key == r_key:
        raise ValueError("a pair needs two different records")
    d = Decision(
        l_key,
        r_key,
        decision,
        reviewer,
        role,
        reason.strip(),
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # ensure_ascii: every character outside ASCII (U+2028 and U+0085 included) is escaped, so a line is a line.
    line = json.dumps(d.__dict__, sort_keys=True, ensure_ascii=True) + "\n"
    with path.open("a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
        fcntl.flock(f, fcntl.LOCK_UN)
    return d


DECISION_SCHEMA = {
    "record_key_l": pl.String,
    "record_key_r": pl.String,
    "decision": pl.String,
    "reviewer": pl.String,
    "role": pl.String,
    "reason": pl.String,
    "decided_at": pl.String,
}


def read_decisions(path: Path | None) -> tuple[list[dict], list[int]]:
    """Every well-formed decision in the file, and the numbers of the lines that are not one (kept, never fatal).

    Lines are split on line feeds only: a reason written by an older version with U+2028 in it stays one line.
    """
    if path is None or not path.is_file():
        return [], []
    rows: list[dict] = []
    bad: list[int] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                bad.append(number)
                continue
            if not (
                isinstance(row, dict)
                and all(isinstance(row.get(k), str) for k in ("record_key_l", "record_key_r", "decision"))
                and row["decision"] in DECISIONS
            ):
                bad.append(number)
                continue
            rows.append({k: (None if row.get(k) is None else str(row.get(k))) for k in DECISION_SCHEMA})
    if bad:
        log.warning("%s: %d line(s) are not review decisions and were skipped: %s", path, len(bad), bad[:10])
    return rows, bad


def load_overrides(path: Path | None) -> pl.DataFrame:
    """The latest decision per pair (record_key_l < record_key_r); unreadable lines are skipped with a warning."""
    rows, _ = read_decisions(path)
    if not rows:
        return pl.DataFrame(schema=DECISION_SCHEMA)
    frame = pl.DataFrame(rows, schema=DECISION_SCHEMA)
    return frame.sort("decided_at", maintain_order=True).unique(
        ["record_key_l", "record_key_r"], keep="last", maintain_order=True
    )


def constraints(overrides: pl.DataFrame) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(must-link pairs, cannot-link pairs) from the decisions."""
    same = overrides.filter(pl.col("decision") == Verdict.SAME).select("record_key_l", "record_key_r").rows()
    different = overrides.filter(pl.col("decision") == Verdict.DIFFERENT).select("record_key_l", "record_key_r").rows()
    return same, different


def _weight(probability: float) -> float:
    probability = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log2(probability / (1 - probability))


# The column where a run's own read of match_edges keeps each pair's row id there (steps._scope_pairs_by_hash), so
# that what it left out is fetched by it (with_evidence).
EDGE_ROW = "edge_row"


def build_review_queue(
    con: duckdb.DuckDBPyConnection,
    overrides: pl.DataFrame,
    *,
    threshold: float,
    band: tuple[float, float] | None,
    max_citizen_records: int,
    run_id: str,
    scope: str | None = None,
    scope_tables: tuple[str, str, str] | None = None,
    gone: str | None = None,
) -> int:
    """(Re)create `review_queue`: uncertain pairs and suspicious citizens not decided yet. Returns its size.

    `scope`: a table of record keys re-formed by an incremental run; only their items are refreshed. `scope_tables`:
    where that run's pairs, records and links are read (default match_edges, source_records, citizen_source_link).
    `gone`: a table of the keys of records that run found gone (record_key): every item naming one leaves the queue.
    """
    low, high = (
        (threshold - WEIGHT_BAND, threshold + WEIGHT_BAND) if band is None else (_weight(band[0]), _weight(band[1]))
    )
    con.register("_decided", overrides.select("record_key_l", "record_key_r"))
    # the queue's words for a pair's decision come from the one function `review next` and `explain` use too
    con.create_function(
        "_describe_pair",
        lambda w, t, same: describe_pair(w, t, same_citizen=bool(same)),
        ["DOUBLE", "DOUBLE", "BOOLEAN"],
        "VARCHAR",
        null_handling="special",
    )
    evidence = _evidence_sql(con)
    try:
        refresh = scope is not None and table_exists(con, "main", "review_queue")
        scoped = quote(scope) if refresh else None
        if scoped:
            tables = scope_tables or ("match_edges", "source_records", "citizen_source_link")
            _clear_scope(con, scoped, links=tables[2], gone=gone)
            _scope_tables(con, scoped, low=low, high=high, tables=tables)
        con.execute(
            ("INSERT INTO review_queue BY NAME " if refresh else "CREATE OR REPLACE TABLE review_queue AS ")
            + _queue_sql(evidence, scoped),
            {
                "uncertain": str(ReviewKind.UNCERTAIN_LINK),
                "suspicious": str(ReviewKind.SUSPICIOUS_CITIZEN),
                "low": float(low),
                "high": float(high),
                "max_records": int(max_citizen_records),
                "threshold": float(threshold),
                "run_id": run_id,
            },
        )
        if refresh:  # a pair decided since it was queued leaves the queue
            con.execute(
                "DELETE FROM review_queue q USING _decided d WHERE d.record_key_l = q.record_key_l AND d.record_key_r = q.record_key_r"
            )
    finally:
        con.unregister("_decided")
        con.remove_function("_describe_pair")
    return con.execute("SELECT count(*) FROM review_queue").fetchall()[0][0]


def _evidence_sql(con: duckdb.DuckDBPyConnection) -> str:
    """A pair's per-field match weights (the `mw_` columns of match_edges) as one JSON object, or NULL."""
    mw_cols = [c for c in table_columns(con, "match_edges") if c.startswith("mw_")]
    return "to_json(struct_pack(" + ", ".join(f"{c[3:]} := e.{c}" for c in mw_cols) + "))" if mw_cols else "NULL"


def _clear_scope(con: duckdb.DuckDBPyConnection, scoped: str, *, links: str, gone: str | None = None) -> None:
    """Remove the items an incremental run re-forms, those of citizens that no longer exist (only citizens the run
    changed can have gone, when it listed them in `linkage_changes`) and those naming a record that is `gone` (its
    pair partner may lie outside the scope: the item would ask a reviewer about a record no source holds). `links`:
    where the links are read (the run's own table of them holds every link of a citizen it changed: a citizen's
    records are all in one component, and the run re-formed whole components)."""
    changed = (
        f"(SELECT citizen_id FROM linkage_changes) EXCEPT (SELECT citizen_id FROM {links} "
        "SEMI JOIN linkage_changes USING (citizen_id))"
        if table_exists(con, "main", "linkage_changes")
        else "(SELECT citizen_id FROM review_queue) EXCEPT (SELECT citizen_id FROM citizen_source_link)"
    )
    keys = f"SELECT record_key FROM {scoped}" + (f" UNION ALL SELECT record_key FROM {quote(gone)}" if gone else "")
    con.execute(
        f"DELETE FROM review_queue WHERE record_key_l IN ({keys}) OR record_key_r IN ({keys}) "
        f"OR citizen_id IN ({changed})"
    )


def _scope_tables(
    con: duckdb.DuckDBPyConnection, scoped: str, *, low: float, high: float, tables: tuple[str, str, str]
) -> None:
    """The scope's uncertain pairs (`_scope_edges`), the links of their records (`_scope_links`) and the scope's
    record columns the citizen checks read (`_scope_records`): small tables, so the queue's joins stay small.
    `tables`: where to read pairs, records and links (match_edges, source_records and citizen_source_link, or the
    run's own reads of them, holding at least the scope's and its pairs' records)."""
    edges, records, links = tables
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope_edges AS SELECT * FROM {edges} WHERE match_weight BETWEEN $low AND $high "
        f"AND (record_key_l IN (SELECT record_key FROM {scoped}) OR record_key_r IN (SELECT record_key FROM {scoped}))",
        {"low": float(low), "high": float(high)},
    )
    if edges != "match_edges":
        with_evidence(con, "_scope_edges")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope_links AS SELECT record_key, citizen_id FROM {links} "
        f"WHERE record_key IN (SELECT record_key FROM {scoped} UNION ALL SELECT record_key_l FROM _scope_edges "
        "UNION ALL SELECT record_key_r FROM _scope_edges)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _scope_records AS SELECT l.citizen_id, r.record_key, r.national_id, "
        f"r.national_id_valid, r.date_of_birth FROM {records} r JOIN _scope_links l USING (record_key) "
        f"WHERE r.record_key IN (SELECT record_key FROM {scoped})"
    )


def with_evidence(con: duckdb.DuckDBPyConnection, pairs: str) -> str | None:
    """Give the scored pairs in `pairs` (a run's own read of match_edges, which may leave out the per-comparison
    evidence, as steps._scope_pairs_by_hash does) the match_edges columns they lack, fetched for those pairs alone.

    By the row id read with them (EDGE_ROW) when each row there still holds its pair (a checkpoint since may have
    moved rows: then not), else found on their ends' key hashes (records.KEY_HASHES); both read by row id and matched
    on both ends' keys. Returns how they were found ("row id", "key hashes"), None when nothing was missing."""
    hashed = KEY_HASHES["match_edges"]
    held = set(table_columns(con, pairs))
    missing = [c for c in table_columns(con, "match_edges") if c not in held and c not in hashed]
    if not missing:
        return None
    (l_hash, l_key), (r_hash, r_key) = hashed.items()
    fetched = f"{l_key}, {r_key}, {', '.join(quote(c) for c in missing)}"
    by_row = False
    if EDGE_ROW in held:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _evidence AS SELECT rowid AS {EDGE_ROW}, {fetched} FROM match_edges "
            f"WHERE rowid IN (SELECT {EDGE_ROW} FROM {pairs})"
        )
        held_still = f"SELECT count(*) FROM {pairs} JOIN _evidence USING ({EDGE_ROW}, {l_key}, {r_key})"
        by_row = con.execute(f"SELECT ({held_still}) = (SELECT count(*) FROM {pairs})").fetchall()[0][0]
    if not by_row:
        ends = (
            f"{l_hash} IN ({with_key_hash(f'SELECT {l_key} FROM {pairs}')}) "
            f"AND {r_hash} IN ({with_key_hash(f'SELECT {r_key} FROM {pairs}')})"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _evidence AS SELECT {fetched} FROM match_edges "
            f"WHERE {rows_where('match_edges', ends)}"
        )
    on = f"{EDGE_ROW}, {l_key}, {r_key}" if by_row else f"{l_key}, {r_key}"  # by row: a pair stored twice stays two
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {pairs} AS SELECT p.*, {', '.join(f'e.{quote(c)}' for c in missing)} "
        f"FROM {pairs} p LEFT JOIN _evidence e USING ({on})"
    )
    con.execute("DROP TABLE _evidence")
    return "row id" if by_row else "key hashes"


def _queue_sql(evidence: str, scoped: str | None) -> str:
    """The queue's rows: uncertain pairs and suspicious citizens, minus decided pairs (only `scoped` keys' when set)."""
    # scoped: the small tables _scope_tables wrote stand in for the big ones
    edges, links = ("_scope_edges", "_scope_links") if scoped else ("match_edges", "citizen_source_link")
    records = "_scope_records" if scoped else "citizen_source_link l JOIN source_records r USING (record_key)"
    return f"""
            WITH pairs AS (
                SELECT least(e.record_key_l, e.record_key_r) || ' ~ ' || greatest(e.record_key_l, e.record_key_r) AS item_id,
                       $uncertain::VARCHAR AS kind, least(e.record_key_l, e.record_key_r) AS record_key_l,
                       greatest(e.record_key_l, e.record_key_r) AS record_key_r, NULL::VARCHAR AS citizen_id,
                       e.match_weight, e.match_probability,
                       _describe_pair(e.match_weight, $threshold, a.citizen_id = b.citizen_id) AS model_decision,
                       format('match weight {{:.2f}} is within the uncertainty band [{{:.2f}}, {{:.2f}}]', e.match_weight, $low, $high) AS reason,
                       {evidence} AS evidence
                FROM {edges} e
                JOIN {links} a ON a.record_key = e.record_key_l
                JOIN {links} b ON b.record_key = e.record_key_r
                WHERE e.match_weight BETWEEN $low AND $high
            ),
            members AS (
                SELECT citizen_id, count(*) AS records,
                       count(DISTINCT CASE WHEN national_id_valid THEN national_id END) AS ids,
                       count(DISTINCT date_of_birth) AS dates, min(record_key) AS first_key, max(record_key) AS last_key
                FROM {records} GROUP BY citizen_id
            ),
            clusters AS (
                SELECT 'citizen ' || citizen_id AS item_id, $suspicious::VARCHAR AS kind, first_key AS record_key_l,
                       last_key AS record_key_r, citizen_id, NULL::DOUBLE AS match_weight, NULL::DOUBLE AS match_probability,
                       'linked' AS model_decision,
                       concat_ws('; ',
                           CASE WHEN records > $max_records THEN records || ' records (more than ' || $max_records || ')' END,
                           CASE WHEN ids > 1 THEN ids || ' different valid national IDs' END,
                           CASE WHEN dates > 2 THEN dates || ' different dates of birth' END) AS reason,
                       NULL AS evidence
                FROM members WHERE records > $max_records OR ids > 1 OR dates > 2
            )
            SELECT q.*, abs(coalesce(q.match_weight, $threshold) - $threshold) AS priority,
                   'open' AS status, $run_id::VARCHAR AS run_id, now() AS queued_at
            FROM (SELECT * FROM pairs UNION ALL BY NAME SELECT * FROM clusters) q
            ANTI JOIN _decided d ON d.record_key_l = q.record_key_l AND d.record_key_r = q.record_key_r
            ORDER BY kind DESC, abs(coalesce(match_weight, $threshold) - $threshold), item_id
            """


def store_overrides(con: duckdb.DuckDBPyConnection, overrides: pl.DataFrame) -> None:
    """Mirror the decisions into the warehouse table `link_overrides` (the file stays the record of truth)."""
    con.register("_overrides", overrides)
    try:
        con.execute("CREATE OR REPLACE TABLE link_overrides AS SELECT * FROM _overrides")
    finally:
        con.unregister("_overrides")


REVIEW_ORDER = "kind DESC, priority, item_id"  # suspicious citizens first, then pairs nearest the threshold


@dataclass
class ReviewPage:
    """One page of the open review items, in the queue's order, with the total and the counts per kind."""

    total: int
    items: list[dict]
    by_kind: dict[str, int]
    offset: int
    limit: int


def _members(con: duckdb.DuckDBPyConnection) -> str:
    """Each record's citizen and source ("source:id" keys): from a served view's `record_citizens`, else from the
    warehouse's links."""
    if table_exists(con, "main", "record_citizens"):
        return "(SELECT record_key, citizen_id, source FROM record_citizens)"
    return "(SELECT record_key, citizen_id, split_part(record_key, ':', 1) AS source FROM citizen_source_link)"


def _within(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """SQL true for an item of `table` whose records all come from the sources in $sources: both record keys, every
    record of the citizen an item is about (a suspicious citizen: its reason describes them all), and every record of
    the citizens the pair's two records belong to (a pair "in one citizen through other records", or a link's
    evidence beside its citizen's, would tell of records the role may not see)."""
    members = _members(con)
    return (
        f"(list_contains($sources, split_part({table}.record_key_l, ':', 1)) "
        f"AND list_contains($sources, split_part({table}.record_key_r, ':', 1)) "
        f"AND ({table}.citizen_id IS NULL OR NOT EXISTS (SELECT 1 FROM {members} m "
        f"WHERE m.citizen_id = {table}.citizen_id AND NOT list_contains($sources, m.source))) "
        f"AND NOT EXISTS (SELECT 1 FROM {members} own JOIN {members} m ON m.citizen_id = own.citizen_id "
        f"WHERE own.record_key IN ({table}.record_key_l, {table}.record_key_r) "
        f"AND NOT list_contains($sources, m.source)))"
    )


def pair_in_scope(con: duckdb.DuckDBPyConnection, left: str, right: str, sources: Sequence[str]) -> bool:
    """Whether a role seeing `sources` may decide on this pair: both records from its sources and, unless it sees every
    source of the records' table, the pair an item of the queue within its scope (`_within`), the items its review
    page lists. A role that may not see everything gets the same refusal for every other pair, queued or not: a
    refusal only for pairs whose citizens reach into hidden sources would tell it which do."""
    visible = set(sources)
    if any(key.partition(":")[0] not in visible for key in (left, right)):
        return False
    every = {source for (source,) in con.execute(f"SELECT DISTINCT source FROM {_members(con)}").fetchall()}
    l_key, r_key = sorted((left, right))
    if every <= visible:
        return True
    inside = con.execute(
        f"SELECT count(*) FROM review_queue q WHERE q.record_key_l = $l AND q.record_key_r = $r AND {_within(con, 'q')}",
        {"l": l_key, "r": r_key, "sources": sorted(visible)},
    ).fetchall()[0][0]
    return inside > 0


def open_items(
    con: duckdb.DuckDBPyConnection,
    decided: set[str],
    *,
    kind: str | None = None,
    source: str | None = None,
    sources: Sequence[str] | None = None,
    offset: int = 0,
    limit: int | None = 25,
) -> ReviewPage:
    """The review items still to decide (`decided`: pair ids already decided), filtered by kind and by the source of
    either record, in the one order `review next` and the review page share. `sources`: only items whose records
    all come from these (a role's visible sources)."""
    where = ["NOT (kind = $pair_kind AND list_contains($decided, item_id))"]
    params: dict = {"pair_kind": ReviewKind.UNCERTAIN_LINK.value, "decided": sorted(decided)}
    if sources is not None:
        where.append(_within(con, "review_queue"))
        params["sources"] = sorted(sources)
    if kind:
        where.append("kind = $kind")
        params["kind"] = kind
    if source:
        where.append("(starts_with(record_key_l, $prefix) OR starts_with(record_key_r, $prefix))")
        params["prefix"] = f"{source}:"
    order = REVIEW_ORDER if column_exists(con, "main", "review_queue", "priority") else "kind DESC, item_id"
    condition = " AND ".join(where)
    total = con.execute(f"SELECT count(*) FROM review_queue WHERE {condition}", params).fetchall()[0][0]
    by_kind = dict(
        con.execute(
            f"SELECT kind, count(*) FROM review_queue WHERE {condition} GROUP BY 1 ORDER BY 1", params
        ).fetchall()
    )
    page = f"LIMIT {int(limit)} OFFSET {int(offset)}" if limit else ""
    cur = con.execute(
        f"SELECT item_id, kind, record_key_l, record_key_r, citizen_id, match_weight, match_probability, model_decision, "
        f"reason, evidence::VARCHAR AS evidence FROM review_queue WHERE {condition} ORDER BY {order} {page}",
        params,
    )
    names = [d[0] for d in cur.description]
    items = [dict(zip(names, row)) for row in cur.fetchall()]
    for item in items:
        item["evidence"] = json.loads(item["evidence"]) if item.get("evidence") else {}
    return ReviewPage(total, items, by_kind, offset, limit or total)
