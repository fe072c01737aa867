"""Bad input found by an adversarial pass: each case is quarantined with a reason or stopped with one clear line."""

from __future__ import annotations

import json
import time

import pytest

from citizen_view.contract import ConfigError, SourceError, load_sources
from citizen_view_app.cli import main as cli_main
from tests.conftest import write
from tests.test_ingest import _issues, _load


def _jsonl_source(tmp_path, lines: list[str], *, options: str = "{}") -> None:
    (tmp_path / "j").mkdir(exist_ok=True)
    (tmp_path / "j/p.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: j, path: j/p.jsonl, format: jsonl, options: " + options + ", record_id: id, "
        "fields: {given_name: first, family_name: last}}\n",
    )


def _csv(tmp_path, body: bytes, *, options: str = "{delimiter: ';'}") -> None:
    (tmp_path / "t").mkdir(exist_ok=True)
    (tmp_path / "t/t.csv").write_bytes(body)
    write(
        tmp_path / "sources.yaml",
        f"sources:\n  - {{name: t, path: t/t.csv, format: csv, options: {options}, record_id: id, "
        "fields: {given_name: first, family_name: last}}\n",
    )


def test_two_stray_quotes_do_not_merge_records_into_a_surname(tmp_path):
    body = 'id;first;last;city\nR1;Jan;"Smit;Ede\nR2;Piet;Jansen;Ede\nR3;Els;Bakker;Ede\nR4;Ans;Visser";Ede\nR5;Kees;Mol;Ede\n'
    _csv(tmp_path, body.encode())
    report, canonical, rejected = _load(tmp_path, "t")
    assert report.rows_in == report.rows_loaded + report.rows_rejected
    assert not any("\n" in (v or "") for v in canonical["family_name"].to_list())  # no record carries others
    assert {"R2", "R3", "R5"} <= set(canonical["source_record_id"].to_list())
    assert rejected["line"].to_list()[0] == 2 and rejected["reason"][0].startswith("stray quote")


def test_json_deeper_than_the_limit_is_rejected_and_the_rest_loads(tmp_path):
    deep = '{"id": "D", "first": "A", "last": "B", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"
    shallow = '{"id": "S", "first": "A", "last": "B", "x": ' + "[" * 10 + "]" * 10 + "}"
    _jsonl_source(tmp_path, [json.dumps({"id": "R1", "first": "Jan", "last": "Smit"}), deep, shallow])
    report, canonical, rejected = _load(tmp_path, "j")
    assert canonical["source_record_id"].to_list() == ["R1", "S"]
    assert rejected["reason"].to_list() == ["JSON nested deeper than max_depth 64"] and report.balanced


def test_the_depth_limit_is_a_setting(tmp_path):
    _jsonl_source(tmp_path, ['{"id": "S", "first": "A", "last": "B", "x": [[[[1]]]]}'], options="{max_depth: 3}")
    report, canonical, rejected = _load(tmp_path, "j")
    assert (report.rows_loaded, report.rows_rejected) == (0, 1)


SMALL_FIELDS = "{delimiter: ';', max_field_bytes: 1000}"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "csv over two lines"])
def test_a_field_bigger_than_the_limit_is_rejected(tmp_path, fmt):
    big = "x" * (2 << 20)
    if fmt == "jsonl":
        _jsonl_source(
            tmp_path, [json.dumps({"id": "R1", "first": "Jan", "last": big}), '{"id": "R2", "first": "A", "last": "B"}']
        )
    elif fmt == "csv":
        _csv(tmp_path, f"id;first;last\nR1;Jan;{big}\nR2;A;B\n".encode())
    else:  # a quoted value whose first line is short: the field is longer than the line the record starts on
        big = "x" * 2000  # under the csv module's own field limit, over this source's
        _csv(tmp_path, f'id;first;last\nR1;Jan;"x\n{big[:-2]}"\nR2;A;B\n'.encode(), options=SMALL_FIELDS)
    report, canonical, rejected = _load(tmp_path, "j" if fmt == "jsonl" else "t")
    assert canonical["source_record_id"].to_list() == ["R2"]
    assert (
        rejected["reason"][0].startswith(f"field too big: column 'last' holds {len(big):,} bytes") and report.balanced
    )
    assert len(rejected["raw"][0]) <= 1000 or fmt == "csv"


@pytest.mark.parametrize("lines", [[], ["", "   ", "\t"]], ids=["empty", "blank-only"])
def test_an_empty_or_blank_jsonl_file_loads_zero_rows(tmp_path, lines):
    _jsonl_source(tmp_path, lines)
    report, canonical, rejected = _load(tmp_path, "j")
    assert (report.rows_in, report.rows_loaded, report.rows_rejected) == (0, 0, 0)


@pytest.mark.parametrize("value", [{"text": "Smit"}, ["Smit", "Jansen"]], ids=["object", "array"])
def test_a_json_object_or_array_where_a_name_is_expected_is_a_field_issue(tmp_path, value):
    _jsonl_source(
        tmp_path, [json.dumps({"id": "R1", "first": "Jan", "last": value}), '{"id": "R2", "first": "A", "last": "B"}']
    )
    report, canonical, rejected = _load(tmp_path, "j")
    assert (report.rows_loaded, report.rows_rejected) == (2, 0)
    assert canonical["family_name"].to_list() == [None, "B"]
    issues = _issues(tmp_path, "j")
    assert issues.select("record_id", "field").rows() == [("R1", "family_name")]
    assert json.loads(issues["raw"][0]) == value and "where a single value is expected" in issues["reason"][0]


@pytest.mark.parametrize("declared", ["latin-1", "cp1252"])
def test_utf8_declared_as_a_one_byte_encoding_stops_the_source(tmp_path, declared):
    _csv(
        tmp_path, "id;first;last\nR1;José;Müller\n".encode("utf-8"), options=f"{{delimiter: ';', encoding: {declared}}}"
    )
    with pytest.raises(SourceError, match=rf"t/t.csv' is declared {declared} but is UTF-8 text"):
        _load(tmp_path, "t")


def test_latin1_declared_as_latin1_still_loads(tmp_path):
    _csv(tmp_path, "id;first;last\nR1;José;Müller\n".encode("latin-1"), options="{delimiter: ';', encoding: latin-1}")
    _, canonical, _ = _load(tmp_path, "t")
    assert canonical["family_name"].to_list() == ["Müller"]


@pytest.mark.parametrize(
    "twin",
    ["\ufeffR1", "R\u200b1", "R1\u2060", "R\u00ad1"],
    ids=["bom", "zero-width space", "word joiner", "soft hyphen"],
)
def test_record_ids_differing_only_by_invisible_characters_are_duplicates(tmp_path, twin):
    _csv(tmp_path, f"id;first;last\nR1;Jan;Smit\n{twin};Jan;Smit\n".encode())
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["source_record_id"].to_list() == ["R1"]
    assert rejected["reason"][0].startswith("duplicate record id 'R1'")


def test_record_ids_are_compared_in_one_unicode_form(tmp_path):
    _csv(tmp_path, "id;first;last\nJos\u00e9;Jan;Smit\nJose\u0301;Jan;Smit\n".encode())
    report, canonical, rejected = _load(tmp_path, "t")
    assert (report.rows_loaded, report.rows_rejected) == (1, 1)


@pytest.mark.parametrize("width", ["true", "1.5", "'3'", "-2"])
def test_a_fixed_width_width_that_is_not_a_whole_number_names_its_place(tmp_path, width):
    write(
        tmp_path / "sources.yaml",
        f"""
        sources:
          - name: fw
            path: fw.txt
            format: fixed_width
            options: {{widths: {{ID: 4, SEX: {width}}}}}
        """,
    )
    problems = load_sources(tmp_path / "sources.yaml").sources[0].problems()
    assert any(p.startswith("options.widths.SEX: ") and "is not a width" in p for p in problems), problems


BOMB = "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, k in zip(["", "a", "b", "c", "d", "e", "f", "g", "h"], "abcdefghi")
)


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    path = write(tmp_path / "sources.yaml", BOMB + "sources: []\nlinkage: {spark: {conf: {x: *i}}}\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        load_sources(path)
    assert time.perf_counter() - started < 1
    assert cli_main(["run", "--sources", str(path), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_a_huge_sources_file_is_refused(tmp_path):
    path = write(tmp_path / "sources.yaml", "sources: []\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="too big for a sources file"):
        load_sources(path)


def test_a_sources_file_that_is_not_utf8_gives_one_line(tmp_path, capsys):
    path = tmp_path / "sources.yaml"
    path.write_bytes("sources:\n  - {name: t, path: 't/Müller.csv', format: csv}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xfc at offset"):
        load_sources(path)
    assert cli_main(["run", "--sources", str(path), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not UTF-8" in err and "\n" not in err


def _workbook(tmp_path, *, drop_cached_values: bool = False) -> None:
    """A sheet with a date cell in a name column, a date cell in the birth-date column and a formula."""
    import datetime as dt
    import shutil
    import zipfile

    import xlsxwriter

    (tmp_path / "x").mkdir(exist_ok=True)
    book = tmp_path / "x/p.xlsx"
    wb = xlsxwriter.Workbook(str(book))
    ws, day = wb.add_worksheet(), wb.add_format({"num_format": "dd/mm/yyyy"})
    ws.write_row(0, 0, ["id", "first", "last", "born"])
    ws.write_row(1, 0, ["R1", "Jan", "Smit"])
    ws.write_datetime(1, 3, dt.datetime(1990, 5, 17), day)
    ws.write_row(2, 0, ["R2", "Els"])
    ws.write_datetime(2, 2, dt.datetime(2001, 1, 2), day)
    ws.write(2, 3, "02-01-1980")
    ws.write(3, 0, "R3")
    ws.write_formula(3, 1, '=A4&"x"', None, "R3x")
    ws.write_row(3, 2, ["Mol", "03-01-1980"])
    wb.close()
    if drop_cached_values:  # as a workbook written by a tool that never calculates formulas
        shutil.move(book, tmp_path / "tmp.xlsx")
        with zipfile.ZipFile(tmp_path / "tmp.xlsx") as src, zipfile.ZipFile(book, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename.startswith("xl/worksheets/"):
                    data = data.replace(b"<v>R3x</v>", b"")
                dst.writestr(item, data)
    write(
        tmp_path / "sources.yaml",
        """
        sources:
          - name: x
            path: x/p.xlsx
            format: xlsx
            record_id: id
            fields: {given_name: first, family_name: last, date_of_birth: {column: born, format: "%d-%m-%Y"}}
        """,
    )


def test_xlsx_date_cells_are_read_as_dates_where_dates_are_mapped_and_set_aside_elsewhere(tmp_path):
    _workbook(tmp_path)
    report, canonical, rejected = _load(tmp_path, "x")
    assert (report.rows_loaded, report.rows_rejected) == (3, 0)
    assert [str(d) for d in canonical["date_of_birth"].to_list()] == ["1990-05-17", "1980-01-02", "1980-01-03"]
    assert canonical["family_name"].to_list() == ["Smit", None, "Mol"]
    assert canonical["given_name"].to_list() == ["Jan", "Els", "R3x"]  # a formula with its value is that value
    issues = _issues(tmp_path, "x")
    assert issues.select("record_id", "field").rows() == [("R2", "family_name")]
    assert issues["reason"][0] == "a cell typed as a date where text is expected (column last)"


def test_an_xlsx_formula_without_a_cached_value_is_set_aside(tmp_path):
    _workbook(tmp_path, drop_cached_values=True)
    report, canonical, rejected = _load(tmp_path, "x")
    assert report.rows_loaded == 3
    issues = _issues(tmp_path, "x")
    assert ("R3", "given_name", "a formula saved without its computed value (column first)") in issues.select(
        "record_id", "field", "reason"
    ).rows()


def test_a_mapped_column_missing_from_a_nonempty_jsonl_file_still_stops_the_source(tmp_path):
    _jsonl_source(tmp_path, ['{"id": "R1", "first": "Jan", "surname": "Smit"}'])
    with pytest.raises(SourceError, match="has no column 'last'"):
        _load(tmp_path, "j")


@pytest.mark.parametrize("content", [b"id,first\n", b"PK\x03\x04truncated"], ids=["not-a-zip", "truncated-zip"])
def test_a_workbook_that_is_no_workbook_stops_its_source_with_one_line(tmp_path, content):
    (tmp_path / "f.xlsx").write_bytes(content)
    yaml_text = "sources:\n  - {name: s, path: f.xlsx, format: xlsx, record_id: id, fields: {given_name: first}}\n"
    (tmp_path / "sources.yaml").write_text(yaml_text, encoding="utf-8")
    from citizen_view.contract import SourceError, load_sources
    from citizen_view.ingest import read_source

    sources = load_sources(tmp_path / "sources.yaml")
    with pytest.raises(SourceError) as caught:
        read_source(sources, sources.source("s"))
    assert "cannot be read as xlsx" in str(caught.value) and "\n" not in str(caught.value)


def test_a_nul_byte_rejects_its_row_with_a_reason_and_the_rest_loads(tmp_path):
    _csv(tmp_path, b"id;first;last\nR1;Jan;Smit\nR2;Pi\x00et;Jansen\nR3;Els;Bakker\n")
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["source_record_id"].to_list() == ["R1", "R3"] and report.balanced
    assert rejected.select("line", "reason").rows() == [
        (3, "a NUL byte in a text record (binary data or a corrupt extract)")
    ]
    assert rejected["raw"][0] == "R2;Pi\\x00et;Jansen"  # kept visible, not lost


def test_json_that_python_cannot_hold_is_quarantined_not_a_stopped_source(tmp_path):
    """A 5,000-digit number is valid JSON Python refuses to read (row rejected); a lone surrogate escape is valid JSON
    but no text (the value is set aside, the row loads); a key that is no text rejects its row."""
    _jsonl_source(
        tmp_path,
        [
            '{"id": "R1", "first": "Jan", "last": "Smit"}',
            '{"id": "R2", "first": "A", "last": "B", "n": ' + "9" * 5000 + "}",
            '{"id": "R3", "first": "\\ud800", "last": "Bakker"}',
            '{"id": "R4", "first": "C", "last": "D", "\\udfff": 1}',
        ],
    )
    report, canonical, rejected = _load(tmp_path, "j")
    assert canonical["source_record_id"].to_list() == ["R1", "R3"] and report.balanced
    assert canonical["given_name"].to_list() == ["Jan", None]
    reasons = dict(rejected.select("line", "reason").rows())
    assert reasons[2].startswith("invalid JSON: Exceeds the limit") and "lone UTF-16 surrogate" in reasons[4]
    issues = _issues(tmp_path, "j")
    assert issues.select("record_id", "field").rows() == [("R3", "given_name")]
    assert "lone UTF-16 surrogate" in issues["reason"][0] and issues["raw"][0] == '"\\ud800"'


def test_a_parquet_struct_in_a_mapped_field_is_set_aside_and_its_rows_load(tmp_path):
    import polars as pl

    (tmp_path / "p").mkdir()
    pl.DataFrame(
        {
            "id": ["R1", "R2"],
            "first": ["Jan", "Els"],
            "last": [{"text": "Smit"}, {"text": "Bakker"}],
            "tags": [["a", "b"], None],
        }
    ).write_parquet(tmp_path / "p/p.parquet")
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: p, path: p/p.parquet, format: parquet, record_id: id, "
        "fields: {given_name: first, family_name: last}}\n",
    )
    report, canonical, rejected = _load(tmp_path, "p")
    assert (report.rows_loaded, report.rows_rejected) == (2, 0)
    assert canonical["family_name"].to_list() == [None, None]
    issues = _issues(tmp_path, "p")
    assert issues.select("record_id", "field").rows() == [("R1", "family_name"), ("R2", "family_name")]
    assert (
        json.loads(issues["raw"][0]) == {"text": "Smit"} and "where a single value is expected" in issues["reason"][0]
    )


def test_jsonl_values_become_text_in_one_form_and_columns_keep_the_order_first_seen(tmp_path):
    from citizen_view.readers import read_jsonl

    lines = [
        '{"id": "R1", "first": "Jan", "last": "", "n": 7, "x": 1.5, "ok": true, "no": null, "tags": ["a", "é"]}',
        '{"id": "R2", "new": {"deep": {"er": "v"}}, "first": "Ann", "ok": false, "tags": [], "obj": {"k": 1}}',
        '{"id": "R3", "first": {"given": "Piet"}, "last": ["Smit"], "esc": "caf\\u00e9"}',
    ]
    _jsonl_source(tmp_path, lines)
    source = load_sources(tmp_path / "sources.yaml").source("j")
    got = read_jsonl(source, tmp_path / "j/p.jsonl", "p.jsonl")
    assert got.rows.columns == [
        *("id", "first", "last", "n", "x", "ok", "no", "tags", "new.deep.er", "obj.k", "esc"),
        *("_file", "_line", "_issues"),
    ]
    assert got.rows.row(0) == (
        "R1",
        "Jan",
        None,
        "7",
        "1.5",
        "true",
        None,
        '["a", "é"]',
        None,
        None,
        None,
        "p.jsonl",
        1,
        None,
    )
    assert got.rows.row(1)[:10] == ("R2", "Ann", None, None, None, "false", None, "[]", "v", "1")
    # a mapped field holding an object or an array is set aside with its raw JSON; a \u escape is read as its letter
    third = got.rows.row(2, named=True)
    assert (third["first"], third["last"], third["esc"]) == (None, None, "café")
    assert [i["column"] for i in json.loads(third["_issues"])] == ["first", "last"]
