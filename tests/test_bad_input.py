"""Bad input found by an adversarial pass: each case is quarantined with a reason or stopped with one clear line."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from citizen_view.contract import ConfigError, SourceError, load_sources
from citizen_view.ingest import ingest_source
from citizen_view.warehouse import connect
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
    assert rejected["raw"][0].count("x") >= len(big) - 1  # the rejected record is kept whole, every line of it


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


def test_a_parquet_duration_column_loads_as_iso_8601_text(tmp_path):
    """Polars casts no duration to text: a Duration column stopped its whole file before."""
    import datetime

    import polars as pl

    (tmp_path / "p").mkdir()
    pl.DataFrame(
        {
            "id": ["R1", "R2", "R3"],
            "first": ["Jan", "Els", "Piet"],
            "waited": [datetime.timedelta(days=1, seconds=5), None, datetime.timedelta(microseconds=-3)],
        }
    ).write_parquet(tmp_path / "p/p.parquet")
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: p, path: p/p.parquet, format: parquet, record_id: id, fields: {given_name: first}}\n",
    )
    report, canonical, rejected = _load(tmp_path, "p")
    assert (report.rows_loaded, report.rows_rejected) == (3, 0) and report.balanced
    kept = [json.loads(a).get("waited") if a else None for a in canonical["attributes"].to_list()]
    assert kept == ["P1DT5S", None, "-PT0.000003S"]


def test_parquet_bytes_load_as_text_uuids_as_uuids_and_other_bytes_visibly(tmp_path):
    """Writers such as Hive and Impala store text as plain binary; a UUID key is 16 bytes of Parquet's UUID type. Both
    were set aside (a mapped field) or kept as Python's repr of bytes (any other column) before."""
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "p").mkdir()
    key = uuid.UUID("12345678-9abc-4def-8123-456789abcdef")
    pq.write_table(
        pa.table(
            {
                "id": pa.array([key.bytes, uuid.UUID(int=1).bytes, uuid.UUID(int=2).bytes], pa.uuid()),
                "first": pa.array(["Jan".encode(), "Bjørn".encode(), None], pa.binary()),
                "last": pa.array([b"Smit", b"M\xfcller", b"Bakker"], pa.binary()),  # latin-1, not UTF-8
                "note": pa.array([b"ok", b"fine", None], pa.binary()),
                "digest": pa.array([b"\x00\xff", b"ab", b"\x10\x20"], pa.binary(2)),
            }
        ),
        tmp_path / "p/p.parquet",
    )
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: p, path: p/p.parquet, format: parquet, record_id: id, "
        "fields: {given_name: first, family_name: last}}\n",
    )
    report, canonical, rejected = _load(tmp_path, "p")
    assert (report.rows_loaded, report.rows_rejected) == (3, 0) and report.balanced
    assert canonical["source_record_id"].to_list() == [str(key), str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]
    assert canonical["given_name"].to_list() == ["Jan", "Bjørn", None]
    assert canonical["family_name"].to_list() == ["Smit", None, "Bakker"]
    issues = _issues(tmp_path, "p")
    second = "00000000-0000-0000-0000-000000000001"
    assert issues.select("record_id", "field", "raw").rows() == [(second, "family_name", "4dfc6c6c6572")]
    assert "not UTF-8 text" in issues["reason"][0]
    attributes = [json.loads(a) for a in canonical["attributes"].to_list()]
    assert [a.get("note") for a in attributes] == ["ok", "fine", None]
    assert [a.get("digest") for a in attributes] == ["00ff", "6162", "1020"]  # one form for the whole column


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


# --- a second adversarial pass over the CSV and JSON-lines readers (stop 47) ------------------------------------------


def _csv_records(body: str, delimiter: str = ";") -> int:
    """How many records Python's csv module reads in `body` after its header: the file's own count."""
    import csv
    import io

    return len(list(csv.reader(io.StringIO(body, newline=""), delimiter=delimiter))) - 1


def test_a_quoted_value_over_two_lines_whose_second_holds_delimiters_is_one_record(tmp_path):
    # its second line holds as many delimiters as a record, but its quote closes the value: no record of its own
    body = 'id;first;last;address\nR1;Ann;Smit;"12 High St;\nFlat 3; Block B; Leeds; UK"\nR2;Bob;Jansen;1 Low Rd\n'
    _csv(tmp_path, body.encode())
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["source_record_id"].to_list() == ["R1", "R2"] and rejected.height == 0
    assert report.rows_in == _csv_records(body) == 2


def test_a_record_over_lines_that_fails_is_rejected_with_every_line_it_spans(tmp_path):
    # a value over two lines in a record of one field too many: its second line is no person of its own
    body = 'id;first;last\nR1;Ann;"Smit\nBlock B; Leeds";2024\nR2;Bob;Jansen\n'
    _csv(tmp_path, body.encode())
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["source_record_id"].to_list() == ["R2"]
    assert rejected["raw"].to_list() == ['R1;Ann;"Smit\nBlock B; Leeds";2024']
    assert rejected["reason"][0] == "wrong field count: 4 fields, expected 3"
    assert report.rows_in == _csv_records(body) == 2 and report.balanced


def test_a_line_with_a_lone_carriage_return_is_rejected_with_a_plain_reason(tmp_path):
    _csv(tmp_path, b'id;first;last\nR1;"Bob"\rJ;Oslo\nR2;Ann;Smit\n')
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["source_record_id"].to_list() == ["R2"]
    assert rejected["reason"].to_list() == [
        "malformed quoting: a line break (\\r or \\n) inside the line, outside a quoted value"
    ]


def test_the_dos_end_of_file_mark_is_no_record(tmp_path):
    _csv(tmp_path, b"id;first;last\r\nR1;Ann;Smit\r\nR2;Bob;Jansen\r\n\x1a")
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["source_record_id"].to_list() == ["R1", "R2"] and rejected.height == 0 and report.rows_in == 2


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_file_with_old_mac_line_ends_is_read_line_by_line(tmp_path, fmt):
    if fmt == "csv":
        _csv(tmp_path, b"id;first;last\rR1;Ann;Smit\rR2;Bob;Jansen\r")
    else:
        _jsonl_source(tmp_path, [])  # the contract; the file is written below
        (tmp_path / "j/p.jsonl").write_bytes(
            b'{"id": "R1", "first": "Ann", "last": "Smit"}\r{"id": "R2", "first": "Bob", "last": "Jansen"}\r'
        )
    report, canonical, rejected = _load(tmp_path, "t" if fmt == "csv" else "j")
    assert canonical["family_name"].to_list() == ["Smit", "Jansen"] and rejected.height == 0
    assert report.rows_in == 2


def test_a_key_given_twice_in_one_json_object_is_set_aside_with_both_values(tmp_path):
    _jsonl_source(
        tmp_path,
        [
            '{"id": "R1", "first": "Ann", "last": "Smit", "last": "Jansen"}',
            '{"id": "R2", "first": "Bob", "name": {"last": "Visser"}, "name.last": "de Vries", "last": "Bos"}',
        ],
    )
    report, canonical, rejected = _load(tmp_path, "j")
    assert canonical["family_name"].to_list() == [None, "Bos"] and rejected.height == 0
    issues = _issues(tmp_path, "j")
    assert issues.select("line", "field", "raw").rows() == [(1, "family_name", '["Smit", "Jansen"]')]
    assert issues["reason"][0] == "the key 'last' appears 2 times in one object (column last)"
    with connect(tmp_path / "w.duckdb", read_only=True) as con:  # an unmapped column's values wait in the raw row
        raw = 'staging."raw_j"' if report.held else 'raw."j"'
        (set_aside,) = con.execute(f"SELECT _issues FROM {raw} WHERE id = 'R2'").fetchall()[0]
    assert json.loads(set_aside) == [
        {
            "column": "name.last",
            "raw": '["Visser", "de Vries"]',
            "reason": "two values for column name.last (a nested key and a dotted one)",
        }
    ]


def test_json_numbers_keep_the_files_text_and_nan_is_refused(tmp_path):
    from citizen_view.readers import read_jsonl

    _jsonl_source(
        tmp_path,
        [
            '{"id": "R1", "first": "A", "last": "B", "n": 12345678901234567.89, "big": 1e400, "l": [2.50, {"k": 1E2}]}',
            '{"id": "R2", "first": "A", "last": "B", "n": NaN}',
            '{"id": "R3", "first": "A", "last": "B", "n": -Infinity}',
        ],
    )
    source = load_sources(tmp_path / "sources.yaml").source("j")
    got = read_jsonl(source, tmp_path / "j/p.jsonl", "p.jsonl")
    assert got.rows.select("n", "big", "l").rows() == [("12345678901234567.89", "1e400", '[2.50, {"k": 1E2}]')]
    assert [(r.line, r.reason) for r in got.rejects] == [
        (2, "invalid JSON: NaN is not a JSON number"),
        (3, "invalid JSON: -Infinity is not a JSON number"),
    ]


def test_a_rejected_json_line_is_kept_whole(tmp_path):
    photo = "A" * 5000
    _jsonl_source(
        tmp_path,
        [
            f'{{"photo": "{photo}", "id": "R7", "first": "Ann", "last": "Smit"}}',
            '{"id": "R8", "first": "A", "last": "B"}',
        ],
        options="{max_field_bytes: 2000}",
    )
    report, canonical, rejected = _load(tmp_path, "j")
    assert canonical["source_record_id"].to_list() == ["R8"]
    assert rejected["raw"][0].endswith('"id": "R7", "first": "Ann", "last": "Smit"}') and photo in rejected["raw"][0]


def test_column_names_ingest_keeps_for_itself_stop_the_file_or_reject_the_row(tmp_path):
    from citizen_view.readers import read_jsonl

    _csv(tmp_path, b"id;first;last;_line\nR1;Ann;Smit;L-77\n")
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con, pytest.raises(SourceError, match=r"\['_line'\] are kept for ingest"):
        ingest_source(con, sources, "t")
    _jsonl_source(
        tmp_path,
        ['{"id": "R1", "first": "Ann", "last": "Smit", "_file": "F-A"}', '{"id": "R2", "first": "A", "last": "B"}'],
    )
    got = read_jsonl(load_sources(tmp_path / "sources.yaml").source("j"), tmp_path / "j/p.jsonl", "p.jsonl")
    assert got.rows["id"].to_list() == ["R2"] and got.rows["_file"].to_list() == ["p.jsonl"]
    assert [(r.line, r.reason) for r in got.rejects] == [
        (1, "column name(s) ['_file'] are kept for ingest's own use (which file and line a row came from)")
    ]


def test_a_document_stores_id_column_is_data_like_any_other(tmp_path):
    # `_id` is no name of ingest's: it reaches the record's attributes, and a rejected row's raw text keeps it
    _jsonl_source(
        tmp_path,
        [
            '{"_id": "66a1", "id": "R1", "first": "Ann", "last": "Smit"}',
            '{"_id": "66a2", "id": "R1", "first": "Bob", "last": "Bos"}',
        ],
    )
    report, canonical, rejected = _load(tmp_path, "j")
    assert json.loads(canonical["attributes"][0])["_id"] == "66a1"
    assert json.loads(rejected["raw"][0])["_id"] == "66a2" and rejected["reason"][0].startswith("duplicate record id")


@pytest.mark.parametrize(
    ("body", "declared", "message"),
    [
        ("id;first;last\nR1;Ann;Smit\n".encode("utf-16"), "utf-8", "starts with UTF-16's byte-order mark"),
        ("id;first;stra\u00dfe\nR1;Ann;Ede\n".encode("latin-1"), "utf-8", r"the header line cannot be read"),
    ],
)
def test_a_file_whose_encoding_is_declared_wrong_stops_with_the_encoding_to_set(tmp_path, body, declared, message):
    _csv(tmp_path, body, options=f"{{delimiter: ';', encoding: {declared}}}")
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con, pytest.raises(SourceError, match=message):
        ingest_source(con, sources, "t")


def test_a_windows_1252_file_labelled_latin_1_sets_aside_the_lines_the_two_read_differently(tmp_path):
    body = "id;first;last\nR1;Sean;O\u2019Brien\nR2;Zo\u00eb;Smit\n".encode("cp1252")
    _csv(tmp_path, body, options="{delimiter: ';', encoding: latin-1}")
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["given_name"].to_list() == ["Zoë"]  # 0xEB is ë in both
    assert rejected.select("line", "raw").rows() == [(2, "R1;Sean;O\x92Brien")]
    assert "set options.encoding: cp1252" in rejected["reason"][0] and report.balanced


def test_a_date_whose_day_and_month_touch_is_read_only_at_full_width(tmp_path):
    # strptime reads "1990111" in %Y%m%d as 1990-11-01, though 1990-01-11 is as likely: set aside, not guessed
    (tmp_path / "t").mkdir()
    (tmp_path / "t/t.csv").write_text("id;last;born\nR1;Smit;19901105\nR2;Mol;1990111\nR3;Bos;5-1-1990\n")
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: t, path: t/t.csv, format: csv, options: {delimiter: ';'}, record_id: id, "
        "fields: {family_name: last, date_of_birth: {column: born, format: '%Y%m%d'}}}\n",
    )
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["date_of_birth"].to_list() == [dt.date(1990, 11, 5), None, None]
    issues = _issues(tmp_path, "t")
    assert issues.select("line", "raw").rows() == [(3, "1990111"), (4, "5-1-1990")]
    assert issues["reason"][0].startswith("impossible: digits in the format %Y%m%d")


def test_a_stray_quote_inside_a_record_of_the_wrong_field_count_still_frees_the_records_it_swallowed(tmp_path):
    _csv(tmp_path, b'id;first;last\nR1;"Jan;Smit\nR2;Piet;Jansen\nR3;Kees";Bos;x\nR4;Ans;Mol\n')
    report, canonical, rejected = _load(tmp_path, "t")
    assert {"R2", "R4"} <= set(canonical["source_record_id"].to_list())
    assert rejected["line"][0] == 2 and rejected["reason"][0].startswith("stray quote") and report.balanced


def test_a_file_with_mac_line_ends_and_line_breaks_inside_values_splits_on_its_own_line_ends(tmp_path):
    # Mac Excel: records end in CR, a line break inside a quoted value is LF
    _csv(tmp_path, b'id;first;last\rR1;"Ann\nMarie";Smit\rR2;Bob;Jansen\r')
    report, canonical, rejected = _load(tmp_path, "t")
    assert canonical["source_record_id"].to_list() == ["R1", "R2"] and rejected.height == 0


def test_a_json_key_escaped_into_a_name_ingest_keeps_is_rejected_too(tmp_path):
    from citizen_view.readers import read_jsonl

    _jsonl_source(
        tmp_path,
        ['{"id": "R1", "first": "Ann", "last": "Smit", "\\u005frow": "x"}', '{"id": "R2", "first": "A", "last": "B"}'],
    )
    got = read_jsonl(load_sources(tmp_path / "sources.yaml").source("j"), tmp_path / "j/p.jsonl", "p.jsonl")
    assert got.rows["id"].to_list() == ["R2"] and [r.line for r in got.rejects] == [1]
    report, canonical, rejected = _load(tmp_path, "j")
    assert canonical["source_record_id"].to_list() == ["R2"] and rejected["line"].to_list() == [1]


def test_a_sources_key_given_twice_is_refused_with_both_lines(tmp_path, capsys):
    # Two `national_id:` mappings: YAML keeps the second without a word, and the first column would not be read.
    path = write(
        tmp_path / "sources.yaml",
        """
        sources:
          - name: tax
            path: t.csv
            format: csv
            record_id: id
            fields:
              national_id: bsn
              given_name: first
              national_id: burgerservicenummer
        """,
    )
    with pytest.raises(
        ConfigError, match=r"line 9: the key 'national_id' is given twice in one mapping \(first on line 7\)"
    ):
        load_sources(path)
    assert cli_main(["run", "--sources", str(path), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert "given twice" in err and "\n" not in err


def test_two_fixed_width_fillers_of_one_name_are_refused(tmp_path):
    path = write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: fw, path: fw.txt, format: fixed_width, options: {widths: {ID: 4, FILLER: 2, NAME: 8, FILLER: 3}}}\n",
    )
    with pytest.raises(ConfigError, match="the key 'FILLER' is given twice"):
        load_sources(path)


def _fixed_width(tmp_path, body: bytes, options: str = "") -> None:
    (tmp_path / "fw").mkdir(exist_ok=True)
    (tmp_path / "fw/p.txt").write_bytes(body)
    write(
        tmp_path / "sources.yaml",
        "sources:\n  - {name: fw, path: fw/p.txt, format: fixed_width, record_id: ID, "
        "options: {widths: {ID: 4, NAME: 10, CITY: 6}" + options + "}, "
        "fields: {full_name: NAME, city: CITY}}\n",
    )


def _fixed_width_rows(tmp_path):
    from citizen_view.readers import read_fixed_width

    source = load_sources(tmp_path / "sources.yaml").source("fw")
    return read_fixed_width(source, tmp_path / "fw/p.txt", "p.txt")


# Written as a C or COBOL program pads: by bytes. "Ødegård" is 7 characters, 9 bytes in UTF-8.
BY_BYTES = "R001Ola Nord  Bergen\nR002".encode() + "Ødegård".encode() + b" " + "Ålesd".encode() + b"\n"


def test_a_fixed_width_file_padded_by_bytes_is_read_with_width_unit_bytes(tmp_path):
    _fixed_width(tmp_path, BY_BYTES)
    got = _fixed_width_rows(tmp_path)
    assert got.rows["ID"].to_list() == ["R001"] and len(got.rejects) == 1
    assert "its 20 bytes in utf-8 are: the widths may count bytes, options.width_unit: bytes" in got.rejects[0].reason
    _fixed_width(tmp_path, BY_BYTES, ", width_unit: bytes")
    got = _fixed_width_rows(tmp_path)
    assert got.rows.select("ID", "NAME", "CITY").rows() == [
        ("R001", "Ola Nord", "Bergen"),
        ("R002", "Ødegård", "Ålesd"),
    ]
    assert got.rejects == []


def test_a_character_split_across_two_fields_by_bytes_is_rejected_with_its_place(tmp_path):
    line = "R003Ola Nordmørkeby".encode()  # 20 bytes of valid UTF-8, but the edge of NAME (byte 14) cuts the "ø"
    _fixed_width(tmp_path, line + b"\n", ", width_unit: bytes")
    got = _fixed_width_rows(tmp_path)
    assert got.rows.height == 0 and [r.reason for r in got.rejects] == [
        "a character split across the edge of field 'NAME' (byte 14)"
    ]


def test_lines_whose_trailing_blanks_a_transfer_trimmed_are_read_with_trimmed_lines(tmp_path):
    body = b"R001Ola Nord  Bergen\nR002Kari\nR003Per Hansen  Oslo  extra\n"
    _fixed_width(tmp_path, body)
    got = _fixed_width_rows(tmp_path)
    assert got.rows["ID"].to_list() == ["R001"]
    assert [r.reason for r in got.rejects] == [
        "wrong field count: record is 8 characters, expected 20 (if a transfer trimmed trailing blanks: "
        "options.trimmed_lines: true)",
        "wrong field count: record is 27 characters, expected 20",
    ]
    _fixed_width(tmp_path, body, ", trimmed_lines: true")
    got = _fixed_width_rows(tmp_path)
    assert got.rows.select("ID", "NAME", "CITY").rows() == [("R001", "Ola Nord", "Bergen"), ("R002", "Kari", None)]
    assert [r.line for r in got.rejects] == [3]  # a longer line is still wrong


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (", width_unit: octets", "options.width_unit: 'octets' is not 'characters' or 'bytes'"),
        (
            ", width_unit: bytes, encoding: utf-16",
            "options.width_unit: bytes needs an encoding whose blank is one byte",
        ),
        (", trimmed_lines: 'yes'", "options.trimmed_lines: 'yes' is not true or false"),
    ],
)
def test_the_fixed_width_options_are_checked(tmp_path, options, problem):
    _fixed_width(tmp_path, b"", options)
    assert any(p.startswith(problem) for p in load_sources(tmp_path / "sources.yaml").sources[0].problems())
