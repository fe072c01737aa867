"""Ingest: every format parses, every malformed row is quarantined with its reason, nothing is lost."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from citizen_view.contract import ConfigError, SourceError, load_sources
from citizen_view.ingest import ingest_source
from citizen_view.warehouse import connect
from tests.conftest import write

TAX = """
taxpayer_ref;tin;name;birth_date;city
T1;111222333;DE VRIES, Jan Pieter;01-02-1980;Utrecht
T2;123456782;Berg, Anna van der;31-02-1980;Ede
T3;12345678;SØRENSEN, Bjørn;05-06-1970
T1;999999999;JANSEN, Piet;01-01-1990;Ede
;111222333;NOBODY, No;01-01-1990;Ede
T4;111222334;BAKKER, Els;;Ede
"""

SOURCES = """
country: NL
sources:
  - name: tax
    path: tax/*.csv
    format: csv
    options: {delimiter: ";", encoding: latin-1}
    record_id: taxpayer_ref
    fields:
      national_id: tin
      full_name: name
      date_of_birth: {column: birth_date, format: "%d-%m-%Y"}
      city: city
"""


def _load(tmp_path, name="tax"):
    """Ingest one source; its records and rejected rows where the extract landed: published, or (these small
    extracts are often bad enough to be held back) staged as the held extract."""
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest_source(con, sources, name)
        table, rejects = (
            (f'staging."canonical_{name}"', "staging.rejected_records")
            if report.held
            else (f'canonical."{name}"', "rejected_records")
        )
        canonical = con.sql(f"SELECT * FROM {table} ORDER BY source_line").pl()
        rejected = con.sql(f"SELECT * FROM {rejects} WHERE source = ? ORDER BY line", params=[name]).pl()
    return report, canonical, rejected


def _issues(tmp_path, name="tax") -> pl.DataFrame:
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        held = con.execute(
            "SELECT status FROM ingest_log WHERE source = ? ORDER BY loaded_at DESC LIMIT 1", [name]
        ).fetchall()
        table = "staging.field_issues" if held and held[0][0] == "held" else "field_issues"
        return con.sql(f"SELECT * FROM {table} WHERE source = ? ORDER BY line, field", params=[name]).pl()


def test_csv_bad_rows_are_quarantined_with_reasons_and_counts_balance(tmp_path):
    write(tmp_path / "tax/t.csv", TAX, encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES)
    report, canonical, rejected = _load(tmp_path)
    assert report.rows_in == 6
    assert report.rows_in == report.rows_loaded + report.rows_rejected == canonical.height + rejected.height
    reasons = dict(zip(rejected["line"].to_list(), rejected["reason"].to_list()))
    assert sorted(reasons) == [4, 5, 6]  # only structural faults reject a row
    assert reasons[4] == "wrong field count: 4 fields, expected 5"
    assert reasons[5] == "duplicate record id 'T1' (first seen in tax/t.csv line 2)"
    assert reasons[6].startswith("missing record id")
    # the raw text of each rejected row is kept
    assert "SØRENSEN" in rejected.filter(pl.col("line") == 4)["raw"][0]
    assert json.loads(rejected.filter(pl.col("line") == 5)["raw"][0])["taxpayer_ref"] == "T1"
    # an empty date is missing, not malformed
    assert canonical.filter(pl.col("source_record_id") == "T4")["date_of_birth"][0] is None


def test_a_malformed_date_is_a_field_issue_and_the_row_is_still_loaded(tmp_path):
    write(tmp_path / "tax/t.csv", TAX, encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES)
    report, canonical, _ = _load(tmp_path)
    t2 = canonical.filter(pl.col("source_record_id") == "T2").to_dicts()[0]
    assert t2["date_of_birth"] is None and t2["family_name"] == "van der Berg"
    assert t2["date_of_birth_text"] == "19800231"  # the digits, in place, for comparisons
    issue = _issues(tmp_path).filter(pl.col("field") == "date_of_birth").to_dicts()
    assert [(i["record_id"], i["line"], i["raw"]) for i in issue] == [("T2", 3, "31-02-1980")]
    assert issue[0]["reason"].startswith("impossible: digits in the format %d-%m-%Y, but no such date")
    assert report.field_issues["date_of_birth"] == 1


def test_a_rules_evidence_shows_a_set_aside_value_by_its_shape_and_the_quarantine_keeps_it(tmp_path):
    """Second red-team pass: a rule's sample (Dagster's run storage, quality_results) held raw birth dates and national
    IDs, which outlive the quarantine. The sample shows the shape only; field_issues keeps the value itself."""
    write(tmp_path / "tax/t.csv", TAX, encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES)
    report, _, _ = _load(tmp_path)
    samples = [row for r in report.audit for row in r.sample if "raw" in row]
    assert samples and all("31-02-1980" != row["raw"] for row in samples)
    assert {"record_id": "T2", "raw": "99-99-9999"}.items() <= next(
        r for r in samples if r.get("record_id") == "T2"
    ).items()
    assert _issues(tmp_path).filter(pl.col("record_id") == "T2")["raw"].to_list() == ["31-02-1980"]


def test_an_unreadable_date_and_an_impossible_one_have_distinct_reasons(tmp_path):
    """A date not in the declared format's shape (a wrong format, a word) is unreadable, the sign of a broken
    extract; one with digits in the format's places but no such day (month 13, 31 February) is a keying typo."""
    rows = ["T1;;A, B;1980-02-03;Ede", "T2;;C, D;unknown;Ede", "T3;;E, F;31-13-1980;Ede", "T4;;G, H;3-2-1980;Ede"]
    write(tmp_path / "tax/t.csv", "taxpayer_ref;tin;name;birth_date;city\n" + "\n".join(rows) + "\n")
    write(tmp_path / "sources.yaml", SOURCES)
    _, canonical, _ = _load(tmp_path)
    reasons = {
        i["record_id"]: i["reason"] for i in _issues(tmp_path).filter(pl.col("field") == "date_of_birth").to_dicts()
    }
    assert reasons == {
        "T1": "unreadable: not in the format %d-%m-%Y (column birth_date)",
        "T2": "unreadable: not in the format %d-%m-%Y (column birth_date)",
        "T3": "impossible: digits in the format %d-%m-%Y, but no such date (column birth_date)",
    }
    assert canonical.get_column("date_of_birth_text").to_list() == [None, None, "19801331", "19800203"]


def test_values_that_do_not_validate_become_null_with_their_raw_value_kept(tmp_path):
    write(
        tmp_path / "ben/b.csv",
        """
        id;bsn;born;sex;phone;postcode;email
        B1;111222333;1990-02-15;M;06 12345678;1234 ab;a@b.nl
        B2;111222334;1990-02-70;X;12;12AB;not-an-email
        B3;;1850-01-01;v;+31 20 1234567;9999ZZ;
        """,
    )
    write(
        tmp_path / "sources.yaml",
        """
        country: NL
        quality: {earliest_date_of_birth: 1880-01-01}
        sources:
          - name: ben
            path: ben/b.csv
            format: csv
            options: {delimiter: ";"}
            record_id: id
            fields: {national_id: bsn, date_of_birth: born, sex: sex, phone: phone, postcode: postcode, email: email}
        """,
    )
    report, canonical, rejected = _load(tmp_path, "ben")
    assert rejected.height == 0 and report.rows_loaded == 3
    rows = {r["source_record_id"]: r for r in canonical.to_dicts()}
    assert (rows["B1"]["national_id"], rows["B1"]["phone"], rows["B1"]["postcode"], rows["B1"]["sex"]) == (
        "111222333",
        "+31612345678",
        "1234AB",
        "M",
    )
    assert rows["B2"]["national_id"] is None and rows["B2"]["national_id_text"] == "111222334"
    assert (
        rows["B2"]["date_of_birth"],
        rows["B2"]["sex"],
        rows["B2"]["phone"],
        rows["B2"]["postcode"],
        rows["B2"]["email"],
    ) == (None, None, None, None, None)
    assert (
        rows["B3"]["date_of_birth"] is None and rows["B3"]["date_of_birth_text"] == "18500101"
    )  # implausible, digits kept
    issues = {(i["record_id"], i["field"]): i for i in _issues(tmp_path, "ben").to_dicts()}
    assert set(issues) == {
        ("B2", "national_id"),
        ("B2", "date_of_birth"),
        ("B2", "sex"),
        ("B2", "phone"),
        ("B2", "postcode"),
        ("B2", "email"),
        ("B3", "date_of_birth"),
    }
    assert issues[("B2", "national_id")]["reason"] == "fails the nl.bsn checksum"
    assert issues[("B3", "date_of_birth")]["reason"] == "implausible: before 1880-01-01 (quality settings)"
    assert issues[("B2", "phone")]["raw"] == "12"


def test_an_opaque_identifier_is_never_validated(tmp_path):
    write(tmp_path / "a/a.csv", "id,ssn,name\n1,12-345,Ann Smith\n2,0000,Bob Jones\n")
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: a, path: a/a.csv, format: csv, record_id: id, fields: {national_id: {column: ssn, scheme: none}, full_name: name}}\n",
    )
    _, canonical, _ = _load(tmp_path, "a")
    assert canonical["national_id"].to_list() == ["12-345", "0000"]
    assert canonical["national_id_valid"].to_list() == [None, None]
    assert _issues(tmp_path, "a").height == 0


def test_csv_name_order_and_folding(tmp_path):
    write(
        tmp_path / "tax/t.csv",
        "taxpayer_ref;tin;name;birth_date;city\nA;111222333;Berg, Anna van der;01-02-1980;ÅLESUND\nB;8;DE VRIES, Jan Pieter;01-02-1980;x\n",
        encoding="latin-1",
    )
    write(tmp_path / "sources.yaml", SOURCES)
    _, canonical, _ = _load(tmp_path)
    a, b = canonical.to_dicts()
    assert (a["given_name"], a["family_name"], a["family_name_std"], a["name_prefix"]) == (
        "Anna",
        "van der Berg",
        "berg",
        "van der",
    )
    assert a["city"] == "ÅLESUND" and a["city_std"] == "alesund"
    assert (b["given_name"], b["family_name_std"], b["first_name_std"], b["initials"]) == (
        "Jan Pieter",
        "vries",
        "jan",
        "jp",
    )
    assert a["national_id_valid"] is True and b["national_id_valid"] is False
    assert b["national_id"] is None and b["national_id_text"] == "8"  # quarantined, kept as given for comparisons


def test_undecodable_bytes_are_rejected_not_fatal(tmp_path):
    path = tmp_path / "lic/l.csv"
    path.parent.mkdir()
    path.write_bytes(b"licence_no,surname\nL1,Smit\nL2,Sm\xff\xfeit\nL3,Visser\n")
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: lic, path: lic/l.csv, format: csv, record_id: licence_no, fields: {family_name: surname}}\n",
    )
    report, canonical, rejected = _load(tmp_path, "lic")
    assert canonical["source_record_id"].to_list() == ["L1", "L3"]
    assert rejected["line"].to_list() == [3]
    assert rejected["reason"][0] == "undecodable bytes for encoding utf-8"
    assert "\\xff" in rejected["raw"][0]
    assert report.balanced


def test_fixed_width_jsonl_xlsx_and_parquet_parse(tmp_path):
    widths = {"ID": 4, "NAME": 10, "DOB": 8}
    lines = ["0001Jansen    19800102", "0002Ødegård   19751231", "0003Short", "0004Bakker    19801301"]
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg/r.dat").write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    write(
        tmp_path / "ben/c.jsonl",
        '{"client_no": "B1", "name": {"family": "Smit"}, "address": {"city": "Ede"}, "cases": [{"type": "housing"}]}\n'
        "{not json}\n"
        '{"client_no": "B2", "name": {"family": "Visser"}, "address": {"city": null}}\n',
    )
    import xlsxwriter

    (tmp_path / "per").mkdir()
    wb = xlsxwriter.Workbook(str(tmp_path / "per/p.xlsx"))
    ws = wb.add_worksheet("permits")
    for r, row in enumerate(
        [
            ["permit_no", "applicant", "phone"],
            ["P1", "Jan de Vries", "06-12345678"],
            ["P2", "Els Bakker", "0031 6 1234 5679"],
        ]
    ):
        for c, v in enumerate(row):
            ws.write_string(r, c, v)
    wb.close()
    import datetime

    pl.DataFrame({"id": [1, 2], "surname": ["Kok", "Mulder"], "born": [datetime.date(1990, 1, 1), None]}).write_parquet(
        tmp_path / "pq.parquet"
    )
    write(
        tmp_path / "sources.yaml",
        """
        country: NL
        sources:
          - name: register
            path: reg/*.dat
            format: fixed_width
            options: {encoding: latin-1, widths: {ID: 4, NAME: 10, DOB: 8}}
            record_id: ID
            fields: {family_name: NAME, date_of_birth: {column: DOB, format: "%Y%m%d"}}
          - name: benefits
            path: ben/c.jsonl
            format: jsonl
            record_id: client_no
            fields: {family_name: name.family, city: address.city}
          - name: permits
            path: per/p.xlsx
            format: xlsx
            options: {sheet: permits}
            record_id: permit_no
            fields: {full_name: applicant, phone: phone}
          - name: extra
            path: pq.parquet
            format: parquet
            record_id: id
            fields: {family_name: surname, date_of_birth: born}
        """,
    )
    assert sum(widths.values()) == 22
    rep, reg, rej = _load(tmp_path, "register")
    assert reg["family_name"].to_list() == ["Jansen", "Ødegård", "Bakker"]
    assert reg["family_name_std"].to_list() == ["jansen", "odegard", "bakker"]
    assert reg["date_of_birth"][2] is None and reg["date_of_birth_text"][2] == "19801301"  # month 13: a field issue
    assert [r.split(":")[0] for r in rej["reason"]] == ["wrong field count"]
    assert rep.rows_in == 4 and rep.balanced and rep.field_issues == {"date_of_birth": 1}

    rep, ben, rej = _load(tmp_path, "benefits")
    assert ben["family_name"].to_list() == ["Smit", "Visser"]
    assert json.loads(ben["attributes"][0])["cases"] == '[{"type": "housing"}]'
    assert rej["reason"][0].startswith("invalid JSON") and rej["line"][0] == 2

    rep, per, _ = _load(tmp_path, "permits")
    assert per["source_line"].to_list() == [2, 3]
    assert per["family_name"].to_list() == ["de Vries", "Bakker"]
    assert per["phone"].to_list() == ["+31612345678", "+31612345679"]

    rep, extra, _ = _load(tmp_path, "extra")
    assert extra["date_of_birth"].to_list() == [datetime.date(1990, 1, 1), None]


def test_missing_mapped_column_names_source_file_and_column(tmp_path):
    write(tmp_path / "tax/t.csv", TAX, encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES.replace("city: city", "city: town"))
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con, pytest.raises(SourceError) as err:
        ingest_source(con, sources, "tax")
    msg = str(err.value)
    assert "'tax'" in msg and "'tax/t.csv'" in msg and "'town'" in msg and "(mapped to city)" in msg


def test_missing_file_and_unknown_format_stop_only_that_source(tmp_path):
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: gone, path: gone/*.csv, format: csv}\n  - {name: odd, path: x.xls, format: xls}\n",
    )
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con:
        with pytest.raises(SourceError, match=r"source 'gone': no file matches 'gone/\*\.csv'"):
            ingest_source(con, sources, "gone")
        with pytest.raises(SourceError, match=r"source 'odd' \(x.xls\): unknown format 'xls'"):
            ingest_source(con, sources, "odd")


def test_structural_config_errors_are_reported_with_their_place(tmp_path):
    write(tmp_path / "sources.yaml", "sources:\n  - {name: Tax-Office, path: t.csv, format: csv}\n")
    with pytest.raises(ConfigError, match=r"sources\[0\] \(Tax-Office\)\.name: .*must match"):
        load_sources(tmp_path / "sources.yaml")
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: a, path: t.csv, format: csv}\n  - {name: a, path: u.csv, format: csv}\n",
    )
    with pytest.raises(ConfigError, match="declared twice"):
        load_sources(tmp_path / "sources.yaml")


def test_failed_reload_keeps_the_previous_load(tmp_path):
    write(tmp_path / "tax/t.csv", TAX, encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES)
    report, before, _ = _load(tmp_path)
    write(tmp_path / "sources.yaml", SOURCES.replace("city: city", "city: town"))
    with pytest.raises(SourceError):
        _load(tmp_path)
    write(tmp_path / "sources.yaml", SOURCES)
    with connect(tmp_path / "w.duckdb") as con:  # the load (here held back: half its rows are bad) is as it was
        table = 'staging."canonical_tax"' if report.held else 'canonical."tax"'
        after = con.sql(f"SELECT * FROM {table} ORDER BY source_line").pl()
        assert con.execute("SELECT count(*) FROM ingest_log").fetchall()[0][0] == 1
    assert after.equals(before)


# --- records are counted from the file, never from what a parser managed to read ------------------


def _csv_source(tmp_path, body: bytes, *, options: str = "{delimiter: ';'}") -> None:
    (tmp_path / "t").mkdir(exist_ok=True)
    (tmp_path / "t/t.csv").write_bytes(body)
    write(
        tmp_path / "sources.yaml",
        f"sources:\n  - {{name: t, path: t/t.csv, format: csv, options: {options}, record_id: id, fields: {{full_name: name}}}}\n",
    )


def test_a_stray_quote_costs_one_line_not_the_rest_of_the_file(tmp_path):
    rows = [f"R{i};Person {i};Town" for i in range(1, 2310)]
    rows[999] = 'R1000;"Jansen;Town'  # an opening quote that never closes
    _csv_source(tmp_path, ("id;name;city\n" + "\n".join(rows) + "\n").encode())
    report, canonical, rejected = _load(tmp_path, "t")
    assert report.rows_in == 2309  # every data line of the file is a record
    assert (report.rows_loaded, report.rows_rejected) == (2308, 1)
    assert rejected["line"].to_list() == [1001]
    assert rejected["reason"][0].startswith("unbalanced quote")
    assert rejected["raw"][0] == 'R1000;"Jansen;Town'
    assert canonical.filter(pl.col("source_record_id") == "R2309").height == 1  # the lines after it are all there


def test_a_quoted_value_may_span_lines_within_the_bound(tmp_path):
    body = 'id;name;city\nR1;"Anna\nJansen";Ede\nR2;Piet;"Den\n\nHaag"\nR3;Els;Ede\n'
    _csv_source(tmp_path, body.encode())
    report, canonical, rejected = _load(tmp_path, "t")
    assert (report.rows_in, report.rows_loaded, report.rows_rejected) == (3, 3, 0)
    assert canonical["full_name"].to_list()[0] == "Anna Jansen" and canonical["source_line"].to_list() == [2, 4, 7]


def test_an_open_quote_beyond_max_record_lines_rejects_only_its_line(tmp_path):
    body = 'id;name;city\nR1;"Anna;Ede\nR2;Piet;Ede\nR3;Els;Ede"\nR4;Jan;Ede\n'
    _csv_source(tmp_path, body.encode(), options="{delimiter: ';', max_record_lines: 2}")
    report, canonical, rejected = _load(tmp_path, "t")
    assert rejected["line"].to_list() == [2]  # the open quote; a quote inside a value later on is just a character
    assert canonical["source_record_id"].to_list() == ["R2", "R3", "R4"]
    assert report.rows_in == 4 and report.balanced


def test_byte_0x85_in_latin1_is_no_line_break_and_its_line_is_set_aside(tmp_path):
    # 0x85 is NEL in Latin-1 (no text holds it) and "…" in Windows-1252, what files labelled Latin-1 mostly are
    body = "id;name;city\nR1;Jan\x85sen;Ede\nR2;Piet;Ede\n".encode("latin-1")
    _csv_source(tmp_path, body, options="{delimiter: ';', encoding: latin-1}")
    report, canonical, rejected = _load(tmp_path, "t")
    assert (report.rows_in, report.rows_loaded, report.rows_rejected) == (2, 1, 1)
    assert rejected.select("line", "raw").rows() == [(2, "R1;Jan\x85sen;Ede")]  # the line whole, as received
    assert (
        rejected["reason"][0].startswith("byte 0x85: a control character in Latin-1")
        and "cp1252" in rejected["reason"][0]
    )


def test_u2028_inside_a_json_string_and_a_form_feed_in_a_fixed_width_record_stay_inside(tmp_path):
    (tmp_path / "j").mkdir()
    (tmp_path / "j/c.jsonl").write_text(
        '{"id": "B1", "name": "Anna\u2028Jansen"}\n{"id": "B2", "name": "Piet\u2029Smit"}\n', encoding="utf-8"
    )
    (tmp_path / "r").mkdir()
    (tmp_path / "r/r.dat").write_bytes("0001Jan\x0csen   \n0002Bakker    \n".encode("latin-1"))
    write(
        tmp_path / "sources.yaml",
        """
        sources:
          - {name: j, path: j/c.jsonl, format: jsonl, record_id: id, fields: {full_name: name}}
          - name: r
            path: r/r.dat
            format: fixed_width
            options: {encoding: latin-1, widths: {ID: 4, NAME: 10}}
            record_id: ID
            fields: {family_name: NAME}
        """,
    )
    report, canonical, rejected = _load(tmp_path, "j")
    assert (report.rows_in, report.rows_loaded, report.rows_rejected) == (2, 2, 0)
    report, canonical, rejected = _load(tmp_path, "r")
    assert (report.rows_in, report.rows_loaded, report.rows_rejected) == (2, 2, 0)
    assert canonical["family_name"][0] == "Jan sen"  # the control character folds to a space in the canonical form


def test_a_large_extract_with_unmapped_fields_loads(tmp_path):
    """Big frames are processed in parallel chunks: no value check may assume a field is mapped (250k rows)."""
    (tmp_path / "big").mkdir()
    with (tmp_path / "big/b.csv").open("w", encoding="utf-8") as f:
        f.write("id,name\n")
        f.writelines(f"R{i},Person {i}\n" for i in range(250_000))
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: big, path: big/b.csv, format: csv, record_id: id, fields: {full_name: name}}\n",
    )
    report, _, _ = _load(tmp_path, "big")
    assert report.rows_in == report.rows_loaded == 250_000


def test_a_two_digit_year_is_read_in_the_century_that_keeps_the_date_before_its_file(tmp_path):
    """Legacy extracts write birth years in two digits (%y), which reads 00-68 as 2000-2068: everyone born 1945-1968
    had a birth date in the future, and was set aside as implausible. A birth cannot follow the file that records it:
    the century is the one that keeps the date on or before the day the file was written."""
    import os

    rows = ["T1;;A, B;03-07-45;Ede", "T2;;C, D;01-01-20;Ede", "T3;;E, F;31-12-99;Ede", "T4;;G, H;29-02-00;Ede"]
    write(tmp_path / "tax/t.csv", "taxpayer_ref;tin;name;birth_date;city\n" + "\n".join(rows) + "\n")
    write(tmp_path / "sources.yaml", SOURCES.replace("%d-%m-%Y", "%d-%m-%y"))
    _, canonical, _ = _load(tmp_path)
    born = canonical.select("source_record_id", "date_of_birth", "date_of_birth_text").rows()
    assert born == [
        ("T1", dt.date(1945, 7, 3), "19450703"),
        ("T2", dt.date(2020, 1, 1), "20200101"),
        ("T3", dt.date(1999, 12, 31), "19991231"),
        ("T4", dt.date(2000, 2, 29), "20000229"),
    ]
    assert _issues(tmp_path).filter(pl.col("field") == "date_of_birth").height == 0
    # The same extract, written on 1 June 2019: "01-01-20" can only be 1920.
    when = dt.datetime(2019, 6, 1, tzinfo=dt.timezone.utc).timestamp()
    os.utime(tmp_path / "tax/t.csv", (when, when))
    (tmp_path / "w.duckdb").unlink()
    _, canonical, _ = _load(tmp_path)
    assert canonical.filter(pl.col("source_record_id") == "T2")["date_of_birth"].to_list() == [dt.date(1920, 1, 1)]


def test_a_date_written_as_a_timestamp_at_midnight_is_that_date(tmp_path):
    """Databases export a date held as a timestamp: "1980-02-03 00:00:00". At midnight (with or without fractions and
    an offset) the date is the one meant; any other time is set aside as before, with the text as received: a birth
    date at 23:00 is most often a midnight moved by a time zone."""
    rows = [
        "T1;;A, B;03-02-1980 00:00:00;Ede",
        "T2;;C, D;03-02-1980T00:00:00.000Z;Ede",
        "T3;;E, F;03-02-1980 00:00+01:00;Ede",
        "T4;;G, H;02-02-1980 23:00:00;Ede",
        "T5;;I, J;31-02-1980 00:00:00;Ede",
    ]
    write(tmp_path / "tax/t.csv", "taxpayer_ref;tin;name;birth_date;city\n" + "\n".join(rows) + "\n")
    write(tmp_path / "sources.yaml", SOURCES)
    _, canonical, _ = _load(tmp_path)
    assert canonical["date_of_birth"].to_list() == [dt.date(1980, 2, 3)] * 3 + [None, None]
    assert canonical["date_of_birth_text"].to_list() == ["19800203"] * 3 + [None, "19800231"]
    issues = _issues(tmp_path).filter(pl.col("field") == "date_of_birth").select("record_id", "raw", "reason").rows()
    assert issues == [
        ("T4", "02-02-1980 23:00:00", "unreadable: not in the format %d-%m-%Y (column birth_date)"),
        (
            "T5",
            "31-02-1980 00:00:00",
            "impossible: digits in the format %d-%m-%Y, but no such date (column birth_date)",
        ),
    ]
