"""A citizen's access log follows its ID's lineage: looks at an ID that held some of its records (it split off from
that ID, or that ID merged into it) before the records passed on were looks at its data, and are listed."""

from __future__ import annotations

import datetime as dt
import time

import duckdb

from citizen_view.audit import AuditLog, citizen_access_report, entries_for_citizen
from citizen_view.linkage.citizen_ids import LINEAGE_SQL
from tests.test_audit import event

UTC = dt.timezone.utc


def _history(rows: list[tuple[str, str, str | None, dt.datetime]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE citizen_id_history (citizen_id VARCHAR, event VARCHAR, related_citizen_id VARCHAR, "
        "records BIGINT, run_id VARCHAR, recorded_at TIMESTAMPTZ)"
    )
    con.executemany("INSERT INTO citizen_id_history VALUES (?, ?, ?, 1, 'r', ?)", rows)
    return con


def test_the_lineage_goes_back_through_splits_and_merges_each_until_the_records_passed_on():
    t1, t2, t3 = (dt.datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3))
    con = _history(
        [
            ("CV-P", "created", None, t1),
            ("CV-A", "created", None, t1),
            ("CV-P", "merged", "CV-A", t2),  # P's records went to A on day 2
            ("CV-S", "split", "CV-A", t3),  # S split off A on day 3: it held A's records, and P's before day 2
            ("CV-Q", "created", None, t3),
        ]
    )
    got = sorted(con.execute(LINEAGE_SQL).fetchall())
    assert got == [("CV-A", "CV-P", t2), ("CV-S", "CV-A", t3), ("CV-S", "CV-P", t2)]


def test_a_citizen_split_off_another_sees_the_looks_at_it_before_the_split_only(tmp_path):
    """Red-team pass on IDs: a wrongly merged father and son split; the son got a new ID, and the looks at the
    merged citizen, which showed his records too, were in nobody's log but the father's."""
    path = tmp_path / "access.jsonl"
    with AuditLog(path) as log:
        log.append(event(1, citizen="CV-FATHER"))  # before the split: the son's records were shown too
        time.sleep(0.01)
        split_at = dt.datetime.now(UTC)
        time.sleep(0.01)
        log.append(event(2, citizen="CV-FATHER"))  # after: the father alone
        log.append(event(3, citizen="CV-SON"))
    earlier = [("CV-FATHER", split_at)]
    assert [e["case_reference"] for e in entries_for_citizen(path, "CV-SON")] == ["CASE-3"]
    found = entries_for_citizen(path, "CV-SON", earlier)
    assert [(e["case_reference"], e.get("as_citizen_id")) for e in found] == [("CASE-1", "CV-FATHER"), ("CASE-3", None)]
    report = citizen_access_report(path, "CV-SON", earlier)
    assert [e["time"] for e in report] == [found[1]["time"], found[0]["time"]]  # newest first
    assert "as_citizen_id" not in report[0] and "user" not in report[0]
    # the look at the merged ID keeps when, who and what, but not its purpose or case: those were the father's business
    assert report[1]["earlier_id"] is True and report[1]["organisation"] == found[0]["organisation"]
    assert report[1]["purpose"] is None and report[1]["case_reference"] is None
    assert report[0]["purpose"] == found[1]["purpose"] and "earlier_id" not in report[0]
    # the father's own log is as before
    assert [e["case_reference"] for e in entries_for_citizen(path, "CV-FATHER")] == ["CASE-1", "CASE-2"]


def test_the_served_view_holds_each_ids_lineage_for_the_portals_access_log(generated, tmp_path):
    """End to end on the generated set: a 1+1 split in a full run (the ID stays with the golden record's source), a
    view published, and the lineage the access log reads from it."""
    from citizen_view.serving.lookups import predecessors
    from citizen_view.serving.snapshot import publish_view
    from tests.conftest import collected_chain, empty_record

    with collected_chain(generated, tmp_path) as (con, linkage):
        linkage.run(run_id="full")
        # a citizen of two records, the one its golden name did not come from sorting first (the old tie rule gave
        # that one the ID)
        citizen, source, record_id = con.execute(
            "SELECT c.citizen_id, l.source, l.source_record_id FROM citizen c JOIN citizen_source_link l "
            "USING (citizen_id) WHERE c.record_count = 2 AND l.record_key < c.name_from ORDER BY l.record_key LIMIT 1"
        ).fetchall()[0]
        empty_record(con, source, record_id)
        linkage.collect()
        linkage.run(run_id="split")
        split_off, split_at = con.execute(
            "SELECT citizen_id, recorded_at FROM citizen_id_history WHERE event = 'split' AND related_citizen_id = ?",
            [citizen],
        ).fetchall()[0]
        moved = con.execute(
            "SELECT citizen_id FROM citizen_source_link WHERE record_key = ?", [f"{source}:{record_id}"]
        ).fetchall()
        assert moved == [(split_off,)]  # the emptied record left; the ID stayed with the golden record's source
        view = publish_view(con, linkage.sources, tmp_path / "serving", run_id="split")
    served = duckdb.connect(str(view), read_only=True)
    try:
        assert predecessors(served, split_off) == [(citizen, split_at)]
        assert predecessors(served, citizen) == []  # it kept its ID: its own looks are its log
    finally:
        served.close()


def test_the_citizens_page_says_why_a_look_at_an_earlier_id_has_no_purpose(tmp_path):
    """The portal page renders a look at an earlier ID with the sentence that says why its purpose is blank, in the
    deployment's language, and never the purpose itself."""
    from citizen_view.serving import vocabulary as words
    from citizen_view.serving.templating import TEMPLATES

    path = tmp_path / "access.jsonl"
    with AuditLog(path) as log:
        log.append(event(1, citizen="CV-FATHER", purpose="the father's debt collection"))
        time.sleep(0.01)
        split_at = dt.datetime.now(UTC)
    entries = citizen_access_report(path, "CV-SON", [("CV-FATHER", split_at)])
    for lang in ("en", "nl", "no"):
        page = TEMPLATES.env.get_template("access_log.html").render(
            who=None,
            here="/citizens/CV-SON/access-log",
            say=lambda key, lang=lang, **v: words.phrase(key, lang, **v),
            said=lambda key, lang=lang, **v: words.said(key, lang, **v),
            did=lambda action, lang=lang: words.action_words(action, lang),
            shown_date=lambda v, typed=None, lang=lang: words.shown_date(v, typed, lang),
            source_labels=", ".join,
            disclosed=lambda f, lang=lang: words.disclosed(f, {}, lang),
            citizen_id="CV-SON",
            entries=entries,
            own=[],
            purpose="my own access log",
        )
        assert words.phrase("earlier_id", lang) in page and "debt collection" not in page
        assert "Benefits Agency" in page  # who looked stays
