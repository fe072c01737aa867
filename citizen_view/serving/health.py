"""Whether the service can answer: a served view it can read, and an audit log it can write (`/ready`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb
from fastapi import HTTPException

from citizen_view.audit import AuditLog
from citizen_view.serving.deps import ViewStore


@dataclass(frozen=True)
class Readiness:
    """What `/ready` found: the view answered from, its age, and every reason the service cannot answer."""

    view: str | None
    view_age_seconds: float | None
    problems: list[str]
    documents: str | None = None  # where this process reads documents from: "file", "view" or "reading"


def readiness(views: ViewStore, audit: AuditLog) -> Readiness:
    """The served view opened and read (its publication time), and the audit log checked for what shows without a write."""
    problems: list[str] = []
    view, published = _view(views, problems)
    if (audit_problem := audit.problem()) is not None:
        problems.append(audit_problem)
    age = max(0.0, time.time() - published) if published is not None else None
    return Readiness(view, age, problems, _documents(views) if view is not None else None)


def _documents(views: ViewStore) -> str:
    """Where this process reads the current view's documents from: its documents file, the view's table (no file, one
    that does not match, or one found damaged), or not yet known while the file is read in after a switch."""
    served = views.served()
    docs = served.info.docs
    if docs is not None and not docs.damaged:
        return "file"
    return "view" if served.switched.is_set() else "reading"


def view_age(views: ViewStore) -> float | None:
    """Seconds since the current view was published; None when there is none or it cannot be read."""
    _, published = _view(views, [])
    return None if published is None else max(0.0, time.time() - published)


def _view(views: ViewStore, problems: list[str]) -> tuple[str | None, float | None]:
    """The current view's name and publication time (epoch seconds), or a problem saying why not."""
    try:
        with views.cursor() as (cur, name):
            return name, float(cur.execute("SELECT epoch(published_at) FROM view_info").fetchall()[0][0])
    except HTTPException as exc:  # none published yet
        problems.append(str(exc.detail))
    except duckdb.Error as exc:  # the pointer names a file that is missing, damaged or not a view
        problems.append(f"the served view cannot be read ({type(exc).__name__})")
    return None, None
