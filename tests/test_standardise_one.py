"""One value at a time (a caseworker's query, an online record) is standardised exactly as ingest's frames are."""

from __future__ import annotations

import random

import polars as pl
import pytest

from citizen_view import standardise as std
from citizen_view.serving.search import QueryError, parse_name

NAMES = [
    "Jan de Vries",
    "DE VRIES, Jan",
    "Berg, Jan Pieter van der",
    "Anna Jansen-de Vries",
    "J. P. van den Berg",
    "Ola Nordmann",
    "Nordmann, Kari",
    "Ødegård, Åse",
    "Mc Donald",
    "Madonna",
    ", Jan",
    "Vries,",
    "'t Hart, Piet",
    "Piet 't Hart",
    "Hans-Peter von der Müller",
    "  Jan    de   Vries  ",
    "María José García-López",
]


def _random_names(n: int) -> list[str]:
    rng = random.Random(5)
    words = ["jan", "De", "van", "der", "Vries", "ANNA", "'t", "müller", "O'Neil", "-", ",", "j.", "Ødegård", "x"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 5))) for _ in range(n)]


def test_one_name_splits_as_the_frame_does():
    names = NAMES + _random_names(400)
    given, family = std.split_full_name(pl.Series("n", names))
    assert [std.split_full_name_text(n) for n in names] == list(zip(given, family))


@pytest.mark.parametrize("country", ["NL", "NO", None])
def test_one_postcode_normalises_as_the_frame_does(country):
    values = ["1234 ab", "1234-AB", " 150 ", "0150", "SW1A 1AA", "12", "", "   "]
    frame = pl.DataFrame({"p": values}).select(std.normalise_postcode(pl.col("p"), country=country))
    assert [std.normalise_postcode_text(v, country=country) for v in values] == frame.to_series().to_list()


def test_a_query_name_folds_particles_and_order():
    assert parse_name("Berg, Jan Pieter van der") == parse_name("Jan Pieter van der Berg")
    parts = parse_name("Jan Pieter van der Berg")
    assert (parts.family_key, parts.first_key, parts.initials) == ("berg", "jan", "jp")
    with pytest.raises(QueryError):
        parse_name(", Jan")


def test_phone_numbers_are_read_by_their_numbering_plan_not_by_dropping_characters():
    import polars as pl

    from citizen_view.standardise import normalise_phone

    cases = {
        "+31 (0)6 12345678": "+31612345678",  # the trunk zero in parentheses is not dialled from abroad
        "+44 (0)20 7946 0958": "+442079460958",
        "06-12345678": "+31612345678",
        "(020) 123 4567": "+31201234567",
        "06.12.34.56.78": "+31612345678",
        "31612345678.0": None,  # a number written as a decimal: one digit too many, no valid number
        "06 1234": None,  # too short to be a Dutch number
        "+\uff13\uff11612345678": "+31612345678",  # fullwidth digits, as phonenumbers reads them
        "+31 (06) 12345678": "+31612345678",  # the trunk zero in other spellings
        "+31-0-612345678": "+31612345678",
        "0031 0612345678": "+31612345678",
        "+39 06 6982 1234": "+390669821234",  # Italy's numbers keep their 0 after the country code
    }
    got = normalise_phone(pl.DataFrame({"p": list(cases)}), "p", country="NL").to_list()
    assert dict(zip(cases, got, strict=True)) == cases
