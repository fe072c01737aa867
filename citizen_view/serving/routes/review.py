"""Clerical review of uncertain links, for roles with `reviewer: true`: the queue page and the decision form."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citizen_view.linkage.review import ReviewKind, pair_id, pair_in_scope, record_decision
from citizen_view.serving.deps import (
    COOKIE,
    AuditTrail,
    Parts,
    Reviewer,
    StatedPurpose,
    View,
    form_purpose,
    page_purpose,
    principal,
    reviewer,
)
from citizen_view.serving.documents import citizens_of
from citizen_view.serving.review_items import (
    PAGE_SIZE,
    fields_hidden_from,
    record_exists,
    review_needs,
    review_page,
)
from citizen_view.serving.routes.service import same_origin
from citizen_view.serving.templating import render

if TYPE_CHECKING:
    import duckdb

    from citizen_view.serving.access import Principal
    from citizen_view.serving.documents import ViewInfo

MAX_REVIEW_PAGE = 100_000  # a million queued items; a larger page number is a mistake (and an OFFSET DuckDB refuses)

queue = APIRouter(dependencies=[Depends(principal), Depends(reviewer), Depends(page_purpose)])
decisions = APIRouter(dependencies=[Depends(principal), Depends(reviewer), Depends(form_purpose)])


@queue.get("/review", response_class=HTMLResponse, include_in_schema=False)
def review_queue(
    request: Request,
    who: Reviewer,
    trail: AuditTrail,
    parts: Parts,
    view: View,
    stated: Annotated[StatedPurpose, Depends(page_purpose)],
) -> Response:
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
    may_review(view.cur, view.info, who)
    found = review_page(view.cur, parts.decisions_file, who.role, kind=kind, source=source, page_no=page_no)
    trail.citizen_ids = found.citizen_ids
    trail.fields = ["review_queue", *found.columns]
    trail.details = {"record_keys": ",".join(found.record_keys)[:4000]}
    cookie = session_token(request)
    return render(
        request,
        "review.html",
        {
            "page": found.queue,
            "items": found.items,
            "records": found.records,
            "purpose": stated.purpose,
            "csrf": parts.csrf_for(cookie) if cookie else "",
            "kind": kind or "",
            "source": source or "",
            "page_no": page_no,
            "pages": max(1, -(-found.total // PAGE_SIZE)),
            "kinds": list(ReviewKind),
            "recorded": q.get("recorded"),
            "columns": found.columns,
        },
    )


@decisions.post("/review/decide", include_in_schema=False)
def review_decide(
    request: Request,
    who: Reviewer,
    trail: AuditTrail,
    parts: Parts,
    left: Annotated[str, Form(max_length=200)],
    right: Annotated[str, Form(max_length=200)],
    decision: Annotated[str, Form(max_length=20)],
    reason: Annotated[str, Form(max_length=500)],
    purpose: Annotated[str, Form(min_length=3, max_length=200)],
    csrf: Annotated[str, Form(max_length=128)] = "",
    kind: Annotated[str, Form(max_length=40)] = "",
    source: Annotated[str, Form(max_length=60)] = "",
    page: Annotated[str, Form(max_length=6)] = "1",
) -> Response:
    trail.action = "review_decision"
    trail.details = {"pair": pair_id(left, right), "decision": decision, "reason": reason[:200], "purpose": purpose}
    same_origin(request)
    with parts.views.view() as (cur, _view, info):
        may_review(cur, info, who)  # before the token: a role that may not review is told so, whatever its form
        cookie = session_token(request)
        if cookie is not None and not hmac.compare_digest(csrf, parts.csrf_for(cookie)):
            raise HTTPException(403, "the form has no valid CSRF token: reload the review page and decide again")
        if not pair_in_scope(cur, left, right, who.role.sources):
            raise HTTPException(
                403,
                f"role {who.role_name!r} may decide only on the items its review page lists (its sources' records, "
                "in citizens whose every record it may see)",
            )
        unknown = [key for key in (left, right) if not record_exists(cur, key)]
        # the citizens the decision is about: it is in each one's access log ("who looked at me", `audit export`)
        trail.citizen_ids = citizens_of(cur, [left, right])
    if unknown:
        raise HTTPException(
            422, f"no record {', '.join(unknown)} in the current view (keys are source:source_record_id)"
        )
    try:
        record_decision(
            parts.decisions_file,
            left=left,
            right=right,
            decision=decision,
            reviewer=who.user,
            reason=reason,
            role=who.role_name,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    back = urlencode(
        {
            k: v
            for k, v in {
                "purpose": purpose,
                "kind": kind,
                "source": source,
                "page": page,
                "recorded": f"{pair_id(left, right)}: {decision}",
            }.items()
            if v
        }
    )
    return RedirectResponse(f"/review?{back}", status_code=303)


def session_token(request: Request) -> str | None:
    """The token of a signed-in browser (cookie), or None for an API client (bearer header)."""
    header = request.headers.get("authorization", "")
    return None if header.lower().startswith("bearer ") else request.cookies.get(COOKIE) or None


def may_review(cur: duckdb.DuckDBPyConnection, info: ViewInfo | None, who: Principal) -> None:
    """403 for a reviewer whose role may not see a field the review queue's evidence compares (fields_hidden_from);
    what it compares is read once per view (kept in its `info`; two requests at once may both read it, alike)."""
    needs = info.review_needs if info is not None else None
    if needs is None:
        needs = review_needs(cur)
        if info is not None:
            info.review_needs = needs
    hidden = fields_hidden_from(needs, who.role)
    if hidden:
        raise HTTPException(
            403,
            f"role {who.role_name!r} may not review links: they also compare {', '.join(hidden)}, which the role may "
            "not see (a reviewer weighs all of a link's evidence)",
        )
