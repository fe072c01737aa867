"""National identifiers: Dutch BSN (11-proof) and Norwegian fødselsnummer (two mod-11 control digits).

The checks are vectorised Polars expressions so a million IDs cost milliseconds; `python-stdnum` is the
reference they are tested against (tests/test_national_id.py) and the per-value API for callers
outside a frame.
"""

from __future__ import annotations

import polars as pl
from stdnum.nl import bsn as _bsn
from stdnum.no import fodselsnummer as _fnr

LENGTH = {"NL": 9, "NO": 11}


def compact(expr: pl.Expr, *, country: str) -> pl.Expr:
    """Strip the separators each country writes (as python-stdnum does); an 8-digit BSN gets its leading zero back."""
    cleaned = expr.str.replace_all(r"[\s.\-]" if country == "NL" else r"[\s:\-]", "")
    cleaned = pl.when(cleaned == "").then(None).otherwise(cleaned)
    if country == "NL":
        return pl.when(cleaned.str.contains(r"^\d{8}$")).then(pl.lit("0") + cleaned).otherwise(cleaned)
    return cleaned


def _digit(expr: pl.Expr, i: int) -> pl.Expr:
    return expr.str.slice(i, 1).cast(pl.Int64, strict=False)


def _weighted(expr: pl.Expr, weights: tuple[int, ...]) -> pl.Expr:
    return pl.sum_horizontal(_digit(expr, i) * w for i, w in enumerate(weights))


def is_valid(expr: pl.Expr, *, country: str) -> pl.Expr:
    """True where a compacted ID passes its country's checksum (null stays null)."""
    if country == "NL":
        shape = expr.str.contains(r"^\d{9}$") & (expr != "000000000")
        total = _weighted(expr, (9, 8, 7, 6, 5, 4, 3, 2)) - _digit(expr, 8)
        return pl.when(expr.is_null()).then(None).otherwise(shape & ((total % 11) == 0).fill_null(False))
    if country == "NO":
        shape = expr.str.contains(r"^\d{11}$")
        k1 = (11 - _weighted(expr, (3, 7, 6, 1, 8, 9, 4, 5, 2)) % 11) % 11
        k2 = (11 - _weighted(expr, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)) % 11) % 11
        checks = (k1 == _digit(expr, 9)) & (k2 == _digit(expr, 10))
        return pl.when(expr.is_null()).then(None).otherwise(
            shape & checks.fill_null(False) & _fnr_birth_date(expr).is_not_null()
        )
    raise ValueError(f"unknown country {country!r} (expected NL or NO)")


def _fnr_birth_date(expr: pl.Expr) -> pl.Expr:
    """The birth date a fødselsnummer encodes (D- and H-numbers corrected), or null when impossible."""
    day = _digit(expr, 0) * 10 + _digit(expr, 1)
    month = _digit(expr, 2) * 10 + _digit(expr, 3)
    yy = _digit(expr, 4) * 10 + _digit(expr, 5)
    ind = expr.str.slice(6, 3).cast(pl.Int64, strict=False)
    day = pl.when(day > 40).then(day - 40).otherwise(day)
    month = pl.when(month > 40).then(month - 40).otherwise(month)
    year = (
        pl.when(ind < 500)
        .then(yy + 1900)
        .when((ind < 750) & (yy >= 54))
        .then(yy + 1800)
        .when((ind < 1000) & (yy < 40))
        .then(yy + 2000)
        .when((ind >= 900) & (yy >= 40))
        .then(yy + 1900)
        .otherwise(None)
    )
    text = pl.format("{}-{}-{}", year.cast(pl.String), month.cast(pl.String).str.zfill(2), day.cast(pl.String).str.zfill(2))
    born = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    raw_day = _digit(expr, 0) * 10 + _digit(expr, 1)
    return pl.when((raw_day < 80) & (born <= pl.lit(_today()))).then(born).otherwise(None)


def _today():
    import datetime

    return datetime.date.today()


def is_valid_value(value: str, *, country: str) -> bool:
    """Per-value check through python-stdnum (the reference implementation)."""
    module = _bsn if country == "NL" else _fnr
    return bool(module.is_valid(value))
