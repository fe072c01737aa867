"""One citizen's profile as a role may see it: golden record with provenance, linked records, cases, timeline.

Filtering happens here, before anything is rendered: a field or source outside the role is absent
from the result (not blanked), and the result lists the fields it returned for the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from citizen_view.linkage.golden import GROUPS

if TYPE_CHECKING:
    import duckdb

    from citizen_view.serving.access import Role

# golden-record field -> its provenance column
PROVENANCE = {col: f"{group}_from" for group, (cols, *_rest) in GROUPS.items() for col in cols}
RECORD_FIELDS = ("given_name", "middle_name", "family_name", "full_name", "date_of_birth", "date_of_death", "sex",
                 "national_id", "street", "house_number", "unit", "postcode", "city", "birth_place", "email", "phone")  # fmt: skip
SUMMARY_FIELDS = ("full_name", "date_of_birth", "city")


@dataclass
class Profile:
    citizen_id: str
    golden: dict[str, Any]
    provenance: dict[str, str]
    records: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    fields_returned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "citizen_id": self.citizen_id, "golden_record": self.golden, "provenance": self.provenance,
            "records": self.records, "cases": self.cases, "timeline": self.timeline,
        }  # fmt: skip


def _text(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def load_profile(con: duckdb.DuckDBPyConnection, citizen_id: str, role: Role) -> Profile | None:
    """The profile of one citizen for one role, or None when the citizen does not exist."""
    cur = con.execute("SELECT * FROM citizen WHERE citizen_id = ?", [citizen_id])
    row = cur.fetchone()
    if row is None:
        return None
    golden_all = dict(zip([d[0] for d in cur.description], row))
    golden = {f: _text(golden_all.get(f)) for f in RECORD_FIELDS if role.sees(f)}
    provenance = {
        f: golden_all[PROVENANCE[f]]
        for f in golden
        if golden_all.get(PROVENANCE.get(f, "")) and golden_all[PROVENANCE[f]].split(":", 1)[0] in role.sources
    }
    golden["sources_known"] = [s for s in golden_all["sources"] if s in role.sources]

    visible = [f for f in RECORD_FIELDS if role.sees(f)]
    placeholders = ", ".join("?" * len(role.sources)) or "NULL"
    cols = ", ".join(["source", "source_record_id", "match_probability", *visible, "attributes"])
    cur = con.execute(
        f"SELECT {cols} FROM records WHERE citizen_id = ? AND source IN ({placeholders}) ORDER BY source, source_record_id",
        [citizen_id, *role.sources],
    )
    names = [d[0] for d in cur.description]
    records = []
    for values in cur.fetchall():
        rec = {k: _text(v) for k, v in zip(names, values)}
        attributes = rec.pop("attributes")
        if role.sees("source_attributes") and attributes:
            rec["attributes"] = {k: v for k, v in json.loads(attributes).items() if v is not None}
        records.append(rec)

    cur = con.execute(
        f"SELECT kind, case_type, status, start_date, end_date, case_reference, source, source_record_id FROM cases "
        f"WHERE citizen_id = ? AND source IN ({placeholders}) ORDER BY start_date DESC NULLS LAST",
        [citizen_id, *role.sources],
    )
    case_names = [d[0] for d in cur.description]
    cases = [dict(zip(case_names, r)) for r in cur.fetchall()]

    cur = con.execute(
        f"SELECT date, event, field, source, source_record_id FROM events "
        f"WHERE citizen_id = ? AND source IN ({placeholders}) ORDER BY date",
        [citizen_id, *role.sources],
    )
    timeline = [
        {"date": _text(d), "event": e, "source": s, "source_record_id": r}
        for d, e, f, s, r in cur.fetchall()
        if f not in RECORD_FIELDS or role.sees(f)
    ]
    returned = sorted(set(golden) - {"sources_known"} | ({"source_attributes"} if role.sees("source_attributes") else set()))
    returned += [f"cases:{s}" for s in sorted({c["source"] for c in cases})]
    return Profile(citizen_id, golden, provenance, records, cases, timeline, returned)


def summaries(con: duckdb.DuckDBPyConnection, citizen_ids: list[str], role: Role) -> dict[str, dict[str, Any]]:
    """The few golden fields a result list shows per candidate, as the role may see them."""
    if not citizen_ids:
        return {}
    shown = [f for f in SUMMARY_FIELDS if role.sees(f)] + (["family_name"] if role.sees("family_name") else [])
    cols = ", ".join(["citizen_id", *dict.fromkeys(shown)])
    rows = con.execute(
        f"SELECT {cols} FROM citizen WHERE citizen_id IN ({', '.join('?' * len(citizen_ids))})", citizen_ids
    ).fetchall()
    names = ["citizen_id", *dict.fromkeys(shown)]
    return {r[0]: {k: _text(v) for k, v in zip(names[1:], r[1:])} for r in rows}
