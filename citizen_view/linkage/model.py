"""The Splink model: comparisons and blocking rules chosen from the fields the records hold, trained unsupervised.

Comparisons are built from Splink's comparison-level library, so Splink writes each level's SQL for the
backend it runs on (DuckDB or Spark); the hand-written conditions ("no address on one side", "one edit apart"
behind a cheap guard) are plain SQL Splink translates. Every level keeps a label a caseworker can read in `citizen-view explain`:
"same date of birth", "day and month swapped", "national ID one digit off". A saved model is Splink's
JSON; `render_for` rebuilds its comparisons for another backend from their names and labels and
copies the fitted numbers across, so one saved model scores on either backend.

Training never sees ground truth: u from random pairs, the match rate from deterministic rules, m by
EM on blocking rules whose pairs are mostly the same person, each EM run guarded against Splink's
degenerate cases.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import ColumnExpression, SettingsCreator, block_on
from splink.blocking_rule_library import And, CustomRule
from splink.internals.blocking_rule_creator_utils import to_blocking_rule_creator

from citizen_view.contract import LinkType

log = logging.getLogger(__name__)
MISSING = "missing on either side"
DIFFERENT = "different"
DEFAULT_MIN_SHARE = 0.05


@dataclass
class ModelPlan:
    """Which comparisons, prediction blocking rules and training rules this data supports."""

    comparisons: list[cl.CustomComparison]
    prediction_rules: list[Any]
    training_rules: list[Any]
    deterministic_rules: list[Any]
    fields_used: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    m_not_estimated: list[str] = field(default_factory=list)  # compared fields every EM block fixes


# --- comparisons ------------------------------------------------------------------------------------


def _null(col: str | ColumnExpression) -> cll.NullLevel:
    return cll.NullLevel(col).configure(label_for_charts=MISSING)


def _else() -> cll.ElseLevel:
    return cll.ElseLevel().configure(label_for_charts=DIFFERENT)


def _exact(col: str | ColumnExpression, label: str, *, tf: bool = False) -> cll.ExactMatchLevel:
    return cll.ExactMatchLevel(col, term_frequency_adjustments=tf).configure(label_for_charts=label)


def _jw(col: str, threshold: float, label: str) -> cll.JaroWinklerLevel:
    return cll.JaroWinklerLevel(col, threshold).configure(label_for_charts=label)


def _one_edit(col: str, label: str) -> cll.CustomLevel:
    """Damerau-Levenshtein distance <= 1 (one character off, inserted, dropped, or two neighbours swapped), computed
    only for pairs that can be that close: about a fifth of the CPU of computing it for every pair.

    One edit touches at most two neighbouring characters, so in values of 8 or more characters the first three or the
    last three are untouched; values that share neither are more than one edit apart. DuckDB evaluates every operand
    of an AND, so the guard is a CASE (which it does evaluate lazily), not Splink's And of two levels.
    """
    left, right = f"{col}_l", f"{col}_r"
    guard = (
        f"least(length({left}), length({right})) < 8 OR left({left}, 3) = left({right}, 3) "
        f"OR right({left}, 3) = right({right}, 3)"
    )
    sql = f"CASE WHEN {guard} THEN damerau_levenshtein({left}, {right}) <= 1 ELSE FALSE END"
    return cll.CustomLevel(sql, base_dialect_str="duckdb").configure(label_for_charts=label)


def given_name_comparison() -> cl.CustomComparison:
    """First given name, falling back to initials when a source holds only those (a licence's "J.P.")."""
    return cl.CustomComparison(
        output_column_name="given_name",
        comparison_levels=[
            _null("initials"),
            _exact("first_name_std", "same first name", tf=True),
            _jw("first_name_std", 0.92, "first name nearly the same"),
            _jw("first_name_std", 0.80, "first name similar"),
            _exact("initials", "same initials"),
            _exact(ColumnExpression("initials").substr(1, 1), "same first initial"),
            _else(),
        ],
    )


def family_name_comparison() -> cl.CustomComparison:
    """Family name without particles ("van der"): typo levels, given and family name written the other way
    round, and a shared word for double names."""
    return cl.CustomComparison(
        output_column_name="family_name",
        comparison_levels=[
            _null("family_name_std"),
            _exact("family_name_std", "same family name", tf=True),
            _jw("family_name_std", 0.92, "family name nearly the same"),
            cll.ColumnsReversedLevel("first_name_std", "family_name_std").configure(
                label_for_charts="given and family name swapped"
            ),
            cll.ArrayIntersectLevel("family_name_words", min_intersection=1).configure(
                label_for_charts="family names share a word"
            ),
            _jw("family_name_std", 0.80, "family name similar"),
            _else(),
        ],
    )


def date_of_birth_comparison() -> cl.CustomComparison:
    """Date of birth as yyyymmdd text: exact, day and month swapped, one character off, same year."""
    return cl.CustomComparison(
        output_column_name="date_of_birth",
        comparison_levels=[
            _null("dob"),
            _exact("dob", "same date of birth"),
            cll.ColumnsReversedLevel("dob", "dob_swapped").configure(label_for_charts="day and month swapped"),
            _one_edit("dob", "date of birth one digit off"),
            _exact(ColumnExpression("dob").substr(1, 4), "same year of birth"),
            _else(),
        ],
    )


def national_id_comparison() -> cl.CustomComparison:
    """National ID as given: exact, or one typo or transposition away."""
    return cl.CustomComparison(
        output_column_name="national_id",
        comparison_levels=[
            _null("national_id"),
            _exact("national_id", "same national ID"),
            _one_edit("national_id", "national ID one digit off"),
            _else(),
        ],
    )


def address_comparison(*, has_street: bool, has_postcode: bool) -> cl.CustomComparison:
    """Home address as one comparison (its parts are not independent): postcode/street + number, then area."""
    levels: list[Any] = [
        # No library level says "postcode and street both missing on one side": plain SQL, translated per backend.
        cll.CustomLevel(
            "(postcode_l IS NULL AND street_std_l IS NULL) OR (postcode_r IS NULL AND street_std_r IS NULL)",
            base_dialect_str="duckdb",
        ).configure(label_for_charts=MISSING, is_null_level=True)
    ]
    if has_postcode:
        levels.append(
            cll.And(cll.ExactMatchLevel("postcode"), cll.ExactMatchLevel("house_number")).configure(
                label_for_charts="same postcode and house number"
            )
        )
    if has_street:
        levels.append(
            cll.And(cll.ExactMatchLevel("street_std"), cll.ExactMatchLevel("house_number")).configure(
                label_for_charts="same street and house number"
            )
        )
    if has_postcode:
        levels.append(_exact("postcode", "same postcode"))
    levels.append(_exact("city_std", "same city", tf=True))
    levels.append(_else())
    return cl.CustomComparison(output_column_name="address", comparison_levels=levels)


def exact_comparison(col: str, label: str, *, name: str | None = None, tf: bool = False) -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name=name or col, comparison_levels=[_null(col), _exact(col, f"same {label}", tf=tf), _else()]
    )


# --- comparisons on encodings (sources declared `encoded: true`; DuckDB only: Dice is SQL on BIT) ------------


def _dice(col: str, threshold: float, label: str) -> cll.CustomLevel:
    """Dice similarity 2|A&B| / (|A|+|B|) of two Bloom-filter encodings (hex text) at least `threshold`."""
    left, right = f"from_hex({col}_l)::BIT", f"from_hex({col}_r)::BIT"
    sql = f"2.0 * bit_count({left} & {right}) / nullif(bit_count({left}) + bit_count({right}), 0) >= {threshold}"
    return cll.CustomLevel(sql, base_dialect_str="duckdb").configure(label_for_charts=label)


def encoded_name_comparison(col: str, what: str, *, initial: str | None = None) -> cl.CustomComparison:
    """A name's CLK by Dice: nearly identical, similar, somewhat similar (and the same initial's pseudonym)."""
    levels: list[Any] = [
        _null(initial or col),
        _dice(col, 0.95, f"{what} encodings nearly identical"),
        _dice(col, 0.80, f"{what} encodings similar"),
        _dice(col, 0.60, f"{what} encodings somewhat similar"),
    ]
    if initial:
        levels.append(_exact(initial, "same initial (pseudonym)"))
    levels.append(_else())
    return cl.CustomComparison(output_column_name=f"{what.replace(' ', '_')}_encoded", comparison_levels=levels)


def encoded_date_of_birth_comparison() -> cl.CustomComparison:
    """Birth date: the same pseudonym, or close encodings (a digit off, day and month swapped)."""
    return cl.CustomComparison(
        output_column_name="date_of_birth_encoded",
        comparison_levels=[
            _null("enc_date_of_birth"),
            _exact("blk_date_of_birth", "same date of birth (pseudonym)"),
            _dice("enc_date_of_birth", 0.75, "date of birth encodings close"),
            _else(),
        ],
    )


def encoded_address_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="address_encoded",
        comparison_levels=[
            _null("enc_address"),
            _dice("enc_address", 0.90, "address encodings nearly identical"),
            _dice("enc_address", 0.70, "address encodings similar"),
            _else(),
        ],
    )


# name -> (input columns it needs, builder); the order is the order of the model and of `explain`
COMPARISONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "given_name": (("initials",), given_name_comparison),
    "family_name": (("family_name_std",), family_name_comparison),
    "date_of_birth": (("dob",), date_of_birth_comparison),
    "national_id": (("national_id",), national_id_comparison),
    "sex": (("sex",), lambda: exact_comparison("sex", "sex")),
    "email": (("email",), lambda: exact_comparison("email", "email")),
    "phone": (("phone",), lambda: exact_comparison("phone", "phone")),
    "birth_place": (
        ("birth_place_std",),
        lambda: exact_comparison("birth_place_std", "birth place", name="birth_place", tf=True),
    ),
    "given_name_encoded": (
        ("enc_initial",),
        lambda: encoded_name_comparison("enc_given_name", "given name", initial="enc_initial"),
    ),
    "family_name_encoded": (("enc_family_name",), lambda: encoded_name_comparison("enc_family_name", "family name")),
    "date_of_birth_encoded": (("enc_date_of_birth",), encoded_date_of_birth_comparison),
    "national_id_encoded": (
        ("enc_national_id",),
        lambda: exact_comparison("enc_national_id", "national ID (pseudonym)", name="national_id_encoded"),
    ),
    "address_encoded": (("enc_address",), encoded_address_comparison),
}


def comparison_for(name: str, labels: list[str] | None = None) -> cl.CustomComparison:
    """The comparison called `name`; for the address, its levels follow the labels of a saved model."""
    if name == "address":
        labels = labels or []
        return address_comparison(
            has_street="same street and house number" in labels, has_postcode="same postcode and house number" in labels
        )
    return COMPARISONS[name][1]()


# --- blocking ---------------------------------------------------------------------------------------


def block(cols: tuple[str, ...], link_type: LinkType = LinkType.LINK_AND_DEDUPE, *, only: str | None = None):
    """A blocking rule on input columns, restricted to the pairs the link type compares (and, `only`, to the pairs
    that meet a further SQL condition on l. and r.)."""
    rule = block_on(*cols)
    if only:
        rule = And(rule, CustomRule(only, sql_dialect="duckdb"))
    return _restrict(rule, link_type)


def _restrict(rule, link_type: LinkType):
    if link_type == LinkType.LINK_ONLY:
        return And(rule, CustomRule("l.source <> r.source", sql_dialect="duckdb"))
    if link_type == LinkType.DEDUPE_ONLY:
        return And(rule, CustomRule("l.source = r.source", sql_dialect="duckdb"))
    return rule


def names_swapped_rule(link_type: LinkType = LinkType.LINK_AND_DEDUPE):
    """Pairs whose given and family names are written the other way round."""
    rule = CustomRule(
        "l.first_name_std = r.family_name_std AND l.family_name_std = r.first_name_std", sql_dialect="duckdb"
    )
    return _restrict(rule, link_type)


def rule_sql(rule) -> str:
    """A blocking rule as readable SQL (DuckDB dialect), for notes and reports."""
    return to_blocking_rule_creator(rule).get_blocking_rule("duckdb").blocking_rule_sql


# --- the plan -----------------------------------------------------------------------------------------

BLOCK_AS = {"first_name_std": "first_name_block", "family_name_std": "family_name_block"}
# A birth date written with one error (a digit off, day and month swapped) keeps its year or its day and month.
DOB_NEAR = (
    "(l.dob IS NULL OR r.dob IS NULL OR substr(l.dob, 1, 4) = substr(r.dob, 1, 4) "
    "OR substr(l.dob, 5, 4) = substr(r.dob, 5, 4))"
)
SAME_FIRST_INITIAL = (
    "(l.first_name_block IS NULL OR r.first_name_block IS NULL "
    "OR substr(l.first_name_block, 1, 1) = substr(r.first_name_block, 1, 1))"
)
# Blocking rules for prediction, each used when every one of its columns is populated, with a condition on the pair
# where the columns alone bring together mostly different people, whose number grows with the square of the records:
# - family name + postcode is a household (partners, children): only pairs whose birth dates are missing or no more
#   than one error apart, or whose given names are missing or start alike;
# - given + family name is everyone called Jan de Vries: only pairs whose birth dates are missing or one error apart
#   (the same person with a wholly different birth date is left to the ID, address and contact rules).
PREDICTION_COLUMNS: list[tuple[tuple[str, ...], str | None]] = [
    (("national_id",), None),
    (("family_name_std", "dob"), None),
    (("first_name_std", "dob"), None),
    (("family_name_std", "postcode"), f"({DOB_NEAR} OR {SAME_FIRST_INITIAL})"),
    (("dob", "postcode"), None),
    (("dob", "house_number"), None),
    (("first_name_std", "street_std", "house_number"), None),
    (("family_name_std", "first_name_std"), DOB_NEAR),
    (("phone",), None),
    (("email",), None),
    # encodings: keyed pseudonyms made at the agency
    (("enc_national_id",), None),
    (("blk_names",), None),
    (("blk_date_of_birth",), None),
    (("blk_year_family",), None),
]
# EM learns m from pairs that agree on the blocking columns; those pairs must be mostly the same person.
# An address block is mostly the same household (partners, children, twins), which teaches EM that a
# different birth date or ID is common among matches: it is used only when nothing better exists.
TRAINING_COLUMNS = [
    ("national_id",),
    ("family_name_std", "dob"),
    ("first_name_std", "dob"),
    ("enc_national_id",),
    ("blk_names",),
    ("blk_date_of_birth", "blk_year_family"),
]
# The input columns that fix each comparison: EM learns nothing about a comparison's m from a block whose pairs
# all agree on them (every pair sits in its top level).
FIXED_BY: dict[str, frozenset[str]] = {
    "given_name": frozenset({"first_name_std", "initials"}),
    "family_name": frozenset({"family_name_std"}),
    "date_of_birth": frozenset({"dob"}),
    "national_id": frozenset({"national_id"}),
    "address": frozenset({"postcode", "street_std", "house_number"}),
    "given_name_encoded": frozenset({"blk_names"}),
    "family_name_encoded": frozenset({"blk_names", "blk_year_family"}),
    "date_of_birth_encoded": frozenset({"blk_date_of_birth"}),
    "national_id_encoded": frozenset({"enc_national_id"}),
}
# Rules for estimating the share of matches: the first two whose columns are populated.
DETERMINISTIC_COLUMNS = [
    ("national_id", "dob"),
    ("first_name_std", "family_name_std", "dob"),
    ("national_id",),
    ("enc_national_id", "blk_date_of_birth"),
    ("blk_names", "blk_date_of_birth"),
    ("enc_national_id",),
]


def plan_model(
    shares: dict[str, float], *, link_type: LinkType = LinkType.LINK_AND_DEDUPE, min_share: float = DEFAULT_MIN_SHARE
) -> ModelPlan:
    """Choose comparisons and rules from {column: share of all loaded records that hold a value}.

    A field is compared, and may block, when at least `min_share` of the records hold it, whichever
    source they come from: one source deduplicated on its own is planned like seven linked together.
    """

    def has(*cols: str) -> bool:
        return all(shares.get(c, 0.0) >= min_share for c in cols)

    comparisons, used, skipped = _comparisons(has, min_share)
    return ModelPlan(
        comparisons,
        _prediction_rules(has, link_type),
        _training_rules(has, link_type),
        _deterministic_rules(has, link_type),
        used,
        skipped,
        fixed_in_every_block(used, training_columns(has)),
    )


def _comparisons(has, min_share: float) -> tuple[list[cl.CustomComparison], list[str], dict[str, str]]:
    """(comparisons, fields used, fields skipped with why): a field is compared when enough records hold it."""
    comparisons: list[cl.CustomComparison] = []
    used: list[str] = []
    skipped: dict[str, str] = {}
    for name, (cols, make) in COMPARISONS.items():
        if name == "sex":  # the address comes before sex, as in every earlier model
            if has("postcode") or has("street_std"):
                comparisons.append(address_comparison(has_street=has("street_std"), has_postcode=has("postcode")))
                used.append("address")
            else:
                skipped["address"] = f"held by fewer than {min_share:.0%} of the records"
        if has(*cols):
            comparisons.append(make())
            used.append(name)
        else:
            skipped[name] = f"held by fewer than {min_share:.0%} of the records"
    if len(comparisons) < 2:
        raise ValueError(
            f"too few populated fields to link on (usable: {used}; a field needs values in at least {min_share:.0%} "
            "of the records); map more canonical fields in sources.yaml"
        )
    return comparisons, used, skipped


def _prediction_rules(has, link_type: LinkType) -> list:
    """Names block as written (a value that is no evidence of identity still brings records together to be
    compared on everything else); comparisons see them with such values masked."""
    rules = [
        block(tuple(BLOCK_AS.get(c, c) for c in cols), link_type, only=only)
        for cols, only in PREDICTION_COLUMNS
        if has(*cols)
    ]
    if has("first_name_std", "family_name_std"):
        rules.append(names_swapped_rule(link_type))
    return rules


def _training_rules(has, link_type: LinkType) -> list:
    """Blocks EM trains on; an address block only when fewer than two better ones exist."""
    return [block(cols, link_type) for cols in training_columns(has)]


def training_columns(has) -> list[tuple[str, ...]]:
    """The columns of each EM block."""
    chosen = [cols for cols in TRAINING_COLUMNS if has(*cols)]
    if len(chosen) < 2 and has("postcode", "house_number"):
        chosen.append(("postcode", "house_number"))
    return chosen


def fixed_in_every_block(compared: list[str], blocks: list[tuple[str, ...]]) -> list[str]:
    """The compared fields whose m no EM block estimates: every block holds one of their columns, so all its pairs sit
    in the field's top level (without national IDs, both name + birth-date blocks fix the birth date)."""
    return [
        name
        for name in compared
        if FIXED_BY.get(name) and blocks and not any(FIXED_BY[name].isdisjoint(cols) for cols in blocks)
    ]


def _deterministic_rules(has, link_type: LinkType) -> list:
    """Two deterministic rules for the share of matches; names and postcode when nothing else is held."""
    rules = [block(cols, link_type) for cols in DETERMINISTIC_COLUMNS if has(*cols)][:2]
    return rules or [block(("first_name_std", "family_name_std", "postcode"), link_type)]


def settings_for(plan: ModelPlan) -> SettingsCreator:
    """Splink settings over the union of all sources (which pairs are compared is up to the blocking rules)."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=plan.comparisons,
        blocking_rules_to_generate_predictions=plan.prediction_rules,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=["source"],
        max_iterations=20,
    )


# --- one saved model, either backend ----------------------------------------------------------------

FITTED = ("m_probability", "u_probability", "tf_minimum_u_value")


def render_for(model: dict[str, Any], dialect: str) -> dict[str, Any]:
    """A saved model with its comparisons and blocking rules written for `dialect` ("duckdb" or "spark").

    Splink saves each level's SQL as rendered for the backend it was trained on; the structure is
    rebuilt here from each comparison's name and level labels, and the fitted numbers are copied.
    """
    if model.get("sql_dialect") == dialect:
        return model
    out = copy.deepcopy(model)
    rendered = []
    for trained in model["comparisons"]:
        labels = [lvl.get("label_for_charts", "") for lvl in trained["comparison_levels"]]
        fresh = comparison_for(trained["output_column_name"], labels).create_comparison_dict(dialect)
        if [lvl.get("label_for_charts", "") for lvl in fresh["comparison_levels"]] != labels:
            raise ValueError(f"saved comparison {trained['output_column_name']!r} does not match this version's levels")
        for new, old in zip(fresh["comparison_levels"], trained["comparison_levels"]):
            new.update({k: old[k] for k in FITTED if k in old})
        rendered.append(fresh)
    out["comparisons"] = rendered
    out["blocking_rules_to_generate_predictions"] = [
        to_blocking_rule_creator(rule).create_blocking_rule_dict(dialect)
        for rule in model["blocking_rules_to_generate_predictions"]
    ]
    out["sql_dialect"] = dialect
    return out


def tf_columns(model: dict[str, Any]) -> list[str]:
    """The columns whose term frequencies the model's levels use."""
    return sorted(
        {
            lvl["tf_adjustment_column"]
            for c in model["comparisons"]
            for lvl in c["comparison_levels"]
            if lvl.get("tf_adjustment_column")
        }
    )
