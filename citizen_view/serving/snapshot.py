"""The served view: a read-only DuckDB file per pipeline run, switched in atomically.

The pipeline writes `serving/view-<time>-<run>.duckdb` completely, then replaces the one-line
pointer file `serving/CURRENT` (an atomic rename). The service reads the pointer and opens the new
file for requests that start after the switch; requests already running finish on the file they
started with. A run that fails before the switch leaves the served view as it was. The warehouse
itself is never opened by the service (DuckDB allows one writer and no concurrent readers per file).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from citizen_view.audit.storage import fsync_dir
from citizen_view.extract_state import contract_fingerprint
from citizen_view.ingest import source_status
from citizen_view.layout import PARTIAL, clean_partials
from citizen_view.linkage.citizen_ids import LINEAGE_SQL
from citizen_view.linkage.golden import STAND_INS, STAND_INS_USED, rank_rows
from citizen_view.serving import document_file
from citizen_view.serving.documents import (
    DOC_RECORD_COLUMNS,
    RECORD_CITIZENS,
    ROW_GROUP_ROWS,
    STAND_INS_IN_VIEW,
    create_document_views,
    publish_documents,
    sorted_sql,
)
from citizen_view.serving.resolve_view import publish_resolve_tables
from citizen_view.warehouse import literal, table_exists

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from citizen_view.contract import SourcesFile

POINTER = "CURRENT"
KEEP_VIEWS = 3


def _path(name: str) -> str:
    return '$."' + name.replace('"', '\\"') + '"'


# How the served view reads a case's dates when its source declares no format.
CASE_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d-%m-%Y", "%d.%m.%Y", "%Y%m%d")


def _date(value: str, fmt: str | None) -> str:
    """SQL turning date text into a DATE with the declared format, or the first usual format that reads it."""
    formats = [fmt] if fmt else list(CASE_DATE_FORMATS)
    return "coalesce(" + ", ".join(f"try_strptime({value}, {literal(f)})::DATE" for f in formats) + ")"


def _state(status: str, end: str, mapping: dict, day: dt.date) -> str:
    """SQL for a case's state (open, pending, closed) from the agency's status words, or from its end date: closed once
    `day` (the day the view is written for) is past it."""
    whens = " ".join(
        f"WHEN lower(trim({status})) IN ({', '.join(literal(w.lower()) for w in words)}) THEN {literal(state.value)}"
        for state, words in mapping.items()
        if words
    )
    return (
        f"CASE {whens} WHEN {status} IS NULL AND {end} < DATE '{day.isoformat()}' THEN 'closed' "
        f"WHEN {status} IS NULL THEN 'open' ELSE 'unknown' END"
    )


def _cases_sql(sources: SourcesFile, *, day: dt.date, linked: str | None = None) -> str:
    """Cases and applications of every source that declares them: kind, type, state, dates (DATE), reference (of the
    linked records `linked`, a table or a parenthesised query; default the view's temporary `LINKED`)."""
    linked = linked or LINKED
    parts = []
    for s in sources.sources:
        c = s.cases
        if c is None:
            continue

        def pick(key: str | None, item: str) -> str:
            return f"json_extract_string({item}, {literal(_path(key))})" if key else "NULL::VARCHAR"

        def cols(item: str) -> str:
            status, start, end = pick(c.status, item), pick(c.start, item), pick(c.end, item)
            reference = "source_record_id" if c.reference and c.reference == s.record_id else pick(c.reference, item)
            end_date = _date(end, c.date_format)
            return (
                f"{pick(c.type, item)} AS case_type, {status} AS status, {_state(status, end_date, c.status_map, day)} AS state, "
                f"{_date(start, c.date_format)} AS start_date, {end_date} AS end_date, {reference} AS case_reference"
            )

        head = f"SELECT citizen_id, source, source_record_id, {literal(c.kind)} AS kind"
        if c.list:
            parts.append(
                f"{head}, {cols('item')} FROM {linked}, "
                f"unnest(from_json(json_extract_string(attributes, {literal(_path(c.list))}), '[\"JSON\"]')) AS t(item) "
                f"WHERE source = {literal(s.name)}"
            )
        else:
            parts.append(f"{head}, {cols('attributes')} FROM {linked} WHERE source = {literal(s.name)}")
    empty = (
        "SELECT NULL::VARCHAR AS citizen_id, NULL::VARCHAR AS source, NULL::VARCHAR AS source_record_id, "
        "NULL::VARCHAR AS kind, NULL::VARCHAR AS case_type, NULL::VARCHAR AS status, NULL::VARCHAR AS state, "
        "NULL::DATE AS start_date, NULL::DATE AS end_date, NULL::VARCHAR AS case_reference WHERE false"
    )
    return " UNION ALL ".join(parts) if parts else empty


def _labels(sources: SourcesFile) -> list[tuple[str, str, str, str | None, bool]]:
    """(source, column, label, date format, hidden) for the profile's view of each source's other columns.

    A case-list column is hidden (its cases are shown as cases); event columns get their event's label and format.
    """
    rows = []
    for s in sources.sources:
        if s.cases is not None and s.cases.list:
            rows.append((s.name, s.cases.list, s.cases.list, None, True))
        for event, m in s.events.items():
            if m.column not in s.attributes:
                rows.append((s.name, m.column, event.replace("_", " ").capitalize(), m.format or "%Y-%m-%d", False))
        for column, a in s.attributes.items():
            rows.append((s.name, column, a.label, a.format, False))
    return rows


def _events_sql(sources: SourcesFile) -> str:
    """Life events every source declares (birth and death come from the golden record a role sees)."""
    parts = [
        "SELECT NULL::VARCHAR AS citizen_id, NULL::DATE AS date, NULL::VARCHAR AS event, NULL::VARCHAR AS source, "
        "NULL::VARCHAR AS source_record_id WHERE false"
    ]
    for s in sources.sources:
        for event, m in s.events.items():
            value = f"json_extract_string(attributes, {literal(_path(m.column))})"
            date = f"try_strptime({value}, {literal(m.format or '%Y-%m-%d')})::DATE"
            parts.append(
                f"SELECT citizen_id, {date}, {literal(event)}, source, source_record_id "
                f"FROM {LINKED} WHERE source = {literal(s.name)} AND {date} IS NOT NULL"
            )
    return " UNION ALL ".join(parts)


def publish_view(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, folder: Path, *, run_id: str, day: dt.date | None = None
) -> Path:
    """Write a complete served view from the warehouse and switch the pointer to it; returns the new file. `day`: the
    day its cases' states are judged by (default `today()`)."""
    partial, final = start_view(folder, run_id)
    write_whole(con, sources, partial, run_id, day=day or today())
    return finish_view(folder, partial, final)


def start_view(folder: Path, run_id: str) -> tuple[Path, Path]:
    """(the file a new view is written to, the name it is switched in under), after clearing what a crashed run left."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"view-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S-%f}-{run_id[:8]}.duckdb"
    clean_partials(folder)  # what a crashed run left behind
    return folder / f".{name}{PARTIAL}", folder / name


def today() -> dt.date:
    """The day a view written now is written for: the day ingest judges by too (Python's local date: DuckDB falls back
    to UTC for a POSIX TZ string that Python honours, so its `current_date` could be another day)."""
    return dt.date.today()


def write_whole(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, partial: Path, run_id: str, *, day: dt.date
) -> None:
    """Every table of a view for `day`, written into the new file `partial`."""
    con.execute(f"ATTACH {literal(str(partial))} AS snap (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
    try:
        _write_view(con, sources, run_id, day=day)
    finally:
        con.execute("DETACH snap")
        drop_temps(con)


def drop_temps(con: duckdb.DuckDBPyConnection) -> None:
    for temp in (LINKED, CASES, EVENTS):
        con.execute(f"DROP TABLE IF EXISTS {temp}")


def finish_view(
    folder: Path, partial: Path, final: Path, *, updated: Path | None = None, changed: list[str] | None = None
) -> Path:
    """Switch the service to the view written to `partial` (renamed to `final`, with its documents file beside it,
    written first: document_file.py) and keep the last few. `updated`: the view `partial` was updated from, where only
    the documents of the citizens `changed` were rewritten (its documents file is then the base of the new one)."""
    docs = document_file.path_for(partial)  # hidden and partial too: a crash leaves it to `clean_partials`
    if updated is not None and changed is not None:
        base = document_file.path_for(updated)
        document_file.write_changed(partial, docs, name=final.name, base=base, base_view=updated.name, changed=changed)
    else:
        document_file.write(partial, docs, name=final.name)
    os.replace(docs, document_file.path_for(final))
    partial.rename(final)
    fsync_dir(folder)  # both names on disk before the pointer names the view
    switch_to(folder, final.name)
    _prune(folder, keep=KEEP_VIEWS)
    return final


def _write_view(con: duckdb.DuckDBPyConnection, sources: SourcesFile, run_id: str, *, day: dt.date) -> None:
    """The view's tables, in the attached `snap`: the warehouse's big tables are read once, into `_linked` (sorted by
    citizen), and every table of the view is written from that."""
    con.execute("CREATE TABLE snap.citizen AS SELECT * FROM citizen ORDER BY citizen_id")
    _linked(con)
    _search_tables(con, LINKED)
    _ranks_and_issues(con, sources)
    _profile_tables(con, sources, day=day)
    _events_and_status(con, sources)
    lineage(con)
    _record_citizens(con)
    con.execute(f"CREATE TABLE snap.{DIGESTS} AS {record_digests_sql()}")
    _view_info(con, sources, run_id, day=day)
    create_lookup_indexes(con, "snap")
    publish_documents(con, "snap", records=LINKED, cases=CASES, events=EVENTS, issues="snap.field_issues")
    create_document_views(con, "snap", _record_types(con))
    publish_resolve_tables(con, sources, "snap")


# Temporary tables of the warehouse connection while a view is written: the linked records (the columns the view's
# tables are made of), cases and events, each sorted by citizen and then as a document lists them
# (documents.DOCUMENT_ORDER), so each batch of documents reads only its row groups and lists them in storage order.
LINKED, CASES, EVENTS = "_view_linked", "_view_cases", "_view_events"
SEARCH_COLUMNS = ("first_name_std", "initials", "street_std", "national_id_text")  # read by the search keys only


def _linked(con: duckdb.DuckDBPyConnection) -> None:
    """The citizens' linked records, the columns the view is made of only, sorted by citizen and then as a document
    lists them (one read of the warehouse's `source_records` and `citizen_source_link`, one sort), each with its best
    link to a record of each source within its citizen (`_best_links`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {LINKED} AS {sorted_sql('records', linked_sql(con))}")
    con.execute(f"DROP TABLE {BEST_LINKS}")


BEST_LINKS = "_view_best_links"


def linked_sql(con: duckdb.DuckDBPyConnection, *, links: bool = True, citizens: str | None = None) -> str:
    """SQL: the rows of `_linked`, unsorted (it first writes the records' best links, temporary table `BEST_LINKS`);
    without `links`, their `links` null (nothing written; what the record digests read); with `citizens` (a table of
    citizen_id), those citizens' rows only, and their best links only."""
    # each column once: the documents and the search keys share some
    read = dict.fromkeys((*DOC_RECORD_COLUMNS, "attributes", *SEARCH_COLUMNS))
    columns = ", ".join(f"r.{c}" for c in read if c != "links")
    records = "citizen_source_link l JOIN source_records r USING (record_key)"
    only = f" WHERE l.citizen_id IN (SELECT citizen_id FROM {citizens})" if citizens else ""
    if not links:
        return f"SELECT l.citizen_id, NULL::MAP(VARCHAR, DOUBLE) AS links, {columns} FROM {records}{only}"
    _best_links(con, citizens=citizens)
    return f"SELECT l.citizen_id, b.links, {columns} FROM {records} LEFT JOIN {BEST_LINKS} b USING (record_key){only}"


def _best_links(con: duckdb.DuckDBPyConnection, *, citizens: str | None = None) -> None:
    """`BEST_LINKS`: per linked record, the highest match probability of its scored pairs with each source's
    records within its citizen, as a map {source: probability} (sorted by source, so two publishes of one warehouse
    write the same documents). The warehouse's `citizen_source_link.match_probability` is the highest over every
    source: shown to a role that may not see them all, it would tell that the citizen has records it may not see
    (about 5 s at 1M; with `citizens`, a table of citizen_id, theirs only). No scored pairs (a warehouse without
    them): no links."""
    if not table_exists(con, "main", "match_edges"):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {BEST_LINKS} AS SELECT NULL::VARCHAR AS record_key, "
            "NULL::MAP(VARCHAR, DOUBLE) AS links WHERE false"
        )
        return
    only = f"WHERE a.citizen_id IN (SELECT citizen_id FROM {citizens})" if citizens else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {BEST_LINKS} AS
        WITH inside AS MATERIALIZED (
            SELECT e.record_key_l, e.record_key_r, e.source_l, e.source_r, e.match_probability
            FROM match_edges e JOIN citizen_source_link a ON a.record_key = e.record_key_l
            JOIN citizen_source_link b ON b.record_key = e.record_key_r AND a.citizen_id = b.citizen_id
            {only}
        ),
        best AS (
            SELECT record_key, partner, max(match_probability) AS p FROM (
                SELECT record_key_l AS record_key, source_r AS partner, match_probability FROM inside
                UNION ALL SELECT record_key_r, source_l, match_probability FROM inside
            ) GROUP BY ALL
        )
        SELECT record_key, map_from_entries(list_sort(list((partner, p)))) AS links FROM best GROUP BY record_key
        """
    )


DIGESTS = "record_digests"


def record_digests_sql(issues: str = "snap.field_issues", linked: str = LINKED) -> str:
    """SQL: per linked record (its key, citizen, family name and birth date, which make its `search_people` keys) a
    digest of everything the view holds of it but its links: its row of `_linked` (the citizen, the columns documents
    and search keys are made of, its other columns, from which cases and events come) and its set-aside values
    (`issues`). A view keeps them (`record_digests`) so that the next incremental run rewrites only the citizens whose
    records' digests differ (view_update.py). The links are left out: under one model (the view's fingerprint holds
    it) a scored pair within a citizen changes only with a record that arrives, changes or leaves, and so with a
    digest that differs in that citizen. `linked`: the `_linked` rows (a table, or a subquery in parentheses)."""
    return f"""
        WITH iss AS (
            SELECT source, record_id, hash(list(struct_pack(f := field, r := raw, w := reason) ORDER BY field, raw, reason)) AS h
            FROM {issues} GROUP BY ALL
        )
        SELECT l.source || ':' || l.source_record_id AS record_key, l.citizen_id, l.family_name_std, l.date_of_birth,
               hash(*COLUMNS(l.* EXCLUDE (links)), i.h) AS d
        FROM {linked} l LEFT JOIN iss i ON i.source = l.source AND i.record_id = l.source_record_id
        """


def _record_types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The DuckDB type of each column of a document's records (the `records` view reads them back typed)."""
    return {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {LINKED}").fetchall()}


def _record_citizens(con: duckdb.DuckDBPyConnection) -> None:
    """Which citizen each linked record ("source:source_record_id") belongs to, with its source (in citizen order,
    as `_linked` holds them: the key is found by its index): the review page
    finds a record's citizen (and then its document) by an index probe, and a citizen's sources by a scan of two
    narrow columns."""
    con.execute(f"CREATE TABLE snap.{RECORD_CITIZENS} AS {record_citizens_sql(LINKED)}")


def record_citizens_sql(linked: str, *, citizens: str | None = None) -> str:
    """SQL: the `record_citizens` rows of the `linked` records (with `citizens`, a table of citizen_id: theirs)."""
    only = f" WHERE citizen_id IN (SELECT citizen_id FROM {citizens})" if citizens else ""
    return f"SELECT source || ':' || source_record_id AS record_key, citizen_id, source FROM {linked}{only}"


def _search_tables(con: duckdb.DuckDBPyConnection, linked: str, schema: str = "snap") -> None:
    """The search keys by name and birth date, address and ID, each row with its source, from the `linked` records.

    A role only finds citizens through the records it may see: every key carries its source, applied in memory to
    the few rows an index probe returns (`create_lookup_indexes`). The tables hold only what a search scores.
    """
    con.execute(f"CREATE TABLE {schema}.search_people AS {people_sql(linked)}")
    con.execute(f"CREATE TABLE {schema}.search_addresses AS {addresses_sql(linked)} ORDER BY postcode_key")
    con.execute(f"CREATE TABLE {schema}.search_ids AS {ids_sql(linked)} ORDER BY national_id")


_KEYS = "citizen_id, source, family_name_std AS family_key, first_name_std AS first_key, initials"


def people_keys_sql(family: str, dob: str) -> list[str]:
    """SQL: the three `search_people` keys of a person with family name `family` and birth date `dob` (columns)."""
    return [PEOPLE_KEYS[k].format(family=family, dob=dob) for k in ("date", "name_year", "name_day")]


def people_sql(linked: str, *, keys: str | None = None, persons: str | None = None) -> str:
    """SQL: the `search_people` rows (key, people) from the `linked` records; with `keys` (a table of column key),
    only those keys' rows, each with everyone it finds (`persons`: a condition on the records that holds for everyone
    those keys find, so that only they are made into JSON)."""
    # Name + birth date: one row per key holding, as one JSON text, everyone the key finds (an index probe fetches one
    # text instead of a hundred scattered rows). Keys: the birth date; the family name with the year of birth; the
    # family name with the day and month of birth (a date one digit off changes the day, the month or the year's last
    # digit, so it keeps one of the two). search.people_keys builds the same keys in Python.
    person = (
        "to_json(struct_pack(c := citizen_id, s := source, f := family_key, g := first_key, i := initials, d := dob))"
    )
    # Each key's people in one order (by their JSON: citizen first), so two publishes of one warehouse hold the same
    # lists and a search gives the same reasons. Each key's list is sorted on its own (`list_sort`): the same texts as
    # `string_agg(person, ',' ORDER BY person)`, for about two thirds of its CPU (at 1M: 8.3 against 13.1 s).
    wanted = f"WHERE key IN (SELECT key FROM {keys})" if keys else ""
    union = " UNION ALL ".join(f"SELECT {k} AS key, person FROM p" for k in people_keys_sql("family_key", "dob"))
    return f"""
        WITH p AS (
            SELECT family_key, dob, {person}::VARCHAR AS person FROM (
                SELECT DISTINCT {_KEYS}, date_of_birth AS dob FROM {linked}
                WHERE family_name_std IS NOT NULL AND date_of_birth IS NOT NULL{f" AND ({persons})" if persons else ""}
            )
        )
        SELECT key, '[' || array_to_string(list_sort(list(person)), ',') || ']' AS people FROM ({union}) {wanted}
        GROUP BY key ORDER BY key
        """  # each person's JSON is made once, for all three of their keys


def addresses_sql(linked: str, *, citizens: str | None = None) -> str:
    """SQL: the `search_addresses` rows of the `linked` records (with `citizens`, a table of citizen_id: theirs)."""
    only = f" AND citizen_id IN (SELECT citizen_id FROM {citizens})" if citizens else ""
    return (
        f"SELECT DISTINCT {_KEYS}, postcode, "
        f"{ADDRESS_KEY.format(place='postcode', number='house_number')} AS postcode_key, "
        f"{ADDRESS_KEY.format(place='street_std', number='house_number')} AS street_key FROM {linked} "
        "WHERE family_name_std IS NOT NULL AND house_number IS NOT NULL AND (postcode IS NOT NULL OR street_std IS NOT NULL)"
        + only
    )


def ids_sql(linked: str, *, citizens: str | None = None) -> str:
    """SQL: the `search_ids` rows of the `linked` records (with `citizens`, a table of citizen_id: theirs)."""
    # An ID one typo away (one character changed, or two neighbours swapped) keeps its head or its tail intact:
    # both are keys, so a near-ID search probes two keys instead of a hundred variants.
    only = f" AND citizen_id IN (SELECT citizen_id FROM {citizens})" if citizens else ""
    return (
        f"SELECT national_id, citizen_id, source, {ID_HEAD.format(v='national_id')} AS id_head, "
        f"{ID_TAIL.format(v='national_id')} AS id_tail FROM ("
        "SELECT DISTINCT coalesce(national_id, national_id_text) AS national_id, citizen_id, source "
        f"FROM {linked} WHERE coalesce(national_id, national_id_text) IS NOT NULL{only})"
    )


def _ranks_and_issues(con: duckdb.DuckDBPyConnection, sources: SourcesFile) -> None:
    """Which source wins each field group, and the values set aside at ingest."""
    con.execute("CREATE TABLE snap.source_rank (grp VARCHAR, source VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO snap.source_rank VALUES (?, ?, ?)", rank_rows(sources))
    # the stand-ins survivorship passed over when the warehouse's `citizen` was built (else the model's), so that a look
    # chooses as `citizen` did even when the model was trained again since (a run that stopped before the golden step)
    con.execute(f"CREATE TABLE snap.{STAND_INS_IN_VIEW} (field VARCHAR, value VARCHAR)")
    used = next((t for t in (STAND_INS_USED, STAND_INS) if table_exists(con, "main", t)), None)
    if used:
        con.execute(f"INSERT INTO snap.{STAND_INS_IN_VIEW} SELECT field, value FROM {used}")
    con.execute(
        "CREATE TABLE snap.field_issues AS SELECT source, record_id, field, raw, reason FROM field_issues ORDER BY source, record_id"
        if table_exists(con, "main", "field_issues")
        else "CREATE TABLE snap.field_issues (source VARCHAR, record_id VARCHAR, field VARCHAR, raw VARCHAR, reason VARCHAR)"
    )


def _profile_tables(con: duckdb.DuckDBPyConnection, sources: SourcesFile, *, day: dt.date) -> None:
    """Cases (for the documents, in their order), the labels of each source's other columns, and the review queue."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CASES} AS {sorted_sql('cases', _cases_sql(sources, day=day))}")
    con.execute(
        "CREATE TABLE snap.attribute_labels (source VARCHAR, column_name VARCHAR, label VARCHAR, format VARCHAR, hidden BOOLEAN)"
    )
    con.execute("CREATE TABLE snap.source_labels (source VARCHAR, label VARCHAR)")  # how pages name sources
    con.executemany("INSERT INTO snap.source_labels VALUES (?, ?)", [(x.name, x.label) for x in sources.sources])
    labels = _labels(sources)
    if labels:
        con.executemany("INSERT INTO snap.attribute_labels VALUES (?, ?, ?, ?, ?)", labels)
    con.execute(
        "CREATE TABLE snap.review_queue AS SELECT * EXCLUDE (evidence), evidence::VARCHAR AS evidence FROM review_queue"
        if table_exists(con, "main", "review_queue")
        else "CREATE TABLE snap.review_queue (item_id VARCHAR, kind VARCHAR, record_key_l VARCHAR, record_key_r VARCHAR, "
        "citizen_id VARCHAR, match_weight DOUBLE, match_probability DOUBLE, model_decision VARCHAR, reason VARCHAR, "
        "evidence VARCHAR, status VARCHAR, run_id VARCHAR, queued_at TIMESTAMPTZ)"
    )


def _events_and_status(con: duckdb.DuckDBPyConnection, sources: SourcesFile) -> None:
    """Life events (for the documents, in their order), and which sources' data is stale."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {EVENTS} AS {sorted_sql('events', _events_sql(sources))}")
    # Which sources' data is stale: a newer extract held back at ingest (the view holds the last accepted one).
    con.register("_source_status", source_status(con, [s.name for s in sources.sources]))
    try:
        con.execute("CREATE TABLE snap.source_status AS SELECT * FROM _source_status")
    finally:
        con.unregister("_source_status")


LINEAGE = "citizen_lineage"


def lineage(con: duckdb.DuckDBPyConnection) -> None:
    """Each citizen ID's predecessors until when (citizen_ids.LINEAGE_SQL): a citizen's access log lists the looks
    at them before then, when its records were theirs."""
    con.execute(
        f"CREATE TABLE snap.{LINEAGE} AS {LINEAGE_SQL} ORDER BY citizen_id"
        if table_exists(con, "main", "citizen_id_history")
        else f"CREATE TABLE snap.{LINEAGE} (citizen_id VARCHAR, predecessor_id VARCHAR, until TIMESTAMPTZ)"
    )


def _view_info(
    con: duckdb.DuckDBPyConnection,
    sources: SourcesFile,
    run_id: str,
    *,
    day: dt.date,
    counts: tuple[int, int, int] | None = None,
) -> None:
    """The run the view comes from, when it was published and for which day, its size and the language its pages
    speak (`counts`: records, cases and events, when the temporary tables do not hold them all)."""
    records, cases, events = counts if counts is not None else temp_counts(con)
    con.execute(
        "CREATE TABLE snap.view_info AS SELECT ? AS run_id, now() AS published_at, ?::VARCHAR AS country, "
        "(SELECT count(*) FROM snap.citizen) AS citizens, ?::BIGINT AS records, ?::VARCHAR AS language, "
        "?::BIGINT AS cases, ?::BIGINT AS events, ?::VARCHAR AS fingerprint, ?::DATE AS written_on",
        [
            run_id,
            sources.country,
            records,
            sources.serving.language,
            cases,
            events,
            view_fingerprint(con, sources),
            day,
        ],
    )


def temp_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """The records, cases and events the view's temporary tables hold."""
    return con.execute(
        f"SELECT (SELECT count(*) FROM {LINKED}), (SELECT count(*) FROM {CASES}), (SELECT count(*) FROM {EVENTS})"
    ).fetchall()[0]


def view_fingerprint(con: duckdb.DuckDBPyConnection, sources: SourcesFile) -> str:
    """What a view was written by and under, kept in `view_info`: the code and contract (`contract_fingerprint`), the
    connection's time zone (DuckDB's `TimeZone`: a document renders its records' `extracted_at` in it, and a case
    date read with a `%z` format falls on its day there), so a view is only updated by a connection that renders as
    the one that wrote it, and the linkage model and threshold that scored the pairs the records' links come from.
    The day it was written for is kept beside it (`written_on`): a case without a status is open or closed by
    whether its end date has passed (`_state`), so an update on another day rewrites the citizens whose cases the
    days between close or reopen (view_update.py)."""
    zone = con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]
    model = ""  # the model that scored the pairs (record_digests_sql: the links rely on it)
    if table_exists(con, "main", "linkage_model") and table_exists(con, "main", "linkage_threshold"):
        model = con.execute(
            "SELECT (SELECT max(trained_at)::VARCHAR FROM linkage_model) || ' ' || "
            "(SELECT max(threshold_weight)::VARCHAR FROM linkage_threshold)"
        ).fetchall()[0][0]
    return hashlib.sha256(f"{contract_fingerprint(sources)} {zone} {model}".encode()).hexdigest()


# The head and tail of an ID of n characters: its first and last (n - 1) // 2, at least one character apart, so
# a change of one character or of two neighbours leaves one of them as it was. `{v}` is the ID (SQL).
ID_HEAD = "left({v}, (length({v}) - 1) // 2)"
ID_TAIL = "right({v}, (length({v}) - 1) // 2)"
# A place (postcode or street) and a house number as one key (a unit separator between them).
ADDRESS_KEY = "({place} || chr(31) || {number})"
# The keys of `search_people` (search.people_keys builds the same in Python): a tag, then the key's parts.
PEOPLE_KEYS = {
    "date": "('d' || chr(31) || strftime({dob}, '%Y-%m-%d'))",
    "name_year": "('y' || chr(31) || {family} || chr(31) || strftime({dob}, '%Y'))",
    "name_day": "('m' || chr(31) || {family} || chr(31) || strftime({dob}, '%m-%d'))",
}

# (table, column): what the service looks up by equality. DuckDB answers `column = ?` from an ART index in about
# a millisecond, where the zone maps of a sorted table still read a whole row group (122,880 rows) per probe.
LOOKUP_INDEXES = (
    ("search_ids", "national_id"),
    ("search_ids", "id_head"),
    ("search_ids", "id_tail"),
    ("search_people", "key"),
    ("search_addresses", "postcode_key"),
    ("search_addresses", "street_key"),
    ("record_citizens", "record_key"),
)  # a citizen's records are read from its document (documents.py, indexed there)


def create_lookup_indexes(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """The ART indexes of the served view's lookups (`LOOKUP_INDEXES`), in the attached view `schema`."""
    for table, column in LOOKUP_INDEXES:
        con.execute(f"CREATE INDEX {table}_{column} ON {schema}.{table} ({column})")


def switch_to(folder: Path, view_name: str) -> None:
    """Point the service at a view (atomic: write a temporary pointer, then rename it over the old one)."""
    tmp = folder / f".{POINTER}.{os.getpid()}"
    tmp.write_text(view_name + "\n", encoding="utf-8")
    os.replace(tmp, folder / POINTER)
    fsync_dir(folder)


def current_view(folder: Path) -> Path | None:
    """The view file the pointer names, or None before the first publication."""
    pointer = folder / POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return folder / name if name else None


T = TypeVar("T")


def read_current_view(folder: Path, read: Callable[[duckdb.DuckDBPyConnection], T], default: T) -> T:
    """`read` on the published view, opened read-only for it; `default` before the first publication."""
    import duckdb

    view = current_view(folder)
    if view is None or not view.is_file():
        return default
    con = duckdb.connect(str(view), read_only=True)
    try:
        return read(con)
    finally:
        con.close()


def _prune(folder: Path, *, keep: int) -> None:
    """Delete all but the newest `keep` views, with their documents files, and any documents file whose view is gone
    (a crash between their renames); a service still reading an old one keeps its open files."""
    current = current_view(folder)
    views = sorted(folder.glob("view-*.duckdb"))
    for old in views[:-keep]:
        if old != current:
            old.unlink(missing_ok=True)
            Path(str(old) + ".wal").unlink(missing_ok=True)
            document_file.path_for(old).unlink(missing_ok=True)
    for docs in folder.glob(f"view-*.duckdb{document_file.SUFFIX}"):
        if not docs.with_name(docs.name.removesuffix(document_file.SUFFIX)).exists():
            docs.unlink(missing_ok=True)
