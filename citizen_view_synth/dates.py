"""The fixed reference date of the synthetic world and small date helpers (no wall clock: output is reproducible)."""

from __future__ import annotations

from datetime import date
from random import Random

REFERENCE_DATE = date(2025, 1, 1)
"""'Today' in the synthetic world; ages, moves and deaths are relative to it."""
REF = REFERENCE_DATE.toordinal()
TAX_YEAR = REFERENCE_DATE.year - 1
DAYS_PER_YEAR = 365.2425


def years_ago(years: float) -> int:
    """The ordinal of the day `years` before the reference date."""
    return REF - int(years * DAYS_PER_YEAR)


def add_years(ordinal: int, years: float) -> int:
    """`ordinal` plus a number of years, as an ordinal."""
    return ordinal + int(years * DAYS_PER_YEAR)


def between(rng: Random, lo: int, hi: int) -> int:
    """A uniform day ordinal in [lo, hi]; `lo` when the range is empty."""
    return lo if hi <= lo else rng.randint(lo, hi)


def age_on(born: date, on: date = REFERENCE_DATE) -> int:
    """Completed years of age on a day."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
