"""One citizen's profile as a role may see it: golden record with provenance, linked records, cases, timeline.

The golden record a role sees is chosen by the same survivorship as the warehouse's, but over the
records of the sources the role may see only: a value that came only from another agency is never
shown, not even without its provenance. Filtering happens here, before anything is rendered: a field
or source outside the role is absent from the result (not blanked), and the result lists the fields it
returned for the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from citizen_view.contract import CanonicalField
from citizen_view.linkage.golden import GROUPS, golden_rows
from citizen_view.serving.documents import (
    CASE_COLUMNS,
    EVENT_COLUMNS,
    CitizenDocument,
    ViewInfo,
    document_of,
    records_of,
)

if TYPE_CHECKING:
    import duckdb

    from citizen_view.serving.access import Role

# golden-record field -> its provenance column
PROVENANCE = {col: f"{group}_from" for group, (cols, *_rest) in GROUPS.items() for col in cols}
RECORD_FIELDS: tuple[str, ...] = tuple(CanonicalField)
SUMMARY_FIELDS = ("full_name", "date_of_birth", "city")
SOURCES = "sources"  # in a summary: the sources of its values


RUNNING = ("open", "pending")  # case states shown under "running now"


@dataclass
class Profile:
    """What a role may see of one citizen, in the order a caseworker reads it: who, what is running, then history."""

    citizen_id: str
    golden: dict[str, Any]
    provenance: dict[str, str]
    records: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    fields_returned: list[str] = field(default_factory=list)
    stale_sources: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        """The person's name as the role may see it (None when the role sees no name)."""
        return (
            self.golden.get("full_name")
            or " ".join(
                v
                for v in (self.golden.get("given_name"), self.golden.get("middle_name"), self.golden.get("family_name"))
                if v
            )
            or None
        )

    @property
    def running(self) -> list[dict[str, Any]]:
        """Open and pending cases and applications, newest first."""
        return [c for c in self.cases if c.get("state") in RUNNING]

    @property
    def history(self) -> list[dict[str, Any]]:
        """Closed (and unclassified) cases, newest first."""
        return [c for c in self.cases if c.get("state") not in RUNNING]

    @property
    def person(self) -> dict[str, Any]:
        """Who this is, at a glance: the name, the birth date when the role may see it, the citizen ID."""
        born = {"date_of_birth": self.golden["date_of_birth"]} if "date_of_birth" in self.golden else {}
        return {"name": self.name, **born, "citizen_id": self.citizen_id}

    def as_dict(self) -> dict[str, Any]:
        return {
            "citizen_id": self.citizen_id,
            "person": self.person,
            "running_now": self.running,
            "history": self.history,
            "golden_record": self.golden,
            "provenance": self.provenance,
            "records": self.records,
            "cases": self.cases,
            "timeline": self.timeline,
            "stale_sources": self.stale_sources,
        }


def _text(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def golden_for_role(
    con: duckdb.DuckDBPyConnection, citizen_ids: list[str], role: Role, info: ViewInfo | None = None
) -> dict[str, dict[str, Any]]:
    """Each citizen's golden record by survivorship over the records of the sources `role` may see.

    A citizen with no record in those sources is absent; every value returned has a visible source.
    """
    if not citizen_ids or not role.sources:
        return {}
    # Each citizen's document by one index probe, the role's sources applied to its few records, then survivorship in
    # memory (golden.golden_rows: the warehouse's survivorship, without planning a query per look).
    info = info or ViewInfo.read(con)
    found = records_of(con, citizen_ids, set(role.sources), info.docs)
    return golden_rows([r for rows in found.values() for r in rows], info.ranks, info.stand_ins)


def load_profile(
    con: duckdb.DuckDBPyConnection, citizen_id: str, role: Role, info: ViewInfo | None = None
) -> Profile | None:
    """The profile of one citizen for one role, or None when the citizen does not exist for that role
    (unknown, or known only to sources the role may not see)."""
    info = info or ViewInfo.read(con)
    doc = document_of(con, citizen_id, set(role.sources), info.docs)
    if doc is None:
        return None
    found = golden_rows(doc.records, info.ranks, info.stand_ins)[citizen_id]
    golden = {
        f: _text(found[f]) for f in RECORD_FIELDS if role.sees(f) and found.get(f) is not None
    }  # only what has a value
    provenance = {f: found[PROVENANCE[f]] for f in golden if found.get(PROVENANCE.get(f, ""))}
    golden["sources_known"] = list(found["sources"])
    visible = [f for f in RECORD_FIELDS if role.sees(f)]
    records = _records(doc, role, visible, info)
    cases = [{k: c.get(k) for k in CASE_COLUMNS} for c in doc.cases]
    timeline = [
        {
            "date": _text(found[f]),
            "event": event,
            "source": found[PROVENANCE[f]].split(":", 1)[0],
            "source_record_id": found[PROVENANCE[f]].split(":", 1)[1],
        }
        for f, event in (("date_of_birth", "birth"), ("date_of_death", "death"))
        if role.sees(f) and found.get(f) is not None
    ]
    timeline += [{k: e.get(k) for k in EVENT_COLUMNS} for e in doc.events]
    timeline.sort(key=lambda e: e["date"] or "")
    returned = disclosed(golden, records, cases)
    return Profile(
        citizen_id, golden, provenance, records, cases, timeline, returned, _stale(info, found["sources"], role)
    )


def _records(doc: CitizenDocument, role: Role, visible: list[str], info: ViewInfo) -> list[dict[str, Any]]:
    """The citizen's records as the role may see them: their visible fields, labelled other columns, and the raw
    value (with the reason) where a visible field's parsed value was set aside at ingest."""
    issues: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for i in doc.issues:
        if i["field"] in visible:
            issues.setdefault((i["source"], i["record_id"]), {})[i["field"]] = {"raw": i["raw"], "reason": i["reason"]}
    records = []
    for r in doc.records:
        rec = {k: _text(r.get(k)) for k in ("source", "source_record_id", "match_probability", *visible)}
        attributes = r.get("attributes")
        if role.sees("source_attributes") and attributes:
            rec["attributes"] = _labelled(json.loads(attributes), info.labels.get(rec["source"], {}))
        as_given = issues.get((rec["source"], rec["source_record_id"]))
        if as_given:
            rec["as_given"] = as_given  # the raw value where the parsed one was set aside, with the reason
        records.append(rec)
    return records


def disclosed(golden: dict[str, Any], records: list[dict[str, Any]], cases: list[dict[str, Any]]) -> list[str]:
    """What a profile discloses, for the audit log: the fields that had a value (golden record or a linked record),
    `source_attributes` when a record carried any, and `records:<source>` / `cases:<source>` per source returned."""
    fields = {f for f, v in golden.items() if v is not None and f in RECORD_FIELDS}
    fields |= {f for r in records for f, v in r.items() if v is not None and f in RECORD_FIELDS}
    if any(r.get("attributes") for r in records):
        fields.add("source_attributes")
    return [
        *sorted(fields),
        *(f"records:{s}" for s in sorted({r["source"] for r in records})),
        *(f"cases:{s}" for s in sorted({c["source"] for c in cases})),
    ]


def _stale(info: ViewInfo, known: list[str], role: Role) -> list[dict[str, Any]]:
    """The citizen's sources (those the role may see) whose newest extract is held back at ingest: their data here is
    as of the last accepted extract."""
    held = [s for s in sorted(known) if s in role.sources and s in info.held]
    return [
        {"source": s, "data_as_of": _text(info.held[s][0]), "newer_extract_held_since": _text(info.held[s][1])}
        for s in held
    ]


def _labelled(values: dict[str, Any], labels: dict[str, tuple[str, str | None, bool]]) -> dict[str, Any]:
    """A record's other columns as label -> value: declared labels, dates in one format (yyyy-mm-dd), case lists left out."""
    out: dict[str, Any] = {}
    for column, value in values.items():
        label, fmt, hidden = labels.get(column, (column.replace("_", " ").capitalize(), None, False))
        if value is None or hidden:
            continue
        if fmt:
            try:
                value = dt.datetime.strptime(str(value), fmt).date().isoformat()
            except ValueError:
                pass  # shown as written
        out[label] = value
    return out


def summaries(
    con: duckdb.DuckDBPyConnection, citizen_ids: list[str], role: Role, info: ViewInfo | None = None
) -> dict[str, dict[str, Any]]:
    """The few golden fields a result list shows per candidate, chosen over the sources the role may see, and under
    `SOURCES` the sources those of its values that are not None came from (for the audit log)."""
    shown = list(
        dict.fromkeys(
            [f for f in SUMMARY_FIELDS if role.sees(f)] + (["family_name"] if role.sees("family_name") else [])
        )
    )
    golden = golden_for_role(con, citizen_ids, role, info)
    out = {cid: {k: _text(g.get(k)) for k in shown} for cid, g in golden.items()}
    for cid, values in out.items():
        values[SOURCES] = _sources_of(golden[cid], [k for k, v in values.items() if v is not None])
    return out


def _sources_of(found: dict[str, Any], fields: list[str]) -> list[str]:
    """The sources the values of `fields` in a golden record came from (its provenance: "source:record ID")."""
    return sorted({str(found[PROVENANCE[f]]).split(":", 1)[0] for f in fields if found.get(PROVENANCE.get(f, ""))})
