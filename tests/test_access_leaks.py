"""No role sees a value that came only from an agency it may not see: not in the API, not on a page, not by search.

For every demo role and a sample of citizens known to several agencies, every value that occurs in the
citizen's records of the role's invisible sources but in none of its visible ones is looked for in the
profile API response and the profile page; none may appear. Search may only find a citizen through
records of visible sources.
"""

from __future__ import annotations

import html
import json
import re

import duckdb
import httpx
import pytest

from citizen_view.contract import CaseState
from citizen_view.serving.access import load_access
from tests.service_fixtures import ACCESS, TOKENS, serve_linked_world

PURPOSE = {"purpose": "leak check", "case_reference": "LEAK-1"}
# Values too short to mean anything on their own (a sex code) are not counted as leaks.
MIN_LENGTH = 2
# The service's own words for a case's state (each agency's status codes mapped onto them): a visible case
# that is 'open' is not a leak of an invisible agency's raw status 'open'. Which cases a role sees at all is
# checked in test_service (every case shown comes from a visible source).
SERVICE_WORDS = {state.value for state in CaseState}


@pytest.fixture(scope="module")
def service(linked_world, tmp_path_factory):
    svc = serve_linked_world(linked_world, tmp_path_factory.mktemp("leaks"))
    yield svc
    svc.stop()


def _values(rows: list[dict]) -> set[str]:
    """Every value of a set of source records as text: canonical columns, attributes and what nests inside them."""
    out: set[str] = set()

    def add(v) -> None:
        if v is None:
            return
        if isinstance(v, dict):
            for x in v.values():
                add(x)
        elif isinstance(v, list):
            for x in v:
                add(x)
        else:
            text = v.isoformat() if hasattr(v, "isoformat") else str(v)
            out.add(text)
            if isinstance(v, str) and v[:1] in "[{":
                try:
                    add(json.loads(v))
                except ValueError:
                    pass

    for row in rows:
        add(row)
    return out


def _records(warehouse, citizen_id: str) -> list[dict]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cur = con.execute(
            "SELECT r.* EXCLUDE (record_key, source_file, source_line, extracted_at) FROM citizen_source_link l "
            "JOIN source_records r USING (record_key) WHERE l.citizen_id = ?",
            [citizen_id],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def _sample(warehouse, n: int = 30) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return [
            r[0]
            for r in con.execute(
                "SELECT citizen_id FROM citizen WHERE source_count >= 3 ORDER BY hash(citizen_id) LIMIT ?", [n]
            ).fetchall()
        ]
    finally:
        con.close()


@pytest.mark.parametrize("role_name", sorted(r for r in TOKENS if r != "citizen_portal"))
def test_no_value_only_an_invisible_agency_holds_reaches_the_role(service, role_name):
    role = load_access(ACCESS).roles[role_name]
    headers = {"Authorization": f"Bearer {TOKENS[role_name]}"}
    checked = found_secret = 0
    for citizen_id in _sample(service.warehouse):
        records = _records(service.warehouse, citizen_id)
        visible = _values([r for r in records if r["source"] in role.sources])
        hidden = _values([r for r in records if r["source"] not in role.sources]) - visible - SERVICE_WORDS
        secret = {v for v in hidden if len(v) >= MIN_LENGTH}
        api = httpx.get(f"{service.url}/api/citizens/{citizen_id}", params=PURPOSE, headers=headers, timeout=30)
        page = httpx.get(f"{service.url}/citizens/{citizen_id}", params=PURPOSE, headers=headers, timeout=30)
        if not any(r["source"] in role.sources for r in records):
            assert api.status_code == page.status_code == 404  # not even that the person exists
            continue
        assert api.status_code == 200 and page.status_code == 200, api.text
        shown = _values([api.json()]) | {html.unescape(x).strip() for x in re.findall(r">([^<]+)<", page.text)}
        leaked = sorted(secret & shown)
        assert not leaked, f"{role_name} sees {leaked[:5]} of {citizen_id}, held only by sources it may not see"
        checked += 1
        found_secret += bool(secret)
    assert checked >= 10
    if set(role.sources) != {"population", "tax", "benefits", "permits", "licences"}:
        assert found_secret >= 5  # the sample really holds values the role must not see


def _best_visible_links(warehouse, citizen_id: str, visible: list[str]) -> dict[tuple[str, str], float | None]:
    """Per record of the citizen, the highest match probability of its scored pairs with records of `visible` sources
    within the citizen (None without one), from the warehouse's own tables."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            """
            WITH mine AS (SELECT record_key, source, source_record_id FROM citizen_source_link WHERE citizen_id = ?),
            ends AS (
                SELECT e.record_key_l AS record_key, e.source_r AS partner, e.match_probability FROM match_edges e
                WHERE e.record_key_l IN (SELECT record_key FROM mine) AND e.record_key_r IN (SELECT record_key FROM mine)
                UNION ALL
                SELECT e.record_key_r, e.source_l, e.match_probability FROM match_edges e
                WHERE e.record_key_l IN (SELECT record_key FROM mine) AND e.record_key_r IN (SELECT record_key FROM mine)
            )
            SELECT m.source, m.source_record_id,
                   max(x.match_probability) FILTER (WHERE list_contains(?, x.partner))
            FROM mine m LEFT JOIN ends x USING (record_key) GROUP BY ALL
            """,
            [citizen_id, visible],
        ).fetchall()
    finally:
        con.close()
    return {(source, record_id): p for source, record_id, p in rows}


@pytest.mark.parametrize("role_name", ["benefits_caseworker", "licence_officer", "data_steward"])
def test_a_records_link_probability_counts_only_links_to_records_the_role_may_see(service, role_name):
    """A record's "linked with probability" is its best link to a record the role may see: a link to a record of a
    hidden source would tell that the citizen has one there (a citizen known to a visible source only shows none)."""
    role = load_access(ACCESS).roles[role_name]
    headers = {"Authorization": f"Bearer {TOKENS[role_name]}"}
    checked = differs_from_overall = alone = 0
    con = duckdb.connect(str(service.warehouse), read_only=True)
    try:
        overall = dict(
            ((s, k), p)
            for s, k, p in con.execute(
                "SELECT source, source_record_id, match_probability FROM citizen_source_link"
            ).fetchall()
        )
    finally:
        con.close()
    for citizen_id in _sample(service.warehouse, 40):
        api = httpx.get(f"{service.url}/api/citizens/{citizen_id}", params=PURPOSE, headers=headers, timeout=30)
        if api.status_code == 404:
            continue
        assert api.status_code == 200, api.text
        expected = _best_visible_links(service.warehouse, citizen_id, list(role.sources))
        for record in api.json()["records"]:
            key = (record["source"], record["source_record_id"])
            want, got = expected[key], record["match_probability"]
            assert (got is None) == (want is None) and (got is None or abs(got - want) < 1e-9), (
                citizen_id,
                key,
                got,
                want,
            )
            checked += 1
            differs_from_overall += want != overall[key]
            alone += want is None and overall[key] is not None
    assert checked >= 20
    if len(role.sources) < 5:  # the sample holds records whose best link is to a record the role may not see
        assert differs_from_overall >= 3 and alone >= 1, (differs_from_overall, alone)


def test_search_only_matches_records_of_visible_sources(service):
    """The permits clerk cannot find a person by an address only the tax office holds."""
    role = load_access(ACCESS).roles["permits_clerk"]
    con = duckdb.connect(str(service.warehouse), read_only=True)
    try:
        row = con.execute(
            """
            SELECT t.full_name, t.postcode, t.house_number, l.citizen_id FROM source_records t
            JOIN citizen_source_link l USING (record_key)
            WHERE t.source = 'tax' AND t.postcode IS NOT NULL AND t.house_number IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM citizen_source_link l2 JOIN source_records o USING (record_key)
                              WHERE l2.citizen_id = l.citizen_id AND o.source IN ('population', 'permits')
                                AND o.postcode = t.postcode AND o.house_number = t.house_number)
            ORDER BY t.source_record_id LIMIT 1
            """
        ).fetchall()[0]
    finally:
        con.close()
    name, postcode, number, citizen_id = row
    assert "tax" not in role.sources
    query = {"name": name, "postcode": postcode, "house_number": number, **PURPOSE}
    clerk = httpx.get(
        f"{service.url}/api/search", params=query, headers={"Authorization": f"Bearer {TOKENS['permits_clerk']}"}
    )
    assert clerk.status_code == 200 and citizen_id not in [c["citizen_id"] for c in clerk.json()["candidates"]]
    steward = httpx.get(
        f"{service.url}/api/search", params=query, headers={"Authorization": f"Bearer {TOKENS['data_steward']}"}
    )
    assert citizen_id in [c["citizen_id"] for c in steward.json()["candidates"]]  # the address is really there


def test_a_role_with_sources_all_sees_every_source_of_the_served_view(service, generated):
    """Issue 21.5: `sources: all` is resolved against the served view at request time; listed roles stay as listed."""
    import yaml
    from pydantic import ValidationError

    from citizen_view.contract import load_sources
    from citizen_view.layout import WarehouseLayout
    from citizen_view.serving.access import AccessConfig, Role, TokenAuthenticator, hash_token, view_sources

    raw = yaml.safe_load(ACCESS.read_text(encoding="utf-8"))
    raw["roles"]["data_steward"]["sources"] = "all"
    config = AccessConfig.model_validate(raw)
    served = view_sources(WarehouseLayout.of(service.warehouse).serving_dir)
    declared = sorted(s.name for s in load_sources(generated / "sources.yaml").sources)
    assert served() == declared
    steward = TokenAuthenticator(config, served_sources=served).authenticate(TOKENS["data_steward"])
    assert steward is not None and steward.role.sources == declared
    clerk = TokenAuthenticator(config, served_sources=served).authenticate(TOKENS["permits_clerk"])
    assert clerk.role.sources == raw["roles"]["permits_clerk"]["sources"]
    # a view with a new source: visible at once to `all`, to no listed role
    assert "court" in config.roles["data_steward"].for_view([*declared, "court"]).sources
    assert "court" not in config.roles["permits_clerk"].for_view([*declared, "court"]).sources
    # unresolved, `all` sees nothing (fail closed); anything but a list or `all` is refused
    assert TokenAuthenticator(config).authenticate(TOKENS["data_steward"]).role.sources == []
    with pytest.raises(ValidationError, match="sources must be a list"):
        Role.model_validate({"sources": "everything", "fields": []})
    assert hash_token(TOKENS["data_steward"]) == next(u.token_sha256 for u in config.users if u.name == "sara.steward")
