"""The national IDs each service process holds in memory follow the served view: read for each view it opens, in a
thread of their own (requests meanwhile probe the view, with the same answers), and a failed read leaves the view
served, probed instead."""

from __future__ import annotations

import threading

import httpx
import pytest

from citizen_view.layout import WarehouseLayout
from citizen_view.serving import deps
from citizen_view.serving.deps import ViewStore
from citizen_view.serving.search import search_national_id
from tests.service_fixtures import TOKENS, serve_linked_world

PURPOSE = {"purpose": "benefit application check"}


@pytest.fixture(scope="module")
def service(linked_world, tmp_path_factory):
    svc = serve_linked_world(linked_world, tmp_path_factory.mktemp("served_ids"))
    yield svc
    svc.stop()


def _views(service) -> ViewStore:
    return service.server.config.app.state.parts.views


def _exact(service, national_id: str) -> list[str]:
    r = httpx.get(
        f"{service.url}/api/search",
        params={**PURPOSE, "national_id": national_id},
        headers={"Authorization": f"Bearer {TOKENS['data_steward']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return [c["citizen_id"] for c in r.json()["candidates"] if "same national ID" in c["reasons"]]


def test_a_failed_id_read_leaves_the_view_served_and_probed(service, monkeypatch):
    """An error reading the IDs (memory, DuckDB) is logged once: the view stays open and ID searches probe it."""

    def fail(_con):
        raise MemoryError("no room for the IDs")

    monkeypatch.setattr(deps.IdIndex, "read", fail)
    store = ViewStore(WarehouseLayout.of(service.warehouse).serving_dir)
    served = store.served()
    assert served.switched.wait(30) and served.info.ids is None
    assert store.served() is served  # not opened (and read) again by the next request
    national_id, citizen = served.cur.execute("SELECT national_id, citizen_id FROM search_ids LIMIT 1").fetchall()[0]
    found = search_national_id(served.cur, national_id, country=served.info.country, sources=[], ids=None)
    assert found == []  # no source visible: nothing
    sources = [s for (s,) in served.cur.execute("SELECT DISTINCT source FROM search_ids").fetchall()]
    found = search_national_id(served.cur, national_id, country=served.info.country, sources=sources)
    assert citizen in [c.citizen_id for c in found]


def test_requests_are_answered_while_a_new_view_is_still_prepared(service):
    """What `on_switch` prepares runs outside the store's lock: a request does not wait for it."""
    release = threading.Event()
    store = ViewStore(WarehouseLayout.of(service.warehouse).serving_dir)
    store.on_switch.append(lambda _served: release.wait(30))
    try:
        served = store.served()
        answered: list[object] = []
        other = threading.Thread(target=lambda: answered.append(store.served()))
        other.start()
        other.join(timeout=10)
        assert answered == [served] and not served.switched.is_set()
        assert served.cur.execute("SELECT count(*) FROM search_ids").fetchall()[0][0] > 0
    finally:
        release.set()
    assert served.switched.wait(30) and served.info.ids is not None
