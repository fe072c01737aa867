"""Why two records were, or were not, linked: the saved model's per-field levels and weights for the pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citizen_view.contract import LinkageConfig
from citizen_view.linkage.engine import Engine
from citizen_view.linkage.records import linkage_input_sql
from citizen_view.linkage.review import describe_pair
from citizen_view.linkage.scoring import score_two
from citizen_view.linkage.steps import saved_model
from citizen_view.warehouse import table_exists

if TYPE_CHECKING:
    import duckdb

    from citizen_view.layout import WarehouseLayout


@dataclass
class FieldEvidence:
    comparison: str
    level: str
    match_weight: float
    left: Any
    right: Any


@dataclass
class Explanation:
    left: str
    right: str
    fields: list[FieldEvidence]
    prior_weight: float
    match_weight: float
    match_probability: float
    threshold: float | None
    citizen_left: str | None
    citizen_right: str | None

    @property
    def linked(self) -> bool:
        return self.citizen_left is not None and self.citizen_left == self.citizen_right

    @property
    def decision(self) -> str:
        """The model's decision on the pair, in the words the review queue uses."""
        return describe_pair(self.match_weight, self.threshold, same_citizen=self.linked)

    def render(self) -> str:
        lines = [f"{self.left}  vs  {self.right}", ""]
        lines.append(f"  {'field':<14} {'evidence':<34} {'weight':>7}   values")
        lines.append(f"  {'prior':<14} {'two random records match':<34} {self.prior_weight:>+7.2f}")
        for f in self.fields:
            lines.append(f"  {f.comparison:<14} {f.level:<34} {f.match_weight:>+7.2f}   {f.left!s} | {f.right!s}")
        lines.append(f"  {'total':<14} {'':<34} {self.match_weight:>+7.2f}   probability {self.match_probability:.4f}")
        lines.append(f"\n  model: {self.decision}")
        same = "the same citizen" if self.linked else "different citizens"
        lines.append(f"  citizens: {self.citizen_left} / {self.citizen_right} ({same})")
        return "\n".join(lines)


def _levels(model: dict[str, Any]) -> dict[str, list[str]]:
    """Comparison name -> non-null level labels from the top level down."""
    out = {}
    for comp in model["comparisons"]:
        out[comp["output_column_name"]] = [
            lvl.get("label_for_charts", lvl["sql_condition"])
            for lvl in comp["comparison_levels"]
            if not lvl.get("is_null_level")
        ]
    return out


def _input_columns(model: dict[str, Any], name: str) -> list[str]:
    cols = {
        "given_name": ["first_name_std", "initials"],
        "family_name": ["family_name_std"],
        "date_of_birth": ["dob"],
        "national_id": ["national_id"],
        "address": ["street_std", "house_number", "postcode", "city_std"],
        "birth_place": ["birth_place_std"],
    }
    return cols.get(name, [name])


def explain_pair(
    con: duckdb.DuckDBPyConnection,
    left: str,
    right: str,
    *,
    layout: WarehouseLayout,
    linkage: LinkageConfig | None = None,
) -> Explanation:
    """Score one pair of records (keys `source:source_record_id`) with the saved model, on the configured backend."""
    found = {
        r[0]: dict(zip(_COLUMNS, r[1:]))
        for r in con.execute(
            f"SELECT record_key, {', '.join(_COLUMNS)} FROM ({linkage_input_sql(con)}) WHERE record_key IN (?, ?)",
            [left, right],
        ).fetchall()
    }
    missing = {left, right} - set(found)
    if missing:
        raise KeyError(f"no loaded record {', '.join(sorted(missing))} (keys are source:source_record_id)")
    model = saved_model(con)
    with layout.scratch("explain") as scratch:
        scored = score_two(con, model, left, right, engine=Engine.of(linkage, scratch))
    given = _as_given(con, [left, right])
    levels = _levels(model)
    fields = []
    for name, labels in levels.items():
        gamma = int(scored[f"gamma_{name}"])
        label = "missing on either side" if gamma == -1 else labels[len(labels) - 1 - gamma]
        cols = _input_columns(model, name)

        def shown(key: str) -> str:
            text = " ".join(str(found[key].get(c)) for c in cols)
            raw = given.get((key, name))
            return f"{text} (as given: {raw!r})" if raw is not None else text

        fields.append(
            FieldEvidence(name, label, float(scored.get(f"mw_{name}", 0.0) or 0.0), shown(left), shown(right))
        )
    prior = float(scored["match_weight"]) - sum(f.match_weight for f in fields)
    threshold = con.execute("SELECT threshold_weight FROM linkage_threshold").fetchall()[0][0]
    citizens = dict(
        con.execute(
            "SELECT record_key, citizen_id FROM citizen_source_link WHERE record_key IN (?, ?)", [left, right]
        ).fetchall()
    )
    return Explanation(
        left,
        right,
        fields,
        prior,
        float(scored["match_weight"]),
        float(scored["match_probability"]),
        threshold,
        citizens.get(left),
        citizens.get(right),
    )


_COLUMNS = (
    "first_name_std",
    "initials",
    "family_name_std",
    "dob",
    "national_id",
    "street_std",
    "house_number",
    "postcode",
    "city_std",
    "sex",
    "email",
    "phone",
    "birth_place_std",
)
# comparison -> the canonical field whose quarantined raw value explains a missing input
_ISSUE_FIELD = {
    "date_of_birth": "date_of_birth",
    "national_id": "national_id",
    "sex": "sex",
    "email": "email",
    "phone": "phone",
    "address": "postcode",
}


def _as_given(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[tuple[str, str], str]:
    """(record key, comparison) -> the raw value ingest set aside, where there was one."""
    if not table_exists(con, "main", "field_issues"):
        return {}
    rows = con.execute(
        "SELECT source || ':' || record_id, field, raw FROM field_issues WHERE source || ':' || record_id IN (?, ?)",
        keys,
    ).fetchall()
    by_field = {f: c for c, f in _ISSUE_FIELD.items()}
    return {(key, by_field[field]): raw for key, field, raw in rows if field in by_field}
