"""Crash recovery: what a writer does with entries that no anchor covers when it opens or takes over the log.

A writer that dies between writing an entry and its anchor leaves entries no anchor covers, which is also
what entries appended by someone else look like. They are never anchored silently: the next writer anchors
the head with "recovered_from": <first unanchored seq>, and `verify` fails on those entries until a person
acknowledges them (see `acknowledge`). A location holding no anchors at all (a sink added to an existing
log, or an anchors file found missing) gets the head with "joined": true, which verify reports as a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from citizen_view.audit.anchors import AnchorSink, last_anchor

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovery:
    """What the writer must anchor so every readable location holds the head, visibly."""

    locations: tuple[AnchorSink, ...]  # where to write an anchor of the head; empty when nothing is due
    recovered_from: int | None = None  # the first entry no location anchored
    joined: tuple[AnchorSink, ...] = ()  # locations that held no anchors at all
    anchored: dict | None = None  # the existing anchor of the head, when nothing is due


def plan_recovery(path: Path, locations: Sequence[AnchorSink], seq: int, head: str) -> Recovery:
    """Compare the log's head (seq, hash) with the last anchor of each readable location."""
    lasts = [(loc, last) for loc in locations for readable, last in [last_anchor(loc)] if readable]
    anchored = [last for _, last in lasts if last is not None]
    empty = tuple(loc for loc, last in lasts if last is None)
    behind = [last["seq"] for last in anchored if last["seq"] < seq]
    first_unanchored = 1 if not anchored else min(behind) + 1 if behind else None
    ahead = [a for a in anchored if a["seq"] > seq or (a["seq"] == seq and a["hash"] != head)]
    if ahead:
        # Not repaired here: the tail of the log was deleted or replaced, and verify must show that.
        _log.warning(
            "audit log %s ends at seq %d, but an anchor shows seq %d: entries deleted or replaced",
            path,
            seq,
            max(last["seq"] for last in ahead),
        )
    if first_unanchored is not None:
        _log.warning(
            "audit log %s: entries %d..%d were not anchored (a writer crash, or entries appended "
            "behind the writer's back); anchoring them as recovered",
            path,
            first_unanchored,
            seq,
        )
        return Recovery(tuple(locations), recovered_from=first_unanchored, joined=empty if anchored else ())
    if empty:
        _log.warning(
            "audit log %s: %s held no anchors; anchoring the head there as joined",
            path,
            ", ".join(loc.describe() for loc in empty),
        )
        return Recovery(empty, joined=empty)
    return Recovery((), anchored=next((a for a in anchored if a["seq"] == seq and a["hash"] == head), None))
