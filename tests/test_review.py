"""Clerical review: decisions are stored with who, when and why, and every later run applies them."""

from __future__ import annotations

import json

import duckdb
import httpx
import polars as pl
import pytest

from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.clusters import cluster_records
from citizen_view.linkage.review import load_overrides
from citizen_view_app.cli import main
from citizen_view_app.runner import run_pipeline
from tests.conftest import citizen_of_records, linked_copy
from tests.service_fixtures import TOKENS, running_service


def test_reviewer_decisions_win_over_the_model_in_clustering():
    records = pl.DataFrame(
        [("a", None, None, None), ("b", None, None, None), ("c", None, None, None), ("d", None, None, None)],
        schema=["record_key", "national_id", "national_id_valid", "dob"],
        orient="row",
    )
    edges = pl.DataFrame(
        [("a", "b", 20.0), ("b", "c", 18.0)], schema=["record_key_l", "record_key_r", "match_weight"], orient="row"
    )
    plain = cluster_records(records, edges, threshold=5.0)
    assert plain.labels.filter(pl.col("record_key").is_in(["a", "c"]))["cluster"].n_unique() == 1
    reviewed = cluster_records(records, edges, threshold=5.0, same=[("c", "d")], different=[("a", "c")])
    label = dict(zip(reviewed.labels["record_key"], reviewed.labels["cluster"]))
    assert label["a"] != label["c"]  # never together, even through b
    assert label["c"] == label["d"]  # linked although the model never scored them


@pytest.fixture(scope="module")
def reviewed(linked_world, tmp_path_factory):
    return linked_copy(linked_world, tmp_path_factory, "review")


def test_decisions_split_and_merge_and_survive_full_rebuilds(reviewed, capsys):
    root, wh = reviewed
    con = duckdb.connect(str(wh), read_only=True)
    linked = con.execute(
        """
        SELECT a.record_key, b.record_key FROM citizen_source_link a JOIN citizen_source_link b
          ON a.citizen_id = b.citizen_id AND a.source = 'population' AND b.source = 'tax' ORDER BY 1 LIMIT 1
        """
    ).fetchall()[0]
    apart = con.execute(
        """
        SELECT e.record_key_l, e.record_key_r FROM match_edges e
        JOIN citizen_source_link a ON a.record_key = e.record_key_l JOIN citizen_source_link b ON b.record_key = e.record_key_r
        WHERE a.citizen_id <> b.citizen_id AND a.citizen_record_count = 1 AND b.citizen_record_count = 1
        ORDER BY e.match_weight DESC LIMIT 1
        """
    ).fetchall()[0]
    con.close()
    args = ["--warehouse", str(wh), "--audit-log", str(root / "audit.jsonl")]
    assert (
        main(
            [
                "review",
                "decide",
                linked[0],
                linked[1],
                "different",
                "--reason",
                "twin, checked the paper file",
                "--reviewer",
                "ria",
                *args,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "review",
                "decide",
                apart[0],
                apart[1],
                "same",
                "--reason",
                "same person per birth certificate",
                "--reviewer",
                "ria",
                *args,
            ]
        )
        == 0
    )
    decisions = load_overrides(WarehouseLayout.of(wh).overrides_file)
    assert set(decisions["reviewer"]) == {"ria"} and set(decisions["decision"]) == {"different", "same"}
    for _ in range(2):  # decisions hold on the next full run, and the one after
        assert run_pipeline(sources_path=root / "data/sources.yaml", warehouse_path=wh).success
        links = citizen_of_records(wh)
        assert links[linked[0]] != links[linked[1]]
        assert links[apart[0]] == links[apart[1]]
    con = duckdb.connect(str(wh), read_only=True)
    queued = {r[0] for r in con.execute("SELECT item_id FROM review_queue").fetchall()}
    overrides = con.execute("SELECT count(*) FROM link_overrides").fetchall()[0][0]
    con.close()
    assert f"{min(linked)} ~ {max(linked)}" not in queued and overrides == 2
    audit = [json.loads(x) for x in (root / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["action"] for e in audit] == ["review_decision", "review_decision"]
    assert main(["review", "next", "--warehouse", str(wh)]) == 0
    assert "decide with: citizen-view review decide" in capsys.readouterr().out


def test_a_decision_needs_a_reason_and_a_known_verdict(reviewed, capsys):
    root, wh = reviewed
    assert (
        main(
            [
                "review",
                "decide",
                "tax:T1",
                "tax:T2",
                "same",
                "--warehouse",
                str(wh),
                "--audit-log",
                str(root / "a2.jsonl"),
            ]
        )
        == 2
    )
    assert "needs a reason" in capsys.readouterr().err


def test_the_review_page_is_for_reviewers_and_records_decisions(reviewed):
    root, wh = reviewed
    with running_service(wh, root / "page-audit.jsonl") as svc:
        steward = {"Authorization": f"Bearer {TOKENS['data_steward']}"}
        clerk = {"Authorization": f"Bearer {TOKENS['permits_clerk']}"}
        assert httpx.get(svc.url + "/review", params={"purpose": "clerical review"}, headers=clerk).status_code == 403
        page = httpx.get(svc.url + "/review", params={"purpose": "clerical review"}, headers=steward)
        assert page.status_code == 200 and "review-item" in page.text
        con = duckdb.connect(str(svc.warehouse), read_only=True)
        left, right = con.execute(
            "SELECT record_key_l, record_key_r FROM review_queue WHERE kind = 'uncertain link' LIMIT 1"
        ).fetchall()[0]
        con.close()
        form = {
            "left": left,
            "right": right,
            "decision": "unsure",
            "reason": "cannot tell from the records",
            "purpose": "clerical review",
        }
        r = httpx.post(svc.url + "/review/decide", data=form, headers=steward)
        assert r.status_code == 303
        latest = load_overrides(WarehouseLayout.of(wh).overrides_file).filter(
            (pl.col("record_key_l") == min(left, right)) & (pl.col("record_key_r") == max(left, right))
        )
        assert latest["decision"].to_list() == ["unsure"] and latest["reviewer"].to_list() == ["sara.steward"]
        assert httpx.post(svc.url + "/review/decide", data={**form, "reason": " "}, headers=steward).status_code == 422
    entries = [json.loads(x) for x in (root / "page-audit.jsonl").read_text(encoding="utf-8").splitlines()]
    decided = [e for e in entries if e["action"] == "review_decision"]
    assert decided and decided[0]["query"]["decision"] == "unsure" and decided[0]["user"] == "sara.steward"
    # a decision is audited with its purpose, as a look is, and with the citizens it is about (their access logs)
    assert decided[0]["purpose"] == "clerical review"
    con = duckdb.connect(str(wh), read_only=True)
    citizens = sorted(
        {
            r[0]
            for r in con.execute(
                "SELECT citizen_id FROM citizen_source_link WHERE record_key IN (?, ?)", [left, right]
            ).fetchall()
        }
    )
    con.close()
    assert citizens and decided[0]["citizen_ids"] == citizens
    assert any(e["action"] == "refused:review" and e["status"] == 403 for e in entries)


def test_a_pair_below_the_threshold_is_never_called_linked():
    """Issue 21.4: weight 3.34 under threshold 3.38 in one citizen is linked through others, not by the model."""
    from citizen_view.linkage.review import PairDecision, describe_pair, pair_decision

    assert pair_decision(3.34, 3.38, same_citizen=True) is PairDecision.THROUGH_OTHERS
    assert pair_decision(3.38, 3.38, same_citizen=True) is PairDecision.LINKED
    assert pair_decision(9.0, 3.38, same_citizen=False) is PairDecision.KEPT_APART
    assert pair_decision(3.34, 3.38, same_citizen=False) is PairDecision.NOT_LINKED
    text = describe_pair(3.34, 3.38, same_citizen=True)
    assert text.startswith("in one citizen through other records") and "below the threshold +3.38" in text


def test_review_queue_next_and_explain_say_the_same_of_a_pair(reviewed, capsys):
    from citizen_view.linkage.review import describe_pair

    root, wh = reviewed
    con = duckdb.connect(str(wh), read_only=True)
    try:
        threshold = con.execute("SELECT threshold_weight FROM linkage_threshold").fetchall()[0][0]
        rows = con.execute(
            """
            SELECT q.model_decision, q.match_weight, a.citizen_id = b.citizen_id FROM review_queue q
            JOIN citizen_source_link a ON a.record_key = q.record_key_l JOIN citizen_source_link b ON b.record_key = q.record_key_r
            WHERE q.kind = 'uncertain link'
            """
        ).fetchall()
    finally:
        con.close()
    assert rows, "the sample queues uncertain pairs"
    for said, weight, same in rows:
        assert said == describe_pair(weight, threshold, same_citizen=same)
    assert main(["review", "next", "--kind", "uncertain link", "--warehouse", str(wh)]) == 0
    out = capsys.readouterr().out
    queue_line = next(line for line in out.splitlines() if line.startswith("  model: "))
    explain_line = next(line for line in out.splitlines()[::-1] if line.startswith("  model: "))
    assert queue_line.split("; ")[0] == explain_line
