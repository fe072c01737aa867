"""Spelling variants of names: ASCII transliteration, Dutch prefix forms, married-name forms, email local parts."""

from __future__ import annotations

from random import Random

from citizen_view_synth.names import split_prefix

_ACCENTS = {
    "é": "e",
    "è": "e",
    "ê": "e",
    "ë": "e",
    "É": "E",
    "È": "E",
    "Ë": "E",
    "á": "a",
    "à": "a",
    "â": "a",
    "ä": "a",
    "Ä": "A",
    "í": "i",
    "ì": "i",
    "î": "i",
    "ï": "i",
    "ó": "o",
    "ò": "o",
    "ô": "o",
    "ö": "o",
    "Ö": "O",
    "ú": "u",
    "ù": "u",
    "û": "u",
    "ü": "u",
    "Ü": "U",
    "ç": "c",
    "Ç": "C",
    "ñ": "n",
    "ý": "y",
    "ÿ": "y",
}
# Two ways old systems wrote Norwegian letters: one letter ("Sorensen") or two ("Soerensen").
_SHORT = str.maketrans({**_ACCENTS, "ø": "o", "Ø": "O", "æ": "e", "Æ": "E", "å": "a", "Å": "A"})
_LONG = str.maketrans({**_ACCENTS, "ø": "oe", "Ø": "Oe", "æ": "ae", "Æ": "Ae", "å": "aa", "Å": "Aa"})
_EMAIL = str.maketrans(
    {**_ACCENTS, "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "å": "a", "Å": "a", " ": "", "'": "", "-": ""}
)

_PREFIX_SHORT = {"van der": ("vd", "v.d."), "van den": ("vd", "v.d."), "van de": ("vd", "v.d."), "van": ("v.",)}


def ascii_fold(s: str, *, long: bool) -> str:
    """The value without diacritics; ø/æ/å as one letter, or as two letters when `long`."""
    return s.translate(_LONG if long else _SHORT)


def email_part(s: str) -> str:
    """A name squeezed into an email local part: ASCII, lower-case, no spaces or punctuation."""
    return s.translate(_EMAIL).lower()


def prefix_variant(rng: Random, family: str, *, inverted: bool = True, comma: bool = True) -> str:
    """A Dutch surname with its prefix written another way; unchanged when there is no prefix.

    `inverted` allows index forms with the prefix after the name ("Berg van der"), `comma` the form
    "Berg, van der" among them (not for names in natural order, nor inside 'SURNAME, Given' fields).
    """
    prefix, base = split_prefix(family)
    if not prefix:
        return family
    r = rng.random() * (1.0 if inverted else 0.7)
    if r < 0.3:
        return f"{prefix.title()} {base}"  # Van Der Berg
    if r < 0.4:
        return f"{prefix[0].upper()}{prefix[1:]} {base}"  # Van der Berg
    if r < 0.7 and prefix in _PREFIX_SHORT:
        return f"{rng.choice(_PREFIX_SHORT[prefix])} {base}"  # vd Berg, v.d. Berg
    if r < 0.7:
        return f"{prefix.title()} {base}"
    if r < 0.85 and comma:
        return f"{base}, {prefix}"  # Berg, van der
    return f"{base} {prefix}"  # Berg van der


def initials(given: str) -> str:
    """'J.P.' for 'Jan Pieter'."""
    return "".join(f"{g[0]}." for g in given.split())
