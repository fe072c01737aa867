"""Encode one agency's extract at the agency: the same readers and standardisation as a plain source, then
only pseudonyms, CLKs, the record key and attributes that identify nobody leave the building.

The output folder gets `<source>/encoded.parquet` and a `sources.yaml` entry declaring it (`encoded:
true`); encoding several agencies into one folder collects their entries in that one `sources.yaml`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import polars as pl
import yaml

from citizen_view.canonical import Rules
from citizen_view.contract import SourcesFile, safe_yaml
from citizen_view.encoding import schema as S
from citizen_view.encoding.clk import Encoder, bigrams, date_tokens, to_hex, xor_fold
from citizen_view.encoding.pseudonym import pseudonym, purpose_key
from citizen_view.ingest import read_source, standardise_source

ENCODED_FILE = "encoded.parquet"
# What the caseworker profile says about a record of an encoded source (an attribute of every record).
PSEUDONYMOUS = "yes: this agency shares only encodings of names, birth date, address and ID"


class Hardening(StrEnum):
    """Hardening of the CLKs against pattern and frequency attacks, at a cost in accuracy (README)."""

    NONE = "none"
    XOR_FOLD = "xor-fold"  # each filter folded onto half its length
    SALT_YEAR = "salt-year"  # name tokens salted with the birth year: one name has a different CLK per year


@dataclass
class EncodeReport:
    source: str
    records: int
    rejected: int
    out_file: Path
    sources_file: Path


def encode_frame(canonical: pl.DataFrame, secret: bytes, *, hardening: Hardening = Hardening.NONE) -> pl.DataFrame:
    """Encoded columns for canonical records (as `standardise_source` makes them), keyed `record_id`."""
    pkey = purpose_key(secret, "pseudonym")
    enc = Encoder(purpose_key(secret, "clk"))

    def clk(field: str, tokens: list[str]) -> str | None:
        if not tokens:
            return None
        bits = enc.encode(S.SCHEMA[field].name, tokens, S.SCHEMA[field].k)
        return to_hex(xor_fold(bits) if hardening == Hardening.XOR_FOLD else bits)

    rows = []
    for r in canonical.iter_rows(named=True):
        first, family, dob = r["first_name_std"], r["family_name_std"], r["date_of_birth_text"]
        salt = (dob or "")[:4] if hardening == Hardening.SALT_YEAR else ""
        address = [*(f"P{t}" for t in bigrams(r["postcode"]) if r["postcode"])] if r["postcode"] else []
        if r["street_std"]:
            address += [f"S{t}" for t in bigrams(r["street_std"])]
        if address and r["house_number"]:
            address.append(f"H{r['house_number']}")
        nid = r["national_id_text"]
        rows.append(
            {
                "record_id": r["source_record_id"],
                S.ENC_NATIONAL_ID: pseudonym(pkey, "national_id", nid) if nid else None,
                S.ENC_GIVEN_NAME: clk(S.ENC_GIVEN_NAME, [salt + t for t in bigrams(first)]) if first else None,
                S.ENC_INITIAL: pseudonym(pkey, "initial", r["initials"][0]) if r["initials"] else None,
                S.ENC_FAMILY_NAME: clk(S.ENC_FAMILY_NAME, [salt + t for t in bigrams(family)]) if family else None,
                S.ENC_DATE_OF_BIRTH: clk(S.ENC_DATE_OF_BIRTH, date_tokens(dob)) if dob and len(dob) == 8 else None,
                S.ENC_ADDRESS: clk(S.ENC_ADDRESS, address),
                S.BLK_DATE_OF_BIRTH: pseudonym(pkey, "date_of_birth", dob) if dob else None,
                S.BLK_YEAR_FAMILY: pseudonym(pkey, "year_family", dob[:4] + family[0]) if dob and family else None,
                S.BLK_NAMES: pseudonym(pkey, "names", f"{first}\x1f{family}") if first and family else None,
                "sex": r["sex"],
                "area_code": r["area_code"],
                "age_band": _age_band(r["date_of_birth"], r["extracted_at"]),
                "pseudonymous": PSEUDONYMOUS,
            }
        )
    schema = {
        "record_id": pl.String,
        **{c: pl.String for c in S.ENCODED_COLUMNS},
        "sex": pl.String,
        "area_code": pl.String,
        "age_band": pl.String,
        "pseudonymous": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def _age_band(born: dt.date | None, at: dt.datetime | None) -> str | None:
    if born is None:
        return None
    ref = (at or dt.datetime.now(dt.UTC)).date()
    age = ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day))
    low = max(0, age // 10 * 10)
    return f"{low}-{low + 9}"


def _with_area_codes(canonical: pl.DataFrame, sources: SourcesFile) -> pl.DataFrame:
    """The official area code from the city name where the source holds no code: the city itself never leaves."""
    from citizen_view.areas import areas_for, with_place_keys

    areas = areas_for(sources)
    if areas is None:
        return canonical
    names = areas.names().select("key", pl.col("code").alias("_code"))
    keyed = with_place_keys(canonical, "city")
    return (
        keyed.join(names, on="key", how="left", maintain_order="left")
        .with_columns(pl.coalesce("area_code", "_code").alias("area_code"))
        .drop("key", "_code")
    )


def encode_source(
    sources: SourcesFile, name: str, secret: bytes, out_dir: Path, *, hardening: Hardening = Hardening.NONE
) -> EncodeReport:
    """Read, standardise and encode one source; write its encodings and its entry in `out_dir/sources.yaml`."""
    source = sources.source(name)
    if source.encoded:
        raise ValueError(f"source {name!r} is already encoded")
    extract = read_source(sources, source)
    rules = Rules.of(source, country=sources.country, quality=sources.quality)
    canonical, rejects, _issues = standardise_source(extract, source, rules=rules)
    frame = encode_frame(_with_area_codes(canonical, sources), secret, hardening=hardening)
    out_dir = Path(out_dir)
    target = out_dir / name / ENCODED_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(target)
    entry = {
        "name": name,
        "description": f"{source.description or name} (encoded at the agency: pseudonyms and Bloom-filter encodings only)",
        "path": f"{name}/{ENCODED_FILE}",
        "format": "parquet",
        "record_id": "record_id",
        "encoded": True,
        "fields": {"sex": "sex", "area_code": "area_code"},
        "attributes": {"age_band": "Age band", "pseudonymous": "Pseudonymous record"},
    }
    sources_file = out_dir / "sources.yaml"
    data = safe_yaml(sources_file.read_text(encoding="utf-8")) if sources_file.exists() else {}
    data = data or {}
    if sources.country and "country" not in data:
        data["country"] = sources.country
    data["sources"] = [s for s in data.get("sources", []) if s.get("name") != name] + [entry]
    sources_file.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return EncodeReport(name, frame.height, len(extract.rejects) + len(rejects), target, sources_file)
