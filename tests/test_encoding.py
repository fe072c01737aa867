"""Linkage without sharing identifiers: encodings at the agency, linkage on encodings, nothing plain leaks.

The all-encoded run encodes each source of the session's generated set with one secret, links them
through the real pipeline, serves the view on loopback and scans every output for the input's plain
names, birth dates and national IDs.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest

from citizen_view.canonical import Rules
from citizen_view.contract import SourceConfig, load_sources
from citizen_view.encoding.clk import Encoder, bigrams, dice, from_hex, to_hex, xor_fold
from citizen_view.encoding.encode import encode_source
from citizen_view.encoding.pseudonym import SecretError, pseudonym, purpose_key, read_secret
from citizen_view.ingest import read_source, standardise_source
from citizen_view.layout import WarehouseLayout

SECRET = b"a-project-secret-of-32-bytes-xyz"
OTHER_SECRET = b"another-secret-of-32-bytes-abcde"


# --- the encodings --------------------------------------------------------------------------------------


def _clk(key: bytes, value: str) -> np.ndarray:
    return Encoder(purpose_key(key, "clk")).encode("family_name", bigrams(value), 20)


def test_dice_is_high_for_a_typo_and_low_for_another_name_or_another_secret():
    assert dice(_clk(SECRET, "jansen"), _clk(SECRET, "jansen")) == 1.0
    assert dice(_clk(SECRET, "jansen"), _clk(SECRET, "janssen")) > 0.8
    assert dice(_clk(SECRET, "jansen"), _clk(SECRET, "bakker")) < 0.4
    assert dice(_clk(SECRET, "jansen"), _clk(OTHER_SECRET, "jansen")) < 0.4
    bits = _clk(SECRET, "jansen")
    assert (from_hex(to_hex(bits)) == bits).all() and xor_fold(bits).size == bits.size // 2


def test_pseudonyms_depend_on_the_secret_and_the_field():
    key = purpose_key(SECRET, "pseudonym")
    assert pseudonym(key, "national_id", "123456782") == pseudonym(key, "national_id", "123456782")
    assert pseudonym(key, "national_id", "123456782") != pseudonym(
        purpose_key(OTHER_SECRET, "pseudonym"), "national_id", "123456782"
    )
    assert pseudonym(key, "national_id", "1990") != pseudonym(key, "date_of_birth", "1990")


def test_a_short_or_missing_secret_is_refused(tmp_path):
    (tmp_path / "k").write_text("short\n")
    with pytest.raises(SecretError, match="at least 16"):
        read_secret(tmp_path / "k")
    with pytest.raises(SecretError, match="cannot read"):
        read_secret(tmp_path / "missing")


def test_an_encoded_source_may_not_map_plain_identifiers():
    source = SourceConfig(
        name="tax", path="x.parquet", format="parquet", encoded=True, fields={"given_name": "g", "sex": "s"}
    )
    assert any("may map only" in p and "given_name" in p for p in source.problems())


# --- plain values of the input, and a scanner for them ----------------------------------------------------


def plain_values(sources_file: Path) -> set[str]:
    """Every given name, family name, birth date (as ISO, yyyymmdd and as written) and national ID of the input."""
    sources = load_sources(sources_file)
    found: set[str] = set()
    for source in sources.sources:
        extract = read_source(sources, source)
        canonical, _, _ = standardise_source(
            extract, source, rules=Rules.of(source, country=sources.country, quality=sources.quality)
        )
        for row in canonical.iter_rows(named=True):
            for col in ("given_name", "family_name", "first_name_std", "family_name_std"):
                if row[col] and len(row[col]) >= 4:  # shorter strings occur by chance in any text
                    found.add(row[col])
            if row["date_of_birth"]:
                found |= {row["date_of_birth"].isoformat(), row["date_of_birth"].strftime("%Y%m%d")}
            for col in ("national_id_text",):
                if row[col]:
                    found.add(row[col])
        for mapping in source.fields.values():
            col = mapping.column
            if col in extract.rows.columns and mapping in (
                source.fields.get("date_of_birth"),
                source.fields.get("national_id"),
            ):
                found |= {v for v in extract.rows.get_column(col).drop_nulls().to_list() if len(v) >= 6}
    return found


def boilerplate() -> str:
    """Text every run writes whatever its input: the demo access file and the libraries' bundled static assets
    (Great Expectations' Data Docs fonts and scripts, Splink's chart libraries). A value found there is no leak."""
    import great_expectations
    import splink

    from citizen_view.serving.access import EXAMPLE_ACCESS_FILE

    folders = [
        Path(great_expectations.__file__).parent / "render",
        Path(splink.__file__).parent / "internals" / "files",
    ]
    return "\n".join([Path(EXAMPLE_ACCESS_FILE).read_text(encoding="utf-8"), *map(files_text, folders)])


def find_plain(text: str, values: set[str]) -> set[str]:
    """The values that occur in `text` as a whole word (not inside a longer word or a hex string)."""
    words = set(re.findall(r"[0-9A-Za-z]+", text))
    hits = set()
    for value in values:
        parts = re.findall(r"[0-9A-Za-z]+", value)
        if parts and all(p in words for p in parts) and (len(parts) == 1 or _whole_word_in(text, value)):
            hits.add(value)
    return hits


def without_citizen_ids(text: str) -> str:
    """`text` without its citizen IDs (CV-XXXX-XXXX-XXXX): random base32, so one group in a few thousand IDs spells some
    four-letter name written in capitals (CV-BLOM-...) by chance, not because the name reached the output."""
    return re.sub(r"CV-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}", " ", text)


def _whole_word_in(text: str, value: str) -> bool:
    """`value` occurs in `text` with no ASCII letter or digit either side (str.find: ~40x a regex search here)."""
    start, n = text.find(value), len(value)
    while start != -1:
        before = text[start - 1] if start else " "
        after = text[start + n] if start + n < len(text) else " "
        if not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum()):
            return True
        start = text.find(value, start + 1)
    return False


def duckdb_text(path: Path) -> str:
    """Every value of every table of a DuckDB file, as text."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        return "\n".join(repr(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall()) for s, t in tables)
    finally:
        con.close()


def files_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file())


def test_a_name_spelled_by_a_random_citizen_id_is_no_leak_but_the_name_beside_it_is():
    text = "citizen CV-BLOM-7QX2-D6PA, records of BLOM"
    assert find_plain(text, {"BLOM"}) == {"BLOM"}
    assert find_plain(without_citizen_ids(text), {"BLOM"}) == {"BLOM"}  # the name itself still counts
    assert find_plain(without_citizen_ids("citizen CV-BLOM-7QX2-D6PA"), {"BLOM"}) == set()


def test_a_value_of_several_words_counts_only_as_whole_words():
    assert _whole_word_in("born 1980-01-02.", "1980-01-02") and _whole_word_in("1980-01-02", "1980-01-02")
    assert not _whole_word_in("x1980-01-02", "1980-01-02") and not _whole_word_in("1980-01-023", "1980-01-02")
    assert _whole_word_in("a1980-01-02 then 1980-01-02", "1980-01-02")  # a later occurrence counts
    assert _whole_word_in("Anna van der Berg", "van der Berg") and not _whole_word_in("svan der Berg", "van der Berg")
    assert _whole_word_in("é1980-01-02", "1980-01-02")  # only ASCII letters and digits join a word, as before


def test_the_scanner_finds_plain_values_in_a_plain_warehouse(generated, tmp_path):
    """The scan below can fail: on a warehouse of one plain source it finds the input's names and IDs."""
    from citizen_view.ingest import ingest_source
    from citizen_view.warehouse import connect

    values = plain_values(generated / "sources.yaml")
    wh = tmp_path / "plain.duckdb"
    with connect(wh) as con:
        ingest_source(con, load_sources(generated / "sources.yaml"), "tax")
    assert len(find_plain(duckdb_text(wh), values)) > 100


# --- the all-encoded run ----------------------------------------------------------------------------------


def encode_all(generated: Path, out: Path, secrets: dict[str, bytes]) -> Path:
    """Each agency encodes its source into the linkage unit's folder; the unit adds its project-wide sections."""
    import yaml

    sources = load_sources(generated / "sources.yaml")
    for name, secret in secrets.items():
        encode_source(sources, name, secret, out)
    project = yaml.safe_load((generated / "sources.yaml").read_text(encoding="utf-8"))
    unit = yaml.safe_load((out / "sources.yaml").read_text(encoding="utf-8"))
    unit.update({k: v for k, v in project.items() if k != "sources"})
    unit["survivorship"]["ranking"] = [n for n in unit["survivorship"]["ranking"] if n in secrets]
    if unit.get("publication", {}).get("services") is not None:  # only the agencies that take part
        unit["publication"]["services"] = [n for n in unit["publication"]["services"] if n in secrets]
    (out / "sources.yaml").write_text(yaml.safe_dump(unit, sort_keys=False), encoding="utf-8")
    return out / "sources.yaml"


@pytest.fixture(scope="module")
def all_encoded(generated, tmp_path_factory):
    from dagster import DagsterInstance

    from citizen_view_app.runner import run_pipeline

    root = tmp_path_factory.mktemp("all-encoded")
    names = [s.name for s in load_sources(generated / "sources.yaml").sources]
    sources_file = encode_all(generated, root / "linkage-unit", {n: SECRET for n in names})
    instance = DagsterInstance.ephemeral()
    wh = root / "wh" / "cv.duckdb"
    outcome = run_pipeline(sources_path=sources_file, warehouse_path=wh, instance=instance)
    return root, wh, outcome, instance


def test_an_all_encoded_run_links_and_publishes(all_encoded, generated):
    from citizen_view.linkage.evaluate import evaluate_links, load_truth

    _, wh, outcome, _ = all_encoded
    assert outcome.success, outcome.failed
    con = duckdb.connect(str(wh), read_only=True)
    links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    con.close()
    figures = evaluate_links(links, load_truth(generated / "truth"))
    assert figures["precision"] > 0.97 and figures["recall"] > 0.85, figures


def test_the_pool_an_update_scores_for_an_encoded_model_holds_the_encodings_it_compares(all_encoded, tmp_path):
    import shutil

    from citizen_view.linkage.records import ENCODED_COLUMNS, INPUT_COLUMNS
    from tests.test_incremental_scoring import narrow_pool_scores_as_the_whole_input

    _, wh, _, _ = all_encoded
    copy = tmp_path / "copy.duckdb"
    shutil.copy(wh, copy)
    con = duckdb.connect(str(copy))
    columns = set(narrow_pool_scores_as_the_whole_input(con))
    con.close()
    assert {"enc_national_id", "blk_names"} <= columns <= set(ENCODED_COLUMNS) | set(INPUT_COLUMNS)


def test_no_plain_identifier_reaches_any_output_of_an_all_encoded_run(all_encoded, generated):
    from dagster._serdes import serialize_value

    from tests.service_fixtures import TOKENS, running_service

    root, wh, outcome, instance = all_encoded
    assert outcome.success, outcome.failed
    layout = WarehouseLayout.of(wh)
    audit = root / "audit" / "access.jsonl"
    with running_service(wh, audit) as service:
        con = duckdb.connect(str(wh), read_only=True)
        citizen = con.execute(
            "SELECT citizen_id FROM citizen_source_link GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        ).fetchall()[0][0]
        con.close()
        headers = {"Authorization": f"Bearer {TOKENS['data_steward']}"}
        got = httpx.get(
            f"{service.url}/api/citizens/{citizen}", params={"purpose": "test"}, headers=headers, timeout=30
        )
        assert got.status_code == 200, got.text
        profile = got.text
        shown = [r.get("attributes", {}) for r in got.json()["records"]]
        assert all(a.get("Pseudonymous record", "").startswith("yes") for a in shown), shown
    every = plain_values(generated / "sources.yaml")
    values = every - find_plain(boilerplate(), every)
    outputs = {
        "warehouse": duckdb_text(wh),
        "served view": "\n".join(duckdb_text(p) for p in sorted(layout.serving_dir.glob("view-*.duckdb"))),
        "served documents files": "\n".join(
            p.read_bytes().decode("utf-8", "replace") for p in sorted(layout.serving_dir.glob("view-*.duckdb.docs"))
        ),
        "profile": profile,
        "audit log": audit.read_text(encoding="utf-8"),
        "dagster event log": "\n".join(serialize_value(e) for e in instance.all_logs(outcome.run_id)),
        "export bundle": files_text(layout.exports_dir()),
        "warehouse folder files": files_text(wh.parent / "cv"),
    }
    assert all(outputs.values()), [k for k, v in outputs.items() if not v]
    leaks = {where: sorted(find_plain(without_citizen_ids(text), values))[:10] for where, text in outputs.items()}
    assert not any(leaks.values()), leaks


def test_agencies_encoding_with_different_secrets_link_nothing_across_and_the_gate_says_so(generated, tmp_path):
    from citizen_view_app.runner import run_pipeline

    sources_file = encode_all(generated, tmp_path / "unit", {"population": SECRET, "tax": OTHER_SECRET})
    wh = tmp_path / "wh" / "cv.duckdb"
    outcome = run_pipeline(sources_path=sources_file, warehouse_path=wh)
    con = duckdb.connect(str(wh), read_only=True)
    across = con.execute(
        "SELECT count(*) FROM (SELECT citizen_id FROM citizen_source_link GROUP BY 1 HAVING count(DISTINCT source) > 1)"
    ).fetchall()[0][0]
    con.close()
    assert across == 0
    assert not outcome.success
    gate = outcome.checks["citizen:cross_source_share"]
    assert gate["passed"] is False and "same secret" in str(gate["metadata"]), gate


# --- the frequency attack ---------------------------------------------------------------------------------


def _people(names: dict[str, int]):
    import datetime as dt
    import random

    import polars as pl

    rng = random.Random(3)
    rows = []
    for name, count in names.items():
        for _ in range(count):
            born = dt.date(rng.randint(1940, 2000), rng.randint(1, 12), rng.randint(1, 28))
            rows.append(
                {
                    "source_record_id": str(len(rows)),
                    "first_name_std": name,
                    "initials": name[0].upper(),
                    "family_name_std": "jansen",
                    "date_of_birth_text": born.strftime("%Y%m%d"),
                    "date_of_birth": born,
                    "national_id_text": None,
                    "postcode": None,
                    "street_std": None,
                    "house_number": None,
                    "sex": None,
                    "area_code": None,
                    "extracted_at": None,
                }
            )
    return pl.DataFrame(rows)


def test_a_frequency_attack_names_unsalted_encodings_and_not_year_salted_ones():
    from collections import Counter

    from citizen_view.encoding.attack import frequency_attack
    from citizen_view.encoding.encode import Hardening, encode_frame

    names = {"anna": 60, "bram": 40, "cees": 25, "dirk": 12, "eva": 6}
    people = _people(names)
    truth = people.get_column("first_name_std").to_list()
    public = Counter(names)
    plain = frequency_attack(encode_frame(people, SECRET).get_column("enc_given_name").to_list(), truth, public)
    salted = frequency_attack(
        encode_frame(people, SECRET, hardening=Hardening.SALT_YEAR).get_column("enc_given_name").to_list(),
        truth,
        public,
    )
    assert plain.names_recovered == 5 and plain.records_recovered == len(truth)
    assert salted.distinct_encodings > 50 and salted.record_share < 0.2, salted
