"""The caseworkers' API: search and profile. The router authenticates, requires a purpose and documents both."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.security import HTTPBearer

from citizen_view.serving.deps import (
    CITIZEN_ID,
    LIMITS,
    AuditTrail,
    CurrentPrincipal,
    View,
    api_purpose,
    audited_as,
    principal,
)
from citizen_view.serving.lookups import run_profile, run_search
from citizen_view.serving.models import ERRORS, CitizenProfile, SearchResult

BEARER = HTTPBearer(auto_error=False, description="A token from the access file: `Authorization: Bearer <token>`.")
# Every /api/ operation: its refusals, the bearer token (declared for clients; `principal` checks it), the purpose,
# and in a 200 only the keys the handler set (a field the role may not see stays absent, not null).
API_DEPENDENCIES = [Security(BEARER), Depends(principal), Depends(api_purpose)]
API: dict[str, Any] = {"responses": ERRORS, "response_model_exclude_unset": True}
CitizenId = Annotated[
    str,
    PathParam(
        pattern=CITIZEN_ID.pattern, description="A citizen ID, CV-XXXX-XXXX-XXXX.", examples=["CV-ABCD-EFGH-2345"]
    ),
]


def text(limit: str, description: str, **options: Any) -> Any:
    return Annotated[str | None, Query(max_length=LIMITS[limit], description=description, **options)]


router = APIRouter(prefix="/api", dependencies=API_DEPENDENCIES)


@router.get(
    "/search",
    tags=["caseworkers"],
    response_model=SearchResult,
    dependencies=[audited_as("search")],
    **API,
    summary="Find citizens by national ID, by name + date of birth, or by name + address",
)
def api_search(
    request: Request,
    who: CurrentPrincipal,
    trail: AuditTrail,
    view: View,
    national_id: text("national_id", "A national ID (separators ignored).") = None,
    name: text("name", "A name in either order ('Given Family' or 'FAMILY, Given').", examples=["Jan de Vries"]) = None,
    date_of_birth: text(
        "date_of_birth", "yyyy-mm-dd, dd-mm-yyyy, dd/mm/yyyy, dd.mm.yyyy or yyyymmdd.", examples=["1980-01-31"]
    ) = None,
    postcode: text("postcode", "With name + house_number (or street).") = None,
    house_number: text("house_number", "With name + postcode or street.") = None,
    street: text("street", "With name + house_number (or postcode).") = None,
) -> dict[str, Any]:
    return run_search(view, who, trail, request.query_params)


@router.get(
    "/citizens/{citizen_id}",
    tags=["caseworkers"],
    response_model=CitizenProfile,
    dependencies=[audited_as("view_profile")],
    **API,
    summary="One citizen as the caller's role may see them: who, what is running, history, linked records",
)
def api_profile(citizen_id: CitizenId, who: CurrentPrincipal, trail: AuditTrail, view: View) -> dict[str, Any]:
    found = run_profile(view, who, trail, citizen_id)
    return {"view": view.view, **found.as_dict()}
