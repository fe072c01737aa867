"""The caseworkers' API: search and profile. The router authenticates, requires a purpose and documents both.

Each search mode is its own operation with its required parameters, so the OpenAPI document states which
parameters make a search (a request it allows is one the service runs)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.responses import Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from pydantic_core import to_json

from citizen_view.serving import search as finder
from citizen_view.serving.deps import (
    CITIZEN_ID,
    LIMITS,
    ApiView,
    AuditTrail,
    CurrentPrincipal,
    CurrentView,
    FieldError,
    api_purpose,
    audited_as,
    principal,
    stated_purpose,
)
from citizen_view.serving.guard import offload
from citizen_view.serving.lookups import run_profile, run_search
from citizen_view.serving.models import ERRORS, CitizenProfile, SearchResult, documented

if TYPE_CHECKING:
    from citizen_view.serving.access import Principal
    from citizen_view.serving.guard import Trail

BEARER = HTTPBearer(auto_error=False, description="A token from the access file: `Authorization: Bearer <token>`.")
# Every /api/ operation: its refusals, the bearer token (declared for clients; `principal` checks it), the purpose,
# and in a 200 only the keys the handler set (a field the role may not see stays absent, not null).
API_DEPENDENCIES = [Security(BEARER), Depends(principal), Depends(api_purpose)]
API: dict[str, Any] = {"responses": ERRORS, "response_model_exclude_unset": True}


def caseworkers(model: type, action: str) -> dict[str, Any]:
    """An /api/ operation of caseworkers: the model of its answer, the action its audit entry records, its refusals."""
    return {"tags": ["caseworkers"], "response_model": model, "dependencies": [audited_as(action)], **API}


SEARCH = caseworkers(SearchResult, "search")
CitizenId = Annotated[
    str,
    PathParam(
        pattern=CITIZEN_ID.pattern, description="A citizen ID, CV-XXXX-XXXX-XXXX.", examples=["CV-ABCD-EFGH-2345"]
    ),
]
# search.py's own limits, stated in the document: a national ID is 4 to 20 letters or digits, separators ignored;
# an API date is ISO 8601 (the search page reads the other forms people type).
NATIONAL_ID = r"^[ .:-]*(?:[0-9A-Za-z][ .:-]*){4,20}$"
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def text(limit: str, description: str, **options: Any) -> Any:
    return Annotated[str | None, Query(max_length=LIMITS[limit], description=description, **options)]


def needed(limit: str, description: str, **options: Any) -> Any:
    """A required query parameter of 1 to LIMITS[limit] characters."""
    return Annotated[str, Query(min_length=1, max_length=LIMITS[limit], description=description, **options)]


NationalId = needed(
    "national_id",
    "A national ID: 4 to 20 letters or digits; spaces, dots, colons and hyphens are ignored.",
    pattern=NATIONAL_ID,
    examples=["123456782"],
)
Name = needed("name", "A name in either order ('Given Family' or 'FAMILY, Given').", examples=["Jan de Vries"])
DateOfBirth = needed(
    "date_of_birth", "yyyy-mm-dd.", pattern=ISO_DATE, examples=["1980-01-31"], json_schema_extra={"format": "date"}
)
HouseNumber = needed("house_number", "The house number, with any addition ('12', '12a').", examples=["12"])
Postcode = needed("postcode", "The postcode as the country writes it.", examples=["1234 AB"])
Street = needed("street", "The street name.", examples=["Dorpsstraat"])

router = APIRouter(prefix="/api", dependencies=API_DEPENDENCIES)


def search(view: CurrentView, who: Principal, trail: Trail, mode: str, terms: dict[str, str | None]) -> Response:
    """One search. A request the document allows that no record can match (an ID not of the deployment's scheme, a
    name without a family name, a postcode not as the country writes it) finds no one and says why in `note`."""
    try:
        found = run_search(view, who, trail, {k: v for k, v in terms.items() if v is not None})
    except finder.QueryError as exc:
        trail.details = {"note": str(exc)[:200]}
        found = {"view": view.view, "mode": mode, "candidates": [], "note": str(exc)}
    return answer(SearchResult, found, trail)


def answer(model: type[BaseModel], found: dict[str, Any], trail: Trail) -> Response:
    """An answer as JSON, as the route's response model documents it (`models.documented`: sent as built, without the
    model's validation per request; written by pydantic's serialiser, as the model would write it, floats included),
    audited as a 200 in this thread before it is returned: the entry is durable before the answer goes out."""
    response = Response(to_json(documented(model, found)), media_type="application/json")
    trail.audit_now(response.status_code)
    return response


@router.get("/search/national-id", **SEARCH, summary="Find citizens by national ID")
async def search_by_national_id(
    national_id: NationalId, who: CurrentPrincipal, trail: AuditTrail, view: ApiView
) -> Response:
    return await offload(search, view, who, trail, "national_id", {"national_id": national_id})


@router.get("/search/name-and-date-of-birth", **SEARCH, summary="Find citizens by name and date of birth")
async def search_by_name_and_date_of_birth(
    name: Name, date_of_birth: DateOfBirth, who: CurrentPrincipal, trail: AuditTrail, view: ApiView
) -> Response:
    try:
        dt.date.fromisoformat(date_of_birth)
    except ValueError:
        raise FieldError("date_of_birth", f"date_of_birth {date_of_birth!r} is not a calendar date") from None
    terms = {"name": name, "date_of_birth": date_of_birth}
    return await offload(search, view, who, trail, "name_date_of_birth", terms)


@router.get("/search/name-and-postcode", **SEARCH, summary="Find citizens by name, postcode and house number")
async def search_by_name_and_postcode(
    name: Name,
    postcode: Postcode,
    house_number: HouseNumber,
    who: CurrentPrincipal,
    trail: AuditTrail,
    view: ApiView,
    street: text("street", "The street name, when known too.") = None,
) -> Response:
    terms = {"name": name, "postcode": postcode, "house_number": house_number, "street": street}
    return await offload(search, view, who, trail, "name_address", terms)


@router.get("/search/name-and-street", **SEARCH, summary="Find citizens by name, street and house number")
async def search_by_name_and_street(
    name: Name, street: Street, house_number: HouseNumber, who: CurrentPrincipal, trail: AuditTrail, view: ApiView
) -> Response:
    terms = {"name": name, "street": street, "house_number": house_number}
    return await offload(search, view, who, trail, "name_address", terms)


@router.get("/search", include_in_schema=False, **{**SEARCH, "tags": None})
def api_search(request: Request, who: CurrentPrincipal, trail: AuditTrail, view: ApiView) -> Response:
    """The earlier all-in-one search (the parameters of every mode together), kept for existing clients; not in the
    document, because which parameters make a search is not something one operation's parameters can state."""
    stated_purpose(dict(request.query_params))  # its parameters' limits (422), as before
    return answer(SearchResult, run_search(view, who, trail, request.query_params), trail)


@router.get(
    "/citizens/{citizen_id}",
    **caseworkers(CitizenProfile, "view_profile"),
    summary="One citizen as the caller's role may see them: who, what is running, history, linked records",
)
async def api_profile(citizen_id: CitizenId, who: CurrentPrincipal, trail: AuditTrail, view: ApiView) -> Response:
    return await offload(profile, view, who, trail, citizen_id)


def profile(view: CurrentView, who: Principal, trail: Trail, citizen_id: str) -> Response:
    found = run_profile(view, who, trail, citizen_id)
    return answer(CitizenProfile, {"view": view.view, **found.as_dict()}, trail)
