"""`POST /api/resolve`: which citizen one incoming record belongs to, from the served view, without a pipeline run.

Authenticated, with a purpose, audited like a search (the citizens answered and the fields disclosed); a resolution
of a record that names its source and key, by a role that may submit that source's records (`submits`), is recorded
for the next pipeline run (linkage/online.py), after its audit entry is written: nothing is taken in unaudited.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from citizen_view.linkage.online import record_resolution, resolutions_file
from citizen_view.serving.deps import LIMITS, ApiView, AuditTrail, CurrentPrincipal, FieldError, Parts
from citizen_view.serving.guard import offload
from citizen_view.serving.models import Resolution
from citizen_view.serving.resolve import SHOWN_FIELDS, NotReady, resolve, resolve_model
from citizen_view.serving.routes.api import API_DEPENDENCIES, caseworkers
from citizen_view.serving.routes.api import answer as sent

if TYPE_CHECKING:  # the handler's own annotations (not read by FastAPI: it is called through offload)
    from citizen_view.serving.access import Principal
    from citizen_view.serving.deps import CurrentView, ServiceParts
    from citizen_view.serving.guard import Trail


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent means "not given"; the document states no null default for a string


def _text(max_length: int, description: str | None = None) -> Any:
    """An optional field given as a string (null is not a value: leave the field out)."""
    return Field(max_length=max_length, description=description, json_schema_extra=_no_default)


Text = Annotated[str, _text(200)]
NOT_RECORD_FIELDS = ("source", "source_record_id")  # where the record comes from, not what it says


BLANKS = " \t\r\n"  # a value of these only is no value (a class Python and ECMA read alike, unlike \s)


def _one_field_at_least(schema: dict[str, Any]) -> None:
    fields = [f for f in schema["properties"] if f not in NOT_RECORD_FIELDS]  # a record without any field is no record
    has_value = {"pattern": f"[^{BLANKS.encode('unicode_escape').decode()}]"}
    schema["anyOf"] = [{"required": [f], "properties": {f: has_value}} for f in fields]


class IncomingRecord(BaseModel):
    """One record as a source would give it: canonical fields as text (dates yyyy-mm-dd), at least one of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_field_at_least)
    given_name: Text = None
    middle_name: Text = None
    family_name: Text = None
    full_name: Text = None
    date_of_birth: Annotated[str, _text(LIMITS["date_of_birth"])] = None
    date_of_death: Annotated[str, _text(LIMITS["date_of_birth"])] = None
    sex: Text = None
    national_id: Annotated[str, _text(LIMITS["national_id"])] = None
    street: Text = None
    house_number: Annotated[str, _text(LIMITS["house_number"])] = None
    unit: Text = None
    postcode: Annotated[str, _text(LIMITS["postcode"])] = None
    city: Text = None
    area_code: Text = None
    birth_place: Text = None
    email: Text = None
    phone: Text = None
    source: Annotated[
        str, _text(60, "The caller's source it came from (with source_record_id: taken in at the next run).")
    ] = None
    source_record_id: Annotated[str, _text(100, "Its key in that source.")] = None


router = APIRouter(prefix="/api", dependencies=API_DEPENDENCIES)


@router.post(
    "/resolve",
    **caseworkers(Resolution, "resolve"),
    summary="Which citizen one incoming record belongs to (or new, or needs review), with the evidence per field",
)
async def api_resolve(
    record: IncomingRecord, who: CurrentPrincipal, trail: AuditTrail, view: ApiView, parts: Parts
) -> Response:
    return await offload(resolution, record, who, trail, view, parts)


def _replaced(parts: ServiceParts, view: str) -> bool:
    """Whether the view named `view` is no longer the one published (one stat of the pointer file)."""
    now = parts.views.current()
    return now is not None and now.name != view


def resolution(
    record: IncomingRecord, who: Principal, trail: Trail, view: CurrentView, parts: ServiceParts
) -> Response:
    """One record resolved (in a BLOCKING thread): refused as the role says, answered, recorded when it names its
    source and key, and audited before the answer is returned."""
    role = who.role
    if role.citizen_access:
        raise HTTPException(403, f"role {who.role_name!r} acts for one citizen and may not resolve records")
    # a value of blanks only is no value: "   " is not a record to take in
    values = record.model_dump(exclude_none=True, exclude=set(NOT_RECORD_FIELDS))
    given = {k: v for k, v in values.items() if v.strip(BLANKS)}
    hidden = sorted(f for f in given if not role.sees(f))
    if hidden:
        raise FieldError(hidden[0], f"role {who.role_name!r} may not resolve by {', '.join(hidden)}", status=403)
    if record.source is not None and record.source not in role.submits:
        may = f"its `submits` lists {', '.join(role.submits)}" if role.submits else "its `submits` lists none"
        raise FieldError(
            "source", f"role {who.role_name!r} may not submit records of source {record.source!r} ({may})", status=403
        )
    if not given:
        raise FieldError("family_name", "a record to resolve needs at least one field")
    try:
        model = resolve_model(view.cur, view.info, replaced=lambda: _replaced(parts, view.view))
    except NotReady as exc:  # refused at once (and audited as a refusal), not held in a worker thread for seconds
        raise HTTPException(503, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    if model is None:
        raise HTTPException(
            503,
            "the served view holds no model to resolve plain records with (no pipeline run yet, or linkage on encodings)",
        )
    answer = resolve(view.cur, model, given, role)
    resolution_id = f"R{dt.datetime.now(dt.timezone.utc):%Y%m%d%H%M%S}{secrets.token_hex(4)}"
    # An incoming record names its source and its key there: the next run takes it in (the latest answer per key).
    # Without both it is a lookup: answered and audited, never a record (a caseworker's probe must not become data).
    taken_in = record.source is not None and bool(record.source_record_id and record.source_record_id.strip(BLANKS))
    trail.citizen_ids = [c["citizen_id"] for c in answer["candidates"]]
    # per candidate, what was shown of them: the fields their evidence showed and the source of their record (a
    # citizen's access report lists these, never another candidate's)
    trail.disclosed = {
        c["citizen_id"]: {"fields": _shown(c), "sources": [c["record_key"].split(":", 1)[0]]}
        for c in answer["candidates"]
    }
    trail.fields = sorted({f for c in trail.disclosed.values() for f in c["fields"]} | {"resolution"})
    # what was looked up, as a search's terms are: the record's values (each cut to 200 characters)
    submitted = {f"record.{k}": str(v)[:200] for k, v in record.model_dump(exclude_none=True).items()}
    trail.details = {"resolution_id": resolution_id, "decision": answer["decision"], "taken_in": str(taken_in).lower()}
    trail.details |= submitted
    # audited first (sent writes the entry, or raises): a record is taken in only once its entry is durable; should
    # recording it fail then, the 500 that follows is audited too, after this entry
    response = sent(
        Resolution, {"view": view.view, "resolution_id": resolution_id, "taken_in": taken_in, **answer}, trail
    )
    if taken_in:
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
                "submitted_by": record.source,
                "agency_record_id": record.source_record_id,
                "view": view.view,
            },
        )
    return response


def _shown(candidate: dict[str, Any]) -> list[str]:
    """The fields a candidate's evidence showed the candidate's values of, and the resolution itself."""
    shown = {e["field"] for e in candidate["evidence"] if e.get("candidate")}
    return sorted({"resolution", *(f for name in shown for f in SHOWN_FIELDS.get(name, (name,)))})
