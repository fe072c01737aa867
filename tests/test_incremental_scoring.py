"""The incremental path scores new records exactly as a full run does, while only the old records they can meet
cross to Splink, and re-forms the same clusters."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator

from citizen_view.contract import LinkType
from citizen_view.linkage.incremental import candidates_sql
from citizen_view.linkage.model import block, names_swapped_rule, rule_sql
from tests.conftest import collected_chain

RULES = [block(("dob", "postcode")), names_swapped_rule(), block(("national_id",), LinkType.LINK_ONLY)]


def _model(rules) -> dict:
    return {
        "sql_dialect": "duckdb",
        "comparisons": [],
        "blocking_rules_to_generate_predictions": [
            to_blocking_rule_creator(r).create_blocking_rule_dict("duckdb") for r in rules
        ],
    }


def test_candidates_are_the_old_records_some_rule_pairs_with_a_new_one_in_either_orientation():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE recs (record_key VARCHAR, source VARCHAR, dob VARCHAR, postcode VARCHAR, national_id VARCHAR, "
        "first_name_std VARCHAR, family_name_std VARCHAR)"
    )
    rows = [
        ("n1", "tax", "19800101", "1011AB", "111", "anna", "jansen"),
        ("n2", "tax", "19900202", None, "222", "piet", "bakker"),
        ("o1", "pop", "19800101", "1011AB", None, "x", "y"),  # same dob + postcode as n1
        ("o2", "pop", "19800101", "9999ZZ", None, "x", "y"),  # same dob only: no rule
        ("o3", "pop", None, None, None, "jansen", "anna"),  # n1's names swapped
        ("o4", "pop", None, None, "222", "q", "r"),  # n2's ID from another source
        ("o5", "tax", None, None, "222", "q", "r"),  # n2's ID, same source: the link-only rule refuses it
        ("o6", "pop", None, None, None, "bakker", "piet"),  # n2 swapped
        ("o7", "pop", None, None, None, "anna", "jansen"),  # n1's names as written: the swapped rule does not pair them
    ]
    con.executemany("INSERT INTO recs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute("CREATE TABLE new AS SELECT * FROM recs WHERE record_key LIKE 'n%'")
    con.execute("CREATE TABLE old AS SELECT * FROM recs WHERE record_key LIKE 'o%'")
    sql = candidates_sql(_model(RULES), "new", "old")
    found = {r[0] for r in con.execute(sql).fetchall()}
    # exactly what the rules' SQL pairs, new on either side (the source filter is left to Splink: a superset is safe)
    paired = set()
    for rule in RULES:
        cond = rule_sql(rule)
        for a, b in (("n", "o"), ("o", "n")):
            q = "SELECT o.record_key FROM new n, old o WHERE " + cond.replace("l.", f"{a}.").replace("r.", f"{b}.")
            paired |= {r[0] for r in con.execute(q.replace('"', "")).fetchall()}
    assert {"o1", "o3", "o4", "o6"} <= found
    assert paired <= found <= paired | {"o5"}
    assert "o2" not in found and "o7" not in found


def test_a_rule_without_an_equality_makes_every_old_record_a_candidate():
    from splink.blocking_rule_library import CustomRule

    rule = CustomRule("levenshtein(l.dob, r.dob) <= 1", sql_dialect="duckdb")
    assert candidates_sql(_model([block(("dob",)), rule]), "new", "old") is None


@pytest.fixture(scope="module")
def chain(generated, tmp_path_factory):
    with collected_chain(generated, tmp_path_factory.mktemp("incremental_scoring")) as (con, chain):
        chain.run(run_id="full")
        yield con, chain


def _edges(con, table: str, keys: str) -> pl.DataFrame:
    return con.sql(
        f"SELECT least(record_key_l, record_key_r) a, greatest(record_key_l, record_key_r) b, match_weight FROM {table} "
        f"WHERE record_key_l IN (SELECT record_key FROM {keys}) OR record_key_r IN (SELECT record_key FROM {keys}) "
        "ORDER BY a, b"
    ).pl()


def test_late_records_get_the_full_runs_scored_pairs_and_citizens(chain):
    con, linkage = chain
    con.execute(
        "CREATE TEMP TABLE _held AS SELECT record_key FROM source_records WHERE source = 'tax' "
        "ORDER BY record_key DESC LIMIT 30"
    )
    con.execute("CREATE TEMP TABLE _full_edges AS SELECT * FROM match_edges")
    con.execute("CREATE TEMP TABLE _full_links AS SELECT record_key, citizen_id FROM citizen_source_link")
    queue = (
        "SELECT item_id, kind, record_key_l, record_key_r, citizen_id, round(match_weight, 9) AS w, "
        "round(match_probability, 9) AS p, model_decision, reason, priority, status, "
        # each pair's per-field weights (the update fetches them for its uncertain pairs alone)
        "json_keys(evidence) AS fields, list_transform(json_keys(evidence), "
        "lambda k: round(json_extract(evidence, '$.\"' || k || '\"')::DOUBLE, 9)) AS field_weights FROM {} ORDER BY ALL"
    )
    con.execute("CREATE TEMP TABLE _full_queue AS SELECT * FROM review_queue")
    con.execute("DELETE FROM citizen_source_link WHERE record_key IN (SELECT record_key FROM _held)")
    con.execute(
        "DELETE FROM match_edges WHERE record_key_l IN (SELECT record_key FROM _held) "
        "OR record_key_r IN (SELECT record_key FROM _held)"
    )
    link, _ = linkage.update(run_id="late")
    assert link.incremental and link.new_records == 30

    # the same pairs with the same weights: term frequencies over all records, the same saved model
    full, incremental = _edges(con, "_full_edges", "_held"), _edges(con, "match_edges", "_held")
    assert full.height > 30
    assert full.select("a", "b").equals(incremental.select("a", "b"))
    assert (full["match_weight"] - incremental["match_weight"]).abs().max() < 1e-9
    # and each pair in the orientation the full run scored it (some levels compare left with right, not both ways)
    oriented = "SELECT record_key_l, record_key_r FROM {} WHERE record_key_l IN (SELECT record_key FROM _held) "
    oriented += "OR record_key_r IN (SELECT record_key FROM _held) ORDER BY 1, 2"
    assert (
        con.execute(oriented.format("_full_edges")).fetchall() == con.execute(oriented.format("match_edges")).fetchall()
    )

    # only the old records that share a blocking key with a late one were scored
    candidates = con.execute("SELECT count(*) FROM _linkage_candidates").fetchall()[0][0]
    records = con.execute("SELECT count(*) FROM source_records").fetchall()[0][0]
    assert 0 < candidates < 0.25 * records

    # every late record sits with the same records as in the full run
    def together(table: str) -> set[tuple[str, str]]:
        rows = con.execute(
            f"SELECT h.record_key, o.record_key FROM {table} h JOIN {table} o USING (citizen_id) "
            "WHERE h.record_key IN (SELECT record_key FROM _held) AND h.record_key <> o.record_key"
        ).fetchall()
        return set(rows)

    assert together("citizen_source_link") == together("_full_links")
    # and the review queue is the full run's: the late records' uncertain pairs and citizens, everyone else's as they were
    assert con.sql(queue.format("review_queue")).pl().equals(con.sql(queue.format("_full_queue")).pl())
    assert con.execute("SELECT count(*) FROM _full_queue").fetchall()[0][0] > 0
    assert con.execute("SELECT count(*) FROM review_queue WHERE evidence LIKE '%.%'").fetchall()[0][0] > 0
    # and the golden rows the update rebuilt (golden_frame, in Polars) are those the full run's SQL gives the citizens
    rebuilt, differing = _golden_against_sql(con, linkage.sources)
    assert rebuilt > 0 and differing == 0


def _golden_against_sql(con, sources) -> tuple[int, int]:
    """(citizens the last update rebuilt, how many of their `citizen` rows differ from golden_select's over all links)."""
    from citizen_view.linkage.golden import STAND_INS, golden_select, rank_rows

    con.execute("CREATE OR REPLACE TEMP TABLE _ranks (grp VARCHAR, source VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO _ranks VALUES (?, ?, ?)", rank_rows(sources))
    linked = "_linked AS (SELECT l.citizen_id, r.* FROM citizen_source_link l JOIN source_records r USING (record_key))"
    stand_ins = STAND_INS if con.execute(f"SELECT count(*) FROM {STAND_INS}").fetchall()[0][0] else None
    select = golden_select("_linked", "_ranks", before=linked, stand_ins=stand_ins)
    by_sql = f"SELECT * FROM ({select}) SEMI JOIN linkage_changes USING (citizen_id)"
    rebuilt = "SELECT * FROM citizen SEMI JOIN linkage_changes USING (citizen_id)"
    differing = f"SELECT count(*) FROM (({by_sql}) EXCEPT ({rebuilt}) UNION ALL (({rebuilt}) EXCEPT ({by_sql})))"
    return con.execute(f"SELECT count(*) FROM ({rebuilt})").fetchall()[0][0], con.execute(differing).fetchall()[0][0]


def test_the_linkage_input_of_a_few_records_is_what_every_records_input_gives_them(chain):
    from citizen_view.linkage.records import linkage_input_sql

    con, _ = chain
    some = "record_key IN (SELECT record_key FROM source_records WHERE source = 'tax' ORDER BY record_key LIMIT 40)"
    picked_after = con.sql(f"SELECT * FROM ({linkage_input_sql(con)}) WHERE {some} ORDER BY record_key").pl()
    picked_first = con.sql(f"SELECT * FROM ({linkage_input_sql(con, where=some)}) ORDER BY record_key").pl()
    assert picked_first.height == 40 and picked_first.equals(picked_after)


def test_the_scoring_sql_is_kept_with_the_model_and_only_for_that_model(chain):
    import json

    from citizen_view.linkage import new_pairs
    from citizen_view.linkage.scoring import EDGE_FLOOR_WEIGHT
    from citizen_view.linkage.steps import saved_model

    con, _ = chain
    model = saved_model(con)
    assert new_pairs.is_stored(con, model, floor=EDGE_FLOOR_WEIGHT)  # kept when the model was saved
    kept = new_pairs.scoring_pipeline(con, model, floor=EDGE_FLOOR_WEIGHT)
    generated = new_pairs._pipeline(json.dumps(model, sort_keys=True), EDGE_FLOOR_WEIGHT)
    assert json.dumps(kept) == json.dumps(generated) and kept[2]  # Splink's predict steps, as Splink writes them now
    assert all(isinstance(step, tuple) for step in kept[2])
    other = {**model, "probability_two_random_records_match": model["probability_two_random_records_match"] / 2}
    assert not new_pairs.is_stored(con, other, floor=EDGE_FLOOR_WEIGHT)  # another model's SQL is never served
    assert not new_pairs.is_stored(con, model, floor=EDGE_FLOOR_WEIGHT - 1)


def test_the_key_index_finds_the_candidates_and_counts_that_reading_every_record_finds(chain):
    from citizen_view.linkage import key_index
    from citizen_view.linkage.new_pairs import term_frequency_sql
    from citizen_view.linkage.records import linkage_input_sql
    from citizen_view.linkage.steps import saved_model

    con, _ = chain
    model = saved_model(con)
    assert key_index.is_current(con, model)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _every AS {linkage_input_sql(con, digest=True)}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _some AS SELECT * FROM _every WHERE source = 'permits' ORDER BY record_key LIMIT 25"
    )
    by_index = {r[0] for r in con.execute(key_index.candidates_sql(model, "_some")).fetchall()}  # key hashes
    by_join = {
        r[0]
        for r in con.execute(f"SELECT hash(record_key) FROM ({candidates_sql(model, '_some', '_every')})").fetchall()
    }
    assert by_join and by_index == by_join
    counted = con.sql(term_frequency_sql(model, "_every", "_some") + " ORDER BY record_key").pl()
    looked_up = con.sql(key_index.term_frequency_sql(model, "_some") + " ORDER BY record_key").pl()
    assert counted.equals(looked_up)

    # records gone (their counts taken back) and arriving again (counted again): the same numbers
    before = con.sql("SELECT column_name, value, sum(n) AS n FROM linkage_tf GROUP BY ALL ORDER BY ALL").pl()
    con.execute("CREATE OR REPLACE TEMP TABLE _gone AS SELECT record_key FROM _some")
    key_index.forget(con, model, "_gone")
    assert con.execute("SELECT count(*) FROM linkage_keys SEMI JOIN _gone USING (record_key)").fetchall()[0][0] == 0
    assert not con.sql(key_index.term_frequency_sql(model, "_some")).pl().equals(looked_up)
    # a value only the gone records held is no longer kept at all (its +1 and -1 rows go together)
    emptied = "SELECT count(*) FROM (SELECT column_name, value FROM linkage_tf GROUP BY ALL HAVING sum(n) = 0)"
    assert con.execute(emptied).fetchall()[0][0] == 0
    kept = con.sql("SELECT column_name, value FROM linkage_tf WHERE value IS NOT NULL GROUP BY ALL").pl()
    only_theirs = before.filter(pl.col("value").is_not_null()).join(kept, on=["column_name", "value"], how="anti")
    assert only_theirs.height > 0 and [int(n) for n in only_theirs.get_column("n")] == [1] * only_theirs.height
    key_index.sync(con, model, "_some", None)
    after = con.sql("SELECT column_name, value, sum(n) AS n FROM linkage_tf GROUP BY ALL ORDER BY ALL").pl()
    assert before.equals(after)
    assert con.sql(key_index.term_frequency_sql(model, "_some") + " ORDER BY record_key").pl().equals(looked_up)


def test_after_an_update_each_record_keeps_one_component_the_same_as_all_links_give(chain):
    from citizen_view.linkage import components

    con, linkage = chain
    linkage.update(run_id="again")  # nothing new: the components stay as the late records' update left them

    def partition() -> set[frozenset[str]]:
        rows = con.execute("SELECT list(record_key) FROM linkage_components GROUP BY component").fetchall()
        return {frozenset(r[0]) for r in rows}

    kept = con.execute("SELECT count(*), count(DISTINCT record_key) FROM linkage_components").fetchall()[0]
    linked = con.execute("SELECT count(*) FROM citizen_source_link").fetchall()[0][0]
    assert kept == (linked, linked)
    incremental = partition()
    threshold = con.execute("SELECT threshold_weight FROM linkage_threshold").fetchall()[0][0]
    components.write_from_links(con, threshold=threshold, same=[], different=[])
    assert partition() == incremental


def test_records_taken_back_come_back_to_the_same_citizens_keys_and_counts(chain):
    con, linkage = chain
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _back AS SELECT record_key FROM source_records WHERE source = 'benefits' "
        "ORDER BY record_key LIMIT 20"
    )
    fellows = (
        "SELECT h.record_key, list(o.record_key ORDER BY o.record_key) FROM citizen_source_link h "
        "JOIN citizen_source_link o USING (citizen_id) WHERE h.record_key IN (SELECT record_key FROM _back) GROUP BY 1"
    )
    counts = "SELECT column_name, value, sum(n) FROM linkage_tf GROUP BY ALL HAVING sum(n) <> 0 ORDER BY ALL"
    before, tf_before = dict(con.execute(fellows).fetchall()), con.execute(counts).fetchall()
    pairs_before = con.execute("SELECT count(*) FROM match_edges").fetchall()[0][0]
    linkage.take_back("_back")
    assert con.execute(fellows).fetchall() == []
    assert con.execute("SELECT count(*) FROM linkage_keys SEMI JOIN _back USING (record_key)").fetchall()[0][0] == 0
    link, _ = linkage.update(run_id="back")
    assert link.new_records == 20
    assert dict(con.execute(fellows).fetchall()) == before
    assert con.execute(counts).fetchall() == tf_before
    assert con.execute("SELECT count(*) FROM match_edges").fetchall()[0][0] == pairs_before
    assert con.execute("SELECT count(*) - count(DISTINCT record_key) FROM linkage_keys").fetchall()[0][0] == 0


def test_an_index_written_by_another_duckdb_is_not_current(chain, monkeypatch):
    """DuckDB's hash may change between releases: an index written by another version is rewritten, not used with
    keys that no longer match."""
    import citizen_view.linkage.key_index as key_index
    from citizen_view.linkage.steps import saved_model

    con, _ = chain
    model = saved_model(con)
    assert key_index.is_current(con, model)
    monkeypatch.setattr(key_index.duckdb, "__version__", "0.0.0-another-release")
    assert not key_index.is_current(con, model)


def test_a_record_indexed_before_its_extract_was_corrected_is_indexed_as_it_is_now(chain):
    """A run indexed some late records and died before linking them; the source's extract was corrected (a family
    name) before the rerun: the rerun's update indexes those records with their keys and counts as they are now, the
    same as an index written afresh, not with those of their old values."""
    from citizen_view.linkage import key_index
    from citizen_view.linkage.steps import saved_model

    con, linkage = chain
    model = saved_model(con)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _corrected AS SELECT record_key FROM source_records WHERE source = 'licences' "
        "AND family_name_std IS NOT NULL AND first_name_std IS NOT NULL ORDER BY record_key LIMIT 5"
    )
    # the run that died: the records indexed (they are), not linked; then the extract corrected
    con.execute("DELETE FROM citizen_source_link WHERE record_key IN (SELECT record_key FROM _corrected)")
    con.execute(
        "UPDATE source_records SET family_name_std = family_name_std || 'sen' "
        "WHERE record_key IN (SELECT record_key FROM _corrected)"
    )
    link, _ = linkage.update(run_id="corrected")
    assert link.new_records == 5
    keys = "SELECT * FROM linkage_keys WHERE record_key IN (SELECT record_key FROM _corrected) ORDER BY record_key"
    counts = "SELECT column_name, value, sum(n) FROM linkage_tf GROUP BY ALL HAVING sum(n) <> 0 ORDER BY ALL"
    updated_keys, updated_counts = con.execute(keys).fetchall(), con.execute(counts).fetchall()
    assert len(updated_keys) == 5 and any(v.endswith("sen") for row in updated_keys for v in row if isinstance(v, str))
    key_index.write(con, model)  # every record's keys and counts as they are now
    assert updated_keys == con.execute(keys).fetchall()
    assert updated_counts == con.execute(counts).fetchall()


def test_new_gone_and_changed_records_are_found_by_their_digests_and_by_their_keys_alike():
    """New records (not linked), gone ones (linked, no longer loaded) and changed ones (linked with another digest
    than they have now, or with none) are found by comparing digests; where a digest repeats in a table (here: a
    link written twice), the rows are joined on key and digest instead, with the same answer."""
    from citizen_view.linkage.steps import _unmatched_keys

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE source_records AS SELECT 'r:' || i AS record_key, hash('r:' || i, i % 7) AS linkage_digest "
        "FROM range(5000) t(i)"
    )
    con.execute(
        "CREATE TABLE citizen_source_link AS SELECT 'r:' || i AS record_key, 'c' || (i // 2) AS citizen_id, "
        "CASE WHEN i IN (200, 300) THEN hash('r:' || i, 'before') WHEN i = 400 THEN NULL "
        "ELSE hash('r:' || i, i % 7) END AS linkage_digest FROM range(100, 5100) t(i)"
    )

    def found() -> tuple[set, set, set]:
        _unmatched_keys(con)
        new = {k for (k,) in con.execute("SELECT new_key FROM _unmatched WHERE new_key IS NOT NULL").fetchall()}
        gone = set(con.execute("SELECT gone_key, citizen_id FROM _unmatched WHERE gone_key IS NOT NULL").fetchall())
        changed = {k for (k,) in con.execute("SELECT record_key FROM _changed_keys").fetchall()}
        return new, gone, changed

    expected = (
        {f"r:{i}" for i in range(100)},
        {(f"r:{i}", f"c{i // 2}") for i in range(5000, 5100)},
        {"r:200", "r:300", "r:400"},
    )
    assert found() == expected
    con.execute("INSERT INTO citizen_source_link SELECT * FROM citizen_source_link WHERE record_key = 'r:100'")
    assert found() == expected


def _fellows(con, keys: str) -> dict:
    """Each record of the table `keys`: the records its citizen holds."""
    return dict(
        con.execute(
            "SELECT h.record_key, list(o.record_key ORDER BY o.record_key) FROM citizen_source_link h JOIN "
            f"citizen_source_link o USING (citizen_id) WHERE h.record_key IN (SELECT record_key FROM {keys}) GROUP BY 1"
        ).fetchall()
    )


def test_key_hashes_another_duckdb_wrote_are_written_anew_before_an_update_looks_records_up(chain):
    """A DuckDB release whose `hash` differs: the stored key hashes no longer match what lookups compute; the update
    writes them anew first, so its late records still find their records, candidates, pairs and citizens."""
    from citizen_view.linkage.records import KEY_HASHES

    con, linkage = chain
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _stale AS SELECT record_key FROM source_records WHERE source = 'permits' "
        "ORDER BY record_key LIMIT 20"
    )
    before = _fellows(con, "_stale")
    linkage.take_back("_stale")
    for table, columns in KEY_HASHES.items():
        for column in columns:
            con.execute(f"UPDATE {table} SET {column} = xor({column}, 1::UBIGINT)")
    link, _ = linkage.update(run_id="stale")
    assert link.new_records == 20 and _fellows(con, "_stale") == before


def test_a_citizen_whose_records_are_all_gone_is_retired_by_an_update(chain):
    """As a full run would: no links, no golden row, a `retired` event, listed among the changes."""
    con, linkage = chain
    key, citizen = con.execute(
        "SELECT record_key, citizen_id FROM citizen_source_link WHERE citizen_record_count = 1 ORDER BY record_key LIMIT 1"
    ).fetchall()[0]
    con.execute("CREATE OR REPLACE TEMP TABLE _kept AS SELECT * FROM source_records WHERE record_key = ?", [key])
    con.execute("DELETE FROM source_records WHERE record_key = ?", [key])
    linkage.update(run_id="gone")
    count = "SELECT count(*) FROM {} WHERE citizen_id = ?"
    assert [con.execute(count.format(t), [citizen]).fetchall()[0][0] for t in ("citizen_source_link", "citizen")] == [
        0,
        0,
    ]
    assert con.execute(count.format("linkage_changes"), [citizen]).fetchall()[0][0] == 1
    events = con.execute("SELECT event FROM citizen_id_history WHERE citizen_id = ? AND run_id = 'gone'", [citizen])
    assert events.fetchall() == [("retired",)]
    con.execute("INSERT INTO source_records SELECT * FROM _kept")  # back, for the tests after this one
    link, _ = linkage.update(run_id="back again")
    assert link.new_records == 1


def test_keys_sharing_their_hashes_leave_late_records_where_the_full_run_puts_them(generated, tmp_path, monkeypatch):
    """Every key hash made to collide (hash % 3: a third of the records share each), and every blocking key in the key
    index too (2 bits: four values): what is found on a hash and checked on the keys, and candidates that share a key
    only by chance, still give the late records the full run's pairs and fellow records."""
    import citizen_view.linkage.key_index as key_index
    import citizen_view.linkage.records as records

    monkeypatch.setattr(records, "_KEY_HASH", "(hash({}) % 3)")
    monkeypatch.setattr(key_index, "KEY_BITS", 2)
    with collected_chain(generated, tmp_path) as (con, linkage):
        linkage.run(run_id="full")
        con.execute(
            "CREATE TEMP TABLE _late AS SELECT record_key FROM source_records WHERE source = 'tax' "
            "ORDER BY record_key DESC LIMIT 30"
        )
        assert con.execute("SELECT count(DISTINCT key_hash) FROM source_records").fetchall()[0][0] == 3
        assert con.execute("SELECT max(block_key_0) FROM linkage_keys").fetchall()[0][0] <= 3
        before, edges = _fellows(con, "_late"), _edges(con, "match_edges", "_late")
        linkage.take_back("_late")
        link, _ = linkage.update(run_id="late")
        assert link.new_records == 30 and _fellows(con, "_late") == before
        after = _edges(con, "match_edges", "_late")
        assert edges.height > 30 and after.select("a", "b").equals(edges.select("a", "b"))


def test_the_scope_pairs_named_by_their_hashes_are_those_their_own_keys_name(chain, monkeypatch):
    """An update reads the scope's scored pairs without their keys (each end named by its hash, from the scope and the
    links); that gives the pairs and links the pairs' own keys give, and gives way to them when a hash stands for two
    keys."""
    import citizen_view.linkage.records as records
    from citizen_view.linkage import review, steps
    from citizen_view.warehouse import table_columns

    con, _ = chain

    scope = records.with_key_hash("SELECT record_key FROM _scope")

    def read(by_hash: bool) -> tuple[list, list]:
        if by_hash:
            assert steps._scope_pairs_by_hash(con, scope)
            # read without the per-field weights, which the review queue fetches for its pairs: here for all of them
            assert not [c for c in table_columns(con, "_scope_touching") if c.startswith("mw_")]
            assert review.with_evidence(con, "_scope_touching") == "row id"
        else:
            steps._scope_pairs_by_key(con, scope)
        pairs = con.execute(pairs_in_scope).fetchall()
        links = con.execute("SELECT record_key, citizen_id FROM _scope_links_hashed ORDER BY ALL").fetchall()
        return pairs, links

    records.ensure_key_hashes(con)
    # every column of match_edges but the key hashes, whichever way the pairs were read
    columns = [c for c in table_columns(con, "match_edges") if c not in records.KEY_HASHES["match_edges"]]
    pairs_in_scope = f"SELECT {', '.join(columns)} FROM _scope_touching ORDER BY ALL"
    con.execute(  # records of several sources, with pairs reaching records outside the scope
        "CREATE OR REPLACE TEMP TABLE _scope AS SELECT record_key FROM source_records WHERE hash(record_key) % 7 = 0"
    )
    by_key, by_hash = read(False), read(True)
    assert by_hash == by_key
    # pairs whose row ids no longer hold them (a checkpoint moved rows) get their evidence found on their key hashes
    steps._scope_pairs_by_hash(con, scope)
    con.execute(f"UPDATE _scope_touching SET {review.EDGE_ROW} = {review.EDGE_ROW} + 1")
    assert review.with_evidence(con, "_scope_touching") == "key hashes"
    assert con.execute(pairs_in_scope).fetchall() == by_key[0]
    outside = "SELECT count(*) FROM _scope_touching WHERE record_key_l NOT IN (SELECT record_key FROM _scope)"
    assert len(by_key[0]) > 50 and con.execute(outside).fetchall()[0][0] > 0
    far = con.execute(
        "SELECT record_key_r FROM _scope_touching WHERE record_key_r NOT IN (SELECT record_key FROM _scope)"
    ).fetchall()[0][0]
    con.execute("BEGIN TRANSACTION")
    try:  # a pair's far end neither in the scope nor linked: no key for its hash, so the pairs' own keys are read
        con.execute("DELETE FROM citizen_source_link WHERE record_key = ?", [far])
        assert not steps._scope_pairs_by_hash(con, records.with_key_hash("SELECT record_key FROM _scope"))
        steps._scope_pairs_by_key(con, records.with_key_hash("SELECT record_key FROM _scope"))
        assert con.execute("SELECT * FROM _scope_touching ORDER BY ALL").fetchall() == by_key[0]
    finally:
        con.execute("ROLLBACK")
    monkeypatch.setattr(records, "_KEY_HASH", "(hash({}) % 3)")  # two keys per hash: the hashes cannot say
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("UPDATE citizen_source_link SET key_hash = hash(record_key) % 3")
        con.execute("UPDATE match_edges SET key_hash_l = hash(record_key_l) % 3, key_hash_r = hash(record_key_r) % 3")
        assert not steps._scope_pairs_by_hash(con, records.with_key_hash("SELECT record_key FROM _scope"))
    finally:
        con.execute("ROLLBACK")
    for table in ("_scope", "_scope_touching", "_scope_links_hashed"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def narrow_pool_scores_as_the_whole_input(con) -> list[str]:
    """Score 200 records (the first 50 new) once from the whole linkage input and once from the pool of the columns
    new_pairs.pool_columns names; assert both give the same pairs and weights; return those columns."""
    from citizen_view.linkage import key_index
    from citizen_view.linkage.new_pairs import pool_columns, score_pairs_sql, scoring_pipeline
    from citizen_view.linkage.records import linkage_input_sql
    from citizen_view.linkage.scoring import EDGE_FLOOR_WEIGHT
    from citizen_view.linkage.steps import saved_model

    model = saved_model(con)
    pipeline = scoring_pipeline(con, model, floor=EDGE_FLOOR_WEIGHT)
    columns = pool_columns(model, pipeline)
    read = ", ".join(f'"{c}"' for c in columns)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _some AS SELECT record_key FROM source_records ORDER BY record_key LIMIT 200"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _some_input AS SELECT *, record_key IN "
        "(SELECT record_key FROM _some ORDER BY record_key LIMIT 50) AS is_new "
        f"FROM ({linkage_input_sql(con, where='record_key IN (SELECT record_key FROM _some)')})"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _pool_whole AS {key_index.term_frequency_sql(model, '_some_input')}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _pool_narrow AS {key_index.term_frequency_sql(model, f'(SELECT {read}, is_new FROM _some_input)')}"
    )
    assert len(con.execute("SELECT * FROM _pool_narrow LIMIT 0").description) < len(
        con.execute("SELECT * FROM _pool_whole LIMIT 0").description
    )
    scored = "SELECT record_key_l, record_key_r, round(match_weight, 9) FROM ({}) ORDER BY ALL"
    whole = con.execute(
        scored.format(score_pairs_sql(model, "_pool_whole", floor=EDGE_FLOOR_WEIGHT, pipeline=pipeline))
    )
    whole = whole.fetchall()
    narrow = con.execute(
        scored.format(score_pairs_sql(model, "_pool_narrow", floor=EDGE_FLOOR_WEIGHT, pipeline=pipeline))
    ).fetchall()
    assert whole and narrow == whole
    return columns


def test_a_pool_of_the_columns_the_model_reads_scores_as_the_whole_linkage_input(chain):
    from citizen_view.linkage.model import tf_columns
    from citizen_view.linkage.records import ENCODED_COLUMNS
    from citizen_view.linkage.steps import saved_model

    con, _ = chain
    columns = narrow_pool_scores_as_the_whole_input(con)
    # a model on plain values reads none of the encodings, and reads the columns its term frequencies count
    assert not set(columns) & set(ENCODED_COLUMNS)
    assert {"record_key", "national_id", "dob", "source"} | set(tf_columns(saved_model(con))) <= set(columns)
