"""What a route needs, as FastAPI dependencies: the service's parts, the caller, the stated purpose, the audit trail
and a cursor on the served view. Routers declare the caller and purpose once, so no route can forget them."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import duckdb
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import AfterValidator

from citizen_view.audit import AuditLog
from citizen_view.serving import document_file
from citizen_view.serving.access import Authenticator, Principal
from citizen_view.serving.addresses import client_address
from citizen_view.serving.document_file import DocumentFile
from citizen_view.serving.documents import ViewInfo, preload
from citizen_view.serving.guard import Trail
from citizen_view.serving.id_index import IdIndex
from citizen_view.serving.snapshot import POINTER, current_view
from citizen_view.serving.throttle import SignInThrottle

CITIZEN_ID = re.compile(r"^CV-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$")
LIMITS = {
    "purpose": 200,
    "case_reference": 100,
    "name": 200,
    "national_id": 20,
    "date_of_birth": 20,
    "postcode": 12,
    "house_number": 12,
    "street": 120,
}
COOKIE = "cv_token"
PURPOSE_COOKIE = "cv_purpose"  # the purpose a browser session stated last (signed for the session, see page_purpose)
CLAIM_HEADER, CLAIM_COOKIE = "x-citizen-claim", "cv_citizen_claim"  # a citizen portal's signed claim (see access.py)
SEARCH_TERMS = ("national_id", "name")  # a search page without either is the blank form: it shows no citizen data
NO_PURPOSE = "every request needs a purpose (purpose=...) or a case reference (case_reference=...)"
API_NO_PURPOSE = (
    "every API request needs a purpose (purpose=...): 3 to 200 characters, the first and last ones visible, no "
    "control characters"
)
# What a stated purpose and case reference may hold: no control character (NUL, escapes; C0 and C1), and a purpose
# starts and ends with a character that shows (not a blank of any script, nor a zero-width or other invisible one),
# so three non-breaking or zero-width spaces state nothing. The ranges are spelled out so that Python's re (the
# service's validators, schemathesis) and an ECMA reader of the OpenAPI document read the patterns alike; the
# service matches them with re.search, as schemathesis does.
# Never anywhere: controls (C0, C1), line and paragraph separators, and the bidirectional embeddings, overrides and
# isolates, which can make a logged purpose read otherwise than it was typed.
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069"
# Blanks and characters that show nothing on their own: spaces of every script, soft hyphen, Hangul fillers, Khmer
# and Mongolian invisible vowels and selectors, zero-width and direction marks, braille blank, variation selectors, the
# BOM and interlinear annotation marks (the Basic Multilingual Plane's; ECMA reads these ranges alike). A purpose may
# end with a combining mark (decomposed text: "cafe" + U+0301) but not start with one.
_INVISIBLE = _CONTROL + (
    r" \xa0\xad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f"
    r"\u205f-\u206f\u2800\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
)
PURPOSE_PATTERN = rf"^[^{_INVISIBLE}\u0300-\u036f][^{_CONTROL}]*[^{_INVISIBLE}]$"
CASE_REFERENCE_PATTERN = rf"^[^{_CONTROL}]*[^{_INVISIBLE}\u0300-\u036f][^{_CONTROL}]*$"


def _purpose_form(value: str) -> str:
    if not re.search(PURPOSE_PATTERN, value):
        raise ValueError(API_NO_PURPOSE)
    return value.strip()


def _case_reference_form(value: str | None) -> str | None:
    if value is not None and not re.search(CASE_REFERENCE_PATTERN, value):
        raise ValueError("a case reference holds no control characters and shows at least one character")
    return value


log = logging.getLogger(__name__)


class FieldError(HTTPException):
    """A refusal because of one input field: the usual error (JSON, or the error page) everywhere, and on the search
    page the form again with the message beside that field."""

    def __init__(self, field_name: str, message: str, *, status: int = 422):
        super().__init__(status, message)
        self.field = field_name


class ServedView:
    """One opened view file: its read-only connection, its name, its small tables, and one cursor per thread that
    uses it (made at that thread's first look and kept: a look then costs no cursor to open, plan or close)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, name: str, info: ViewInfo, path: Path | None = None):
        self.con, self.view, self.info, self.path = con, name, info, path
        self._local = threading.local()  # dropped with this object when a new view is served: its cursors close
        self.switched = threading.Event()  # set once the store's on-switch callbacks have run for this view

    @property
    def cur(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the view (a DuckDB cursor is not shared by threads)."""
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self.con.cursor()
        return cur


def read_ids(served: ServedView) -> None:
    """Hold the view's national IDs in memory (~2 s of CPU at a million persons): until they are, and when the read
    fails, an ID search probes the view's index instead, which gives the same answers."""
    served.info.ids = IdIndex.read(served.con)


def read_documents(served: ServedView) -> None:
    """Map the view's documents file (document_file.py) and read it in once; requests meanwhile, and every
    request when the view has no such file or one that does not match it, read the documents from the view, with the
    same answers. Those views' documents are loaded into DuckDB's buffers instead (documents.preload)."""
    path = document_file.path_for(served.path) if served.path is not None else None
    if path is not None and path.is_file():
        try:
            with served.con.cursor() as cur:
                count = cur.execute(document_file.COUNT_SQL).fetchall()[0][0]
            docs = DocumentFile(path, view=served.view, documents=count)
            docs.read_in()
        except Exception as exc:  # any failure: the documents are read from the view, as without the file
            log.warning(
                "view %s: its documents file is not used (%s); documents are read from the view", served.view, exc
            )
        else:
            served.info.docs = docs
            return
    preload(served.con)


class ViewStore:
    """The current served view: re-reads the pointer on each request and opens a new file when it changed.

    `on_switch` holds what to do with each view this process opens, beyond its small tables: callables taking the
    new `ServedView`, run one after the other in a thread of their own, outside the store's lock, so requests go on
    being answered from the new view meanwhile (an error is logged, and the next callable still runs). The first one
    reads the national IDs (`read_ids`), the second the citizens' documents (`read_documents`); `ServedView.switched`
    is set when all have run."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()
        self._served: ServedView | None = None
        self._pointer: tuple[tuple[int, int, int], Path | None] = ((0, 0, 0), None)
        self.on_switch: list[Callable[[ServedView], None]] = [read_ids, read_documents]

    def current(self) -> Path | None:
        """The view file the pointer names: read again only when the pointer file changed (publishing replaces it), so
        a request costs one stat, not an open and a read."""
        try:
            st = os.stat(self.folder / POINTER)
        except FileNotFoundError:
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._pointer[0]:
            self._pointer = (stamp, current_view(self.folder))
        return self._pointer[1]

    def served(self) -> ServedView:
        """The view current now (the whole request keeps that one); 503 when none is published or it is unreadable."""
        path = self.current()
        if path is None:
            raise HTTPException(503, "no view has been published yet: run the pipeline first")
        with self._lock:
            if self._served is None or path.name != self._served.view:
                self._served = _open_view(path)  # the previous connection closes when unused
                threading.Thread(target=self._switched, args=(self._served,), name="view-switch", daemon=True).start()
            return self._served

    def _switched(self, served: ServedView) -> None:
        try:
            for callback in list(self.on_switch):
                try:
                    callback(served)
                except Exception:  # the view is still served: only what the callback would have prepared is missing
                    log.exception("preparing view %s: %s failed", served.view, getattr(callback, "__name__", callback))
        finally:
            served.switched.set()

    @contextmanager
    def cursor(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
        """A cursor on the view current when the request starts (the whole request sees that one view)."""
        with self.view() as (cur, name, _info):
            yield cur, name

    @contextmanager
    def view(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, str, ViewInfo]]:
        """`cursor`, with what every look needs of the view's small tables (read once per view file)."""
        served = self.served()
        cur = served.con.cursor()
        try:
            yield cur, served.view, served.info
        finally:
            cur.close()


def _open_view(path: Path) -> ServedView:
    """The view file at `path`, open read-only with its small tables read; 503 when it cannot be served."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return ServedView(con, path.name, ViewInfo.read(con), path)
    except ValueError as exc:
        con.close()
        raise HTTPException(503, str(exc)) from None
    except BaseException:
        con.close()
        raise


@dataclass(frozen=True)
class ServiceParts:
    """What one service instance is made of; `create_app` puts it on `app.state.parts`."""

    auth: Authenticator
    audit: AuditLog
    views: ViewStore
    serving_folder: Path
    decisions_file: Path
    csrf_key: bytes
    throttle: SignInThrottle
    trusted_proxies: frozenset[str] = frozenset()

    def client(self, request: Request) -> str | None:
        """The caller's address as the audit log names it (a trusted proxy's X-Forwarded-For counts)."""
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.get("x-forwarded-for"), self.trusted_proxies)

    def refuse_when_throttled(self, request: Request, trail: Trail) -> None:
        """429 with Retry-After while the caller's address has sent too many unknown tokens (see throttle.py)."""
        if (wait := self.throttle.retry_after(self.client(request))) is not None:
            trail.refusal = "throttled"
            raise HTTPException(
                429,
                f"too many unknown tokens from your address: try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def csrf_for(self, token: str) -> str:
        """The CSRF token of the forms served to the session of `token`."""
        return hmac.new(self.csrf_key, token.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class StatedPurpose:
    """Why the caller looks: a purpose (or "case <reference>" when only a case reference was given)."""

    purpose: str
    case_reference: str | None


@dataclass(frozen=True)
class ViewCursor:
    """A cursor on the served view and that view's name."""

    cur: duckdb.DuckDBPyConnection
    view: str
    info: ViewInfo | None = None  # the view's small tables in memory (None: read them from `cur` when needed)


async def service_parts(request: Request) -> ServiceParts:
    return request.app.state.parts


async def audit_trail(request: Request) -> Trail:
    """What this request did, written to the audit log with the status sent (see guard.py)."""
    return request.state.trail


Parts = Annotated[ServiceParts, Depends(service_parts)]
AuditTrail = Annotated[Trail, Depends(audit_trail)]


async def principal(request: Request) -> Principal:
    """The authenticated caller (bearer header or the session cookie), named in the audit trail; 401 otherwise.
    (The service's parts and the trail are read from the request, not declared as dependencies: FastAPI solves a
    dependency's own dependencies again each time it is named, and every route names this one twice.)"""
    parts: ServiceParts = request.app.state.parts
    trail: Trail = request.state.trail
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
    if not token:
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>'")
    parts.refuse_when_throttled(request, trail)
    claim = request.headers.get(CLAIM_HEADER) or request.cookies.get(CLAIM_COOKIE) or None
    if len(token) > 256 or (who := parts.auth.authenticate(token, claim[:512] if claim else None)) is None:
        parts.throttle.failed(parts.client(request))
        raise HTTPException(401, "unknown or invalid token")
    trail.principal = who
    return who


CurrentPrincipal = Annotated[Principal, Depends(principal)]


def reviewer(who: CurrentPrincipal, trail: AuditTrail) -> Principal:
    """The caller, when their role may decide clerical reviews; 403 otherwise."""
    trail.action = "review"
    if not who.role.reviewer:
        raise HTTPException(403, f"role {who.role_name!r} may not review links")
    return who


Reviewer = Annotated[Principal, Depends(reviewer)]


def stated_purpose(values: dict[str, str]) -> StatedPurpose:
    """The purpose in request parameters: 422 for an oversized parameter, 400 when none is stated."""
    for key, limit in LIMITS.items():
        if len(values.get(key, "")) > limit:
            raise FieldError(key, f"{key} is longer than {limit} characters")
    purpose, case_ref = values.get("purpose", "").strip(), values.get("case_reference", "").strip() or None
    if case_ref is not None and not re.search(CASE_REFERENCE_PATTERN, case_ref):
        raise FieldError("case_reference", NO_PURPOSE, status=400)
    if purpose and not re.search(PURPOSE_PATTERN, purpose):
        purpose = ""  # states nothing (blanks, invisible or control characters): a case reference must stand for it
    if not purpose and not case_ref:
        raise FieldError("purpose", NO_PURPOSE, status=400)
    return StatedPurpose(purpose or f"case {case_ref}", case_ref)


async def api_purpose(
    request: Request,
    purpose: Annotated[
        str,
        Query(
            min_length=3,
            max_length=LIMITS["purpose"],
            json_schema_extra={"pattern": PURPOSE_PATTERN},
            description="Why you look: 3 to 200 characters, the first and last ones visible, no control characters.",
            examples=["benefit application check"],
        ),
        AfterValidator(_purpose_form),
    ],
    case_reference: Annotated[
        str | None,
        Query(
            max_length=LIMITS["case_reference"],
            json_schema_extra={"pattern": CASE_REFERENCE_PATTERN},
            description="The case this look serves.",
            examples=["CASE-42"],
        ),
        AfterValidator(_case_reference_form),
    ] = None,
) -> StatedPurpose:
    """The purpose of an API call: a required query parameter whose form the OpenAPI document states (a request
    without one, or with one not of that form, is answered 400 by the app's validation handler)."""
    stated = StatedPurpose(purpose, (case_reference or "").strip() or None)
    # the audit entry records the purpose as stated (a final newline, which the pattern's `$` lets by, stripped)
    request.state.trail.purpose, request.state.trail.case_reference = stated.purpose, stated.case_reference
    return stated


def page_purpose(request: Request) -> StatedPurpose:
    """The purpose of a page that shows citizen data: from its query string (then remembered for the session), else
    the one this browser session stated last (see `remember_purpose`)."""
    values = dict(request.query_params)
    if values.get("purpose", "").strip() or values.get("case_reference", "").strip():
        stated = stated_purpose(values)
        request.state.purpose_to_remember = stated
    else:
        stated = stated_purpose({**values, **remembered_purpose(request)})
    # the audit entry records the purpose as stated (stripped, checked), not the raw parameter
    request.state.trail.purpose, request.state.trail.case_reference = stated.purpose, stated.case_reference
    request.state.purpose = stated
    return stated


def search_purpose(request: Request) -> StatedPurpose | None:
    """The purpose of a search page; None only for the blank form (no search term: no citizen data shown)."""
    if not any(request.query_params.get(k) for k in SEARCH_TERMS):
        request.state.purpose = _remembered(request)
        return None
    return page_purpose(request)


def remember_purpose(parts: ServiceParts, token: str, stated: StatedPurpose) -> str:
    """The purpose cookie's value: the purpose and case reference, signed for this session's token."""
    values = {"purpose": stated.purpose, "case_reference": stated.case_reference or ""}
    return urlencode({**values, "sig": _purpose_signature(parts, token, values)})


def remembered_purpose(request: Request) -> dict[str, str]:
    """The purpose and case reference this browser session stated last, when its cookie is signed for the session."""
    token, saved = request.cookies.get(COOKIE, ""), request.cookies.get(PURPOSE_COOKIE, "")
    if not token or not saved or request.headers.get("authorization") or len(saved) > 1024:
        return {}  # an API client (bearer header) states its purpose in every request
    values = dict(parse_qsl(saved, keep_blank_values=True))
    sig = values.pop("sig", "")
    if set(values) != {"purpose", "case_reference"}:
        return {}
    expected = _purpose_signature(request.app.state.parts, token, values)
    return values if hmac.compare_digest(sig, expected) else {}


def _remembered(request: Request) -> StatedPurpose | None:
    try:
        return stated_purpose(remembered_purpose(request))
    except HTTPException:
        return None


def _purpose_signature(parts: ServiceParts, token: str, values: dict[str, str]) -> str:
    message = "\x1f".join((token, values["purpose"], values["case_reference"]))
    return hmac.new(parts.csrf_key, message.encode("utf-8"), hashlib.sha256).hexdigest()


async def form_purpose(request: Request) -> StatedPurpose:
    """The purpose of a form post, from its fields (FastAPI has parsed the form by now; this reads the same one)."""
    form = await request.form()
    stated = stated_purpose({k: v for k, v in form.items() if isinstance(v, str)})
    # the audit entry records the purpose as stated, as a page's does (a reviewer's decision is searched for by it)
    request.state.trail.purpose, request.state.trail.case_reference = stated.purpose, stated.case_reference
    return stated


# The dependencies that state a purpose: every route outside the public ones depends on one (tests/test_routes.py).
PURPOSE_DEPENDENCIES = (api_purpose, page_purpose, search_purpose, form_purpose)


def audited_as(action: str) -> Any:
    """A route dependency naming the route's action in the audit trail, before its other dependencies can fail."""

    async def name_action(request: Request) -> None:
        request.state.trail.action = action

    return Depends(name_action)


def view_cursor(parts: Parts) -> Iterator[ViewCursor]:
    """A cursor on the view current when the request starts (503 when none is published), closed before the answer."""
    with parts.views.view() as (cur, view, info):
        yield ViewCursor(cur, view, info)


View = Annotated[ViewCursor, Depends(view_cursor, scope="function")]


class CurrentView:
    """The served view of one API call, taken when the handler first looks at it: the call's own refusals (its 400 for
    a missing purpose, its 422s) come first, even before any view is published. `cur` is the handler thread's own
    cursor on it: nothing to open or close per request."""

    def __init__(self, views: ViewStore):
        self._views = views
        self._served: ServedView | None = None

    def _get(self) -> ServedView:
        if self._served is None:
            self._served = self._views.served()  # 503 when none is published
        return self._served

    @property
    def cur(self) -> duckdb.DuckDBPyConnection:
        return self._get().cur

    @property
    def view(self) -> str:
        return self._get().view

    @property
    def info(self) -> ViewInfo:
        return self._get().info


async def api_view(request: Request) -> CurrentView:
    """The view an API call looks at (see `CurrentView`)."""
    return CurrentView(request.app.state.parts.views)


ApiView = Annotated[CurrentView, Depends(api_view)]


# Routes that show no citizen data: sign-in and out, health, readiness, metrics (its own token), the API's document.
PUBLIC_ROUTES = frozenset(
    {
        ("GET", "/"),
        ("POST", "/login"),
        ("GET", "/logout"),
        ("GET", "/start"),  # redirects a signed-in user to their role's start page
        ("GET", "/purpose"),  # the form to state or change the session's purpose
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/api/docs"),
        ("GET", "/docs/oauth2-redirect"),
    }
)


def unguarded_routes(app: FastAPI) -> list[str]:
    """Every route outside PUBLIC_ROUTES that does not depend on `principal` and on a purpose, as "METHOD /path"."""
    found = []
    for route in iter_route_contexts(app.routes):  # the routes of included routers as served, with their dependencies
        methods = sorted(route.methods or {"GET"})
        path = route.path or repr(route.original_route)
        if all((m, path) in PUBLIC_ROUTES or m == "HEAD" for m in methods):
            continue
        dependant = route.dependant if isinstance(route.original_route, APIRoute) else None
        calls = set(_dependency_calls(dependant)) if dependant is not None else set()
        if principal not in calls or not calls & set(PURPOSE_DEPENDENCIES):
            found += [f"{m} {path}" for m in methods if m != "HEAD"]
    return found


def _dependency_calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependency_calls(sub)
