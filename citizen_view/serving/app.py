"""The caseworker service: one search and one profile across agencies, as an HTTP API and server-rendered pages.

Every request that touches citizen data must be authenticated and state a purpose (or case
reference): the routers in `routes/` declare both as dependencies (`deps.py`), so no route can forget
them. What a role may not see is removed on the server; every request, refused ones included, is
appended to the tamper-evident audit log with the fields it disclosed. The served view is switched
without a restart when the pipeline publishes a new one (see snapshot.py). `create_app` only assembles.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from citizen_view.audit import AnchorSink, AuditEvent, AuditLog
from citizen_view.contract import ConfigError
from citizen_view.serving import search as finder
from citizen_view.serving.access import Authenticator, Principal, TokenAuthenticator, load_access, view_sources
from citizen_view.serving.addresses import client_address
from citizen_view.serving.deps import (
    API_NO_PURPOSE,
    CITIZEN_ID,
    CLAIM_COOKIE,
    COOKIE,
    LIMITS,
    FieldError,
    ServiceParts,
    ViewStore,
)
from citizen_view.serving.guard import DETAIL_KEYS, DETAIL_PREFIXES, AuditEveryResponse, Trail
from citizen_view.serving.health import view_age
from citizen_view.serving.metrics import METRICS_TOKEN_ENV, MIN_TOKEN_LENGTH, MeasureRequests, ServiceMetrics
from citizen_view.serving.routes import api, pages, portal, resolve, review, service
from citizen_view.serving.server import RequestLimits
from citizen_view.serving.templating import render
from citizen_view.serving.throttle import FAILURES_ALLOWED, SignInThrottle

__all__ = ["CITIZEN_ID", "LIMITS", "create_app"]
log = logging.getLogger(__name__)
ANCHOR_SECONDS = 60.0
ROUTERS = (
    service.router,
    api.router,
    resolve.router,
    portal.api,
    pages.search,
    pages.session,
    pages.pages,
    portal.pages,
    review.queue,
    review.decisions,
)


SESSION_KEY_ENV = "CITIZEN_VIEW_SESSION_KEY"


def _session_key(given: bytes | None) -> bytes:
    if given is not None:
        return given
    configured = os.environ.get(SESSION_KEY_ENV, "")
    if configured and len(configured) < 32:
        raise ConfigError(f"${SESSION_KEY_ENV} must be at least 32 characters (a random secret), not {len(configured)}")
    return configured.encode("utf-8") if configured else secrets.token_bytes(32)


def create_app(
    *,
    serving_folder: Path,
    access_file: Path,
    audit_file: Path,
    decisions_file: Path,
    anchor_sinks: Sequence[str | AnchorSink] = (),
    trusted_proxies: Sequence[str] = (),
    authenticator: Authenticator | None = None,
    limits: RequestLimits | None = None,
    metrics_token: str | None = None,
    session_key: bytes | None = None,
    failed_sign_ins: int = FAILURES_ALLOWED,
) -> FastAPI:
    """The service for one served-view folder, one access file and one audit log (anchored in `anchor_sinks` too).

    `trusted_proxies`: addresses or networks whose X-Forwarded-For names the client; from anyone else
    the header is ignored and the socket's address is audited. `limits`: request size limits (default
    `RequestLimits.from_environment()`); the body limit is enforced here, the header limits by the server.
    `metrics_token`: the bearer token of /metrics (default $CITIZEN_VIEW_METRICS_TOKEN; none: /metrics is off).
    `session_key`: the key that signs a browser session's form tokens and remembered purpose (default
    $CITIZEN_VIEW_SESSION_KEY; none: a fresh key for this process). Processes that serve one port together must
    share it, or a form or purpose one of them signed is refused by the next. `failed_sign_ins`: unknown tokens an
    address may send a minute before it is refused with 429 (0: no limit; see throttle.py).
    """
    auth = authenticator or TokenAuthenticator(load_access(access_file), served_sources=view_sources(serving_folder))
    limits = limits or RequestLimits.from_environment()
    token = _metrics_token(metrics_token)  # configuration is checked before the audit log is opened
    key = _session_key(session_key)
    views = ViewStore(serving_folder)
    metrics = ServiceMetrics(lambda: view_age(views))
    # Anchored by `record` below, after each entry and, when that failed, again before the next one: an anchor
    # that cannot be written then fails that next response before its entry is written, so the entry says 500
    # like the wire, and no entry is rewritten to a status other than the one sent.
    audit = AuditLog(audit_file, sinks=list(anchor_sinks), anchor_every=0)
    app = FastAPI(
        title="Citizen View caseworker service",
        version="0.1.0",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=_lifespan(audit, views),
    )
    app.state.audit, app.state.limits, app.state.metrics, app.state.metrics_token = audit, limits, metrics, token
    app.state.parts = ServiceParts(
        auth=auth,
        audit=audit,
        views=views,
        serving_folder=serving_folder,
        decisions_file=decisions_file,
        csrf_key=key,  # forms served carry a token bound to the session
        trusted_proxies=frozenset(trusted_proxies),
        throttle=SignInThrottle(limit=failed_sign_ins),
    )
    app.add_middleware(
        AuditEveryResponse,
        record=_recorder(audit, auth, frozenset(trusted_proxies), metrics),
        max_body_bytes=limits.max_body_bytes,
        probes=frozenset({"/ready"}),
        audit_problem=audit.problem,
    )
    app.add_middleware(MeasureRequests, metrics=metrics)  # outermost: times the whole answer, sees the status sent
    app.add_exception_handler(FieldError, _field_error)
    app.add_exception_handler(
        StarletteHTTPException, _http_error
    )  # the router's 404/405 too: every refusal is an Error
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(finder.QueryError, _query_error)
    app.add_exception_handler(Exception, _crashed)
    for router in ROUTERS:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _client_contract(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _lifespan(audit: AuditLog, views: ViewStore):
    """The service's lifespan: the served view opened and prepared (`ViewStore.on_switch`: at a million persons,
    reading its national IDs into memory takes ~2 s) before the first request, the audit chain's head anchored every
    minute and at shutdown."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            views.served().switched.wait()
        except StarletteHTTPException:  # none published yet, or unreadable: a request says so (503)
            pass
        except Exception:  # a request tries again and answers 500 (audited)
            log.exception("opening the served view failed")
        # Anchor the chain head every minute and at shutdown, so entries deleted from the end show in `audit verify`.
        stop = threading.Event()

        def anchor_periodically() -> None:
            while not stop.wait(ANCHOR_SECONDS):
                try:
                    audit.anchor()
                except OSError:  # the next request fails on it (a 500, audited) and `audit verify` shows the gap
                    log.exception("anchoring the audit log failed")

        timer = threading.Thread(target=anchor_periodically, name="audit-anchor", daemon=True)
        timer.start()
        try:
            yield
        finally:
            stop.set()
            timer.join(timeout=5)
            audit.close()

    return lifespan


def _metrics_token(given: str | None) -> str | None:
    """The metrics token, given or from the environment; a short one is refused at start (ConfigError)."""
    token = (given if given is not None else os.environ.get(METRICS_TOKEN_ENV, "")).strip()
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{METRICS_TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters (a random secret)")
    return token or None


def _recorder(audit: AuditLog, auth: Authenticator, trusted: frozenset[str], metrics: ServiceMetrics):
    """record(scope, trail, status, anchor) for `AuditEveryResponse`: one audit entry per response."""

    def caller(request: HTTPConnection) -> Principal | None:
        """Who sent a request that no handler authenticated (a 404, 405 or 422 before the handler ran), if anyone."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        return auth.authenticate(token) if token and len(token) <= 256 else None

    def record(scope: dict, trail: Trail, status: int, anchor: bool) -> None:
        request = HTTPConnection(scope)  # a WebSocket upgrade too
        if trail.principal is None:
            trail.principal = caller(request)
        try:
            # anchored in the same commit; while the last anchor failed it raises before writing, so this becomes a 500
            _write_audit(audit, request, status, trusted, trail, anchored=anchor)
        except Exception:
            metrics.audited(written=False)
            raise
        metrics.audited(written=True)

    return record


async def _field_error(request: Request, exc: FieldError):
    if exc.status_code == 400 and exc.field == "purpose":
        request.state.trail.refusal = "no_purpose"
    if request.url.path == "/search" and _wants_html(request):  # the search form again, the message by its field
        return pages.search_form_again(request, exc)
    if exc.field in ("purpose", "case_reference") and _wants_html(request) and request.method == "GET":
        return pages.purpose_needed(request, exc)  # the purpose form, then the page that needed it
    return await _http_error(request, exc)


async def _http_error(request: Request, exc: StarletteHTTPException):
    if _wants_html(request):  # a person in a browser: the message inside the page layout, with a way on
        page = _error_page(request, exc.status_code, str(exc.detail))
        page.headers.update(exc.headers or {})
        return page
    return JSONResponse(
        {"error": exc.detail, "status": exc.status_code}, status_code=exc.status_code, headers=exc.headers
    )


async def _invalid_request(request: Request, exc: RequestValidationError):
    problems = list(dict.fromkeys(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()))
    if any(tuple(e["loc"]) == ("query", "purpose") for e in exc.errors()):  # the purpose rule first: 400, as on pages
        request.state.trail.refusal = "no_purpose"
        return JSONResponse({"error": API_NO_PURPOSE, "problems": problems, "status": 400}, status_code=400)
    if _wants_html(request):
        return _error_page(request, 422, "; ".join(problems))
    return JSONResponse({"error": "invalid request", "problems": problems, "status": 422}, status_code=422)


async def _query_error(request: Request, exc: finder.QueryError):
    if _wants_html(request):
        return _error_page(request, 422, str(exc))
    return JSONResponse({"error": str(exc), "status": 422}, status_code=422)


async def _crashed(request: Request, exc: Exception):  # never a stack trace to the client
    if _wants_html(request):
        return _error_page(request, 500, "internal error; it has been logged")
    return JSONResponse({"error": "internal error; it has been logged", "status": 500}, status_code=500)


def _error_page(request: Request, status: int, message: str):
    """A refusal in the page layout: the signed-in user's navigation (when the token is valid) and a way on."""
    trail = request.state.trail
    if trail.principal is None and status != 401:  # a 404 or 405 before any handler ran: who asked, as audit says
        token = request.cookies.get(COOKIE, "")
        claim = request.cookies.get(CLAIM_COOKIE) or None
        trail.principal = request.app.state.parts.auth.authenticate(token, claim) if 0 < len(token) <= 256 else None
    try:
        return render(request, "error.html", {"status": status, "message": message}, status_code=status)
    except Exception:  # the page itself failed (a broken view): the message still goes out
        log.exception("rendering the error page failed")
        return JSONResponse({"error": message, "status": status}, status_code=status)


def _client_contract(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated OpenAPI document as clients read it: an optional query parameter is a plain typed string with
    its limits (not `anyOf [string, null]`: a query string has no null), and FastAPI's validation-error schemas,
    which no answer uses (invalid input is answered with `Error`), are left out."""
    for operation in (op for item in schema.get("paths", {}).values() for op in item.values()):
        for param in operation.get("parameters", []):
            options = param["schema"].get("anyOf", [])
            kept = [o for o in options if o.get("type") != "null"]
            if not param.get("required") and len(kept) == 1 and len(options) == 2:
                param["schema"] = {**kept[0], **{k: v for k, v in param["schema"].items() if k != "anyOf"}}
    text = json.dumps(schema.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in text:
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
    return schema


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _write_audit(
    audit: AuditLog, request: HTTPConnection, status: int, trusted: frozenset[str], trail: Trail, *, anchored: bool
) -> None:
    who = trail.principal
    # The request's own parameters, cut to 200 characters, under their names; one named like a key the service writes
    # (the path, any handler's details, any "record." or "param:" key) is kept as "param:<name>" instead of standing
    # in for it, whether or not this request's handler wrote that key (one name to one key: no parameter keeps a name
    # that starts with "param:").
    reserved = {"path", *DETAIL_KEYS, *trail.details}
    query = {
        (f"param:{k}" if k in reserved or k.startswith(DETAIL_PREFIXES) else k): v[:200]
        for k, v in request.query_params.items()
        if k not in ("purpose", "case_reference")
    }
    action = trail.action if status < 400 else f"refused:{trail.action}"
    audit.append(
        AuditEvent(
            user=who.user if who else None,
            role=who.role_name if who else None,
            organisation=who.organisation if who else None,
            action=action,
            purpose=trail.purpose or request.query_params.get("purpose"),  # as stated; else as sent (a refusal)
            case_reference=trail.case_reference or request.query_params.get("case_reference"),
            query={**query, **trail.details, "path": request.url.path},
            citizen_ids=trail.citizen_ids if status < 400 else [],
            fields=trail.fields if status < 400 else [],
            disclosed=trail.disclosed if status < 400 else {},
            status=status,
            authorisation_rule=f"role:{who.role_name}" if who else None,
            on_behalf_of=trail.on_behalf_of,
            client=client_address(
                request.client.host if request.client else None, request.headers.get("x-forwarded-for"), trusted
            ),
        ),
        anchored=anchored,
    )
