"""`POST /api/resolve`: which citizen one incoming record belongs to, from the served view, without a pipeline run.

Authenticated, with a purpose, audited like a search (the citizens answered and the fields disclosed); each
resolution is recorded for the next pipeline run (linkage/online.py).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from citizen_view.linkage.online import record_resolution, resolutions_file
from citizen_view.serving.deps import LIMITS, AuditTrail, CurrentPrincipal, FieldError, Parts, View, audited_as
from citizen_view.serving.resolve import SHOWN_FIELDS, resolve, resolve_model
from citizen_view.serving.routes.api import API, API_DEPENDENCIES

Text = Annotated[str | None, Field(default=None, max_length=200)]


class IncomingRecord(BaseModel):
    """One record as a source would give it: canonical fields as text (dates yyyy-mm-dd)."""

    model_config = ConfigDict(extra="forbid")
    given_name: Text
    middle_name: Text
    family_name: Text
    full_name: Text
    date_of_birth: Annotated[str | None, Field(default=None, max_length=LIMITS["date_of_birth"])]
    date_of_death: Annotated[str | None, Field(default=None, max_length=LIMITS["date_of_birth"])]
    sex: Text
    national_id: Annotated[str | None, Field(default=None, max_length=LIMITS["national_id"])]
    street: Text
    house_number: Annotated[str | None, Field(default=None, max_length=LIMITS["house_number"])]
    unit: Text
    postcode: Annotated[str | None, Field(default=None, max_length=LIMITS["postcode"])]
    city: Text
    area_code: Text
    birth_place: Text
    email: Text
    phone: Text
    source: Annotated[str | None, Field(default=None, max_length=60, description="The caller's source it came from.")]
    source_record_id: Annotated[str | None, Field(default=None, max_length=100, description="Its key in that source.")]


class FieldEvidence(BaseModel):
    """One comparison of the model: its level, its weight, the values compared (the candidate's when the role sees it)."""

    field: str
    level: str
    match_weight: float
    incoming: str | None = None
    candidate: str | None = None


class ResolveCandidate(BaseModel):
    citizen_id: str
    record_key: str
    match_weight: float
    match_probability: float
    evidence: list[FieldEvidence]


class SetAside(BaseModel):
    field: str
    raw: str | None = None
    reason: str


class Resolution(BaseModel):
    """The answer for one record: matched (with the citizen), new, or review, why, and the best candidates."""

    view: str
    resolution_id: str
    decision: str
    citizen_id: str | None = None
    match_weight: float | None = None
    match_probability: float | None = None
    reason: str
    threshold: float
    review_band: list[float]
    records_compared: int
    set_aside: list[SetAside]
    candidates: list[ResolveCandidate]


router = APIRouter(prefix="/api", dependencies=API_DEPENDENCIES)


@router.post(
    "/resolve",
    tags=["caseworkers"],
    response_model=Resolution,
    dependencies=[audited_as("resolve")],
    **API,
    summary="Which citizen one incoming record belongs to (or new, or needs review), with the evidence per field",
)
def api_resolve(
    record: IncomingRecord, who: CurrentPrincipal, trail: AuditTrail, view: View, parts: Parts
) -> dict[str, Any]:
    role = who.role
    if role.citizen_access:
        raise HTTPException(403, f"role {who.role_name!r} acts for one citizen and may not resolve records")
    given = record.model_dump(exclude_none=True, exclude={"source", "source_record_id"})
    hidden = sorted(f for f in given if not role.sees(f))
    if hidden:
        raise FieldError(hidden[0], f"role {who.role_name!r} may not resolve by {', '.join(hidden)}", status=403)
    if record.source is not None and record.source not in role.sources:
        raise FieldError(
            "source", f"role {who.role_name!r} may not submit records of source {record.source!r}", status=403
        )
    if not given:
        raise FieldError("family_name", "a record to resolve needs at least one field")
    model = resolve_model(view.cur, view.view)
    if model is None:
        raise HTTPException(
            503,
            "the served view holds no model to resolve plain records with (no pipeline run yet, or linkage on encodings)",
        )
    answer = resolve(view.cur, model, given, role)
    resolution_id = f"R{dt.datetime.now(dt.timezone.utc):%Y%m%d%H%M%S}{secrets.token_hex(4)}"
    record_resolution(
        resolutions_file(parts.serving_folder.parent),
        {
            "resolution_id": resolution_id,
            "record": given,
            "decision": answer["decision"],
            "citizen_id": answer["citizen_id"],
            "match_weight": answer["match_weight"],
            "resolved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "resolved_by": who.user,
            "submitted_by": record.source or who.organisation,
            "agency_record_id": record.source_record_id,
            "view": view.view,
        },
    )
    trail.citizen_ids = [c["citizen_id"] for c in answer["candidates"]]
    shown = {e["field"] for c in answer["candidates"] for e in c["evidence"] if e.get("candidate")}
    trail.fields = sorted({"resolution", *(f for name in shown for f in SHOWN_FIELDS.get(name, (name,)))})

    trail.details = {"resolution_id": resolution_id, "decision": answer["decision"]}
    return {"view": view.view, "resolution_id": resolution_id, **answer}
