"""The `dense` profile: one register holding 5 to 25 entries per person, with the dirt of a long-kept register.

Per entry, with the rates below: titles and honorifics in the name fields ("Rev. John"; a given name that
is only "Sir" or "Dr", a family name that is only "1st Bt."), placeholders ("unknown", "n/a", "XXX"),
nicknames, typos, 6.5% impossible birth dates (month 86, day 00, day 34), swapped day and month, a birth
year one off, missing fields, the previous address. One source, `link_type: dedupe_only`, no national ID.
"""

from __future__ import annotations

import csv
from pathlib import Path
from random import Random
from typing import Any

from citizen_view.contract import dump_sources
from citizen_view_synth import reference
from citizen_view_synth.anglo import Resident, World, nickname, noisy
from citizen_view_synth.truth import TruthWriter

COLUMNS = (
    "entry_no",
    "entry_type",
    "forenames",
    "surname",
    "sex",
    "birth_date",
    "birth_place",
    "house_no",
    "street",
    "town",
    "postcode",
    "died_on",
)
MIN_ENTRIES, MAX_ENTRIES = 5, 25
IMPOSSIBLE_DATE = 0.065
"""Share of entries whose birth date was mistyped into an impossible one."""
SHARED_TITLES = ("Sir", "Dr", "Lady", "Rev.", "Dame")
FAMILY_TITLES = ("1st Bt.", "2nd Bt.", "Esq.", "Bart.")
PLACEHOLDERS = ("unknown", "n/a", "XXX", "UNKNOWN", "?", "N/A")
HONORIFICS = {"M": ("Mr", "Mr.", "Rev.", "Dr", "Capt."), "F": ("Mrs", "Miss", "Ms", "Dr", "Mrs.")}
ENTRY_TYPES = ("baptism", "census", "electoral roll", "marriage", "rates book", "school roll", "burial")


def _impossible(rng: Random, y: int, m: int, d: int) -> str:
    """A birth date as a clerk mistypes it into no date at all."""
    r = rng.random()
    if r < 0.4:
        return f"{y:04d}-{rng.choice((13, 19, 21, 31, 45, 68, 86, 99)):02d}-{d:02d}"  # month out of range
    if r < 0.7:
        return f"{y:04d}-{m:02d}-00"
    return f"{y:04d}-{m:02d}-{rng.choice((32, 34, 39, 41, 66)):02d}"


def _birth_date(rng: Random, p: Resident) -> str:
    y, m, d = p.dob.year, p.dob.month, p.dob.day
    r = rng.random()
    if r < IMPOSSIBLE_DATE:
        return _impossible(rng, y, m, d)
    r -= IMPOSSIBLE_DATE
    if r < 0.08:
        return ""
    if r < 0.10 and d <= 12 and d != m:
        m, d = d, m
    elif r < 0.13:
        y += rng.choice((-1, 1))  # worked back from a stated age
    return f"{y:04d}-{m:02d}-{d:02d}"


def _stand_in(rng: Random, titles: tuple[str, ...] | list[str], *, title: float, placeholder: float) -> str | None:
    """A title or a placeholder written where the name belongs (below the two cumulative shares), else None."""
    r = rng.random()
    if r < title:
        return rng.choice(titles)
    if r < placeholder:
        return rng.choice(PLACEHOLDERS)
    return None


def _forenames(rng: Random, p: Resident) -> str:
    if (instead := _stand_in(rng, SHARED_TITLES, title=0.04, placeholder=0.07)) is not None:
        return instead
    name = nickname(rng, p.given, 0.12)
    if p.middle and rng.random() < 0.5:
        name = f"{name} {p.middle if rng.random() < 0.7 else p.middle[0]}"
    if rng.random() < 0.08:
        name = f"{rng.choice(HONORIFICS[p.sex])} {name}"
    return noisy(rng, name, 0.04)


def _surname(rng: Random, p: Resident) -> str:
    name = _stand_in(rng, FAMILY_TITLES, title=0.02, placeholder=0.05)
    if name is None:  # the family name as written, now and then with its suffix (Jr., III)
        name = noisy(rng, p.family, 0.04)
        if p.suffix and rng.random() < 0.5:
            name = f"{name} {p.suffix}"
    return name


def _entry(rng: Random, p: Resident, rid: str, *, last: bool) -> list[str]:
    home = p.prev_home if p.prev_home is not None and rng.random() < 0.3 else p.home
    missing = rng.random
    kind = "burial" if last and p.died_on is not None else rng.choice(ENTRY_TYPES[:-1])
    sex = "" if missing() < 0.05 else ("F" if p.sex == "M" else "M") if missing() < 0.01 else p.sex
    return [
        rid,
        kind,
        _forenames(rng, p),
        _surname(rng, p),
        sex,
        _birth_date(rng, p),
        "" if missing() < 0.35 else noisy(rng, p.home.city if p.extra.get("local") else p.extra["born_in"], 0.03),
        "" if missing() < 0.15 else home.number,
        "" if missing() < 0.1 else noisy(rng, home.street, 0.03),
        "" if missing() < 0.05 else noisy(rng, home.city, 0.02),
        "" if missing() < 0.2 else home.postcode,
        p.died_on.isoformat() if kind == "burial" and p.died_on is not None else "",
    ]


def sources_document(*, register: str = "register/entries.csv") -> dict[str, Any]:
    """The sources file a new user writes from the column names (data/dense_sources.yaml): field mapping only,
    default bounds."""
    document = reference.document("dense_sources.yaml")
    document["sources"][0]["path"] = register
    return document


def generate_dense(out_dir: Path, *, persons: int, seed: int) -> dict[str, Any]:
    """Write register/entries.csv, truth/ and sources.yaml; returns {records: {source: n}, files: [...]}."""
    rng = Random(f"dense:{seed}")
    world = World(locale="en_GB", seed=seed)
    people = world.people(persons, rng=rng, twins=0.06)
    for p in people:
        p.extra["local"] = rng.random() < 0.6
        p.extra["born_in"] = world.towns[rng.randrange(len(world.towns))][0]
    picks = [(p, i, n) for p in people for n in [rng.randint(MIN_ENTRIES, MAX_ENTRIES)] for i in range(n)]
    rng.shuffle(picks)
    path = out_dir / "register" / "entries.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = TruthWriter(out_dir / "truth")
    pairs: list[tuple[str, str]] = []
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for serial, (p, i, n) in enumerate(picks, start=1):
            rid = f"E{serial:07d}"
            writer.writerow(_entry(rng, p, rid, last=i == n - 1))
            pairs.append((rid, p.pid))
    truth.write("register", pairs)
    truth.close()
    sources = out_dir / "sources.yaml"
    dump_sources(sources_document(), sources)
    return {"records": {"register": len(pairs)}, "files": [path, truth.path, truth.readme, sources]}
