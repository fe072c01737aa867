"""The CSV reader's bulk reading (lines split by polars, or by one csv reader per run) gives exactly what reading every
line on its own gives, on files full of the faults the one-at-a-time reading is there for."""

from __future__ import annotations

import random

import pytest
from polars.testing import assert_frame_equal

from citizen_view.contract import load_sources
from citizen_view.readers.delimited import _plain_lines, read_csv
from citizen_view.readers.text import split_lines
from tests.test_ingest import _csv_source

# Lines of a three-field record (id, name, city), each a kind of fault or not; {i} numbers the record.
KINDS = [
    "R{i};Name {i};Town",  # bare
    "R{i};;Town",  # an empty field
    'R{i};"Jan, de; Vries";Ede',  # quotes around a delimiter
    'R{i};"Jan ""JJ"" Vries";Ede',  # doubled quotes
    'R{i};"Anna\nJansen";Ede',  # a value over two lines
    'R{i};"Anna\nX;"y";Z\nJansen";Ede',  # paired quotes on a line inside an open one
    'R{i};"Anna\nR{i}b;"q";Zz";Ede',  # a line with paired quotes that closes the value of the line before
    'R{i};"Jansen;Town',  # an opening quote that never closes
    "R{i};a;b;c",  # a field too many
    "R{i};a",  # a field too few
    "",  # blank
    "   ",  # blank with spaces
    " ; ; ",  # only spaces and delimiters
    "R{i};" + "x" * 300 + ";Ede",  # a field over max_field_bytes
    'R{i};Ja"n;Ede',  # a quote inside an unquoted value
    'R{i};Ja"n"s;Ede',  # two quotes inside an unquoted value
    'R{i};"Jan"x;Ede',  # a character after a closing quote
    'R{i};Ja"n;"Ede',  # an even number of quotes, the last of them left open
    "R{i};Na\x00me;Ede",  # a NUL byte
    "R{i};Na\udcffme;Ede",  # a byte UTF-8 cannot decode (written back as that byte)
    "R{i};Zoë;Ålesund",  # not ASCII, decodable
]


def _messy(seed: int, *, records: int = 3000, crlf: bool = False) -> bytes:
    rng = random.Random(seed)
    weights = [40, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]
    lines = ["id;name;city"] + [rng.choices(KINDS, weights)[0].format(i=i) for i in range(records)]
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    return text.encode("utf-8", errors="surrogateescape")


def _source(tmp_path, body: bytes, options: str = "{delimiter: ';', max_field_bytes: 200, max_record_lines: 3}"):
    _csv_source(tmp_path, body, options=options)
    return load_sources(tmp_path / "sources.yaml").source("t"), tmp_path / "t/t.csv"


def _same(source, path) -> tuple[int, int]:
    bulk, alone = read_csv(source, path, "t.csv"), read_csv(source, path, "t.csv", in_bulk=False)
    assert_frame_equal(bulk.rows, alone.rows)
    assert bulk.rejects == alone.rejects
    assert bulk.records == alone.records
    return bulk.rows.height, len(bulk.rejects)


@pytest.mark.parametrize(("seed", "crlf"), [(1, False), (2, False), (3, True), (4, False), (5, True)])
def test_bulk_reading_equals_reading_each_line_alone(tmp_path, seed, crlf):
    source, path = _source(tmp_path, _messy(seed, crlf=crlf))
    loaded, rejected = _same(source, path)
    assert loaded > 2000 and rejected > 50  # the file has both, so both paths were compared on both
    # the bulk reading was used: most lines are split in bulk or read by a csv reader per run
    lines = split_lines(path.read_bytes(), "utf-8")
    plain = _plain_lines(lines.text, 1, lines.bad, ";", '"', 3, 50)
    assert plain.bare.sum() > 1500 and len(plain.paired_at) > 100


@pytest.mark.parametrize(
    ("options", "delimiter"),
    [
        ("{delimiter: ',', max_field_bytes: 200}", ","),  # delimiters inside the quoted values
        ("{delimiter: '\t', max_field_bytes: 200}", "\t"),  # a blank delimiter: every line read alone
        ("{delimiter: ';', quotechar: '', max_field_bytes: 200}", ";"),  # no quoting
    ],
)
def test_bulk_reading_equals_reading_each_line_alone_with_other_options(tmp_path, options, delimiter):
    body = _messy(7).decode("utf-8", errors="surrogateescape").replace(";", delimiter)
    source, path = _source(tmp_path, body.encode("utf-8", errors="surrogateescape"), options)
    _same(source, path)


def test_a_line_with_paired_quotes_inside_a_value_over_lines_stays_in_its_record(tmp_path):
    # Line 3 closes the id opened on line 2, and on its own it is a record of three fields with four quotes.
    body = b'id;name;city\n"R1\nx";"A;b";c"\nR3;Els;Ede\n'
    source, path = _source(tmp_path, body)
    lines = split_lines(body, "utf-8")
    assert 2 in _plain_lines(lines.text, 1, lines.bad, ";", '"', 3, 50).paired_at  # read alone, it would be one
    got = read_csv(source, path, "t.csv")
    assert got.rows["id"].to_list() == ["R1\nx", "R3"] and got.rows["_line"].to_list() == [2, 4]
    assert got.rows["name"][0] == "A;b" and not got.rejects
    _same(source, path)


def test_a_record_over_two_lines_with_paired_quotes_is_not_taken_for_a_record_of_one(tmp_path):
    # Each line has two quotes; the first leaves its last value open and the second closes it: one record, two lines.
    body = b'id;name;city\nJa"n;"Ede\nx";y"\nR3;Els;Ede\n'
    source, path = _source(tmp_path, body)
    got = read_csv(source, path, "t.csv")
    assert got.rows["name"].to_list() == ["Ede\nx", "Els"] and got.rows["_line"].to_list() == [2, 4]
    assert not got.rejects
    _same(source, path)


# Characters that make CSV hard, for files of random lines (fixed seeds: the same files every run).
HARD = ['"', ";", '"', ";", "x", "\n", "a", "Z", "1", " ", ",", '""', "\r\n", "\r", "\x00", "é", "\t", "\u2028", "'"]


@pytest.mark.parametrize("options", ["{delimiter: ';', max_record_lines: 3, max_field_bytes: 40}", "{header: false}"])
def test_bulk_reading_equals_reading_each_line_alone_on_random_lines(tmp_path, options):
    for seed in range(150):
        rng = random.Random(seed)
        lines = ["id;name;city"] + [
            f"R{i};N{i};T" if rng.random() < 0.5 else "".join(rng.choice(HARD) for _ in range(rng.randint(0, 12)))
            for i in range(rng.randint(1, 40))
        ]
        body = ("\n".join(lines) + rng.choice(["\n", "", "\n\n"])).encode("utf-8") + (
            b"\xff" if seed % 20 == 0 else b""
        )
        source, path = _source(
            tmp_path, body, options.replace("{", "{delimiter: ';', ", 1) if "header" in options else options
        )
        _same(source, path)
