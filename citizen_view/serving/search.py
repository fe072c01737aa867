"""Caseworker search over a served view: by national ID, name + date of birth, or name + address.

Queries are folded exactly as records were at ingest (diacritics, case, particles such as "van der"),
so the search forgives what the linkage forgives: typos in names, swapped day and month, one wrong
digit in a date or an ID. Every query is parameterised; candidates are ranked by a score with the
reasons that made it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jellyfish import jaro_winkler_similarity

from citizen_view import national_id as nid
from citizen_view import standardise as std
from citizen_view.contract import DEFAULT_ID_SCHEMES, OPAQUE_ID
from citizen_view.serving.id_index import ACCEPTED_ID, IdIndex

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
                out.add(dt.date(int(candidate[:4]), int(candidate[4:6]), int(candidate[6:])))
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
    con: duckdb.DuckDBPyConnection, value: str, *, country: str | None, sources: list[str], ids: IdIndex | None = None
) -> list[Candidate]:
    """Exact ID first; when there is none, IDs one typo away (flagged as such); only in records of `sources`. The
    exact ID is looked up in `ids` when given (the view's IDs in memory), else by an index probe of the view."""
    scheme = DEFAULT_ID_SCHEMES.get(country or "", OPAQUE_ID)
    compact = re.sub(r"[\s.\-:]", "", value)
    if scheme in NUMERIC_SCHEMES and not re.fullmatch(r"\d{8,11}", compact):
        raise QueryError("national_id must be 8 to 11 digits", "national_id")
    if not ACCEPTED_ID.fullmatch(compact):
        raise QueryError("national_id must be 4 to 20 letters or digits (separators are ignored)", "national_id")
    if scheme == "nl.bsn" and re.fullmatch(r"\d{8}", compact):
        compact = "0" + compact
    visible = set(sources)
    # One key per probe, the role's sources applied to the few rows found: a second condition in the same
    # scan would make DuckDB read the table instead of its index.
    found = ids.rows(compact) if ids is not None else None
    if found is None:  # no IDs in memory, or not this form of ID (see id_index.IdIndex.read)
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


def _family_score(key: str, family: str) -> int:
    """How close a record's folded family name is to the one typed (40 same ... 0 not close)."""
    if key == family:
        return 40
    similarity = jaro_winkler_similarity(key, family)
    if similarity >= 0.92:
        return 32
    if set(key.split(" ")) & set(family.split(" ")):
        return 24
    return 18 if similarity >= 0.80 else 0


def _first_score(first_key: str | None, initials: str | None, parts: NameParts) -> int:
    """How close a record's first name (or its initials) is to the one typed (30 same ... 0 none typed or not close)."""
    if parts.first_key is None and parts.initials is None:
        return 0
    if first_key is not None and parts.first_key is not None:
        if first_key == parts.first_key:
            return 30
        if jaro_winkler_similarity(first_key, parts.first_key) >= 0.88:
            return 22
    if initials is not None and parts.initials is not None:
        if initials == parts.initials:
            return 15
        if initials[:1] == parts.initials[:1]:
            return 10
    return 0


def people_keys(family_key: str, born: dt.date, swapped: dt.date) -> list[str]:
    """The served view's `search_people` keys a name + birth date search probes (snapshot.PEOPLE_KEYS)."""
    dates = [born] if swapped == born else [born, swapped]
    return [f"d\x1f{d.isoformat()}" for d in dates] + [
        f"y\x1f{family_key}\x1f{born.year:04d}",
        f"m\x1f{family_key}\x1f{born.month:02d}-{born.day:02d}",
    ]


def _date_score(dob: dt.date, born: dt.date, swapped: dt.date, near: set[dt.date]) -> int:
    if dob == born:
        return 30
    if dob == swapped:
        return 24
    if dob in near:
        return 16
    return 6 if dob.year == born.year else 0


def search_name_dob(
    con: duckdb.DuckDBPyConnection, name: str, date_of_birth: str, *, sources: list[str]
) -> list[Candidate]:
    """Name + date of birth: people born on the date (or with day and month swapped) whose name is close,
    and people with the same family name whose birth date is near it (one digit off, same year).

    Index probes of `search_people` (each key's people as one JSON text): the birth date and its swap, and the family
    name with the year or with the day and month of birth (a date one digit off keeps one of them); the role's
    sources, the dates and the scores are applied in memory to the few people found.
    """
    parts = parse_name(name)
    born = parse_date(date_of_birth)
    swapped = dt.date(born.year, born.day, born.month) if born.day <= 12 else born
    keys = people_keys(parts.family_key or "", born, swapped)
    found = con.execute(
        " UNION ALL ".join("SELECT key, people FROM search_people WHERE key = ?" for _ in keys), keys
    ).fetchall()
    visible = set(sources)
    near = set(_date_variants(born))
    best: dict[str, Candidate] = {}
    for key, people in found:
        by_name = not key.startswith("d")
        for p in json.loads(people):
            date_score = _date_score(dt.date.fromisoformat(p["d"]), born, swapped, near) if p["s"] in visible else 0
            if not date_score:
                continue
            first_score = _first_score(p["g"], p["i"], parts)
            if by_name:
                if first_score == 0:
                    continue  # the same family name (the key): some first name must match too
                family_score = 40
            else:
                family_score = _family_score(p["f"], parts.family_key or "")
                if family_score == 0 and first_score < 22:
                    continue  # born that day, but a name not close enough
            score = family_score + first_score + date_score
            _keep_best(best, p["c"], score, family_score, first_score, _date_reason(date_score))
    return _ranked(best)


def _keep_best(
    best: dict[str, Candidate], citizen_id: str, score: int, family_score: int, first_score: int, reason: str
) -> None:
    if citizen_id not in best or best[citizen_id].score < score:
        reasons = [r for r in [*_name_reasons(family_score, first_score), reason] if r]
        best[citizen_id] = Candidate(citizen_id, float(score), reasons)


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
        "SELECT citizen_id, source, family_key, first_key, initials, postcode FROM search_addresses "
        "WHERE postcode_key = $pc_key UNION ALL SELECT citizen_id, source, family_key, first_key, initials, postcode "
        "FROM search_addresses WHERE street_key = $street_key",
        {"pc_key": _address_key(pc, number), "street_key": _address_key(street_key, number)},
    ).fetchall()
    visible = set(sources)
    best: dict[str, Candidate] = {}
    for citizen_id, source, family_key, first_key, initials, at_postcode in rows:
        if source not in visible:
            continue
        family_score = _family_score(family_key, parts.family_key or "")
        first_score = _first_score(first_key, initials, parts)
        if family_score == 0 and first_score < 22:
            continue
        same = pc is not None and at_postcode == pc
        address_score = 30 if same else 26
        reason = "same address" if same else "same street and number"
        _keep_best(best, citizen_id, family_score + first_score + address_score, family_score, first_score, reason)
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
