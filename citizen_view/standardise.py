"""The canonical, standardised record: one shape for every source, originals kept beside folded values.

Display columns (`given_name`, `family_name`, `street`, ...) keep the source's spelling with whitespace
tidied; `*_std` columns are folded for matching: transliterated to ASCII (ø -> o, æ -> ae), lower-case,
punctuation removed. Text functions run once per distinct value, never per row.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import phonenumbers
import polars as pl
from anyascii import anyascii

from citizen_view.encoding.schema import ENCODED_COLUMNS

# Name particles that belong to the family name but are not compared as part of it (Dutch
# tussenvoegsels and their abbreviations, plus the few German/French/Italian ones seen in registers).
NAME_PREFIXES: frozenset[str] = frozenset(
    "van der den de het t ten ter te vd v d von vom zu la le l du da di del della dos das in op uit aan bij s".split()
)
_PREFIX_ALT = r"(?:van|der|den|de|het|'t|ten|ter|te|vd|v\.d\.|v/d|von|vom|zu|la|le|du|da|di|del|della|dos|das|in|op|uit|aan|bij|'s)"
# "Jan Pieter van der Berg", "J. de Vries", "Anna Jansen-de Vries": family = last word with the particles before it.
_NATURAL = re.compile(rf"(?i)^(?P<given>.+?)\s+(?P<family>(?:\S+-(?:{_PREFIX_ALT}\s+)*)?(?:{_PREFIX_ALT}\s+)*\S+)$")
# "DE VRIES, Jan Pieter", "Berg, Jan van der": trailing particles after the given names move to the family name.
_COMMA = re.compile(rf"(?i)^(?P<family>[^,]+?)\s*,\s*(?P<given>.*?)(?P<particles>(?:\s+{_PREFIX_ALT})*)\s*$")

CANONICAL_COLUMNS: dict[str, pl.DataType] = {
    "source": pl.String,
    "source_record_id": pl.String,
    "source_file": pl.String,
    "source_line": pl.Int64,
    "extracted_at": pl.Datetime("us", "UTC"),
    "given_name": pl.String,
    "given_name_std": pl.String,
    "first_name_std": pl.String,
    "initials": pl.String,
    "middle_name": pl.String,
    "middle_name_std": pl.String,
    "family_name": pl.String,
    "family_name_std": pl.String,
    "name_prefix": pl.String,
    "full_name": pl.String,
    "full_name_std": pl.String,
    "date_of_birth": pl.Date,
    "date_of_birth_text": pl.String,
    "date_of_death": pl.Date,
    "sex": pl.String,
    "national_id": pl.String,
    "national_id_valid": pl.Boolean,
    "national_id_text": pl.String,
    "street": pl.String,
    "street_std": pl.String,
    "house_number": pl.String,
    "unit": pl.String,
    "postcode": pl.String,
    "city": pl.String,
    "city_std": pl.String,
    "area_code": pl.String,
    "birth_place": pl.String,
    "birth_place_std": pl.String,
    "email": pl.String,
    "phone": pl.String,
    "attributes": pl.String,
    # Encodings of an `encoded: true` source (citizen_view/encoding/schema.py); null for plain sources.
    **{c: pl.String for c in ENCODED_COLUMNS},
}

_SEX = {
    "m": "M",
    "male": "M",
    "man": "M",
    "mann": "M",
    "mannlig": "M",
    "1": "M",
    "f": "F",
    "female": "F",
    "v": "F",
    "vrouw": "F",
    "k": "F",
    "kvinne": "F",
    "kvinnelig": "F",
    "w": "F",
    "woman": "F",
    "2": "F",
}
# Postcode shapes of the countries whose format is checked; other countries' postcodes are only tidied.
POSTCODE_PATTERNS: dict[str, str] = {"NL": r"^[0-9]{4}[A-Z]{2}$", "NO": r"^[0-9]{4}$"}


def fold(text: str | None) -> str | None:
    """Matching form of a text: ASCII, lower-case, punctuation to spaces, single spaces."""
    if text is None:
        return None
    out = re.sub(r"[^a-z0-9]+", " ", anyascii(text).lower()).strip()
    return out or None


def per_distinct(expr_name: str, fn: Callable[[str], str | None], frame: pl.DataFrame) -> pl.Series:
    """Apply a Python text function once per distinct value of a column and broadcast the result."""
    return per_distinct_each(expr_name, [fn], frame)[0]


def per_distinct_each(expr_name: str, fns: list[Callable[[str], str | None]], frame: pl.DataFrame) -> list[pl.Series]:
    """`per_distinct` of each of `fns` over one column, its distinct values found once."""
    col = frame.get_column(expr_name)
    distinct = col.drop_nulls().unique()
    values = distinct.to_list()
    return [
        col.replace_strict(
            distinct, pl.Series([fn(v) for v in values], dtype=pl.String), default=None, return_dtype=pl.String
        )
        for fn in fns
    ]


def tidy(expr: pl.Expr) -> pl.Expr:
    """Collapse runs of whitespace and trim; empty becomes null."""
    return empty_as_null(expr.str.replace_all(r"\s+", " ").str.strip_chars())


def empty_as_null(text: pl.Expr) -> pl.Expr:
    return pl.when(text == "").then(None).otherwise(text)


def family_key(folded: str | None) -> str | None:
    """Folded family name without leading particles ("van der berg" -> "berg"); the last word always stays."""
    if not folded:
        return None
    words = folded.split()
    i = 0
    while i < len(words) - 1 and words[i] in NAME_PREFIXES:
        i += 1
    return " ".join(words[i:])


def name_prefix(folded: str | None) -> str | None:
    """The particles `family_key` removed ("van der berg" -> "van der")."""
    if not folded:
        return None
    key = family_key(folded) or ""
    prefix = folded[: len(folded) - len(key)].strip()
    return prefix or None


def split_full_name(names: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(given, family) of one-field names in either "Given Family" or "FAMILY, Given" order.

    Each pattern is matched once per name and its groups kept as columns: as expressions referring to the match, polars
    would match it again for every use (seven regex passes over the column instead of two)."""
    full = pl.col("full")
    found = pl.DataFrame({"full": names}).with_columns(
        full.str.extract_groups(_COMMA.pattern).alias("comma"),
        full.str.extract_groups(_NATURAL.pattern).alias("natural"),
        full.str.contains(",").alias("has_comma"),
    )
    comma, natural, has_comma = pl.col("comma"), pl.col("natural"), pl.col("has_comma")
    comma_family = tidy(comma.struct.field("particles")).fill_null("") + pl.lit(" ") + comma.struct.field("family")
    given = pl.when(has_comma).then(comma.struct.field("given")).otherwise(natural.struct.field("given"))
    family = (
        pl.when(has_comma)
        .then(tidy(comma_family))
        .when(natural.struct.field("family").is_not_null())
        .then(natural.struct.field("family"))
        .otherwise(full)
    )
    split = found.select(tidy(given).alias("given"), tidy(family).alias("family"))
    return split.get_column("given"), split.get_column("family")


def tidy_text(text: str | None) -> str | None:
    """`tidy` for one value: runs of whitespace collapsed, trimmed; empty becomes None."""
    if text is None:
        return None
    out = re.sub(r"\s+", " ", text).strip()
    return out or None


def split_full_name_text(full: str) -> tuple[str | None, str | None]:
    """`split_full_name` for one value, without a frame (a caseworker's query, an online record): (given, family)."""
    if "," in full:
        m = _COMMA.search(full)
        if m is None:
            return None, None
        family = tidy_text((tidy_text(m["particles"]) or "") + " " + m["family"])
        return tidy_text(m["given"]), family
    m = _NATURAL.search(full)
    if m is None:
        return None, tidy_text(full)
    return tidy_text(m["given"]), tidy_text(m["family"])


# A house number: digits, an optional letter or bis/ter ("40A", "12 B", "5a", "7bis") and an optional addition after
# a dash or slash ("40-2", "12/H0101"). Not country-specific: these shapes cover European and North American writing.
_HOUSE_NUMBER = r"\d+(?:\s?(?:bis|ter|[A-Za-z]))?(?:\s*[-/]\s*[0-9A-Za-z]+)?"
# "Merelweg 40A", "Storgata 12 B", "Hauptstraße 5a", "Straße des 17. Juni 5": the number is the last part.
_NUMBER_LAST = rf"(?i)^(?P<street>.*?[^\s\d,])[\s,]+(?P<number>{_HOUSE_NUMBER})$"
# "123 Main St", "12 rue de la Paix": the number comes first.
_NUMBER_FIRST = rf"(?i)^(?P<number>{_HOUSE_NUMBER})[\s,]+(?P<street>[^\d\s].*)$"


def split_street_and_number(text: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(street, house_number, unsplit) from one column holding both, in "street number" or "number street" order.

    A value with no house number at either end, or a bare number at both ("123 Main St 4"), is not guessed at: the whole
    text stays the street, the number is null, and `unsplit` is true so the caller can record the value.
    """
    text = tidy(text)
    last = text.str.extract_groups(_NUMBER_LAST)
    first = text.str.extract_groups(_NUMBER_FIRST)
    has_last, has_first = last.struct.field("number").is_not_null(), first.struct.field("number").is_not_null()
    # "1e Hugo de Grootstraat 12": a leading number with a letter is an ordinal in the street's name when the text
    # also ends in a number; only a bare leading number ("123 Main St 4") leaves the order undecided.
    has_first = has_first & ~(has_last & ~text.str.contains(r"^\d+[\s,]"))
    one = has_last ^ has_first
    street = (
        pl.when(one & has_last)
        .then(last.struct.field("street"))
        .when(one & has_first)
        .then(first.struct.field("street"))
        .otherwise(text)
    )
    number = pl.when(has_last).then(last.struct.field("number")).otherwise(first.struct.field("number"))
    return tidy(street), pl.when(one).then(tidy(number)), text.is_not_null() & ~one


def normalise_postcode(expr: pl.Expr, *, country: str | None) -> pl.Expr:
    """NL "1234 ab" -> "1234AB"; NO "150" -> "0150"; anything else tidied upper-case without spaces."""
    cleaned = tidy(expr).str.to_uppercase().str.replace_all(r"[\s\-]", "")
    if country == "NO":
        return pl.when(cleaned.str.contains(r"^\d{1,4}$")).then(cleaned.str.zfill(4)).otherwise(cleaned)
    return cleaned


def normalise_postcode_text(value: str | None, *, country: str | None) -> str | None:
    """`normalise_postcode` for one value, without a frame."""
    cleaned = re.sub(r"[\s\-]", "", (tidy_text(value) or "").upper()) or None
    if cleaned and country == "NO" and re.fullmatch(r"\d{1,4}", cleaned):
        return cleaned.zfill(4)
    return cleaned


def valid_postcode(expr: pl.Expr, *, country: str | None) -> pl.Expr:
    """Whether a normalised postcode has its country's shape (true for countries whose shape is not checked)."""
    pattern = POSTCODE_PATTERNS.get(country or "")
    return expr.str.contains(pattern) if pattern else pl.lit(True)


def normalise_phone(frame: pl.DataFrame, column: str, *, country: str | None) -> pl.Series:
    """E.164 ("+31612345678"): regular national and international forms vectorised, the rest via phonenumbers, which
    must find a valid number of its country.

    Without a country only international forms (+.., 00..) can be read; national ones stay null. The vectorised
    forms are ASCII digits with spaces and hyphens only: parentheses (a trunk zero "+31 (0)6 ...", an area code
    "(020)"), a trunk zero after the country code ("+31-0-6..."), a dot (a number written as a decimal,
    "31612345678.0") or an extension go to phonenumbers.
    """
    raw = frame.get_column(column)
    national = {"NL": (r"^0[0-9]{9}$", 1), "NO": (r"^[0-9]{8}$", 0)}.get(country or "")
    cc = str(phonenumbers.country_code_for_region(country)) if country else ""
    plain = raw.str.contains(r"^[0-9+\s\-]+$")
    digits = pl.when(plain).then(raw.str.replace_all(r"[\s\-]", ""))
    # A 0 after the country code is mostly a trunk prefix not dialled from abroad ("+31-0-6..."), but Italy's numbers
    # keep theirs: phonenumbers tells. Country codes are prefix-free, so the first digits name theirs.
    intl = pl.when(digits.str.starts_with("+")).then(digits.str.slice(1)).when(digits.str.starts_with("00"))
    intl = intl.then(digits.str.slice(2))
    after = (
        pl.when(intl.str.slice(0, 1).is_in(_CALLING_CODES[1]))
        .then(intl.str.slice(1, 1))
        .when(intl.str.slice(0, 2).is_in(_CALLING_CODES[2]))
        .then(intl.str.slice(2, 1))
        .otherwise(intl.str.slice(3, 1))
    )
    digits = pl.when(after.is_null() | (after != "0")).then(digits)
    fast_expr = (
        pl.when(digits.str.contains(r"^\+[0-9]{8,15}$"))
        .then(digits)
        .when(digits.str.contains(r"^00[0-9]{8,15}$"))
        .then(pl.lit("+") + digits.str.slice(2))
    )
    if national is not None:
        pattern, strip = national
        fast_expr = fast_expr.when(digits.str.contains(pattern)).then(pl.lit(f"+{cc}") + digits.str.slice(strip))
    fast = pl.select(fast_expr.otherwise(None)).to_series().alias(column)
    leftover = raw.filter(fast.is_null() & raw.is_not_null())
    if leftover.len() == 0:
        return fast
    slow = pl.DataFrame({column: leftover})
    parsed = per_distinct(column, lambda v: _parse_phone(v, country), slow)
    lookup = dict(zip(leftover.to_list(), parsed.to_list()))
    return pl.Series(column, [f if f is not None else lookup.get(r) for f, r in zip(fast.to_list(), raw.to_list())])


# The international calling codes by length (E.164: no code is the prefix of another).
_CALLING_CODES = {
    n: sorted(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE if len(str(c)) == n) for n in (1, 2, 3)
}


def _parse_phone(value: str, country: str | None) -> str | None:
    try:
        number = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_sex(expr: pl.Expr) -> pl.Expr:
    """M / F from the spellings registers use (M/V, M/K, male/female, 1/2); anything else null."""
    return expr.str.strip_chars().str.to_lowercase().replace_strict(_SEX, default=None, return_dtype=pl.String)


def initials_of(folded: str | None) -> str | None:
    """ "jan pieter" -> "jp"; "j p" -> "jp"."""
    if not folded:
        return None
    return "".join(w[0] for w in folded.split())


def first_name_of(folded: str | None) -> str | None:
    """The first given name, or null when the source gave only initials."""
    if not folded:
        return None
    first = folded.split()[0]
    return first if len(first) > 1 else None
