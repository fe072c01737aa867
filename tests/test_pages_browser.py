"""The caseworker pages in a real headless Chromium (the OS package, driven by Playwright)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from citizen_view.contract import load_sources
from citizen_view.serving import vocabulary as words
from citizen_view.serving.access import load_access, sign_citizen_claim
from citizen_view.serving.snapshot import current_view
from citizen_view.serving.vocabulary import code_names
from tests.service_fixtures import ACCESS, TOKENS, serve_linked_world, serve_pipeline_output, start_service

CHROMIUM = os.environ.get("CITIZEN_VIEW_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not shutil.which("chromium"),
    reason=f"no Chromium at {CHROMIUM}: install the OS package (apt-get install chromium); .ci/run does",
)


@pytest.fixture(scope="module")
def service(linked_world, tmp_path_factory):
    svc = serve_linked_world(linked_world, tmp_path_factory.mktemp("pages"))
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"), args=FLAGS
        )
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


def _sign_in(page, svc, role: str, claim: str | None = None) -> None:
    page.goto(svc.url + "/")
    page.fill("#token", TOKENS[role])
    if claim:  # a citizen portal signs in for one citizen
        page.fill("#claim", claim)
    with page.expect_navigation():  # to the role's own start page (/start redirects)
        page.click("#sign-in")
    page.wait_for_load_state()


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


def test_a_page_without_purpose_asks_for_one_and_remembers_it(service, browser):
    citizen, *_ = _target(service)
    page = browser.new_page()
    _sign_in(page, service, "data_steward")
    assert page.url.endswith("/search")  # a caseworker's start page
    response = page.goto(f"{service.url}/citizens/{citizen}")
    assert response.status == 400  # still refused (and audited): no citizen data without a purpose
    assert page.locator("#purpose-form").is_visible() and page.locator("#golden").count() == 0
    assert page.locator("#nav-search").count() == 1 and page.locator("#sign-out").count() == 1
    page.fill("#purpose", "benefit review")
    page.click("#state-purpose")
    page.wait_for_selector("#golden")
    assert page.locator("#citizen-id").inner_text() == citizen
    response = page.goto(f"{service.url}/citizens/{citizen}")  # remembered for the session
    assert response.status == 200 and "benefit review" in page.locator("#nav-purpose").inner_text()
    page.goto(f"{service.url}/purpose?next=/citizens/{citizen}")  # and changeable
    page.fill("#purpose", "fraud check")
    page.click("#state-purpose")
    page.wait_for_selector("#golden")
    assert "fraud check" in page.locator("#nav-purpose").inner_text()
    page.goto(f"{service.url}/citizens/{citizen}")
    page.close()
    entries = [json.loads(line) for line in service.audit_log.read_text(encoding="utf-8").splitlines()]
    looks = [e for e in entries if e.get("action") == "view_profile" and citizen in (e.get("citizen_ids") or [])]
    assert [e["purpose"] for e in looks[-3:]] == ["benefit review", "fraud check", "fraud check"]
    refused = [e for e in entries if e["status"] == 400 and e["query"].get("path") == f"/citizens/{citizen}"]
    assert refused and refused[0]["user"] == "sara.steward" and refused[0]["action"].startswith("refused:")


# --- what a person sees, on the committed sample ------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "sources.yaml"


@pytest.fixture(scope="module")
def sample_service(tmp_path_factory):
    """The committed sample run whole, served; the screenshots go to $CITIZEN_VIEW_SCREENSHOTS or a temporary folder."""
    root = tmp_path_factory.mktemp("sample-pages")
    svc = serve_pipeline_output(SAMPLE, root)
    shots = Path(os.environ.get("CITIZEN_VIEW_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    yield svc, shots
    svc.stop()
    print(f"\nscreenshots of the sample's pages: {shots}")


def _signed_in(browser, svc, role: str, path: str | None = None, claim: str | None = None):
    """A new page signed in as `role` (a portal with the citizen `claim`), at `path` when given."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    _sign_in(page, svc, role, claim)
    if path is not None:
        page.goto(svc.url + path)
    return page


def _busy_citizen(svc) -> tuple[str, str]:
    """A citizen with open cases at two agencies and closed ones too, and the name the steward sees."""
    view = sorted((svc.warehouse.parent / svc.warehouse.stem / "serving").glob("view-*.duckdb"))[-1]
    con = duckdb.connect(str(view), read_only=True)
    try:
        return con.execute(
            """
            SELECT c.citizen_id, c.full_name FROM citizen c JOIN cases k USING (citizen_id)
            GROUP BY ALL HAVING count(DISTINCT k.source) FILTER (WHERE k.state IN ('open', 'pending')) >= 2
               AND count(*) FILTER (WHERE k.state = 'closed') >= 1
            ORDER BY c.citizen_id LIMIT 1
            """
        ).fetchall()[0]
    finally:
        con.close()


def test_a_profile_reads_in_ten_seconds(sample_service, browser):
    svc, shots = sample_service
    citizen, name = _busy_citizen(svc)
    page = _signed_in(browser, svc, "data_steward", f"/citizens/{citizen}?purpose=benefit+review")
    assert page.locator("h1").first.inner_text() == name  # the person, not the ID
    assert page.locator("#citizen-id").inner_text() == citizen and page.locator("#person-born").count() == 1
    sections = [page.locator(s).bounding_box()["y"] for s in ("#running", "#history", "#records")]
    assert sections == sorted(sections)  # running now comes first, then history, then the records
    running = page.locator("#running-cases tr.case")
    assert running.count() >= 2
    states = {page.locator("#running-cases .state").nth(i).inner_text() for i in range(running.count())}
    assert states <= {"open", "pending"} and page.locator("#past-cases .state-closed").count() >= 1
    text = page.locator("main").inner_text()
    assert "{" not in text and "[{" not in text and '"case_id"' not in text  # no raw JSON anywhere
    assert not [
        d for d in page.locator("#running-cases td:nth-child(4)").all_inner_texts() if d and "/" in d
    ]  # one date format
    page.screenshot(path=str(shots / "profile.png"), full_page=True)
    assert page.locator("button.no-print").is_visible()
    page.emulate_media(media="print")  # printable: the page's controls are left off paper
    assert not page.locator("button.no-print").is_visible() and page.locator("#running").is_visible()
    page.close()


def test_the_review_page_shows_the_total_pages_and_filters(sample_service, browser):
    svc, shots = sample_service
    page = _signed_in(browser, svc, "data_steward", "/review?purpose=clerical+review")
    total = int(page.locator("#review-total strong").inner_text().replace(",", ""))
    assert total > 10 and page.locator(".review-item").count() == 10
    first_page = page.locator(".review-item").first.get_attribute("data-item")
    page.screenshot(path=str(shots / "review.png"), full_page=False)
    page.click("#next-page")
    assert "page=2" in page.url and page.locator(".review-item").first.get_attribute("data-item") != first_page
    page.select_option("#filter-kind", "uncertain link")
    page.select_option("#filter-source", "permits")
    page.click("#filter")
    items = page.locator(".review-item")
    assert items.count() >= 1
    assert all("permits:" in (items.nth(i).get_attribute("data-item") or "") for i in range(items.count()))
    # a decision is recorded and the page comes back with the same filters, the pair gone
    decided = items.first.get_attribute("data-item")
    items.first.locator("input[name=reason]").fill("same address, different people")
    items.first.locator("button[value=different]").click()
    page.wait_for_selector("#recorded")
    assert "source=permits" in page.url and page.locator("#recorded").get_attribute("data-pair") == decided
    assert "different people" in page.locator("#recorded").inner_text()
    assert decided not in [
        page.locator(".review-item").nth(i).get_attribute("data-item")
        for i in range(page.locator(".review-item").count())
    ]
    page.close()


def test_a_mistyped_date_comes_back_as_the_form_with_the_message_beside_it(sample_service, browser):
    svc, _ = sample_service
    page = _signed_in(browser, svc, "data_steward")
    page.fill("#purpose", "benefit application check")
    page.fill("#name", "Jan Jansen")
    page.fill("#date_of_birth", "31-31-1980")
    page.click("#search")
    page.wait_for_selector("#date_of_birth-error")
    assert "not a date" in page.locator("#date_of_birth-error").inner_text()
    assert page.locator("#name").input_value() == "Jan Jansen"  # the form kept what was typed
    assert page.locator("#date_of_birth").get_attribute("aria-invalid") == "true"
    assert "{" not in page.locator("main").inner_text()
    page.close()


def test_a_citizen_sees_who_looked_at_their_data(sample_service, browser):
    svc, shots = sample_service
    citizen, _ = _busy_citizen(svc)
    look = f"/citizens/{citizen}?purpose=benefit+review&case_reference=BEN-7"
    page = _signed_in(browser, svc, "benefits_caseworker", look)
    page.close()
    view = sorted((svc.warehouse.parent / svc.warehouse.stem / "serving").glob("view-*.duckdb"))[-1]
    con = duckdb.connect(str(view), read_only=True)
    try:
        national_id, other = con.execute(
            "SELECT (SELECT national_id FROM citizen WHERE citizen_id = ?), "
            "(SELECT min(citizen_id) FROM citizen WHERE citizen_id <> ?)",
            [citizen, citizen],
        ).fetchall()[0]
    finally:
        con.close()
    claim = sign_citizen_claim(national_id, load_access(ACCESS).portal_secret)
    page = _signed_in(browser, svc, "citizen_portal", f"/citizens/{citizen}/access-log?purpose=citizen+inzage", claim)
    rows = page.locator("#looks tr.look")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("Benefits Agency (demo)" in t and "benefit review" in t and "BEN-7" in t for t in texts)
    assert "anna.benefits" not in page.content()  # the organisation, not the caseworker's name
    page.screenshot(path=str(shots / "citizen-access.png"), full_page=True)
    response = page.goto(f"{svc.url}/citizens/{citizen}?purpose=curious")
    assert response.status == 404  # the portal sees no record itself
    response = page.goto(f"{svc.url}/citizens/{other}/access-log?purpose=curious")
    assert response.status == 403  # nor another citizen's log
    page.close()


# --- reachable pages in a caseworker's words ----------------------------------------------------------------

CODE_WORDS = re.compile(r"\b(" + "|".join(code_names()) + r"|source_record_id|record_key\w*|item_id)\b")
FILE_NAMES = re.compile(r"view-[\w-]+|\.duckdb|\.jsonl|\.yaml|\.parquet")
EXPLAINED_SCORE = re.compile(r"match score (\d+ of 100|\(0 to 100\))", re.IGNORECASE)


def _plain_words(page) -> str:
    """A page's visible text, checked for code words, file names and a score without its explanation."""
    text = page.locator("body").inner_text()
    assert not CODE_WORDS.findall(text), (page.url, CODE_WORDS.findall(text))
    assert not FILE_NAMES.findall(text), (page.url, FILE_NAMES.findall(text))
    assert "score" not in EXPLAINED_SCORE.sub("", text).lower(), page.url
    assert "{" not in text
    return text


def _citizen_facts(svc, citizen: str) -> tuple[str, str]:
    """A citizen's national ID and date of birth, from the served view."""
    view = sorted((svc.warehouse.parent / svc.warehouse.stem / "serving").glob("view-*.duckdb"))[-1]
    con = duckdb.connect(str(view), read_only=True)
    try:
        national_id, born = con.execute(
            "SELECT national_id, date_of_birth FROM citizen WHERE citizen_id = ?", [citizen]
        ).fetchall()[0]
    finally:
        con.close()
    return national_id, born


def test_review_without_a_purpose_shows_a_form_then_the_queue(sample_service, browser):
    svc, shots = sample_service
    page = _signed_in(browser, svc, "data_steward")
    page.click("#nav-review")  # the navigation leads to review; review asks why first
    page.wait_for_selector("#purpose-form")
    assert page.locator(".review-item").count() == 0 and page.locator("#message").count() == 0
    _plain_words(page)
    page.screenshot(path=str(shots / "purpose-form.png"), full_page=False)
    page.fill("#purpose", "clerical review")
    page.click("#state-purpose")
    page.wait_for_selector(".review-item")
    assert page.locator("#nav-review").get_attribute("class") == "current"
    _plain_words(page)
    page.screenshot(path=str(shots / "review.png"), full_page=False)
    page.close()


def test_the_citizen_lands_on_their_access_log_and_gives_a_purpose_there(sample_service, browser):
    svc, shots = sample_service
    citizen, _ = _busy_citizen(svc)
    national_id, _born = _citizen_facts(svc, citizen)
    claim = sign_citizen_claim(national_id, load_access(ACCESS).portal_secret)
    page = _signed_in(browser, svc, "citizen_portal", claim=claim)
    assert page.url.endswith(f"/citizens/{citizen}/access-log")  # never "Find a citizen"
    assert page.locator("#purpose-form").is_visible() and page.locator("#nav-search").count() == 0
    _plain_words(page)
    page.fill("#purpose", "citizen inzage")
    page.click("#state-purpose")
    page.wait_for_selector("#access-title")
    assert page.locator("#nav-access-log").count() == 1 and page.locator("#nav-review").count() == 0
    _plain_words(page)
    page.screenshot(path=str(shots / "access-log.png"), full_page=True)
    response = page.goto(f"{svc.url}/search?purpose=curious&name=Jan")  # what the portal may not do: inside the layout
    assert response.status >= 400 and page.locator("#nav").count() == 1 and page.locator("#back-to-start").count() == 1
    page.close()


def test_search_speaks_plainly_and_gives_the_date_back_as_typed(sample_service, browser):
    svc, shots = sample_service
    citizen, name = _busy_citizen(svc)
    _national_id, born = _citizen_facts(svc, citizen)
    typed = born.strftime("%d-%m-%Y")
    page = _signed_in(browser, svc, "data_steward")
    page.fill("#purpose", "benefit application check")
    page.fill("#name", name)
    page.fill("#date_of_birth", typed)
    page.click("#search")
    page.wait_for_selector("#results")
    first = page.locator("#results tr.candidate").first
    assert first.locator("td.born").inner_text() == typed  # 10-03-1995 comes back as 10-03-1995
    assert re.match(r"match score \d+ of 100: ", first.locator("td.score").inner_text())
    assert first.locator("a.name-link").inner_text() == name
    _plain_words(page)
    page.screenshot(path=str(shots / "search.png"), full_page=True)
    first.locator("a.name-link").click()  # the name opens the profile
    page.wait_for_selector("#golden")
    assert page.locator("#citizen-id").inner_text() == citizen
    assert page.locator("#field-national_id td").first.inner_text() == "National ID number"
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # each agency's record too
    assert page.locator("details.record dt").count() > 0
    _plain_words(page)
    page.goto(f"{svc.url}/search?name=Jan&date_of_birth=31-31-1980")  # a refusal: in the form, in plain words
    assert "Date of birth" in page.locator("#date_of_birth-error").inner_text() or "date of birth" in (
        page.locator("#date_of_birth-error").inner_text()
    )
    _plain_words(page)
    response = page.goto(f"{svc.url}/citizens/CV-AAAA-AAAA-AAAA/nothing")  # a wrong address: the layout, a way back
    assert response.status == 404 and page.locator("#back-to-start").count() == 1
    _plain_words(page)
    page.screenshot(path=str(shots / "not-found.png"), full_page=False)
    page.close()


def _deployment(svc, tmp_path, lang: str):
    """The sample's served view copied and served as a deployment in `lang` (as `serving.language` writes it), its
    sources labelled in that language too (a deployment names its own agencies)."""
    copy = tmp_path / "wh" / "cv" / "serving"
    shutil.copytree(svc.warehouse.parent / svc.warehouse.stem / "serving", copy)
    con = duckdb.connect(str(current_view(copy)))
    try:
        con.execute("UPDATE view_info SET language = ?", [lang])
        con.execute("UPDATE source_labels SET label = ? || ' ' || source", [{"nl": "Dienst", "no": "Etat"}[lang]])
    finally:
        con.close()
    return start_service(tmp_path / "wh" / "cv.duckdb", tmp_path / "audit" / "access.jsonl")


def _english_fragments(lang: str) -> set[str]:
    """Every English wording of the vocabulary that `lang` words differently: each phrase's text between its
    placeholders, less what is also a word of `lang`'s own vocabulary (Dutch "of" is a Dutch word too)."""
    theirs = " ".join(v for catalogue in words.CATALOGUES for v in catalogue[lang].values())
    found = set()
    for catalogue in words.CATALOGUES:
        for key, english in catalogue["en"].items():
            if catalogue[lang][key] == english:
                continue
            for part in re.split(r"\{[^}]*\}", english):
                part = re.sub(r"^\W+|\W+$", "", part)
                if re.search(r"[A-Za-z]{2}", part) and not re.search(rf"(?<!\w){re.escape(part)}(?!\w)", theirs):
                    found.add(part)
    return found


def _speaks(page, lang: str) -> None:
    """The page's text (title and body, every record opened) holds no English wording of the vocabulary; what the
    deployment names itself (the access file's organisations, the labels of the sources' own columns), the values of
    those columns as the source wrote them (a permit's status "pending") and commands to type (`<code>`) are left
    out."""
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    page.evaluate("document.querySelectorAll('code, dd.attribute').forEach(e => e.style.display = 'none')")
    text = page.title() + "\n" + page.locator("body").inner_text()
    page.evaluate("document.querySelectorAll('code, dd.attribute').forEach(e => e.style.display = '')")
    configured = [u.organisation for u in load_access(ACCESS).users]
    configured += [a.label for s in load_sources(SAMPLE).sources for a in s.attributes.values()]
    for name in sorted(configured, key=len, reverse=True):
        text = text.replace(name, "")
    english = sorted(f for f in _english_fragments(lang) if re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text))
    assert not english, (page.url, english)


def test_a_dutch_deployment_speaks_dutch_on_every_page(sample_service, browser, tmp_path):
    """`serving.language: nl` as the pipeline writes it into the view: every page's words, labels and dates in Dutch."""
    svc, shots = sample_service
    citizen, name = _busy_citizen(svc)
    national_id, born = _citizen_facts(svc, citizen)
    dutch = _deployment(svc, tmp_path, "nl")
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(dutch.url + "/")
        _speaks(page, "nl")  # the sign-in page
        page.close()
        page = _signed_in(browser, dutch, "data_steward", f"/citizens/{citizen}")
        assert page.locator("h1").inner_text() == "Waarom kijkt u?" and page.locator("#purpose-form").is_visible()
        _speaks(page, "nl")  # the purpose form
        page.fill("#purpose", "controle uitkering")
        page.click("#state-purpose")
        page.wait_for_selector("#golden")
        assert page.locator("#field-date_of_birth td").first.inner_text() == "Geboortedatum"
        assert page.locator("#field-national_id td").first.inner_text() == "Identificatienummer"
        assert re.fullmatch(r"\d{2}-\d{2}-\d{4}", page.locator("#person-born").inner_text())
        assert page.locator("#nav-search").inner_text() == "Zoek een burger"
        _plain_words(page)
        _speaks(page, "nl")  # the profile
        page.screenshot(path=str(shots / "profile-nl.png"), full_page=False)
        page.goto(dutch.url + "/search")
        page.fill("#name", name)
        page.fill("#date_of_birth", born.strftime("%d-%m-%Y"))
        page.click("#search")
        page.wait_for_selector("#results tr.candidate")
        _speaks(page, "nl")  # search with results
        page.goto(dutch.url + "/review?purpose=beoordeling")
        page.wait_for_selector(".review-item")
        _speaks(page, "nl")  # review with items
        page.locator(".review-item").first.locator("input[name=reason]").fill("zelfde adres, andere mensen")
        page.locator(".review-item").first.locator("button[value=different]").click()
        page.wait_for_selector("#recorded")
        _speaks(page, "nl")  # a decision's confirmation
        response = page.goto(f"{dutch.url}/citizens/CV-AAAA-AAAA-AAAA/nothing")
        assert response.status == 404
        _speaks(page, "nl")  # an error page
        page.close()
        claim = sign_citizen_claim(national_id, load_access(ACCESS).portal_secret)
        page = _signed_in(browser, dutch, "citizen_portal", f"/citizens/{citizen}/access-log?purpose=inzage", claim)
        page.wait_for_selector("#looks tr.look")
        _speaks(page, "nl")  # the citizen's access log, the steward's look in it
        page.screenshot(path=str(shots / "access-log-nl.png"), full_page=True)
        response = page.goto(f"{dutch.url}/search?purpose=nieuwsgierig&name=Jan")
        assert response.status == 403
        _speaks(page, "nl")  # a refusal's message
        page.close()
    finally:
        dutch.stop()


def test_a_norwegian_deployment_speaks_norwegian(sample_service, browser, tmp_path):
    svc, shots = sample_service
    citizen, _name = _busy_citizen(svc)
    norwegian = _deployment(svc, tmp_path, "no")
    try:
        page = _signed_in(browser, norwegian, "data_steward", f"/citizens/{citizen}?purpose=kontroll")
        page.wait_for_selector("#golden")
        assert page.locator("#field-date_of_birth td").first.inner_text() == "Fødselsdato"
        _speaks(page, "no")
        page.screenshot(path=str(shots / "profile-no.png"), full_page=False)
        page.goto(norwegian.url + "/review?purpose=kontroll")
        page.wait_for_selector(".review-item")
        _speaks(page, "no")
        page.close()
    finally:
        norwegian.stop()
