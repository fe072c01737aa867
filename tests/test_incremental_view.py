"""An incremental run updates the served view in place of writing it whole: only the citizens whose records changed
are rewritten, and the view holds what a full publish of the same warehouse holds, table by table."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil

import duckdb

from citizen_view.contract import load_sources
from citizen_view.layout import WarehouseLayout
from citizen_view.serving.resolve_view import update_resolve_tables
from citizen_view.serving.snapshot import current_view, publish_view, view_fingerprint
from citizen_view.serving.view_update import serve_view
from citizen_view.warehouse import connect
from citizen_view_app.runner import run_pipeline
from pipelines.definitions import INCREMENTAL_JOB
from tests.conftest import copy_world

# The online-resolution tables number their records internally (`rid`): an update keeps the numbers of the records it
# leaves and numbers the rest after them, so a record is compared by its key, not its number.
_BY_KEY = {
    "resolve_records": "SELECT * EXCLUDE (rid) FROM resolve_records",
    "resolve_keys": "SELECT k.key_hash, r.record_key FROM resolve_keys k JOIN resolve_records r USING (rid)",
    "resolve_digests": "SELECT * EXCLUDE (rid) FROM resolve_digests",
}


def _tables(path) -> dict[str, list[tuple]]:
    """Every table of a view file, its rows sorted (view_info without when and by which run it was written; the
    resolve tables by record key, not number)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        out = {}
        for name in names:
            columns = "* EXCLUDE (run_id, published_at)" if name == "view_info" else "*"
            query = _BY_KEY.get(name, f"SELECT {columns} FROM {name}")
            out[name] = con.execute(f"{query} ORDER BY ALL").fetchall()
        for view in ("records", "cases", "events"):  # read through the documents
            out[f"view {view}"] = con.execute(f"SELECT * FROM {view} ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


def test_an_incremental_run_rewrites_only_the_citizens_that_changed_and_serves_what_a_full_publish_would(
    linked_world, tmp_path
):
    root, wh = copy_world(linked_world, tmp_path / "world")  # linked and served today, its files' times kept
    data = root / "data"
    serving = WarehouseLayout.of(wh).serving_dir
    first = current_view(serving)
    tax = data / "tax" / "tax_extract.csv"  # late tax records land as a file of their own: the same people again
    head, *lines = tax.read_bytes().splitlines(keepends=True)
    late = [b"L" + line for line in lines[::20]]  # under references of their own
    (data / "tax" / "tax_late.csv").write_bytes(head + b"".join(late))

    licences = data / "licences" / "licences.csv"  # and one licence is corrected in a column linkage does not read
    rows = list(csv.reader(licences.read_text(encoding="utf-8").splitlines()))
    licence_id = rows[1][0]
    rows[1][rows[0].index("categories")] = "BE"
    # and another is given the birth date of someone of another family: the key of that date finds both now
    born, surname = rows[0].index("birth_date"), rows[0].index("surname")
    other = next(r for r in rows[3:] if r[surname] != rows[2][surname] and r[born] != rows[2][born])
    rows[2][born] = other[born]
    stat = licences.stat()
    with licences.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    # its time put back: each licence's `extracted_at` is the file's time, and a new one would change every licence
    os.utime(licences, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    outcome = run_pipeline(sources_path=data / "sources.yaml", warehouse_path=wh, job_name=INCREMENTAL_JOB)
    assert outcome.success, outcome.failed
    assert outcome.materialized["citizen_source_link"]["new_records"] == len(late)
    meta = outcome.materialized["serving/view"]
    assert meta["written"].startswith("updated: "), meta
    touched = int(meta["written"].split(": ")[1].split(" ")[0].replace(",", ""))
    assert 0 < touched < 0.2 * meta["citizen_rows"]
    updated = current_view(serving)
    assert updated != first and first.exists()  # the view served before is left as it was
    # the run says where the view's documents file is and how large
    assert str(meta["documents_file"]).endswith(updated.name + ".docs") and meta["documents_file_mb"] > 0, meta

    sources = load_sources(data / "sources.yaml")
    with connect(wh) as con:
        full = publish_view(con, sources, tmp_path / "full", run_id="full")
        citizen = con.execute(
            "SELECT citizen_id FROM citizen_source_link WHERE source = 'licences' AND source_record_id = ?",
            [licence_id],
        ).fetchall()[0][0]
    got, want = _tables(updated), _tables(full)
    assert got.keys() == want.keys()
    for table in want:
        assert got[table] == want[table], table
    _resolve_numbers_kept(first, updated, full)
    _documents_file_updated(first, updated)
    # a view without the records' digests (written before them) has its resolve tables written whole
    older = tmp_path / "older.duckdb"
    shutil.copy(updated, older)
    with duckdb.connect(str(older)) as view:
        view.execute("DROP TABLE resolve_digests")
        view.execute("DELETE FROM resolve_keys WHERE rid % 2 = 0")  # and what it holds is not kept
    _resolve_tables_written_whole(wh, older, sources, want)
    # a warehouse whose key hashes another DuckDB computed (every one differs) has them written whole too: looked up
    # by those hashes, the rewritten records would not be found
    rehashed, other = tmp_path / "rehashed.duckdb", tmp_path / "other.duckdb"
    shutil.copy(wh, rehashed)
    shutil.copy(updated, other)
    with duckdb.connect(str(other)) as view:
        view.execute("DELETE FROM resolve_digests WHERE rid % 2 = 0")  # half of them seen as new
    with connect(rehashed) as con:
        con.execute("UPDATE source_records SET key_hash = key_hash + 1")
        con.execute("UPDATE citizen_source_link SET key_hash = key_hash + 1")
    _resolve_tables_written_whole(rehashed, other, sources, want)
    view = duckdb.connect(str(updated), read_only=True)
    try:  # the corrected licence is served, found through the index
        (doc,) = view.execute("SELECT doc FROM citizen_docs WHERE citizen_id = ?", [citizen]).fetchall()[0]
    finally:
        view.close()
    licence = next(r for r in json.loads(doc)["records"] if r["source_record_id"] == licence_id)
    assert json.loads(licence["attributes"])["categories"] == "BE"
    assert "BE" in [c["case_type"] for c in json.loads(doc)["cases"] if c["source"] == "licences"]

    # a view written under another contract or by other code (another fingerprint) is written whole
    view = duckdb.connect(str(updated))
    try:
        view.execute("UPDATE view_info SET fingerprint = ?", [view_fingerprint(view, sources) + "-other"])
    finally:
        view.close()
    outcome = run_pipeline(sources_path=data / "sources.yaml", warehouse_path=wh, job_name=INCREMENTAL_JOB)
    assert outcome.success and outcome.materialized["serving/view"]["written"] == "whole"


def _documents_file_updated(first, updated) -> None:
    """The updated view's documents file was written from the first view's (its data kept, the touched citizens'
    documents appended) and holds exactly the updated view's documents."""
    from citizen_view.serving.document_file import DocumentFile, path_for

    with duckdb.connect(str(updated), read_only=True) as con:
        docs = dict(con.execute("SELECT citizen_id, doc FROM citizen_docs").fetchall())
    before = DocumentFile(path_for(first), view=first.name, documents=None)
    after = DocumentFile(path_for(updated), view=updated.name, documents=len(docs))
    assert after.stored > len(after.ids) and after.stored > before.stored  # superseded documents stay in the data
    assert {c.decode(): after.get(c.decode()) for c in after.ids} == docs


def _resolve_tables_written_whole(warehouse, view, sources, want: dict[str, list[tuple]]) -> None:
    """update_resolve_tables on `view` writes its resolve tables whole (returns None), as `want` (a full publish's
    tables) holds them."""
    with connect(warehouse) as con:
        con.execute(f"ATTACH '{view}' AS snap")
        try:
            assert update_resolve_tables(con, sources, "snap") is None
        finally:
            con.execute("DETACH snap")
    got = _tables(view)
    resolve = [t for t in want if t.startswith("resolve_")]
    assert {t: got[t] for t in resolve} == {t: want[t] for t in resolve}


def _resolve_numbers_kept(first, updated, full) -> None:
    """The online-resolution tables were updated, not written whole: a record whose digest is unchanged keeps its
    number, the others are numbered after every number the view held; and a service reads the updated view's keys
    (an appended tail) as it reads the full publish's (sorted)."""
    from citizen_view.serving.resolve_index import ResolveIndex

    def digests(path):
        with duckdb.connect(str(path), read_only=True) as con:
            return {
                k: (rid, d)
                for rid, k, d in con.execute("SELECT rid, record_key, digest FROM resolve_digests").fetchall()
            }

    before, after = digests(first), digests(updated)
    kept = [k for k in after if k in before and before[k][1] == after[k][1]]
    rewritten = [k for k in after if k not in kept]
    assert kept and rewritten and all(after[k][0] == before[k][0] for k in kept)
    highest = max(rid for rid, _ in before.values())
    assert all(after[k][0] > highest for k in rewritten)

    def keys(path):
        with duckdb.connect(str(path), read_only=True) as con:
            stored = con.execute("SELECT key_hash FROM resolve_keys").fetchnumpy()["key_hash"]
            index = ResolveIndex.read(con)
        keys_of = dict(zip(index.numbers.tolist(), index.records.column("record_key").to_pylist(), strict=True))
        return (
            stored,
            index.key_hashes,
            [(h, keys_of[r]) for h, r in zip(index.key_hashes.tolist(), index.key_records.tolist())],
        )

    stored, hashes, read = keys(updated)
    assert (stored[:-1] > stored[1:]).any()  # as stored, a tail follows the sorted keys
    _, full_hashes, full_read = keys(full)
    assert hashes.tolist() == full_hashes.tolist()  # read sorted, as the full publish's
    assert sorted(read) == sorted(full_read)


def _licence_case(view_file, licence_id: str) -> dict:
    view = duckdb.connect(str(view_file), read_only=True)
    try:
        query = "SELECT * FROM cases WHERE source = 'licences' AND source_record_id = ?"
        return view.sql(query, params=[licence_id]).pl().to_dicts()[0]
    finally:
        view.close()


def test_a_view_of_an_earlier_day_is_updated_for_the_cases_the_days_between_closed(linked_world, tmp_path):
    """A licence (no status) is open until its end date passes: a view written the day it expires and updated the next
    day rewrites that citizen, though none of its records changed, and holds what a full publish that day holds."""
    _, wh = copy_world(linked_world, tmp_path / "world")
    sources = load_sources(linked_world.root / "data" / "sources.yaml")
    serving = WarehouseLayout.of(wh).serving_dir
    expires, next_day = dt.date(2031, 5, 6), dt.date(2031, 5, 7)
    with connect(wh) as con:
        licence_id = con.execute(
            "SELECT source_record_id FROM source_records WHERE source = 'licences' ORDER BY 1 LIMIT 1"
        ).fetchall()[0][0]
        con.execute(  # it expires on `expires` (in the licences' date format): open that day, closed the next
            "UPDATE source_records SET attributes = json_merge_patch(attributes, json_object('expires_on', ?)) "
            "WHERE source = 'licences' AND source_record_id = ?",
            [expires.strftime("%Y/%m/%d"), licence_id],
        )
        before = publish_view(con, sources, serving, run_id="day-1", day=expires)
        report = serve_view(con, sources, serving, run_id="day-2", incremental=True, day=next_day)
        full = publish_view(con, sources, tmp_path / "full", run_id="full", day=next_day)
    assert _licence_case(before, licence_id)["state"] == "open"
    assert _licence_case(report.path, licence_id)["state"] == "closed"
    assert report.touched is not None and 1 <= report.touched < 0.2 * report.rows["citizen"]  # updated, not whole
    got, want = _tables(report.path), _tables(full)
    assert got.keys() == want.keys()
    for table in want:
        assert got[table] == want[table], table


def test_a_view_written_in_another_time_zone_or_under_another_model_is_written_whole(linked_world, tmp_path):
    """Documents render their records' `extracted_at` in the connection's time zone: a view written in one zone and
    updated in another would mix the two (a red-team pass reproduced it), so it is written whole and matches a full
    publish in the new zone. Records' links come from the model's scored pairs, which the digests leave out: a view
    of another model (a full run retrains) is written whole too."""
    _, wh = copy_world(linked_world, tmp_path / "world")
    sources = load_sources(linked_world.root / "data" / "sources.yaml")
    serving = WarehouseLayout.of(wh).serving_dir
    day = dt.date(2031, 5, 6)
    with connect(wh) as con:
        con.execute("SET TimeZone = 'UTC'")
        publish_view(con, sources, serving, run_id="in-utc", day=day)
        con.execute("SET TimeZone = 'Europe/Amsterdam'")
        report = serve_view(con, sources, serving, run_id="in-amsterdam", incremental=True, day=day)
        full = publish_view(con, sources, tmp_path / "full", run_id="full", day=day)
    assert report.touched is None  # written whole
    got, want = _tables(report.path), _tables(full)
    assert got.keys() == want.keys()
    for table in want:
        assert got[table] == want[table], table
    with connect(wh) as con:
        con.execute("SET TimeZone = 'Europe/Amsterdam'")
        assert serve_view(con, sources, serving, run_id="same", incremental=True, day=day).touched == 0
        con.execute("UPDATE linkage_model SET trained_at = trained_at + INTERVAL 1 SECOND")
        assert serve_view(con, sources, serving, run_id="retrained", incremental=True, day=day).touched is None
