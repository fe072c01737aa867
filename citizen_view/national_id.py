"""National identifiers under a declared scheme: compacted, and checked only where the scheme has a checksum.

A scheme is `none` (an opaque identifier: an agency's client number, a foreign ID; never validated)
or a python-stdnum module (`nl.bsn`, `no.fodselsnummer`, `us.ssn`, `dk.cpr`, `se.personnummer`,
`be.nn`, ...). The Dutch BSN (11-proof) and Norwegian fødselsnummer (two mod-11 control digits)
have vectorised Polars checks, so a million IDs cost milliseconds; python-stdnum is the reference
they are tested against (tests/test_national_id.py) and checks every other scheme, once per
distinct value.
"""

from __future__ import annotations

import datetime
import importlib
from types import ModuleType

import polars as pl

OPAQUE = "none"


def _module(scheme: str) -> ModuleType:
    return importlib.import_module(f"stdnum.{scheme}")


def has_checksum(scheme: str) -> bool:
    """Whether IDs under this scheme can be valid or invalid (every scheme but `none`)."""
    return scheme != OPAQUE


def compact(expr: pl.Expr, *, scheme: str) -> pl.Expr:
    """The ID without the separators its scheme allows (as python-stdnum compacts); an 8-digit BSN gets its leading zero."""
    if scheme == "nl.bsn":
        cleaned = expr.str.replace_all(r"[\s.\-]", "")
        cleaned = pl.when(cleaned == "").then(None).otherwise(cleaned)
        return pl.when(cleaned.str.contains(r"^[0-9]{8}$")).then(pl.lit("0") + cleaned).otherwise(cleaned)
    if scheme == "no.fodselsnummer":
        cleaned = expr.str.replace_all(r"[\s:\-]", "")
        return pl.when(cleaned == "").then(None).otherwise(cleaned)
    cleaned = expr.str.strip_chars()
    return pl.when(cleaned == "").then(None).otherwise(cleaned)


def _digit(expr: pl.Expr, i: int) -> pl.Expr:
    return expr.str.slice(i, 1).cast(pl.Int64, strict=False)


def _weighted(expr: pl.Expr, weights: tuple[int, ...]) -> pl.Expr:
    return pl.sum_horizontal(_digit(expr, i) * w for i, w in enumerate(weights))


# The shapes take ASCII digits only: the regex engine's \d is any script's digit ("１２３" fullwidth), which the
# checksum would count as 0 and pass.
def _bsn_valid(expr: pl.Expr, today: datetime.date) -> pl.Expr:  # a BSN holds no date: `today` is not read
    shape = expr.str.contains(r"^[0-9]{9}$") & (expr != "000000000")
    total = _weighted(expr, (9, 8, 7, 6, 5, 4, 3, 2)) - _digit(expr, 8)
    return shape & ((total % 11) == 0).fill_null(False)


def _fnr_valid(expr: pl.Expr, today: datetime.date) -> pl.Expr:
    shape = expr.str.contains(r"^[0-9]{11}$")
    k1 = (11 - _weighted(expr, (3, 7, 6, 1, 8, 9, 4, 5, 2)) % 11) % 11
    k2 = (11 - _weighted(expr, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)) % 11) % 11
    checks = (k1 == _digit(expr, 9)) & (k2 == _digit(expr, 10))
    return shape & checks.fill_null(False) & _fnr_birth_date(expr, today).is_not_null()


def _fnr_birth_date(expr: pl.Expr, today: datetime.date) -> pl.Expr:
    """The birth date a fødselsnummer encodes (D- and H-numbers corrected), or null when impossible (or after
    `today`)."""
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
    text = pl.format(
        "{}-{}-{}", year.cast(pl.String), month.cast(pl.String).str.zfill(2), day.cast(pl.String).str.zfill(2)
    )
    born = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    raw_day = _digit(expr, 0) * 10 + _digit(expr, 1)
    return pl.when((raw_day < 80) & (born <= pl.lit(today))).then(born).otherwise(None)


_VECTORISED = {"nl.bsn": _bsn_valid, "no.fodselsnummer": _fnr_valid}


def check(ids: pl.Series, *, scheme: str, today: datetime.date | None = None) -> tuple[pl.Series, pl.Series]:
    """(compacted IDs, valid flags) for a column of IDs; the flag is null for a missing ID or an opaque scheme.
    `today`: the day an ID may not encode a birth date after (default today; python-stdnum's schemes use today)."""
    frame = pl.DataFrame({"id": ids})
    compacted = frame.select(compact(pl.col("id"), scheme=scheme)).to_series()
    if not has_checksum(scheme):
        return compacted.alias("national_id"), pl.Series("national_id_valid", [None] * len(ids), dtype=pl.Boolean)
    if scheme in _VECTORISED:
        valid = (
            pl.DataFrame({"id": compacted})
            .select(
                pl.when(pl.col("id").is_null())
                .then(None)
                .otherwise(_VECTORISED[scheme](pl.col("id"), today or datetime.date.today()))
            )
            .to_series()
        )
        return compacted.alias("national_id"), valid.alias("national_id_valid")
    module = _module(scheme)
    distinct = compacted.drop_nulls().unique()
    packed = [_stdnum_compact(module, v) for v in distinct.to_list()]
    flags = {v: bool(module.is_valid(v)) for v in dict.fromkeys(packed)}
    compacted = compacted.replace_strict(
        distinct, pl.Series(packed, dtype=pl.String), default=None, return_dtype=pl.String
    )
    valid = compacted.replace_strict(list(flags), list(flags.values()), default=None, return_dtype=pl.Boolean)
    return compacted.alias("national_id"), valid.alias("national_id_valid")


def _stdnum_compact(module: ModuleType, value: str) -> str:
    try:
        return str(module.compact(value))
    except Exception:  # noqa: BLE001 - a value python-stdnum cannot even compact is simply not valid
        return value


def is_valid_value(value: str, *, scheme: str) -> bool:
    """Per-value check through python-stdnum (the reference implementation); False for an opaque scheme, and for digits
    of other scripts (fullwidth, Arabic-Indic), which Python's int() would read but the frame checks at ingest do not."""
    if not has_checksum(scheme) or not value.isascii():
        return False
    return bool(_module(scheme).is_valid(value))
