"""EM's training blocks: every compared field's m probabilities are estimated in at least one of them."""

from __future__ import annotations

import pytest

from citizen_view.linkage.model import FIXED_BY, plan_model, rule_sql

NAMES = ["first_name_std", "initials", "family_name_std"]
ADDRESS = ["postcode", "street_std", "house_number"]


def _blocks(held: list[str]) -> tuple[list[str], list[str]]:
    plan = plan_model({c: 1.0 for c in held})
    return plan.fields_used, [rule_sql(r) for r in plan.training_rules]


@pytest.mark.parametrize(
    "held",
    [
        NAMES + ["dob", "national_id"] + ADDRESS,  # a population register
        NAMES + ["dob"] + ADDRESS,  # no national ID: every ID-free block holds the birth date
        NAMES + ADDRESS,  # names and addresses only
        NAMES + ["dob"],  # no address either
    ],
)
def test_every_compared_field_is_left_free_by_some_block(held):
    compared, blocks = _blocks(held)
    for name in compared:
        columns = FIXED_BY.get(name, frozenset())
        free = [b for b in blocks if not any(f'l."{c}"' in b for c in columns)]
        assert free, (name, blocks)


def test_a_register_with_national_ids_trains_on_the_blocks_it_did():
    _, blocks = _blocks(NAMES + ["dob", "national_id"] + ADDRESS)
    assert blocks == [
        'l."national_id" = r."national_id"',
        '(l."family_name_std" = r."family_name_std") AND (l."dob" = r."dob")',
        '(l."first_name_std" = r."first_name_std") AND (l."dob" = r."dob")',
    ]


def test_without_national_ids_the_full_name_block_frees_the_birth_date():
    _, blocks = _blocks(NAMES + ["dob"] + ADDRESS)
    assert blocks[-1] == '(l."first_name_std" = r."first_name_std") AND (l."family_name_std" = r."family_name_std")'
    assert len(blocks) == 3
