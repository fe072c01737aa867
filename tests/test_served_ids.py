"""The national IDs each service process holds in memory follow the served view: read for each view it opens, in a
thread of their own (requests meanwhile probe the view, with the same answers), and a failed read leaves the view
served, probed instead."""

from __future__ import annotations

import threading

import duckdb
import httpx
import pytest

from citizen_view.contract import load_sources
from citizen_view.layout import WarehouseLayout
from citizen_view.serving import deps
from citizen_view.serving.deps import ViewStore
from citizen_view.serving.search import search_national_id
from citizen_view.serving.snapshot import publish_view
from citizen_view.warehouse import connect
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


def test_an_id_search_answers_from_the_new_views_ids_after_a_publish(service):
    """A citizen's ID changed in the warehouse: once the new view is published (and its IDs read), the new ID finds
    them and the old one no longer does. A process that kept the earlier view's IDs would answer the opposite."""
    con = duckdb.connect(str(service.warehouse), read_only=True)
    old_id, citizen = con.execute(
        "SELECT r.national_id, l.citizen_id FROM source_records r JOIN citizen_source_link l USING (record_key) "
        "WHERE r.source = 'population' AND r.national_id_valid ORDER BY r.source_record_id LIMIT 1"
    ).fetchall()[0]
    new_id = old_id[::-1]
    assert new_id != old_id
    assert not con.execute(
        "SELECT count(*) FROM source_records WHERE ? IN (national_id, national_id_text)", [new_id]
    ).fetchall()[0][0]
    con.close()
    before = _views(service).served()
    assert before.switched.wait(30) and before.info.ids is not None  # the earlier view's IDs are in memory
    assert _exact(service, old_id) == [citizen] and _exact(service, new_id) == []

    with connect(service.warehouse) as con:
        con.execute(
            "UPDATE source_records SET national_id = CASE WHEN national_id = $1 THEN $2 ELSE national_id END, "
            "national_id_text = CASE WHEN national_id_text = $1 THEN $2 ELSE national_id_text END "
            "WHERE $1 IN (national_id, national_id_text)",
            [old_id, new_id],
        )
        sources = load_sources(service.warehouse.parent.parent / "data" / "sources.yaml")
        publish_view(con, sources, WarehouseLayout.of(service.warehouse).serving_dir, run_id="new-ids")
    assert _exact(service, new_id) == [citizen] and _exact(service, old_id) == []  # meanwhile: probed or held
    after = _views(service).served()
    assert after is not before and after.switched.wait(30) and after.info.ids is not None
    assert _exact(service, new_id) == [citizen] and _exact(service, old_id) == []  # the new view's IDs in memory


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


def test_a_new_view_s_documents_are_loaded_before_it_counts_as_prepared(service, tmp_path):
    """Each process reads its view's citizen documents once when it opens the view (a `ViewStore.on_switch` step
    besides the IDs), so a look at a citizen nobody has looked at yet does not wait for the document's block."""
    import shutil

    from citizen_view.serving.documents import preload

    assert deps.read_documents in ViewStore(WarehouseLayout.of(service.warehouse).serving_dir).on_switch
    view = tmp_path / "view.duckdb"  # a copy: a connection of its own, not the service's buffers
    from citizen_view.serving.snapshot import current_view

    shutil.copy(current_view(WarehouseLayout.of(service.warehouse).serving_dir), view)
    con = duckdb.connect(str(view), read_only=True)
    used = "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'"
    before = con.execute(used).fetchall()[0][0]
    preload(con)
    after = con.execute(used).fetchall()[0][0]
    blocks = con.execute(
        "SELECT count(DISTINCT block_id) FROM pragma_storage_info('citizen_docs') WHERE column_name = 'doc' "
        "AND block_id >= 0"
    ).fetchall()[0][0]
    con.close()
    assert blocks >= 1 and after - before >= blocks * 256 * 1024 * 0.9, (before, after, blocks)
