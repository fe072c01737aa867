"""A citizen's access log ("who looked at my data"), read by a citizen portal for the citizen it signed in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import HTMLResponse, Response

from citizen_view.serving.deps import AuditTrail, CurrentPrincipal, Parts, StatedPurpose, page_purpose, principal
from citizen_view.serving.lookups import run_access_report
from citizen_view.serving.models import AccessReport
from citizen_view.serving.routes.api import API, API_DEPENDENCIES, CitizenId
from citizen_view.serving.templating import render

api = APIRouter(prefix="/api", dependencies=API_DEPENDENCIES)
pages = APIRouter(dependencies=[Depends(principal), Depends(page_purpose)])
ClaimHeader = Annotated[
    str | None,
    Header(
        max_length=512,
        description=(
            "The signed-in citizen, signed by the portal: `<national ID>.<expiry, Unix seconds>.<hex HMAC-SHA256 of "
            "'<national ID>.<expiry>' under the portal secret>`. Only that citizen's log is served; any other ID is a 403."
        ),
    ),
]


@api.get(
    "/citizens/{citizen_id}/access-log",
    tags=["citizens"],
    response_model=AccessReport,
    **API,
    summary="Who looked at this citizen's data: organisation, when, why and which data (for a citizen portal)",
)
def api_access_log(
    citizen_id: CitizenId,
    who: CurrentPrincipal,
    trail: AuditTrail,
    parts: Parts,
    x_citizen_claim: ClaimHeader = None,
) -> dict[str, Any]:
    return run_access_report(parts.views, parts.audit.path, who, trail, citizen_id)


@pages.get("/citizens/{citizen_id}/access-log", response_class=HTMLResponse, include_in_schema=False)
def access_log_page(
    request: Request,
    citizen_id: str,
    who: CurrentPrincipal,
    trail: AuditTrail,
    parts: Parts,
    stated: Annotated[StatedPurpose, Depends(page_purpose)],
) -> Response:
    report = run_access_report(parts.views, parts.audit.path, who, trail, citizen_id)
    return render(
        request,
        "access_log.html",
        {
            "citizen_id": citizen_id,
            "entries": report["looked_at"],
            "own": report["own_looks"],
            "purpose": stated.purpose,
        },
    )
