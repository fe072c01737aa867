"""A data set the code has never seen, declared only in a hand-written sources.yaml, loads and links."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb
import polars as pl

from citizen_view.linkage.evaluate import evaluate_links
from citizen_view_app.runner import run_pipeline
from tests.conftest import write

FIRST = (
    "Mila Sven Ingrid Tobias Nora Lars Eva Henrik Sofie Jonas Anna Erik Lea Mats Ida Oskar Maja Nils Tuva Emil".split()
)
LAST = (
    "Berg Dahl Lund Strand Holm Moen Bakke Aas Haug Lie Vik Brekke Nygaard Solberg Eide Fjeld Sandvik Myhre "
    "Ruud Tangen Aune Hagen Kvam Foss Hauge"
).split()


def _typo(rng: random.Random, s: str) -> str:
    i = rng.randrange(1, len(s))
    return s[:i] + s[i + 1 :] if rng.random() < 0.5 else s[:i] + rng.choice("aeiou") + s[i:]


def _people(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    people = []
    for k in range(n):
        people.append(
            {
                "pid": k,
                "first": rng.choice(FIRST),
                "last": rng.choice(LAST),
                "dob": dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 25000)),
                "postcode": f"{rng.randrange(1000, 9999)}",
                "house": str(rng.randrange(1, 200)),
                "kommune": rng.choice(["Oslo", "Bergen", "Trondheim", "Stavanger", "Tromsø", "Bærum"]),
                "email": f"user{k}@example.org",
            }
        )
    return people


def _accuracy(warehouse, truth: list[tuple]) -> dict:
    """The warehouse's links scored against truth rows (source, source_record_id, person)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    frame = pl.DataFrame(truth, schema=["source", "source_record_id", "person_id"], orient="row")
    return evaluate_links(links, frame.with_columns(pl.col("person_id").cast(pl.String)))


THREE_AGENCIES = """
    country: NO
    quality: {min_published_person_share: 0.5}  # 300 people over 6 municipalities x 7 age bands x 2 sexes
    sources:
      - name: school
        path: school.parquet
        format: parquet
        record_id: pupil_id
        fields:
          given_name: voornaam
          family_name: achternaam
          date_of_birth: geboortedatum
          postcode: postnummer
          house_number: husnr
          city: kommune
      - name: clinic
        path: clinic/*.csv
        format: csv
        record_id: patient
        fields:
          full_name: name
          date_of_birth: {column: born, format: "%d.%m.%Y"}
          postcode: zip
          house_number: house
          city: town
      - name: library
        path: library/members.csv
        format: csv
        record_id: member_no
        fields: {full_name: member_name, email: mail, postcode: zip, house_number: house_no, city: kommune}
    """


def _school_row(rng: random.Random, p: dict) -> dict:
    """A pupil: Parquet with Norwegian and Dutch column names, an occasional typo in the given name."""
    first = _typo(rng, p["first"]) if rng.random() < 0.05 else p["first"]
    return {
        "pupil_id": f"S{p['pid']:05d}",
        "voornaam": first,
        "achternaam": p["last"],
        "geboortedatum": p["dob"],
        "postnummer": p["postcode"],
        "husnr": p["house"],
        "kommune": p["kommune"],
    }


def _clinic_line(rng: random.Random, p: dict) -> str:
    """A patient: "LAST, First", born as d.m.Y (now and then m.d.Y), an occasional typo in the family name."""
    d = p["dob"]
    dob = (
        f"{d.month:02d}.{d.day:02d}.{d.year}"
        if d.day <= 12 and rng.random() < 0.05
        else f"{d.day:02d}.{d.month:02d}.{d.year}"
    )
    last = _typo(rng, p["last"]) if rng.random() < 0.05 else p["last"]
    return f'P{p["pid"]:04d},"{last.upper()}, {p["first"]}",{dob},{p["postcode"]},{p["house"]},{p["kommune"].upper()}'


def _write_three_agencies(root: Path, people: list[dict], rng: random.Random) -> tuple[int, list[tuple]]:
    """The school (90% of people), clinic (70%) and library (50%, one name and an email) extracts under root:
    (pupils written, truth rows)."""
    school, clinic, library, truth = [], [], [], []
    for p in people:
        if rng.random() < 0.9:
            school.append(_school_row(rng, p))
            truth.append(("school", f"S{p['pid']:05d}", p["pid"]))
        if rng.random() < 0.7:
            clinic.append(_clinic_line(rng, p))
            truth.append(("clinic", f"P{p['pid']:04d}", p["pid"]))
        if rng.random() < 0.5:
            library.append(
                f"L{p['pid']},{p['first']} {p['last']},{p['email']},{p['postcode']},{p['house']},{p['kommune']}"
            )
            truth.append(("library", f"L{p['pid']}", p["pid"]))
    pl.DataFrame(school).write_parquet(root / "school.parquet")
    write(root / "clinic/patients.csv", "patient,name,born,zip,house,town\n" + "\n".join(clinic) + "\n")
    write(root / "library/members.csv", "member_no,member_name,mail,zip,house_no,kommune\n" + "\n".join(library) + "\n")
    return len(school), truth


def _run(root: Path, sources_yaml: str):
    """Write root/sources.yaml, run the whole pipeline on it into root/cv.duckdb and expect success: (warehouse,
    outcome)."""
    write(root / "sources.yaml", sources_yaml)
    wh = root / "cv.duckdb"
    outcome = run_pipeline(sources_path=root / "sources.yaml", warehouse_path=wh)
    assert outcome.success, outcome.failed
    return wh, outcome


def test_hand_written_sources_load_and_link_without_code_changes(tmp_path):
    pupils, truth = _write_three_agencies(tmp_path, _people(300, seed=11), random.Random(3))
    wh, outcome = _run(tmp_path, THREE_AGENCIES)
    assert outcome.materialized["source/school"]["rows_loaded"] == pupils
    with duckdb.connect(str(wh), read_only=True) as con:
        clinic_names = con.sql("SELECT given_name, family_name_std FROM canonical.clinic LIMIT 1").fetchall()
    assert clinic_names[0][0] and clinic_names[0][1]  # "LAST, First" split into parts
    figures = _accuracy(wh, truth)
    print(figures)
    assert figures["records_without_truth"] == 0
    assert figures["precision"] >= 0.97, figures
    assert figures["recall"] >= 0.90, figures


def test_one_register_from_a_country_without_an_area_list_is_deduplicated_and_published(tmp_path):
    """The most common job: one source with internal duplicates, from a country we ship no areas for. Every gate
    applies or says why it does not (nothing to link across sources; no area list), and open data is published
    nationally."""
    rng = random.Random(5)
    rows, truth = [], []
    for p in _people(200, seed=23):
        for copy in range(1 + (rng.random() < 0.4)):  # about 40% of people registered twice
            last = _typo(rng, p["last"]) if copy and rng.random() < 0.5 else p["last"]
            rows.append(f"R{len(rows):05d},{p['first']},{last},{p['dob']:%Y-%m-%d},{p['postcode']},{p['house']}")
            truth.append(("register", f"R{len(rows) - 1:05d}", str(p["pid"])))
    write(tmp_path / "register.csv", "id,first,last,born,zip,house\n" + "\n".join(rows) + "\n")
    wh, outcome = _run(
        tmp_path,
        """
        country: FI  # no area list shipped for Finland
        linkage: {link_type: dedupe_only}
        disclosure: {min_cell: 3}
        sources:
          - name: register
            path: register.csv
            format: csv
            record_id: id
            fields: {given_name: first, family_name: last, date_of_birth: born, postcode: zip, house_number: house}
        """,
    )
    assert all(c["passed"] for c in outcome.checks.values()), {
        k: c for k, c in outcome.checks.items() if not c["passed"]
    }
    said = {
        name: outcome.checks[name]["metadata"]["summary"]
        for name in ("citizen:cross_source_share", "citizen_area:areas_matched")
    }
    assert said["citizen:cross_source_share"].startswith("not applicable: one source"), said
    assert said["citizen_area:areas_matched"].startswith("not applicable: no official area list"), said
    assert "open_data/bundle" in outcome.materialized
    with duckdb.connect(str(wh), read_only=True) as con:
        levels = set(con.sql("SELECT DISTINCT level FROM open_data.population_by_area").pl().get_column("level"))
    assert levels == {"country", "unknown"}  # nationally only: no municipality was invented
    figures = _accuracy(wh, truth)
    assert figures["precision"] >= 0.97 and figures["recall"] >= 0.9, figures
