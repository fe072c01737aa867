"""A dense register (5-15 records a person, typos in names and dates): people whose only "name" is a shared
title are not linked, a typo'd birth date is still a near match, and the model says which values it ignored."""

from __future__ import annotations

import json
import random

import duckdb
import polars as pl
import pytest

from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.clusters import IdentityEvidence
from citizen_view.linkage.common_values import shape_reason
from citizen_view.linkage.steps import link_citizens, score_pairs, train_and_store
from citizen_view.standardise import CANONICAL_COLUMNS

FIRST = [
    "amara",
    "kenji",
    "lucia",
    "omar",
    "ingrid",
    "tariq",
    "mei",
    "pablo",
    "zanele",
    "dmitri",
    "aroha",
    "farah",
    "emeka",
    "hana",
    "rafael",
    "saoirse",
    "yusuf",
    "leila",
    "tomasz",
    "nia",
    "arjun",
    "keala",
    "bruno",
    "ayesha",
]
FAMILY = [
    "okafor",
    "tanaka",
    "moreau",
    "haddad",
    "lindqvist",
    "mensah",
    "castillo",
    "novak",
    "kowalczyk",
    "reyes",
    "nakamura",
    "petrov",
    "abara",
    "fitzgerald",
    "sandoval",
    "oyelaran",
    "kaur",
    "marchetti",
    "duarte",
    "zhou",
    "ibrahim",
    "kimura",
    "solberg",
    "achebe",
]
CITIES = [
    "port elin",
    "vasso",
    "kiraleh",
    "dunmore",
    "santa ines",
    "orlov",
    "mbeya",
    "tallow",
    "kestrel bay",
    "avonmere",
]
TITLED = 6  # people whose every record holds only the title "sir" / "1st bt." as name


def _typo(rng: random.Random, s: str) -> str:
    k = rng.randrange(len(s) - 1)
    return s[:k] + s[k + 1] + s[k] + s[k + 2 :]


def _register(seed: int = 3) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    people = [(FIRST[k], FAMILY[k]) for k in range(len(FIRST))] + [("sir", "1st bt.")] * TITLED
    for person, (first, family) in enumerate(people):
        dob = f"{rng.randrange(1800, 1900)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        city, sex = rng.choice(CITIES), rng.choice("MF")
        for n in range(rng.randrange(5, 16)):
            text = dob if rng.random() < 0.75 else dob[:5] + str((int(dob[5]) + rng.randrange(1, 9)) % 10) + dob[6:]
            rows.append(
                {
                    "source": "register",
                    "source_record_id": f"{person}-{n}",
                    "source_file": "register.csv",
                    "source_line": len(rows) + 2,
                    "person": person,
                    "first_name_std": _typo(rng, first) if first != "sir" and rng.random() < 0.15 else first,
                    "family_name_std": _typo(rng, family) if family != "1st bt." and rng.random() < 0.15 else family,
                    "date_of_birth_text": text,
                    "city_std": city if rng.random() < 0.7 else rng.choice(CITIES),
                    "sex": sex,
                }
            )
    frame = pl.DataFrame(rows)
    return frame.with_columns(
        pl.col("first_name_std").str.slice(0, 1).alias("initials"),
        pl.col("date_of_birth_text").str.to_date("%Y%m%d", strict=False).alias("date_of_birth"),
    )


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """The register trained, scored and linked in a real warehouse: (connection, register with truth)."""
    register = _register()
    wh = tmp_path_factory.mktemp("dense") / "cv.duckdb"
    con = duckdb.connect(str(wh))
    canonical = pl.DataFrame(schema=CANONICAL_COLUMNS)
    full = pl.concat([canonical, register.drop("person")], how="diagonal_relaxed").select(list(CANONICAL_COLUMNS))
    con.register("_register", full)
    con.execute(
        "CREATE TABLE source_records AS SELECT source || ':' || source_record_id AS record_key, * FROM _register"
    )
    con.unregister("_register")
    layout = WarehouseLayout.of(wh)
    train_and_store(con, layout)
    score_pairs(con, layout)
    link_citizens(con, layout, run_id="dense")
    yield con, register
    con.close()


def test_people_whose_only_name_is_a_shared_title_are_not_linked(dense):
    con, register = dense
    links = con.sql("SELECT source_record_id, citizen_id FROM citizen_source_link").pl()
    joined = links.join(register.select("source_record_id", "person"), on="source_record_id")
    titled = joined.filter(pl.col("person") >= len(FIRST))
    mixed = titled.group_by("citizen_id").agg(pl.col("person").n_unique().alias("people")).filter(pl.col("people") > 1)
    assert mixed.height == 0, mixed
    # and the people with names are still found: most of each person's records share one citizen
    named = joined.filter(pl.col("person") < len(FIRST))
    largest = (
        named.group_by("person", "citizen_id").len().group_by("person").agg(pl.col("len").max()).get_column("len").sum()
    )
    assert largest >= 0.9 * named.height


def test_the_model_lists_the_values_it_treats_as_missing(dense):
    con, _ = dense
    notes = con.execute("SELECT notes FROM linkage_model").fetchall()[0][0]
    ignored = dict(con.execute("SELECT value, field FROM linkage_common_values").fetchall())
    assert ignored.get("1st bt.") == "family_name_std" and ignored.get("sir") == "first_name_std"
    assert not set(ignored) & set(FIRST + FAMILY + CITIES)
    assert any("'1st bt.'" in n for n in notes)
    tf = {
        c["output_column_name"]: any(lvl.get("tf_adjustment_column") for lvl in c["comparison_levels"])
        for c in json.loads(con.execute("SELECT model_json FROM linkage_model").fetchall()[0][0])["comparisons"]
    }
    assert tf["given_name"] and tf["family_name"]


def test_names_and_places_are_term_frequency_adjusted():
    from citizen_view.linkage.model import COMPARISONS, address_comparison

    def tf_columns(comparison) -> set[str]:
        levels = comparison.create_comparison_dict("duckdb")["comparison_levels"]
        return {lvl["tf_adjustment_column"] for lvl in levels if lvl.get("tf_adjustment_column")}

    assert tf_columns(address_comparison(has_street=True, has_postcode=True)) == {"city_std"}
    assert tf_columns(COMPARISONS["birth_place"][1]()) == {"birth_place_std"}
    assert tf_columns(COMPARISONS["given_name"][1]()) == {"first_name_std"}
    assert tf_columns(COMPARISONS["family_name"][1]()) == {"family_name_std"}


def test_common_value_shapes():
    assert shape_reason("-", "city_std") == "no letters" and shape_reason("000", "first_name_std") == "no letters"
    assert shape_reason("xxx", "family_name_std") == "one letter repeated"
    assert (
        shape_reason("3rd", "family_name_std") == "a digit in a name"
        and shape_reason("3rd avenue", "street_std") is None
    )
    assert shape_reason("o'neill", "family_name_std") is None and shape_reason("li", "family_name_std") is None


def test_a_typo_in_a_birth_date_that_is_no_date_is_a_near_match():
    """Two records of one person, one with the birth date "1856-86-18" (no date: set aside at ingest) and one
    with 1856-06-18: the text kept for linkage puts the pair in the "one digit off" level of Splink's own
    comparison and of the clustering's contradiction rule, not in "missing"."""
    from citizen_view.canonical import date_text
    from citizen_view.linkage.model import date_of_birth_comparison

    raw = pl.Series(["1856-86-18", "1856-06-18"])
    parsed = raw.str.to_date("%Y-%m-%d", strict=False)
    assert parsed.to_list()[0] is None  # the invalid date stays out of the golden record
    left, right = date_text(raw, parsed, "%Y-%m-%d").to_list()
    assert (left, right) == ("18568618", "18560618")
    comparison = date_of_birth_comparison().create_comparison_dict("duckdb")
    assert _splink_level(comparison, left, right) == "date of birth one digit off"
    weights = {
        "same date of birth": 8.0,
        "day and month swapped": 5.0,
        "date of birth one digit off": 4.0,
        "same year of birth": 0.5,
        "different": -6.0,
    }
    for level in comparison["comparison_levels"]:
        if level.get("label_for_charts") in weights:
            level["m_probability"], level["u_probability"] = 2 ** weights[level["label_for_charts"]] / 64, 1 / 64
    evidence = IdentityEvidence.from_model({"comparisons": [comparison]})
    assert evidence.dob_weight(left, right) == pytest.approx(4.0)


def _splink_level(comparison: dict, left: str, right: str) -> str:
    """The label of the first level of a date-of-birth comparison whose SQL (Splink's own) two birth-date texts meet."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE p AS SELECT ?::VARCHAR AS dob_l, ?::VARCHAR AS dob_r, NULL::VARCHAR AS dob_swapped_l, "
        "NULL::VARCHAR AS dob_swapped_r",
        [left, right],
    )
    for level in comparison["comparison_levels"]:
        if con.execute(f"SELECT count(*) FROM p WHERE {level['sql_condition']}").fetchall()[0][0]:
            return level.get("label_for_charts", "")
    return "none"
