"""The caseworker pages in a real headless Chromium (the OS package, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.runner import run_pipeline
from tests.service_fixtures import TOKENS, start_service

CHROMIUM = os.environ.get("CITIZEN_VIEW_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not shutil.which("chromium"),
    reason=f"no Chromium at {CHROMIUM}: install the OS package (apt-get install chromium); .ci/run does",
)


@pytest.fixture(scope="module")
def service(generated, tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    warehouse = root / "wh" / "cv.duckdb"
    assert run_pipeline(sources_path=generated / "sources.yaml", warehouse_path=warehouse).success
    svc = start_service(warehouse, root / "audit.jsonl")
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"), args=FLAGS)
        yield b
        b.close()


def _target(svc) -> tuple[str, str, str, str]:
    con = duckdb.connect(str(svc.warehouse), read_only=True)
    try:
        return con.execute(
            """
            SELECT c.citizen_id, c.full_name, r.postcode, r.house_number FROM citizen c
            JOIN source_records r ON r.source || ':' || r.source_record_id = c.address_from
            WHERE c.source_count = 5 AND c.national_id IS NOT NULL AND r.postcode IS NOT NULL
            ORDER BY c.citizen_id LIMIT 1
            """
        ).fetchall()[0]
    finally:
        con.close()


def _sign_in(page, svc, role: str) -> None:
    page.goto(svc.url + "/")
    page.fill("#token", TOKENS[role])
    page.click("#sign-in")
    page.wait_for_url("**/search")


def test_search_open_profile_and_restricted_field_is_absent(service, browser, tmp_path):
    citizen, name, postcode, number = _target(service)
    page = browser.new_page()
    _sign_in(page, service, "permits_clerk")
    assert page.locator("#national_id").count() == 0  # the clerk's form has no national-ID search
    page.fill("#purpose", "parking permit application")
    page.fill("#name", name)
    page.fill("#postcode", postcode)
    page.fill("#house_number", number)
    page.click("#search")
    page.wait_for_selector("#results")
    page.click(f"a.citizen-link:has-text('{citizen}')")
    page.wait_for_selector("#golden")
    assert page.locator("#citizen-id").inner_text() == citizen
    page.screenshot(path=str(tmp_path / "profile-permits-clerk.png"), full_page=True)
    html = page.content()
    assert page.locator("#field-national_id").count() == 0 and page.locator("#field-date_of_birth").count() == 0
    assert 'data-source="benefits"' not in html and 'data-source="permits"' in html
    page.close()

    page = browser.new_page()
    _sign_in(page, service, "benefits_caseworker")
    page.goto(f"{service.url}/citizens/{citizen}?purpose=benefit+review")
    assert page.locator("#field-national_id").count() == 1
    assert 'data-source="benefits"' in page.content() and 'data-source="permits"' not in page.content()
    page.close()


def test_a_page_without_purpose_is_refused(service, browser):
    citizen, *_ = _target(service)
    page = browser.new_page()
    _sign_in(page, service, "data_steward")
    response = page.goto(f"{service.url}/citizens/{citizen}")
    assert response.status == 400
    assert "purpose" in page.locator("#message").inner_text()
    page.close()
