"""The population register: a fixed-width latin-1 mainframe export of every person, alive and dead."""

from __future__ import annotations

from datetime import date
from random import Random

from citizen_view_synth.extract import FixedWidthExtract, Raw
from citizen_view_synth.people import Person
from citizen_view_synth.render import Renderer

WIDTHS: dict[str, int] = {
    "REC_NO": 10,
    "NATID": 11,
    "SURNAME": 40,
    "MIDDLENAME": 30,
    "FIRSTNAMES": 50,
    "SEX": 1,
    "BIRTHDATE": 8,
    "BIRTHPLACE": 30,
    "STREET": 40,
    "HOUSENO": 6,
    "HOUSENO_ADD": 6,
    "POSTCODE": 7,
    "MUNICIPALITY": 30,
    "MOVED_IN": 8,
    "PREV_STREET": 40,
    "PREV_HOUSENO": 6,
    "PREV_POSTCODE": 7,
    "PREV_MUNICIPALITY": 30,
    "BIRTH_SURNAME": 40,
    "MARRIED_ON": 8,
    "DECEASED_ON": 8,
}
_KEEP_ON_TRUNCATION = WIDTHS["REC_NO"] + WIDTHS["NATID"] + 1


def _ymd(d: date | None) -> str:
    return "" if d is None else f"{d.year:04d}{d.month:02d}{d.day:02d}"


class PopulationRegister(FixedWidthExtract):
    """Everyone, with the least noise (x0.2), current and previous address, birth name, marriage, death."""

    name = "population"
    relpath = "population/register.dat"
    encoding = "latin-1"
    widths = WIDTHS
    noise_factor = 0.2
    bad_kinds = ("truncated",)
    married_forms = False
    stale_addresses = False
    ascii_factor = 0.0

    def select(self, people: list[Person], rng: Random) -> list[tuple[Person, int]]:
        return [(p, 0) for p in people]

    def record_id(self, serial: int) -> str:
        return f"R{serial:09d}"

    def render(self, p: Person, extra: int, rid: str, r: Renderer) -> list[str]:
        y, m, d = r.dob(p)
        a = p.address
        prev = p.prev_address
        return [
            rid,
            p.national_id,
            r.family(p, with_middle=False, natural=True),
            r.text(p.middle) if p.middle else "",
            r.given(p, all_names=True, with_middle=False),
            p.sex,
            f"{y:04d}{m:02d}{d:02d}",
            "" if r.missing() else r.text(p.birth_place),
            r.street(a),
            a.number,
            a.unit,
            r.postcode(a, spaced=True),
            r.text(a.city),  # the register always uses the official municipality name
            _ymd(p.moved_in),
            prev.street if prev else "",
            prev.number if prev else "",
            r.postcode(prev, spaced=True) if prev else "",
            prev.city if prev else "",
            p.birth_family,
            _ymd(p.married_on),
            _ymd(p.died_on),
        ]

    def malform(self, row: list[str], kind: str, rng: Random) -> Raw:
        line = self.line(row, tuple(self.widths.values()))
        return Raw(line[: rng.randint(_KEEP_ON_TRUNCATION, len(line) - 2)] + "\n")
