"""The caseworkers' pages: search and profile, rendered on the server for the signed-in browser."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from citizen_view.serving import search as finder
from citizen_view.serving.deps import (
    AuditTrail,
    CurrentPrincipal,
    FieldError,
    Parts,
    StatedPurpose,
    View,
    ViewCursor,
    audited_as,
    page_purpose,
    principal,
    search_purpose,
)
from citizen_view.serving.lookups import run_profile, run_search
from citizen_view.serving.templating import TEMPLATES

search = APIRouter(dependencies=[Depends(principal), Depends(search_purpose)])
pages = APIRouter(dependencies=[Depends(principal), Depends(page_purpose)])


@search.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request, who: CurrentPrincipal, trail: AuditTrail, parts: Parts) -> Response:
    q = request.query_params
    context: dict[str, Any] = {"who": who, "q": q, "result": None, "errors": {}}
    trail.action = "search_page"
    if search_purpose(request) is None:  # the blank form (the router's dependency has checked the purpose otherwise)
        return TEMPLATES.TemplateResponse(request, "search.html", context)
    trail.action = "search"
    try:
        with parts.views.cursor() as (cur, view):
            context["result"] = run_search(ViewCursor(cur, view), who, trail, q)
    except finder.QueryError as exc:
        raise FieldError(exc.field or "name", str(exc)) from None
    return TEMPLATES.TemplateResponse(request, "search.html", context)


def search_form_again(request: Request, exc: FieldError) -> Response:
    """A refused search from the search page: the form again, with the message beside the field."""
    who = request.state.trail.principal
    context = {"who": who, "q": request.query_params, "result": None, "errors": {exc.field: exc.detail}}
    return TEMPLATES.TemplateResponse(request, "search.html", context, status_code=exc.status_code)


@pages.get(
    "/citizens/{citizen_id}",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=[audited_as("view_profile")],
)
def profile_page(
    request: Request,
    citizen_id: str,
    who: CurrentPrincipal,
    trail: AuditTrail,
    view: View,
    stated: Annotated[StatedPurpose, Depends(page_purpose)],
) -> Response:
    found = run_profile(view, who, trail, citizen_id)
    return TEMPLATES.TemplateResponse(
        request,
        "profile.html",
        {"who": who, "p": found, "view": view.view, "purpose": stated.purpose, "case_ref": stated.case_reference},
    )
