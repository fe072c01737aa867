"""No route can show citizen data without an authenticated caller and a stated purpose: every route outside the few
public ones is enumerated from the app itself, checked for both dependencies, and called without a purpose."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from citizen_view.serving.app import create_app
from citizen_view.serving.deps import PUBLIC_ROUTES, unguarded_routes
from tests.service_fixtures import ACCESS, TOKENS

STEWARD = TOKENS["data_steward"]  # a reviewer: the review routes check the role before the purpose


@pytest.fixture
def app(tmp_path):
    """The service over an empty serving folder: a purpose is checked before any view is needed."""
    (tmp_path / "serving").mkdir()
    return create_app(
        serving_folder=tmp_path / "serving",
        access_file=ACCESS,
        audit_file=tmp_path / "audit" / "access.jsonl",
        decisions_file=tmp_path / "decisions.csv",
    )


def _guarded(app) -> list:
    return [
        r
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute) and not all((m, r.path) in PUBLIC_ROUTES for m in r.methods)
    ]


def test_every_route_depends_on_the_caller_and_a_purpose(app):
    assert len(_guarded(app)) >= 7, "the API, pages, portal and review routes were all enumerated"
    assert unguarded_routes(app) == []


def test_a_route_added_without_the_dependencies_is_reported(app):
    @app.get("/api/citizens/{citizen_id}/secrets")
    def secrets(citizen_id: str) -> dict:
        return {"citizen_id": citizen_id}

    assert unguarded_routes(app) == ["GET /api/citizens/{citizen_id}/secrets"]


def test_every_guarded_route_refuses_a_call_without_purpose_and_audits_it_once(app, tmp_path):
    audit_file = tmp_path / "audit" / "access.jsonl"
    with TestClient(app) as client:
        for route in _guarded(app):
            path = re.sub(r"\{[^}]+\}", "CV-AAAA-AAAA-AAAA", route.path)
            form = {f.alias: "x:1" for f in route.dependant.body_params if f.alias != "purpose"}
            for method in route.methods:
                before = audit_file.read_text().count("\n") if audit_file.exists() else 0
                response = client.request(
                    method,
                    path,
                    params={"name": "Jan"},
                    data=form or None,
                    headers={"Authorization": f"Bearer {STEWARD}"},
                )
                assert response.status_code == 400, (method, path, response.status_code, response.text)
                assert "purpose" in response.json()["error"], (method, path)
                entries = [json.loads(line) for line in audit_file.read_text().splitlines()[before:]]
                assert len(entries) == 1, (method, path, entries)
                assert entries[0]["status"] == 400 and entries[0]["role"] == "data_steward" and entries[0]["user"], (
                    entries[0]
                )
                assert entries[0]["query"]["path"] == path and entries[0]["citizen_ids"] == [], entries[0]
