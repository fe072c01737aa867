"""The accuracy baseline's guard against blocking rules that are cross joins (a column with one value for all)."""

from __future__ import annotations

import polars as pl

from citizen_view_bench.baseline import MAX_RULE_PAIRS, _too_broad, generic_settings, rule_pairs


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
