"""Which linked records are an incoming record's candidates: those the saved model's own blocking rules pair it with.

Each blocking rule is a conjunction of equalities `l.a = r.b` (Splink's `_equi_join_conditions`). A linked record
is paired with the incoming one when, for one rule, its values of the rule's columns on one side equal the incoming
record's values of the columns on the other side (the incoming record may be either side). So one key per rule and
side: the key's number and the stored columns in a fixed order, hashed (MD5, which DuckDB and Python both have:
the incoming record's keys are hashed here and probed as constants); the served view holds every record's keys in
one ART-indexed table, probed for all of an incoming record's keys at once, hashed the same way (a hash collision
only adds a candidate, scored like any other). A rule with a further
condition is probed on its equalities alone (more candidates, never fewer); a rule without any equality cannot be
probed and is listed by `unprobed_rules`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

SEP = "chr(31)"
MD5 = "md5"


def first_md5_bytes(text_sql: str) -> str:
    """SQL for the first 8 bytes of the MD5 of `text_sql`, little-endian, as a UBIGINT: DuckDB's `md5_number_upper`,
    computed as the low 64 bits of `md5_number` (the same numbers, a sixth of the CPU in DuckDB 2.0: 0.4 against
    2.5 s for 5M keys; a publish at 1M hashes ~30M). tests/test_probe_keys.py checks it against both."""
    return f"(md5_number({text_sql}) & 18446744073709551615::UHUGEINT)::UBIGINT"


@dataclass(frozen=True)
class ProbeKey:
    """One indexed key: the stored record's `stored` columns against the incoming record's `incoming` columns."""

    number: int  # told apart from the other keys in the hash (equal values of two keys are no match)
    stored: tuple[str, ...]
    incoming: tuple[str, ...]

    @property
    def column(self) -> str:
        """The key's column where a table holds a record's keys side by side (the warehouse's key index)."""
        return f"block_key_{self.number}"

    def stored_sql(self, alias: str = "", hashed_with: str = MD5) -> str:
        """The key of a stored record (NULL when any part is NULL, as an equality with NULL never holds): by default
        (`MD5`) the first 8 bytes of the MD5 of the key's number and its values as text, separated by US, read as a
        little-endian number (`incoming_hash` computes the same in Python); `hashed_with="hash"` is DuckDB's own hash,
        several times cheaper, for keys that only DuckDB compares (the warehouse's key index)."""
        parts = [f"{alias}{c}" for c in self.stored]
        concat = f" || {SEP} || ".join([f"'{self.number}'", *(f"{p}::VARCHAR" for p in parts)])
        hashed = first_md5_bytes(concat) if hashed_with == MD5 else f"{hashed_with}({concat})"
        return f"CASE WHEN {' OR '.join(f'{p} IS NULL' for p in parts)} THEN NULL ELSE {hashed} END"

    def incoming_hash(self, values: list[Any]) -> int:
        """The same key of the incoming record's values (text: the model's blocking columns are text), computed
        here so that the probe is an index lookup of constants."""
        text = "\x1f".join([str(self.number), *(str(v) for v in values)])
        return int.from_bytes(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest()[:8], "little")

    def incoming_values(self, values: dict[str, Any]) -> list[Any] | None:
        """The incoming record's values for this key, or None when one is missing (no candidate by this rule)."""
        found = [values.get(c) for c in self.incoming]
        return None if any(v is None for v in found) else found


def _unquote(name: str) -> str:
    return name.strip().strip('"')


@functools.lru_cache(maxsize=4)
def _rules(model_json: str) -> tuple[tuple[tuple[tuple[str, str], ...], ...], tuple[str, ...]]:
    from splink import SettingsCreator

    settings = SettingsCreator.from_path_or_dict(json.loads(model_json)).get_settings("duckdb")
    equalities, unprobed = [], []
    for rule in settings._blocking_rules_to_generate_predictions:
        pairs = tuple((_unquote(a), _unquote(b)) for a, b in rule._equi_join_conditions)
        if pairs:
            equalities.append(pairs)
        else:
            unprobed.append(rule.blocking_rule_sql)
    return tuple(equalities), tuple(unprobed)


@functools.lru_cache(maxsize=4)
def probe_keys(model_json: str) -> tuple[ProbeKey, ...]:
    """The keys of a saved model's blocking rules (both sides of each rule; the same key once)."""
    seen: dict[tuple[tuple[str, str], ...], None] = {}
    for pairs in _rules(model_json)[0]:
        for oriented in (pairs, tuple((b, a) for a, b in pairs)):  # stored on the right, then on the left
            seen.setdefault(tuple(sorted((stored, incoming) for incoming, stored in oriented)), None)
    return tuple(ProbeKey(i, tuple(s for s, _ in key), tuple(i_ for _, i_ in key)) for i, key in enumerate(seen))


def unprobed_rules(model_json: str) -> tuple[str, ...]:
    """Blocking rules without any equality (their pairs are not found online)."""
    return _rules(model_json)[1]
