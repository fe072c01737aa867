"""Keyed pseudonyms (HMAC-SHA256) of exact values, and the project secret they and the CLKs derive from.

One secret per linkage project, held by the agencies only; purpose keys are derived from it, so a
pseudonym key never doubles as a CLK key. Without the secret a pseudonym cannot be recomputed from a
guessed value (unlike a plain hash of a national ID, which anyone can enumerate).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from citizen_view.encoding.schema import SECRET_MIN_BYTES


class SecretError(ValueError):
    """The secret file is missing, unreadable or too short."""


def read_secret(path: Path) -> bytes:
    """The project secret from its file (surrounding whitespace ignored); at least 16 bytes."""
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"cannot read the secret file {path}: {exc.strerror}") from None
    if len(secret) < SECRET_MIN_BYTES:
        raise SecretError(
            f"the secret in {path} is {len(secret)} bytes; use at least {SECRET_MIN_BYTES} random bytes "
            "(e.g. `head -c 32 /dev/urandom | base64 > linkage.key`)"
        )
    return secret


def purpose_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose ("pseudonym", "clk") derived from the project secret."""
    return hmac.new(secret, f"citizen-view/{purpose}".encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, field: str, value: str) -> str:
    """The keyed pseudonym of `value` in `field` (128 bits, hex)."""
    return hmac.new(key, f"{field}\x1f{value}".encode(), hashlib.sha256).hexdigest()[:32]
