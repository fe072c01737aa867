"""The caseworkers' pages: search and profile, rendered on the server for the signed-in browser."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

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
from citizen_view.serving.lookups import PORTAL_START, citizens_holding, run_profile, run_search
from citizen_view.serving.templating import render

search = APIRouter(dependencies=[Depends(principal), Depends(search_purpose)])
pages = APIRouter(dependencies=[Depends(principal), Depends(page_purpose)])
session = APIRouter(dependencies=[Depends(principal)])  # pages that show no citizen data (deps.PUBLIC_ROUTES)


@session.get("/start", include_in_schema=False)
def start(who: CurrentPrincipal, trail: AuditTrail, parts: Parts) -> Response:
    """The role's own start page: a citizen portal's citizen on their access log, a reviewer-only role on review,
    everyone else on search."""
    trail.action = PORTAL_START if who.role.citizen_access else "start"
    if who.role.citizen_access:
        if who.citizen is None:
            raise HTTPException(403, "no valid citizen claim: sign in again through the citizen portal")
        with parts.views.cursor() as (cur, _view):
            own = sorted(citizens_holding(cur, who.citizen))
        if not own:
            raise HTTPException(404, "this system holds no record of you, so no organisation has looked at one")
        # the answer names the citizen's ID: a look at them, on their own behalf, in their access log as their own
        trail.on_behalf_of, trail.citizen_ids, trail.fields = own[0], own, ["access_log"]
        trail.disclosed = {c: {"fields": ["access_log"], "sources": []} for c in own}
        return RedirectResponse(f"/citizens/{own[0]}/access-log", status_code=303)
    return RedirectResponse("/search", status_code=303)


@session.get("/purpose", response_class=HTMLResponse, include_in_schema=False)
def purpose_form(request: Request, who: CurrentPrincipal, trail: AuditTrail) -> Response:
    """The form to state (or change) the purpose of this session's looks; it goes on to the page it came from."""
    trail.action = "purpose_form"
    back = local_page(request.query_params.get("next", "")) or "/start"  # never an open redirect
    return render(request, "purpose.html", {"action": back, "keep": {}, "message": None})


def local_page(target: str) -> str | None:
    """`target` when it names a page of this service (a path from its root, at most 200 characters), else None.

    No blank, control or backslash character anywhere: a browser drops tabs and newlines from a URL and reads a
    backslash as a slash (the URL standard), so "/", a tab, "/evil.example" would leave the site."""
    if not target.startswith("/") or target.startswith("//") or len(target) > 200:
        return None
    if any(c == "\\" or c.isspace() or not c.isprintable() for c in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def purpose_needed(request: Request, exc: FieldError) -> Response:
    """A page that needs a purpose, opened without one: the purpose form (a 400, audited), then the page itself."""
    keep = {k: v for k, v in request.query_params.items() if k not in ("purpose", "case_reference")}
    message = None if exc.status_code == 400 else exc.detail
    return render(
        request,
        "purpose.html",
        {"action": request.url.path, "keep": keep, "message": message},
        status_code=exc.status_code,
    )


@search.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request, who: CurrentPrincipal, trail: AuditTrail, parts: Parts) -> Response:
    q = request.query_params
    context: dict[str, Any] = {"q": q, "result": None, "errors": {}}
    trail.action = "search_page"
    if search_purpose(request) is None and not who.role.sources:  # a citizen portal: its own start page instead
        return RedirectResponse("/start", status_code=303)
    if search_purpose(request) is None:  # the blank form (the router's dependency has checked the purpose otherwise)
        return render(request, "search.html", context)
    trail.action = "search"
    if not who.role.sources:  # a citizen portal: it reads its citizen's access log and finds no one
        raise HTTPException(403, f"role {who.role_name!r} may see no source's records, so it cannot search")
    try:
        with parts.views.view() as (cur, view, info):
            context["result"] = run_search(ViewCursor(cur, view, info), who, trail, q)
    except finder.QueryError as exc:
        raise FieldError(exc.field or "name", str(exc)) from None
    return render(request, "search.html", context)


def search_form_again(request: Request, exc: FieldError) -> Response:
    """A refused search from the search page: the form again, with the message beside the field."""
    context = {"q": request.query_params, "result": None, "errors": {exc.field: exc.detail}}
    return render(request, "search.html", context, status_code=exc.status_code)


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
    return render(request, "profile.html", {"p": found, "purpose": stated.purpose, "case_ref": stated.case_reference})
