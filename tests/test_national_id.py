"""The vectorised national-ID checks agree with python-stdnum on valid, mistyped and random numbers."""

from __future__ import annotations

import random

import polars as pl
import pytest
from stdnum.nl import bsn
from stdnum.no import fodselsnummer

from citizen_view import national_id


def _valid_bsn(rng: random.Random) -> str:
    while True:
        body = [rng.randint(0, 9) for _ in range(8)]
        check = sum((9 - i) * d for i, d in enumerate(body)) % 11
        if check < 10:
            number = "".join(map(str, body)) + str(check)
            if bsn.is_valid(number):
                return number


def _valid_fnr(rng: random.Random) -> str:
    while True:
        number = f"{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{rng.randint(0, 99):02d}{rng.randint(0, 999):03d}"
        number += fodselsnummer.calc_check_digit1(number)
        number += fodselsnummer.calc_check_digit2(number)
        if len(number) == 11 and fodselsnummer.is_valid(number):
            return number


def _mutations(rng: random.Random, number: str) -> list[str]:
    i = rng.randrange(len(number) - 1)
    swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
    j = rng.randrange(len(number))
    typo = number[:j] + str((int(number[j]) + rng.randint(1, 9)) % 10) + number[j + 1 :]
    return [number, swapped, typo, number[:-1], number + "0", f"{number[:4]}.{number[4:6]}.{number[6:]}"]


@pytest.mark.parametrize(
    "scheme,make,oracle",
    [("nl.bsn", _valid_bsn, bsn.is_valid), ("no.fodselsnummer", _valid_fnr, fodselsnummer.is_valid)],
)
def test_vectorised_check_matches_stdnum(scheme, make, oracle):
    rng = random.Random(5)
    values = []
    for _ in range(400):
        values += _mutations(rng, make(rng))
    values += ["".join(rng.choice("0123456789") for _ in range(rng.choice([8, 9, 11]))) for _ in range(2000)]
    values += ["", "abc", "000000000", "41017512345", "01019912345", "81017500000"]
    _, valid = national_id.check(pl.Series(values), scheme=scheme)
    got = valid.fill_null(False).to_list()
    expected = [oracle(v) if v else False for v in values]
    mismatches = [(v, g, e) for v, g, e in zip(values, got, expected) if g != e]
    assert not mismatches, mismatches[:10]
    assert sum(expected) > 400  # the sample really has valid numbers in it


def test_any_stdnum_scheme_is_checked_and_an_opaque_one_never():
    from stdnum.us import ssn

    values = ["536-90-4399", "536904399", "000-12-3456", "12345", None]
    compacted, valid = national_id.check(pl.Series(values, dtype=pl.String), scheme="us.ssn")
    assert compacted.to_list() == ["536904399", "536904399", "000123456", "12345", None]
    assert valid.to_list() == [ssn.is_valid(values[0]), ssn.is_valid(values[1]), False, False, None]
    assert valid.to_list()[:2] == [True, True]
    compacted, valid = national_id.check(pl.Series(values, dtype=pl.String), scheme="none")
    assert compacted.to_list() == ["536-90-4399", "536904399", "000-12-3456", "12345", None]
    assert valid.to_list() == [None] * 5  # an opaque identifier is never valid or invalid


def test_digits_of_other_scripts_never_pass_a_checksum():
    # the regex engine's \d matches fullwidth and Arabic-Indic digits, which the checksum would count as 0
    def wide(number: str) -> str:
        return "".join(chr(ord(c) - ord("0") + 0xFF10) for c in number)

    bsn_number, fnr_number = "123456782", "01019010046"
    assert bsn.is_valid(bsn_number) and fodselsnummer.is_valid(fnr_number)
    for scheme, number in (("nl.bsn", bsn_number), ("no.fodselsnummer", fnr_number)):
        # wide digits all cast to nothing: with a last digit 0, the old weighted sum was 0 - 0, a "valid" BSN
        values = [number, wide(number), wide(number[:-1]) + "0", "\u0661" + number[1:]]
        _, valid = national_id.check(pl.Series(values), scheme=scheme)
        assert valid.to_list() == [True, False, False, False], scheme
