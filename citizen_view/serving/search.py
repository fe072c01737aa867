"""Caseworker search over a served view: by national ID, name + date of birth, or name + address.

Queries are folded exactly as records were at ingest (diacritics, case, particles such as "van der"),
so the search forgives what the linkage forgives: typos in names, swapped day and month, one wrong
digit in a date or an ID. Every query is parameterised; candidates are ranked by a score with the
reasons that made it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from citizen_view import national_id as nid
from citizen_view import standardise as std
from citizen_view.contract import DEFAULT_ID_SCHEMES, OPAQUE_ID

if TYPE_CHECKING:
    import duckdb

DATE_FORMATS = ("%Y-%m-%d", "%d-%m-%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y", "%Y%m%d")
MAX_RESULTS = 20
NUMERIC_SCHEMES = ("nl.bsn", "no.fodselsnummer")


class QueryError(ValueError):
    """A search the service cannot run as given (a 4xx, with the reason and the field it is about)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass
class Candidate:
    citizen_id: str
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NameParts:
    family_key: str | None
    first_key: str | None
    initials: str | None


def parse_date(text: str) -> dt.date:
    """A date as caseworkers type it (ISO, dd-mm-yyyy, dd/mm/yyyy, dd.mm.yyyy, yyyymmdd)."""
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise QueryError(f"date_of_birth {text!r} is not a date (use yyyy-mm-dd or dd-mm-yyyy)", "date_of_birth")


def parse_name(text: str) -> NameParts:
    """Folded family name (particles removed), first name and initials of a typed name, in either order."""
    given, family = std.split_full_name_text(" ".join(text.split()))
    given_folded, family_folded = std.fold(given), std.fold(family)
    if family_folded is None:
        raise QueryError("name must contain at least a family name", "name")
    return NameParts(std.family_key(family_folded), std.first_name_of(given_folded), std.initials_of(given_folded))


def _date_variants(d: dt.date) -> list[dt.date]:
    """The date, its day/month swap, and every date one digit away (a typo) that is a real date."""
    out = {d}
    if d.day <= 12:
        out.add(dt.date(d.year, d.day, d.month))
    text = d.strftime("%Y%m%d")
    for i in range(3, 8):
        for digit in "0123456789":
            candidate = text[:i] + digit + text[i + 1 :]
            try:
                out.add(dt.datetime.strptime(candidate, "%Y%m%d").date())
            except ValueError:
                pass
    return sorted(out)


def _id_variants(value: str) -> list[str]:
    """The ID, its adjacent transpositions and its single-digit substitutions."""
    out = {value}
    for i in range(len(value) - 1):
        out.add(value[:i] + value[i + 1] + value[i] + value[i + 2 :])
    for i in range(len(value)):
        for digit in "0123456789":
            out.add(value[:i] + digit + value[i + 1 :])
    return sorted(out)


def search_national_id(
    con: duckdb.DuckDBPyConnection, value: str, *, country: str | None, sources: list[str]
) -> list[Candidate]:
    """Exact ID first; when there is none, IDs one typo away (flagged as such); only in records of `sources`."""
    scheme = DEFAULT_ID_SCHEMES.get(country or "", OPAQUE_ID)
    compact = re.sub(r"[\s.\-:]", "", value)
    if scheme in NUMERIC_SCHEMES and not re.fullmatch(r"\d{8,11}", compact):
        raise QueryError("national_id must be 8 to 11 digits", "national_id")
    if not re.fullmatch(r"[0-9A-Za-z]{4,20}", compact):
        raise QueryError("national_id must be 4 to 20 letters or digits (separators are ignored)", "national_id")
    if scheme == "nl.bsn" and re.fullmatch(r"\d{8}", compact):
        compact = "0" + compact
    visible = set(sources)
    # One key per probe, the role's sources applied to the few rows found: a second condition in the same
    # scan would make DuckDB read the table instead of its index.
    found = con.execute("SELECT citizen_id, source FROM search_ids WHERE national_id = ?", [compact]).fetchall()
    exact = list(dict.fromkeys(c for c, source in found if source in visible))
    if exact:
        return [Candidate(c, 100.0, ["same national ID"]) for c in exact]
    variants = set(_id_variants(compact))
    keep = (len(compact) - 1) // 2  # an ID one typo away keeps its head or its tail (snapshot.ID_HEAD, ID_TAIL)
    found = con.execute(
        "SELECT citizen_id, national_id, source FROM search_ids WHERE id_head = ? "
        "UNION ALL SELECT citizen_id, national_id, source FROM search_ids WHERE id_tail = ?",
        [compact[:keep], compact[len(compact) - keep :]],
    ).fetchall()
    near = list(dict.fromkeys((c, n) for c, n, source in found if n in variants and source in visible))
    fails = nid.has_checksum(scheme) and not nid.is_valid_value(compact, scheme=scheme)
    note = " (the ID typed fails its checksum)" if fails else ""
    return [Candidate(c, 70.0, [f"national ID one typo away: {found}{note}"]) for c, found in near]


_NAME_SCORE = """
    CASE WHEN family_key = $family THEN 40
         WHEN jaro_winkler_similarity(family_key, $family) >= 0.92 THEN 32
         WHEN list_has_any(string_split(family_key, ' '), string_split($family, ' ')) THEN 24
         WHEN jaro_winkler_similarity(family_key, $family) >= 0.80 THEN 18 ELSE 0 END AS family_score,
    CASE WHEN $first IS NULL AND $initials IS NULL THEN 0
         WHEN first_key = $first THEN 30
         WHEN jaro_winkler_similarity(first_key, $first) >= 0.88 THEN 22
         WHEN initials = $initials THEN 15
         WHEN left(initials, 1) = left($initials, 1) THEN 10 ELSE 0 END AS first_score
"""


def search_name_dob(
    con: duckdb.DuckDBPyConnection, name: str, date_of_birth: str, *, sources: list[str]
) -> list[Candidate]:
    """Name + date of birth: people born on the date (or with day and month swapped) whose name is close,
    and people with the same family name whose birth date is near it (one digit off, same year).

    Index probes on the birth date (`search_keys.dob`) and the family name (`search_names.family_key`),
    materialised before the role's sources and the scores are applied, so DuckDB reads the index, not the table.
    """
    parts = parse_name(name)
    born = parse_date(date_of_birth)
    swapped = dt.date(born.year, born.day, born.month) if born.day <= 12 else born
    params = {"family": parts.family_key, "first": parts.first_key, "initials": parts.initials, "sources": sources}
    by_date = con.execute(
        f"""
        WITH probe AS MATERIALIZED (
            SELECT * FROM search_keys WHERE dob = $born
            UNION ALL SELECT * FROM search_keys WHERE dob = $swapped AND $swapped <> $born
        )
        SELECT citizen_id, family_score, first_score, dob FROM (
            SELECT citizen_id, dob, {_NAME_SCORE} FROM probe WHERE list_contains($sources, source)
        ) WHERE family_score > 0 OR first_score >= 22
        """,
        params | {"born": born, "swapped": swapped},
    ).fetchall()
    by_name = con.execute(
        f"WITH probe AS MATERIALIZED (SELECT * FROM search_names WHERE family_key = $family) "
        f"SELECT citizen_id, family_score, first_score, dob FROM (SELECT citizen_id, dob, {_NAME_SCORE} "
        "FROM probe WHERE list_contains($sources, source)) WHERE first_score > 0",
        params,
    ).fetchall()
    near = set(_date_variants(born))
    best: dict[str, Candidate] = {}
    for citizen_id, family_score, first_score, dob in [*by_date, *by_name]:
        if dob == born:
            date_score = 30
        elif dob == swapped:
            date_score = 24
        elif dob in near:
            date_score = 16
        elif dob is not None and dob.year == born.year:
            date_score = 6
        else:
            continue
        score = float(family_score + first_score + date_score)
        reasons = _name_reasons(family_score, first_score) + [_date_reason(date_score)]
        if citizen_id not in best or best[citizen_id].score < score:
            best[citizen_id] = Candidate(citizen_id, score, [r for r in reasons if r])
    return _ranked(best)


def search_name_address(
    con: duckdb.DuckDBPyConnection,
    name: str,
    *,
    postcode: str | None,
    house_number: str | None,
    street: str | None,
    country: str | None,
    sources: list[str],
) -> list[Candidate]:
    """Name + address: candidates living (or having lived, in some system) at the postcode or street and number."""
    parts = parse_name(name)
    pc = std.normalise_postcode_text(postcode, country=country) if postcode else None
    street_key = std.fold(street) if street else None
    number = house_number.strip() if house_number else None
    if not number or not (pc or street_key):
        raise QueryError("an address search needs house_number and a postcode or street", "house_number")
    rows = con.execute(
        f"""
        SELECT citizen_id, family_score, first_score,
               CASE WHEN postcode = $pc THEN 30 ELSE 26 END AS address_score
        FROM (
            SELECT *, {_NAME_SCORE} FROM (
                SELECT * FROM search_addresses WHERE postcode_key = $pc_key
                UNION ALL SELECT * FROM search_addresses WHERE street_key = $street_key
            ) WHERE list_contains($sources, source)
        )
        WHERE family_score > 0 OR first_score >= 22
        """,
        {
            "family": parts.family_key,
            "first": parts.first_key,
            "initials": parts.initials,
            "pc": pc,
            "pc_key": _address_key(pc, number),
            "street_key": _address_key(street_key, number),
            "sources": sources,
        },
    ).fetchall()
    best: dict[str, Candidate] = {}
    for citizen_id, family_score, first_score, address_score in rows:
        score = float(family_score + first_score + address_score)
        reasons = _name_reasons(family_score, first_score) + [
            "same address" if address_score == 30 else "same street and number"
        ]
        if citizen_id not in best or best[citizen_id].score < score:
            best[citizen_id] = Candidate(citizen_id, score, [r for r in reasons if r])
    return _ranked(best)


def _address_key(place: str | None, number: str) -> str | None:
    """The served view's key of a place and a house number (snapshot.ADDRESS_KEY), None without a place."""
    return f"{place}\x1f{number}" if place else None


def _name_reasons(family_score: int, first_score: int) -> list[str]:
    family = {
        40: "same family name",
        32: "family name nearly the same",
        24: "family names share a word",
        18: "family name similar",
    }.get(family_score)
    first = {
        30: "same first name",
        22: "first name nearly the same",
        15: "same initials",
        10: "same first initial",
    }.get(first_score)
    return [r for r in (family, first) if r]


def _date_reason(date_score: int) -> str:
    return {
        30: "same date of birth",
        24: "date of birth with day and month swapped",
        16: "date of birth one digit off",
        6: "born the same year",
    }.get(date_score, "")


def _ranked(best: dict[str, Candidate]) -> list[Candidate]:
    return sorted(best.values(), key=lambda c: (-c.score, c.citizen_id))[:MAX_RESULTS]
