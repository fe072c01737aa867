"""Trust: review input is data and never a crash, forms resist cross-site posts, every response is audited,
the client address cannot be forged, and two warehouses in one folder share nothing."""

from __future__ import annotations

import html
import json
import re
import socket

import duckdb
import httpx
import pytest
import yaml

from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.review import load_overrides, read_decisions, record_decision
from citizen_view.serving.access import hash_token
from citizen_view.serving.audit import FileSink
from citizen_view_app.cli import main
from citizen_view_app.runner import run_pipeline
from tests.conftest import citizen_of_records, linked_copy
from tests.service_fixtures import ACCESS, TOKENS, running_service

STEWARD = {"Authorization": f"Bearer {TOKENS['data_steward']}"}
PURPOSE = {"purpose": "trust check"}


@pytest.fixture(scope="module")
def linked(linked_world, tmp_path_factory):
    return linked_copy(linked_world, tmp_path_factory, "trust")


def _pair(wh) -> tuple[str, str]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(
            "SELECT record_key_l, record_key_r FROM match_edges ORDER BY match_weight LIMIT 1"
        ).fetchall()[0]
    finally:
        con.close()


def _entries(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]


# --- review input ------------------------------------------------------------------------------------------


def test_a_reason_with_line_separators_is_stored_as_one_line_and_read_back(linked, tmp_path):
    root, wh = linked
    left, right = _pair(wh)
    path = tmp_path / "decisions.jsonl"
    record_decision(path, left=left, right=right, decision="different", reviewer="r", reason="one\u2028two\u0085three")
    assert path.read_bytes().count(b"\n") == 1 and b"\\u2028" in path.read_bytes()
    # a line an older version wrote unescaped, and a broken one: read tolerantly, never fatal
    with path.open("a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "record_key_l": left,
                    "record_key_r": right + "x",
                    "decision": "same",
                    "reviewer": "r",
                    "role": None,
                    "reason": "a\u2028b",
                    "decided_at": "2026-01-01T00:00:00Z",
                },
                ensure_ascii=False,
            )
            + "\n"
        )
        f.write("{not json\n")
    rows, bad = read_decisions(path)
    assert [r["reason"] for r in rows] == ["one\u2028two\u0085three", "a\u2028b"] and bad == [3]
    assert load_overrides(path).height == 2


def test_the_service_and_the_next_run_survive_a_reason_with_u2028(linked):
    root, wh = linked
    left, right = _pair(wh)
    with running_service(wh, root / "u2028-audit.jsonl") as svc:
        form = {
            "left": left,
            "right": right,
            "decision": "unsure",
            "reason": "looks\u2028odd",
            "purpose": "clerical review",
        }
        assert httpx.post(svc.url + "/review/decide", data=form, headers=STEWARD).status_code == 303
        assert httpx.get(svc.url + "/review", params={"purpose": "clerical review"}, headers=STEWARD).status_code == 200
    assert main(["review", "next", "--warehouse", str(wh)]) == 0
    outcome = run_pipeline(sources_path=root / "data/sources.yaml", warehouse_path=wh)
    assert outcome.success and not outcome.failed


def test_decisions_on_records_that_do_not_exist_are_refused(linked, capsys):
    root, wh = linked
    with running_service(wh, root / "unknown-audit.jsonl") as svc:
        form = {
            "left": "tax:NOPE",
            "right": "population:NOPE2",
            "decision": "same",
            "reason": "typo",
            "purpose": "clerical review",
        }
        r = httpx.post(svc.url + "/review/decide", data=form, headers=STEWARD)
        assert r.status_code == 422 and "no record" in r.json()["error"]
    assert (
        main(
            [
                "review",
                "decide",
                "tax:NOPE",
                "population:NOPE2",
                "same",
                "--reason",
                "x",
                "--warehouse",
                str(wh),
                "--audit-log",
                str(root / "cli-audit.jsonl"),
            ]
        )
        == 2
    )
    assert "no record tax:NOPE, population:NOPE2" in capsys.readouterr().err
    assert not any(
        d["record_key_r"].endswith("NOPE2") for d in read_decisions(WarehouseLayout.of(wh).overrides_file)[0]
    )


def test_the_review_form_refuses_cross_site_posts(linked):
    root, wh = linked
    left, right = _pair(wh)
    with running_service(wh, root / "csrf-audit.jsonl") as svc:
        with httpx.Client(base_url=svc.url) as browser:
            assert browser.post("/login", data={"token": TOKENS["data_steward"]}).status_code == 303
            page = browser.get("/review", params={"purpose": "clerical review"})
            token = page.text.split('name="csrf" value="')[1].split('"')[0]
            assert len(token) == 64
            form = {
                "left": left,
                "right": right,
                "decision": "unsure",
                "reason": "checked",
                "purpose": "clerical review",
            }
            # another site's page posting with the victim's cookie: refused by origin, and without the token
            r = browser.post("/review/decide", data={**form, "csrf": token}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403
            assert browser.post("/review/decide", data=form).status_code == 403
            assert browser.post("/review/decide", data={**form, "csrf": "0" * 64}).status_code == 403
            ok = browser.post("/review/decide", data={**form, "csrf": token}, headers={"Origin": svc.url})
            assert ok.status_code == 303
    refused = [e for e in _entries(root / "csrf-audit.jsonl") if e["status"] == 403]
    assert len(refused) == 3 and all(e["action"] == "refused:review_decision" for e in refused)


# --- review scoped like every other look ---------------------------------------------------------------------


def _scoped_reviewer_access(tmp_path, sources: list[str], fields: list[str] | None = None):
    """The demo access file plus a reviewer who may see only `sources` (and `fields`; default: every field)."""
    config = yaml.safe_load(ACCESS.read_text(encoding="utf-8"))
    config["roles"]["scoped_reviewer"] = {
        "sources": sources,
        "fields": fields or list(config["roles"]["data_steward"]["fields"]),
        "reviewer": True,
    }
    config["users"].append(
        {
            "name": "rita.review",
            "organisation": "Licence Register (test)",
            "role": "scoped_reviewer",
            "token_sha256": hash_token("scoped-reviewer-token"),
        }
    )
    path = tmp_path / "access.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_a_reviewer_sees_and_decides_only_items_of_its_sources(linked, tmp_path):
    root, wh = linked
    with duckdb.connect(str(wh), read_only=True) as con:
        items, members = (
            con.execute(query).fetchall()
            for query in (
                "SELECT item_id, record_key_l, record_key_r, citizen_id, kind FROM review_queue ORDER BY item_id",
                "SELECT citizen_id, list(DISTINCT split_part(record_key, ':', 1)) FROM citizen_source_link GROUP BY 1",
            )
        )
    citizen_of = citizen_of_records(wh)
    source = lambda key: key.split(":", 1)[0]  # noqa: E731
    # two sources that some item lies within, and a third that others reach into
    l_key, r_key = next((l, r) for _, l, r, _, _ in items if source(l) != source(r))
    visible = sorted({source(l_key), source(r_key)})
    sources_of = dict(members)
    expected = {  # within its sources: the pair's records, and every record of the citizens they belong to
        i
        for i, l, r, c, _ in items
        if {source(l), source(r)} <= set(visible)
        and (c is None or set(sources_of[c]) <= set(visible))
        and all(set(sources_of[citizen_of[k]]) <= set(visible) for k in (l, r))
    }
    outside = [(l, r) for i, l, r, _, _ in items if i not in expected]
    assert expected and outside, (visible, items)
    with running_service(
        wh, root / "scoped-review-audit.jsonl", access_file=_scoped_reviewer_access(tmp_path, visible)
    ) as svc:
        with httpx.Client(base_url=svc.url) as browser:
            assert browser.post("/login", data={"token": "scoped-reviewer-token"}).status_code == 303
            shown, page_no, pages = set(), 1, 1
            while page_no <= pages:
                page = browser.get("/review", params={"purpose": "clerical review", "page": page_no})
                assert page.status_code == 200
                shown |= set(re.findall(r'data-item="([^"]+)"', html.unescape(page.text)))
                pages = int(m.group(1)) if (m := re.search(r"page \d+ of (\d+)", page.text)) else 1
                page_no += 1
            assert shown == expected
            csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
            hidden_key = next(k for pair in outside for k in pair if source(k) not in visible)
            # two of its own records that no item pairs (third red-team pass: a refusal for queued pairs only told
            # the role which of its records' citizens reach into hidden sources); every such decision is refused alike
            queued = {(l, r) for _, l, r, _, _ in items}
            own = sorted(k for k in citizen_of if source(k) in visible)
            unqueued = next((a, b) for a, b in zip(own, own[1:]) if (a, b) not in queued and (b, a) not in queued)
            for left, right in [
                outside[0],
                (hidden_key, f"{source(hidden_key)}:OTHER"),  # two records of a hidden source
                unqueued,
            ]:
                form = {
                    "left": left,
                    "right": right,
                    "decision": "same",
                    "reason": "r",
                    "purpose": "clerical review",
                    "csrf": csrf,
                }
                refused = browser.post("/review/decide", data=form)
                assert refused.status_code == 403, (left, right)
                assert "may decide only on the items its review page lists" in html.unescape(refused.text), refused.text
    entries = _entries(root / "scoped-review-audit.jsonl")
    looks = [e for e in entries if e["action"] == "review" and e["status"] == 200]
    listed = {c for e in looks for c in e["citizen_ids"]}
    keys = {k for e in looks for k in e["query"]["record_keys"].split(",") if k}
    assert keys == {k for i, l, r, _, _ in items if i in expected for k in (l, r)}
    assert listed >= {citizen_of[k] for k in keys} and listed
    refused = [e for e in entries if e["action"] == "refused:review_decision"]
    assert [e["status"] for e in refused] == [403, 403, 403] and all(e["user"] == "rita.review" for e in refused)


def test_a_comparison_is_visible_only_with_every_field_it_reads():
    """Red team: the address comparison also compares the city; a reviewer without `city` was let in."""
    from citizen_view.serving.access import GRANTABLE_FIELDS, Role
    from citizen_view.serving.review_items import compares_visible

    every = Role(sources=["population"], fields=list(GRANTABLE_FIELDS))
    no_city = Role(sources=["population"], fields=[f for f in GRANTABLE_FIELDS if f != "city"])
    for comparison in ("address", "tf_adj_address"):
        assert compares_visible(comparison, every) and not compares_visible(comparison, no_city)
    assert compares_visible("given_name", no_city) and compares_visible("tf_adj_given_name", no_city)
    assert not compares_visible("national_id", Role(sources=["population"], fields=["given_name"]))


def test_a_reviewer_who_may_not_see_a_compared_field_may_not_review(linked, tmp_path):
    """Red team: a reviewer seeing only names was shown each link's total weight beside the name weights, so the gap
    told whether the hidden birth dates and IDs agreed. A reviewer weighs all of a link's evidence: a role that may not
    see a field the links compare is refused the queue and the decision (403, audited), saying which fields."""
    root, wh = linked
    with duckdb.connect(str(wh), read_only=True) as con:
        left, right = con.execute("SELECT record_key_l, record_key_r FROM review_queue LIMIT 1").fetchall()[0]
    names_only = ["given_name", "family_name", "full_name"]
    access = _scoped_reviewer_access(tmp_path, ["population", "tax", "benefits", "permits", "licences"], names_only)
    audit = root / "names-review-audit.jsonl"
    with running_service(wh, audit, access_file=access) as svc:
        with httpx.Client(base_url=svc.url) as browser:
            assert browser.post("/login", data={"token": "scoped-reviewer-token"}).status_code == 303
            page = browser.get("/review", params={"purpose": "clerical review"})
            assert page.status_code == 403
            for field in ("date_of_birth", "national_id", "address"):
                assert field in html.unescape(page.text), page.text
            form = {"left": left, "right": right, "decision": "same", "reason": "r", "purpose": "clerical review"}
            decided = browser.post("/review/decide", data=form, headers={"Origin": svc.url})
            assert decided.status_code == 403 and "may not review links" in html.unescape(decided.text)
    refused = [e for e in _entries(audit) if e["status"] == 403]
    assert {e["action"] for e in refused} == {"refused:review", "refused:review_decision"}
    assert all(e["user"] == "rita.review" and e["citizen_ids"] == [] for e in refused)


@pytest.mark.parametrize(
    "target,kept",
    [
        ("/citizens/CV-AAAA-BBBB-CCCC?purpose=x", True),
        ("/search", True),
        ("/\t/evil.example/x", False),  # a browser drops the tab: //evil.example/x
        ("/\n/evil.example", False),
        ("/\\evil.example", False),  # a backslash is a slash to a browser
        ("//evil.example", False),
        ("https://evil.example/", False),
        ("/ /x", False),
        ("/\u2028x", False),
        ("", False),
        ("/" + "a" * 200, False),
    ],
)
def test_the_purpose_form_goes_on_only_to_a_page_of_this_service(target, kept):
    from citizen_view.serving.routes.pages import local_page

    assert (local_page(target) == target) is kept and (kept or local_page(target) is None)


def test_the_purpose_form_of_a_crafted_link_posts_to_this_service(linked):
    """Red team: `/purpose?next=/%09/evil.example/x` made the form post the purpose to another site."""
    root, wh = linked
    with running_service(wh, root / "next-audit.jsonl") as svc:
        with httpx.Client(base_url=svc.url) as browser:
            assert browser.post("/login", data={"token": TOKENS["data_steward"]}).status_code == 303
            for crafted in ("/%09/evil.example/x", "/%5Cevil.example", "%2F%2Fevil.example"):
                page = browser.get(f"/purpose?next={crafted}")
                assert page.status_code == 200 and 'action="/start"' in page.text, (crafted, page.text)
            page = browser.get("/purpose?next=/search")
            assert 'action="/search"' in page.text


# --- every response audited, with the real client address ---------------------------------------------------


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    chunks = []
    with socket.create_connection((host, int(port)), timeout=10) as s:
        try:
            s.sendall(request)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the server answered early and closed: read what it sent
            pass
    return b"".join(chunks)


def test_requests_refused_by_the_server_itself_and_crashes_are_audited(linked):
    root, wh = linked
    audit = root / "server-audit.jsonl"
    with running_service(wh, audit) as svc:
        huge = _raw_request(svc.url, b"GET /api/search?name=" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert huge.split(b" ", 2)[1] in (b"400", b"414", b"422", b"431")
        garbage = _raw_request(svc.url, b"NOT HTTP AT ALL\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400")
        # a served view that is not a database: the request fails inside the service
        serving = WarehouseLayout.of(wh).serving_dir
        pointer = (serving / "CURRENT").read_text()
        (serving / "broken.duckdb").write_bytes(b"this is not a database")
        (serving / "CURRENT").write_text("broken.duckdb\n")
        try:
            r = httpx.get(svc.url + "/api/search", params={"national_id": "123456782", **PURPOSE}, headers=STEWARD)
        finally:
            (serving / "CURRENT").write_text(pointer)
        assert r.status_code == 500 and "Traceback" not in r.text
    statuses = [(e["status"], e["action"]) for e in _entries(audit)]
    assert (400, "refused:unreadable_request") in statuses
    assert (
        any(s in (400, 414, 422, 431) for s, a in statuses if a != "refused:unreadable_request")
        or statuses.count((400, "refused:unreadable_request")) >= 2
    )
    assert (500, "refused:search") in statuses


def test_every_response_is_audited_with_its_caller_health_websocket_and_router_refusals_too(linked):
    root, wh = linked
    audit = root / "every-audit.jsonl"
    with running_service(wh, audit) as svc:
        with httpx.Client(base_url=svc.url, headers=STEWARD) as client:
            assert client.get("/health").status_code == 200
            assert client.get("/no/such/page").status_code == 404
            assert client.post("/api/search", params=PURPOSE).status_code == 405
            assert client.get("/api/citizens/not-an-id", params=PURPOSE).status_code == 422
        upgrade = _raw_request(
            svc.url,
            (
                "GET /ws?x=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {TOKENS['data_steward']}\r\n\r\n"
            ).encode(),
        )
        assert upgrade.startswith(b"HTTP/1.1 403")
    seen = {(e["query"]["path"], e["status"]): e for e in _entries(audit)}
    for path, status in [
        ("/health", 200),
        ("/no/such/page", 404),
        ("/api/search", 405),
        ("/api/citizens/not-an-id", 422),
        ("/ws", 403),
    ]:
        entry = seen.get((path, status))
        assert entry is not None, (path, status, sorted(seen))
        assert (entry["user"], entry["role"]) == ("sara.steward", "data_steward"), entry
    assert seen["/ws", 403]["action"] == "refused:websocket"


class BreakableSink(FileSink):
    """A second anchor location that can be made to fail, as a full disk or an unmounted share does."""

    broken = False

    def write(self, anchor: dict) -> None:
        if self.broken:
            raise OSError("anchor location unavailable")
        super().write(anchor)


def test_a_failed_anchor_write_is_a_500_on_the_wire_and_in_the_log(linked):
    root, wh = linked
    audit = root / "anchor-fail-audit.jsonl"
    sink = BreakableSink(root / "anchor-fail-sink.jsonl")
    with running_service(wh, audit, anchor_sinks=[sink]) as svc:
        ok = httpx.get(svc.url + "/api/search", params={"national_id": "123456782", **PURPOSE}, headers=STEWARD)
        assert ok.status_code == 200
        sink.broken = True
        # the anchor after this request's entry fails: the entry is durable and says what is sent
        sent = [httpx.get(svc.url + "/api/search", params={"national_id": "123456789", **PURPOSE}, headers=STEWARD)]
        # from then on the head has no anchor: each request is refused before its entry, and audited as 500
        sent.append(httpx.get(svc.url + "/api/search", params={"national_id": "234567890", **PURPOSE}, headers=STEWARD))
        assert sent[-1].status_code == 500 and "Traceback" not in sent[-1].text
        sink.broken = False
        assert httpx.get(svc.url + "/health").status_code == 200  # back once the location is
    for r in sent:
        logged = [
            e["status"] for e in _entries(audit) if e["query"].get("national_id") == r.request.url.params["national_id"]
        ]
        assert logged == [r.status_code], (r.request.url, logged)


def test_a_resolution_whose_audit_entry_cannot_be_written_is_not_taken_in(linked):
    """An incoming record (source and key named) is recorded for the next run only once its resolution's audit entry
    is durable: with the log unable to take entries, the answer is a 500 and nothing is taken in."""
    from citizen_view.linkage.online import read_resolutions, resolutions_file

    root, wh = linked
    audit = root / "resolve-anchor-fail-audit.jsonl"
    sink = BreakableSink(root / "resolve-anchor-fail-sink.jsonl")
    caseworker = {"Authorization": f"Bearer {TOKENS['benefits_caseworker']}"}
    record = {"given_name": "Anna", "family_name": "Unaudited", "date_of_birth": "1980-01-02", "source": "benefits"}
    taken = resolutions_file(WarehouseLayout.of(wh).root)
    with running_service(wh, audit, anchor_sinks=[sink]) as svc:
        ok = httpx.post(
            svc.url + "/api/resolve", params=PURPOSE, json={**record, "source_record_id": "AUD-1"}, headers=caseworker
        )
        assert ok.status_code == 200 and ok.json()["taken_in"], ok.text
        sink.broken = True
        httpx.get(svc.url + "/api/search", params={"national_id": "123456789", **PURPOSE}, headers=STEWARD)
        refused = httpx.post(
            svc.url + "/api/resolve", params=PURPOSE, json={**record, "source_record_id": "AUD-2"}, headers=caseworker
        )
        assert refused.status_code == 500, refused.text
        sink.broken = False
    assert [r["agency_record_id"] for r in read_resolutions(taken)] == ["AUD-1"]
    statuses = [e["status"] for e in _entries(audit) if e["query"].get("path") == "/api/resolve"]
    assert statuses == [200, 500]


def test_oversized_headers_and_bodies_are_refused_early_and_audited(linked):
    root, wh = linked
    audit = root / "size-audit.jsonl"
    with running_service(wh, audit) as svc:
        big_header = _raw_request(svc.url, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        assert big_header.startswith(b"HTTP/1.1 431"), big_header[:100]
        # just over the 32 KiB limit, sent whole in one write: the parser finishes it in one read
        whole = _raw_request(
            svc.url, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\nConnection: close\r\n\r\n"
        )
        assert whole.startswith(b"HTTP/1.1 431"), whole[:100]
        many = b"".join(b"X-H%d: 1\r\n" % i for i in range(500))
        many_headers = _raw_request(svc.url, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert many_headers.startswith(b"HTTP/1.1 431"), many_headers[:100]
        declared = _raw_request(
            svc.url,
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nContent-Length: 50000000\r\nConnection: close\r\n\r\ntoken=x",
        )
        assert declared.startswith(b"HTTP/1.1 413"), declared[:100]
        chunks = b"".join(b"10000\r\n" + b"a" * 0x10000 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
        chunked = _raw_request(
            svc.url,
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks,
        )
        assert chunked.startswith(b"HTTP/1.1 413"), chunked[:100]
        assert httpx.get(svc.url + "/health").status_code == 200  # the server is still answering
    statuses = [(e["status"], e["action"]) for e in _entries(audit)]
    assert statuses.count((431, "refused:oversized_headers")) == 3
    assert statuses.count((413, "refused:oversized_body")) == 2


def test_a_huge_review_page_number_is_a_clear_422(linked):
    root, wh = linked
    with running_service(wh, root / "page-audit.jsonl") as svc:
        for page in ("1000000000000000000", "0", "-1", "x"):
            r = httpx.get(svc.url + "/review", params={"purpose": "clerical review", "page": page}, headers=STEWARD)
            assert r.status_code == 422 and "page must be a whole number from 1 to" in r.json()["error"], (page, r.text)


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(linked):
    root, wh = linked
    forged = {**STEWARD, "X-Forwarded-For": "203.0.113.9"}
    for trusted, expected in [((), "127.0.0.1"), (("127.0.0.1",), "203.0.113.9")]:
        audit = root / f"xff-{len(trusted)}.jsonl"
        with running_service(wh, audit, trusted_proxies=trusted) as svc:
            httpx.get(svc.url + "/api/search", params={"national_id": "123456782", **PURPOSE}, headers=forged)
        assert [e["client"] for e in _entries(audit) if e["action"] == "search"] == [expected]


# --- command line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["publish"],
        ["explain", "a:1", "b:2"],
        ["review", "next"],
        ["evaluate", "--truth", "nowhere"],
        ["audit", "export", "--citizen", "CV-AAAA-BBBB-CCCC"],
        ["audit", "verify"],
    ],
)
def test_commands_on_a_missing_warehouse_or_file_give_one_line_and_exit_2(argv, tmp_path, capsys):
    assert main([*argv, "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_evaluate_with_a_missing_truth_folder_exits_2(linked, tmp_path, capsys):
    _, wh = linked
    assert main(["evaluate", "--truth", str(tmp_path / "nowhere"), "--warehouse", str(wh)]) == 2
    assert "no truth folder" in capsys.readouterr().err


def test_audit_verify_fails_when_the_log_is_gone_but_its_anchors_are_not(linked, tmp_path, capsys):
    root, wh = linked
    log = tmp_path / "audit.jsonl"
    assert (
        main(
            [
                "review",
                "decide",
                *_pair(wh),
                "unsure",
                "--reason",
                "seen",
                "--warehouse",
                str(wh),
                "--audit-log",
                str(log),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["audit", "verify", "--warehouse", str(wh), "--audit-log", str(log)]) == 0
    log.unlink()
    assert main(["audit", "verify", "--warehouse", str(wh), "--audit-log", str(log)]) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_serve_finds_its_access_file_from_any_folder_or_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CITIZEN_VIEW_ACCESS", raising=False)
    wh = tmp_path / "elsewhere" / "cv.duckdb"
    assert main(["serve", "--warehouse", str(wh)]) == 2
    assert "citizen-view init" in capsys.readouterr().err
    assert main(["init", "--warehouse", str(wh)]) == 0
    assert WarehouseLayout.of(wh).access_file.is_file()
    from citizen_view.serving.access import load_access

    assert "data_steward" in load_access(WarehouseLayout.of(wh).access_file).roles


# --- two warehouses in one folder ---------------------------------------------------------------------------


def test_two_warehouses_in_one_folder_share_nothing(generated, tmp_path):
    from citizen_view_synth import generate

    other = tmp_path / "other"
    generate(other, persons=120, seed=99, country="NO")
    a, b = tmp_path / "wh" / "a.duckdb", tmp_path / "wh" / "b.duckdb"
    assert run_pipeline(sources_path=generated / "sources.yaml", warehouse_path=a).success
    la, lb = WarehouseLayout.of(a), WarehouseLayout.of(b)
    left, right = _pair(a)
    record_decision(la.overrides_file, left=left, right=right, decision="different", reviewer="r", reason="a only")
    # leftovers of a crashed run in b's folders are cleaned by b's next run
    for folder in (lb.serving_dir, lb.exports_dir()):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".view-crashed.duckdb.partial").write_bytes(b"half")
    assert run_pipeline(sources_path=other / "sources.yaml", warehouse_path=b).success
    assert la.root != lb.root and not set(la.root.rglob("*")) & set(lb.root.rglob("*"))
    assert la.model_file.read_text() != lb.model_file.read_text()
    con = duckdb.connect(str(b), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM link_overrides").fetchall()[0][0] == 0  # a's decision stays a's
        b_citizens = con.execute("SELECT count(*) FROM citizen").fetchall()[0][0]
    finally:
        con.close()
    assert not list(lb.serving_dir.glob(".*.partial")) and not list(lb.exports_dir().glob(".*.partial"))
    for wh, expected in ((a, None), (b, b_citizens)):
        view = duckdb.connect(
            str(
                WarehouseLayout.of(wh).serving_dir
                / (WarehouseLayout.of(wh).serving_dir / "CURRENT").read_text().strip()
            ),
            read_only=True,
        )
        try:
            served = view.execute("SELECT citizens, country FROM view_info").fetchall()[0]
        finally:
            view.close()
        assert served[1] == ("NO" if wh == b else "NL") and (expected is None or served[0] == expected)
    assert not (tmp_path / "exports").exists() and not (tmp_path / "published").exists()  # nothing outside


def test_a_search_audited_by_its_handler_leaves_one_entry_per_request_with_what_it_returned(linked):
    """A search writes its own entry before its answer leaves (Trail.audit_now); the guard must not write a second."""
    root, wh = linked
    audit = root / "handler-audit.jsonl"
    with running_service(wh, audit) as svc:
        con = duckdb.connect(str(wh), read_only=True)
        held = [
            r[0]
            for r in con.execute("SELECT national_id FROM citizen WHERE national_id IS NOT NULL LIMIT 5").fetchall()
        ]
        con.close()
        ids = [*held, "000000000", "123456789"]  # found, and (most likely) not: each is one entry
        answers = {}
        for nid in ids:
            r = httpx.get(svc.url + "/api/search/national-id", params={"national_id": nid, **PURPOSE}, headers=STEWARD)
            assert r.status_code == 200, r.text
            answers[nid] = [c["citizen_id"] for c in r.json()["candidates"]]
    entries = [e for e in _entries(audit) if e["query"].get("path") == "/api/search/national-id"]
    assert sorted(e["query"]["national_id"] for e in entries) == sorted(ids)  # one each, none twice
    for e in entries:
        assert e["status"] == 200 and e["action"] == "search"
        assert e["citizen_ids"] == answers[e["query"]["national_id"]]
    assert all(answers[nid] for nid in held) and len(held) == 5
    assert main(["audit", "verify", "--audit-log", str(audit), "--warehouse", str(wh)]) == 0
