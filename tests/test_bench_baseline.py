"""The accuracy baseline's guard against blocking rules that are cross joins (a column with one value for all)."""

from __future__ import annotations

import polars as pl

from citizen_view_bench.baseline import MAX_RULE_PAIRS, _too_broad, generic_settings, judge, rule_pairs


def test_a_single_value_column_is_not_blocked_on() -> None:
    n = 7_000  # 7,000 records with one postcode: 24.5M pairs, over the cap
    df = pl.DataFrame(
        {
            "postcode": ["00000"] * n,
            "dob": [f"1970{i:04d}" for i in range(n)],
            "first_name_std": ["ann"] * n,
            "family_name_std": [f"f{i % 50}" for i in range(n)],
        }
    )
    assert rule_pairs(df, ("postcode",)) == n * (n - 1) // 2 > MAX_RULE_PAIRS
    assert rule_pairs(df, ("dob",)) == 0
    broad = _too_broad(df, [("postcode",), ("dob",)])
    assert broad == {("postcode",)}
    populated = {"postcode", "dob", "first_name_std", "family_name_std"}
    settings, _ = generic_settings(populated, link_type="dedupe_only", too_broad=broad)
    rules = [
        r if isinstance(r, str) else r.get_blocking_rule("duckdb").blocking_rule_sql
        for r in settings.blocking_rules_to_generate_predictions
    ]
    assert not any('"postcode"' in r and "AND" not in r for r in rules), rules
    assert any('"dob"' in r for r in rules), rules


def test_scored_pairs_are_judged_at_the_threshold_of_best_f1_and_at_probability_half() -> None:
    """Two people of two records each: joining at weight 5 links both right; at -2 all four become one."""
    df = pl.DataFrame(
        {
            "record_key": ["s:a1", "s:a2", "s:b1", "s:b2"],
            "source": ["s"] * 4,
            "source_record_id": ["a1", "a2", "b1", "b2"],
        }
    )
    truth = pl.DataFrame({"source": ["s"] * 4, "source_record_id": ["a1", "a2", "b1", "b2"], "person_id": list("aabb")})
    edges = pl.DataFrame(
        {
            "record_key_l": ["s:a1", "s:b1", "s:a1"],
            "record_key_r": ["s:a2", "s:b2", "s:b1"],
            "match_weight": [10.0, 5.0, -2.0],
        }
    )
    judged = judge(df, edges, truth)
    assert [round(r[3], 3) for r in judged.curve] == [0.667, 1.0, 0.5]  # F1 at weights 10, 5 and -2
    assert judged.figures["threshold"] == 5.0 and judged.figures["f1"] == 1.0 and judged.true_pairs == 2
    assert judged.figures["threshold_probability"] == 1 / (1 + 2**-5)
    assert judged.at_probability_half == {"precision": 1.0, "recall": 1.0, "f1": 1.0}  # weight 5 is the last >= 0
