"""The `multi-agency` profile: seven US agencies, each with its own shape, most without the SSN.

- census: decennial census, everyone, one row per person with household ID, US dates (%m/%d/%Y), no SSN.
- ssa: Social Security, pipe-delimited, one row per SSN event (creation, death), SSN without dashes, %Y%m%d.
- w2: W-2/1099 forms, one per job (0-3 a working adult), SSN with dashes, no birth date, mailing address.
- f1040: tax returns as JSON lines, one line per person on a return (filer, spouse, dependents), nested address.
- wic: nutrition programme for mothers and children under 5, US dates, no SSN.
- acs, cps: small household surveys (well under 100 rows at the benchmark's sizes), no SSN.

Households share address and family name; twins share birth date, family name and address.
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

from citizen_view.contract import dump_sources
from citizen_view_synth.anglo import Home, Resident, World, nickname, noisy
from citizen_view_synth.noise import mistype_id
from citizen_view_synth.truth import TruthWriter

US_DATE = "%m/%d/%Y"
TYPO = 0.03
NICKNAME = 0.08
MISSING = 0.03
STALE_ADDRESS = 0.25  # a mover's record still at the previous address
SSN_MISTYPED = 0.02
SURVEY_SHARE = {"acs": 0.025, "cps": 0.02}  # of households
NAME_COLUMNS = ("first_name", "middle_initial", "last_name")
ADDRESS_COLUMNS = ("street_number", "street_name", "unit_number", "city", "state", "zipcode")


Extract = tuple[list[str], list[tuple[Resident, Any]]]
"""One agency's file as a writer returns it: the columns, and each row with the resident it is about."""


def _households(people: list[Resident]) -> list[list[Resident]]:
    """The residents by household, households in the order of their first member."""
    households: dict[int, list[Resident]] = {}
    for p in people:
        households.setdefault(p.household, []).append(p)
    return list(households.values())


class _Pen:
    """One agency's way of writing a resident's attributes."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng

    def missing(self, rate: float = MISSING) -> bool:
        return self.rng.random() < rate

    def first(self, p: Resident, *, nicknames: bool = True) -> str:
        name = nickname(self.rng, p.given, NICKNAME) if nicknames else p.given
        return noisy(self.rng, name, TYPO)

    def middle_initial(self, p: Resident) -> str:
        return "" if not p.middle or self.missing(0.1) else p.middle[0]

    def last(self, p: Resident) -> str:
        name = noisy(self.rng, p.family, TYPO)
        return f"{name} {p.suffix}" if p.suffix and self.rng.random() < 0.4 else name

    def names(self, p: Resident) -> list[str]:
        """First name, middle initial and last name (NAME_COLUMNS), each with this agency's noise."""
        return [self.first(p), self.middle_initial(p), self.last(p)]

    def dob(self, p: Resident, fmt: str) -> str:
        if self.missing():
            return ""
        y, m, d = p.dob.year, p.dob.month, p.dob.day
        if d <= 12 and d != m and self.rng.random() < 0.01:
            m, d = d, m
        return fmt.replace("%Y", f"{y:04d}").replace("%m", f"{m:02d}").replace("%d", f"{d:02d}")

    def ssn(self, p: Resident, *, dashes: bool) -> str:
        if not p.ssn:
            return ""
        value = mistype_id(self.rng, p.ssn) if self.rng.random() < SSN_MISTYPED else p.ssn
        return f"{value[:3]}-{value[3:5]}-{value[5:]}" if dashes else value

    def home(self, p: Resident, *, stale: bool = True) -> Home:
        if stale and p.prev_home is not None and self.rng.random() < STALE_ADDRESS:
            return p.prev_home
        return p.home

    def address(self, h: Home) -> list[str]:
        return [
            h.number,
            noisy(self.rng, h.street, TYPO),
            "" if self.missing() else h.unit,
            noisy(self.rng, h.city, TYPO / 2),
            h.state,
            "" if self.missing() else h.postcode,
        ]


def _census(people: list[Resident], pen: _Pen) -> Extract:
    cols = [
        "census_id",
        "household_id",
        *NAME_COLUMNS,
        "age",
        "date_of_birth",
        "sex",
        *ADDRESS_COLUMNS,
        "relation_to_household_head",
    ]
    rows = []
    heads: dict[int, Resident] = {}
    for p in people:
        if pen.rng.random() < 0.03:  # missed by the count
            continue
        head = heads.setdefault(p.household, p)
        relation = "Reference person" if head is p else "Spouse" if abs(head.age - p.age) < 15 else "Child"
        rows.append(
            (
                p,
                [
                    f"H{p.household:06d}",
                    *pen.names(p),
                    str(p.age),
                    pen.dob(p, US_DATE),
                    "Male" if p.sex == "M" else "Female",
                    *pen.address(p.home),
                    relation,
                ],
            )
        )
    return cols, rows


def _ssa(people: list[Resident], pen: _Pen) -> Extract:
    cols = "ssa_event_id ssn first_name middle_name last_name date_of_birth event_type event_date".split()
    rows = []
    for p in people:
        if not p.ssn:
            continue
        name = [pen.first(p, nicknames=False).upper(), p.middle.upper(), pen.last(p).upper()]
        born = p.dob.strftime("%Y%m%d")
        rows.append((p, [pen.ssn(p, dashes=False), *name, born, "creation", born]))
        if p.died_on is not None:
            rows.append((p, [p.ssn, *name, born, "death", p.died_on.strftime("%Y%m%d")]))
    return cols, rows


def _w2(people: list[Resident], pen: _Pen) -> Extract:
    cols = ["form_id", "ssn", *NAME_COLUMNS, *ADDRESS_COLUMNS, "employer_name", "wages", "tax_form"]
    rows = []
    rng = pen.rng
    for p in people:
        if not 18 <= p.age <= 75 or p.died_on is not None or rng.random() > 0.7:
            continue
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            home = pen.home(p)
            rows.append(
                (
                    p,
                    [
                        pen.ssn(p, dashes=True),
                        *pen.names(p),
                        *pen.address(home),
                        f"{rng.choice('ABCDEFGHJKLMNPRSTW')}{rng.randint(10, 99)} Inc",
                        str(rng.randint(3000, 150000)),
                        "W2" if rng.random() < 0.8 else "1099",
                    ],
                )
            )
    return cols, rows


def _f1040(people: list[Resident], pen: _Pen) -> Extract:
    rows = []
    rng = pen.rng
    returns = 0
    for members in _households(people):
        adults = [p for p in members if p.age >= 18 and p.died_on is None]
        if not adults or rng.random() > 0.75:
            continue
        returns += 1
        filer, others = adults[0], members[1:]
        home = pen.home(filer)
        address = {
            "street_number": home.number,
            "street_name": noisy(rng, home.street, TYPO),
            "unit_number": home.unit,
            "city": home.city,
            "state": home.state,
            "zipcode": "" if pen.missing() else home.postcode,
        }
        for role, p in [
            ("primary", filer),
            *(
                (
                    "spouse"
                    if q.age >= 18 and q.family == filer.family and abs(q.age - filer.age) < 15
                    else "dependent",
                    q,
                )
                for q in others
            ),
        ]:
            if p.died_on is not None:
                continue
            rows.append(
                (
                    p,
                    {
                        "return_id": f"R{returns:07d}",
                        "role": role,
                        "ssn": pen.ssn(p, dashes=True),
                        "first_name": pen.first(p),
                        "last_name": pen.last(p),
                        "address": address,
                    },
                )
            )
    return ["line_id"], rows


def _wic(people: list[Resident], pen: _Pen) -> Extract:
    cols = ["wic_id", *NAME_COLUMNS, "date_of_birth", "sex", *ADDRESS_COLUMNS]
    rows = []
    for members in _households(people):
        infants = [p for p in members if p.age < 5]
        if not infants or pen.rng.random() > 0.5:
            continue
        mothers = [p for p in members if p.sex == "F" and 16 <= p.age <= 50][:1]
        for p in mothers + infants:
            rows.append(
                (
                    p,
                    [
                        *pen.names(p),
                        pen.dob(p, US_DATE),
                        "F" if p.sex == "F" else "M",
                        *pen.address(pen.home(p)),
                    ],
                )
            )
    return cols, rows


def _survey(name: str) -> Callable[[list[Resident], _Pen], Extract]:
    def survey(people: list[Resident], pen: _Pen) -> Extract:
        cols = [
            f"{name}_id",
            "household_id",
            "first_name",
            "last_name",
            "age",
            "date_of_birth",
            "sex",
            *ADDRESS_COLUMNS,
        ]
        chosen = {h for h in dict.fromkeys(p.household for p in people) if pen.rng.random() < SURVEY_SHARE[name]}
        rows = [
            (
                p,
                [
                    f"S{p.household:06d}",
                    pen.first(p),
                    pen.last(p),
                    str(p.age),
                    pen.dob(p, US_DATE),
                    "Male" if p.sex == "M" else "Female",
                    *pen.address(p.home),
                ],
            )
            for p in people
            if p.household in chosen
        ]
        return cols, rows

    return survey


# (source, file, writer, record id prefix)
AGENCIES = (
    ("census", "census/census_2020.csv", _census, "C"),
    ("ssa", "ssa/ssa_numident.txt", _ssa, "S"),
    ("w2", "tax/w2_1099.csv", _w2, "W"),
    ("f1040", "tax/form_1040.jsonl", _f1040, "F"),
    ("wic", "wic/wic_participants.csv", _wic, "N"),
    ("acs", "surveys/acs.csv", _survey("acs"), "A"),
    ("cps", "surveys/cps.csv", _survey("cps"), "P"),
)


# What the agencies' columns are called: the same in every file that holds them.
_ADDRESS = {
    "house_number": "street_number",
    "street": "street_name",
    "unit": "unit_number",
    "city": "city",
    "postcode": "zipcode",
}
_NAMES = {"given_name": "first_name", "family_name": "last_name"}
_US_DOB = {"date_of_birth": {"column": "date_of_birth", "format": US_DATE}}
_SSN = {"national_id": {"column": "ssn", "scheme": "us.ssn"}}


def _source(name: str, description: str, path: str, record_id: str, fields: dict, **more: Any) -> dict[str, Any]:
    """One source entry, keys in the order a person writes them (format csv unless `more` says otherwise)."""
    entry = {"name": name, "description": description, "path": path, "format": more.pop("format", "csv")}
    if "options" in more:
        entry["options"] = more.pop("options")
    entry["record_id"] = record_id
    return copy.deepcopy({**entry, **more, "fields": fields})


def _survey(name: str, title: str) -> dict[str, Any]:
    """A household survey: a small sample; no SSN."""
    return _source(
        name,
        f"{title}: a small sample of households; no SSN.",
        f"surveys/{name}.csv",
        f"{name}_id",
        {**_NAMES, **_US_DOB, "sex": "sex", **_ADDRESS},
        attributes={"household_id": "Survey household"},
    )


def sources_document() -> dict[str, Any]:
    """The sources file a new user writes from the column names: field mappings, default bounds, `country: US`."""
    return {
        "country": "US",
        "survivorship": {"ranking": ["ssa", "census", "f1040", "w2", "wic", "acs", "cps"]},
        "sources": [
            _source(
                "census",
                "Decennial census: everyone at their address on census day; no SSN.",
                "census/*.csv",
                "census_id",
                {**_NAMES, "middle_name": "middle_initial", **_US_DOB, "sex": "sex", **_ADDRESS},
                attributes={"household_id": "Census household", "relation_to_household_head": "Relation to head"},
            ),
            _source(
                "ssa",
                "Social Security numident: one row per SSN event (creation, death).",
                "ssa/*.txt",
                "ssa_event_id",
                {
                    **_SSN,
                    **_NAMES,
                    "middle_name": "middle_name",
                    "date_of_birth": {"column": "date_of_birth", "format": "%Y%m%d"},
                },
                options={"delimiter": "|"},
                attributes={"event_type": "Event", "event_date": {"label": "Event date", "format": "%Y%m%d"}},
            ),
            _source(
                "w2",
                "W-2 and 1099 forms: one per job; no birth date.",
                "tax/w2_1099.csv",
                "form_id",
                {**_SSN, **_NAMES, "middle_name": "middle_initial", **_ADDRESS},
                attributes={"employer_name": "Employer", "tax_form": "Form"},
            ),
            _source(
                "f1040",
                "Form 1040 returns: one line per person on a return; no birth date.",
                "tax/form_1040.jsonl",
                "line_id",
                {**_SSN, **_NAMES, **{k: f"address.{v}" for k, v in _ADDRESS.items()}},
                format="jsonl",
                attributes={"return_id": "Return", "role": "Role on the return"},
            ),
            _source(
                "wic",
                "WIC participants: mothers and children under 5; no SSN.",
                "wic/*.csv",
                "wic_id",
                {**_NAMES, "middle_name": "middle_initial", **_US_DOB, "sex": "sex", **_ADDRESS},
            ),
            _survey("acs", "American Community Survey"),
            _survey("cps", "Current Population Survey"),
        ],
    }


def generate_agencies(out_dir: Path, *, persons: int, seed: int) -> dict[str, Any]:
    """Write the seven agencies' extracts, truth/ and sources.yaml; returns {records: {source: n}, files: [...]}."""
    world = World(locale="en_US", seed=seed)
    people = world.people(persons, rng=Random(f"us-people:{seed}"), ssn_share=0.9, twins=0.08)
    truth = TruthWriter(out_dir / "truth")
    records: dict[str, int] = {}
    files: list[Path] = []
    for source, relpath, write, prefix in AGENCIES:
        pen = _Pen(Random(f"{source}:{seed}"))
        cols, rows = write(people, pen)
        pen.rng.shuffle(rows)
        path = out_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        pairs = []
        with open(path, "w", encoding="utf-8", newline="") as fh:
            if relpath.endswith(".jsonl"):
                for n, (p, row) in enumerate(rows, start=1):
                    rid = f"{prefix}{n:07d}"
                    fh.write(json.dumps({cols[0]: rid, **row}) + "\n")
                    pairs.append((rid, p.pid))
            else:
                writer = csv.writer(fh, delimiter="|" if relpath.endswith(".txt") else ",", lineterminator="\n")
                writer.writerow(cols)
                for n, (p, row) in enumerate(rows, start=1):
                    rid = f"{prefix}{n:07d}"
                    writer.writerow([rid, *row])
                    pairs.append((rid, p.pid))
        truth.write(source, pairs)
        records[source] = len(pairs)
        files.append(path)
    truth.close()
    sources = out_dir / "sources.yaml"
    dump_sources(sources_document(), sources)
    return {"records": records, "files": [*files, truth.path, truth.readme, sources]}
