"""Who looked at a citizen's data: the entries naming them, for the data protection officer and for the citizen."""

from __future__ import annotations

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


def entries_for_citizen(path: Path, citizen_id: str) -> list[dict]:
    """Who looked at this citizen's data: time, user, role, organisation, purpose, case, action, status."""
    needle = _needle(citizen_id)
    found = []
    for _, raw in lines(Path(path)):
        if needle is not None and needle not in raw and b"\\" not in raw:
            continue  # the ID is in neither its own bytes nor an escaped spelling (JSON escapes start with a backslash)
        entry = parse(raw)
        if not isinstance(entry, dict):
            continue
        ids = entry.get("citizen_ids")
        if isinstance(ids, list) and citizen_id in ids:
            found.append(_as_seen_by(entry, citizen_id))
    return found


def _as_seen_by(entry: dict, citizen_id: str) -> dict:
    """An entry as it concerns one citizen: the fields and sources returned of them (an entry written before entries
    recorded that per citizen shows its fields over the whole response, and no sources)."""
    row = {k: entry.get(k) for k in CITIZEN_FIELDS}
    disclosed = entry.get("disclosed")
    own = disclosed.get(citizen_id) if isinstance(disclosed, dict) else None
    if isinstance(own, dict):
        row["fields"], row["sources"] = own.get("fields"), own.get("sources")
    return row


def citizen_access_report(path: Path, citizen_id: str) -> list[dict]:
    """The citizen's own view of who looked at their data: successful looks only, newest first, without user names."""
    if not Path(path).is_file():
        return []
    looks = [e for e in entries_for_citizen(path, citizen_id) if isinstance(e.get("status"), int) and e["status"] < 400]
    return [
        {k: list(e.get(k) or []) if k in ("fields", "sources") else e.get(k) for k in REPORT_FIELDS}
        for e in reversed(looks)
    ]


def _needle(citizen_id: str) -> bytes | None:
    """Bytes every matching line without a backslash must contain, to skip parsing the rest (a line spelling the ID
    with escapes, as no writer does but an editor could, is parsed); None when the ID itself needs escaping."""
    if citizen_id.isascii() and citizen_id.isprintable() and '"' not in citizen_id and "\\" not in citizen_id:
        return citizen_id.encode("ascii")
    return None
