"""A source column holding street and house number together is declared as `street_and_number` and split at ingest."""

from __future__ import annotations

import polars as pl
import pytest

from citizen_view.contract import load_sources
from citizen_view.ingest import ingest_source
from citizen_view.standardise import split_street_and_number
from citizen_view.warehouse import connect
from tests.conftest import write


@pytest.mark.parametrize(
    ("text", "street", "number"),
    [
        ("Merelweg 40A", "Merelweg", "40A"),  # NL: street number[letter]
        ("Merelweg 40-2", "Merelweg", "40-2"),  # NL: an addition after a dash
        ("Storgata 12 B", "Storgata", "12 B"),  # NO: the letter after a space
        ("Hauptstraße 5a", "Hauptstraße", "5a"),  # DE
        ("Kerkstraat 7bis", "Kerkstraat", "7bis"),
        ("Straße des 17. Juni 5", "Straße des 17. Juni", "5"),  # a number inside the street's name
        ("1e Hugo de Grootstraat 12", "1e Hugo de Grootstraat", "12"),  # an ordinal in the name, the number last
        ("123 Main St", "Main St", "123"),  # US: number street
        ("12 rue de la Paix", "rue de la Paix", "12"),  # FR
        ("  Merelweg   40 ", "Merelweg", "40"),  # whitespace tidied
    ],
)
def test_street_and_number_in_either_order_is_split(text, street, number):
    parts = split_street_and_number(pl.col("v"))
    row = pl.DataFrame({"v": [text]}).select(p.alias(n) for n, p in zip(("street", "number", "unsplit"), parts)).row(0)
    assert row == (street, number, False)


@pytest.mark.parametrize("text", ["Merelweg", "Merelweg 40 huis", "123 Main St 4", "Karl Johans gate 22, 3. etg"])
def test_a_value_without_a_clear_house_number_stays_whole_as_the_street(text):
    parts = split_street_and_number(pl.col("v"))
    row = pl.DataFrame({"v": [text]}).select(p.alias(n) for n, p in zip(("street", "number", "unsplit"), parts)).row(0)
    assert row == (text, None, True)


SOURCES = """
country: NL
sources:
  - name: register
    path: register/*.csv
    format: csv
    record_id: id
    fields:
      full_name: name
      street_and_number: address
      city: city
"""


def test_ingest_splits_the_declared_column_and_records_what_it_cannot_split(tmp_path):
    write(
        tmp_path / "register/r.csv",
        """
        id,name,address,city
        R1,Jan de Vries,Merelweg 40A,Utrecht
        R2,Kari Nordmann,Storgata 12 B,Oslo
        R3,Anna Berg,Merelweg,Ede
        R4,Piet Bakker,,Ede
        """,
    )
    write(tmp_path / "sources.yaml", SOURCES)
    sources = load_sources(tmp_path / "sources.yaml")
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest_source(con, sources, "register")
        rows = con.execute(
            'SELECT source_record_id, street, house_number, street_std, attributes FROM canonical."register" ORDER BY 1'
        ).fetchall()
        issues = con.execute(
            "SELECT record_id, field, raw, reason FROM field_issues WHERE source = 'register'"
        ).fetchall()
    assert report.rows_loaded == 4
    assert [r[:4] for r in rows] == [
        ("R1", "Merelweg", "40A", "merelweg"),
        ("R2", "Storgata", "12 B", "storgata"),
        ("R3", "Merelweg", None, "merelweg"),  # kept whole as the street, nothing lost
        ("R4", None, None, None),  # empty is missing, not unparseable
    ]
    assert all(r[4] is None for r in rows)  # the combined column is mapped, not an unmapped attribute
    assert [i[:3] for i in issues] == [("R3", "street_and_number", "Merelweg")]
    assert "no house number" in issues[0][3]


def test_street_and_number_with_house_number_mapped_too_stops_that_source(tmp_path):
    write(tmp_path / "sources.yaml", SOURCES.replace("      city: city", "      city: city\n      house_number: nr"))
    source = load_sources(tmp_path / "sources.yaml").sources[0]
    assert source.problems() == [
        "field 'street_and_number' is split into street and house_number: map it or ['house_number'], not both"
    ]
