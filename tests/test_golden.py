"""The golden record's survivorship in Polars (golden_frame, what an update rebuilds its citizens with) picks what
the SQL (golden_select, the full run's) picks, where each of its tie-breakers decides."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import polars as pl

from citizen_view.linkage.golden import COLUMNS_READ, golden_frame, golden_select

RANKS = [
    (g, s, r)
    for g in (
        "name",
        "date_of_birth",
        "date_of_death",
        "sex",
        "national_id",
        "address",
        "birth_place",
        "email",
        "phone",
    )
    for r, s in enumerate(("register", "tax", "permits"))
]


def _record(citizen: str, source: str, rid: str, **values) -> dict:
    row = dict.fromkeys(sorted(COLUMNS_READ))
    return (
        row
        | {"citizen_id": citizen, "source": source, "source_record_id": rid, "record_key": f"{source}:{rid}"}
        | values
    )


def test_the_polars_survivorship_picks_what_the_sql_picks_where_each_tie_breaker_decides():
    early, late = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 6, 1, tzinfo=timezone.utc)
    name = {"family_name": "Berg", "given_name_std": "anna", "family_name_std": "berg"}
    records = [
        # c1: the same source and extract time for all: the value most records agree on wins, then source, then id
        _record("c1", "tax", "t2", extracted_at=early, **name, given_name="Anna", email="a@x.org", phone="1"),
        _record(
            "c1",
            "tax",
            "t1",
            extracted_at=early,
            **(name | {"given_name_std": "anne"}),
            given_name="Anne",
            email="b@x.org",
        ),
        _record("c1", "tax", "t3", extracted_at=early, **name, given_name="Anna", phone="2"),
        # c2: rank first (register before tax), then the newest extract; a record without a time comes last
        _record("c2", "tax", "t9", extracted_at=late, family_name="Dal", sex="F", postcode="1000AA", street="Weg"),
        _record("c2", "register", "r1", extracted_at=None, family_name="Dahl", sex="M", birth_place="Oslo"),
        _record("c2", "permits", "p1", extracted_at=late, postcode="2000BB", house_number="3", street="Laan"),
        _record("c2", "permits", "p2", extracted_at=early, postcode="3000CC", birth_place="Bergen"),
        # c3: a valid national ID before an invalid one before an unchecked one, whatever the rank
        _record("c3", "permits", "p7", extracted_at=early, national_id="111", national_id_valid=True),
        _record("c3", "register", "r7", extracted_at=late, national_id="222", national_id_valid=False),
        _record("c3", "tax", "t7", extracted_at=late, national_id="333", national_id_valid=None),
        # c5: one source: the newest extract wins, whatever the records agree on
        _record("c5", "permits", "p3", extracted_at=early, email="old@x.org"),
        _record("c5", "permits", "p4", extracted_at=early, email="old@x.org"),
        _record("c5", "permits", "p5", extracted_at=late, email="new@x.org"),
        # c4: nothing any group takes part with
        _record("c4", "tax", "t0", extracted_at=early),
    ]
    linked = pl.DataFrame(records, infer_schema_length=None).with_columns(
        pl.col("national_id_valid").cast(pl.Boolean), pl.col("date_of_birth", "date_of_death").cast(pl.Date)
    )
    con = duckdb.connect()
    con.register("_linked", linked)
    con.register("_ranks", pl.DataFrame(RANKS, schema=["grp", "source", "rank"], orient="row"))
    by_sql = con.sql(f"SELECT * FROM ({golden_select('_linked', '_ranks')}) ORDER BY citizen_id").pl()
    by_frame = golden_frame(linked, RANKS).sort("citizen_id").select(by_sql.columns)
    assert by_frame.to_dicts() == by_sql.to_dicts()
    picked = {r["citizen_id"]: r for r in by_frame.to_dicts()}
    assert (picked["c1"]["given_name"], picked["c1"]["name_from"]) == ("Anna", "tax:t2")  # agreement, then the id
    assert picked["c2"]["name_from"] == "register:r1" and picked["c2"]["address_from"] == "tax:t9"
    assert picked["c3"]["national_id"] == "111" and picked["c4"]["name_from"] is None
    assert picked["c5"]["email"] == "new@x.org"


def test_a_source_ranked_twice_for_a_group_takes_its_best_rank_as_in_the_sql():
    # sources.yaml may list a source twice (`ranking: [tax, register, tax]`): its first place counts
    ranks = [("email", "tax", 0), ("email", "register", 1), ("email", "tax", 2)]
    linked = pl.DataFrame(
        [
            _record("c1", "tax", "t1", email="from-tax"),
            _record("c1", "register", "r1", email="from-register"),
        ],
        infer_schema_length=None,
    ).with_columns(pl.col("national_id_valid").cast(pl.Boolean), pl.col("date_of_birth", "date_of_death").cast(pl.Date))
    con = duckdb.connect()
    con.register("_linked", linked)
    con.register("_ranks", pl.DataFrame(ranks, schema=["grp", "source", "rank"], orient="row"))
    by_sql = con.sql(f"SELECT * FROM ({golden_select('_linked', '_ranks')})").pl()
    by_frame = golden_frame(linked, ranks).select(by_sql.columns)
    assert by_sql["email"].to_list() == by_frame["email"].to_list() == ["from-tax"]


STAND_INS = {"first_name_std": frozenset({"xxx"}), "family_name_std": frozenset({"unknown"})}
STAND_INS |= {"street_std": frozenset({"-"}), "city_std": frozenset({"-"}), "birth_place_std": frozenset({"?"})}


def _stand_in_records() -> pl.DataFrame:
    berg = {"family_name": "Berg", "family_name_std": "berg", "given_name": "Anna", "first_name_std": "anna"}
    unknown = {"family_name": "UNKNOWN", "family_name_std": "unknown", "given_name": "Anna", "first_name_std": "anna"}
    records = [
        # c1: the top-ranked register holds stand-ins for the name, the street and the birth place; tax and permits
        # hold the real values
        _record("c1", "register", "r1", **unknown, street="-", street_std="-", postcode="1000AA", birth_place="?"),
        _record("c1", "register", "r1", **{}) | {"source_record_id": "r2", "record_key": "register:r2"},
        _record("c1", "tax", "t1", **berg, street="Weg", street_std="weg", postcode="1000AA", birth_place_std="oslo")
        | {"birth_place": None},
        _record("c1", "permits", "p1", birth_place="Oslo", birth_place_std="oslo"),
        # c2: a stand-in in the given name alone makes the whole name a stand-in (the parts come from one record)
        _record(
            "c2", "register", "r3", family_name="Dahl", family_name_std="dahl", given_name="XXX", first_name_std="xxx"
        ),
        _record("c2", "tax", "t3", family_name="Dal", family_name_std="dal", given_name="Per", first_name_std="per"),
        # c3: only stand-ins: the top-ranked one stays, as the sources wrote it
        _record("c3", "register", "r4", **unknown),
        _record("c3", "tax", "t4", **(unknown | {"family_name": "Unknown"})),
    ]
    for r in records:
        r["birth_place_std"] = r["birth_place_std"] or ("?" if r.get("birth_place") == "?" else None)
    return pl.DataFrame(records, infer_schema_length=None).with_columns(
        pl.col("national_id_valid").cast(pl.Boolean), pl.col("date_of_birth", "date_of_death").cast(pl.Date)
    )


def test_a_stand_in_gives_way_to_a_real_value_of_a_lower_ranked_source_in_sql_polars_and_python():
    from citizen_view.linkage.golden import golden_rows

    linked = _stand_in_records()
    con = duckdb.connect()
    con.register("_linked", linked)
    con.register("_ranks", pl.DataFrame(RANKS, schema=["grp", "source", "rank"], orient="row"))
    rows = [(f, v) for f, values in STAND_INS.items() for v in values]
    con.register("_stand_ins", pl.DataFrame(rows, schema=["field", "value"], orient="row"))
    by_sql = con.sql(f"SELECT * FROM ({golden_select('_linked', '_ranks', stand_ins='_stand_ins')}) ORDER BY 1").pl()
    by_frame = golden_frame(linked, RANKS, STAND_INS).sort("citizen_id").select(by_sql.columns)
    by_python = golden_rows(linked.to_dicts(), RANKS, STAND_INS)
    assert by_frame.to_dicts() == by_sql.to_dicts()
    assert [by_python[r["citizen_id"]] | {"sources": r["sources"]} for r in by_sql.to_dicts()] == by_sql.to_dicts()
    picked = {r["citizen_id"]: r for r in by_sql.to_dicts()}
    assert (picked["c1"]["family_name"], picked["c1"]["name_from"]) == ("Berg", "tax:t1")
    assert (picked["c1"]["street"], picked["c1"]["address_from"]) == ("Weg", "tax:t1")
    assert (picked["c1"]["birth_place"], picked["c1"]["birth_place_from"]) == ("Oslo", "permits:p1")
    assert (picked["c2"]["given_name"], picked["c2"]["name_from"]) == ("Per", "tax:t3")
    assert (picked["c3"]["family_name"], picked["c3"]["name_from"]) == ("UNKNOWN", "register:r4")
    # without the list the ranking decides, as before: the register's stand-ins win
    plain = golden_frame(linked, RANKS).sort("citizen_id").to_dicts()
    assert (plain[0]["family_name"], plain[0]["street"], plain[0]["birth_place"]) == ("UNKNOWN", "-", "?")
    assert golden_rows(linked.to_dicts(), RANKS)["c2"]["given_name"] == "XXX"
