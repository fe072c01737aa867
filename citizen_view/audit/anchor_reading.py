"""Reading anchor locations during verify: each location's anchors in seq order, checked as they are read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from citizen_view.audit.anchors import AnchorSink
from citizen_view.audit.records import KEY_ENV, equal, is_anchor, seqs, sign

MAX_PROBLEMS = 1000  # a systematically broken log of millions of lines must not exhaust memory


class Findings:
    """Problems and warnings of one verify run, capped, and what the anchor cursors share."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.extra = 0
        self.recovered: dict[tuple[int, int], str] = {}  # (recovered_from, seq) -> time, over all locations
        self.unchecked = False  # a MAC or signature was seen while no key is set

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.extra += 1

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_PROBLEMS and text not in self.warnings:
            self.warnings.append(text)

    def add(self, other: Findings) -> None:
        """Take over another check's findings."""
        for text in other.problems:
            self.problem(text)
        for text in other.warnings:
            self.warn(text)

    def finish(self) -> list[str]:
        if self.extra:
            self.problems.append(f"... and {self.extra:,} more problems")
        return self.problems


class AnchorCursor:
    """One anchor location during verify: its anchors in seq order, checked as they are read, one at a time."""

    def __init__(
        self, label: str, sink: AnchorSink, records: Iterable[tuple[int, Any]], key: bytes | None, found: Findings
    ) -> None:
        self.label, self.sink, self._key, self._found = label, sink, key, found
        self._records = iter(records)
        self.count = 0
        self.first: dict | None = None
        self.last: dict | None = None  # the highest anchor read so far
        self.head: dict | None = None  # the next anchor to merge; None when done
        self.started = False  # an anchor of this location has been merged
        self._gap: list[int] | None = None  # [first, last, count] of seqs others anchor and this one lacks
        self._next()

    def take(self, seq: int) -> list[str]:
        """The distinct hashes this location anchors `seq` with, moving past them."""
        hashes: list[str] = []
        while self.head is not None and self.head["seq"] == seq:
            if self.head["hash"] not in hashes:
                hashes.append(self.head["hash"])
            self._next()
        if len(hashes) > 1:
            self._found.problem(f"{self.label}: seq {seq} anchored twice with different hashes (forged or altered)")
        if self._gap is not None:
            first, last, count = self._gap
            missing = f"{count:,} seq{'s' if count > 1 else ''} ({seqs(first, last)})"
            self._found.problem(
                f"{self.label}: no anchor for {missing} that other locations anchor "
                "(lines removed, or writes to this location failed)"
            )
            self._gap = None
        self.started = True
        return hashes

    def lacks(self, seq: int) -> None:
        if self._gap is None:
            self._gap = [seq, seq, 1]
        else:
            self._gap[1], self._gap[2] = seq, self._gap[2] + 1

    def _next(self) -> None:
        for number, value in self._records:
            if not is_anchor(value):
                self._found.problem(f"{self.label}: line {number}: malformed line, not an anchor")
                continue
            self.count += 1
            seq = value["seq"]
            signature = value.get("signature")
            if self._key is not None:
                if not isinstance(signature, str):
                    self._found.problem(f"{self.label}: anchor for seq {seq}: not signed, but {KEY_ENV} is set")
                elif not equal(signature, sign(self._key, value)):
                    self._found.problem(f"{self.label}: anchor for seq {seq}: bad signature (anchor forged or altered)")
            elif signature is not None:
                self._found.unchecked = True
            if self.last is not None and seq < self.last["seq"]:
                self._found.problem(
                    f"{self.label}: line {number}: anchor for seq {seq} after one for seq "
                    f"{self.last['seq']} (out of order: inserted or moved)"
                )
                continue
            recovered = value.get("recovered_from")
            if recovered is not None and len(self._found.recovered) < MAX_PROBLEMS:
                self._found.recovered.setdefault((recovered, seq), value["time"])
            self.first = self.first or value
            self.last = self.head = value
            return
        self.head = None
