"""Bloom-filter encodings (CLKs): n-gram tokens of a standardised value set k keyed bit positions in a filter.

Positions come from HMAC-SHA256 under the project secret (double hashing: two 64-bit numbers a, b of
the token's MAC give a + i*b mod L, i < k), with the field's name mixed into every token so equal
bigrams of different fields set different bits. Built on hmac/hashlib + numpy rather than clkhash:
clkhash pins cryptography<41 (published CVEs) and would downgrade the project's cryptography.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

import numpy as np

from citizen_view.encoding.schema import FILTER_BITS


def bigrams(value: str) -> list[str]:
    """Bigrams of a value padded with a space at each end ("ann" -> " a", "an", "nn", "n ")."""
    padded = f" {value} "
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


def date_tokens(yyyymmdd: str) -> list[str]:
    """A birth date's tokens: year, month and day by position, and the digits' bigrams (one typo keeps most)."""
    return [f"Y{yyyymmdd[:4]}", f"M{yyyymmdd[4:6]}", f"D{yyyymmdd[6:8]}", *bigrams(yyyymmdd)]


class Encoder:
    """Encodes tokens of named fields into bit arrays under one key; cached per token (names repeat)."""

    def __init__(self, key: bytes, *, bits: int = FILTER_BITS) -> None:
        self._key = key
        self.bits = bits
        self._positions = lru_cache(maxsize=200_000)(self._token_positions)

    def _token_positions(self, field: str, token: str, k: int) -> tuple[int, ...]:
        mac = hmac.new(self._key, f"{field}\x1f{token}".encode(), hashlib.sha256).digest()
        a = int.from_bytes(mac[:8], "big")
        b = int.from_bytes(mac[8:16], "big") | 1
        return tuple((a + i * b) % self.bits for i in range(k))

    def encode(self, field: str, tokens: list[str], k: int) -> np.ndarray:
        """The filter (bool array of `bits`) with k positions set for every token."""
        out = np.zeros(self.bits, dtype=bool)
        for token in tokens:
            out[list(self._positions(field, token, k))] = True
        return out


def xor_fold(bits: np.ndarray) -> np.ndarray:
    """Fold a filter onto half its length (first half XOR second half): a bit no longer names one token."""
    half = bits.size // 2
    return bits[:half] ^ bits[half:]


def to_hex(bits: np.ndarray) -> str:
    return np.packbits(bits).tobytes().hex()


def from_hex(text: str) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8)).astype(bool)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient 2|A&B| / (|A|+|B|) of two filters (0.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else 0.0
