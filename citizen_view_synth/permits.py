"""The municipal permits extract: one xlsx sheet, one row per permit, applicant as one free-text name."""

from __future__ import annotations

from datetime import date, datetime
from random import Random
from typing import Any

import xlsxwriter

from citizen_view_synth.dates import REFERENCE_DATE, add_years, between, years_ago
from citizen_view_synth.extract import Extract
from citizen_view_synth.people import Person
from citizen_view_synth.pool import Pool
from citizen_view_synth.render import Renderer
from citizen_view_synth.spelling import initials

_fromordinal = date.fromordinal
COLUMNS = (
    "permit_no",
    "permit_type",
    "applicant",
    "email",
    "phone",
    "street",
    "house_number",
    "postcode",
    "city",
    "applied_on",
    "status",
)
SHEET = "permits"
MAX_ROWS = 1_048_576  # Excel's sheet limit, header included
_N_PERMITS = Pool((1, 2, 3), (0.7, 0.22, 0.08))
_TYPE = Pool(("parking", "building"), (0.6, 0.4))
_STATUS = Pool(("granted", "pending", "refused"), (0.7, 0.15, 0.15))
_FIXED_CREATED = datetime(REFERENCE_DATE.year, REFERENCE_DATE.month, REFERENCE_DATE.day)


class PermitsExtract(Extract):
    """About 20% of adults with 1-3 permits each (so people repeat); no birth date, no national ID.

    Written with xlsxwriter in constant-memory mode, every cell a string so leading zeros survive.
    Rows beyond Excel's sheet limit are dropped (and left out of the truth).
    """

    name = "permits"
    relpath = "permits/permits.xlsx"

    def open(self) -> None:
        self._book = xlsxwriter.Workbook(str(self.path), {"constant_memory": True})
        self._book.set_properties(
            {
                "title": "Municipal permits",
                "author": "citizen_view_synth",
                "company": "Synthetic municipality",
                "created": _FIXED_CREATED,
            }
        )
        self._sheet = self._book.add_worksheet(SHEET)
        for col, title in enumerate(COLUMNS):
            self._sheet.write_string(0, col, title)
        self._row = 1
        self.dropped = 0
        self.dropped_in_chunk = 0

    def select(self, people: list[Person], rng: Random) -> list[tuple[Person, int]]:
        dead_rate = self.noise.dead_still_present * 0.5
        picks: list[tuple[Person, int]] = []
        for p in people:
            if p.age >= 18 and rng.random() < (0.2 if p.died_on is None else dead_rate):
                picks.extend((p, k) for k in range(_N_PERMITS.pick(rng)))
        return picks

    def record_id(self, serial: int) -> str:
        return f"PV{serial:07d}"

    def render(self, p: Person, extra: int, rid: str, r: Renderer) -> list[str]:
        rng = r.rng
        a = r.address(p)
        style = rng.random()
        if style < 0.6:
            given = r.given(p, all_names=False)
        elif style < 0.8:
            given = initials(r.given(p, all_names=rng.random() < 0.5, with_middle=False))
        else:
            given = r.given(p, all_names=True)
        applied = between(
            rng,
            max(add_years(p.dob.toordinal(), 18), years_ago(6)),
            (p.died_on.toordinal() if p.died_on else REFERENCE_DATE.toordinal()) - 1,
        )
        return [
            rid,
            _TYPE.pick(rng),
            f"{given} {r.family(p, natural=True)}",
            r.email(p),
            r.phone(p),
            r.street(a),
            r.house_number(a, with_unit=True),
            r.postcode(a, spaced=rng.random() < 0.5),
            r.city(a),
            _fromordinal(applied).isoformat(),
            _STATUS.pick(rng),
        ]

    def write_chunk(self, people: list[Person], chunk: int) -> list[tuple[str, str]]:
        truth = super().write_chunk(people, chunk)
        kept = len(truth) - self.dropped_in_chunk
        self.records -= self.dropped_in_chunk
        return truth[:kept]

    def emit(self, rows: list[Any]) -> None:
        room = MAX_ROWS - self._row
        self.dropped_in_chunk = max(0, len(rows) - room)
        self.dropped += self.dropped_in_chunk
        write = self._sheet.write_string
        row_no = self._row
        for row in rows[: max(0, room)]:
            for col, value in enumerate(row):
                if value:
                    write(row_no, col, value)
            row_no += 1
        self._row = row_no

    def close(self) -> None:
        self._book.close()
