"""The one door to linkage: `Linkage` runs the chain on ingested extracts, keeps run IDs as data, and explains a pair."""

from __future__ import annotations

import pytest

from citizen_view.linkage import Linkage
from citizen_view.linkage.evaluate import evaluate_links, load_truth
from tests.conftest import collected_chain


@pytest.fixture(scope="module")
def linked(generated, tmp_path_factory):
    """The generated set ingested without Dagster and linked through the facade: (connection, chain, first run)."""
    with collected_chain(generated, tmp_path_factory.mktemp("facade")) as (con, chain):
        run = chain.run(run_id="nightly 'o''brien'; --")  # a run ID is data, whatever characters it holds
        yield con, chain, run


def test_the_chain_links_golden_records_and_keeps_the_run_id_as_given(linked, generated):
    con, _, run = linked
    assert {r[0] for r in con.execute("SELECT DISTINCT run_id FROM citizen_source_link").fetchall()} == {
        "nightly 'o''brien'; --"
    }
    assert con.execute("SELECT DISTINCT run_id FROM citizen_id_history").fetchall() == [("nightly 'o''brien'; --",)]
    assert run.golden.citizens == run.link.citizens == con.execute("SELECT count(*) FROM citizen").fetchall()[0][0]
    links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    figures = evaluate_links(links, load_truth(generated / "truth"))
    assert figures["precision"] >= 0.99 and figures["recall"] >= 0.95, figures


def test_update_links_nothing_new_and_explain_reads_the_saved_model(linked):
    con, chain, _ = linked
    link, golden = chain.update(run_id="late")
    assert link.incremental and link.new_records == 0 and golden.citizens == link.citizens
    left, right = con.execute(
        "SELECT record_key_l, record_key_r FROM match_edges ORDER BY match_weight DESC, record_key_l LIMIT 1"
    ).fetchall()[0]
    explanation = chain.explain(left, right)
    assert explanation.linked and explanation.match_weight >= explanation.threshold


def test_steps_that_need_the_sources_file_say_so(linked):
    con, chain, _ = linked
    with pytest.raises(ValueError, match="needs the sources file"):
        Linkage(con, chain.layout).golden()
