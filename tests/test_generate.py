"""Tests for the synthetic data generator: determinism, valid IDs, truth coverage, hard cases, streaming."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest
from stdnum.nl import bsn
from stdnum.no import fodselsnummer

from citizen_view.contract import load_sources
from citizen_view_synth import NoiseConfig, generate
from citizen_view_synth.permits import COLUMNS as PERMIT_COLUMNS
from citizen_view_synth.register import WIDTHS

SOURCES = ("population", "tax", "benefits", "permits", "licences")
REPO = Path(__file__).resolve().parents[1]


# -- helpers ---------------------------------------------------------------------------------------------------


def file_hashes(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def register_rows(root: Path) -> list[dict[str, str]]:
    """The population register parsed with its widths (truncated lines give shorter/empty trailing values)."""
    rows = []
    for line in (root / "population" / "register.dat").read_bytes().decode("latin-1").split("\n"):
        if not line:
            continue
        row, pos = {}, 0
        for col, width in WIDTHS.items():
            row[col] = line[pos : pos + width].strip()
            pos += width
        rows.append(row)
    return rows


def truth_rows(root: Path) -> list[tuple[str, str, str]]:
    with open(root / "truth" / "truth.csv", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["source", "record_id", "person_id"]
        return [tuple(r) for r in reader]


def written_ids(root: Path) -> Counter:
    """(source, record_id) of every row physically present in the extracts, malformed ones included."""
    ids: Counter = Counter()
    for row in register_rows(root):
        ids["population", row["REC_NO"]] += 1
    tax_lines = (root / "tax" / "tax_extract.csv").read_bytes().decode("latin-1").splitlines()[1:]
    for line in tax_lines:
        ids["tax", line.split(";", 1)[0]] += 1
    for line in (root / "benefits" / "clients.jsonl").read_text(encoding="utf-8").splitlines():
        ids["benefits", re.match(r'\{"client_no": "(B\d+)"', line).group(1)] += 1
    permits = pl.read_excel(root / "permits" / "permits.xlsx", sheet_name="permits", infer_schema_length=0)
    for rid in permits["permit_no"]:
        ids["permits", rid] += 1
    for line in (root / "licences" / "licences.csv").read_bytes().splitlines()[1:]:
        ids["licences", line.split(b",", 1)[0].decode("ascii")] += 1
    return ids


def person_of(root: Path) -> dict[tuple[str, str], str]:
    return {(s, r): p for s, r, p in truth_rows(root)}


def tax_rows(root: Path) -> list[list[str]]:
    text = (root / "tax" / "tax_extract.csv").read_bytes().decode("latin-1")
    return list(csv.reader(io.StringIO(text), delimiter=";"))[1:]


@pytest.fixture(scope="module")
def nl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2000 Dutch persons in chunks of 700 (takes about a second)."""
    root = tmp_path_factory.mktemp("nl")
    generate(root, persons=2000, seed=11, chunk_size=700)
    return root


@pytest.fixture(scope="module")
def no(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2000 Norwegian persons in chunks of 700."""
    root = tmp_path_factory.mktemp("no")
    generate(root, persons=2000, seed=11, country="NO", chunk_size=700)
    return root


# -- determinism -----------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", persons=300, seed=7, chunk_size=120)
    generate(tmp_path / "b", persons=300, seed=7, chunk_size=120)
    ha, hb = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert ha == hb
    assert "permits/permits.xlsx" in ha and len(ha) == 8
    assert sorted(str(p.relative_to(tmp_path / "a")) for p in a.files) == sorted(ha)


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    generate(tmp_path / "a", persons=300, seed=7)
    generate(tmp_path / "b", persons=300, seed=8)
    ha, hb = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    for name in ha:
        if name not in ("sources.yaml", "truth/README.txt"):
            assert ha[name] != hb[name], name


def test_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """No dependence on Python's per-process string hashing (set order etc.)."""
    code = (
        "import sys; from pathlib import Path; from citizen_view_synth import generate; "
        "generate(Path(sys.argv[1]), persons=300, seed=3, country='NO', chunk_size=100)"
    )
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], check=True, env=env, cwd=REPO)
    assert file_hashes(tmp_path / "1") == file_hashes(tmp_path / "2")


# -- national IDs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["NL", "NO"])
def test_register_national_ids_are_valid_and_unique(tmp_path: Path, country: str) -> None:
    generate(tmp_path, persons=300, seed=5, country=country, chunk_size=100)
    rows = register_rows(tmp_path)
    by_rec = {}
    for row in rows:
        natid = row["NATID"]
        if country == "NL":
            assert bsn.is_valid(natid), natid
            assert natid[0] != "0"
        else:
            assert fodselsnummer.is_valid(natid), natid
            assert fodselsnummer.get_gender(natid) == row["SEX"]
        by_rec.setdefault(row["REC_NO"], set()).add(natid)
    assert all(len(v) == 1 for v in by_rec.values())
    assert len({n for v in by_rec.values() for n in v}) == len(by_rec) == 300


def test_fodselsnummer_matches_true_birth_date(no: Path) -> None:
    """The birth date inside the fødselsnummer equals the register's birth date (up to a swapped day/month)."""
    mismatches = 0
    for row in register_rows(no):
        born = fodselsnummer.get_birth_date(row["NATID"])
        stated = row["BIRTHDATE"]
        if born.strftime("%Y%m%d") != stated:
            assert born.strftime("%Y%d%m") == stated, (row["NATID"], stated)
            mismatches += 1
    assert mismatches < 20


def test_tax_tin_is_mistyped_at_roughly_the_configured_rate(nl: Path) -> None:
    truth = person_of(nl)
    natid_of = {truth["population", r["REC_NO"]]: r["NATID"] for r in register_rows(nl)}
    rows = [r for r in tax_rows(nl) if len(r) == 10]
    wrong = [r for r in rows if r[1] != natid_of[truth["tax", r[0]]]]
    rate = len(wrong) / len(rows)
    assert 0.005 < rate < 0.05, rate
    assert any(not bsn.is_valid(r[1]) for r in wrong)


def test_tax_mistyping_follows_the_noise_config(tmp_path: Path) -> None:
    generate(tmp_path, persons=1500, seed=2, noise=NoiseConfig(transposed_id=0.3))
    truth = person_of(tmp_path)
    natid_of = {truth["population", r["REC_NO"]]: r["NATID"] for r in register_rows(tmp_path)}
    rows = [r for r in tax_rows(tmp_path) if len(r) == 10]
    rate = sum(r[1] != natid_of[truth["tax", r[0]]] for r in rows) / len(rows)
    assert 0.22 < rate < 0.38, rate


# -- truth and contract ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["nl", "no"])
def test_truth_covers_every_written_record_exactly_once(fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    truth = truth_rows(root)
    assert Counter((s, r) for s, r, _ in truth) == written_ids(root)
    assert {s for s, _, _ in truth} == set(SOURCES)
    persons_in_register = {p for s, _, p in truth if s == "population"}
    assert len(persons_in_register) == 2000
    assert {p for _, _, p in truth} <= persons_in_register


@pytest.mark.parametrize("fixture", ["nl", "no"])
def test_sources_yaml_loads_without_problems(fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    sources = load_sources(root / "sources.yaml")
    assert sources.country == fixture.upper()
    assert [s.name for s in sources.sources] == list(SOURCES)
    assert sources.survivorship.ranking == ["population", "tax", "benefits", "licences", "permits"]
    for source in sources.sources:
        assert source.problems() == [], source.name
        assert len(sources.files_of(source)) == 1, source.name


def test_truth_readme_and_report(tmp_path: Path) -> None:
    report = generate(tmp_path, persons=200, seed=1)
    assert "never reads this folder" in (tmp_path / "truth" / "README.txt").read_text(encoding="utf-8")
    assert report.persons == 200
    assert report.records["population"] >= 200
    assert set(report.records) == set(SOURCES)
    assert all(p.exists() for p in report.files)
    assert report.seconds >= 0


# -- hard cases ------------------------------------------------------------------------------------------------


def _address(row: dict[str, str]) -> tuple[str, ...]:
    return row["STREET"].lower(), row["HOUSENO"], row["HOUSENO_ADD"], row["POSTCODE"].replace(" ", "").upper()


@pytest.mark.parametrize("fixture", ["nl", "no"])
def test_twins_and_same_name_parent_child_exist(fixture: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(fixture)
    truth = person_of(root)
    by_home: dict[tuple[str, ...], dict[str, dict[str, str]]] = defaultdict(dict)
    for row in register_rows(root):
        by_home[_address(row)][truth["population", row["REC_NO"]]] = row
    twins = juniors = 0
    for people in by_home.values():
        rows = list(people.values())
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if a["SURNAME"] != b["SURNAME"]:
                    continue
                same_names, same_birth = a["FIRSTNAMES"] == b["FIRSTNAMES"], a["BIRTHDATE"] == b["BIRTHDATE"]
                twins += same_birth and not same_names
                juniors += same_names and not same_birth
    assert twins >= 1
    assert juniors >= 1


def test_married_name_changes_and_couples_present(nl: Path) -> None:
    rows = register_rows(nl)
    changed = [r for r in rows if r["BIRTH_SURNAME"] and r["BIRTH_SURNAME"] != r["SURNAME"] and r["MARRIED_ON"]]
    assert len(changed) > 50
    assert any("-" in r["family"] for r in (json.loads(line)["name"] for line in _good_json(nl)))


def _good_json(root: Path) -> list[str]:
    out = []
    for line in (root / "benefits" / "clients.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            json.loads(line)
        except json.JSONDecodeError:
            continue
        out.append(line)
    return out


# -- streaming -------------------------------------------------------------------------------------------------


def test_small_chunks_keep_persons_and_ids_unique(tmp_path: Path) -> None:
    generate(tmp_path, persons=1000, seed=4, chunk_size=150, bad_row_rate=0.02)
    truth = truth_rows(tmp_path)
    assert sorted({p for s, _, p in truth if s == "population"}) == [f"P{i:07d}" for i in range(1, 1001)]
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    counts = Counter((s, r) for s, r, _ in truth)
    for s, r, p in truth:
        seen[s, r].add(p)
    assert all(len(persons) == 1 for persons in seen.values()), "a reused record id must be the same person"
    duplicated = {k for k, n in counts.items() if n > 1}
    assert duplicated, "bad_row_rate=0.02 should produce some deliberately duplicated ids"
    assert len(duplicated) < 0.02 * len(counts)
    rows = register_rows(tmp_path)
    natids = Counter(r["NATID"] for r in rows)
    dup_recs = Counter(r["REC_NO"] for r in rows)
    assert sum(n - 1 for n in natids.values()) == sum(n - 1 for n in dup_recs.values())
    assert len(natids) == 1000


def test_chunking_does_not_change_counts(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", persons=600, seed=9, chunk_size=600, bad_row_rate=0.0)
    b = generate(tmp_path / "b", persons=600, seed=9, chunk_size=97, bad_row_rate=0.0)
    assert a.records["population"] == b.records["population"] == 600


# -- malformed rows and formats --------------------------------------------------------------------------------


def test_malformed_rows_of_each_kind(tmp_path: Path) -> None:
    generate(tmp_path, persons=1500, seed=6, bad_row_rate=0.08)
    register = (tmp_path / "population" / "register.dat").read_bytes().decode("latin-1").split("\n")[:-1]
    full = sum(WIDTHS.values())
    assert any(len(line) < full for line in register)
    assert all(len(line) <= full for line in register)
    tax = tax_rows(tmp_path)
    assert any(len(r) != 10 for r in tax)
    assert any(re.match(r"(31-02|30-02|29-02|31-04|00-05|15-13|32-01)-", r[3]) for r in tax if len(r) == 10)
    broken = 0
    for line in (tmp_path / "benefits" / "clients.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            json.loads(line)
        except json.JSONDecodeError:
            broken += 1
    assert broken > 0
    raw = (tmp_path / "licences" / "licences.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert b"\xff\xfe" in raw
    lic = list(csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"))))[1:]
    assert any(len(r) != 13 for r in lic)
    assert any(re.match(r"\d{4}/(13/45|02/30|00/10|04/31|19/07|06/32)$", r[3]) for r in lic if len(r) == 13)


def test_formats_and_encodings(nl: Path) -> None:
    register = (nl / "population" / "register.dat").read_bytes()
    assert b"\r" not in register
    lines = register.decode("latin-1").split("\n")[:-1]
    assert Counter(len(line) for line in lines).most_common(1)[0][0] == sum(WIDTHS.values())
    tax_header = (nl / "tax" / "tax_extract.csv").read_bytes().split(b"\n", 1)[0]
    assert tax_header == b"taxpayer_ref;tin;name;birth_date;street;house_number;postcode;city;tax_year;assessed_income"
    good = [r for r in tax_rows(nl) if len(r) == 10]
    assert sum(bool(re.fullmatch(r"[^,a-z]+, .+", r[2])) for r in good) > 0.9 * len(good)
    assert all(re.fullmatch(r"\d\d-\d\d-\d{4}", r[3]) for r in good)
    client = json.loads(_good_json(nl)[0])
    assert set(client) == {"client_no", "bsn", "name", "birth_date", "gender", "address", "phone", "cases"}
    assert {c["benefit_type"] for line in _good_json(nl) for c in json.loads(line)["cases"]} <= {
        "unemployment",
        "housing",
        "child",
        "disability",
        "pension",
        "social_assistance",
    }
    permits = pl.read_excel(nl / "permits" / "permits.xlsx", sheet_name="permits", infer_schema_length=0)
    assert permits.columns == list(PERMIT_COLUMNS)
    assert permits["phone"].drop_nulls().str.starts_with("0").any()
    assert permits["permit_no"].n_unique() == permits.height
    licences = (nl / "licences" / "licences.csv").read_text(encoding="utf-8", errors="replace").splitlines()
    assert licences[0] == (
        "licence_no,initials,surname,birth_date,sex,national_id,street,house_number,postcode,"
        "city,categories,issued_on,expires_on"
    )
    assert any(re.fullmatch(r"([A-Z]\.){2,}", line.split(",")[1]) for line in licences[1:])


def test_norwegian_letters_and_ascii_spellings(no: Path) -> None:
    register = (no / "population" / "register.dat").read_bytes().decode("latin-1")
    assert sum(register.count(ch) for ch in "æøåÆØÅ") > 500
    licences = (no / "licences" / "licences.csv").read_text(encoding="utf-8", errors="replace")
    assert re.search(r"(oe|aa|ae)", licences)
    assert re.search(r"[æøå]", licences)


def test_dutch_prefix_variants(nl: Path) -> None:
    text = (nl / "licences" / "licences.csv").read_text(encoding="utf-8", errors="replace")
    text += (nl / "tax" / "tax_extract.csv").read_bytes().decode("latin-1")
    assert re.search(r",van der [A-Z]", text)
    assert re.search(r"(,vd |,v\.d\. |,Van Der |VAN DER |V\.D\. |VD )", text)


# -- noise config ----------------------------------------------------------------------------------------------


def test_noise_config_scaling_and_validation() -> None:
    base = NoiseConfig()
    half = base.scaled(0.5)
    assert half.typo == pytest.approx(base.typo / 2)
    assert half.twins == base.twins and half.parent_child_same_name == base.parent_child_same_name
    assert base.scaled(100).typo == 1.0
    assert base.scaled(0).nickname == 0.0
    with pytest.raises(ValueError):
        NoiseConfig(typo=1.5)
    with pytest.raises(ValueError):
        base.scaled(-1)


def test_clean_run_has_no_mistyped_ids(tmp_path: Path) -> None:
    generate(tmp_path, persons=500, seed=3, noise=NoiseConfig().scaled(0), bad_row_rate=0.0)
    truth = person_of(tmp_path)
    natid_of = {truth["population", r["REC_NO"]]: r["NATID"] for r in register_rows(tmp_path)}
    assert all(r[1] == natid_of[truth["tax", r[0]]] for r in tax_rows(tmp_path))


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, persons=10, seed=1, country="SE")
    with pytest.raises(ValueError):
        generate(tmp_path, persons=0, seed=1)


# -- the dense and multi-agency profiles -------------------------------------------------------------------------

PROFILE_PERSONS = {"dense": 150, "multi-agency": 400}


@pytest.fixture(scope="module", params=["dense", "multi-agency"])
def profile(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp(request.param)
    generate(root, persons=PROFILE_PERSONS[request.param], seed=5, profile=request.param)
    return request.param, root


def _csv_dicts(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


@pytest.mark.parametrize("name", ["dense", "multi-agency"])
def test_profiles_are_deterministic_per_seed(tmp_path: Path, name: str) -> None:
    generate(tmp_path / "a", persons=120, seed=3, profile=name)
    generate(tmp_path / "b", persons=120, seed=3, profile=name)
    generate(tmp_path / "c", persons=120, seed=4, profile=name)
    ha, hb, hc = (file_hashes(tmp_path / x) for x in "abc")
    assert ha == hb
    assert ha["truth/truth.csv"] != hc["truth/truth.csv"]


def test_profile_sources_yaml_loads_and_every_source_ingests_balanced(
    profile: tuple[str, Path], tmp_path: Path
) -> None:
    from citizen_view.ingest import ingest_source
    from citizen_view.warehouse import connect

    name, root = profile
    sources = load_sources(root / "sources.yaml")
    assert sources.country == {"dense": "GB", "multi-agency": "US"}[name]
    assert sources.quality == type(sources.quality)(), "a new user's sources file: default quality bounds"
    truth = Counter(s for s, _, _ in truth_rows(root))
    with connect(tmp_path / "w.duckdb") as con:
        for source in sources.sources:
            assert source.problems() == [], source.name
            report = ingest_source(con, sources, source.name)
            assert report.rows_in == report.rows_loaded + report.rows_rejected == truth[source.name], source.name
            assert report.rows_loaded > 0, source.name


def test_dense_profile_shape(tmp_path: Path) -> None:
    generate(tmp_path, persons=150, seed=5, profile="dense")
    sources = load_sources(tmp_path / "sources.yaml")
    assert [s.name for s in sources.sources] == ["register"]
    assert sources.linkage.link_type == "dedupe_only"
    assert all("national_id" not in s.fields for s in sources.sources)
    per_person = Counter(p for _, _, p in truth_rows(tmp_path))
    assert len(per_person) == 150
    assert min(per_person.values()) >= 5 and max(per_person.values()) <= 25
    rows = _csv_dicts(tmp_path / "register" / "entries.csv")
    given = Counter(r["forenames"] for r in rows)
    family = Counter(r["surname"] for r in rows)
    assert given["Sir"] + given["Dr"] > 10 and family["1st Bt."] > 0  # titles shared by many people
    assert sum(given[x] + family[x] for x in ("unknown", "n/a", "XXX")) > 20
    assert any(re.match(r"(Mr|Mrs|Rev\.|Dr|Miss) \w", g) for g in given)
    impossible = [
        r["birth_date"]
        for r in rows
        if re.fullmatch(r"\d{4}-(\d\d)-(\d\d)", r["birth_date"])
        and not (1 <= int(r["birth_date"][5:7]) <= 12 and 1 <= int(r["birth_date"][8:]) <= 31)
    ]
    assert 0.045 <= len(impossible) / len(rows) <= 0.085, len(impossible) / len(rows)  # 6.5% +- sampling
    assert any(r["birth_date"][5:7] in ("86", "99", "68") for r in rows) and any(
        r["birth_date"].endswith("-00") for r in rows
    )
    assert sum(not r["birth_date"] for r in rows) > 0 and sum(not r["postcode"] for r in rows) > 0


def test_multi_agency_profile_shape(tmp_path: Path) -> None:
    generate(tmp_path, persons=400, seed=5, profile="multi-agency")
    sources = load_sources(tmp_path / "sources.yaml")
    assert len(sources.sources) == 7
    without_id = [s.name for s in sources.sources if "national_id" not in s.fields]
    assert set(without_id) == {"census", "wic", "acs", "cps"}
    assert {s.fields["national_id"].scheme for s in sources.sources if "national_id" in s.fields} == {"us.ssn"}
    us_dates = [
        s.name
        for s in sources.sources
        if "date_of_birth" in s.fields and s.fields["date_of_birth"].format == "%m/%d/%Y"
    ]
    assert "census" in us_dates and "acs" in us_dates
    census = _csv_dicts(tmp_path / "census" / "census_2020.csv")
    assert any(int(r["date_of_birth"][:2]) <= 12 < int(r["date_of_birth"][3:5]) for r in census if r["date_of_birth"])
    counts = Counter(s for s, _, _ in truth_rows(tmp_path))
    assert 0 < min(counts["acs"], counts["cps"]) and max(counts["acs"], counts["cps"]) < 100
    person = person_of(tmp_path)
    homes: dict[tuple[str, ...], set[str]] = defaultdict(set)
    twins = 0
    for r in census:
        homes[r["street_number"], r["street_name"], r["zipcode"]].add(r["last_name"])
    assert sum(len(v) == 1 for v in homes.values()) > 0.5 * len(homes)  # households share a surname
    by_key: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for r in census:
        by_key[r["last_name"], r["date_of_birth"], r["street_name"]].add(person["census", r["census_id"]])
    twins = sum(len(v) >= 2 for k, v in by_key.items() if k[1])
    assert twins >= 1
    ssa = _csv_dicts(tmp_path / "ssa" / "ssa_numident.txt", "|")
    assert all(re.fullmatch(r"\d{9}", r["ssn"]) for r in ssa)


def test_profile_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="profile"):
        generate(tmp_path, persons=10, seed=1, profile="sparse")
    with pytest.raises(ValueError, match="country"):
        generate(tmp_path, persons=10, seed=1, profile="multi-agency", country="NL")
