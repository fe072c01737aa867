"""The benefits agency extract: UTF-8 JSON lines, one client with nested name, address and cases."""

from __future__ import annotations

import json
from datetime import date
from random import Random
from typing import Any

from citizen_view_synth.dates import REF, between, years_ago
from citizen_view_synth.extract import JsonlExtract, Raw, RunContext
from citizen_view_synth.people import Person
from citizen_view_synth.pool import Pool, by_age
from citizen_view_synth.render import Renderer

_fromordinal = date.fromordinal
_N_CASES = Pool((1, 2, 3), (0.6, 0.3, 0.1))
_STATUS = Pool(("open", "closed", "rejected"), (0.5, 0.4, 0.1))
_TYPES_CHILD = Pool(("disability", "social_assistance"), (0.7, 0.3))
_TYPES_PARENT_AGE = Pool(
    ("child", "housing", "unemployment", "social_assistance", "disability"), (0.4, 0.2, 0.2, 0.1, 0.1)
)
_TYPES_ADULT = Pool(
    ("unemployment", "housing", "social_assistance", "disability", "child"), (0.3, 0.25, 0.2, 0.15, 0.1)
)
_TYPES_ELDERLY = Pool(("pension", "housing", "disability", "social_assistance"), (0.75, 0.15, 0.05, 0.05))


def _client_rate(age: int) -> float:
    return by_age(age, ((18, 0.06), (25, 0.22), (50, 0.32), (67, 0.2)), 0.8)


def _types_for(age: int) -> Pool[str]:
    if age < 18:
        return _TYPES_CHILD
    if 25 <= age < 50:
        return _TYPES_PARENT_AGE
    return _TYPES_ELDERLY if age >= 67 else _TYPES_ADULT


class BenefitsExtract(JsonlExtract):
    """About 30% of persons (more elderly and parents), a BSN for ~85%, 1-3 benefit cases each."""

    name = "benefits"
    relpath = "benefits/clients.jsonl"
    bad_kinds = ("broken_json",)
    ascii_factor = 0.5

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self._cases = 0
        self._female = "V" if ctx.country == "NL" else "K"

    def select(self, people: list[Person], rng: Random) -> list[tuple[Person, int]]:
        dead_rate = self.noise.dead_still_present * 0.5
        return [(p, 0) for p in people if rng.random() < (_client_rate(p.age) if p.died_on is None else dead_rate)]

    def record_id(self, serial: int) -> str:
        return f"B{serial:07d}"

    def render(self, p: Person, extra: int, rid: str, r: Renderer) -> dict[str, Any]:
        rng = r.rng
        y, m, d = r.dob(p)
        a = r.address(p)
        unit = r.unit(a)
        phone = r.phone(p, style=2)
        return {
            "client_no": rid,
            "bsn": None if rng.random() < 0.15 else r.national_id(p),
            "name": {"given": r.given(p, all_names=rng.random() < 0.6), "family": r.family(p)},
            "birth_date": f"{y:04d}-{m:02d}-{d:02d}",
            "gender": "M" if p.sex == "M" else self._female,
            "address": {
                "street": r.street(a),
                "number": a.number,
                "addition": unit or None,
                "postcode": r.postcode(a, spaced=rng.random() < 0.5),
                "city": r.city(a),
            },
            "phone": phone or None,
            "cases": self._case_list(p, rng),
        }

    def _case_list(self, p: Person, rng: Random) -> list[dict[str, Any]]:
        types = _types_for(p.age)
        first = max(p.dob.toordinal(), years_ago(10))
        last = (p.died_on.toordinal() if p.died_on else REF) - 1
        cases = []
        for _ in range(_N_CASES.pick(rng)):
            self._cases += 1
            start = between(rng, first, last)
            status = _STATUS.pick(rng) if p.died_on is None else "closed"
            if status == "open":
                end = None
            elif status == "rejected":
                end = _fromordinal(min(start + rng.randint(5, 60), last + 1)).isoformat()
            else:
                end = _fromordinal(between(rng, start, last + 1)).isoformat()
            cases.append(
                {
                    "case_id": f"C{self._cases:08d}",
                    "benefit_type": types.pick(rng),
                    "status": status,
                    "start_date": _fromordinal(start).isoformat(),
                    "end_date": end,
                }
            )
        return cases

    def malform(self, row: dict[str, Any], kind: str, rng: Random) -> Raw:
        line = json.dumps(row, ensure_ascii=False)
        if rng.random() < 0.5:
            return Raw(line[: rng.randint(30, len(line) - 2)] + "\n")  # cut off mid-object
        return Raw(line.replace('", "', '" "', 1) + "\n")  # a missing comma
