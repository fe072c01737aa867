"""Who looked at a citizen's data: the entries naming them, for the data protection officer and for the citizen."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from citizen_view.audit.records import parse
from citizen_view.audit.storage import lines

CITIZEN_FIELDS = (
    "time",
    "user",
    "role",
    "organisation",
    "purpose",
    "case_reference",
    "action",
    "fields",
    "sources",
    "status",
)
# What a citizen is shown of each look at their data: which organisation, when, why, what it did and which data
# (Logboek Dataverwerkingen, MijnOverheid). A caseworker's own name stays with the organisation's data protection officer.
REPORT_FIELDS = ("time", "organisation", "role", "purpose", "case_reference", "action", "fields", "sources", "status")


def entries_for_citizen(
    path: Path, citizen_id: str, predecessors: Sequence[tuple[str, dt.datetime]] = ()
) -> list[dict]:
    """Who looked at this citizen's data: time, user, role, organisation, purpose, case, action, status.

    `predecessors`: (ID, until) of the IDs that held some of this citizen's records until then (a citizen split off
    from another, or another merged into it: linkage.citizen_ids.LINEAGE_SQL); a look at one of them before its
    `until` was a look at this citizen's data too, and is listed, as it concerned that ID."""
    until = {pid: moment for pid, moment in predecessors if pid != citizen_id}
    needles = [_needle(c) for c in (citizen_id, *until)]
    found = []
    for _, raw in lines(Path(path)):
        if None not in needles and not any(n in raw for n in needles) and b"\\" not in raw:
            continue  # no ID is in its own bytes nor an escaped spelling (JSON escapes start with a backslash)
        entry = parse(raw)
        if not isinstance(entry, dict):
            continue
        ids = entry.get("citizen_ids")
        if not isinstance(ids, list):
            continue
        if citizen_id in ids:
            found.append(_as_seen_by(entry, citizen_id))
            continue
        at = _moment(entry.get("time"))
        earlier = next((pid for pid in ids if pid in until and at is not None and at < until[pid]), None)
        if earlier is not None:
            found.append(_as_seen_by(entry, earlier) | {"as_citizen_id": earlier})
    return found


def _moment(text: object) -> dt.datetime | None:
    """An entry's time as an aware datetime (None if it is not one)."""
    try:
        moment = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _as_seen_by(entry: dict, citizen_id: str) -> dict:
    """An entry as it concerns one citizen: the fields and sources returned of them (an entry written before entries
    recorded that per citizen shows its fields over the whole response, and no sources)."""
    row = {k: entry.get(k) for k in CITIZEN_FIELDS}
    disclosed = entry.get("disclosed")
    own = disclosed.get(citizen_id) if isinstance(disclosed, dict) else None
    if isinstance(own, dict):
        row["fields"], row["sources"] = own.get("fields"), own.get("sources")
    return row


def citizen_access_report(
    path: Path, citizen_id: str, predecessors: Sequence[tuple[str, dt.datetime]] = ()
) -> list[dict]:
    """The citizen's own view of who looked at their data: successful looks only, newest first, without user names;
    looks at its `predecessors` before they passed records on included (entries_for_citizen)."""
    if not Path(path).is_file():
        return []
    found = entries_for_citizen(path, citizen_id, predecessors)
    looks = [e for e in found if isinstance(e.get("status"), int) and e["status"] < 400]
    return [_shown_to_citizen(e) for e in reversed(looks)]


def _shown_to_citizen(entry: dict) -> dict:
    """A look as its citizen is shown it. A look at an earlier ID (`as_citizen_id`) keeps its time, organisation,
    action and which of their data, but not its purpose or case reference: when that ID held two people's records
    (the wrong merge a split corrects), those were about the other person, and may name them; `earlier_id` says
    why they are blank. The data protection officer's export keeps them."""
    row = {k: list(entry.get(k) or []) if k in ("fields", "sources") else entry.get(k) for k in REPORT_FIELDS}
    if entry.get("as_citizen_id") is not None:
        row |= {"purpose": None, "case_reference": None, "earlier_id": True}
    return row


def _needle(citizen_id: str) -> bytes | None:
    """Bytes every matching line without a backslash must contain, to skip parsing the rest (a line spelling the ID
    with escapes, as no writer does but an editor could, is parsed); None when the ID itself needs escaping."""
    if citizen_id.isascii() and citizen_id.isprintable() and '"' not in citizen_id and "\\" not in citizen_id:
        return citizen_id.encode("ascii")
    return None
