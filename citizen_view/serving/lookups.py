"""The looks at citizen data the API and the pages share: each fills the audit trail with what it returned."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from fastapi import HTTPException

from citizen_view.audit import citizen_access_report
from citizen_view.serving import profile as profiles
from citizen_view.serving import search as finder
from citizen_view.serving.deps import CITIZEN_ID, CLAIM_HEADER, FieldError, ViewCursor, ViewStore
from citizen_view.serving.documents import ViewInfo

if TYPE_CHECKING:
    from collections.abc import Mapping

    from citizen_view.serving.access import Principal
    from citizen_view.serving.guard import Trail

# A citizen's own looks, through the citizen portal: reading the access log, and the start page finding their ID.
OWN_LOOK = "access_report"
PORTAL_START = "portal_start"
OWN_LOOKS = frozenset({OWN_LOOK, PORTAL_START})


def run_search(view: ViewCursor, who: Principal, trail: Trail, q: Mapping[str, str]) -> dict[str, Any]:
    """Candidates for one search, each with the summary fields that had a value for them."""
    trail.action = "search"
    cur = view.cur
    info = view.info or ViewInfo.read(cur)
    country = info.country
    if q.get("national_id"):
        if not who.role.sees("national_id"):
            raise FieldError("national_id", f"role {who.role_name!r} may not search by national ID", status=403)
        mode, found = (
            "national_id",
            finder.search_national_id(cur, q["national_id"], country=country, sources=who.role.sources, ids=info.ids),
        )
    elif q.get("name") and q.get("date_of_birth"):
        if not who.role.sees("date_of_birth"):
            raise FieldError("date_of_birth", f"role {who.role_name!r} may not search by date of birth", status=403)
        mode, found = (
            "name_date_of_birth",
            finder.search_name_dob(cur, q["name"], q["date_of_birth"], sources=who.role.sources),
        )
    elif q.get("name") and q.get("house_number") and (q.get("postcode") or q.get("street")):
        mode, found = (
            "name_address",
            finder.search_name_address(
                cur,
                q["name"],
                postcode=q.get("postcode"),
                house_number=q.get("house_number"),
                street=q.get("street"),
                country=country,
                sources=who.role.sources,
            ),
        )
    else:
        raise FieldError(
            "name", "search by national_id, by name + date_of_birth, or by name + house_number + postcode/street"
        )
    summary = profiles.summaries(cur, [c.citizen_id for c in found], who.role, info)
    sources = {cid: values.pop(profiles.SOURCES) for cid, values in summary.items()}
    trail.citizen_ids = [c.citizen_id for c in found]

    def shown(citizen_id: str) -> dict[str, Any]:  # a summary field without a value is left out, not sent as null
        return {k: v for k, v in summary.get(citizen_id, {}).items() if v is not None}

    trail.fields = sorted({k for c in found for k in shown(c.citizen_id)})
    trail.disclosed = {  # per citizen: only what their own candidate row carried
        c.citizen_id: {"fields": sorted(shown(c.citizen_id)), "sources": sources.get(c.citizen_id, [])} for c in found
    }
    return {
        "view": view.view,
        "mode": mode,
        "candidates": [
            {"citizen_id": c.citizen_id, "score": c.score, "reasons": c.reasons, **shown(c.citizen_id)} for c in found
        ],
    }


def run_profile(view: ViewCursor, who: Principal, trail: Trail, citizen_id: str) -> profiles.Profile:
    """One citizen's profile for the caller's role (404 when the role sees no record of them)."""
    trail.action = "view_profile"
    if not CITIZEN_ID.match(citizen_id):
        raise HTTPException(422, "citizen_id must look like CV-XXXX-XXXX-XXXX")
    found = profiles.load_profile(view.cur, citizen_id, who.role, view.info)
    if found is None:
        raise HTTPException(404, f"no citizen {citizen_id} in the current view")
    trail.citizen_ids = [citizen_id]
    trail.fields = found.fields_returned
    trail.disclosed = {citizen_id: {"fields": found.fields_returned, "sources": sources_returned(found)}}
    return found


def sources_returned(found: profiles.Profile) -> list[str]:
    """The sources a profile returned data of: its records, cases and timeline, and its golden values' provenance."""
    named = [r.get("source") for r in found.records] + [c.get("source") for c in found.cases]
    named += [e.get("source") for e in found.timeline] + [p.split(":", 1)[0] for p in found.provenance.values()]
    return sorted({s for s in named if s})


def run_access_report(
    views: ViewStore, audit_path: Path, who: Principal, trail: Trail, citizen_id: str
) -> dict[str, Any]:
    """Who looked at this citizen's data, and apart from that the citizen's own reads of this log: for a role acting
    for citizens (a citizen portal), from the audit log."""
    trail.action = "access_report"
    if not who.role.citizen_access:
        raise HTTPException(403, f"role {who.role_name!r} may not read citizens' access reports")
    if not CITIZEN_ID.match(citizen_id):
        raise HTTPException(422, "citizen_id must look like CV-XXXX-XXXX-XXXX")
    if who.citizen is None:
        trail.details = {"claim": "missing or invalid"}
        raise HTTPException(403, f"no valid citizen claim: send the signed-in citizen's signed claim in {CLAIM_HEADER}")
    with views.cursor() as (cur, _view):
        own = citizens_holding(cur, who.citizen)
        earlier = predecessors(cur, citizen_id) if citizen_id in own else []
    if citizen_id not in own:  # the same answer whether or not the ID exists: the portal cannot probe
        trail.details = {"claim": "another citizen"}
        raise HTTPException(403, "a citizen portal may read only the access log of the citizen it signed in")
    trail.on_behalf_of = citizen_id
    entries = citizen_access_report(audit_path, citizen_id, earlier)
    trail.citizen_ids = [citizen_id]
    trail.fields = ["access_log"]
    trail.disclosed = {citizen_id: {"fields": ["access_log"], "sources": []}}
    own = [e for e in entries if e["action"] in OWN_LOOKS]
    return {
        "citizen_id": citizen_id,
        "looked_at": [e for e in entries if e["action"] not in OWN_LOOKS],
        "own_looks": own,
    }


def predecessors(cur: duckdb.DuckDBPyConnection, citizen_id: str) -> list[tuple[str, Any]]:
    """The IDs that held some of this citizen's records, and until when (the view's `citizen_lineage`; none in a view
    published before it)."""
    try:
        return [
            (r[0], r[1])
            for r in cur.execute(
                "SELECT predecessor_id, until FROM citizen_lineage WHERE citizen_id = ?", [citizen_id]
            ).fetchall()
        ]
    except duckdb.CatalogException:
        return []


def citizens_holding(cur: duckdb.DuckDBPyConnection, national_id: str) -> set[str]:
    """The citizens whose golden record carries this national ID (separators ignored, as the pipeline stores it)."""
    compact = re.sub(r"[\s.\-:]", "", national_id)
    return {r[0] for r in cur.execute("SELECT citizen_id FROM citizen WHERE national_id = ?", [compact]).fetchall()}
