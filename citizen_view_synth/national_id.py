"""Unique, checksum-valid national IDs: Dutch BSN (11-proof) and Norwegian fødselsnummer (two mod-11 digits)."""

from __future__ import annotations

from datetime import date

BSN_CAPACITY = 9_000_000  # 7-digit stems 1000000..9999999; the 8th digit is picked to make the 11-proof work
_FNR_WEIGHTS1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_FNR_WEIGHTS2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _scramble(index: int, seed: int) -> int:
    """A seed-keyed permutation of 0..8,999,999: a 4-round Feistel network on 3000 x 3000."""
    left, right = divmod(index, 3000)
    for k in range(4):
        mix = (right * 2_654_435_761 + seed * 40_503 + k * 97_531) & 0xFFFFFFFF
        left, right = right, (left + (mix ^ (mix >> 13))) % 3000
    return left * 3000 + right


def bsn_for(index: int, *, seed: int) -> str:
    """The BSN of the person with global index `index`: a seed-keyed permutation, so unique per person."""
    if not 0 <= index < BSN_CAPACITY:
        raise ValueError(f"at most {BSN_CAPACITY} persons can get a distinct BSN, asked for index {index}")
    stem = str(_scramble(index, seed) + 1_000_000)
    partial = sum(w * int(c) for w, c in zip((9, 8, 7, 6, 5, 4, 3), stem, strict=True))
    start = (index * 7 + seed) % 10
    for k in range(10):
        d8 = (start + k) % 10
        d9 = (partial + 2 * d8) % 11
        if d9 <= 9:
            return f"{stem}{d8}{d9}"
    raise AssertionError("unreachable: some 8th digit always gives a valid BSN")


def _fnr_check(digits: str, weights: tuple[int, ...]) -> int:
    rest = sum(w * int(c) for w, c in zip(weights, digits, strict=True)) % 11
    return 0 if rest == 0 else 11 - rest


def _individual_ranges(year: int) -> tuple[range, ...]:
    """Individual-number ranges that encode the birth century for `year`."""
    if 2000 <= year <= 2039:
        return (range(500, 1000),)
    if 1940 <= year <= 1999:
        return (range(0, 500), range(900, 1000))
    if 1900 <= year <= 1939:
        return (range(0, 500),)
    if 1854 <= year <= 1899:
        return (range(500, 750),)
    raise ValueError(f"no fødselsnummer exists for birth year {year}")


class FodselsnummerAllocator:
    """Hands out fødselsnummer in order; remembers per (birth date, sex) how many candidates are used up.

    The state is one small counter per birth date and sex, so memory stays bounded however many persons.
    """

    def __init__(self, *, seed: int) -> None:
        self._seed = seed
        self._tried: dict[tuple[int, str], int] = {}
        self._candidates: dict[tuple[int, str], tuple[int, ...]] = {}

    def _pool(self, year: int, sex: str) -> tuple[int, ...]:
        era = 2000 if year >= 2000 else 1940 if year >= 1940 else 1900 if year >= 1900 else 1854
        key = (era, sex)
        if key not in self._candidates:
            parity = 1 if sex == "M" else 0  # third individual digit: odd for men, even for women
            self._candidates[key] = tuple(n for r in _individual_ranges(era) for n in r if n % 2 == parity)
        return self._candidates[key]

    def allocate(self, dob: date, sex: str) -> str:
        """The next unused valid fødselsnummer for someone of this sex born on `dob`."""
        pool = self._pool(dob.year, sex)
        n = len(pool)
        key = (dob.toordinal(), sex)
        tried = self._tried.get(key, 0)
        offset = (self._seed * 1_000_003 + key[0] * 31) % n
        stem = f"{dob.day:02d}{dob.month:02d}{dob.year % 100:02d}"
        while tried < n:
            individual = pool[(tried * 257 + offset) % n]  # 257 is prime and > n: a permutation of the pool
            tried += 1
            digits = f"{stem}{individual:03d}"
            k1 = _fnr_check(digits, _FNR_WEIGHTS1)
            if k1 == 10:
                continue
            k2 = _fnr_check(digits + str(k1), _FNR_WEIGHTS2)
            if k2 == 10:
                continue
            self._tried[key] = tried
            return f"{digits}{k1}{k2}"
        raise ValueError(f"all fødselsnummer for sex {sex} born {dob.isoformat()} are used up")
