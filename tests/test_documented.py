"""Answers sent as built (`models.documented` + pydantic's serialiser) are byte for byte what the route's response
model sent before, with `response_model_exclude_unset`: the same keys, order, nulls and number forms."""

from __future__ import annotations

from pydantic_core import to_json

from citizen_view.serving.models import CitizenProfile, Resolution, SearchResult, documented


def _as_model_sent(model, value) -> bytes:
    return model.model_validate(value).model_dump_json(exclude_unset=True).encode("utf-8")


def test_a_resolution_is_sent_as_its_model_would_send_it():
    value = {  # in the handler's order, not the model's; a float pydantic and json write differently; keys left out
        "taken_in": False,
        "view": "view-1.duckdb",
        "resolution_id": "R1",
        "decision": "review",
        "citizen_id": None,
        "match_weight": 2.5,
        "match_probability": 0.000027,
        "reason": "two citizens reach the review band",
        "threshold": 3.75,
        "review_band": [2.25, 5.25],
        "records_compared": 7,
        "set_aside": [{"field": "date_of_birth", "raw": "31-02-1990", "reason": "not a date"}],
        "candidates": [
            {
                "citizen_id": "CV-ABCD-EFGH-2345",
                "record_key": "tax:T1",
                "match_weight": -19.1,
                "match_probability": 2e-06,
                "evidence": [
                    {"field": "given_name", "level": "different", "match_weight": -5.9, "incoming": "eva e"},
                    {"field": "address", "level": "same", "match_weight": 3.0, "incoming": None, "candidate": None},
                ],
            }
        ],
        "not_documented": "dropped",
    }
    assert to_json(documented(Resolution, value)) == _as_model_sent(Resolution, value)
    assert b"not_documented" not in to_json(documented(Resolution, value))
    assert b'"candidate"' in to_json(documented(Resolution, value))  # present where set, even as null
    assert to_json(documented(Resolution, value)).count(b'"candidate"') == 1  # absent where the role may not see it


def test_a_profile_and_a_search_result_are_sent_as_their_models_would_send_them():
    case = {"kind": "benefit", "status": "open", "state": "open", "start_date": "2024-01-02", "source": "benefits"}
    profile = {
        "citizen_id": "CV-ABCD-EFGH-2345",
        "view": "view-1.duckdb",
        "person": {"name": "Eva Jansen", "citizen_id": "CV-ABCD-EFGH-2345"},
        "running_now": [case],
        "history": [],
        "golden_record": {"family_name": "jansen", "date_of_birth": "1990-02-03", "score": 0.1},
        "provenance": {"family_name": "population:R1"},
        "records": [{"source": "population", "source_record_id": "R1", "attributes": {"n": 1}}],
        "cases": [case],
        "timeline": [{"date": "2024-01-02", "event": "application", "source": "benefits"}],
        "stale_sources": [{"source": "tax", "data_as_of": None}],
    }
    assert to_json(documented(CitizenProfile, profile)) == _as_model_sent(CitizenProfile, profile)
    found = {
        "mode": "national_id",
        "view": "view-1.duckdb",
        "candidates": [{"score": 70.0, "citizen_id": "CV-ABCD-EFGH-2345", "reasons": ["one typo away"], "city": None}],
    }
    assert to_json(documented(SearchResult, found)) == _as_model_sent(SearchResult, found)
