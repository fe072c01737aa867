"""The caseworker service: one search and one profile across agencies, as an HTTP API and server-rendered pages.

Every request that touches citizen data must be authenticated and state a purpose (or case
reference); what a role may not see is removed on the server; every request, refused ones included,
is appended to the tamper-evident audit log. The served view is switched without a restart when the
pipeline publishes a new one (see snapshot.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import duckdb
from fastapi import FastAPI, Form, Header, HTTPException, Path as PathParam, Query, Request, Security
from pydantic import BaseModel
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBearer
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from citizen_view.serving import profile as profiles
from citizen_view.serving import search as finder
from citizen_view.serving.access import Authenticator, Principal, TokenAuthenticator, load_access
from citizen_view.linkage.review import ReviewKind, load_overrides, open_items, pair_id, pair_in_scope, record_decision
from citizen_view.audit import AnchorSink, AuditEvent, AuditLog, citizen_access_report
from citizen_view.serving.guard import AuditEveryResponse, Trail
from citizen_view.serving.server import RequestLimits, client_address
from citizen_view.serving.snapshot import current_view

log = logging.getLogger(__name__)
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
CITIZEN_ID = re.compile(r"^CV-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")
LIMITS = {"purpose": 200, "case_reference": 100, "name": 200, "national_id": 20, "date_of_birth": 20,
          "postcode": 12, "house_number": 12, "street": 120}  # fmt: skip
COOKIE = "cv_token"
CLAIM_HEADER, CLAIM_COOKIE = "x-citizen-claim", "cv_citizen_claim"  # a citizen portal's signed claim (see access.py)
ANCHOR_SECONDS = 60.0
REVIEW_PAGE = 10
REVIEW_COLUMNS = ("full_name", "date_of_birth", "national_id", "street", "house_number", "postcode", "city")
MAX_REVIEW_PAGE = 100_000  # a million queued items; a larger page number is a mistake (and an OFFSET DuckDB refuses)


class FieldError(HTTPException):
    """A refusal because of one input field: the usual error (JSON, or the error page) everywhere, and on the search
    page the form again with the message beside that field."""

    def __init__(self, field_name: str, message: str, *, status: int = 422):
        super().__init__(status, message)
        self.field = field_name


class Error(BaseModel):
    """Every refusal: what was wrong, the HTTP status, and for invalid input each problem."""

    error: str
    status: int
    problems: list[str] | None = None


class Candidate(BaseModel):
    citizen_id: str
    score: float
    reasons: list[str]
    full_name: str | None = None
    family_name: str | None = None
    date_of_birth: str | None = None
    city: str | None = None


class SearchResult(BaseModel):
    view: str
    mode: str
    candidates: list[Candidate]


class Health(BaseModel):
    status: str
    view: str | None


class Person(BaseModel):
    name: str | None = None
    date_of_birth: str | None = None
    citizen_id: str


class Case(BaseModel):
    kind: str | None = None
    case_type: str | None = None
    status: str | None = None
    state: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    case_reference: str | None = None
    source: str | None = None
    source_record_id: str | None = None


class TimelineEvent(BaseModel):
    date: str | None = None
    event: str | None = None
    source: str | None = None
    source_record_id: str | None = None


class StaleSource(BaseModel):
    """A source of this citizen whose newest extract is held back at ingest: its data here is as of `data_as_of`."""

    source: str
    data_as_of: str | None = None
    newer_extract_held_since: str | None = None


class CitizenProfile(BaseModel):
    """One citizen as the role may see them; the golden record and records carry only the role's visible fields."""

    view: str
    citizen_id: str
    person: Person
    running_now: list[Case]
    history: list[Case]
    golden_record: dict[str, Any]
    provenance: dict[str, str]
    records: list[dict[str, Any]]
    cases: list[Case]
    timeline: list[TimelineEvent]
    stale_sources: list[StaleSource] = []


class AccessEntry(BaseModel):
    time: str
    organisation: str | None = None
    role: str | None = None
    purpose: str | None = None
    case_reference: str | None = None
    action: str
    fields: list[str] = []
    status: int


class AccessReport(BaseModel):
    citizen_id: str
    looked_at: list[AccessEntry]


_ERROR_CODES = {
    400: "No purpose or case reference given.", 401: "No token, or an unknown one.",
    403: "The role may not do this (a field, source or action outside its access package).",
    404: "No such citizen in the current view (or none the role may see).",
    422: "Invalid input: a malformed or oversized parameter.", 500: "An internal error (logged; never a stack trace).",
    503: "No view has been published yet.",
}  # fmt: skip
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Error, "description": text} for code, text in _ERROR_CODES.items()}
BEARER = HTTPBearer(auto_error=False, description="A token from the access file: `Authorization: Bearer <token>`.")
# Every /api/ operation: its refusals, the bearer token (declared for clients; `principal` checks it), and in a 200 only
# the keys the handler set (a field the role may not see stays absent, not null).
API: dict[str, Any] = {"responses": ERRORS, "dependencies": [Security(BEARER)], "response_model_exclude_unset": True}
Purpose = Annotated[str | None, Query(min_length=3, max_length=LIMITS["purpose"], description="Why you look (required unless a case reference is given).", examples=["benefit application check"])]
CaseReference = Annotated[str | None, Query(max_length=LIMITS["case_reference"], description="The case this look serves.", examples=["CASE-42"])]
CitizenId = Annotated[str, PathParam(pattern=CITIZEN_ID.pattern, description="A citizen ID, CV-XXXX-XXXX-XXXX.", examples=["CV-ABCD-EFGH-2345"])]


class ViewStore:
    """The current served view: re-reads the pointer on each request and opens a new file when it changed."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()
        self._name: str | None = None
        self._con: duckdb.DuckDBPyConnection | None = None

    @contextmanager
    def cursor(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        """A cursor on the view current when the request starts (the whole request sees that one view)."""
        path = current_view(self.folder)
        if path is None:
            raise HTTPException(503, "no view has been published yet: run the pipeline first")
        with self._lock:
            if path.name != self._name:
                self._con = duckdb.connect(str(path), read_only=True)  # the previous connection closes when unused
                self._name = path.name
            con, name = self._con, self._name
        cur = con.cursor()
        try:
            yield cur, name
        finally:
            cur.close()


def create_app(
    *, serving_folder: Path, access_file: Path, audit_file: Path, decisions_file: Path,
    anchor_sinks: Sequence[str | AnchorSink] = (), trusted_proxies: Sequence[str] = (),
    authenticator: Authenticator | None = None, limits: RequestLimits | None = None,
) -> FastAPI:
    """The service for one served-view folder, one access file and one audit log (anchored in `anchor_sinks` too).

    `trusted_proxies`: addresses or networks whose X-Forwarded-For names the client; from anyone else
    the header is ignored and the socket's address is audited. `limits`: request size limits (default
    `RequestLimits.from_environment()`); the body limit is enforced here, the header limits by the server.
    """
    access = load_access(access_file)
    auth = authenticator or TokenAuthenticator(access)
    limits = limits or RequestLimits.from_environment()
    # Anchored by `record` below, after each entry and, when that failed, again before the next one: an anchor
    # that cannot be written then fails that next response before its entry is written, so the entry says 500
    # like the wire, and no entry is rewritten to a status other than the one sent.
    audit = AuditLog(audit_file, sinks=list(anchor_sinks), anchor_every=0)
    views = ViewStore(serving_folder)
    trusted = frozenset(trusted_proxies)
    csrf_key = secrets.token_bytes(32)  # forms this process served carry a token bound to the session

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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

    app = FastAPI(
        title="Citizen View caseworker service", version="0.1.0", docs_url="/api/docs", redoc_url=None, lifespan=lifespan
    )
    app.state.audit = audit

    app.state.limits = limits

    def caller(request: HTTPConnection) -> Principal | None:
        """Who sent a request that no handler authenticated (a 404, 405 or 422 before the handler ran), if anyone."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        return auth.authenticate(token) if token and len(token) <= 256 else None

    def record(scope: dict, trail: Trail, status: int, anchor: bool) -> None:
        request = HTTPConnection(scope)  # a WebSocket upgrade too
        if trail.principal is None:
            trail.principal = caller(request)
        if anchor:
            audit.anchor()  # an unanchored head (the last anchor failed): raises while that lasts, so this becomes a 500
        _write_audit(audit, request, status, trusted, trail)
        try:
            audit.anchor()  # the entry as sent is durable; when its anchor fails the next request finds out
        except OSError:
            log.exception("anchoring the audit log failed; requests are answered 500 until an anchor succeeds")

    app.add_middleware(AuditEveryResponse, record=record, max_body_bytes=limits.max_body_bytes)

    @app.exception_handler(StarletteHTTPException)  # the router's 404/405 too, so every refusal has the Error shape
    async def http_error(request: Request, exc: StarletteHTTPException):
        if _wants_html(request) and exc.status_code in (401, 403, 400, 404, 422, 503):
            return TEMPLATES.TemplateResponse(
                request, "error.html", {"status": exc.status_code, "message": exc.detail}, status_code=exc.status_code
            )
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "problems": problems, "status": 422}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):  # never a stack trace to the client
        return JSONResponse({"error": "internal error; it has been logged", "status": 500}, status_code=500)

    app.add_exception_handler(finder.QueryError, lambda r, e: JSONResponse({"error": str(e), "status": 422}, status_code=422))

    def session_token(request: Request) -> str | None:
        """The token of a signed-in browser (cookie), or None for an API client (bearer header)."""
        header = request.headers.get("authorization", "")
        return None if header.lower().startswith("bearer ") else request.cookies.get(COOKIE) or None

    def csrf_for(token: str) -> str:
        return hmac.new(csrf_key, token.encode("utf-8"), hashlib.sha256).hexdigest()

    def same_origin(request: Request) -> None:
        """A state-changing request from a page of another site is refused (Origin check)."""
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, "cross-origin form posts are refused")

    def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        if not token:
            raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>'")
        claim = request.headers.get(CLAIM_HEADER) or request.cookies.get(CLAIM_COOKIE) or None
        if len(token) > 256 or (who := auth.authenticate(token, claim[:512] if claim else None)) is None:
            raise HTTPException(401, "unknown or invalid token")
        request.state.trail.principal = who
        return who

    def purpose_of(request: Request) -> tuple[str, str | None]:
        q = request.query_params
        for key, limit in LIMITS.items():
            if len(q.get(key, "")) > limit:
                raise FieldError(key, f"{key} is longer than {limit} characters")
        purpose, case_ref = q.get("purpose", "").strip(), q.get("case_reference", "").strip() or None
        if len(purpose) < 3 and not case_ref:
            raise FieldError("purpose", "every request needs a purpose (purpose=...) or a case reference (case_reference=...)", status=400)
        return purpose or f"case {case_ref}", case_ref

    def run_search(request: Request, who: Principal) -> dict[str, Any]:
        q = request.query_params
        request.state.trail.action = "search"
        with views.cursor() as (cur, view):
            country = cur.execute("SELECT country FROM view_info").fetchall()[0][0]
            if q.get("national_id"):
                if not who.role.sees("national_id"):
                    raise FieldError("national_id", f"role {who.role_name!r} may not search by national ID", status=403)
                mode, found = "national_id", finder.search_national_id(cur, q["national_id"], country=country, sources=who.role.sources)
            elif q.get("name") and q.get("date_of_birth"):
                if not who.role.sees("date_of_birth"):
                    raise FieldError("date_of_birth", f"role {who.role_name!r} may not search by date of birth", status=403)
                mode, found = "name_date_of_birth", finder.search_name_dob(cur, q["name"], q["date_of_birth"], sources=who.role.sources)
            elif q.get("name") and q.get("house_number") and (q.get("postcode") or q.get("street")):
                mode, found = "name_address", finder.search_name_address(
                    cur, q["name"], postcode=q.get("postcode"), house_number=q.get("house_number"),
                    street=q.get("street"), country=country, sources=who.role.sources,
                )  # fmt: skip
            else:
                raise FieldError(
                    "name", "search by national_id, by name + date_of_birth, or by name + house_number + postcode/street"
                )
            summary = profiles.summaries(cur, [c.citizen_id for c in found], who.role)
        request.state.trail.citizen_ids = [c.citizen_id for c in found]
        request.state.trail.fields = sorted({k for s in summary.values() for k in s})
        return {
            "view": view, "mode": mode,
            "candidates": [{"citizen_id": c.citizen_id, "score": c.score, "reasons": c.reasons, **summary.get(c.citizen_id, {})} for c in found],
        }  # fmt: skip

    def run_profile(request: Request, who: Principal, citizen_id: str) -> tuple[profiles.Profile, str]:
        request.state.trail.action = "view_profile"
        if not CITIZEN_ID.match(citizen_id):
            raise HTTPException(422, "citizen_id must look like CV-XXXX-XXXX-XXXX")
        with views.cursor() as (cur, view):
            found = profiles.load_profile(cur, citizen_id, who.role)
        if found is None:
            raise HTTPException(404, f"no citizen {citizen_id} in the current view")
        request.state.trail.citizen_ids = [citizen_id]
        request.state.trail.fields = found.fields_returned
        return found, view

    def run_access_report(request: Request, who: Principal, citizen_id: str) -> list[dict[str, Any]]:
        """Who looked at this citizen's data: for a role acting for citizens (a citizen portal), from the audit log."""
        request.state.trail.action = "access_report"
        if not who.role.citizen_access:
            raise HTTPException(403, f"role {who.role_name!r} may not read citizens' access reports")
        if not CITIZEN_ID.match(citizen_id):
            raise HTTPException(422, "citizen_id must look like CV-XXXX-XXXX-XXXX")
        if who.citizen is None:
            request.state.trail.details = {"claim": "missing or invalid"}
            raise HTTPException(403, f"no valid citizen claim: send the signed-in citizen's signed claim in {CLAIM_HEADER}")
        with views.cursor() as (cur, _view):
            own = _citizens_holding(cur, who.citizen)
        if citizen_id not in own:  # the same answer whether or not the ID exists: the portal cannot probe
            request.state.trail.details = {"claim": "another citizen"}
            raise HTTPException(403, "a citizen portal may read only the access log of the citizen it signed in")
        request.state.trail.on_behalf_of = citizen_id
        entries = citizen_access_report(audit.path, citizen_id)
        request.state.trail.citizen_ids = [citizen_id]
        request.state.trail.fields = ["access_log"]
        return entries

    # --- API --------------------------------------------------------------------------------------

    @app.get("/health", tags=["service"], response_model=Health, summary="Whether a view is published")
    def health(request: Request) -> dict[str, Any]:
        request.state.trail.action = "health"
        path = current_view(serving_folder)
        return {"status": "ok" if path else "no view published", "view": path.name if path else None}

    @app.get(
        "/api/search", tags=["caseworkers"], response_model=SearchResult, **API,
        summary="Find citizens by national ID, by name + date of birth, or by name + address",
    )  # fmt: skip
    def api_search(
        request: Request,
        purpose: Purpose = None, case_reference: CaseReference = None,
        national_id: Annotated[str | None, Query(max_length=LIMITS["national_id"], description="A national ID (separators ignored).")] = None,
        name: Annotated[str | None, Query(max_length=LIMITS["name"], description="A name in either order ('Given Family' or 'FAMILY, Given').", examples=["Jan de Vries"])] = None,
        date_of_birth: Annotated[str | None, Query(max_length=LIMITS["date_of_birth"], description="yyyy-mm-dd, dd-mm-yyyy, dd/mm/yyyy, dd.mm.yyyy or yyyymmdd.", examples=["1980-01-31"])] = None,
        postcode: Annotated[str | None, Query(max_length=LIMITS["postcode"], description="With name + house_number (or street).")] = None,
        house_number: Annotated[str | None, Query(max_length=LIMITS["house_number"], description="With name + postcode or street.")] = None,
        street: Annotated[str | None, Query(max_length=LIMITS["street"], description="With name + house_number (or postcode).")] = None,
    ) -> dict[str, Any]:
        who = principal(request)
        purpose_of(request)
        return run_search(request, who)

    @app.get(
        "/api/citizens/{citizen_id}", tags=["caseworkers"], response_model=CitizenProfile, **API,
        summary="One citizen as the caller's role may see them: who, what is running, history, linked records",
    )  # fmt: skip
    def api_profile(
        request: Request, citizen_id: CitizenId, purpose: Purpose = None, case_reference: CaseReference = None,
    ) -> dict[str, Any]:
        who = principal(request)
        purpose_of(request)
        found, view = run_profile(request, who, citizen_id)
        return {"view": view, **found.as_dict()}

    @app.get(
        "/api/citizens/{citizen_id}/access-log", tags=["citizens"], response_model=AccessReport, **API,
        summary="Who looked at this citizen's data: organisation, when, why and which data (for a citizen portal)",
    )  # fmt: skip
    def api_access_log(
        request: Request, citizen_id: CitizenId, purpose: Purpose = None, case_reference: CaseReference = None,
        x_citizen_claim: Annotated[str | None, Header(max_length=512, description=(
            "The signed-in citizen, signed by the portal: `<national ID>.<expiry, Unix seconds>.<hex HMAC-SHA256 of "
            "'<national ID>.<expiry>' under the portal secret>`. Only that citizen's log is served; any other ID is a 403."
        ))] = None,
    ) -> dict[str, Any]:
        who = principal(request)
        purpose_of(request)
        return {"citizen_id": citizen_id, "looked_at": run_access_report(request, who, citizen_id)}

    # --- pages ------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> Response:
        request.state.trail.action = "login_page"
        return TEMPLATES.TemplateResponse(request, "login.html", {})

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: str = Form(..., max_length=256), claim: str = Form("", max_length=512)) -> Response:
        request.state.trail.action = "login"
        same_origin(request)
        who = auth.authenticate(token, claim or None)
        if who is None:
            return TEMPLATES.TemplateResponse(request, "login.html", {"error": "Unknown token."}, status_code=401)
        request.state.trail.principal = who
        response = RedirectResponse("/search", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        if claim:  # a citizen portal's sign-in: the claim goes with every page it opens, and expires with it
            response.set_cookie(CLAIM_COOKIE, claim, httponly=True, samesite="strict")
        return response

    @app.get("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        request.state.trail.action = "logout"
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        response.delete_cookie(CLAIM_COOKIE)
        return response

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request) -> Response:
        who = principal(request)
        q = request.query_params
        context: dict[str, Any] = {"who": who, "q": q, "result": None, "errors": {}}
        if not any(q.get(k) for k in ("national_id", "name")):
            request.state.trail.action = "search_page"
            return TEMPLATES.TemplateResponse(request, "search.html", context)
        request.state.trail.action = "search"
        try:
            purpose_of(request)
            context["result"] = run_search(request, who)
        except FieldError as exc:
            context["errors"] = {exc.field: exc.detail}
            return TEMPLATES.TemplateResponse(request, "search.html", context, status_code=exc.status_code)
        except finder.QueryError as exc:
            context["errors"] = {exc.field or "name": str(exc)}
            return TEMPLATES.TemplateResponse(request, "search.html", context, status_code=422)
        return TEMPLATES.TemplateResponse(request, "search.html", context)

    @app.get("/citizens/{citizen_id}", response_class=HTMLResponse, include_in_schema=False)
    def profile_page(request: Request, citizen_id: str) -> Response:
        who = principal(request)
        purpose, case_ref = purpose_of(request)
        found, view = run_profile(request, who, citizen_id)
        return TEMPLATES.TemplateResponse(
            request, "profile.html", {"who": who, "p": found, "view": view, "purpose": purpose, "case_ref": case_ref}
        )

    @app.get("/citizens/{citizen_id}/access-log", response_class=HTMLResponse, include_in_schema=False)
    def access_log_page(request: Request, citizen_id: str) -> Response:
        who = principal(request)
        purpose, _ = purpose_of(request)
        entries = run_access_report(request, who, citizen_id)
        return TEMPLATES.TemplateResponse(
            request, "access_log.html", {"who": who, "citizen_id": citizen_id, "entries": entries, "purpose": purpose}
        )

    # --- clerical review (roles with reviewer: true) -------------------------------------------------

    def reviewer(request: Request) -> Principal:
        who = principal(request)
        request.state.trail.action = "review"
        if not who.role.reviewer:
            raise HTTPException(403, f"role {who.role_name!r} may not review links")
        return who

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_page(request: Request) -> Response:
        who = reviewer(request)
        purpose, _ = purpose_of(request)
        q = request.query_params
        kind = q.get("kind") or None
        if kind is not None and kind not in set(ReviewKind):
            raise HTTPException(422, f"kind must be one of: {', '.join(ReviewKind)}")
        source = q.get("source") or None
        if source is not None and source not in who.role.sources:
            raise HTTPException(422, f"source must be one of the sources your role may see: {', '.join(who.role.sources)}")
        page_text = q.get("page", "1").strip()
        if not (page_text.isascii() and page_text.isdigit()) or not 1 <= int(page_text) <= MAX_REVIEW_PAGE:
            raise HTTPException(422, f"page must be a whole number from 1 to {MAX_REVIEW_PAGE}")
        page_no = int(page_text)
        decided = {pair_id(a, b) for a, b in load_overrides(decisions_file).select("record_key_l", "record_key_r").rows()}
        columns = [c for c in REVIEW_COLUMNS if who.role.sees(c)]  # the same fields as the role's profiles
        with views.cursor() as (cur, view):
            found = open_items(
                cur, decided, kind=kind, source=source, sources=who.role.sources, offset=(page_no - 1) * REVIEW_PAGE,
                limit=REVIEW_PAGE,
            )  # fmt: skip
            keys = sorted({k for i in found.items for k in (i["record_key_l"], i["record_key_r"])})
            records: dict[str, dict[str, Any]] = {}
            shown_citizens = {i["citizen_id"] for i in found.items if i.get("citizen_id")}
            if keys:
                cur_rec = cur.execute(
                    f"SELECT source || ':' || source_record_id AS k, citizen_id{''.join(f', {c}' for c in columns)} FROM records "
                    "WHERE list_contains(?, source || ':' || source_record_id)",
                    [keys],
                )
                rec_names = [d[0] for d in cur_rec.description]
                for row in cur_rec.fetchall():
                    records[row[0]] = dict(zip(rec_names[2:], row[2:]))
                    shown_citizens.add(row[1])
        for item in found.items:  # per-field weights only for comparisons of fields the role sees
            item["evidence"] = {k: v for k, v in item["evidence"].items() if _compares_visible(k, who)}
        request.state.trail.citizen_ids = sorted(shown_citizens)
        request.state.trail.fields = ["review_queue", *columns]
        request.state.trail.details = {"record_keys": ",".join(keys)[:4000]}
        cookie = session_token(request)
        pages = max(1, -(-found.total // REVIEW_PAGE))
        return TEMPLATES.TemplateResponse(
            request, "review.html",
            {"who": who, "page": found, "items": found.items, "records": records, "purpose": purpose, "view": view,
             "csrf": csrf_for(cookie) if cookie else "", "kind": kind or "", "source": source or "", "page_no": page_no,
             "pages": pages, "kinds": list(ReviewKind), "recorded": q.get("recorded"), "columns": columns},
        )  # fmt: skip

    @app.post("/review/decide", include_in_schema=False)
    def review_decide(
        request: Request, left: str = Form(..., max_length=200), right: str = Form(..., max_length=200),
        decision: str = Form(..., max_length=20), reason: str = Form(..., max_length=500),
        purpose: str = Form(..., min_length=3, max_length=200), csrf: str = Form("", max_length=128),
        kind: str = Form("", max_length=40), source: str = Form("", max_length=60), page: str = Form("1", max_length=6),
    ) -> Response:
        who = reviewer(request)
        request.state.trail.action = "review_decision"
        request.state.trail.details = {"pair": pair_id(left, right), "decision": decision, "reason": reason[:200], "purpose": purpose}
        same_origin(request)
        cookie = session_token(request)
        if cookie is not None and not hmac.compare_digest(csrf, csrf_for(cookie)):
            raise HTTPException(403, "the form has no valid CSRF token: reload the review page and decide again")
        with views.cursor() as (cur, _view):
            if not pair_in_scope(cur, left, right, who.role.sources):
                raise HTTPException(403, f"role {who.role_name!r} may not decide on records of sources it may not see")
            unknown = [key for key in (left, right) if not _record_exists(cur, key)]
        if unknown:
            raise HTTPException(422, f"no record {', '.join(unknown)} in the current view (keys are source:source_record_id)")
        try:
            record_decision(decisions_file, left=left, right=right, decision=decision, reviewer=who.user, reason=reason, role=who.role_name)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        back = urlencode({k: v for k, v in {"purpose": purpose, "kind": kind, "source": source, "page": page,
                                            "recorded": f"{pair_id(left, right)}: {decision}"}.items() if v})  # fmt: skip
        return RedirectResponse(f"/review?{back}", status_code=303)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _client_contract(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


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


def _citizens_holding(cur: duckdb.DuckDBPyConnection, national_id: str) -> set[str]:
    """The citizens whose golden record carries this national ID (separators ignored, as the pipeline stores it)."""
    compact = re.sub(r"[\s.\-:]", "", national_id)
    return {r[0] for r in cur.execute("SELECT citizen_id FROM citizen WHERE national_id = ?", [compact]).fetchall()}


def _compares_visible(comparison: str, who: Principal) -> bool:
    """Whether a comparison's weight may be shown: it is named after a field the role sees (or that field's part)."""
    name = comparison.removeprefix("tf_")
    if name == "address":  # one comparison over the address parts: shown to a role that sees the address
        return all(who.role.sees(f) for f in ("street", "house_number", "postcode"))
    return any(name == f or name.startswith(f"{f}_") or f.startswith(f"{name}_") for f in who.role.fields)


def _record_exists(cur: duckdb.DuckDBPyConnection, key: str) -> bool:
    source, sep, record_id = key.partition(":")
    if not sep:
        return False
    return bool(cur.execute("SELECT count(*) FROM records WHERE source = ? AND source_record_id = ?", [source, record_id]).fetchall()[0][0])


def _write_audit(audit: AuditLog, request: HTTPConnection, status: int, trusted: frozenset[str], trail: Trail) -> None:
    who = trail.principal
    query = {k: v for k, v in request.query_params.items() if k not in ("purpose", "case_reference")}
    action = trail.action if status < 400 else f"refused:{trail.action}"
    audit.append(
        AuditEvent(
            user=who.user if who else None, role=who.role_name if who else None,
            organisation=who.organisation if who else None, action=action,
            purpose=request.query_params.get("purpose"), case_reference=request.query_params.get("case_reference"),
            query={"path": request.url.path, **{k: v[:200] for k, v in query.items()}, **trail.details},
            citizen_ids=trail.citizen_ids if status < 400 else [], fields=trail.fields if status < 400 else [],
            status=status, authorisation_rule=f"role:{who.role_name}" if who else None, on_behalf_of=trail.on_behalf_of,
            client=client_address(request.client.host if request.client else None, request.headers.get("x-forwarded-for"), trusted),
        )  # fmt: skip
    )
