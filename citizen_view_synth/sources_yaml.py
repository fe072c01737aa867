"""The `sources.yaml` that describes the five generated extracts in the contract of `citizen_view.contract`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from citizen_view.contract import dump_sources
from citizen_view_synth.register import WIDTHS

RANKING = ["population", "tax", "benefits", "licences", "permits"]
# The tax, permits and licences extracts name their address columns after the canonical fields.
ADDRESS_FIELDS = {"street": "street", "house_number": "house_number", "postcode": "postcode", "city": "city"}


# Below this many persons most municipality x age band x sex cells hold fewer than 10 people: a small sample
# cannot have 90% of its people in published municipality-level cells, so its sources file sets no bound.
SMALL_SAMPLE = 10_000


def sources_document(country: str, *, persons: int = SMALL_SAMPLE) -> dict[str, Any]:
    """The sources file as a plain mapping (country, survivorship, sources)."""
    quality = {"quality": {"min_published_person_share": 0.0}} if persons < SMALL_SAMPLE else {}
    return {
        "country": country,
        **quality,
        "survivorship": {"ranking": list(RANKING)},
        "publication": {"services": ["benefits", "permits", "licences"]},
        "sources": [
            _population_source(),
            _tax_source(),
            _benefits_source(),
            _permits_source(),
            _licences_source(),
        ],
    }


def write_sources_yaml(path: Path, *, country: str, persons: int = SMALL_SAMPLE) -> None:
    """Write `sources.yaml` for the generated extracts."""
    dump_sources(sources_document(country, persons=persons), path)


def _population_source() -> dict[str, Any]:
    """The `population` source."""
    return {
        "name": "population",
        "description": "Population register: fixed-width mainframe export, every person alive and dead.",
        "path": "population/*.dat",
        "format": "fixed_width",
        "options": {"encoding": "latin-1", "widths": dict(WIDTHS)},
        "record_id": "REC_NO",
        "events": {
            "moved_in": {"column": "MOVED_IN", "format": "%Y%m%d"},
            "married": {"column": "MARRIED_ON", "format": "%Y%m%d"},
        },
        "attributes": {
            "MOVED_IN": {"label": "Moved in on", "format": "%Y%m%d"},
            "MARRIED_ON": {"label": "Married on", "format": "%Y%m%d"},
            "PREV_STREET": "Previous street",
            "PREV_HOUSENO": "Previous house number",
            "PREV_POSTCODE": "Previous postcode",
            "PREV_MUNICIPALITY": "Previous municipality",
            "BIRTH_SURNAME": "Family name at birth",
        },
        "required": ["national_id", "family_name", "date_of_birth"],
        "fields": {
            "national_id": "NATID",
            "family_name": "SURNAME",
            "middle_name": "MIDDLENAME",
            "given_name": "FIRSTNAMES",
            "sex": "SEX",
            "date_of_birth": {"column": "BIRTHDATE", "format": "%Y%m%d"},
            "date_of_death": {"column": "DECEASED_ON", "format": "%Y%m%d"},
            "birth_place": "BIRTHPLACE",
            "street": "STREET",
            "house_number": "HOUSENO",
            "unit": "HOUSENO_ADD",
            "postcode": "POSTCODE",
            "city": "MUNICIPALITY",
        },
    }


def _tax_source() -> dict[str, Any]:
    """The `tax` source."""
    return {
        "name": "tax",
        "description": "Tax office: adult taxpayers, name as 'SURNAME, Given names'.",
        "path": "tax/*.csv",
        "format": "csv",
        "options": {"delimiter": ";", "encoding": "latin-1"},
        "record_id": "taxpayer_ref",
        "attributes": {"tax_year": "Tax year", "assessed_income": "Assessed income"},
        "fields": {
            "national_id": "tin",
            "full_name": "name",
            "date_of_birth": {"column": "birth_date", "format": "%d-%m-%Y"},
            **ADDRESS_FIELDS,
        },
    }


def _benefits_source() -> dict[str, Any]:
    """The `benefits` source."""
    return {
        "name": "benefits",
        "description": "Benefits agency: JSON lines, one client with nested name, address and cases.",
        "path": "benefits/*.jsonl",
        "format": "jsonl",
        "options": {},
        "record_id": "client_no",
        "cases": {
            "kind": "benefit",
            "list": "cases",
            "type": "benefit_type",
            "status": "status",
            "start": "start_date",
            "end": "end_date",
            "reference": "case_id",
            "status_map": {"open": ["open"], "closed": ["closed", "rejected"]},
            "date_format": "%Y-%m-%d",
        },
        "fields": {
            "national_id": "bsn",
            "given_name": "name.given",
            "family_name": "name.family",
            "date_of_birth": {"column": "birth_date", "format": "%Y-%m-%d"},
            "sex": "gender",
            "street": "address.street",
            "house_number": "address.number",
            "unit": "address.addition",
            "postcode": "address.postcode",
            "city": "address.city",
            "phone": "phone",
        },
    }


def _permits_source() -> dict[str, Any]:
    """The `permits` source."""
    return {
        "name": "permits",
        "description": "Municipal permits: one row per permit, applicant as one name, no birth date or ID.",
        "path": "permits/*.xlsx",
        "format": "xlsx",
        "options": {"sheet": "permits"},
        "record_id": "permit_no",
        "cases": {
            "kind": "permit",
            "type": "permit_type",
            "status": "status",
            "start": "applied_on",
            "reference": "permit_no",
            "status_map": {"pending": ["pending"], "closed": ["granted", "refused"]},
            "date_format": "%Y-%m-%d",
        },
        "fields": {
            "full_name": "applicant",
            "email": "email",
            "phone": "phone",
            **ADDRESS_FIELDS,
        },
    }


def _licences_source() -> dict[str, Any]:
    """The `licences` source."""
    return {
        "name": "licences",
        "description": "Driving-licence register: initials instead of given names.",
        "path": "licences/*.csv",
        "format": "csv",
        "options": {},
        "record_id": "licence_no",
        "cases": {
            "kind": "driving licence",
            "type": "categories",
            "start": "issued_on",
            "end": "expires_on",
            "reference": "licence_no",
            "date_format": "%Y/%m/%d",
        },
        "attributes": {
            "categories": "Licence categories",
            "issued_on": {"label": "Issued on", "format": "%Y/%m/%d"},
            "expires_on": {"label": "Expires on", "format": "%Y/%m/%d"},
        },
        "fields": {
            "given_name": "initials",
            "family_name": "surname",
            "date_of_birth": {"column": "birth_date", "format": "%Y/%m/%d"},
            "sex": "sex",
            "national_id": "national_id",
            **ADDRESS_FIELDS,
        },
    }
