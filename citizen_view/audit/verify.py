"""`verify`: the log's entries, hashes, chain and MACs against every readable anchor location, streaming once."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citizen_view.audit.anchor_reading import AnchorCursor, Findings
from citizen_view.audit.anchors import AnchorSink, FileSink, anchors_path, as_sinks
from citizen_view.audit.checks import (
    Acknowledgement,
    acknowledgement_in,
    check_canonical,
    check_entry_hash,
    check_link,
    check_locations_agree,
    check_locations_hold_anchors,
    check_locations_start_together,
    check_mac,
    check_missing_log,
    check_recovered,
    check_unprotected,
)
from citizen_view.audit.records import GENESIS, KEY_ENV, audit_key, is_entry, parse
from citizen_view.audit.storage import lines

PRIMARY = "anchors file"  # how verify names the anchors file beside the log in its messages


@dataclass
class VerifyReport:
    """The outcome of checking an audit log's hash chain against its anchor locations.

    `anchors` counts the well-formed anchors read over all readable locations; `unprotected` is the number
    of entries after the highest anchored seq in any location (each of them is also a problem);
    `unacknowledged` the (first, last) seq ranges recovered after an unclean stop that nobody acknowledged.
    """

    ok: bool
    entries: int
    anchors: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unprotected: int = 0
    unacknowledged: list[tuple[int, int]] = field(default_factory=list)


def verify(path: Path, *, sinks: Sequence[AnchorSink | str] = ()) -> VerifyReport:
    """Check the log against the anchors file beside it and `sinks`, each read in seq order alongside the log.

    A readable location with no anchors for a log with entries is a problem: every writer anchors on close
    and, by default, after every entry, and one opened on an existing log anchors its head in every location
    at once. Locations are compared where their ranges overlap, so a line removed from one, or an anchor
    forged into one, shows. Entries after the highest anchored seq are unprotected, and entries a later
    writer anchored as recovered fail until acknowledged: both are problems.
    """
    path = Path(path)
    found = Findings()
    cursors = _open_locations(path, sinks, audit_key(), found)
    walk = _ChainWalk(cursors, audit_key(), found)
    for number, raw in lines(path) if path.is_file() else ():
        walk.read(number, raw)
    walk.settle(math.inf)  # the anchors beyond the log's end
    highest = max((c.last["seq"] for c in cursors if c.last is not None), default=0)
    unprotected = walk.after if walk.entries and highest < walk.top else 0
    if walk.entries:
        found.add(check_locations_hold_anchors(cursors, walk.entries))
        found.add(check_locations_agree(cursors, walk.top))
        found.add(check_locations_start_together(cursors))
    else:
        found.add(check_missing_log(path, cursors))
    found.add(check_unprotected(unprotected, walk.after_from, walk.top, highest))
    recovered, pending = check_recovered(found.recovered, walk.acknowledgements, highest)
    found.add(recovered)
    if found.unchecked:
        found.warn(f"entries carry MACs or anchors signatures, but {KEY_ENV} is not set: they were not checked")
    problems = found.finish()
    return VerifyReport(
        ok=not problems,
        entries=walk.entries,
        anchors=sum(c.count for c in cursors),
        problems=problems,
        warnings=found.warnings,
        unprotected=unprotected,
        unacknowledged=pending,
    )


def _open_locations(
    path: Path, sinks: Sequence[AnchorSink | str], key: bytes | None, found: Findings
) -> list[AnchorCursor]:
    """A cursor over each readable anchor location: the anchors file beside the log, then the sinks."""
    cursors = []
    locations = [(PRIMARY, FileSink(anchors_path(path)))] + [(f"sink {s.describe()}", s) for s in as_sinks(sinks)]
    for label, sink in locations:
        if isinstance(sink, FileSink):
            records: Iterable[tuple[int, Any]] = sink.records()
        else:
            items = sink.read()
            if items is None:
                found.warn(f"{label} cannot be read back: the anchors sent there were not checked")
                continue
            records = enumerate(items, start=1)
        cursors.append(AnchorCursor(label, sink, records, key, found))
    return cursors


class _ChainWalk:
    """The log read once, line by line: each entry checked and merged with the anchors of its seq."""

    def __init__(self, cursors: list[AnchorCursor], key: bytes | None, found: Findings) -> None:
        self.cursors, self.key, self.found = cursors, key, found
        self.entries = 0
        self.last_seq, self.last_hash = 0, GENESIS
        self.top = 0  # the highest seq read so far: anchors up to it are merged
        self.after, self.after_from = 0, 0  # entries since the last entry some location anchors, and the first
        self.acknowledgements: list[Acknowledgement] = []
        self.macs_from: int | None = None  # the first entry that carries a MAC: every later one must carry one

    def read(self, number: int, raw: bytes) -> None:
        entry = parse(raw)
        if not is_entry(entry):
            self.found.problem(f"line {number} (after seq {self.last_seq}): malformed line, not an audit entry")
            return
        self.entries += 1
        for problem in [
            *check_entry_hash(entry),
            *check_canonical(entry, raw),
            *check_link(entry, self.last_seq, self.last_hash),
            *check_mac(entry, self.key),
        ]:
            self.found.problem(problem)
        if self.key is None and entry.get("mac") is not None:
            self.found.unchecked = True
        if self.key is None and entry.get("mac") is None and self.macs_from is not None:  # seen without the key
            self.found.problem(
                f"seq {entry['seq']}: no mac, while the entries from seq {self.macs_from} carry one "
                f"(entry forged, or written without the key)"
            )
        elif entry.get("mac") is not None and self.macs_from is None:
            self.macs_from = entry["seq"]
        if (ack := acknowledgement_in(entry)) is not None:
            self.acknowledgements.append(ack)
        seq = entry["seq"]
        if seq > self.top:
            if self.settle(seq, entry):
                self.after = 0
            else:
                self.after, self.after_from = self.after + 1, self.after_from if self.after else seq
            self.top = seq
        self.last_seq, self.last_hash = seq, entry["hash"]

    def settle(self, limit: float, entry: dict | None = None) -> bool:
        """Merge every location's anchors up to seq `limit`; True when some location anchors `entry`."""
        anchored = False
        while heads := [c.head["seq"] for c in self.cursors if c.head is not None]:
            seq = min(heads)
            if seq > limit:
                break
            hashes: dict[AnchorCursor, list[str]] = {}
            for c in self.cursors:
                if c.head is not None and c.head["seq"] == seq:
                    hashes[c] = c.take(seq)
                elif c.started and c.head is not None:
                    c.lacks(seq)  # inside this location's range, but other locations anchor it: removed?
            if entry is not None and seq == entry["seq"]:
                anchored = True
                for c, held in hashes.items():
                    if any(h != entry["hash"] for h in held):
                        self.found.problem(f"{c.label}: seq {seq}: hash differs from the anchor (entry replaced)")
            elif entry is None and len({h for held in hashes.values() for h in held}) > 1:
                self.found.problem(f"seq {seq}: the anchor locations hold different hashes for it (forged or altered)")
            # Otherwise the entry is missing from the log: the chain check already names that gap.
        return anchored
