"""The served view's precomputed keys and per-citizen documents: a look is an index probe, and still forgives what
the search forgave and shows a role nothing of an agency it may not see."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest
from jellyfish import jaro_winkler_similarity

from citizen_view.contract import load_sources
from citizen_view.serving.access import load_access
from citizen_view.serving.documents import ViewInfo, document_of
from citizen_view.serving.id_index import IdIndex
from citizen_view.serving.profile import RECORD_FIELDS, golden_for_role, load_profile, summaries
from citizen_view.serving.search import people_keys, search_name_address, search_name_dob, search_national_id
from citizen_view.serving.snapshot import publish_view
from citizen_view.warehouse import connect
from tests.service_fixtures import ACCESS


@pytest.fixture(scope="module")
def view(linked_world, tmp_path_factory):
    """A served view of a copy of the session's linked warehouse, open read-only."""
    root = tmp_path_factory.mktemp("keys")
    warehouse = root / "cv.duckdb"
    shutil.copy(linked_world.warehouse, warehouse)
    sources = load_sources(linked_world.root / "data" / "sources.yaml")
    with connect(warehouse) as con:
        path = publish_view(con, sources, root / "serving", run_id="keys")
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def _people(view, n: int = 12) -> list[tuple[str, str, dt.date, str]]:
    """(given name, family name, birth date, citizen) of population records with all three."""
    return view.execute(
        "SELECT given_name, family_name, date_of_birth, citizen_id FROM records WHERE source = 'population' "
        "AND given_name IS NOT NULL AND family_name IS NOT NULL AND date_of_birth IS NOT NULL "
        "ORDER BY hash(citizen_id) LIMIT ?",
        [n],
    ).fetchall()


def _accented(text: str) -> str:
    return text.translate(str.maketrans("aeiouAEIOU", "áéïóüÁÉÏÓÜ"))


def test_a_name_in_other_case_accents_or_order_finds_the_citizen(view):
    everyone = sorted({s for (s,) in view.execute("SELECT DISTINCT source FROM records").fetchall()})
    for given, family, born, citizen in _people(view):
        first = given.split(" ")[0]
        for typed in (f"{first} {family}".upper(), _accented(f"{first} {family}"), f"{family.upper()}, {first}"):
            found = search_name_dob(view, typed, born.isoformat(), sources=everyone)
            assert citizen in [c.citizen_id for c in found[:3]], (typed, born)


def test_a_birth_date_one_digit_off_in_the_year_is_found_through_the_name_and_day_key(view):
    everyone = sorted({s for (s,) in view.execute("SELECT DISTINCT source FROM records").fetchall()})
    for given, family, born, citizen in _people(view, 6):
        digit = (born.year % 10 + 1) % 10
        typo = born.replace(year=born.year // 10 * 10 + digit) if not (born.month == 2 and born.day == 29) else born
        found = {
            c.citizen_id: c for c in search_name_dob(view, f"{given} {family}", typo.isoformat(), sources=everyone)
        }
        assert citizen in found, (given, family, typo)
        if typo != born:
            assert "date of birth one digit off" in found[citizen].reasons


def test_the_python_keys_are_the_keys_the_view_holds(view):
    for _given, family, born, _citizen in _people(view, 5):
        family_key = view.execute(
            "SELECT family_name_std FROM records WHERE family_name = ? AND date_of_birth = ? LIMIT 1", [family, born]
        ).fetchall()[0][0]
        for key in people_keys(family_key, born, born):
            assert view.execute("SELECT count(*) FROM search_people WHERE key = ?", [key]).fetchall()[0][0] == 1, key


def test_scores_in_memory_use_duckdbs_jaro_winkler_values(view):
    names = [
        r[0]
        for r in view.execute(
            "SELECT DISTINCT family_name_std FROM records WHERE family_name_std IS NOT NULL"
        ).fetchall()
    ]
    pairs = [(a, b) for a, b in zip(names, names[1:] + names[:1], strict=True)] + [(a, a[:-1]) for a in names]
    sql = view.execute(
        "SELECT a, b, jaro_winkler_similarity(a, b) FROM (SELECT unnest(?) AS a, unnest(?) AS b)",
        [[a for a, _ in pairs], [b for _, b in pairs]],
    ).fetchall()
    assert len(sql) == len(pairs) > 100
    assert all(jaro_winkler_similarity(a, b) == pytest.approx(s, abs=1e-12) for a, b, s in sql)


def _only_elsewhere(view, visible: list[str]) -> list[str]:
    """Citizens none of whose records come from a `visible` source."""
    return [
        r[0]
        for r in view.execute(
            "SELECT citizen_id FROM records GROUP BY citizen_id HAVING NOT bool_or(list_contains(?, source)) "
            "ORDER BY citizen_id LIMIT 20",
            [visible],
        ).fetchall()
    ]


def test_a_role_finds_and_sees_nothing_only_an_invisible_agency_holds(view):
    role = load_access(ACCESS).roles["benefits_caseworker"]
    info = ViewInfo.read(view)
    hidden = _only_elsewhere(view, role.sources)
    assert hidden, "the generated set should hold citizens known only to agencies the benefits role may not see"
    for citizen in hidden:
        assert load_profile(view, citizen, role, info) is None
        assert golden_for_role(view, [citizen], role, info) == {}
        rec = view.execute(
            "SELECT given_name, family_name, date_of_birth, postcode, house_number FROM records WHERE citizen_id = ? "
            "AND family_name IS NOT NULL LIMIT 1",
            [citizen],
        ).fetchall()
        if not rec:
            continue
        given, family, born, postcode, number = rec[0]
        if born is not None:
            found = search_name_dob(view, f"{given or ''} {family}", born.isoformat(), sources=role.sources)
            assert citizen not in [c.citizen_id for c in found]
        if postcode and number:
            found = search_name_address(
                view,
                f"{given or ''} {family}",
                postcode=postcode,
                house_number=number,
                street=None,
                country=info.country,
                sources=role.sources,
            )
            assert citizen not in [c.citizen_id for c in found]


def test_a_document_keeps_only_what_visible_sources_gave(view):
    role = load_access(ACCESS).roles["benefits_caseworker"]
    info = ViewInfo.read(view)
    several = [
        r[0]
        for r in view.execute(
            "SELECT citizen_id FROM records GROUP BY citizen_id HAVING count(DISTINCT source) >= 3 "
            "ORDER BY citizen_id LIMIT 15"
        ).fetchall()
    ]
    for citizen in several:
        doc = document_of(view, citizen, set(role.sources))
        if doc is None:
            continue
        items = [*doc.records, *doc.cases, *doc.events, *doc.issues]
        assert items and all(i["source"] in role.sources for i in items)
        values = {f: {r.get(f) for r in doc.records} for f in RECORD_FIELDS}
        profile = load_profile(view, citizen, role, info)
        for field_name, value in profile.golden.items():
            if field_name in RECORD_FIELDS:  # every golden value is one a visible record holds
                assert value in {v.isoformat() if hasattr(v, "isoformat") else v for v in values[field_name]}
        shown = summaries(view, [citizen], role, info)[citizen]
        assert set(shown.pop("sources")) <= set(role.sources)


def test_documents_written_in_batches_are_the_documents_written_at_once(view, monkeypatch):
    from citizen_view.serving import documents

    path = view.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS v (READ_ONLY)")
        con.execute("CREATE SCHEMA m")
        con.execute("CREATE VIEW m.citizen AS SELECT * FROM v.citizen")
        monkeypatch.setattr(documents, "BATCH_CITIZENS", 37)
        for kind in ("records", "cases", "events"):  # read back from the view's documents, stored in their order
            con.execute(f"CREATE TEMP TABLE t_{kind} AS {documents.sorted_sql(kind, f'SELECT * FROM v.{kind}')}")
        documents.publish_documents(
            con, "m", records="t_records", cases="t_cases", events="t_events", issues="v.field_issues"
        )
        batched = dict(con.execute("SELECT citizen_id, doc FROM m.citizen_docs").fetchall())
        at_once = dict(con.execute("SELECT citizen_id, doc FROM v.citizen_docs").fetchall())
    finally:
        con.close()
    assert len(at_once) > 37 and batched == at_once


def _nulls_last(value):
    return (value is None, value or "")


def test_a_documents_lists_are_in_the_order_the_profile_shows_them(view):
    import json

    docs = [json.loads(d) for (d,) in view.execute("SELECT doc FROM citizen_docs").fetchall()]
    assert sum(len(d["records"]) > 1 for d in docs) > 100 and sum(len(d["cases"]) > 1 for d in docs) > 10
    assert sum(len(d["events"]) > 1 for d in docs) > 10
    for doc in docs:
        records, cases, events = doc["records"], doc["cases"], doc["events"]
        assert records == sorted(records, key=lambda r: (r["source"], r["source_record_id"]))
        by_reference = sorted(cases, key=lambda c: (_nulls_last(c["case_reference"]), c["source"]))
        newest_first = sorted(by_reference, key=lambda c: c["start_date"] or "", reverse=True)  # stable; nulls last
        assert [(c["start_date"], c["case_reference"], c["source"]) for c in cases] == [
            (c["start_date"], c["case_reference"], c["source"]) for c in newest_first
        ]
        assert [(e["date"], e["source"], e["source_record_id"]) for e in events] == sorted(
            (e["date"], e["source"], e["source_record_id"]) for e in events
        )


def test_the_view_holds_the_records_once_and_finds_each_by_its_key(view):
    from citizen_view.serving.documents import record_known, records_by_key

    tables = {r[0] for r in view.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    views = {r[0] for r in view.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert {"records", "cases", "events"} <= views and not {"records", "cases", "events"} & tables
    counted = view.execute("SELECT records, cases, events FROM view_info").fetchall()[0]
    assert counted == tuple(
        view.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("records", "cases", "events")
    )
    assert (
        view.execute(  # one row per record, with the citizen whose document holds it
            "SELECT count(*) FROM record_citizens k FULL JOIN records r "
            "ON k.record_key = r.source || ':' || r.source_record_id AND k.citizen_id = r.citizen_id AND k.source = r.source "
            "WHERE k.record_key IS NULL OR r.source IS NULL"
        ).fetchall()[0][0]
        == 0
    )
    rows = view.execute(
        "SELECT source || ':' || source_record_id, citizen_id, full_name, date_of_birth, postcode FROM records "
        "ORDER BY hash(source_record_id) LIMIT 25"
    ).fetchall()
    found = records_by_key(view, [r[0] for r in rows] + ["nosuch:1", "population"])
    assert set(found) == {r[0] for r in rows}
    for key, citizen, name, born, postcode in rows:
        got = found[key]
        assert (got["citizen_id"], got.get("full_name"), got.get("date_of_birth"), got.get("postcode")) == (
            citizen,
            name,
            born,
            postcode,
        )
    assert record_known(view, rows[0][0]) and not record_known(view, "nosuch:1")


def test_the_views_records_are_the_warehouses_linked_records_column_for_column(view, linked_world, tmp_path):
    """Read back from the documents, every linked record of the warehouse, every column the documents hold, with
    its citizen and nothing else (a column a document dropped would come back NULL here)."""
    from citizen_view.serving.documents import DOC_RECORD_COLUMNS

    warehouse = tmp_path / "cv.duckdb"
    shutil.copy(linked_world.warehouse, warehouse)
    path = view.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    columns = ", ".join(f'"{c}"' for c in (*DOC_RECORD_COLUMNS, "attributes") if c != "links")
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS v (READ_ONLY)")
        con.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY)")
        served = f"SELECT citizen_id, {columns} FROM v.records"
        linked = (
            f"SELECT l.citizen_id, {', '.join(f'r.{c}' for c in columns.split(', '))} "
            "FROM w.citizen_source_link l JOIN w.source_records r USING (record_key)"
        )
        n = con.execute(f"SELECT count(*) FROM ({linked})").fetchall()[0][0]
        filled = con.execute(f"SELECT count(*) FROM ({linked}) WHERE given_name IS NOT NULL").fetchall()[0][0]
        assert n > 100 and filled > n / 2
        assert con.execute("SELECT count(*) FROM v.records").fetchall()[0][0] == n
        differ = con.execute(f"({served} EXCEPT ALL {linked}) UNION ALL ({linked} EXCEPT ALL {served})").fetchall()
    finally:
        con.close()
    assert differ == []


def test_the_ids_in_memory_find_what_the_views_index_finds(view):
    """Every ID of the view, and IDs no one has, give the rows a probe of `search_ids` gives, in its order; a search
    with them answers as one without them, for each role."""
    index = IdIndex.read(view)
    ids = [r[0] for r in view.execute("SELECT DISTINCT national_id FROM search_ids ORDER BY 1").fetchall()]
    assert len(ids) > 100 and index.nbytes > 0
    probe = "SELECT citizen_id, source FROM search_ids WHERE national_id = ?"
    several = 0
    for national_id in ids:
        rows = view.execute(probe, [national_id]).fetchall()
        assert index.rows(national_id) == rows, national_id
        several += len(rows) > 1
    assert several, "some ID should have several rows (its citizen's records in several agencies)"
    for missing in (ids[0] + "1", ids[0][:-1], "0000", "Z" * 20):
        assert index.rows(missing) == view.execute(probe, [missing]).fetchall() == []
    for not_held in ("0", "0" * 21, "é" + ids[0], ids[0] + " "):  # a search refuses these; a probe would answer
        assert index.rows(not_held) is None
    country = ViewInfo.read(view).country
    for role in load_access(ACCESS).roles.values():
        for national_id in ids[::7] + [ids[0][:-1] + ("1" if ids[0][-1] != "1" else "2")]:
            with_index = search_national_id(view, national_id, country=country, sources=role.sources, ids=index)
            assert with_index == search_national_id(view, national_id, country=country, sources=role.sources)


def test_one_long_junk_id_leaves_the_ids_in_memory_small_and_the_answers_alike():
    """`search_ids` holds agencies' raw ID text too: a value no search accepts is left to the view's probe, so it
    neither widens the arrays nor changes an answer."""
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE search_ids (national_id VARCHAR, citizen_id VARCHAR, source VARCHAR)")
        rows = [(f"{n:09d}", f"CV-{n}", "population") for n in range(1000)] + [("9" * 500, "CV-junk", "tax")]
        con.executemany("INSERT INTO search_ids VALUES (?, ?, ?)", rows)
        index = IdIndex.read(con)
        assert index.keys.dtype.itemsize == 9 and index.nbytes < 1000 * 40
        assert index.rows("000000042") == [("CV-42", "population")]
        assert index.rows("9" * 500) is None  # not held: the caller probes the view, which finds it
    finally:
        con.close()


def test_two_publishes_of_the_same_warehouse_hold_the_same_people_under_each_key(linked_world, tmp_path):
    """Each key's people are listed in one order (a search's reasons for a citizen found twice under a key follow it)."""
    warehouse = tmp_path / "cv.duckdb"
    shutil.copy(linked_world.warehouse, warehouse)
    sources = load_sources(linked_world.root / "data" / "sources.yaml")
    held = []
    for run in ("first", "second"):
        with connect(warehouse) as con:
            con.execute("SET threads = 4")  # a parallel aggregate: rows reach each key's list in varying order
            path = publish_view(con, sources, tmp_path / "serving", run_id=run)
        view = duckdb.connect(str(path), read_only=True)
        held.append(view.execute("SELECT key, people FROM search_people ORDER BY key").fetchall())
        view.close()
    assert len(held[0]) > 100 and held[0] == held[1]
