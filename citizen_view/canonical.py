"""Parsed rows to canonical records, value by value: a value that does not parse or validate is set aside, not the row.

A date that is not a date in its declared format (or is implausible), a national ID that fails its
declared scheme's checksum, a phone number, postcode, sex or e-mail that cannot be read: each becomes
null in the canonical record, and the raw value with the reason becomes one row of `field_issues`.
The record itself is loaded and can still be linked on its other fields; for a birth date and a
national ID the text as given is kept beside (`date_of_birth_text` in yyyymmdd order,
`national_id_text` compacted) so comparisons can still use it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from citizen_view import national_id
from citizen_view import standardise as std
from citizen_view.contract import STREET_AND_NUMBER
from citizen_view.contract import CanonicalField as F
from citizen_view.encoding.schema import ENCODED_COLUMNS

if TYPE_CHECKING:
    from citizen_view.contract import QualityConfig, SourceConfig

DEFAULT_DATE_FORMAT = "%Y-%m-%d"
# The first word of a date's `field_issues.reason`, one per kind of bad date (quality/rules.py judges them apart):
UNREADABLE = (
    "unreadable"  # not the declared format's shape at all ("14/03/1985", "unknown" in %Y-%m-%d): a broken extract
)
IMPOSSIBLE = "impossible"  # the format's shape, digits in place, but no such day ("1856-86-18"): a keying typo
IMPLAUSIBLE = "implausible"  # a real date outside the plausibility years (quality settings): a keying typo too
# ... before the earliest plausible date: the one implausible reason that never depends on the day (ingest.judged_alike)
IMPLAUSIBLE_EARLY = f"{IMPLAUSIBLE}: before "
SET_ASIDE = "_issues"  # readers.ISSUES: values a reader set aside, as a JSON list of {column, raw, reason}
ISSUE_SCHEMA = {"row": pl.UInt32, "field": pl.String, "raw": pl.String, "reason": pl.String}
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


@dataclass(frozen=True)
class Rules:
    """What a source's values are checked against: its country, its ID scheme, the plausibility bounds and the day
    they are judged on (`today`: an ID may not encode a birth date after it; the latest plausible date is it unless
    the contract sets one)."""

    country: str | None
    id_scheme: str
    earliest_date: dt.date
    latest_date: dt.date
    today: dt.date

    @classmethod
    def of(
        cls, source: SourceConfig, *, country: str | None, quality: QualityConfig, today: dt.date | None = None
    ) -> Rules:
        today = today or dt.date.today()
        latest = quality.latest_date_of_birth or today
        return cls(country, source.id_scheme(country), quality.earliest_date_of_birth, latest, today)


class _Rows:
    """Parsed rows of one source being made canonical, and the issues found in them so far."""

    def __init__(self, df: pl.DataFrame, source: SourceConfig):
        self.fields = source.fields
        # Each mapped text column tidied once, all in one pass (polars runs the columns side by side), not once per
        # use: a field is read by several checks and its value, and tidying is a regex over every row. (A mapped column
        # the frame lacks, or holds as other than text, is tidied where it is used, as before.)
        texts = sorted({m.column for m in self.fields.values() if df.schema.get(m.column) == pl.String})
        self.tidied = {c: f"_tidy{i}" for i, c in enumerate(texts)}
        self.df = df.with_row_index("_pos").with_columns(std.tidy(pl.col(c)).alias(t) for c, t in self.tidied.items())
        self.issues: list[pl.DataFrame] = []

    def col(self, name: str) -> pl.Expr:
        """The tidied column a canonical field is mapped to, or nulls when the source does not map it."""
        if name not in self.fields:
            return pl.lit(None, dtype=pl.String)
        column = self.fields[name].column
        return pl.col(self.tidied[column]) if column in self.tidied else std.tidy(pl.col(column))

    def kept(self, expr: pl.Expr, name: str) -> pl.Expr:
        """`expr` computed once into the rows (as column `_kept_<name>`), for the checks and the value that all read
        it: an expression used in several places would be computed again in each."""
        self.df = self.df.with_columns(expr.alias(f"_kept_{name}"))
        return pl.col(f"_kept_{name}")

    def series(self, expr: pl.Expr) -> pl.Series:
        """One value per row (literals broadcast)."""
        return self.df.with_columns(expr.alias("_series")).get_column("_series")

    def nulls(self, name: str, dtype: pl.DataType) -> pl.Series:
        return pl.Series(name, [None] * self.df.height, dtype=dtype)

    def issue(self, field: str, bad: pl.Expr, raw: pl.Expr, reason: pl.Expr | str) -> None:
        """Set aside the raw values of the rows where `bad` holds, with the reason."""
        if field not in self.fields:  # an unmapped field has no values (and a scalar filter trips polars on big frames)
            return
        reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
        found = self.df.filter(bad.fill_null(False)).select(
            pl.col("_pos").alias("row"),
            pl.lit(field).alias("field"),
            raw.cast(pl.String).alias("raw"),
            reason_expr.cast(pl.String).alias("reason"),
        )
        if found.height:
            self.issues.append(found)

    def issues_frame(self) -> pl.DataFrame:
        if not self.issues:
            return pl.DataFrame(schema=ISSUE_SCHEMA)
        return pl.concat([i.select(list(ISSUE_SCHEMA)).cast(ISSUE_SCHEMA) for i in self.issues]).sort("row", "field")


def canonical_records(
    df: pl.DataFrame, source: SourceConfig, *, rules: Rules, data_columns: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(canonical records, field issues) for parsed rows carrying `_rid`, `_file`, `_line`, `_extracted_at`.

    The issues frame has `row` (position in `df`), `field`, `raw` and `reason`.
    """
    rows = _Rows(df, source)
    # Values the reader set aside (a JSON object where a name is expected, a spreadsheet formula without a value...).
    if SET_ASIDE in rows.df.columns:
        rows.issues.extend(_set_aside(rows.df, source))
    dates, dob_text = _dates(rows, rules)
    identity = _identity_columns(rows, rules)
    out = _record(rows, source, rules, data_columns).with_columns(
        dates[F.DATE_OF_BIRTH].alias("date_of_birth"),
        dob_text.alias("date_of_birth_text"),
        dates[F.DATE_OF_DEATH].alias("date_of_death"),
        *identity,
    )
    out = _names(_street_and_number(rows, out), rows.fields)
    out = _name_keys(out, phone=_phone(rows, out, rules))
    return out.select([pl.col(c).cast(t) for c, t in std.CANONICAL_COLUMNS.items()]), rows.issues_frame()


def _dates(rows: _Rows, rules: Rules) -> tuple[dict[str, pl.Series], pl.Series]:
    """Birth and death dates parsed with the declared format, held to the plausibility bounds; the birth date's text."""
    f = rows.fields
    dates: dict[str, pl.Series] = {}
    dob_text = rows.nulls("date_of_birth_text", pl.String)
    for name in (F.DATE_OF_BIRTH, F.DATE_OF_DEATH):
        if name not in f:
            dates[name] = rows.nulls(name, pl.Date)
            continue
        fmt = f[name].format or DEFAULT_DATE_FORMAT
        raw = rows.col(name)
        text = raw
        if not _has_time(fmt) and rows.df.select(raw.str.contains(":", literal=True).any()).item():
            text = raw.str.replace(MIDNIGHT, "")  # a date a database wrote as a timestamp (most extracts hold none)
        parsed = text.str.strptime(pl.Date, fmt, strict=False)
        if (widths := _full_widths(fmt)) is not None:  # "1990111" in %Y%m%d: 1 Nov or 11 Jan is no reading to pick
            parsed = pl.when(text.str.contains(widths)).then(parsed)
        if two_digit_year(fmt):
            written = pl.col("_extracted_at").dt.date() if "_extracted_at" in rows.df.columns else None
            parsed = not_after(parsed, rules.latest_date, written)
        parsed = rows.kept(parsed, f"parsed_{name}")
        unparsed = text.is_not_null() & parsed.is_null()
        shaped = rows.kept(well_shaped(text, fmt), f"shaped_{name}")
        where = f"(column {f[name].column})"
        rows.issue(name, unparsed & shaped.not_(), raw, unparsed_date_reason(False, fmt, where))
        rows.issue(name, unparsed & shaped, raw, unparsed_date_reason(True, fmt, where))
        too_early = parsed.is_not_null() & (parsed < pl.lit(rules.earliest_date))
        too_late = parsed.is_not_null() & (parsed > pl.lit(rules.latest_date))
        implausible = too_early | too_late
        rows.issue(name, too_early, raw, implausible_date_reason(before=rules.earliest_date))
        rows.issue(name, too_late, raw, implausible_date_reason(after=rules.latest_date))
        dates[name] = rows.series(pl.when(implausible).then(None).otherwise(parsed)).alias(name)
        if name == F.DATE_OF_BIRTH:
            dob_text = date_text(rows.series(text), rows.series(parsed), fmt)
    return dates, dob_text


# A time of midnight after a date (" 00:00:00", "T00:00:00.000Z", "T00:00+01:00"): how databases and their exports
# write a date held as a timestamp; the date is the one meant, in the offset given. Any other time is not taken off:
# a birth date at 23:00 is most often a midnight moved by a time zone, and which day was meant is not in the text.
MIDNIGHT = r"[ T]00:00(?::00(?:[.,]0+)?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"


def _has_time(fmt: str) -> bool:
    """Whether a date format itself reads a time of day (then its text is parsed as it is)."""
    return any(d in re.findall(r"%.", fmt) for d in ("%H", "%I", "%M", "%S", "%T", "%R", "%f", "%p", "%z", "%Z", "%c"))


def two_digit_year(fmt: str) -> bool:
    """Whether a date format gives the year in two digits (%y) and nowhere in four."""
    directives = re.findall(r"%.", fmt)
    return "%y" in directives and "%Y" not in directives


def not_after(parsed: pl.Expr, latest: dt.date, written: pl.Expr | None = None) -> pl.Expr:
    """Dates read with a two-digit year (%y, which reads 00-68 as 2000-2068) put in the century that keeps them on or
    before the day their file was written (`written`, per row; null: unknown) and the latest plausible date: a birth
    or death cannot follow the extract that records it. "03-07-45" is 1945, not 2045; "01-01-20" is 2020 in a file
    written in 2026, 1920 in one written in 2019. (A person over 100 whose year is written in two digits reads as a
    child: the format itself cannot tell them apart.)"""
    limit = pl.lit(latest) if written is None else pl.min_horizontal(written, pl.lit(latest))
    return pl.when(parsed > limit).then(parsed.dt.offset_by("-100y")).otherwise(parsed)


def _identity_columns(rows: _Rows, rules: Rules) -> list[pl.Series]:
    """The national ID under the declared scheme: the checksum decides whether the value is kept."""
    id_text, id_valid = national_id.check(
        rows.series(rows.col(F.NATIONAL_ID)), scheme=rules.id_scheme, today=rules.today
    )
    failed = id_valid.fill_null(True).not_()
    rows.issue(F.NATIONAL_ID, pl.lit(failed), rows.col(F.NATIONAL_ID), f"fails the {rules.id_scheme} checksum")
    nid = pl.select(pl.when(failed).then(None).otherwise(id_text)).to_series()
    return [nid.alias("national_id"), id_valid.alias("national_id_valid"), id_text.alias("national_id_text")]


def _record(rows: _Rows, source: SourceConfig, rules: Rules, data_columns: list[str]) -> pl.DataFrame:
    """The record's provenance, names, address and contact columns; a sex, postcode or e-mail that cannot be read is
    set aside."""
    col = rows.col
    sex = rows.kept(std.normalise_sex(col(F.SEX)), "sex")
    rows.issue(
        F.SEX,
        col(F.SEX).is_not_null() & sex.is_null(),
        col(F.SEX),
        "not a known way of writing sex (M/F, male/female, ...)",
    )
    postcode = rows.kept(std.normalise_postcode(col(F.POSTCODE), country=rules.country), "postcode")
    bad_postcode = rows.kept(
        postcode.is_not_null() & std.valid_postcode(postcode, country=rules.country).not_(), "bad_postcode"
    )
    rows.issue(F.POSTCODE, bad_postcode, col(F.POSTCODE), f"not a postcode of {rules.country}")
    email = rows.kept(col(F.EMAIL).str.to_lowercase(), "email")
    bad_email = rows.kept(email.is_not_null() & email.str.contains(_EMAIL).not_(), "bad_email")
    rows.issue(F.EMAIL, bad_email, col(F.EMAIL), "not an e-mail address")
    return rows.df.select(
        pl.lit(source.name).alias("source"),
        pl.col("_rid").alias("source_record_id"),
        pl.col("_file").alias("source_file"),
        pl.col("_line").alias("source_line"),
        pl.col("_extracted_at").alias("extracted_at"),
        col(F.GIVEN_NAME).alias("given_name"),
        col(F.MIDDLE_NAME).alias("middle_name"),
        col(F.FAMILY_NAME).alias("family_name"),
        col(F.FULL_NAME).alias("full_name"),
        sex.alias("sex"),
        col(F.STREET).alias("street"),
        col(F.HOUSE_NUMBER).alias("house_number"),
        col(F.UNIT).alias("unit"),
        pl.when(bad_postcode).then(None).otherwise(postcode).alias("postcode"),
        col(F.CITY).alias("city"),
        col(F.AREA_CODE).str.to_uppercase().alias("area_code"),
        col(F.BIRTH_PLACE).alias("birth_place"),
        pl.when(bad_email).then(None).otherwise(email).alias("email"),
        col(F.PHONE).alias("phone"),
        _attributes(source, data_columns).alias("attributes"),
        *[
            (pl.col(c) if source.encoded and c in data_columns else pl.lit(None, dtype=pl.String)).alias(c)
            for c in ENCODED_COLUMNS
        ],
    )


def _street_and_number(rows: _Rows, out: pl.DataFrame) -> pl.DataFrame:
    """One column holding both street and number: split it, and record what cannot be split."""
    if STREET_AND_NUMBER not in rows.fields:
        return out
    combined = rows.series(rows.col(STREET_AND_NUMBER))
    parts = std.split_street_and_number(pl.col("v"))
    split = pl.DataFrame({"v": combined}).select(p.alias(str(i)) for i, p in enumerate(parts))
    street, number, unsplit = (split.to_series(i) for i in range(3))
    rows.issue(
        STREET_AND_NUMBER,
        pl.lit(unsplit),
        rows.col(STREET_AND_NUMBER),
        "no house number found at the start or the end (kept whole as the street)",
    )
    return out.with_columns(street.alias("street"), number.alias("house_number"))


def _names(out: pl.DataFrame, fields) -> pl.DataFrame:
    """Name parts and full name filled from each other, and the folded (`_std`) forms of names and places."""
    if F.FULL_NAME in fields:  # a one-field name fills the name parts a source did not map separately
        given, family = std.split_full_name(out.get_column("full_name"))
        out = out.with_columns(
            pl.coalesce("given_name", given).alias("given_name"),
            pl.coalesce("family_name", family).alias("family_name"),
        )
    out = out.with_columns(
        pl.coalesce(
            "full_name",
            std.tidy(pl.concat_str(["given_name", "middle_name", "family_name"], separator=" ", ignore_nulls=True)),
        ).alias("full_name")
    )
    for name in ("given_name", "middle_name", "family_name", "street", "city", "birth_place"):
        out = out.with_columns(std.per_distinct(name, std.fold, out).alias(f"{name}_std"))
    # Full names are nearly unique: fold the parts (few distinct values) and join them, in given-family order.
    return out.with_columns(
        pl.col("family_name_std").alias("_family_folded"),
        # the parts are folded (single-spaced, trimmed, never empty): joined, they need no tidying, only none -> null
        std.empty_as_null(
            pl.concat_str(["given_name_std", "middle_name_std", "family_name_std"], separator=" ", ignore_nulls=True)
        ).alias("full_name_std"),
    )


def _phone(rows: _Rows, out: pl.DataFrame, rules: Rules) -> pl.Series:
    """Phone numbers in international form; one that cannot be read is set aside."""
    phone = std.normalise_phone(out, "phone", country=rules.country)
    bad_phone = out.get_column("phone").is_not_null() & phone.is_null()
    if bad_phone.any():
        where = f" of {rules.country}" if rules.country else " in international form (+...)"
        rows.issues.append(
            pl.DataFrame(
                {
                    "row": rows.df.get_column("_pos").filter(bad_phone),
                    "field": F.PHONE.value,
                    "raw": out.get_column("phone").filter(bad_phone),
                    "reason": f"not a phone number{where}",
                }
            )
        )
    return phone


def _name_keys(out: pl.DataFrame, *, phone: pl.Series) -> pl.DataFrame:
    """The keys linkage blocks and compares on: family name without prefix, the prefix, first name, initials."""
    family, prefix = std.per_distinct_each("_family_folded", [std.family_key, std.name_prefix], out)
    first, initials = std.per_distinct_each("given_name_std", [std.first_name_of, std.initials_of], out)
    return out.with_columns(
        family.alias("family_name_std"),
        prefix.alias("name_prefix"),
        first.alias("first_name_std"),
        initials.alias("initials"),
        phone.alias("phone"),
    )


def _set_aside(df: pl.DataFrame, source: SourceConfig) -> list[pl.DataFrame]:
    """One issue per canonical field mapped to a column whose value the reader set aside."""
    item = pl.Struct({"column": pl.String, "raw": pl.String, "reason": pl.String})
    found = (
        df.filter(pl.col(SET_ASIDE).is_not_null())
        .select(pl.col("_pos").alias("row"), pl.col(SET_ASIDE).str.json_decode(pl.List(item)).alias("_item"))
        .explode("_item")
        .unnest("_item")
    )
    out = []
    for canonical, mapping in source.fields.items():
        hits = found.filter(pl.col("column") == mapping.column)
        if hits.height:
            out.append(hits.select("row", pl.lit(canonical).alias("field"), "raw", "reason"))
    return out


def _attributes(source: SourceConfig, data_columns: list[str]) -> pl.Expr:
    """The source's unmapped columns as one JSON object (shown on the caseworker profile)."""
    mapped = {m.column for m in source.fields.values()} | ({source.record_id} if source.record_id else set())
    if source.encoded:
        mapped |= set(ENCODED_COLUMNS)
    rest = [c for c in data_columns if c not in mapped]
    if not rest:
        return pl.lit(None, dtype=pl.String)
    return pl.struct([pl.col(c) for c in rest]).struct.json_encode()


# --- a birth date's digits, even when it is not a date --------------------------------------------

_PARTS = {"%Y": ("Y", 4), "%m": ("m", 2), "%d": ("d", 2)}


def date_text(raw: pl.Series, parsed: pl.Series, fmt: str) -> pl.Series:
    """yyyymmdd text of each date: from the parsed date, else the characters at the format's year, month
    and day positions ("19900270" stays "19900270"; "02/|5/1990" in %d/%m/%Y gives "1990|502"), else null."""
    from_date = parsed.dt.strftime("%Y%m%d")
    pattern = _format_regex(fmt)
    if pattern is None:
        return from_date.alias("date_of_birth_text")
    unparsed = raw.filter(parsed.is_null() & raw.is_not_null()).unique()
    if unparsed.len() == 0:
        return from_date.alias("date_of_birth_text")
    rearranged = [_rearrange(v, pattern) for v in unparsed.to_list()]
    fallback = raw.replace_strict(
        unparsed, pl.Series(rearranged, dtype=pl.String), default=None, return_dtype=pl.String
    )
    return pl.select(pl.coalesce(from_date, fallback)).to_series().alias("date_of_birth_text")


def well_shaped(text: pl.Expr, fmt: str) -> pl.Expr:
    """Whether each text has the shape of `fmt` (digits where its %Y, %m and %d are, its separators between),
    whatever the digits say. Under a format with other directives (%b, %y, ...) no text counts as well shaped."""
    pattern = _format_regex(fmt, digits=True)
    if pattern is None:
        return pl.lit(False)
    return text.str.contains(pattern.pattern).fill_null(False)


def date_shaped(text: str, fmt: str) -> bool:
    """`well_shaped` for one text."""
    pattern = _format_regex(fmt, digits=True)
    return pattern is not None and pattern.search(text) is not None


def unparsed_date_reason(shaped: bool, fmt: str, where: str) -> str:
    """Why a date text that does not parse in `fmt` is set aside: a keying typo when it has the format's shape, else
    unreadable (`field_issues.reason`; quality/rules.py judges the two apart by the first word)."""
    if shaped:
        return f"{IMPOSSIBLE}: digits in the format {fmt}, but no such date {where}"
    return f"{UNREADABLE}: not in the format {fmt} {where}"


def implausible_date_reason(*, before: dt.date | None = None, after: dt.date | None = None) -> str:
    """Why a real date is set aside as implausible: `before` the earliest plausible date, or `after` the latest (which
    is the day of the load unless the contract sets one: only that reason names the day)."""
    if (before is None) == (after is None):
        raise ValueError("implausible_date_reason takes one of before= and after=")
    return (
        f"{IMPLAUSIBLE_EARLY}{before} (quality settings)"
        if before
        else f"{IMPLAUSIBLE}: after {after} (quality settings)"
    )


def _format_regex(fmt: str, *, digits: bool = False, full: bool = False) -> re.Pattern[str] | None:
    r"""A regex with Y, m and d groups for a strptime format made of %Y, %m, %d and literal separators; `digits`:
    the groups take ASCII digits only (else any character, so a typo'd digit still has its place); `full`: ASCII
    digits, each group at its full width (a day or month of one digit allowed otherwise). (Not `\d`: the regex
    engines' `\d` takes any script's digits.)"""
    out, i = [], 0
    char = "[0-9]" if full or digits else "."
    while i < len(fmt):
        token = fmt[i : i + 2]
        if token in _PARTS:
            group, width = _PARTS[token]
            exact = group == "Y" or full
            out.append(f"(?P<{group}>{char}{{{width}}})" if exact else f"(?P<{group}>{char}{{1,{width}}}?)")
            i += 2
        elif fmt[i] == "%":
            return None  # a format with other directives (%b, %y, ...) is not rearranged
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    pattern = "".join(out)
    if not all(f"(?P<{g}>" in pattern for g in ("Y", "m", "d")):
        return None
    return re.compile(f"^{pattern}$")


def _full_widths(fmt: str) -> str | None:
    """For a format in which two of %Y, %m and %d touch (%Y%m%d, %d%m%Y), the regex of a date written with each at
    its full width: strptime reads "1990111" as 1990-11-01, one guess of two. None for other formats (a separator
    tells where "5-1-1990" ends its day and month)."""
    pattern = _format_regex(fmt, full=True) if re.search(r"%[Ymd]%[Ymd]", fmt) else None
    return pattern.pattern if pattern is not None else None


def _rearrange(value: str, pattern: re.Pattern[str]) -> str | None:
    m = pattern.match(value)
    if m is None:
        return None
    return m["Y"] + m["m"].rjust(2, "0") + m["d"].rjust(2, "0")
