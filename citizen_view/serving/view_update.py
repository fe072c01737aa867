"""An incremental run's served view: the current view copied and only the citizens whose records changed rewritten.

A full publish writes every citizen's document, search keys and lookups anew (about a minute at a million records,
most of an incremental run once its linkage takes seconds). When 1,000 records land, a few thousand citizens change.
`update_view` works on a copy of the view being served (the service goes on reading the original until the pointer
switches, as with a full publish):

- the warehouse's linked records are read as a full publish reads them (`snapshot.linked_sql`), but without their
  best links, and each record's digest computed (`snapshot.record_digests_sql`: its citizen, every column the view
  is made of and its set-aside values; under the view's model a citizen's links change only with its records); the
  citizens touched are those of the records whose digest, citizen or presence differs from the digests the view was
  written with (old citizen and new, so a record that moved, arrived or left rewrites both);
- the touched citizens' records get their best links (for every record, 6 s at 1M), and their documents, ID and
  address keys and `record_citizens` rows are deleted and written anew with the same SQL a full publish uses,
  restricted to them; the name + birth date keys of their records, before and after, are written anew with everyone
  they find; the ART indexes follow the deletes and inserts;
- the golden records (`citizen`) whose row digest differs from the view's are replaced;
- what is small or global is written whole: the set-aside values, review queue,
  source status and labels, the view's info;
- the view's digests lose the rows that differ from the warehouse's and gain the warehouse's that differ;
- the tables online resolution reads are updated for the records whose linkage input or citizen changed
  (`resolve_view.update_resolve_tables`; their term frequencies, which count every record, are counted anew).

A view written on another day than today is updated too: a case without a status closes when its end date passes, so
the citizens with such a case whose end date lies between the view's day (`view_info.written_on`) and today are
touched as well, whatever their records did (`_cases_turned`; nothing else in a view depends on the day).

It falls back to a full publish (returns None) when there is no view yet, when the view was written by other code,
under another contract, in another time zone (documents render timestamps in the connection's zone) or under another
linkage model or threshold (the records' links come from its scored pairs) (`snapshot.view_fingerprint`, kept in
`view_info`), when it has no digests or no day (a view from before them), and when more than `MAX_TOUCHED_SHARE` of
its citizens are touched (then a full publish is about as fast and leaves the tables in their sorted order). Tested: a view updated this way holds the same rows, table
by table, as a full publish of the same warehouse (tests/test_incremental_view.py).
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from citizen_view.serving import snapshot as snap
from citizen_view.serving.documents import DOCS, STAND_INS_IN_VIEW, replace_documents, sorted_sql
from citizen_view.serving.resolve_view import update_resolve_tables
from citizen_view.warehouse import literal

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

MAX_TOUCHED_SHARE = 0.2
TOUCHED, DIGESTS_NOW, PEOPLE, PERSONS = "_view_touched", "_view_digests", "_view_people", "_view_persons"
STALE, FRESH = "_view_digests_stale", "_view_digests_fresh"  # the view's digests that differ, and the warehouse's
PERSON_COLUMNS = ("source", "family_name_std", "first_name_std", "initials", "date_of_birth")  # what people_sql reads
# The view's tables written whole by an update (each by the function a full publish writes it with).
WHOLE = (  # and `source_rank`, `field_issues`, written before the digests
    "attribute_labels",
    "source_labels",
    "review_queue",
    "source_status",
    "view_info",
    snap.LINEAGE,
)


@dataclass
class ViewReport:
    path: Path
    rows: dict[str, int]
    touched: int | None = None  # updated from the view before: the citizens rewritten (None: written whole)


def serve_view(
    con: duckdb.DuckDBPyConnection,
    sources: SourcesFile,
    folder: Path,
    *,
    run_id: str,
    incremental: bool = False,
    day: dt.date | None = None,
) -> ViewReport:
    """Publish a new served view for `day` (default `snapshot.today()`), `incremental`ly updated from the one served
    where it can be (else written whole), switch the service to it and count what it holds."""
    import duckdb

    day = day or snap.today()
    partial, final = snap.start_view(folder, run_id)
    before = snap.current_view(folder) if incremental else None
    update, changed = None, None
    if before is not None and patchable(con, before, sources):
        shutil.copyfile(before, partial)
        con.execute(f"ATTACH {literal(str(partial))} AS snap")
        try:
            update = update_view(con, sources, run_id, day=day)
            if update is not None:  # the citizens whose documents were rewritten: the documents file's changes
                changed = [r[0] for r in con.execute(f"SELECT citizen_id FROM {TOUCHED}").fetchall()]
        finally:
            con.execute("DETACH snap")
            con.execute(f"DROP TABLE IF EXISTS {TOUCHED}")
            snap.drop_temps(con)
        if update is None:  # too many citizens changed: written whole instead
            partial.unlink()
    if update is None:
        snap.write_whole(con, sources, partial, run_id, day=day)
    path = snap.finish_view(folder, partial, final, updated=before if changed is not None else None, changed=changed)
    view = duckdb.connect(str(path), read_only=True)
    try:  # counted when the view was written (`records`, `cases` and `events` are views reading every document)
        counts = view.execute("SELECT citizens, records, cases, events FROM view_info").fetchall()[0]
    finally:
        view.close()
    rows = dict(zip(("citizen", "records", "cases", "events"), counts))
    return ViewReport(path, rows, update)


def patchable(con: duckdb.DuckDBPyConnection, view: Path | None, sources: SourcesFile) -> bool:
    """Whether the view file can be updated in place of a full publish (module docstring)."""
    if view is None or not view.exists():
        return False
    con.execute(f"ATTACH {literal(str(view))} AS _view_before (READ_ONLY)")
    try:
        tables = {
            t
            for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = '_view_before'"
            ).fetchall()
        }
        columns = {
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = '_view_before' AND table_name = 'view_info'"
            ).fetchall()
        }
        if snap.DIGESTS not in tables or not {"fingerprint", "written_on"} <= columns:
            return False
        found = con.execute("SELECT fingerprint FROM _view_before.view_info").fetchall()
        return bool(found) and found[0][0] == snap.view_fingerprint(con, sources)
    finally:
        con.execute("DETACH _view_before")


def update_view(con: duckdb.DuckDBPyConnection, sources: SourcesFile, run_id: str, *, day: dt.date) -> int | None:
    """Update the view attached as `snap` (a copy of the one served) to the warehouse's state on `day` and say how many
    citizens were rewritten (listed in the temporary table TOUCHED, left for the caller); None, leaving it half-done,
    when too many changed (the caller then publishes in full)."""
    linked = f"({snap.linked_sql(con, links=False)})"  # every record, unsorted, without links: only digested
    con.execute("DROP TABLE snap.source_rank")
    con.execute("DROP TABLE snap.field_issues")
    con.execute(f"DROP TABLE IF EXISTS snap.{STAND_INS_IN_VIEW}")  # a view published before it held them
    snap._ranks_and_issues(con, sources)  # the set-aside values first: the digests read them
    con.execute(f"CREATE OR REPLACE TEMP TABLE {DIGESTS_NOW} AS {snap.record_digests_sql(linked=linked)}")
    before = f"snap.{snap.DIGESTS}"
    # A record's digest covers its key and citizen (they are columns of its `_linked` row), so the digests alone say
    # which records left, arrived or changed: integers joined, not the keys' and citizens' text (at 1M, 0.8 -> 0.3 s).
    # Two records sharing a digest would take a 64-bit collision, the risk the digests already stand on.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {STALE} AS SELECT rowid AS rid, citizen_id FROM {before} ANTI JOIN {DIGESTS_NOW} USING (d)"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {FRESH} AS SELECT * FROM {DIGESTS_NOW} ANTI JOIN {before} USING (d)")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {TOUCHED} AS SELECT DISTINCT citizen_id FROM (
            SELECT citizen_id FROM {STALE} UNION ALL SELECT citizen_id FROM {FRESH}
            UNION ALL {_cases_turned(con, sources, linked, day)}
        )
        """
    )
    touched = con.execute(f"SELECT count(*) FROM {TOUCHED}").fetchall()[0][0]
    citizens = con.execute("SELECT count(*) FROM citizen").fetchall()[0][0]
    if touched > MAX_TOUCHED_SHARE * max(citizens, 1):
        return None
    # the name + birth date of the touched citizens' records, before and after: everyone their keys find has one
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {PEOPLE} AS SELECT DISTINCT family_name_std, date_of_birth FROM (
            SELECT family_name_std, date_of_birth FROM {before} WHERE citizen_id IN (SELECT citizen_id FROM {TOUCHED})
            UNION ALL
            SELECT family_name_std, date_of_birth FROM {DIGESTS_NOW} WHERE citizen_id IN (SELECT citizen_id FROM {TOUCHED})
        ) WHERE family_name_std IS NOT NULL AND date_of_birth IS NOT NULL
        """
    )
    # the view's digests become the warehouse's: the records that left or changed go now (by row id, before anything
    # else is written to the file), those that arrived or changed come at the end (written whole, the table took 0.8 s at 1M)
    con.execute(f"DELETE FROM {before} WHERE rowid IN (SELECT rid FROM {STALE})")
    people = (
        f"date_of_birth IN (SELECT date_of_birth FROM {PEOPLE}) "
        f"OR family_name_std IN (SELECT family_name_std FROM {PEOPLE})"
    )
    # the records the rewritten rows are made of: the touched citizens', with their best links (sorted as a full
    # publish sorts them), and what `search_people` reads of everyone their name keys find
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {snap.LINKED} AS "
        + sorted_sql("records", snap.linked_sql(con, citizens=TOUCHED))
    )
    con.execute(f"DROP TABLE {snap.BEST_LINKS}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {PERSONS} AS SELECT l.citizen_id, {', '.join(f'r.{c}' for c in PERSON_COLUMNS)} "
        f"FROM citizen_source_link l JOIN source_records r USING (record_key) WHERE {people}"
    )
    # the view's counts: its own, less the touched citizens' before, plus theirs now
    old = con.execute("SELECT records, cases, events FROM snap.view_info").fetchall()[0]
    gone = con.execute(
        f"""
        SELECT coalesce(sum(json_array_length(doc, '$.records')), 0), coalesce(sum(json_array_length(doc, '$.cases')), 0),
               coalesce(sum(json_array_length(doc, '$.events')), 0)
        FROM snap.{DOCS} WHERE citizen_id IN (SELECT citizen_id FROM {TOUCHED})
        """
    ).fetchall()[0]
    # the tables written whole go first, and the file's freed blocks are reused for what is written next
    for table in WHOLE:
        con.execute(f"DROP TABLE IF EXISTS snap.{table}")
    # the golden records that differ, by a digest of each row (the touched citizens', by construction: compared, not
    # assumed; a full comparison of the rows took 6.8 s at 1M, a copy of the table 2.6 s, this about 1 s)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _view_golden AS SELECT citizen_id FROM
            (SELECT citizen_id, hash(*COLUMNS(c.*)) AS h FROM citizen c) n
            FULL JOIN (SELECT citizen_id, hash(*COLUMNS(o.*)) AS h FROM snap.citizen o) o USING (citizen_id)
        WHERE n.h IS DISTINCT FROM o.h
        """
    )
    con.execute("DELETE FROM snap.citizen WHERE citizen_id IN (SELECT citizen_id FROM _view_golden)")
    con.execute("CHECKPOINT snap")
    con.execute(
        "INSERT INTO snap.citizen SELECT * FROM citizen WHERE citizen_id IN (SELECT citizen_id FROM _view_golden) "
        "ORDER BY citizen_id"
    )
    for table, sql in (  # the rows of each touched citizen's records
        ("search_ids", snap.ids_sql),
        ("search_addresses", snap.addresses_sql),
        (snap.RECORD_CITIZENS, snap.record_citizens_sql),
    ):
        con.execute(f"DELETE FROM snap.{table} WHERE citizen_id IN (SELECT citizen_id FROM {TOUCHED})")
        con.execute(f"INSERT INTO snap.{table} {sql(snap.LINKED, citizens=TOUCHED)}")
    _name_keys(con, people)
    snap._profile_tables(con, sources, day=day)
    snap._events_and_status(con, sources)
    snap.lineage(con)
    con.execute(f"INSERT INTO {before} SELECT * FROM {FRESH}")
    now = snap.temp_counts(con)  # the touched citizens' (the temporary tables hold theirs only)
    counts = tuple(o - g + n for o, g, n in zip(old, gone, now, strict=True))
    snap._view_info(con, sources, run_id, day=day, counts=counts)
    replace_documents(
        con, "snap", TOUCHED, records=snap.LINKED, cases=snap.CASES, events=snap.EVENTS, issues="snap.field_issues"
    )
    update_resolve_tables(con, sources, "snap")
    for temp in (STALE, FRESH, DIGESTS_NOW, PEOPLE, PERSONS, "_view_golden"):  # TOUCHED: the caller's to drop
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return touched


def _cases_turned(con: duckdb.DuckDBPyConnection, sources: SourcesFile, linked: str, day: dt.date) -> str:
    """SQL for the citizens (of `linked`) whose documents the days since the view was written change: a case without a
    status is closed once its end date has passed (`snapshot._state`), so one whose end date lies between the day the
    view was written for and `day` (either way round: a clock set back) has turned. No citizen on the view's own
    day."""
    written_on = con.execute("SELECT written_on FROM snap.view_info").fetchall()[0][0]
    if written_on == day:
        return "SELECT NULL::VARCHAR AS citizen_id WHERE false"
    first, last = sorted((written_on, day))
    return (
        f"SELECT citizen_id FROM ({snap._cases_sql(sources, day=day, linked=linked)}) WHERE status IS NULL "
        f"AND end_date >= DATE '{first.isoformat()}' AND end_date < DATE '{last.isoformat()}'"
    )


def _name_keys(con: duckdb.DuckDBPyConnection, people: str) -> None:
    """The name + birth date keys of the touched citizens' records before and after, each written anew with everyone
    it finds (the records `people`, a condition, selects)."""
    keys = snap.people_keys_sql("family_name_std", "date_of_birth")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _view_keys AS SELECT DISTINCT key FROM ("
        + " UNION ALL ".join(f"SELECT {k} AS key FROM {PEOPLE}" for k in keys)
        + ")"
    )
    con.execute("DELETE FROM snap.search_people WHERE key IN (SELECT key FROM _view_keys)")
    con.execute(f"INSERT INTO snap.search_people {snap.people_sql(PERSONS, keys='_view_keys', persons=people)}")
    con.execute("DROP TABLE _view_keys")
