"""The driving-licence register: `,`-separated UTF-8 CSV with initials instead of given names."""

from __future__ import annotations

from datetime import date
from random import Random

from citizen_view_synth.dates import REF, add_years, between, years_ago
from citizen_view_synth.extract import INVALID_UTF8_MARK, CsvExtract
from citizen_view_synth.people import Person
from citizen_view_synth.pool import Pool
from citizen_view_synth.render import Renderer
from citizen_view_synth.spelling import initials

_fromordinal = date.fromordinal
COLUMNS = (
    "licence_no",
    "initials",
    "surname",
    "birth_date",
    "sex",
    "national_id",
    "street",
    "house_number",
    "postcode",
    "city",
    "categories",
    "issued_on",
    "expires_on",
)
_CATEGORIES = Pool(
    ("B", "AM,B", "A,B", "B,BE", "B,C,CE", "A,B,BE,C,CE", "B,D"), (0.55, 0.14, 0.12, 0.08, 0.05, 0.04, 0.02)
)


def _holder_rate(age: int) -> float:
    return 0.45 if age < 25 else 0.68 if age < 75 else 0.35


def _slash(d: date) -> str:
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}"


class LicencesExtract(CsvExtract):
    """About 60% of adults; a national ID for ~90% of them; dead holders linger at `dead_still_present`."""

    name = "licences"
    relpath = "licences/licences.csv"
    columns = COLUMNS
    bad_kinds = ("field_count", "bad_date", "bad_utf8")
    ascii_factor = 4.0
    invalid_bytes = True

    def select(self, people: list[Person], rng: Random) -> list[tuple[Person, int]]:
        dead_rate = self.noise.dead_still_present
        return [
            (p, 0)
            for p in people
            if p.age >= 18 and rng.random() < (_holder_rate(p.age) if p.died_on is None else dead_rate)
        ]

    def record_id(self, serial: int) -> str:
        return str(4_000_000_000 + serial)

    def render(self, p: Person, extra: int, rid: str, r: Renderer) -> list[str]:
        rng = r.rng
        y, m, d = r.dob(p)
        a = r.address(p)
        inits = initials(r.given(p, all_names=True))
        style = rng.random()
        if style < 0.1:
            inits = inits.replace(".", "")
        elif style < 0.15:
            inits = inits.replace(".", ". ").strip()
        issued = between(
            rng, max(add_years(p.dob.toordinal(), 18), years_ago(10)), (p.died_on.toordinal() if p.died_on else REF) - 1
        )
        expires = add_years(issued, 5 if p.age >= 75 else 10)
        return [
            rid,
            inits,
            r.family(p),
            f"{y:04d}/{m:02d}/{d:02d}",
            p.sex,
            "" if rng.random() < 0.1 else r.national_id(p),
            r.street(a),
            r.house_number(a, with_unit=True),
            r.postcode(a, spaced=rng.random() < 0.7),
            r.city(a),
            _CATEGORIES.pick(rng),
            _slash(_fromordinal(issued)),
            _slash(_fromordinal(expires)),
        ]

    def malform(self, row: list[str], kind: str, rng: Random) -> list[str]:
        if kind == "bad_date":
            year = row[3][:4]
            bad = rng.choice(("13/45", "02/30", "00/10", "04/31", "19/07", "06/32"))
            return [*row[:3], f"{year}/{bad}", *row[4:]]
        if kind == "bad_utf8":
            surname = row[2]
            i = rng.randint(1, max(1, len(surname) - 1))
            return [*row[:2], surname[:i] + INVALID_UTF8_MARK + surname[i:], *row[3:]]
        return self.wrong_field_count(row, rng)
