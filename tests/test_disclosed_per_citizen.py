"""What a search disclosed, per citizen: one search returns two citizens whose rows differ (one has a date of birth,
the other is known only to the permits extract, which has none), and each citizen's audit entry, export and access
log list only what was returned of them.

The two are made by adding to a copy of the generated set permit applications by a new person (another given
name) at the address of an existing applicant: a permits-only citizen beside a register-known one of the same
family name and address.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import httpx
import polars as pl
import pytest

from citizen_view.layout import WarehouseLayout
from citizen_view.serving.access import load_access, sign_citizen_claim
from citizen_view.serving.vocabulary import label
from citizen_view_app.cli import main
from tests.service_fixtures import ACCESS, TOKENS, serve_pipeline_output

PERMITS = "permits/permits.xlsx"
NEWCOMER = "Xaviera"  # a given name the generator does not use: the added applications are nobody else's
ADDED = 6


@pytest.fixture(scope="module")
def service(generated, tmp_path_factory):
    root = tmp_path_factory.mktemp("disclosed")
    shutil.copytree(generated, root / "data")
    permits = pl.read_excel(root / "data" / PERMITS, sheet_name="permits", infer_schema_length=0)
    newcomers = permits.head(ADDED).with_columns(
        permit_no=pl.format("PX{}", pl.int_range(pl.len()).cast(pl.String)),
        applicant=pl.lit(NEWCOMER) + " " + pl.col("applicant").str.split(" ").list.last(),
        email=pl.lit(None, pl.String),
        phone=pl.lit(None, pl.String),
    )
    pl.concat([permits, newcomers]).write_excel(root / "data" / PERMITS, worksheet="permits")
    svc = serve_pipeline_output(root / "data" / "sources.yaml", root)
    yield svc
    svc.stop()


def _pair(warehouse) -> tuple[str, str, str, str, str]:
    """(family name, postcode, house number, register-known citizen, permits-only newcomer) at one address."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            """
            WITH new AS (
                SELECT l.citizen_id, r.family_name, r.postcode, r.house_number FROM source_records r
                JOIN citizen_source_link l USING (record_key) JOIN citizen c USING (citizen_id)
                WHERE r.source = 'permits' AND r.source_record_id LIKE 'PX%' AND c.date_of_birth IS NULL
            )
            SELECT DISTINCT new.family_name, new.postcode, new.house_number, c.citizen_id, new.citizen_id
            FROM new JOIN source_records r ON r.postcode = new.postcode AND r.house_number = new.house_number
                AND r.family_name = new.family_name
            JOIN citizen_source_link l ON l.record_key = r.record_key JOIN citizen c ON c.citizen_id = l.citizen_id
            WHERE c.date_of_birth IS NOT NULL AND c.national_id IS NOT NULL ORDER BY 1, 2, 3, 4
            """
        ).fetchall()
    finally:
        con.close()
    assert rows, "an added applicant became a citizen of their own beside a register-known one at the same address"
    return rows[0]


def test_a_search_is_audited_per_citizen_and_each_sees_only_their_own(service, capsys):
    family, postcode, number, known, newcomer = _pair(service.warehouse)
    steward = {"Authorization": f"Bearer {TOKENS['data_steward']}"}
    query = {"purpose": "disclosure check", "name": family, "postcode": postcode, "house_number": number}
    r = httpx.get(f"{service.url}/api/search/name-and-postcode", params=query, headers=steward, timeout=60)
    assert r.status_code == 200, r.text
    rows = {c["citizen_id"]: c for c in r.json()["candidates"]}
    assert {known, newcomer} <= set(rows), rows
    returned = {cid: sorted(set(c) - {"citizen_id", "score", "reasons"}) for cid, c in rows.items()}
    assert "date_of_birth" in returned[known] and "date_of_birth" not in returned[newcomer], returned

    entries = [json.loads(line) for line in service.audit_log.read_text(encoding="utf-8").splitlines()]
    [search] = [e for e in entries if e["action"] == "search" and e["query"].get("name") == family]
    assert set(search["disclosed"]) == set(rows)
    for cid in rows:  # per citizen: exactly the keys of their own row, and the sources those values came from
        assert search["disclosed"][cid]["fields"] == returned[cid], cid
    assert search["disclosed"][known]["sources"] == ["population"]
    assert search["disclosed"][newcomer]["sources"] == ["permits"]

    layout = WarehouseLayout.of(service.warehouse)
    options = ["--audit-log", str(service.audit_log), "--anchor-sink", f"file:{layout.anchor_copy(service.audit_log)}"]
    for cid in (known, newcomer):
        assert main(["audit", "export", "--citizen", cid, *options, "--warehouse", str(service.warehouse)]) == 0
        [looked] = json.loads(capsys.readouterr().out)["looked_at"]
        assert (looked["fields"], looked["sources"]) == (returned[cid], search["disclosed"][cid]["sources"]), cid

    # the register-known citizen reads their log through the portal: the search shows with their own fields only
    con = duckdb.connect(str(service.warehouse), read_only=True)
    try:
        [(national_id,)] = con.execute("SELECT national_id FROM citizen WHERE citizen_id = ?", [known]).fetchall()
    finally:
        con.close()
    portal = {
        "Authorization": f"Bearer {TOKENS['citizen_portal']}",
        "X-Citizen-Claim": sign_citizen_claim(national_id, load_access(ACCESS).portal_secret),
    }
    url = f"{service.url}/api/citizens/{known}/access-log"
    log = httpx.get(url, params={"purpose": "citizen reads own log"}, headers=portal, timeout=60).json()
    [look] = [e for e in log["looked_at"] if e["action"] == "search"]
    assert (look["fields"], look["sources"]) == (returned[known], ["population"])
    page = httpx.get(
        f"{service.url}/citizens/{known}/access-log",
        params={"purpose": "citizen reads own log"},
        headers={**portal, "Accept": "text/html"},
        timeout=60,
    )
    assert page.status_code == 200
    cell = ", ".join(label(f) for f in returned[known]) + " (from Population)"  # the page's words (no labels set)
    assert cell in page.text and ", ".join(label(f) for f in returned[newcomer]) + " (from Permits)" not in page.text
