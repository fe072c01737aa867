"""The tax office extract: `;`-separated latin-1 CSV of adult taxpayers (and some who have died)."""

from __future__ import annotations

from random import Random

from citizen_view_synth.dates import TAX_YEAR
from citizen_view_synth.extract import CsvExtract, Raw
from citizen_view_synth.people import Person
from citizen_view_synth.render import Renderer

COLUMNS = (
    "taxpayer_ref",
    "tin",
    "name",
    "birth_date",
    "street",
    "house_number",
    "postcode",
    "city",
    "tax_year",
    "assessed_income",
)


class TaxExtract(CsvExtract):
    """About 90% of living adults plus `dead_still_present` of the dead; name as 'SURNAME, Given names'."""

    name = "tax"
    relpath = "tax/tax_extract.csv"
    encoding = "latin-1"
    delimiter = ";"
    columns = COLUMNS
    bad_kinds = ("field_count", "bad_date")

    def select(self, people: list[Person], rng: Random) -> list[tuple[Person, int]]:
        dead_rate = self.noise.dead_still_present
        return [(p, 0) for p in people if p.age >= 18 and rng.random() < (0.9 if p.died_on is None else dead_rate)]

    def record_id(self, serial: int) -> str:
        return f"T{serial:08d}"

    def render(self, p: Person, extra: int, rid: str, r: Renderer) -> list[str]:
        rng = r.rng
        y, m, d = r.dob(p)
        a = r.address(p)
        if p.died_on is not None and p.died_on.year < TAX_YEAR:
            income = 0
        elif p.age >= 67:
            income = int(rng.lognormvariate(9.9, 0.45))
        else:
            income = int(rng.lognormvariate(10.4, 0.7)) if rng.random() > 0.06 else 0
        return [
            rid,
            r.national_id(p),
            f"{r.family(p, comma=False).upper()}, {r.given(p, all_names=True)}",
            f"{d:02d}-{m:02d}-{y:04d}",
            r.street(a).upper() if rng.random() < 0.5 else r.street(a),
            r.house_number(a, with_unit=True),
            r.postcode(a, spaced=False),
            r.city(a).upper(),
            str(TAX_YEAR),
            str(income),
        ]

    def malform(self, row: list[str], kind: str, rng: Random) -> list[str] | Raw:
        if kind == "bad_date":
            year = row[3][-4:]
            bad = rng.choice(("31-02", "30-02", "29-02", "31-04", "00-05", "15-13", "32-01"))
            return [*row[:3], f"{bad}-{year}", *row[4:]]
        if rng.random() < 0.5:  # the ', ' in the name typed as the delimiter, not quoted
            return Raw(";".join([*row[:2], row[2].replace(", ", ";", 1), *row[3:]]) + "\n")
        return self.wrong_field_count(row, rng)
