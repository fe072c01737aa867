"""What an audit entry and an anchor are: the event, its canonical JSON, its hash, MAC and signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

APPLICATION = "citizen-view"
KEY_ENV = "CITIZEN_VIEW_AUDIT_KEY"
GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """One request as the caller saw it: who asked, for what purpose, and what was returned (`fields`: over the whole
    response; `disclosed`: per citizen, {citizen ID: {"fields": [...], "sources": [...]}}, what it held of them)."""

    user: str | None
    role: str | None
    organisation: str | None
    action: str
    purpose: str | None
    case_reference: str | None
    query: dict
    citizen_ids: list[str]
    fields: list[str]
    status: int
    authorisation_rule: str | None = None
    on_behalf_of: str | None = None
    break_glass: bool = False
    break_glass_reason: str | None = None
    client: str | None = None
    disclosed: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: dict) -> str:
    """SHA-256 over every field but `hash` and `mac`: whether a key is set never changes an entry's hash."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_key() -> bytes | None:
    key = os.environ.get(KEY_ENV)
    return key.encode("utf-8") if key else None


def mac(key: bytes, hash_: str) -> str:
    return hmac.new(key, hash_.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def sign(key: bytes, anchor: dict) -> str:
    """HMAC of every field of the anchor but the signature (seq, entries, hash, time, recovered_from, joined)."""
    if "entries" in anchor:
        message = canonical({k: v for k, v in anchor.items() if k != "signature"})
    else:  # written before anchors carried the entry count
        message = f"{anchor['seq']}|{anchor['hash']}|{anchor['time']}"
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def equal(given: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str; a tampered field may hold anything
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def plain(value: Any) -> Any:
    """The JSON form of a value, so the hash covers exactly what is stored."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:  # lone surrogates cannot be stored as UTF-8
            return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return plain(str(value))


def is_entry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and type(value.get("seq")) is int
        and value["seq"] >= 1
        and isinstance(value.get("hash"), str)
        and len(value["hash"]) == 64
    )


def is_anchor(value: Any) -> bool:
    if not (is_entry(value) and isinstance(value.get("time"), str)):
        return False
    if "entries" in value and (type(value["entries"]) is not int or value["entries"] != value["seq"]):
        return False
    recovered = value.get("recovered_from")
    return recovered is None or (type(recovered) is int and 1 <= recovered <= value["seq"])


def parse(raw: bytes) -> Any:
    """A log line's JSON, read as UTF-8 (what the writer writes): not as json.loads reads bytes, which would also take
    a line re-encoded in UTF-16 or UTF-32 (such a line is malformed here, and verify says so)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError
        return None


def seqs(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}..{last}"


def entries_text(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}..{last}"
