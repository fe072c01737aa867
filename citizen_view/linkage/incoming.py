"""One incoming record standardised as ingest standardises a source's records, without a frame (online resolution).

`canonical.canonical_records` is the reference: tests/test_resolve.py checks that both give the same values. A
value that does not parse or validate is set aside with its reason, as at ingest; the record is still compared
on its other fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from citizen_view import national_id
from citizen_view import standardise as std
from citizen_view.canonical import (
    _EMAIL,
    DEFAULT_DATE_FORMAT,
    MIDNIGHT,
    _format_regex,
    _rearrange,
    date_shaped,
    implausible_date_reason,
    unparsed_date_reason,
)
from citizen_view.contract import CanonicalField as F

TEXT_FIELDS = tuple(f.value for f in F)


def _compact_id(value: str, scheme: str) -> str | None:
    """`national_id.compact` for one value."""
    if scheme == "nl.bsn":
        cleaned = re.sub(r"[\s.\-]", "", value) or None
        return "0" + cleaned if cleaned and re.fullmatch(r"\d{8}", cleaned) else cleaned
    if scheme == "no.fodselsnummer":
        return re.sub(r"[\s:\-]", "", value) or None
    return value.strip() or None


def _phone(raw: str | None, country: str | None) -> str | None:
    """`standardise.normalise_phone` for one value."""
    if raw is None:
        return None
    digits = re.sub(r"[\s\-().]", "", raw)
    if re.fullmatch(r"\+\d{8,15}", digits):
        return digits
    if re.fullmatch(r"00\d{8,15}", digits):
        return "+" + digits[2:]
    national = {"NL": (r"0\d{9}", 1), "NO": (r"\d{8}", 0)}.get(country or "")
    if national is not None and re.fullmatch(national[0], digits):
        import phonenumbers

        return f"+{phonenumbers.country_code_for_region(country)}" + digits[national[1] :]
    return std._parse_phone(raw, country)


def _as_ingest_reads(raw: str) -> dt.date | None:
    """A date Python's strptime refuses but ingest's reader (Polars' strptime, not strict) reads, as it reads it:
    `1964-03-20T00:00`, `+1964-03-20`."""
    import polars as pl

    return pl.Series([raw]).str.strptime(pl.Date, DEFAULT_DATE_FORMAT, strict=False)[0]


def _date(raw: str | None, earliest: dt.date, latest: dt.date) -> tuple[dt.date | None, str | None, list[tuple]]:
    """(date, yyyymmdd text, issues) of a birth date in ISO form, as ingest reads a source's date without a format."""
    if raw is None:
        return None, None, []
    text = re.sub(MIDNIGHT, "", raw) if ":" in raw else raw  # a date written as a timestamp at midnight, as ingest
    try:
        parsed = dt.datetime.strptime(text, DEFAULT_DATE_FORMAT).date()
    except ValueError:
        parsed = _as_ingest_reads(text)
    if parsed is None:
        pattern = _format_regex(DEFAULT_DATE_FORMAT)
        where = "(column date_of_birth)"
        reason = unparsed_date_reason(date_shaped(text, DEFAULT_DATE_FORMAT), DEFAULT_DATE_FORMAT, where)
        text = _rearrange(text, pattern) if pattern else None
        return None, text, [("date_of_birth", raw, reason)]
    if not earliest <= parsed <= latest:
        bound = {"before": earliest} if parsed < earliest else {"after": latest}
        return None, parsed.strftime("%Y%m%d"), [("date_of_birth", raw, implausible_date_reason(**bound))]
    return parsed, parsed.strftime("%Y%m%d"), []


def standardise_one(
    values: Mapping[str, Any], *, country: str | None, id_scheme: str, earliest: dt.date, latest: dt.date
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(canonical record, values set aside with their reasons) for one record of canonical fields (text)."""
    v = {f: std.tidy_text(None if values.get(f) is None else str(values.get(f))) for f in TEXT_FIELDS}
    issues: list[tuple] = []
    born, dob_text, found = _date(v["date_of_birth"], earliest, latest)
    issues += found
    nid_text = _compact_id(v["national_id"], id_scheme) if v["national_id"] else None
    valid = national_id.is_valid_value(nid_text, scheme=id_scheme) if nid_text and id_scheme != "none" else None
    if valid is False:
        issues.append(("national_id", v["national_id"], f"fails the {id_scheme} checksum"))
    sex = std._SEX.get(v["sex"].strip().lower()) if v["sex"] else None
    if v["sex"] and sex is None:
        issues.append(("sex", v["sex"], "not a known way of writing sex (M/F, male/female, ...)"))
    postcode = std.normalise_postcode_text(v["postcode"], country=country)
    pattern = std.POSTCODE_PATTERNS.get(country or "")
    if postcode and pattern and not re.search(pattern, postcode):
        issues.append(("postcode", v["postcode"], f"not a postcode of {country}"))
        postcode = None
    email = v["email"].lower() if v["email"] else None
    if email and not re.search(_EMAIL, email):
        issues.append(("email", v["email"], "not an e-mail address"))
        email = None
    given, family = v["given_name"], v["family_name"]
    if v["full_name"]:
        split_given, split_family = std.split_full_name_text(v["full_name"])
        given, family = given or split_given, family or split_family
    phone = _phone(v["phone"], country)
    if v["phone"] and phone is None:
        where = f" of {country}" if country else " in international form (+...)"
        issues.append(("phone", v["phone"], f"not a phone number{where}"))
    given_std, family_folded = std.fold(given), std.fold(family)
    record = {
        **{f: v[f] for f in ("middle_name", "street", "house_number", "unit", "city", "birth_place")},
        "given_name": given,
        "family_name": family,
        "full_name": v["full_name"] or std.tidy_text(" ".join(x for x in (given, v["middle_name"], family) if x)),
        "area_code": v["area_code"].upper() if v["area_code"] else None,
        "date_of_birth": born,
        "date_of_birth_text": dob_text,
        "national_id": nid_text if valid is not False else None,
        "national_id_valid": valid,
        "national_id_text": nid_text,
        "sex": sex,
        "postcode": postcode,
        "email": email,
        "phone": phone,
        "given_name_std": given_std,
        "first_name_std": std.first_name_of(given_std),
        "initials": std.initials_of(given_std),
        "family_name_std": std.family_key(family_folded),
        "name_prefix": std.name_prefix(family_folded),
        **{f"{f}_std": std.fold(v[f]) for f in ("middle_name", "street", "city", "birth_place")},
    }
    return record, [{"field": f, "raw": raw, "reason": reason} for f, raw, reason in issues]


def linkage_values(record: Mapping[str, Any], masked: Mapping[str, set[str]]) -> dict[str, Any]:
    """The columns the model compares (records.LINKAGE_INPUT_SQL) for one canonical record, with the values linkage
    treats as missing (`masked`: field -> values, common_values.py) set to None; `*_block` keep them."""

    def keep(field: str, value: Any) -> Any:
        return None if value is not None and value in masked.get(field, ()) else value

    first, family = keep("first_name_std", record["first_name_std"]), keep("family_name_std", record["family_name_std"])
    born = record["date_of_birth"]
    return {
        "first_name_std": first,
        "initials": record["initials"] if first is not None or record["first_name_std"] is None else None,
        "family_name_std": family,
        "family_name_words": family.split(" ") if family is not None else None,
        "sex": record["sex"],
        "first_name_block": record["first_name_std"],
        "family_name_block": record["family_name_std"],
        "national_id": record["national_id_text"],
        "street_std": keep("street_std", record["street_std"]),
        "house_number": record["house_number"],
        "postcode": record["postcode"],
        "city_std": keep("city_std", record["city_std"]),
        "birth_place_std": keep("birth_place_std", record["birth_place_std"]),
        "email": record["email"],
        "phone": record["phone"],
        "dob": record["date_of_birth_text"],
        "dob_swapped": f"{born:%Y}{born.day:02d}{born.month:02d}" if born is not None and born.day <= 12 else None,
    }
