"""Noise rates (`NoiseConfig`) and the small string-level corruptions every source applies."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from random import Random

# Rates that shape the synthetic population itself rather than one source's copy of it;
# `NoiseConfig.scaled` leaves them alone so a cleaner or dirtier run still has the same hard cases.
POPULATION_RATES: frozenset[str] = frozenset({"marriage_name_change", "twins", "parent_child_same_name"})

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()


@dataclass(frozen=True)
class NoiseConfig:
    """Probabilities (0..1) of each kind of data-quality problem, applied per record and field."""

    typo: float = 0.03
    """A name, street or city value gets one substitution, deletion, insertion or adjacent swap."""
    transposed_id: float = 0.02
    """A national ID is mistyped: two adjacent digits swapped or one digit wrong."""
    swapped_day_month: float = 0.01
    """A date of birth has day and month swapped (only where the day is 12 or less)."""
    nickname: float = 0.10
    """The call name is replaced by a nickname, where the country's nickname table has one."""
    missing_field: float = 0.03
    """An optional field (phone, email, unit, birth place, ...) is left empty."""
    ascii_spelling: float = 0.15
    """Letters like ø, æ, å, ë, é are written in ASCII (ø -> o/oe, æ -> ae/e, å -> aa/a)."""
    prefix_variant: float = 0.30
    """A Dutch surname prefix is written differently ("Van Der Berg", "vd Berg", "v.d. Berg", "Berg, van der")."""
    case_noise: float = 0.03
    """A text value is written all upper- or all lower-case."""
    whitespace: float = 0.02
    """A text value gets doubled inner spaces or stray leading/trailing spaces."""
    city_alias: float = 0.30
    """A city with a common alternative name is written with it ("Den Haag" for "'s-Gravenhage")."""
    postcode_format: float = 0.05
    """A postcode is written in another shape (NL without/with the space, lower-case; NO leading zero lost)."""
    moved: float = 0.25
    """A secondary source still holds the previous address of someone who moved."""
    dead_still_present: float = 0.30
    """A dead person is still present in a secondary source."""
    marriage_name_change: float = 0.60
    """Population: in a married couple one partner takes the other's family name."""
    twins: float = 0.04
    """Population: a family with children has a twin pair."""
    parent_child_same_name: float = 0.04
    """Population: a family has an adult child with exactly the same names as the name-giving parent."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"NoiseConfig.{f.name} must be a rate between 0 and 1, got {value!r}")

    def scaled(self, factor: float) -> NoiseConfig:
        """The same config with every per-record noise rate multiplied by `factor` (capped at 1).

        Population rates (marriage_name_change, twins, parent_child_same_name) are left unchanged.
        """
        if factor < 0:
            raise ValueError(f"scale factor must be >= 0, got {factor!r}")
        changes = {
            f.name: min(1.0, getattr(self, f.name) * factor) for f in fields(self) if f.name not in POPULATION_RATES
        }
        return replace(self, **changes)


def typo(rng: Random, s: str) -> str:
    """One keyboard slip inside a letter run: substitution, deletion, insertion or adjacent swap."""
    n = len(s)
    if n < 2:
        return s
    i = rng.randrange(n)
    if not s[i].isalpha():
        return s
    op = rng.random()
    alphabet = _UPPER if s[i].isupper() else _LOWER
    if op < 0.3:
        return s[:i] + rng.choice(alphabet) + s[i + 1 :]
    if op < 0.55:
        return s[:i] + s[i + 1 :] if n > 3 else s
    if op < 0.8:
        return s[:i] + rng.choice(_LOWER) + s[i:]
    j = i + 1 if i + 1 < n else i - 1
    a, b = min(i, j), max(i, j)
    if not s[j].isalpha() or s[a] == s[b]:
        return s[:i] + rng.choice(alphabet) + s[i + 1 :]
    return s[:a] + s[b] + s[a] + s[b + 1 :]


def mistype_id(rng: Random, digits: str) -> str:
    """A national ID as a clerk mistypes it: two adjacent differing digits swapped, or one digit changed."""
    n = len(digits)
    if rng.random() < 0.6:
        for _ in range(8):
            i = rng.randrange(n - 1)
            if digits[i] != digits[i + 1]:
                return digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
    i = rng.randrange(n)
    new = str((int(digits[i]) + rng.randint(1, 9)) % 10)
    return digits[:i] + new + digits[i + 1 :]


def case_change(rng: Random, s: str) -> str:
    """The value all upper-case (two in three) or all lower-case."""
    return s.upper() if rng.random() < 0.67 else s.lower()


def whitespace_change(rng: Random, s: str) -> str:
    """Doubled inner space where there is one, otherwise a stray leading or trailing space."""
    r = rng.random()
    if " " in s and r < 0.5:
        i = s.index(" ")
        return s[:i] + "  " + s[i + 1 :]
    return " " + s if r < 0.75 else s + " "
