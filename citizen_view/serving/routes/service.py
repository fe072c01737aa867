"""The public routes: health, and a browser's sign-in and sign-out (no citizen data, no purpose)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citizen_view.serving.deps import CLAIM_COOKIE, COOKIE, PURPOSE_COOKIE, AuditTrail, Parts
from citizen_view.serving.models import Health
from citizen_view.serving.snapshot import current_view
from citizen_view.serving.templating import render

router = APIRouter()


@router.get("/health", tags=["service"], response_model=Health, summary="Whether a view is published")
def health(parts: Parts, trail: AuditTrail) -> dict[str, Any]:
    trail.action = "health"
    path = current_view(parts.serving_folder)
    return {"status": "ok" if path else "no view published", "view": path.name if path else None}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, trail: AuditTrail) -> Response:
    trail.action = "login_page"
    return render(request, "login.html", {"who": None})


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    parts: Parts,
    trail: AuditTrail,
    token: Annotated[str, Form(max_length=256)],
    claim: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    trail.action = "login"
    same_origin(request)
    who = parts.auth.authenticate(token, claim or None)
    if who is None:
        return render(request, "login.html", {"who": None, "error": "Unknown token."}, status_code=401)
    trail.principal = who
    response = RedirectResponse("/start", status_code=303)  # each role's own start page
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    if claim:  # a citizen portal's sign-in: the claim goes with every page it opens, and expires with it
        response.set_cookie(CLAIM_COOKIE, claim, httponly=True, samesite="strict")
    return response


@router.get("/logout", include_in_schema=False)
def logout(trail: AuditTrail) -> Response:
    trail.action = "logout"
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE)
    response.delete_cookie(CLAIM_COOKIE)
    response.delete_cookie(PURPOSE_COOKIE)
    return response


def same_origin(request: Request) -> None:
    """A state-changing request from a page of another site is refused (Origin check)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "cross-origin form posts are refused")
