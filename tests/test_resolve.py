"""One record online (`POST /api/resolve`): standardised as ingest does, scored as Splink scores, answered from the
served view, refused and audited like a search, and taken in by the next pipeline run."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import random
import shutil

import duckdb
import httpx
import polars as pl
import pytest

from citizen_view.canonical import Rules, canonical_records
from citizen_view.contract import CANONICAL_FIELDS, QualityConfig, SourceConfig
from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.gamma import comparison_levels, gammas
from citizen_view.linkage.incoming import standardise_one
from citizen_view.linkage.online import INPUT_COLUMNS, read_resolutions, resolutions_file, scorer
from citizen_view.serving.documents import ViewInfo
from citizen_view.serving.resolve import SHOWN_FIELDS
from citizen_view.serving.snapshot import current_view
from citizen_view_app.runner import run_pipeline
from tests.service_fixtures import TOKENS, serve_pipeline_output

PURPOSE = {"purpose": "benefit application check"}
FIELDS = ("given_name", "family_name", "date_of_birth", "national_id", "street", "house_number", "postcode", "city")
RECORDS = [
    {
        "given_name": "Jan Pieter",
        "family_name": "van der Berg",
        "date_of_birth": "1980-02-03",
        "national_id": "12345678",
    },
    {"full_name": "DE VRIES, Anna", "date_of_birth": "1980-02-30", "postcode": "1234 ab", "house_number": "4"},
    {"full_name": "Kari Nordmann", "date_of_birth": "1850-01-01", "sex": "vrouw", "phone": "06 1234 5678"},
    {"given_name": "  Åse ", "family_name": "Ødegård", "email": "ASE@X.NO", "national_id": "111222333", "sex": "x"},
    {"family_name": "Müller", "street": "Hauptstraße", "city": "Zürich", "postcode": "80-99", "phone": "+4712345678"},
    # what ingest's reader takes and Python's strptime does not; a valid ID in fullwidth digits (invalid at ingest)
    {"family_name": "Jansen", "date_of_birth": "1964-03-20T00:00", "national_id": "１１１２２２３３３"},
    {"family_name": "Jansen", "date_of_birth": "+1964-03-20"},
]


def test_one_record_is_standardised_as_ingest_standardises_a_source():
    source = SourceConfig(name="t", path="-", format="jsonl", fields={f: {"column": f} for f in CANONICAL_FIELDS})
    rules = Rules.of(source, country="NL", quality=QualityConfig(), today=dt.date(2026, 1, 1))
    frame = pl.DataFrame(
        {
            **{f: [r.get(f) for r in RECORDS] for f in CANONICAL_FIELDS},
            "_rid": [str(i) for i in range(len(RECORDS))],
            "_file": ["-"] * len(RECORDS),
            "_line": list(range(len(RECORDS))),
            "_extracted_at": [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)] * len(RECORDS),
        },
        schema_overrides={f: pl.String for f in CANONICAL_FIELDS},
    )
    expected, issues = canonical_records(frame, source, rules=rules, data_columns=list(CANONICAL_FIELDS))
    for i, record in enumerate(RECORDS):
        got, set_aside = standardise_one(
            record, country="NL", id_scheme=rules.id_scheme, earliest=rules.earliest_date, latest=rules.latest_date
        )
        want = expected.row(i, named=True)
        assert {k: want[k] for k in got} == got, record
        found = issues.filter(pl.col("row") == i).select("field", "raw", "reason").rows()
        assert sorted((s["field"], s["raw"], s["reason"]) for s in set_aside) == sorted(found), record


@pytest.fixture(scope="module")
def service(generated, tmp_path_factory):
    svc = serve_pipeline_output(generated / "sources.yaml", tmp_path_factory.mktemp("resolve"))
    yield svc
    svc.stop()


def _view(svc) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(current_view(WarehouseLayout.of(svc.warehouse).serving_dir)), read_only=True)


def _population_record(svc, offset: int = 0) -> tuple[dict, str]:
    con = _view(svc)
    try:
        row = con.execute(
            f"SELECT {', '.join(FIELDS)}, citizen_id FROM records WHERE source = 'population' AND national_id IS NOT NULL "
            "AND postcode IS NOT NULL ORDER BY source_record_id LIMIT 1 OFFSET ?",
            [offset],
        ).fetchall()[0]
    finally:
        con.close()
    record = {f: (v.isoformat() if isinstance(v, dt.date) else v) for f, v in zip(FIELDS, row[:-1]) if v is not None}
    return record, row[-1]


def _resolve(svc, record, role="data_steward", params=PURPOSE):
    headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
    return httpx.post(svc.url + "/api/resolve", params=params, json=record, headers=headers, timeout=60)


def _audit(svc) -> list[dict]:
    return [json.loads(line) for line in svc.audit_log.read_text().splitlines()]


def test_the_online_weights_are_the_ones_splink_computes(service):
    from splink import DuckDBAPI
    from splink.internals.realtime import compare_records

    con = _view(service)
    try:
        model_json, records = _model_and_records(con)
        records = random.Random(3).sample(records, 20)
    finally:
        con.close()
    online = scorer(model_json)
    db = DuckDBAPI()
    for left, right in zip(records[:10], records[10:]):
        splink_row = compare_records(left, right, json.loads(model_json), db).as_record_list()[0]
        ours, _fields = online.weights(splink_row)
        assert ours == pytest.approx(splink_row["match_weight"], abs=1e-9)


def _model_and_records(con) -> tuple[str, list[dict]]:
    """(the view's model; its linked records' model inputs with their term frequencies, in the temp table `unpacked`,
    by record key)."""
    model_json = con.execute("SELECT model_json FROM resolve_model").fetchall()[0][0]
    tfs = [name[3:] for name, *_ in con.execute("DESCRIBE resolve_columns").fetchall() if name.startswith("tf_")]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE unpacked AS SELECT {', '.join(['r.* EXCLUDE (rid)', *(f't_{c}.tf AS tf_{c}' for c in tfs)])} "
        "FROM resolve_records r "
        + " ".join(f"LEFT JOIN resolve_tf t_{c} ON t_{c}.tf_key = '{c}' || chr(31) || r.{c}" for c in tfs)
    )
    return model_json, con.sql("SELECT * FROM unpacked ORDER BY record_key").pl().to_dicts()


def test_the_python_levels_are_the_ones_duckdb_computes_with_splinks_sql(service):
    from splink import SettingsCreator

    con = _view(service)
    try:
        model_json, _records = _model_and_records(con)
        settings = SettingsCreator.from_path_or_dict(json.loads(model_json)).get_settings("duckdb")
        sides = ", ".join(f"l.{c} AS {c}_l, r.{c} AS {c}_r" for c in INPUT_COLUMNS)
        near = "l.dob = r.dob OR l.family_name_block = r.family_name_block OR l.postcode = r.postcode"
        found = con.execute(  # pairs alike in some way (every level is reached) and pairs at random
            f"WITH pairs AS (SELECT {sides} FROM unpacked l JOIN unpacked r ON ({near}) "
            f"AND l.record_key < r.record_key USING SAMPLE 6000 ROWS (reservoir, 5) UNION ALL "
            f"SELECT {sides} FROM (FROM unpacked USING SAMPLE 60 ROWS (reservoir, 1)) l "
            f"CROSS JOIN (FROM unpacked USING SAMPLE 60 ROWS (reservoir, 2)) r) "
            f"SELECT *, {', '.join(c._case_statement for c in settings.comparisons)} FROM pairs"
        )
        names = [d[0] for d in found.description]
        rows = [dict(zip(names, r)) for r in found.fetchall()]
    finally:
        con.close()
    levels = comparison_levels(settings)
    reached = set()
    for row in rows:
        ours = gammas(levels, row)
        assert ours == {k: row[k] for k in ours}, row
        reached |= set(ours.items())
    assert len(rows) > 5000
    for comparison in settings.comparisons:  # each comparison reaches several of its levels among the pairs
        name = f"gamma_{comparison.output_column_name}"
        assert len({v for n, v in reached if n == name}) >= 2, name
    assert len(reached) >= 30, sorted(reached)


def _paired_by(con, conditions: list[str]) -> set[str]:
    """The records any of the join `conditions` pairs with the one in `incoming`, on either side."""
    either_side = [f"SELECT r.record_key FROM incoming l JOIN unpacked r ON {c}" for c in conditions]
    either_side += [f"SELECT l.record_key FROM unpacked l JOIN incoming r ON {c}" for c in conditions]
    return {k for (k,) in con.execute(" UNION ".join(either_side)).fetchall()}


def test_the_candidates_are_the_records_the_models_blocking_rules_pair_the_record_with(service):
    from splink import SettingsCreator

    from citizen_view.serving.resolve import _candidates, resolve_model

    con = _view(service)
    try:
        model_json, records = _model_and_records(con)
        m = resolve_model(con, ViewInfo.read(con))
        declared = (
            SettingsCreator.from_path_or_dict(json.loads(model_json))
            .get_settings("duckdb")
            ._blocking_rules_to_generate_predictions
        )
        rules = [r.blocking_rule_sql for r in declared]
        # a rule with a further condition (a household block only for birth dates one error apart) is probed on its
        # equalities alone: more candidates, never fewer
        equalities = [" AND ".join(f"l.{a} = r.{b}" for a, b in r._equi_join_conditions) for r in declared]
        assert equalities != rules  # the model has such rules, so both bounds below are tested
        sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM resolve_records").fetchall()]
        for record in records[:: max(1, len(records) // 40)]:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE incoming AS SELECT * FROM unpacked WHERE record_key = ?",
                [record["record_key"]],
            )
            paired, probed = (_paired_by(con, conditions) for conditions in (rules, equalities))
            got = {c["record_key"] for c in _candidates(m, record, sources)[0]}
            assert got == probed and paired <= got, record
            assert record["record_key"] in got
        by_key = {r["record_key"]: r for r in records}
        found, tfs = _candidates(m, records[0], sources)
        assert tfs == {f"tf_{c}": records[0][f"tf_{c}"] for c in m.tf_columns}  # the record's own frequencies
        for c in found:
            assert c == by_key[c["record_key"]]
        one_source = _candidates(m, records[0], ["population"])[0]
        assert all(c["source"] == "population" for c in one_source)  # only sources the role may see
    finally:
        con.close()


def test_requests_arriving_together_read_the_views_model_once_and_the_others_are_told_to_retry(service):
    import threading

    from citizen_view.serving.resolve import NotReady, resolve_model

    con = _view(service)
    start, found, refused, info = threading.Barrier(8), [], [], ViewInfo.read(con)

    def first_request() -> None:
        cur = con.cursor()  # each request thread has its own cursor, as in the service
        start.wait()
        try:
            found.append(resolve_model(cur, info))
        except NotReady as exc:  # a read under way: told to come back, not parked in a worker thread
            refused.append(exc.retry_after)
        cur.close()

    try:
        threads = [threading.Thread(target=first_request) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        later = resolve_model(con.cursor(), info)
    finally:
        con.close()
    assert len(found) + len(refused) == 8 and found and found[0] is not None and all(r > 0 for r in refused)
    assert all(m is later for m in found)  # one read: every request answered from it, none read it again


def test_a_view_whose_model_cannot_be_read_is_refused_with_retry_after_and_not_read_again_at_once(service, tmp_path):
    from citizen_view.serving import resolve as online
    from citizen_view.serving.resolve import NotReady, resolve_model

    broken = tmp_path / "broken.duckdb"
    shutil.copy(current_view(WarehouseLayout.of(service.warehouse).serving_dir), broken)
    with duckdb.connect(str(broken)) as con:
        con.execute("DROP TABLE resolve_records")
    con = duckdb.connect(str(broken), read_only=True)
    try:
        info = ViewInfo.read(con)
        with pytest.raises(NotReady) as first:
            resolve_model(con, info)
        remembered = online._failed[id(info)]
        with pytest.raises(NotReady) as second:  # within FAILED_FOR: answered from memory, not read again
            resolve_model(con, info)
        assert online._failed[id(info)] == remembered  # a second read would have set a new deadline
    finally:
        con.close()
    assert "could not be read" in str(first.value) and str(second.value) == str(first.value)
    assert 0 < second.value.retry_after <= online.FAILED_FOR


def test_publishing_a_new_view_lets_the_old_views_model_go_once_no_request_uses_it(service, tmp_path):
    import gc
    import shutil
    import weakref

    from citizen_view.serving.deps import ViewStore
    from citizen_view.serving.resolve import NotReady, _models, resolve_model
    from citizen_view.serving.snapshot import switch_to

    served_file = current_view(WarehouseLayout.of(service.warehouse).serving_dir)
    for name in ("view_a.duckdb", "view_b.duckdb"):
        shutil.copy(served_file, tmp_path / name)
    switch_to(tmp_path, "view_a.duckdb")
    views = ViewStore(tmp_path)
    request = views.served()  # a request answering from view A
    old = resolve_model(request.cur, request.info)
    assert old is not None and resolve_model(request.cur, request.info) is old  # read once, kept while A is served
    gone, held = weakref.ref(old), len(_models)
    del old
    switch_to(tmp_path, "view_b.duckdb")  # published: the next request opens view B
    new = views.served()
    assert new.view == "view_b.duckdb"
    gc.collect()
    assert gone() is not None  # the request still answering from A keeps its model: no second read of A
    assert resolve_model(request.cur, request.info) is gone()
    del request
    gc.collect()
    assert gone() is None and len(_models) == held - 1  # A's last request done: its model goes before B's is read
    assert resolve_model(new.cur, new.info) is not None and len(_models) == held
    late = views.served()  # a request that started on B, whose model is not read yet when C is published
    switch_to(tmp_path, "view_a.duckdb")  # C (any other file)
    late_info = ViewInfo.read(late.cur)  # B's model is not in memory for this opened view: it would be read again
    with pytest.raises(NotReady):  # not read beside C's: told to retry, which answers from C
        resolve_model(late.cur, late_info, replaced=lambda: views.current().name != late.view)
    assert id(late_info) not in _models and len(_models) == held


def test_a_value_of_another_kind_is_scored_by_duckdb_not_compared_by_python(service):
    from citizen_view.linkage.gamma import Mismatch
    from citizen_view.serving.resolve import resolve_model, score_candidates

    con = _view(service)
    try:
        _model_json, records = _model_and_records(con)
        m = resolve_model(con, ViewInfo.read(con))
        sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM resolve_records").fetchall()]
        record = next(r for r in records if r["dob"] is not None and r["dob"].isdigit())
        as_text = score_candidates(con, m, dict(record), sources)
        as_number = {**record, "dob": int(record["dob"])}  # Python: 19700101 != '19700101'; DuckDB casts it
        with pytest.raises(Mismatch):
            gammas({"dob": m.levels["date_of_birth"]}, {"dob_l": as_number["dob"], "dob_r": record["dob"]})
        scored = score_candidates(con, m, as_number, sources)
        key = ("record_key_r", "match_weight", "gamma_date_of_birth")
        assert as_text and [[r[k] for k in key] for r in scored] == [[r[k] for k in key] for r in as_text]
    finally:
        con.close()


def test_the_resolve_records_are_the_warehouses_linkage_inputs_of_every_linked_record(service):
    from citizen_view.linkage.records import linkage_input_sql

    con = _view(service)
    try:
        _model_json, records = _model_and_records(con)
    finally:
        con.close()
    warehouse = duckdb.connect(str(service.warehouse), read_only=True)
    try:
        found = warehouse.execute(
            f"SELECT {', '.join(f'i.{c}' for c in INPUT_COLUMNS)}, l.citizen_id "
            f"FROM ({linkage_input_sql(warehouse)}) i JOIN citizen_source_link l USING (record_key)"
        )
        names = [d[0] for d in found.description]
        expected = {row[0]: dict(zip(names, row)) for row in found.fetchall()}
    finally:
        warehouse.close()
    assert len(expected) > 1000
    assert {r["record_key"]: {k: r[k] for k in names} for r in records} == expected


def test_a_model_whose_levels_python_does_not_evaluate_is_scored_by_duckdb_alike(service):
    import dataclasses

    from citizen_view.serving.resolve import resolve_model, score_candidates

    con = _view(service)
    try:
        _model_json, records = _model_and_records(con)
        m = resolve_model(con, ViewInfo.read(con))
        by_sql = dataclasses.replace(m, levels=None)
        sources = [r[0] for r in con.execute("SELECT DISTINCT source FROM resolve_records").fetchall()]
        for record in records[:: max(1, len(records) // 10)]:
            values = {**record, "family_name_std": None, "dob": "19700101"}
            python = score_candidates(con, m, values, sources)
            sql = score_candidates(con, by_sql, values, sources)
            assert python
            key = ("record_key_r", "match_weight", "fields")
            assert [tuple(r[k] for k in key) for r in python] == [tuple(r[k] for k in key) for r in sql]
    finally:
        con.close()


def test_an_existing_records_values_resolve_to_its_citizen_with_evidence_per_field(service):
    record, citizen = _population_record(service)
    answer = _resolve(service, record)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "matched" and body["citizen_id"] == citizen, body
    assert body["match_weight"] >= body["review_band"][1] and 0.5 < body["match_probability"] <= 1
    evidence = {e["field"]: e for e in body["candidates"][0]["evidence"]}
    assert evidence["national_id"]["level"] == "same national ID" and evidence["national_id"]["match_weight"] > 0
    assert evidence["date_of_birth"]["level"] == "same date of birth"
    assert sum(e["match_weight"] for e in evidence.values()) < body["match_weight"] + 60  # weights are the parts
    entry = _audit(service)[-1]
    assert entry["action"] == "resolve" and entry["status"] == 200 and citizen in entry["citizen_ids"]
    assert entry["purpose"] == PURPOSE["purpose"] and "national_id" in entry["fields"]


def test_each_candidate_is_audited_with_only_what_was_shown_of_them_and_the_lookup_with_its_values(service):
    """Red team: a resolve with several candidates logged the union of their fields for each (a citizen's report
    listed a neighbour's email) and not the values looked up, which a search logs as its terms."""
    from citizen_view.audit import citizen_access_report

    for offset in range(60):  # a household's name and address: several candidates
        full, _citizen = _population_record(service, offset=offset)
        probe = {k: full[k] for k in ("family_name", "postcode", "house_number")}
        body = _resolve(service, probe, role="permits_clerk").json()
        if len(body["candidates"]) >= 2:
            break
    else:
        pytest.fail("no address in the sample is shared by two citizens")
    entry = _audit(service)[-1]
    assert entry["action"] == "resolve" and entry["citizen_ids"] == [c["citizen_id"] for c in body["candidates"]]
    for candidate in body["candidates"]:
        shown = {e["field"] for e in candidate["evidence"] if e.get("candidate")}
        expected = {"resolution", *(f for n in shown for f in SHOWN_FIELDS.get(n, (n,)))}
        own = entry["disclosed"][candidate["citizen_id"]]
        assert set(own["fields"]) == expected and own["sources"] == [candidate["record_key"].split(":")[0]]
        report = citizen_access_report(service.audit_log, candidate["citizen_id"])[0]
        assert set(report["fields"]) == expected and report["purpose"] == PURPOSE["purpose"]
    assert {k: v for k, v in entry["query"].items() if k.startswith("record.")} == {
        f"record.{k}": v for k, v in probe.items()
    }
    looked_up = _resolve(service, {"national_id": "820392055"}, role="benefits_caseworker")
    assert looked_up.status_code == 200 and _audit(service)[-1]["query"]["record.national_id"] == "820392055"


def test_a_roles_weights_count_only_the_records_of_its_sources(service):
    """Second red-team pass: the family name's weight followed how many records at every agency carry it (12.2 for
    one, 11.2 for two), so a role learned of records at agencies it may not see. Two names, each on one record the
    benefits role may see, one of them on records of other agencies too: the same weight for that role, different
    weights for a role that sees everything."""
    con = _view(service)
    try:
        rows = con.execute(
            """
            WITH n AS (
                SELECT family_name_std AS f, count(*) FILTER (WHERE source IN ('population', 'benefits')) AS seen,
                       count(*) AS everywhere
                FROM records WHERE family_name_std IS NOT NULL GROUP BY 1
            )
            SELECT r.given_name, r.family_name, r.date_of_birth, n.everywhere FROM records r JOIN n ON n.f = r.family_name_std
            WHERE r.source = 'population' AND n.seen = 1 AND r.date_of_birth IS NOT NULL AND r.given_name IS NOT NULL
            ORDER BY n.everywhere = 1 DESC, r.source_record_id
            """
        ).fetchall()
    finally:
        con.close()
    alone = next(r for r in rows if r[3] == 1)  # only this record carries the name
    shared = next(r for r in rows if r[3] > 1)  # other agencies' records carry it too
    weights = {}
    for role in ("benefits_caseworker", "data_steward"):
        for label, (given, family, born, _) in (("alone", alone), ("shared", shared)):
            record = {"given_name": given, "family_name": family, "date_of_birth": born.isoformat()}
            body = _resolve(service, record, role=role).json()
            evidence = {e["field"]: e for e in body["candidates"][0]["evidence"]}
            weights[role, label] = evidence["family_name"]["match_weight"]
    assert weights["benefits_caseworker", "alone"] == weights["benefits_caseworker", "shared"], weights
    assert weights["data_steward", "alone"] > weights["data_steward", "shared"], weights


def test_a_person_nobody_knows_is_new(service):
    record = {
        "given_name": "Xylofoon",
        "family_name": "Qwertzuiop",
        "date_of_birth": "1911-11-11",
        "postcode": "9999ZZ",
        "house_number": "999",
    }
    body = _resolve(service, record).json()
    assert body["decision"] == "new" and body["citizen_id"] is None, body


def test_a_record_the_model_is_unsure_about_needs_review_and_each_answer_follows_its_weight(service):
    record, _citizen = _population_record(service, offset=3)
    decisions = set()
    for size in (1, 2):
        for fields in itertools.combinations(("given_name", "family_name", "date_of_birth", "postcode"), size):
            body = _resolve(service, {f: record[f] for f in fields if f in record}).json()
            low, high = body["review_band"]
            weights = [c["match_weight"] for c in body["candidates"]]
            competing = [w for w in weights if w >= low]
            needed = 1 / (1 + 2**-high)  # a lone candidate's probability at the upper end
            # the best citizen's probability among the citizens in the band, the record one citizen's at most: the
            # shown ones give an upper bound; citizens not shown (each one record at least, none above the third)
            # add at most `unseen` * 2^w3, and nothing when the third is below the band
            unseen = body["records_compared"] - len(weights) if len(weights) == 3 and weights[2] >= low else 0
            share = (
                [
                    1 / (2 ** -competing[0] + sum(2 ** (w - competing[0]) for w in competing) + extra)
                    for extra in (0, unseen * 2 ** (weights[2] - competing[0]) if unseen else 0)
                ]
                if competing
                else [0.0, 0.0]
            )
            if not competing:
                assert body["decision"] == "new", (fields, body, low, high)
            elif weights[0] < high or share[0] < needed:
                assert body["decision"] == "review", (fields, body["decision"], weights, low, high)
            elif share[1] >= needed:
                assert (body["decision"], body["citizen_id"]) == ("matched", body["candidates"][0]["citizen_id"])
            else:  # only citizens not shown can tip it: they are there, and the answer names none or the best
                assert unseen and body["decision"] in ("matched", "review"), (fields, body["decision"], weights)
            if body["decision"] == "review" and len(competing) > 1:
                assert body["citizen_id"] is None, body
            decisions.add(body["decision"])
    assert "review" in decisions, decisions


def test_a_weak_second_citizen_far_below_the_best_leaves_it_matched_one_near_it_does_not():
    from types import SimpleNamespace

    from citizen_view.serving.resolve import decide

    band = SimpleNamespace(low=1.5, high=4.5)

    def citizens(*weights):
        return [{"citizen_id_r": f"C{i}", "match_weight": w} for i, w in enumerate(weights)]

    assert decide(citizens(50.5, 8.1, -12.9), band)[:2] == ("matched", "C0")  # a namesake far below: matched
    assert decide(citizens(10.3, 2.2), band)[:2] == ("matched", "C0")  # 2^8 to 1 for the best
    assert decide(citizens(13.8, 12.9, 7.6), band)[:2] == ("review", None)  # two close: review, no citizen
    assert decide(citizens(4.6, 1.6), band)[:2] == ("review", None)  # 9 to 1 only: below a lone +4.5's 0.958
    # citizens below the band's lower end do not compete: weak namesakes leave a clear best matched
    assert decide(citizens(5.5, 1.0, 0.5, 0.0, -1.0), band)[:2] == ("matched", "C0")
    assert decide(citizens(4.5, -5.0), band)[:2] == ("matched", "C0")
    assert decide(citizens(8.0, *[1.4] * 40), band)[:2] == ("matched", "C0")
    assert decide(citizens(6.0, *[1.4] * 40), band)[:2] == ("matched", "C0")
    assert decide(citizens(4.4, *[1.4] * 40), band)[:2] == ("review", "C0")  # alone in the band: named
    assert decide(citizens(8.0, 7.0, *[1.4] * 40), band)[:2] == ("review", None)  # two in the band: none named
    decision, citizen, why = decide(citizens(9.0, 4.0, 1.0), band)
    assert (decision, citizen) == ("matched", "C0") and "among the 2 citizens in the band" in why
    for weird in (math.inf, math.nan):  # no finite probability: review, never matched
        assert decide(citizens(weird, 2.0), band)[:2] == ("review", None)
        assert decide(citizens(9.0, weird), band)[0] == "review"
    assert decide(citizens(-math.inf), band)[:2] == ("new", None)
    assert decide(citizens(4.5), band)[:2] == ("matched", "C0")  # a lone candidate: from the upper end on, as before
    assert decide(citizens(4.4), band)[:2] == ("review", "C0")
    assert decide(citizens(3.0, 2.0), band)[:2] == ("review", None)
    assert decide(citizens(1.4, 1.0), band)[:2] == ("new", None)
    assert decide([], band)[:2] == ("new", None)


def test_resolve_is_refused_without_purpose_token_or_role_and_audited(service):
    record, _citizen = _population_record(service)
    cases = [
        (_resolve(service, record, params={}), 400, "data_steward"),
        (_resolve(service, record, role=None), 401, None),
        (_resolve(service, record, role="citizen_portal"), 403, "citizen_portal"),
        (_resolve(service, {**record, "source": "no_such_source"}), 403, "data_steward"),
        # seeing a source is not submitting for it: the steward sees benefits, its `submits` lists none
        (_resolve(service, {**record, "source": "benefits", "source_record_id": "S-1"}), 403, "data_steward"),
        (
            _resolve(service, {**record, "source": "online", "source_record_id": "S-2"}, "benefits_caseworker"),
            403,
            "benefits_caseworker",
        ),
        (
            _resolve(
                service, {"family_name": "   ", "source": "benefits", "source_record_id": "S-3"}, "benefits_caseworker"
            ),
            422,
            "benefits_caseworker",
        ),
    ]
    for response, status, role in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"], response.text
    entries = _audit(service)[-len(cases) :]
    assert [(e["status"], e["role"], e["query"]["path"]) for e in entries] == [
        (status, role, "/api/resolve") for _r, status, role in cases
    ]
    # refused before the route ran (no token, no purpose) like a search is; by the route itself as a resolve
    assert all(e["action"].startswith("refused:") and e["citizen_ids"] == [] for e in entries)
    assert [e["action"] for e in entries[2:]] == ["refused:resolve"] * 5
    assert "its `submits` lists none" in cases[4][0].json()["error"]


def test_the_next_run_takes_in_what_was_resolved(service, generated):
    """A record naming its source and key, submitted by a role whose `submits` lists that source, is taken in by the next
    run under the agency's source and key; sent again with another value, the record changes, its citizen's ID does
    not. A role with `sources: all` sees the records taken in."""
    from citizen_view.serving.access import _sources_of

    layout = WarehouseLayout.of(service.warehouse)
    resolutions_file(layout.root).unlink(missing_ok=True)
    record, citizen = _population_record(service, offset=7)
    role = "benefits_caseworker"
    lookup = _resolve(service, record, role).json()  # no source and key: a lookup, never a record
    first = _resolve(service, {**record, "source": "benefits", "source_record_id": "APP-1"}, role).json()
    body = _resolve(service, {**record, "source": "benefits", "source_record_id": "APP-1"}, role).json()  # again
    assert (lookup["taken_in"], first["taken_in"], body["taken_in"]) == (False, True, True)
    assert body["decision"] == "matched"
    recorded = read_resolutions(resolutions_file(layout.root))
    assert [r["resolution_id"] for r in recorded] == [first["resolution_id"], body["resolution_id"]]
    entry = next(e for e in reversed(_audit(service)) if e["query"].get("resolution_id") == body["resolution_id"])
    assert entry["query"]["taken_in"] == "true"
    stranger = {"given_name": "Quirijn", "family_name": "Zwanenburg-Oyelaran", "date_of_birth": "1931-07-29"}
    newly = _resolve(service, {**stranger, "source": "benefits", "source_record_id": "NEW-1"}, role).json()
    assert newly["decision"] == "new"

    def online_records() -> tuple[dict, dict]:
        outcome = run_pipeline(sources_path=generated / "sources.yaml", warehouse_path=service.warehouse)
        assert outcome.success, outcome.failed
        con = _view(service)
        try:
            taken = dict(
                con.execute("SELECT source_record_id, citizen_id FROM records WHERE source = 'online'").fetchall()
            )
            kept = json.loads(
                con.execute(
                    "SELECT attributes FROM records WHERE source = 'online' AND source_record_id = ?",
                    ["benefits:APP-1"],
                ).fetchall()[0][0]
            )
            assert "online" in _sources_of(con)  # what `sources: all` resolves to
        finally:
            con.close()
        return taken, kept

    taken, kept = online_records()
    newcomer = taken.pop("benefits:NEW-1")  # a citizen of that record alone
    assert taken == {"benefits:APP-1": citizen}  # the latest answer for the key; placed where it was resolved online
    assert kept["decision"] == "matched" and kept["citizen_id"] == citizen and kept["agency_record_id"] == "APP-1"
    assert kept["resolution_id"] == body["resolution_id"]
    # each sent again with a phone number added: the same records, changed; their citizens keep their IDs (the
    # newcomer's too, whose only record it is: its ID was the resolution's, new at every resolution, before)
    again = _resolve(
        service, {**record, "phone": "0612345678", "source": "benefits", "source_record_id": "APP-1"}, role
    )
    assert again.status_code == 200, again.text
    _resolve(service, {**stranger, "phone": "0612345679", "source": "benefits", "source_record_id": "NEW-1"}, role)
    taken, kept = online_records()
    assert taken == {"benefits:APP-1": citizen, "benefits:NEW-1": newcomer}
    assert kept["resolution_id"] == again.json()["resolution_id"]


def test_a_roles_golden_record_in_memory_is_the_warehouses_survivorship(service):
    from citizen_view.linkage.golden import golden_select
    from citizen_view.serving.access import EXAMPLE_ACCESS_FILE, load_access
    from citizen_view.serving.profile import golden_for_role

    con = _view(service)
    try:
        served = [r[0] for r in con.execute("SELECT DISTINCT source FROM records").fetchall()]
        ids = [r[0] for r in con.execute("SELECT citizen_id FROM citizen ORDER BY citizen_id LIMIT 200").fetchall()]
        for name in ("data_steward", "benefits_caseworker", "permits_clerk"):
            role = load_access(EXAMPLE_ACCESS_FILE).roles[name].for_view(served)
            before = "_seen AS (SELECT * FROM records WHERE list_contains($sources, source) AND list_contains($ids, citizen_id))"
            select = golden_select("_seen", "source_rank", before=before, stand_ins="golden_stand_ins")
            cur = con.execute(select, {"sources": role.sources, "ids": ids})
            names = [d[0] for d in cur.description]
            by_sql = {row[0]: dict(zip(names, row)) for row in cur.fetchall()}
            assert by_sql, name
            assert golden_for_role(con, ids, role) == by_sql, name
    finally:
        con.close()


def test_a_view_without_linked_records_resolves_every_record_as_new(service, tmp_path):
    import shutil
    from types import SimpleNamespace

    from citizen_view.serving.resolve import resolve, resolve_model

    record, _citizen = _population_record(service)
    empty = tmp_path / "empty.duckdb"
    shutil.copy(current_view(WarehouseLayout.of(service.warehouse).serving_dir), empty)
    with duckdb.connect(str(empty)) as con:
        con.execute("DELETE FROM resolve_keys")
        con.execute("DELETE FROM resolve_records")
    con = duckdb.connect(str(empty), read_only=True)  # as the service opens a view
    try:
        m = resolve_model(con, ViewInfo.read(con))
        assert m is not None and len(m.index.numbers) == 0 and len(m.index.source_codes) == 0
        role = SimpleNamespace(sources=["population"], sees=lambda _field: True)
        answer = resolve(con, m, record, role)
    finally:
        con.close()
    assert (answer["decision"], answer["citizen_id"], answer["records_compared"]) == ("new", None, 0), answer


def test_records_packed_as_json_by_an_older_view_are_read_with_their_types_bound():
    from citizen_view.serving.resolve_index import ResolveIndex
    from citizen_view.serving.resolve_view import RECORD_NUMBER

    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE resolve_columns (source VARCHAR, family_name VARCHAR, dob DATE, tf_family_name DOUBLE)"
        )
        con.execute(f"CREATE TABLE resolve_records ({RECORD_NUMBER} BIGINT, inputs VARCHAR)")
        rows = [(2, {"source": "b", "family_name": "it's", "dob": "1980-02-03"}), (1, {"source": "a"})]
        con.executemany("INSERT INTO resolve_records VALUES (?, ?)", [(n, json.dumps(r)) for n, r in rows])
        con.execute(f"CREATE TABLE resolve_keys (key_hash UBIGINT, {RECORD_NUMBER} BIGINT)")
        con.execute("INSERT INTO resolve_keys VALUES (7, 2), (3, 1)")
        index = ResolveIndex.read(con)
    finally:
        con.close()
    assert index.records_of(index.record_numbers([7, 3]), {"a", "b"}, 10) == [
        {"source": "a", "family_name": None, "dob": None},
        {"source": "b", "family_name": "it's", "dob": dt.date(1980, 2, 3)},
    ]


def test_keys_sorted_up_to_an_appended_tail_are_merged_as_a_whole_sort_orders_them():
    import numpy as np

    from citizen_view.serving.resolve_index import sorted_keys

    rng = np.random.default_rng(7)
    for head, tail in ((0, 9), (1, 0), (50, 0), (50, 1), (50, 13), (3, 40), (200, 200)):
        # a sorted table with holes (the stale rows deleted), then the keys of new records appended, some sharing
        # hashes with kept ones; numbers beside each key, new records numbered after the rest
        kept = np.sort(rng.integers(0, 60, head, dtype=np.uint64))
        hashes = np.concatenate([kept, rng.integers(0, 60, tail, dtype=np.uint64)])
        records = np.concatenate([np.arange(1, head + 1), np.arange(1000, 1000 + tail)]).astype(np.uint32)
        got_h, got_r = sorted_keys(hashes, records)
        order = np.lexsort((records, hashes))  # the order a whole sort by (hash, number) gives
        assert got_h.tolist() == hashes[order].tolist(), (head, tail)
        assert sorted(zip(got_h.tolist(), got_r.tolist())) == sorted(zip(hashes.tolist(), records.tolist()))
        for h in set(hashes.tolist()):  # each hash finds the records it finds after a whole sort
            at = got_h == h
            assert sorted(got_r[at].tolist()) == sorted(records[hashes == h].tolist())


def test_over_the_cap_the_records_most_keys_find_are_compared_whatever_their_numbers():
    """Red team (stop 44): 2,100 records sharing one phone number, and a new one with that phone: an updated view
    numbers the new record after the rest, and the first 2,000 by number left it out (its own record, a match in a
    full publish, came out `new`). Candidates over the cap are now taken by how many of the record's keys found them,
    then by their key, never by the view's numbering."""
    import numpy as np
    import pyarrow as pa

    from citizen_view.serving.resolve_index import ResolveIndex

    keys = [f"benefits:{i}" for i in range(1, 8)]

    def index(numbers: list[int]) -> ResolveIndex:  # record i gets number numbers[i]; every record shares key 100,
        # the last one also has its own key 200 (its ID)
        by_number = sorted(zip(numbers, keys))
        pairs = sorted([(100, n) for n in numbers] + [(200, numbers[-1])])
        records = pa.table({"record_key": [k for _, k in by_number], "source": ["benefits"] * len(keys)})
        order = np.array([abs(hash(k)) % 1000 for _, k in by_number], dtype=np.uint64)  # any number of the key
        return ResolveIndex(
            np.array([h for h, _ in pairs], dtype=np.uint64),
            np.array([n for _, n in pairs]),
            np.array(sorted(numbers)),
            records,
            ("benefits",),
            np.zeros(len(keys), dtype=np.int32),
            order,
        )

    as_published, as_updated = index([1, 2, 3, 4, 5, 6, 7]), index([9, 3, 12, 4, 6, 2, 20])  # the ID's record last
    for limit in (1, 3, 7):
        picked = [
            [r["record_key"] for r in ix.records_of(ix.record_numbers([100, 200]), {"benefits"}, limit)]
            for ix in (as_published, as_updated)
        ]
        assert picked[0] == picked[1] and len(picked[0]) == limit
        assert picked[0][0] == "benefits:7"  # found by both keys: first, though numbered last
    assert as_published.records_of(as_published.record_numbers([100]), {"tax"}, 5) == []  # another role's sources


def test_after_a_publish_resolve_answers_from_the_new_view_and_a_request_during_its_read_is_told_to_retry(service):
    from concurrent.futures import ThreadPoolExecutor

    from citizen_view.serving.snapshot import switch_to

    folder = WarehouseLayout.of(service.warehouse).serving_dir
    old = current_view(folder)
    record, citizen = _population_record(service)
    assert _resolve(service, record).json()["view"] == old.name
    new = f"view-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S-%f}-republished.duckdb"
    shutil.copy(old, folder / new)  # the same content under a new name: a publication
    switch_to(folder, new)
    with ThreadPoolExecutor(8) as pool:  # the first resolves after the publish: one reads the new view's model
        first = list(pool.map(lambda _: _resolve(service, record), range(8)))
    refused = [r for r in first if r.status_code == 503]
    assert all(r.status_code == 200 for r in first if r not in refused), [r.text for r in first]
    assert all(int(r.headers["Retry-After"]) > 0 and "being read" in r.json()["error"] for r in refused)
    answers = [r.json() for r in first if r.status_code == 200] + [_resolve(service, record).json()]
    assert all((a["view"], a["decision"], a["citizen_id"]) == (new, "matched", citizen) for a in answers), answers
    entries = [e for e in _audit(service) if e["query"]["path"] == "/api/resolve"][-9:]
    assert sorted(e["status"] for e in entries) == sorted([r.status_code for r in first] + [200])
    assert all(e["action"] == "refused:resolve" for e in entries if e["status"] == 503)


def test_each_resolve_record_has_its_own_number_and_every_key_names_one_of_them(service):
    con = _view(service)
    try:
        numbers, distinct, smallest = con.execute(
            "SELECT count(*), count(DISTINCT rid), min(rid) FROM resolve_records"
        ).fetchall()[0]
        orphans = con.execute("SELECT count(*) FROM resolve_keys ANTI JOIN resolve_records USING (rid)").fetchone()[0]
        keyed = con.execute("SELECT count(DISTINCT rid) FROM resolve_keys").fetchone()[0]
    finally:
        con.close()
    assert numbers > 1000 and distinct == numbers and smallest >= 1
    assert orphans == 0 and 0 < keyed <= numbers  # a record with no key's values has no key (none in this sample)
