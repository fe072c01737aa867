"""The service's response models: every answer of the API, refusals included, as clients read it."""

from __future__ import annotations

import functools
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field


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
    """The candidates of one search; `note` says why none could be found when the terms cannot match any record."""

    view: str
    mode: str
    candidates: list[Candidate]
    note: str | None = None


class Health(BaseModel):
    status: str
    view: str | None


class Ready(BaseModel):
    """Ready to answer: the served view's name and age in seconds, and where this process reads citizens' documents
    from (a 503 with the reasons otherwise)."""

    status: str
    view: str
    view_age_seconds: float
    documents: Literal["file", "view", "reading"] = Field(
        description="`file`: the view's documents file, mapped; `view`: the view's own table (no such file, one that "
        "does not match the view, or one found damaged: the same answers, more memory and CPU a look); `reading`: "
        "the file is being read in after a switch to a new view"
    )


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
    sources: list[str] = []
    status: int
    earlier_id: bool = False  # a look at an ID that held some of these records before a correction (split or merge)


class AccessReport(BaseModel):
    """Organisations' looks at a citizen's data (each with the data it returned), and apart the citizen's own reads."""

    citizen_id: str
    looked_at: list[AccessEntry]
    own_looks: list[AccessEntry] = []


_ERROR_CODES = {
    400: "No purpose given, or one not of the documented form.",
    401: "No token, or an unknown one.",
    403: "The role may not do this (a field, source or action outside its access package).",
    404: "No such citizen in the current view (or none the role may see).",
    422: "Invalid input: a malformed or oversized parameter.",
    429: "Too many unknown tokens from the caller's address lately: wait the seconds `Retry-After` names.",
    500: "An internal error (logged; never a stack trace).",
    503: (
        "No view has been published yet; or (resolve) the view's index is being read after a publish, or its read failed"
        " lately: retry after the seconds `Retry-After` names."
    ),
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": text} for code, text in _ERROR_CODES.items()
}


# --- POST /api/resolve ---------------------------------------------------------------------------------------------


class FieldEvidence(BaseModel):
    """One comparison of the model: its level, its weight, the values compared (the candidate's when the role sees it)."""

    field: str
    level: str
    match_weight: float
    incoming: str | None = None
    candidate: str | None = None


class ResolveCandidate(BaseModel):
    citizen_id: str
    record_key: str
    match_weight: float
    match_probability: float
    evidence: list[FieldEvidence]


class SetAside(BaseModel):
    field: str
    raw: str | None = None
    reason: str


class Resolution(BaseModel):
    """The answer for one record: matched (with the citizen), new, or review, why, and the best candidates."""

    view: str
    resolution_id: str
    decision: str
    citizen_id: str | None = None
    match_weight: float | None = None
    match_probability: float | None = None
    reason: str
    threshold: float
    review_band: list[float]
    records_compared: int
    taken_in: bool = Field(
        description="recorded for the next pipeline run (the record named its source and source_record_id); "
        "otherwise a lookup, answered and audited only"
    )
    set_aside: list[SetAside]
    candidates: list[ResolveCandidate]


# --- answers sent as built -----------------------------------------------------------------------------------------


@functools.cache
def _shape(model: type[BaseModel]) -> tuple[tuple[str, type[BaseModel] | None], ...]:
    """Each field of `model` in its order, with the model of its value (or of its list's items) when that is one."""

    def nested(annotation: Any) -> type[BaseModel] | None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        return next((m for arg in typing.get_args(annotation) if (m := nested(arg)) is not None), None)

    return tuple((name, nested(f.annotation)) for name, f in model.model_fields.items())


def documented(model: type[BaseModel], value: dict[str, Any]) -> dict[str, Any]:
    """`value` as the route's response model sends it with `exclude_unset`: only the model's fields, in the model's
    order, the same in nested models (a field the value leaves out stays absent, a None stays null), without
    validating it again per request. For answers the service builds itself from the served view."""
    out = {}
    for name, inner in _shape(model):
        if name in value:
            item = value[name]
            if inner is not None and isinstance(item, list):
                item = [documented(inner, x) for x in item]
            elif inner is not None and isinstance(item, dict):
                item = documented(inner, item)
            out[name] = item
    return out
