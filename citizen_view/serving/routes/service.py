"""The public routes: health, readiness and metrics for the platform, and a browser's sign-in and sign-out (no citizen
data, no purpose)."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citizen_view.serving.deps import CLAIM_COOKIE, COOKIE, PURPOSE_COOKIE, AuditTrail, Parts
from citizen_view.serving.health import readiness
from citizen_view.serving.metrics import CONTENT_TYPE, METRICS_TOKEN_ENV
from citizen_view.serving.models import Error, Health, Ready
from citizen_view.serving.snapshot import current_view
from citizen_view.serving.templating import render

router = APIRouter()


@router.get("/health", tags=["service"], response_model=Health, summary="Whether a view is published")
def health(parts: Parts, trail: AuditTrail) -> dict[str, Any]:
    trail.action = "health"
    path = current_view(parts.serving_folder)
    return {"status": "ok" if path else "no view published", "view": path.name if path else None}


@router.get(
    "/ready",
    tags=["service"],
    response_model=Ready,
    summary="Whether the service can answer: a served view it can read and an audit log it can write",
    responses={503: {"model": Error, "description": "Not ready, with every reason"}},
)
def ready(parts: Parts, trail: AuditTrail) -> dict[str, Any]:
    trail.action = "ready"
    found = readiness(parts.views, parts.audit)
    if found.problems:
        raise HTTPException(503, "not ready: " + "; ".join(found.problems))
    # answered only when this answer's own audit entry was written: the entry is the probe of the log (guard.py)
    return {
        "status": "ready",
        "view": found.view,
        "view_age_seconds": found.view_age_seconds,
        "documents": found.documents,
    }


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, trail: AuditTrail) -> Response:
    """Prometheus text format, for a scraper holding the metrics token (no personal data; see metrics.py)."""
    trail.action = "metrics"
    token = request.app.state.metrics_token
    if not token:
        trail.refusal = "metrics_off"
        raise HTTPException(403, f"metrics are off: set {METRICS_TOKEN_ENV} and scrape with it as a bearer token")
    header = request.headers.get("authorization", "")
    sent = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(sent.encode("utf-8"), token.encode("utf-8")):
        trail.refusal = "metrics_token"
        raise HTTPException(401, "metrics need 'Authorization: Bearer <the metrics token>'")
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)


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
    parts.refuse_when_throttled(request, trail)
    who = parts.auth.authenticate(token, claim or None)
    if who is None:
        parts.throttle.failed(parts.client(request))
        return render(request, "login.html", {"who": None, "error": "unknown_token"}, status_code=401)
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
