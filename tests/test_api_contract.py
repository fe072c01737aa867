"""The API contract: /openapi.json describes every parameter (typed, with limits), every status with its error schema,
the content types and the bearer token, and the service on loopback keeps to it.

Schemathesis loads the document the running service serves and generates requests from it: the documented examples,
the coverage phase's boundary and invalid values, then a bounded, derandomized fuzzing run per operation (valid and
invalid input). Each is sent with a demo token (`Authorization: Bearer demo-steward-token`; the citizen portal's for
the access log, which only it may read) and each answer is checked: no 5xx, a documented status, the documented
content type and headers, a body that validates against the documented schema. Real answers of every role (a known
citizen's profile, searches that find them, the portal's access log) are checked the same way.
"""

from __future__ import annotations

import collections

import duckdb
import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from citizen_view.serving.access import load_access, sign_citizen_claim
from citizen_view.serving.app import CITIZEN_ID, LIMITS
from tests.service_fixtures import ACCESS, TOKENS, serve_linked_world

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SEARCH, PROFILE, ACCESS_LOG = "/api/search", "/api/citizens/{citizen_id}", "/api/citizens/{citizen_id}/access-log"
CLIENT_ERRORS = {"400", "401", "403", "422"}
MAX_EXAMPLES = 100  # fuzzed cases per operation (valid and invalid together), besides the examples and coverage cases
ROLE_FOR = {ACCESS_LOG: "citizen_portal"}  # reading a citizen's access log is the portal's right: others get 403
SENT: collections.Counter[tuple[str, int]] = collections.Counter()  # (operation, status) -> generated requests sent


@pytest.fixture(scope="module")
def service(linked_world, tmp_path_factory):
    svc = serve_linked_world(linked_world, tmp_path_factory.mktemp("contract"))
    yield svc
    svc.stop()
    if SENT:  # the run's summary (shown with `pytest -s`)
        print(f"\nschemathesis sent {sum(SENT.values())} generated requests; by operation and status:")
        for (label, status), n in sorted(SENT.items()):
            print(f"  {label:45} {status}  {n}")


@pytest.fixture(scope="module")
def document(service) -> dict:
    r = httpx.get(f"{service.url}/openapi.json", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    return r.json()


@pytest.fixture(scope="module")
def api_schema(service):
    """The served document as schemathesis loads it: deterministic, bounded, with the steward's demo token."""
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {TOKENS['data_steward']}"},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "request-timeout": 30,
        }
    )
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json", config=config, timeout=30)


def _parameters(operation: dict, where: str) -> dict[str, dict]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == where}


def test_every_parameter_is_documented_typed_and_limited(document):
    expected = {SEARCH: set(LIMITS), PROFILE: {"purpose", "case_reference"}, ACCESS_LOG: {"purpose", "case_reference"}}
    for path, names in expected.items():
        query = _parameters(document["paths"][path]["get"], "query")
        assert set(query) == names, f"{path}: every query parameter the service reads is documented, and no other"
        for name, param in query.items():
            assert param["required"] is False and param["description"], (path, name)
            assert param["schema"]["type"] == "string", (path, name, param["schema"])
            assert param["schema"]["maxLength"] == LIMITS[name], (path, name, param["schema"])
        assert query["purpose"]["schema"]["minLength"] == 3
    for path in (PROFILE, ACCESS_LOG):
        assert set(_parameters(document["paths"][path]["get"], "path")) == {"citizen_id"}
        citizen_id = _parameters(document["paths"][path]["get"], "path")["citizen_id"]
        assert citizen_id["required"] and citizen_id["schema"]["type"] == "string"
        assert citizen_id["schema"]["pattern"] == CITIZEN_ID.pattern == r"^CV-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$"


def test_every_status_has_its_schema_and_content_type_and_the_token_is_declared(document):
    schemas, schemes = document["components"]["schemas"], document["components"]["securitySchemes"]
    assert set(schemas["Error"]["required"]) == {"error", "status"}
    assert "HTTPValidationError" not in schemas, "invalid input is answered with Error, not FastAPI's default shape"
    assert schemes["HTTPBearer"]["type"] == "http" and schemes["HTTPBearer"]["scheme"] == "bearer"
    assert {p for p in document["paths"] if p.startswith("/api/")} == {SEARCH, PROFILE, ACCESS_LOG}
    assert not {"/", "/login", "/search", "/review"} & set(document["paths"]), "the HTML pages are not part of the API"
    for path in (SEARCH, PROFILE, ACCESS_LOG):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{"HTTPBearer": []}], path
        assert CLIENT_ERRORS <= set(operation["responses"]), (path, sorted(operation["responses"]))
        for status, answer in operation["responses"].items():
            assert set(answer["content"]) == {"application/json"}, (path, status)
            ref = answer["content"]["application/json"]["schema"]["$ref"]
            if status == "200":
                assert ref != "#/components/schemas/Error" and schemas[ref.rsplit("/", 1)[1]]["properties"], path
            else:
                assert ref == "#/components/schemas/Error", (path, status, ref)
    health = document["paths"]["/health"]["get"]["responses"]["200"]["content"]
    assert health == {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32's lazy schemas read the test item's `_nodeid`, which pytest 9 no longer has: give it one."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
def test_the_service_keeps_to_its_document(case):
    """Every generated request, valid or not, gets a documented answer and never a server error."""
    token = TOKENS[ROLE_FOR.get(case.operation.path, "data_steward")]
    headers = {"Authorization": f"Bearer {token}"}
    response = case.call(headers=headers)
    SENT[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)


def test_the_generated_requests_reached_past_authentication():
    """The run above was authenticated and exercised valid and invalid input on each operation."""
    if not SENT:
        pytest.skip("the schemathesis run was not part of this session")
    by_operation = collections.defaultdict(set)
    for (label, status), _n in SENT.items():
        by_operation[label].add(status)
    assert {200, 400, 422} <= by_operation[f"GET {SEARCH}"], dict(by_operation)
    assert {400, 404, 422} <= by_operation[f"GET {PROFILE}"], dict(by_operation)
    # generated IDs are not the citizen of any claim: the portal is refused (403) for each, existing or not
    assert {400, 403, 422} <= by_operation[f"GET {ACCESS_LOG}"], dict(by_operation)
    assert sum(n for (_label, status), n in SENT.items() if status != 401) > 0.9 * sum(SENT.values())


def test_real_answers_of_every_role_validate_against_the_document(service, api_schema):
    """Generated IDs are hardly ever known citizens: the real 200s of each role are checked too."""
    con = duckdb.connect(str(service.warehouse), read_only=True)
    try:
        citizen, national_id, name, dob = con.execute(
            "SELECT c.citizen_id, r.national_id, r.full_name, CAST(r.date_of_birth AS VARCHAR) FROM citizen c "
            "JOIN citizen_source_link l USING (citizen_id) JOIN source_records r USING (record_key) "
            "WHERE c.source_count = 5 AND r.source = 'population' AND r.national_id_valid ORDER BY c.citizen_id LIMIT 1"
        ).fetchall()[0]
    finally:
        con.close()
    purpose = {"purpose": "API contract check", "case_reference": "CASE-7"}
    profile, access_log, search = (api_schema[path]["GET"] for path in (PROFILE, ACCESS_LOG, SEARCH))
    roles = load_access(ACCESS).roles
    answers = {}
    # the portal acts for one signed-in citizen: its claim names this citizen's national ID (the golden record's)
    claim = sign_citizen_claim(national_id, load_access(ACCESS).portal_secret)
    for role, token in TOKENS.items():
        cases = {
            "profile": profile.Case(path_parameters={"citizen_id": citizen}, query=purpose),
            "by name": search.Case(query={**purpose, "name": name, "date_of_birth": dob}),
            "by national ID": search.Case(query={**purpose, "national_id": national_id}),
            "access log": access_log.Case(path_parameters={"citizen_id": citizen}, query=purpose),
            "no purpose": search.Case(query={"name": name, "date_of_birth": dob}),
            "unknown": profile.Case(path_parameters={"citizen_id": "CV-AAAA-AAAA-AAAA"}, query=purpose),
            "no route": profile.Case(path_parameters={"citizen_id": "CV-AAAA/AAAA-AAAA"}, query=purpose),  # %2F
        }
        for what, case in cases.items():
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {token}", "X-Citizen-Claim": claim}, checks=CHECKS
            )
            answers[role, what] = response.status_code, response.json()
    for role in TOKENS:
        if roles[role].sources:  # every role that sees sources sees this citizen (known to all five)
            status, body = answers[role, "profile"]
            assert status == 200 and body["citizen_id"] == citizen and body["records"], role
        assert answers[role, "access log"][0] == (200 if roles[role].citizen_access else 403), role
        assert answers[role, "no purpose"][0] == 400 and answers[role, "unknown"][0] == 404, role
        assert answers[role, "no route"] == (404, {"error": "Not Found", "status": 404}), role  # the router's, as Error
    assert answers["data_steward", "profile"][1]["cases"] and answers["data_steward", "profile"][1]["timeline"]
    assert answers["citizen_portal", "access log"][1]["looked_at"], "the log read had entries to validate"
    for what in ("by name", "by national ID"):
        status, body = answers["benefits_caseworker", what]
        assert status == 200 and citizen in [c["citizen_id"] for c in body["candidates"]], what
