"""Ingest: every format parses, every malformed row is quarantined with its reason, nothing is lost."""

from __future__ import annotations

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
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest_source(con, sources, name)
        canonical = con.sql(f'SELECT * FROM canonical."{name}" ORDER BY source_line').pl()
        rejected = con.sql("SELECT * FROM rejected_records WHERE source = ? ORDER BY line", params=[name]).pl()
    return report, canonical, rejected


def test_csv_bad_rows_are_quarantined_with_reasons_and_counts_balance(tmp_path):
    write(tmp_path / "tax/t.csv", TAX, encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES)
    report, canonical, rejected = _load(tmp_path)
    assert report.rows_in == 6
    assert report.rows_in == report.rows_loaded + report.rows_rejected == canonical.height + rejected.height
    reasons = dict(zip(rejected["line"].to_list(), rejected["reason"].to_list()))
    assert reasons[3].startswith("bad date in date_of_birth (column birth_date): '31-02-1980'")
    assert reasons[4] == "wrong field count: 4 fields, expected 5"
    assert reasons[5] == "duplicate record id 'T1' (first seen on line 2)"
    assert reasons[6].startswith("missing record id")
    # the raw text of each rejected row is kept
    assert "SØRENSEN" in rejected.filter(pl.col("line") == 4)["raw"][0]
    assert json.loads(rejected.filter(pl.col("line") == 3)["raw"][0])["taxpayer_ref"] == "T2"
    # an empty date is missing, not malformed
    assert canonical.filter(pl.col("source_record_id") == "T4")["date_of_birth"][0] is None


def test_csv_name_order_and_folding(tmp_path):
    write(tmp_path / "tax/t.csv", "taxpayer_ref;tin;name;birth_date;city\nA;111222333;Berg, Anna van der;01-02-1980;ÅLESUND\nB;8;DE VRIES, Jan Pieter;01-02-1980;x\n", encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES)
    _, canonical, _ = _load(tmp_path)
    a, b = canonical.to_dicts()
    assert (a["given_name"], a["family_name"], a["family_name_std"], a["name_prefix"]) == ("Anna", "van der Berg", "berg", "van der")
    assert a["city"] == "ÅLESUND" and a["city_std"] == "alesund"
    assert (b["given_name"], b["family_name_std"], b["first_name_std"], b["initials"]) == ("Jan Pieter", "vries", "jan", "jp")
    assert a["national_id_valid"] is True and b["national_id_valid"] is False


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
    for r, row in enumerate([["permit_no", "applicant", "phone"], ["P1", "Jan de Vries", "06-12345678"], ["P2", "Els Bakker", "0031 6 1234 5679"]]):
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
    assert reg["family_name"].to_list() == ["Jansen", "Ødegård"]
    assert reg["family_name_std"].to_list() == ["jansen", "odegard"]
    assert [r.split(":")[0] for r in rej["reason"]] == ["wrong field count", "bad date in date_of_birth (column DOB)"]
    assert rep.rows_in == 4 and rep.balanced

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
    write(tmp_path / "sources.yaml", "sources:\n  - {name: a, path: t.csv, format: csv}\n  - {name: a, path: u.csv, format: csv}\n")
    with pytest.raises(ConfigError, match="declared twice"):
        load_sources(tmp_path / "sources.yaml")


def test_failed_reload_keeps_the_previous_load(tmp_path):
    write(tmp_path / "tax/t.csv", TAX, encoding="latin-1")
    write(tmp_path / "sources.yaml", SOURCES)
    _, before, _ = _load(tmp_path)
    write(tmp_path / "sources.yaml", SOURCES.replace("city: city", "city: town"))
    with pytest.raises(SourceError):
        _load(tmp_path)
    write(tmp_path / "sources.yaml", SOURCES)
    with connect(tmp_path / "w.duckdb") as con:
        after = con.sql('SELECT * FROM canonical."tax" ORDER BY source_line').pl()
        assert con.execute("SELECT count(*) FROM ingest_log").fetchall()[0][0] == 1
    assert after.equals(before)
