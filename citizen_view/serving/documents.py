"""One document per citizen in the served view, so that a look is one index probe, and the view's small tables in memory.

`publish_documents` writes `citizen_docs` when a view is published: one row per citizen holding that citizen's
linked records (the columns a profile shows and survivorship reads, and the records' other columns), cases, life
events and the values set aside at ingest, as one JSON text, each list in the order the profile shows it. A look
reads that one text of one row by the ART index on `citizen_id` and applies the role's sources to those few items in
memory: no scan, no join, no query planned per table. Every item carries its source, so nothing of a source the role may not see is kept.

`ViewInfo` holds what every look needs of the view's small tables (country, survivorship ranks, attribute labels,
stale sources), read once when the service opens a view file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from citizen_view.contract import CanonicalField
from citizen_view.linkage.golden import read_stand_ins
from citizen_view.warehouse import literal

if TYPE_CHECKING:
    import duckdb

    from citizen_view.serving.document_file import DocumentFile
    from citizen_view.serving.id_index import IdIndex

DOCS = "citizen_docs"
STAND_INS_IN_VIEW = "golden_stand_ins"  # the values survivorship passes over (field, value): golden.STAND_INS
RECORD_CITIZENS = "record_citizens"  # each linked record's citizen, by "source:source_record_id" (ART-indexed)
# What a document keeps of each linked record: what the profile shows and what survivorship (golden.golden_rows) reads.
# `links`: the record's best link to a record of each source within its citizen ({source: match probability}), from
# which a reader's own "match_probability" is taken over the sources it may see only (see _typed).
DOC_RECORD_COLUMNS: tuple[str, ...] = (
    "source",
    "source_record_id",
    "links",
    "extracted_at",
    *CanonicalField,
    "given_name_std",
    "first_name_std",
    "family_name_std",
    "street_std",
    "city_std",
    "birth_place_std",
    "national_id_valid",
)
CASE_COLUMNS = ("kind", "case_type", "status", "state", "start_date", "end_date", "case_reference", "source")
CASE_COLUMNS += ("source_record_id",)
EVENT_COLUMNS = ("date", "event", "source", "source_record_id")
# The order of a document's lists within a citizen: the tables `publish_documents` reads are stored sorted by
# citizen_id and then this (`DOCUMENT_ORDER`), so each list is aggregated in storage order (`rowid`), which costs
# a fraction of sorting every citizen's items again by these columns.
DOCUMENT_ORDER = {
    "records": "source, source_record_id",
    "cases": "start_date DESC NULLS LAST, case_reference, source",
    "events": "date, source, source_record_id",
}
ISSUE_COLUMNS = ("source", "record_id", "field", "raw", "reason")
DATE_COLUMNS = ("date_of_birth", "date_of_death")


def _json(alias: str, columns: tuple[str, ...], order: str | None = None) -> str:
    """SQL: a JSON array text of the rows of a group, each an object of `columns`, in `order` (default: the rows'
    storage order, `<alias>.rowid`)."""
    obj = "to_json(struct_pack(" + ", ".join(f'"{c}" := {alias}."{c}"' for c in columns) + "))::VARCHAR"
    if order is None:
        return f"'[' || {in_storage_order(obj, alias)} || ']'"
    return f"'[' || string_agg({obj}, ',' ORDER BY {order}) || ']'"


def in_storage_order(item: str, alias: str) -> str:
    """SQL aggregate: the texts `item` of a group's rows of table `alias`, joined by commas in their storage order.

    The same text as `string_agg(item, ',' ORDER BY alias.rowid)`, for about two thirds of its CPU in DuckDB 2.0 (each
    group's list is sorted on its own, where an ordered aggregate sorts all of them: at 1M, 1.4 against 2.0 s for one
    batch of documents, the same texts)."""
    return f"array_to_string(list_transform(list_sort(list({{'k': {alias}.rowid, 'j': {item}}})), lambda x: x.j), ',')"


def _record_json(alias: str) -> str:
    """SQL: a record as a JSON object of its columns that have a value (a reader takes a missing key as null: the
    documents are a third smaller, and so cheaper to aggregate and to store, than with every null written out)."""
    pairs = ", ".join(f'\'"{c}":\' || to_json({alias}."{c}")' for c in (*DOC_RECORD_COLUMNS, "attributes"))
    return "'{' || concat_ws(',', " + pairs + ") || '}'"


# The rows of one row group of the view file (DuckDB's default, pinned when the view is attached: snapshot.py).
ROW_GROUP_ROWS = 122_880
# Citizens per batch when the documents are written: each batch's JSON texts are held in memory while they are
# aggregated, and the warehouse connection's memory limit is a few GB. A batch fills whole row groups: a batch that
# ended inside one left a part-filled row group, and the checkpoint then rewrote and recompressed every batch's
# documents (at 1M: 150,000 a batch cost ~27 s CPU more and left a view file 0.8 GB larger).
BATCH_CITIZENS = ROW_GROUP_ROWS


def publish_documents(
    con: duckdb.DuckDBPyConnection, schema: str, *, records: str, cases: str, events: str, issues: str
) -> None:
    """`citizen_docs` in the view being written (`schema`), from the tables named: linked `records` (citizen_id and
    the document's record columns), `cases`, `events` (each with citizen_id) and field `issues`.

    One JSON text per citizen: DuckDB fetches one text column of one row by its index far more cheaply than lists of
    structs (it would read each struct field's column) or the wide `records` rows. Written in batches of consecutive
    citizen IDs, so memory stays bounded at millions of records; `records`, `cases` and `events` must be tables
    stored sorted by citizen_id and then `DOCUMENT_ORDER` (see `sorted_sql`): each batch reads only its own row
    groups of them (a batch by a hash of the ID read every row group once per batch), and each list keeps their
    storage order.
    """
    con.execute(f"CREATE TABLE {schema}.{DOCS} (citizen_id VARCHAR, doc VARCHAR)")
    for low, high in _batches(con, schema):
        con.execute(_documents_sql(f"{schema}.{DOCS}", (records, cases, events, issues), low=low, high=high))
    con.execute(f"CREATE INDEX {DOCS}_citizen_id ON {schema}.{DOCS} (citizen_id)")


def replace_documents(
    con: duckdb.DuckDBPyConnection, schema: str, citizens: str, *, records: str, cases: str, events: str, issues: str
) -> None:
    """In a view already holding `citizen_docs` (`schema`): the documents of the citizens listed in table `citizens`
    (column citizen_id) deleted and written anew from the tables named, as `publish_documents` writes them (a citizen
    with no linked record any more gets none). The index on citizen_id is kept up to date by DuckDB."""
    con.execute(f"DELETE FROM {schema}.{DOCS} WHERE citizen_id IN (SELECT citizen_id FROM {citizens})")
    con.execute(_documents_sql(f"{schema}.{DOCS}", (records, cases, events, issues), citizens=citizens))


def _batches(con: duckdb.DuckDBPyConnection, schema: str) -> list[tuple[str | None, str | None]]:
    """Ranges [low, high) of citizen IDs, BATCH_CITIZENS citizens each (None: open at that end)."""
    starts = [
        r[0]
        for r in con.execute(
            f"SELECT citizen_id FROM (SELECT citizen_id, row_number() OVER (ORDER BY citizen_id) - 1 AS n "
            f"FROM {schema}.citizen) WHERE n % ? = 0 AND n > 0 ORDER BY citizen_id",
            [BATCH_CITIZENS],
        ).fetchall()
    ]
    edges: list[str | None] = [None, *starts, None]
    return list(zip(edges[:-1], edges[1:]))


def sorted_sql(kind: str, select: str) -> str:
    """SQL: the rows of `select` (records, cases or events: `kind`) in the order `publish_documents` reads them."""
    return f"SELECT * FROM ({select}) ORDER BY citizen_id, {DOCUMENT_ORDER[kind]}"


def _documents_sql(
    target: str,
    tables: tuple[str, str, str, str],
    *,
    low: str | None = None,
    high: str | None = None,
    citizens: str | None = None,
) -> str:
    """SQL inserting into `target` the documents of the citizens with IDs in [low, high) (the bounds as literals, so
    the scans of the sorted tables skip the row groups outside them) and, with `citizens`, listed in that table."""
    records, cases, events, issues = tables

    def only(alias: str) -> str:
        bounds = [f"{alias}.citizen_id >= {literal(low)}" if low is not None else None]
        bounds.append(f"{alias}.citizen_id < {literal(high)}" if high is not None else None)
        bounds.append(f"{alias}.citizen_id IN (SELECT citizen_id FROM {citizens})" if citizens else None)
        kept = [b for b in bounds if b]
        return f"WHERE {' AND '.join(kept)}" if kept else ""

    return f"""
        INSERT INTO {target}
        WITH rec AS (
            SELECT citizen_id, '[' || {in_storage_order(_record_json("r"), "r")} || ']' AS j
            FROM {records} r {only("r")} GROUP BY citizen_id
        ),
        cas AS (
            SELECT citizen_id, {_json("c", CASE_COLUMNS)} AS j
            FROM {cases} c {only("c")} GROUP BY citizen_id
        ),
        ev AS (
            SELECT citizen_id, {_json("e", EVENT_COLUMNS)} AS j
            FROM {events} e {only("e")} GROUP BY citizen_id
        ),
        iss AS (
            SELECT r.citizen_id, {_json("i", ISSUE_COLUMNS, "i.source, i.record_id, i.field")} AS j
            FROM {issues} i JOIN {records} r
              ON r.source = i.source AND r.source_record_id = i.record_id
            {only("r")} GROUP BY r.citizen_id
        )
        SELECT citizen_id, '{{"records":' || rec.j || ',"cases":' || coalesce(cas.j, '[]')
               || ',"events":' || coalesce(ev.j, '[]') || ',"issues":' || coalesce(iss.j, '[]') || '}}' AS doc
        FROM rec LEFT JOIN cas USING (citizen_id) LEFT JOIN ev USING (citizen_id) LEFT JOIN iss USING (citizen_id)
        """


IN_BATCH = 100  # citizens per documents query: an IN list this long is still an index probe


def create_document_views(con: duckdb.DuckDBPyConnection, schema: str, types: dict[str, str]) -> None:
    """`records`, `cases` and `events` in the view (`schema`) as SQL views over the documents, typed (`types`: the
    DuckDB type of each record column; cases' and events' dates are DATEs): for analysts and tests. The service reads
    documents and `record_citizens` only, so the view holds the records once; a scan of these parses every document."""
    record = {c: types.get(c, "VARCHAR") for c in (*DOC_RECORD_COLUMNS, "attributes")}
    shapes = {
        "records": record,
        "cases": {c: ("DATE" if c in ("start_date", "end_date") else "VARCHAR") for c in CASE_COLUMNS},
        "events": {c: ("DATE" if c == "date" else "VARCHAR") for c in EVENT_COLUMNS},
    }
    for name, shape in shapes.items():
        spec = json.dumps([shape]).replace("'", "''")
        con.execute(
            f"CREATE VIEW {schema}.{name} AS SELECT citizen_id, item.* FROM (SELECT citizen_id, "
            f"unnest(from_json(json_extract(doc, '$.{name}'), '{spec}')) AS item FROM {DOCS})"
        )


def _doc(con: duckdb.DuckDBPyConnection, citizen_id: str, docs: DocumentFile | None = None) -> dict[str, Any] | None:
    """The citizen's document: from the view's documents file when it is mapped (`docs`) and not found damaged, else
    by an index probe."""
    if docs is not None and (texts := docs.texts([citizen_id])) is not None:
        return json.loads(texts[citizen_id]) if texts[citizen_id] else None
    row = con.execute(f"SELECT doc FROM {DOCS} WHERE citizen_id = ?", [citizen_id]).fetchone()
    return json.loads(row[0]) if row else None


def _typed(record: dict[str, Any], citizen_id: str, visible: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """A record of a document with its citizen and its dates as dates (JSON holds them as text), and its
    `match_probability`: its best link to a record of a `visible` source within the citizen. A link to a record of a
    source the reader may not see is never counted: it would tell that the citizen has a record there. The record's
    `links` (which name those sources) are dropped; a view written before them gives no probability (fail closed)."""
    links = record.pop("links", None) or {}
    record["match_probability"] = max((p for s, p in links.items() if s in visible and p is not None), default=None)
    for name in DATE_COLUMNS:
        if record.get(name) is not None:
            record[name] = dt.date.fromisoformat(record[name])
    if record.get("extracted_at") is not None:
        record["extracted_at"] = dt.datetime.fromisoformat(record["extracted_at"])
    record["citizen_id"] = citizen_id
    return record


def records_of(
    con: duckdb.DuckDBPyConnection, citizen_ids: list[str], visible: set[str], docs_file: DocumentFile | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each citizen's records of the `visible` sources (with `citizen_id`): the documents from the view's documents
    file when it is mapped (`docs_file`), else by one index probe per IN_BATCH citizens (a result list's 20
    candidates cost one query, not 20)."""
    wanted = list(dict.fromkeys(citizen_ids))
    docs = docs_file.texts(wanted) if docs_file is not None else None
    if docs is None:
        docs = {}
        for i in range(0, len(wanted), IN_BATCH):
            batch = wanted[i : i + IN_BATCH]
            # one citizen (most ID searches) by `=`: an IN list of one plans as a longer statement (~0.1 ms more CPU)
            where = "citizen_id = ?" if len(batch) == 1 else f"citizen_id IN ({', '.join('?' * len(batch))})"
            docs.update(con.execute(f"SELECT citizen_id, doc FROM {DOCS} WHERE {where}", batch).fetchall())
    out: dict[str, list[dict[str, Any]]] = {}
    for citizen_id in wanted:
        doc = docs.get(citizen_id)
        if mine := _visible_records(json.loads(doc) if doc else None, citizen_id, visible):
            out[citizen_id] = mine
    return out


def _visible_records(doc: dict[str, Any] | None, citizen_id: str, visible: set[str]) -> list[dict[str, Any]]:
    """A document's records of the `visible` sources, typed (none without a document)."""
    return [_typed(r, citizen_id, visible) for r in (doc["records"] if doc else []) if r["source"] in visible]


def records_by_key(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The linked records named "source:source_record_id" (typed, with `citizen_id`): each key's citizen by an index
    probe of `record_citizens`, then the record from that citizen's document. An unknown key is absent."""
    out: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys(keys):
        row = con.execute(f"SELECT citizen_id FROM {RECORD_CITIZENS} WHERE record_key = ?", [key]).fetchone()
        doc = _doc(con, row[0]) if row else None
        source, _, record_id = key.partition(":")
        for record in doc["records"] if doc else []:
            if record["source"] == source and record["source_record_id"] == record_id:
                out[key] = _typed(record, row[0])
    return out


def citizens_of(con: duckdb.DuckDBPyConnection, keys: list[str]) -> list[str]:
    """The citizens of the linked records named "source:source_record_id" (sorted; an unknown key has none)."""
    rows = con.execute(
        f"SELECT DISTINCT citizen_id FROM {RECORD_CITIZENS} WHERE record_key IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1",
        [keys],
    ).fetchall()
    return [r[0] for r in rows]


def record_known(con: duckdb.DuckDBPyConnection, key: str) -> bool:
    """Whether "source:source_record_id" names a linked record of the view (an index probe)."""
    return con.execute(f"SELECT count(*) FROM {RECORD_CITIZENS} WHERE record_key = ?", [key]).fetchall()[0][0] > 0


@dataclass
class CitizenDocument:
    """One citizen's records (each with its other columns as `attributes`), cases, events and set-aside values, of the
    sources a role may see only."""

    records: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    events: list[dict[str, Any]]
    issues: list[dict[str, Any]]


def preload(con: duckdb.DuckDBPyConnection) -> None:
    """Read every citizen's document once, so that DuckDB holds their blocks: a look at a citizen nobody has looked at
    yet then costs ~0.65 ms of CPU, not ~1.4 ms, most of it the block's load (measured at 1M: 2 s of CPU and ~0.9 GB
    a service process, spent in the view store's switch thread, before the view counts as prepared)."""
    cur = con.cursor()
    try:
        cur.execute("SET enable_progress_bar = false")
        cur.execute(f"SELECT sum(length(doc)) FROM {DOCS}").fetchall()
    finally:
        cur.close()


def document_of(
    con: duckdb.DuckDBPyConnection, citizen_id: str, visible: set[str], docs: DocumentFile | None = None
) -> CitizenDocument | None:
    """The citizen's document as the `visible` sources give it; None when none of them knows the citizen (`docs`:
    the view's documents file, when mapped)."""
    doc = _doc(con, citizen_id, docs)
    records = _visible_records(doc, citizen_id, visible)
    if not records:
        return None
    return CitizenDocument(
        records,
        [c for c in doc["cases"] if c["source"] in visible],
        [e for e in doc["events"] if e["source"] in visible],
        [i for i in doc["issues"] if i["source"] in visible],
    )


@dataclass
class ViewInfo:
    """What every look needs of a served view's small tables, read once per view file."""

    country: str | None
    ranks: list[tuple[str, str, int]]
    labels: dict[str, dict[str, tuple[str, str | None, bool]]] = field(default_factory=dict)
    held: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # source -> (data as of, newer extract held since)
    ids: IdIndex | None = None  # the view's national IDs in memory (the service reads them once per view file)
    docs: DocumentFile | None = None  # the view's documents file, mapped (the service maps it once per view file)
    review_needs: frozenset[str] | None = None  # what a reviewer must see (review_items.review_needs), once read
    # the values survivorship passes over (golden.py's stand-ins): the model's list the view was published with
    stand_ins: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection) -> ViewInfo:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        }
        for needed in (DOCS, RECORD_CITIZENS):
            if needed not in tables:
                raise ValueError(
                    f"the served view has no {needed}: it was published by an older version; publish it again"
                )
        labels: dict[str, dict[str, tuple[str, str | None, bool]]] = {}
        for source, column, label, fmt, hidden in con.execute(
            "SELECT source, column_name, label, format, hidden FROM attribute_labels"
        ).fetchall():
            labels.setdefault(source, {})[column] = (label, fmt, hidden)
        held = {}
        if "source_status" in tables:
            held = {
                s: (a, h)
                for s, a, h in con.execute(
                    "SELECT source, accepted_at, held_since FROM source_status WHERE held_since IS NOT NULL"
                ).fetchall()
            }
        return cls(
            country=con.execute("SELECT country FROM view_info").fetchall()[0][0],
            ranks=[tuple(r) for r in con.execute("SELECT grp, source, rank FROM source_rank").fetchall()],
            labels=labels,
            held=held,
            stand_ins=read_stand_ins(con, STAND_INS_IN_VIEW),  # none in a view published before them
        )
