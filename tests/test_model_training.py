"""EM's training blocks, and which compared fields none of them leaves free (their m is not estimated: noted)."""

from __future__ import annotations

from citizen_view.linkage.model import plan_model, rule_sql

NAMES = ["first_name_std", "initials", "family_name_std"]
ADDRESS = ["postcode", "street_std", "house_number"]


def test_a_register_with_national_ids_estimates_every_compared_field():
    plan = plan_model({c: 1.0 for c in NAMES + ["dob", "national_id"] + ADDRESS})
    assert [rule_sql(r) for r in plan.training_rules] == [
        'l."national_id" = r."national_id"',
        '(l."family_name_std" = r."family_name_std") AND (l."dob" = r."dob")',
        '(l."first_name_std" = r."first_name_std") AND (l."dob" = r."dob")',
    ]
    assert plan.m_not_estimated == []


def test_without_national_ids_the_birth_date_is_fixed_in_every_block_and_said_so():
    plan = plan_model({c: 1.0 for c in NAMES + ["dob"] + ADDRESS})
    assert plan.m_not_estimated == ["date_of_birth"]


def test_with_names_and_addresses_only_the_address_block_fixes_the_address():
    plan = plan_model({c: 1.0 for c in NAMES + ADDRESS})
    assert [rule_sql(r) for r in plan.training_rules] == [
        '(l."postcode" = r."postcode") AND (l."house_number" = r."house_number")'
    ]
    assert plan.m_not_estimated == ["address"]
