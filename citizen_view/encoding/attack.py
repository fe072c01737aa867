"""A frequency attack on our own encodings, to measure what hardening buys.

The attacker holds a public list of name frequencies and a set of encodings of one name field. Equal
names give equal encodings unless they are salted, so the attacker ranks the distinct encodings by how
often they occur and gives the i-th most frequent encoding the i-th most frequent public name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class AttackResult:
    encodings: int
    distinct_encodings: int
    names_recovered: int  # distinct true names the attacker named correctly
    records_recovered: int  # encodings whose name the attacker got right

    @property
    def record_share(self) -> float:
        return self.records_recovered / self.encodings if self.encodings else 0.0


def frequency_attack(encodings: list[str], truth: list[str], public: Counter[str]) -> AttackResult:
    """Align encodings and public names by frequency rank; `truth` (the names behind `encodings`) only scores it."""
    by_count = [clk for clk, _ in Counter(encodings).most_common()]
    guess = dict(zip(by_count, [name for name, _ in public.most_common()]))
    right = [g == t for g, t in ((guess.get(e), t) for e, t in zip(encodings, truth))]
    names = {t for e, t, ok in zip(encodings, truth, right) if ok}
    return AttackResult(len(encodings), len(by_count), len(names), sum(right))
