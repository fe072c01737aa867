"""Write-audit-publish at ingest: a bad extract holds back itself, not the product.

One multi-source run where the tax office's extract fails its audit: tax is held back (its last accepted
extract stays), the other sources are linked, served and published, the caseworker profile names tax as
stale, `citizen-view run` exits 3 saying what and why, and `citizen-view release tax` links the held extract.
Then the gates that judge against the last *accepted* load (header-only files) on real warehouse files.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import duckdb
import httpx
import pytest

from citizen_view.contract import load_sources
from citizen_view.ingest import (
    INGEST_RULES,
    LoadStatus,
    NothingHeld,
    ingest_or_hold,
    ingest_source,
    release_held,
    source_status,
)
from citizen_view.warehouse import connect
from citizen_view_app.cli import EXIT_HELD_BACK, main
from tests.conftest import copy_world, write
from tests.service_fixtures import TOKENS, running_service


def _args(root: Path) -> list[str]:
    return ["--sources", str(root / "data/sources.yaml"), "--warehouse", str(root / "wh/cv.duckdb")]


def _corrupt_birth_dates(tax: Path) -> int:
    lines = tax.read_text(encoding="latin-1").splitlines()
    changed = 0
    for i in range(1, len(lines), 4):  # a quarter of the rows get an impossible birth date
        fields = lines[i].split(";")
        if len(fields) > 3:
            fields[3] = "18-86-1856"
            lines[i] = ";".join(fields)
            changed += 1
    tax.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return changed


def _tax_dates(wh: Path) -> int:
    """Linked tax records without a birth date (the corrupted ones once linked)."""
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(
            "SELECT count(*) FROM citizen_source_link l JOIN source_records r USING (record_key) "
            "WHERE l.source = 'tax' AND r.date_of_birth IS NULL"
        ).fetchall()[0][0]


def test_a_held_extract_holds_back_itself_and_a_release_links_it(linked_world, tmp_path, capsys):
    root, wh = copy_world(linked_world, tmp_path / "world")  # a good first load, linked
    missing_before = _tax_dates(wh)
    corrupted = _corrupt_birth_dates(next((root / "data/tax").glob("*.csv")))
    for sheet in (root / "data/permits").glob("*.xlsx"):  # and one extract that cannot be read at all
        sheet.write_bytes(sheet.read_bytes()[:100])

    assert main(["run", *_args(root)]) == EXIT_HELD_BACK
    out, err = capsys.readouterr()
    assert "HELD BACK source/tax" in err and "date_of_birth_typos" in err, err  # a quarter: beyond keying typos
    assert "HELD BACK source/permits" in err and "extract_readable: the extract cannot be read" in err
    assert "cannot be read as xlsx" in err and "nothing to release: fix or replace the extract" in err
    assert "not judged: their extract could not be read" in out
    # an example of the reason, from the staged field issues, by its shape only: the run's output and Dagster's run
    # storage outlive the staged rows (a rejected extract's values stay nowhere but there)
    assert "99-99-9999" in err and "18-86-1856" not in err
    assert f"citizen-view release tax --sources {root / 'data/sources.yaml'}" in err
    assert "failed on held-back extracts" in out and "GATE FAILED" not in err
    gates = next(line for line in out.splitlines() if "quality gates:" in line)
    passed, total = (int(n) for n in gates.split("quality gates: ")[1].split(" passed")[0].split(" of "))
    assert passed < total
    assert "export bundle:" in out  # the others were linked and published
    assert main(["publish", *_args(root)]) == 0
    # the held extract never reached linkage: the tax records linked are the last accepted ones
    assert _tax_dates(wh) == missing_before
    with duckdb.connect(str(wh), read_only=True) as con:
        assert {s for (s,) in con.execute("SELECT DISTINCT source FROM citizen_source_link").fetchall()} == {
            "population",
            "tax",
            "benefits",
            "permits",
            "licences",
        }
        for source in ("tax", "permits"):
            status = con.execute(
                "SELECT status FROM ingest_log WHERE source = ? ORDER BY loaded_at DESC LIMIT 1", [source]
            ).fetchall()
            assert status == [("held",)]
        citizen = con.execute(  # a citizen with tax records and none of permits (also held back, unreadable)
            "SELECT citizen_id FROM citizen_source_link GROUP BY 1 "
            "HAVING bool_or(source = 'tax') AND NOT bool_or(source = 'permits') ORDER BY 1 LIMIT 1"
        ).fetchall()[0][0]

    with running_service(wh, root / "audit/access.jsonl") as service:
        r = httpx.get(
            f"{service.url}/api/citizens/{citizen}",
            params={"purpose": "test"},
            headers={"Authorization": f"Bearer {TOKENS['data_steward']}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        stale = r.json()["stale_sources"]
        assert [s["source"] for s in stale] == ["tax"] and stale[0]["newer_extract_held_since"]
        # (permits holds no record of this citizen: the profile names only the sources it shows)
        page = httpx.get(
            f"{service.url}/citizens/{citizen}",
            params={"purpose": "test"},
            headers={"Authorization": f"Bearer {TOKENS['data_steward']}"},
            timeout=30,
        )
        assert "Not up to date" in page.text and "Tax data as of" in page.text  # the source as pages name it

    assert main(["release", "permits", *_args(root)]) == 2  # an unreadable extract: nothing to release
    assert "could not be read" in capsys.readouterr().err
    shutil.copytree(linked_world.root / "data/permits", root / "data/permits", dirs_exist_ok=True)  # sent again
    released = main(["release", "tax", *_args(root), "--reason", "dates checked with the tax office", "--by", "test"])
    out, err = capsys.readouterr()
    assert released == 0, err
    assert "released the extract of tax" in out and "HELD BACK" not in err
    assert _tax_dates(wh) >= missing_before + corrupted * 0.9  # the released extract is what is linked now
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute(
            "SELECT status, decided_by, decision_reason FROM ingest_log WHERE source = 'tax' AND status = 'released'"
        ).fetchall() == [("released", "test", "dates checked with the tax office")]
    assert main(["release", "tax", *_args(root)]) == 2  # nothing held any more
    assert main(["reject", "tax", *_args(root)]) == 2


SOURCES = """
sources:
  - name: lic
    path: lic.csv
    format: csv
    record_id: id
    fields: {full_name: name, date_of_birth: dob}
"""
HEADER = "id,name,dob\n"
GOOD = HEADER + "".join(f"L{i},Person {i},19{50 + i % 40}-0{1 + i % 9}-1{i % 9}\n" for i in range(961))


def _ingest(folder: Path, body: str, *, warehouse: str = "w.duckdb"):
    (folder / "lic.csv").write_text(body, encoding="utf-8")
    with connect(folder / warehouse) as con:
        report = ingest_source(con, load_sources(folder / "sources.yaml"), "lic")
        current = con.execute('SELECT count(*) FROM canonical."lic"').fetchall()[0][0]
    return report, current


def test_a_header_only_extract_is_held_back_after_a_good_load_and_on_a_fresh_warehouse(tmp_path):
    write(tmp_path / "sources.yaml", SOURCES)
    report, current = _ingest(tmp_path, GOOD)
    assert (report.status, current) == (LoadStatus.ACCEPTED, 961)
    for _ in range(2):  # the same header-only file again: still judged against the last accepted load
        report, current = _ingest(tmp_path, HEADER)
        assert report.status == LoadStatus.HELD and current == 961
        assert [r.rule for r in report.failed_rules] == ["row_count_drift"]
        assert "the last accepted load had 961" in report.failed_rules[0].summary
    report, current = _ingest(tmp_path, GOOD)  # the good file back: accepted (961 against 961)
    assert (report.status, current) == (LoadStatus.ACCEPTED, 961)
    report, current = _ingest(tmp_path, HEADER, warehouse="fresh.duckdb")
    assert report.status == LoadStatus.HELD and current == 0
    assert "first load" in report.failed_rules[0].summary


def test_allow_empty_accepts_an_empty_extract(tmp_path):
    write(tmp_path / "sources.yaml", SOURCES.replace("format: csv", "format: csv\n    allow_empty: true"))
    assert _ingest(tmp_path, HEADER)[0].status == LoadStatus.ACCEPTED


def test_an_unreadable_extract_is_held_back_and_a_fresh_source_is_linked_as_empty(tmp_path):
    """A source-level fault (an empty file, a corrupt one, a missing column) holds back that source alone."""
    write(tmp_path / "sources.yaml", SOURCES)
    sources = load_sources(tmp_path / "sources.yaml")
    for body, why in (("", "is empty"), ("id,name\nL1,Ann\n", "has no column 'dob'")):
        (tmp_path / "lic.csv").write_text(body, encoding="utf-8")
        with connect(tmp_path / "fresh.duckdb") as con:
            report = ingest_or_hold(con, sources, "lic")
            assert report.held and [r.rule for r in report.failed_rules] == ["extract_readable"]
            assert why in report.failed_rules[0].summary and why in report.evidence[0]["examples"][0]
            columns = {c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE canonical.lic)").fetchall()}
            assert {"source_record_id", "date_of_birth", "given_name"} <= columns
            assert con.execute("SELECT count(*) FROM canonical.lic").fetchall() == [(0,)]
            log = con.execute("SELECT status, reason FROM ingest_log ORDER BY loaded_at DESC LIMIT 1").fetchall()
            assert log[0][0] == "held" and why in log[0][1]
            with pytest.raises(NothingHeld, match="could not be read"):
                release_held(con, "lic", by="test")
    report, current = _ingest(tmp_path, GOOD, warehouse="fresh.duckdb")  # the fixed file: accepted
    assert (report.status, current) == (LoadStatus.ACCEPTED, 961)
    with connect(tmp_path / "fresh.duckdb") as con:
        statuses = [s for (s,) in con.execute("SELECT status FROM ingest_log ORDER BY loaded_at").fetchall()]
    assert statuses == ["rejected", "rejected", "accepted"]  # each held one superseded by the next extract


def _load(folder: Path) -> tuple[LoadStatus, list]:
    """ingest_or_hold on the folder's `lic` source: (status, the current canonical rows in key order)."""
    with connect(folder / "w.duckdb") as con:
        report = ingest_or_hold(con, load_sources(folder / "sources.yaml"), "lic")
        rows = con.execute('SELECT * FROM canonical."lic" ORDER BY source_record_id').fetchall()
    assert report.balanced and not report.held, report
    return report.status, rows


def test_an_unchanged_extract_is_not_read_again_and_any_change_reads_it(tmp_path):
    """The same files (names, sizes, times, contents) under the same contract: the last load's tables are kept and
    its rules judged again on them; a new time, other bytes of the same size, another contract or tables that are
    not the ones that load wrote read the extract again."""
    write(tmp_path / "sources.yaml", SOURCES)
    extract = tmp_path / "lic.csv"
    extract.write_text(GOOD, encoding="utf-8")
    status, first = _load(tmp_path)
    assert status == LoadStatus.ACCEPTED
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest_or_hold(con, load_sources(tmp_path / "sources.yaml"), "lic")
        assert report.status == LoadStatus.UNCHANGED and report.unchanged_since is not None
        assert (report.rows_in, report.rows_loaded, report.rows_rejected) == (961, 961, 0)
        assert [r.rule for r in report.audit] == list(INGEST_RULES) and not report.failed_rules
        assert report.audit[0].figures["read"] is False
        assert con.execute('SELECT * FROM canonical."lic" ORDER BY source_record_id').fetchall() == first
        log = con.execute("SELECT status, rows_loaded FROM ingest_log ORDER BY loaded_at").fetchall()
        assert log == [("accepted", 961), ("unchanged", 961)]
        accepted_at = source_status(con, ["lic"]).row(0, named=True)["accepted_at"]
        assert accepted_at == con.execute("SELECT min(loaded_at) FROM ingest_log").fetchall()[0][0]  # not "now"
    assert _load(tmp_path)[0] == LoadStatus.UNCHANGED  # and again, after an unchanged load

    stat = extract.stat()
    os.utime(extract, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the same bytes, delivered again
    status, rows = _load(tmp_path)
    assert status == LoadStatus.ACCEPTED and rows != first  # each record's extracted_at is the new file time
    stat = extract.stat()
    extract.write_text(GOOD.replace("Person 7,", "Persan 7,"), encoding="utf-8")  # same size, time put back
    os.utime(extract, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    status, rows = _load(tmp_path)
    assert status == LoadStatus.ACCEPTED and ("Persan 7" in str(rows)) and "Persan 7" not in str(first)
    assert _load(tmp_path)[0] == LoadStatus.UNCHANGED
    write(tmp_path / "sources.yaml", SOURCES.replace("format: csv", "format: csv\n    description: licences"))
    assert _load(tmp_path)[0] == LoadStatus.ACCEPTED  # another contract
    assert _load(tmp_path)[0] == LoadStatus.UNCHANGED
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("DELETE FROM canonical.lic WHERE source_record_id = 'L5'")
    status, rows = _load(tmp_path)
    assert status == LoadStatus.ACCEPTED and len(rows) == 961  # the kept tables were not the load's: read again


def test_a_released_extract_is_read_and_judged_again_where_its_release_still_applies(tmp_path):
    write(tmp_path / "sources.yaml", SOURCES)
    assert _ingest(tmp_path, GOOD)[0].status == LoadStatus.ACCEPTED
    lines = GOOD.splitlines(keepends=True)  # a third of the birth dates unreadable: fails however often judged
    bad = "".join(line.rsplit(",", 1)[0] + ",unknown\n" if i % 3 == 0 else line for i, line in enumerate(lines) if i)
    (tmp_path / "lic.csv").write_text(HEADER + bad, encoding="utf-8")
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con:
        assert ingest_or_hold(con, sources, "lic").held
        release_held(con, "lic", by="test", reason="the agency split its register")
        for _ in range(2):
            again = ingest_or_hold(con, sources, "lic")
            assert again.status == LoadStatus.ACCEPTED and again.released_by
            assert [r.rule for r in again.failed_rules] == ["date_of_birth_validity"]
        assert con.execute("SELECT count(*) FROM canonical.lic WHERE date_of_birth IS NULL").fetchall() == [(320,)]


def test_a_load_of_an_earlier_day_is_kept_where_the_day_changes_nothing_and_read_again_where_it_does(tmp_path):
    """The rules judge by the day: the latest plausible birth date is the day (the contract sets none here) and an
    implausible date's reason names it. A load judged on an earlier day is kept when none of its dates was set aside
    by the day (a placeholder before the earliest plausible date is judged alike every day); a birth date the day set
    aside, or a clock set back, reads the extract again."""
    day = dt.date(2031, 5, 6)
    next_day = day + dt.timedelta(days=1)
    write(tmp_path / "sources.yaml", SOURCES)
    sources = load_sources(tmp_path / "sources.yaml")
    (tmp_path / "lic.csv").write_text(GOOD + "L998,Person placeholder,1800-01-01\n", encoding="utf-8")
    early = "SELECT reason FROM field_issues WHERE record_id = 'L998'"
    with connect(tmp_path / "w.duckdb") as con:
        assert ingest_or_hold(con, sources, "lic", today=day).status == LoadStatus.ACCEPTED
        kept = ingest_or_hold(con, sources, "lic", today=next_day)
        assert (kept.status, kept.judged_on) == (LoadStatus.UNCHANGED, next_day)
        assert ingest_or_hold(con, sources, "lic", today=day).status == LoadStatus.ACCEPTED  # the clock set back
        judged = [d for (d,) in con.execute("SELECT judged_on FROM ingest_log ORDER BY loaded_at").fetchall()]
        assert judged == [day, next_day, day]
        assert con.execute(early).fetchall() == [("implausible: before 1880-01-01 (quality settings)",)]

    (tmp_path / "lic.csv").write_text(GOOD + f"L999,Person late,{next_day.isoformat()}\n", encoding="utf-8")
    born = "SELECT date_of_birth FROM canonical.lic WHERE source_record_id = 'L999'"
    with connect(tmp_path / "w.duckdb") as con:
        assert ingest_or_hold(con, sources, "lic", today=day).status == LoadStatus.ACCEPTED
        assert con.execute(born).fetchall() == [(None,)]  # after the latest plausible date: set aside
        assert ingest_or_hold(con, sources, "lic", today=next_day).status == LoadStatus.ACCEPTED  # read again
        assert con.execute(born).fetchall() == [(next_day,)]
        assert ingest_or_hold(con, sources, "lic", today=next_day + dt.timedelta(days=1)).status == LoadStatus.UNCHANGED
    # the same with the contract's own latest date: the reason does not name the day, the load is kept
    write(tmp_path / "sources.yaml", SOURCES + "quality:\n  latest_date_of_birth: 2031-01-01\n")
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con:
        assert ingest_or_hold(con, sources, "lic", today=day).status == LoadStatus.ACCEPTED  # another contract
        assert con.execute(born).fetchall() == [(None,)]
        assert ingest_or_hold(con, sources, "lic", today=next_day).status == LoadStatus.UNCHANGED


def test_a_load_of_an_earlier_day_is_read_again_when_an_id_it_set_aside_passes_today(tmp_path):
    """A fødselsnummer may not encode a birth date after the day: one born on the next day fails on the day, passes the
    next day, and so reads its extract again then (a load whose set-aside IDs still fail is kept)."""
    from citizen_view_synth.national_id import FodselsnummerAllocator

    day = dt.date(2031, 5, 6)
    next_day = day + dt.timedelta(days=1)
    ids = FodselsnummerAllocator(seed=3)
    rows = [f"P{i},Person {i},{ids.allocate(dt.date(1960 + i % 40, 1 + i % 12, 1 + i % 28), 'F')}" for i in range(200)]
    born_late = ids.allocate(next_day, "M")
    write(
        tmp_path / "sources.yaml",
        "country: NO\nsources:\n  - name: folk\n    path: folk.csv\n    format: csv\n    record_id: id\n"
        "    fields: {full_name: name, national_id: fnr}\n",
    )
    sources = load_sources(tmp_path / "sources.yaml")
    valid = "SELECT national_id_valid FROM canonical.folk WHERE source_record_id = 'P999'"
    with connect(tmp_path / "w.duckdb") as con:
        (tmp_path / "folk.csv").write_text("id,name,fnr\n" + "\n".join(rows) + "\nP998,Person x,01017012345\n")
        assert ingest_or_hold(con, sources, "folk", today=day).status == LoadStatus.ACCEPTED
        assert ingest_or_hold(con, sources, "folk", today=next_day).status == LoadStatus.UNCHANGED  # still failing
        (tmp_path / "folk.csv").write_text("id,name,fnr\n" + "\n".join(rows) + f"\nP999,Person y,{born_late}\n")
        assert ingest_or_hold(con, sources, "folk", today=day).status == LoadStatus.ACCEPTED
        assert con.execute(valid).fetchall() == [(False,)]
        assert ingest_or_hold(con, sources, "folk", today=next_day).status == LoadStatus.ACCEPTED  # read again
        assert con.execute(valid).fetchall() == [(True,)]
