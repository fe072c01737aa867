"""Official areas: typos and aliases map to the municipality's code, the unmatched are reported and never an
area of their own, and no suppressed municipality cell can be recomputed across levels."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from citizen_view.areas import Method, load_areas, match_areas
from citizen_view.contract import DisclosureConfig, SourcesFile
from citizen_view.disclosure import TOTAL, protect, recoverable_cells
from citizen_view.open_data import TABLES, UNKNOWN, build_table, population_by_area
from citizen_view.quality import rules
from citizen_view.warehouse import connect


def _citizens(con, rows: list[tuple[str, str | None, str | None]]) -> None:
    frame = pl.DataFrame(rows, schema=["citizen_id", "city", "postcode"], orient="row").with_columns(
        pl.lit(None, dtype=pl.Date).alias("date_of_birth"),
        pl.lit(None, dtype=pl.Date).alias("date_of_death"),
        pl.lit("F").alias("sex"),
        pl.lit(1).alias("source_count"),
    )
    con.register("_c", frame)
    con.execute("CREATE OR REPLACE TABLE citizen AS SELECT * FROM _c")
    con.unregister("_c")


def _areas(con) -> dict[str, tuple[str | None, str]]:
    return {
        c: (code, m) for c, code, m in con.execute("SELECT citizen_id, area_code, method FROM citizen_area").fetchall()
    }


def test_the_shipped_lists_are_complete_and_each_municipality_has_its_region():
    nl, no = load_areas("NL"), load_areas("NO")
    assert nl.municipalities.height == 342 and nl.municipalities.get_column("region_code").n_unique() == 12
    assert no.municipalities.height == 357 and no.municipalities.get_column("region_code").n_unique() == 15
    assert nl.municipalities.filter(pl.col("code") == "GM0363").row(0) == (
        "GM0363",
        "Amsterdam",
        "PV27",
        "Noord-Holland",
    )
    assert load_areas("DE") is None  # no list for a country the project does not ship one for


def test_a_typo_and_an_alias_map_to_the_municipality_code(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        _citizens(
            con,
            [
                ("c1", "'s-Gravenhage", "2511AA"),
                ("c2", "Den Haag", None),
                ("c3", "S GRAVENHAGE", None),
                ("c4", "Amsterdm", "1011AB"),
                ("c5", "Tromsø", None),
                ("c6", "Ljouwert", None),
            ],
        )
        report = match_areas(con, load_areas("NL"))
        got = _areas(con)
    assert got["c1"] == ("GM0518", Method.NAME) and got["c3"] == ("GM0518", Method.NAME)
    assert got["c2"] == ("GM0518", Method.ALIAS) and got["c6"] == ("GM0080", Method.ALIAS)  # Frisian name of Leeuwarden
    assert got["c4"] == ("GM0363", Method.FUZZY)
    assert got["c5"][0] is None  # a Norwegian town is no Dutch municipality
    assert report.unmatched == 1 and report.unmatched_values == [("Tromsø", None, 1)]


def test_a_postcode_tells_where_the_city_is_missing(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        _citizens(
            con,
            [(f"c{i}", "Utrecht", "3511AB") for i in range(4)]
            + [("lost", None, "3511AB"), ("nowhere", None, "9999ZZ")],
        )
        match_areas(con, load_areas("NL"))
        got = _areas(con)
    assert got["lost"] == ("GM0344", Method.POSTCODE_LEARNED)
    assert got["nowhere"] == (None, Method.UNMATCHED)


def test_multilingual_official_names_and_a_source_area_code(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        _citizens(con, [("c1", "Hárstták", None), ("c2", "Kárášjohka", None), ("c3", "Bergen", None)])
        con.execute("ALTER TABLE citizen ADD COLUMN area_code VARCHAR")
        con.execute("UPDATE citizen SET area_code = '5001' WHERE citizen_id = 'c3'")  # the source's own code wins
        match_areas(con, load_areas("NO"))
        got = _areas(con)
    assert got["c1"] == ("5503", Method.NAME)  # "Harstad - Hárstták"
    assert got["c2"][0] == "5610"
    assert got["c3"] == ("5001", Method.AREA_CODE)


def test_an_unmatched_city_is_reported_by_the_gate_and_never_published_as_an_area(tmp_path):
    sources = SourcesFile.model_validate({"country": "NL", "sources": [], "base_dir": tmp_path})
    with connect(tmp_path / "w.duckdb") as con:
        _citizens(
            con, [(f"a{i}", "Amsterdam", None) for i in range(40)] + [(f"x{i}", "Atlantis", None) for i in range(12)]
        )
        match_areas(con, load_areas("NL"))
        gate = rules.areas_matched(con, sources.quality)
        table = build_table(con, "population_by_area", sources, reference=dt.date(2026, 1, 1)).table
    assert not gate.passed and gate.figures["unmatched"] == 12 and gate.sample[0]["city"] == "Atlantis"
    assert "Atlantis" not in table.get_column("area_name").to_list()
    unknown = table.filter((pl.col("level") == "unknown") & (pl.col("age_band") == TOTAL) & (pl.col("sex") == TOTAL))
    assert unknown.get_column("area_code").to_list() == ["UNKNOWN"] and unknown.get_column("count").to_list() == [12]
    country = table.filter((pl.col("level") == "country") & (pl.col("age_band") == TOTAL) & (pl.col("sex") == TOTAL))
    assert country.get_column("count").to_list() == [52]  # counted nationally


def test_unknown_sex_and_age_are_counted_in_the_totals_only(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        _citizens(con, [(f"a{i}", "Amsterdam", None) for i in range(60)])
        con.execute("UPDATE citizen SET date_of_birth = DATE '1980-05-01' WHERE citizen_id NOT IN ('a0', 'a1')")
        con.execute("UPDATE citizen SET sex = NULL WHERE citizen_id IN ('a1', 'a2', 'a3')")
        match_areas(con, load_areas("NL"))
        table = population_by_area(con, reference=dt.date(2026, 1, 1), country="NL", country_name="Netherlands")
    amsterdam = {
        (r["age_band"], r["sex"]): r["count"] for r in table.filter(pl.col("area_code") == "GM0363").to_dicts()
    }
    # crossed cells of an unknown would be small everywhere, each taking a large cell down by secondary suppression
    assert amsterdam == {
        ("45-64", "F"): 56,
        ("45-64", TOTAL): 58,
        (UNKNOWN, TOTAL): 2,
        (TOTAL, "F"): 57,
        (TOTAL, UNKNOWN): 3,
        (TOTAL, TOTAL): 60,
    }


@pytest.fixture
def hierarchy_table() -> tuple[pl.DataFrame, dict[str, str]]:
    """Province P with three municipalities (one small), a second province Q, the country N."""
    rows = [("A", 50), ("B", 40), ("C", 4), ("P", 94), ("D", 60), ("E", 45), ("Q", 105), ("N", 199)]
    parents = {"A": "P", "B": "P", "C": "P", "D": "Q", "E": "Q", "P": "N", "Q": "N"}
    return pl.DataFrame(rows, schema=["area_code", "count"], orient="row"), parents


def test_a_suppressed_municipality_cannot_be_recomputed_from_its_province_and_published_siblings(hierarchy_table):
    table, parents = hierarchy_table
    protected = protect(
        table, dims=["area_code"], margins=["area_code"], rules=DisclosureConfig(), hierarchies={"area_code": parents}
    ).table
    hidden = set(protected.filter(pl.col("count").is_null()).get_column("area_code").to_list())
    assert "C" in hidden and len(hidden & {"A", "B"}) == 1  # a sibling hides with it: P - A - B no longer gives C
    assert {"P", "Q", "N"}.isdisjoint(hidden)  # the province is published at its own level
    assert (
        recoverable_cells(
            protected, dims=["area_code"], margins=["area_code"], hierarchies={"area_code": parents}
        ).height
        == 0
    )
    # what the gate catches: only C hidden, so P - A - B = C
    lonely = table.with_columns(
        pl.when(pl.col("area_code") == "C").then(None).otherwise(pl.col("count")).alias("count")
    )
    caught = recoverable_cells(lonely, dims=["area_code"], margins=["area_code"], hierarchies={"area_code": parents})
    assert caught.get_column("area_code").to_list() == ["C"]


def test_the_published_tables_declare_their_area_hierarchy():
    info = TABLES["population_by_area"]
    assert info.area_hierarchy and {"level", "area_code", "area_name", "parent_code"} <= set(info.columns)
    assert TABLES["duplicates_per_source"].hierarchies == {
        "measure": {"citizens": "records", "duplicate_records": "records"}
    }


def test_refreshed_lists_are_read_from_the_official_answers(tmp_path):
    from citizen_view.areas_refresh import netherlands_rows, norway_rows

    kommuner = {
        "codes": [
            {"code": "0301", "name": "Oslo - Oslove"},
            {"code": "5001", "name": "Trondheim - Tråante"},
            {"code": "9999", "name": "Uoppgitt"},
        ]
    }
    fylker = {
        "codes": [
            {"code": "03", "name": "Oslo"},
            {"code": "50", "name": "Trøndelag - Trööndelage"},
            {"code": "99", "name": "Uoppgitt"},
        ]
    }
    assert norway_rows(kommuner, fylker) == [
        {"code": "0301", "name": "Oslo - Oslove", "county_code": "03", "county_name": "Oslo"},
        {"code": "5001", "name": "Trondheim - Tråante", "county_code": "50", "county_name": "Trøndelag - Trööndelage"},
    ]
    with pytest.raises(ValueError, match="no fylke 11"):
        norway_rows({"codes": [{"code": "1101", "name": "Eigersund"}]}, fylker)
    properties = [
        {"ID": 1, "Type": "TopicGroup", "Title": "Gemeenten"},
        {"ID": 2, "ParentID": 1, "Key": "Code_1", "Title": "Code"},
        {"ID": 3, "ParentID": 1, "Key": "Naam_2", "Title": "Naam"},
        {"ID": 4, "Type": "TopicGroup", "Title": "Provincies"},
        {"ID": 5, "ParentID": 4, "Key": "Code_28", "Title": "Code"},
        {"ID": 6, "ParentID": 4, "Key": "Naam_29", "Title": "Naam"},
    ]
    data = [{"Code_1": "GM0363    ", "Naam_2": "Amsterdam ", "Code_28": "PV27  ", "Naam_29": "Noord-Holland  "}]
    assert netherlands_rows(properties, data) == [
        {"code": "GM0363", "name": "Amsterdam", "province_code": "PV27", "province_name": "Noord-Holland"}
    ]
