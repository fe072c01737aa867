"""Acknowledging entries recovered after an unclean stop: a person's entry in the chain, anchored, naming who and why."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from citizen_view.audit.anchors import AnchorSink
from citizen_view.audit.checks import ACKNOWLEDGE_ACTION
from citizen_view.audit.records import AuditEvent
from citizen_view.audit.verify import verify
from citizen_view.audit.writer import AuditLog


def acknowledge(
    path: Path, *, user: str, reason: str | None = None, sinks: Sequence[AnchorSink | str] = ()
) -> dict | None:
    """Append and anchor an acknowledgement of every recovered, unacknowledged range; None when there is none.

    Opening the writer first lets it recover (and so include) entries no anchor covers yet.
    """
    with AuditLog(path, sinks=sinks) as log:
        pending = verify(path, sinks=sinks).unacknowledged
        if not pending:
            return None
        return log.append(
            AuditEvent(
                user=user,
                role="cli",
                organisation=None,
                action=ACKNOWLEDGE_ACTION,
                purpose="acknowledge audit entries recovered after an unclean stop",
                case_reference=None,
                query={"acknowledges": [[first, last] for first, last in pending], "reason": reason or None},
                citizen_ids=[],
                fields=[],
                status=200,
                authorisation_rule="cli",
            )
        )
