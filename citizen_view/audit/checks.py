"""The named checks verify composes: each looks at one thing and returns its findings (problems, warnings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from citizen_view.audit.anchor_reading import AnchorCursor, Findings
from citizen_view.audit.anchors import FileSink
from citizen_view.audit.records import KEY_ENV, canonical, entries_text, entry_hash, equal, mac, seqs

ACKNOWLEDGE_ACTION = "acknowledge_recovered_entries"
ACKNOWLEDGE_HINT = "check them, then run `citizen-view audit acknowledge --reason TEXT`"


@dataclass(frozen=True)
class Acknowledgement:
    """An entry in which a person acknowledged entries recovered after an unclean stop."""

    seq: int
    ranges: tuple[tuple[int, int], ...]
    user: str | None
    time: str | None
    reason: str | None


def check_canonical(entry: dict, raw: bytes) -> list[str]:
    """The line holds the entry exactly as the writer writes it (records.canonical): the same JSON spelled otherwise
    (an escaped character, another key order, a key given twice) hashes alike but is read differently by anything that
    scans the log's bytes (a citizen's access report finds its entries by their citizen ID's bytes)."""
    if raw != canonical(entry).encode("utf-8"):
        return [f"seq {entry['seq']}: not written as the log writes entries (its bytes were edited)"]
    return []


def check_entry_hash(entry: dict) -> list[str]:
    """The entry's stored hash is the hash of its fields."""
    if entry_hash(entry) != entry["hash"]:
        return [f"seq {entry['seq']}: hash mismatch, the entry was changed after it was written"]
    return []


def check_link(entry: dict, last_seq: int, last_hash: str) -> list[str]:
    """The entry follows the one before: next seq, and prev_hash its hash."""
    seq, expected = entry["seq"], last_seq + 1
    if seq > expected:
        return [f"seq {seq}: {entries_text(expected, seq - 1)} missing after seq {last_seq} (deleted)"]
    if seq < expected:
        return [f"seq {seq}: out of order after seq {last_seq} (entry inserted, duplicated or moved)"]
    if entry.get("prev_hash") != last_hash:
        where = f"entry {last_seq}" if last_seq else "the start of the chain"
        return [f"seq {seq}: prev_hash does not match {where} (entry inserted or replaced)"]
    return []


def check_mac(entry: dict, key: bytes | None) -> list[str]:
    """With the key set, the entry carries a MAC made with it."""
    given, seq = entry.get("mac"), entry["seq"]
    if key is None:
        return []
    if not isinstance(given, str):
        return [f"seq {seq}: no mac, but {KEY_ENV} is set (entry forged, or written without the key)"]
    if not equal(given, mac(key, entry["hash"])):
        return [f"seq {seq}: bad mac (entry forged or altered)"]
    return []


def acknowledgement_in(entry: dict) -> Acknowledgement | None:
    """The acknowledgement an entry records, or None when it records something else."""
    query = entry.get("query")
    if entry.get("action") != ACKNOWLEDGE_ACTION or not isinstance(query, dict):
        return None
    ranges = tuple((r[0], r[1]) for r in query.get("acknowledges") or () if isinstance(r, list) and len(r) == 2)
    return Acknowledgement(entry["seq"], ranges, entry.get("user"), entry.get("time"), query.get("reason"))


def check_recovered(
    recovered: dict[tuple[int, int], str], acknowledgements: Sequence[Acknowledgement], anchored_up_to: int
) -> tuple[Findings, list[tuple[int, int]]]:
    """Entries anchored only by a later writer fail until an anchored acknowledgement after them names them.

    Returns the findings and the recovered ranges nobody acknowledged yet.
    """
    found, pending = Findings(), []
    for (first, seq), time in sorted(recovered.items()):
        ack = next((a for a in acknowledgements if seq < a.seq <= anchored_up_to and (first, seq) in a.ranges), None)
        count = seq - first + 1
        what = f"{count:,} {'entry' if count == 1 else 'entries'} ({seqs(first, seq)})"
        if ack is None:
            pending.append((first, seq))
            found.problem(
                f"{what} recovered after an unclean stop (recovered at {time}), not anchored by the running "
                f"service: a writer crash, or entries appended behind its back; {ACKNOWLEDGE_HINT}"
            )
        else:
            why = f": {ack.reason}" if ack.reason else ""
            found.warn(
                f"{what} recovered after an unclean stop (recovered at {time}), acknowledged by {ack.user} "
                f"at {ack.time} (seq {ack.seq}){why}"
            )
    return found, pending


def check_unprotected(after: int, after_from: int, top: int, highest: int) -> Findings:
    """Entries after the highest anchored seq in any location are unprotected."""
    found = Findings()
    if not after:
        return found
    entry_s, be = ("entry", "is") if after == 1 else ("entries", "are")
    where = f"after the last anchor ({seqs(after_from, top)})"
    if not highest:
        where = f"({seqs(after_from, top)}), with no anchor in any location,"
    found.problem(
        f"{after:,} {entry_s} {where} {be} not protected: appended after the writer's last "
        "anchor (forged?) or the writer stopped before anchoring them"
    )
    return found


def check_missing_log(path: Path, cursors: Sequence[AnchorCursor]) -> Findings:
    """A log without entries: fine when it never had any, deleted or emptied when some location anchors entries."""
    found = Findings()
    exists = path.is_file()
    held = [c for c in cursors if c.last is not None]
    if not held and not exists:
        found.problem(f"no audit log at {path}")
    for c in held:
        shown = c.last.get("entries", c.last["seq"])
        found.problem(f"the log was {'emptied' if exists else 'deleted'}: {c.label} shows {shown:,} entries")
    return found


def check_locations_hold_anchors(cursors: Sequence[AnchorCursor], entries: int) -> Findings:
    """Every readable location holds anchors of a log that has entries."""
    found = Findings()
    for c in cursors:
        if c.last is None:
            missing = isinstance(c.sink, FileSink) and not c.sink.path.exists()
            found.problem(
                f"{c.label}: {'missing' if missing else 'no anchors'}, but the log has {entries:,} entries "
                "(anchors deleted, or never written)"
            )
    return found


def check_locations_agree(cursors: Sequence[AnchorCursor], top: int) -> Findings:
    """No location anchors past the log's end, and all end at the same seq."""
    found = Findings()
    held = [c for c in cursors if c.last is not None]
    for c in held:
        if c.last["seq"] > top:
            shown = c.last.get("entries", c.last["seq"])
            found.problem(
                f"{c.label}: the last anchor shows {shown:,} entries, but the log ends at seq {top}: "
                f"{entries_text(top + 1, shown)} deleted"
            )
    if len({c.last["seq"] for c in held}) > 1:
        ends = ", ".join(f"{c.label} at seq {c.last['seq']}" for c in held)
        found.problem(
            f"the anchor locations disagree on the last anchor: {ends} "
            "(anchors removed from one, or forged into another)"
        )
    return found


def check_locations_start_together(cursors: Sequence[AnchorCursor]) -> Findings:
    """A location that starts later than the others lost its first lines, unless the writer marked it as joined."""
    found = Findings()
    held = [c for c in cursors if c.last is not None]
    start = min((c.first["seq"] for c in held), default=0)
    for c in held:
        first = c.first["seq"]
        if first <= start:
            continue
        if c.first.get("joined") is True:
            found.warn(
                f"{c.label}: holds anchors only from seq {first}: it was added, or found without anchors, "
                f"when the log had {first:,} entries"
            )
        else:
            found.problem(
                f"{c.label}: no anchors before seq {first}, while other locations have anchors from seq "
                f"{start} (lines removed, or writes to it failed)"
            )
    return found
