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


def _in(values: list[str]) -> str:
    return ", ".join("?" * len(values)) or "NULL"


def _probe(table: str, column: str, values: list[str]) -> str:
    """SQL for the rows of `table` whose `column` equals one of `values` (parameters), one index probe per value:
    the served view indexes its lookup columns, and DuckDB reads an index only for a lone `column = ?`."""
    return " UNION ALL ".join(f"SELECT * FROM {table} WHERE {column} = ?" for _ in values)


def golden_for_role(con: duckdb.DuckDBPyConnection, citizen_ids: list[str], role: Role) -> dict[str, dict[str, Any]]:
    """Each citizen's golden record by survivorship over the records of the sources `role` may see.

    A citizen with no record in those sources is absent; every value returned has a visible source.
    """
    if not citizen_ids or not role.sources:
        return {}
    ids = list(dict.fromkeys(citizen_ids))
    # The citizens' records by index probes, the role's sources applied to those few rows, then survivorship in memory
    # (golden.golden_rows: the warehouse's survivorship, without planning a query per look).
    cur = con.execute(_probe("records", "citizen_id", ids), ids)
    names = [d[0] for d in cur.description]
    visible = set(role.sources)
    rows = [r for r in (dict(zip(names, v)) for v in cur.fetchall()) if r["source"] in visible]
    ranks = con.execute("SELECT grp, source, rank FROM source_rank").fetchall()
    return golden_rows(rows, ranks)


def load_profile(con: duckdb.DuckDBPyConnection, citizen_id: str, role: Role) -> Profile | None:
    """The profile of one citizen for one role, or None when the citizen does not exist for that role
    (unknown, or known only to sources the role may not see)."""
    found = golden_for_role(con, [citizen_id], role).get(citizen_id)
    if found is None:
        return None
    golden = {
        f: _text(found[f]) for f in RECORD_FIELDS if role.sees(f) and found.get(f) is not None
    }  # only what has a value
    provenance = {f: found[PROVENANCE[f]] for f in golden if found.get(PROVENANCE.get(f, ""))}
    golden["sources_known"] = list(found["sources"])

    visible = [f for f in RECORD_FIELDS if role.sees(f)]
    placeholders = _in(role.sources)
    issues = _field_issues(con, citizen_id, role, visible)
    cols = ", ".join(["source", "source_record_id", "match_probability", *visible, "attributes"])
    cur = con.execute(
        f"WITH probe AS MATERIALIZED ({_probe('records', 'citizen_id', [citizen_id])}) "
        f"SELECT {cols} FROM probe WHERE source IN ({placeholders}) ORDER BY source, source_record_id",
        [citizen_id, *role.sources],
    )
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    labels = _labels(con, role)
    records = []
    for values in rows:
        rec = {k: _text(v) for k, v in zip(names, values)}
        attributes = rec.pop("attributes")
        if role.sees("source_attributes") and attributes:
            rec["attributes"] = _labelled(json.loads(attributes), labels.get(rec["source"], {}))
        as_given = issues.get((rec["source"], rec["source_record_id"]))
        if as_given:
            rec["as_given"] = as_given  # the raw value where the parsed one was set aside, with the reason
        records.append(rec)

    cur = con.execute(
        f"WITH probe AS MATERIALIZED ({_probe('cases', 'citizen_id', [citizen_id])}) "
        f"SELECT kind, case_type, status, state, start_date, end_date, case_reference, source, source_record_id FROM probe "
        f"WHERE source IN ({placeholders}) ORDER BY start_date DESC NULLS LAST, case_reference",
        [citizen_id, *role.sources],
    )
    case_names = [d[0] for d in cur.description]
    cases = [{k: _text(v) for k, v in zip(case_names, r)} for r in cur.fetchall()]

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
    cur = con.execute(
        f"WITH probe AS MATERIALIZED ({_probe('events', 'citizen_id', [citizen_id])}) "
        f"SELECT date, event, source, source_record_id FROM probe WHERE source IN ({placeholders}) ORDER BY date",
        [citizen_id, *role.sources],
    )
    timeline += [{"date": _text(d), "event": e, "source": s, "source_record_id": r} for d, e, s, r in cur.fetchall()]
    timeline.sort(key=lambda e: e["date"] or "")
    returned = disclosed(golden, records, cases)
    return Profile(
        citizen_id, golden, provenance, records, cases, timeline, returned, _stale(con, found["sources"], role)
    )


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


def _stale(con: duckdb.DuckDBPyConnection, known: list[str], role: Role) -> list[dict[str, Any]]:
    """The citizen's sources (those the role may see) whose newest extract is held back at ingest: their data here is
    as of the last accepted extract. (A view written before source_status existed has none.)"""
    visible = [s for s in known if s in role.sources]
    if (
        not visible
        or not con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() AND table_name = 'source_status'"
        ).fetchall()[0][0]
    ):
        return []
    rows = con.execute(
        f"SELECT source, accepted_at, held_since FROM source_status WHERE held_since IS NOT NULL AND source IN ({_in(visible)}) "
        "ORDER BY source",
        visible,
    ).fetchall()
    return [{"source": s, "data_as_of": _text(a), "newer_extract_held_since": _text(h)} for s, a, h in rows]


def _labels(con: duckdb.DuckDBPyConnection, role: Role) -> dict[str, dict[str, tuple[str, str | None, bool]]]:
    """source -> column -> (label, date format, hidden) as the sources file declares them."""
    out: dict[str, dict[str, tuple[str, str | None, bool]]] = {}
    for source, column, label, fmt, hidden in con.execute(
        f"SELECT source, column_name, label, format, hidden FROM attribute_labels WHERE source IN ({_in(role.sources)})",
        role.sources,
    ).fetchall():
        out.setdefault(source, {})[column] = (label, fmt, hidden)
    return out


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


def _field_issues(
    con: duckdb.DuckDBPyConnection, citizen_id: str, role: Role, visible: list[str]
) -> dict[tuple[str, str], dict[str, dict[str, str]]]:
    """(source, record) -> {field: {raw, reason}} for the values of this citizen's visible records that were set aside."""
    if not visible:
        return {}
    rows = con.execute(
        f"WITH probe AS MATERIALIZED ({_probe('records', 'citizen_id', [citizen_id])}) "
        f"SELECT i.source, i.record_id, i.field, i.raw, i.reason FROM field_issues i "
        f"JOIN probe r ON r.source = i.source AND r.source_record_id = i.record_id "
        f"WHERE i.source IN ({_in(role.sources)}) AND i.field IN ({_in(visible)})",
        [citizen_id, *role.sources, *visible],
    ).fetchall()
    out: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for source, record_id, field_name, raw, reason in rows:
        out.setdefault((source, record_id), {})[field_name] = {"raw": raw, "reason": reason}
    return out


def summaries(con: duckdb.DuckDBPyConnection, citizen_ids: list[str], role: Role) -> dict[str, dict[str, Any]]:
    """The few golden fields a result list shows per candidate, chosen over the sources the role may see, and under
    `SOURCES` the sources those of its values that are not None came from (for the audit log)."""
    shown = list(
        dict.fromkeys(
            [f for f in SUMMARY_FIELDS if role.sees(f)] + (["family_name"] if role.sees("family_name") else [])
        )
    )
    golden = golden_for_role(con, citizen_ids, role)
    out = {cid: {k: _text(g.get(k)) for k in shown} for cid, g in golden.items()}
    for cid, values in out.items():
        values[SOURCES] = _sources_of(golden[cid], [k for k, v in values.items() if v is not None])
    return out


def _sources_of(found: dict[str, Any], fields: list[str]) -> list[str]:
    """The sources the values of `fields` in a golden record came from (its provenance: "source:record ID")."""
    return sorted({str(found[PROVENANCE[f]]).split(":", 1)[0] for f in fields if found.get(PROVENANCE.get(f, ""))})
