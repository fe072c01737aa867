"""Which citizen one incoming record belongs to, answered from the served view without a pipeline run.

The record is standardised as ingest would (linkage/incoming.py), candidates are found by index probes on the
keys the model's blocking rules use (ID, birth date, names, family name + postcode, address), only among records
of sources the caller's role may see, and each candidate is compared with the saved model's own SQL
(linkage/online.py). Per citizen the best-scoring record counts: `matched` when one citizen reaches the upper end
of the review band and no other citizen reaches its lower end; `new` when none reaches the lower end; `review`
otherwise (a weight inside the band, or two citizens competing). The band is the review queue's (`review.band`,
default the threshold +/- 1.5).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citizen_view.contract import DEFAULT_ID_SCHEMES, OPAQUE_ID
from citizen_view.linkage.explain import _input_columns
from citizen_view.linkage.incoming import linkage_values, standardise_one
from citizen_view.linkage.online import INPUT_COLUMNS, OnlineScorer, probability, scorer
from citizen_view.linkage.scoring import tf_columns
from citizen_view.serving.resolve_view import INDEXED

if TYPE_CHECKING:
    import duckdb

    from citizen_view.serving.access import Role

MATCHED, NEW, REVIEW = "matched", "new", "review"
MAX_CANDIDATES = 2000  # records compared at most (a birth date shared by thousands is no key)
SHOWN = 3  # citizens shown with their evidence
# comparison -> the canonical fields its values show (a role sees a candidate's value only for fields it may see)
SHOWN_FIELDS = {
    "given_name": ("given_name",),
    "family_name": ("family_name",),
    "date_of_birth": ("date_of_birth",),
    "national_id": ("national_id",),
    "address": ("street", "house_number", "postcode", "city"),
    "birth_place": ("birth_place",),
}


@dataclass(frozen=True)
class ResolveModel:
    """What one served view resolves with (read once per view)."""

    model: dict[str, Any]
    scorer: OnlineScorer
    tf_columns: list[str]
    threshold: float
    low: float
    high: float
    earliest: dt.date
    latest: dt.date | None
    country: str | None
    masked: dict[str, set[str]]


_models: dict[str, ResolveModel | None] = {}
_lock = threading.Lock()


def resolve_model(cur: duckdb.DuckDBPyConnection, view: str) -> ResolveModel | None:
    """The view's model, or None for a view published without one."""
    with _lock:
        if view in _models:
            return _models[view]
    found = None
    if cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'resolve_model'").fetchall()[0][
        0
    ]:
        model_json, threshold, low, high, earliest, latest = cur.execute("SELECT * FROM resolve_model").fetchall()[0]
        country = cur.execute("SELECT country FROM view_info").fetchall()[0][0]
        masked: dict[str, set[str]] = {}
        for field, value in cur.execute("SELECT field, value FROM resolve_masked").fetchall():
            masked.setdefault(field, set()).add(value)
        model = json.loads(model_json)
        found = ResolveModel(
            model, scorer(model_json), tf_columns(model), threshold, low, high, earliest, latest, country, masked
        )
    with _lock:
        _models[view] = found
    return found


def _left(values: dict[str, Any], m: ResolveModel) -> tuple[str, dict[str, Any]]:
    """The incoming record as a one-row table of the model's inputs, term frequencies looked up in the view."""
    params = {f"in_{c}": values.get(c) for c in INPUT_COLUMNS if c not in ("record_key", "source")}
    cols = [f"$in_{c} AS {c}" for c in INPUT_COLUMNS if c not in ("record_key", "source")]
    cols += [f"(SELECT tf FROM resolve_tf WHERE tf_key = $tfk_{c}) AS tf_{c}" for c in m.tf_columns]
    params |= {f"tfk_{c}": f"{c}\x1f{values[c]}" if values.get(c) is not None else None for c in m.tf_columns}
    return "SELECT 'online:incoming' AS record_key, 'online' AS source, NULL AS citizen_id, " + ", ".join(cols), params


def _probe_keys(v: dict[str, Any]) -> dict[str, Any]:
    def key(*parts: Any) -> str | None:
        return "\x1f".join(parts) if all(p is not None for p in parts) else None

    return {
        "k_national_id": v["national_id"],
        "k_dob": v["dob"],
        "k_name_key": key(v["family_name_block"], v["first_name_block"]),
        "k_name_swapped": key(v["first_name_block"], v["family_name_block"]),
        "k_family_postcode_key": key(v["family_name_block"], v["postcode"]),
        "k_postcode_key": key(v["postcode"], v["house_number"]),
        "k_street_key": key(v["street_std"], v["house_number"]),
    }


def probe_sql(m: ResolveModel) -> str:
    """The candidate records: one index probe per key, only the columns the comparison reads (each column of a row
    found by an index is fetched on its own, so fewer columns cost less)."""
    cols = ", ".join([*INPUT_COLUMNS, "citizen_id", *(f"tf_{c}" for c in m.tf_columns)])
    return " UNION ALL ".join(
        [
            *(f"SELECT {cols} FROM resolve_records WHERE {c} = $k_{c}" for c in INDEXED),
            f"SELECT {cols} FROM resolve_records WHERE name_key = $k_name_swapped",
        ]
    )


def score_candidates(
    cur: duckdb.DuckDBPyConnection, m: ResolveModel, values: dict[str, Any], sources: list[str]
) -> list[dict[str, Any]]:
    """The model's comparison of the record with every candidate record of `sources`: one row each (the columns on
    either side as `<column>_l` / `_r`, `gamma_<comparison>`, `match_weight`, `fields`), best first."""
    left, params = _left(values, m)
    sides = ", ".join(
        f"l.{c} AS {c}_l, r.{c} AS {c}_r" for c in [*INPUT_COLUMNS, "citizen_id", *(f"tf_{t}" for t in m.tf_columns)]
    )
    sql = (
        f"WITH probe AS MATERIALIZED ({probe_sql(m)}), "
        "online_right AS MATERIALIZED (SELECT * FROM (SELECT DISTINCT ON (record_key) * FROM probe "
        f"WHERE list_contains($sources, source)) LIMIT {MAX_CANDIDATES}), "
        f"online_left AS ({left}), blocked AS (SELECT {sides} FROM online_left l CROSS JOIN online_right r) "
        f"SELECT *, {m.scorer.gamma_sql} FROM blocked"
    )
    found = cur.execute(sql, params | _probe_keys(values) | {"sources": sources})
    names = [d[0] for d in found.description]
    rows = []
    for values_ in found.fetchall():
        row = dict(zip(names, values_))
        row["match_weight"], row["fields"] = m.scorer.weights(row)
        row["match_probability"] = probability(row["match_weight"])
        rows.append(row)
    return sorted(rows, key=lambda r: (-r["match_weight"], r["citizen_id_r"]))


def _evidence(row: dict[str, Any], m: ResolveModel, role: Role) -> list[dict[str, Any]]:
    """Per comparison: its level, its weight (term-frequency adjustment included) and the values on either side
    (the candidate's only for fields the role may see)."""
    out = []
    for name, (label, weight) in row["fields"].items():
        cols = _input_columns(m.model, name)
        item = {
            "field": name,
            "level": label,
            "match_weight": round(weight, 3),
            "incoming": " ".join(str(row.get(f"{c}_l")) for c in cols if row.get(f"{c}_l") is not None) or None,
        }
        if all(role.sees(f) for f in SHOWN_FIELDS.get(name, (name,))):
            item["candidate"] = " ".join(str(row.get(f"{c}_r")) for c in cols if row.get(f"{c}_r") is not None) or None
        out.append(item)
    return out


def decide(best: list[dict[str, Any]], m: ResolveModel) -> tuple[str, str | None, str]:
    """(decision, citizen or None, why) from each citizen's best-scoring record, best first."""
    if not best or best[0]["match_weight"] < m.low:
        top = (
            f"the best match weight {best[0]['match_weight']:+.2f}"
            if best
            else "no candidate record found: weight -inf"
        )
        return NEW, None, f"{top} is below the review band's lower end {m.low:+.2f}"
    first = best[0]
    if len(best) > 1 and best[1]["match_weight"] >= m.low:
        return REVIEW, None, f"{len([b for b in best if b['match_weight'] >= m.low])} citizens reach the review band"
    if first["match_weight"] < m.high:
        return (
            REVIEW,
            first["citizen_id_r"],
            f"match weight {first['match_weight']:+.2f} is within the review band [{m.low:+.2f}, {m.high:+.2f}]",
        )
    return MATCHED, first["citizen_id_r"], f"match weight {first['match_weight']:+.2f} is at or above {m.high:+.2f}"


def resolve(cur: duckdb.DuckDBPyConnection, m: ResolveModel, record: dict[str, Any], role: Role) -> dict[str, Any]:
    """The answer for one record (canonical fields as text): decision, citizen, weights and evidence per field."""
    scheme = DEFAULT_ID_SCHEMES.get(m.country or "", OPAQUE_ID)
    canonical, set_aside = standardise_one(
        record, country=m.country, id_scheme=scheme, earliest=m.earliest, latest=m.latest or dt.date.today()
    )
    values = linkage_values(canonical, m.masked)
    rows = score_candidates(cur, m, values, role.sources)
    best: dict[str, dict[str, Any]] = {}
    for row in rows:  # best first: the first row of a citizen is its best record
        best.setdefault(row["citizen_id_r"], row)
    ranked = list(best.values())
    decision, citizen_id, why = decide(ranked, m)
    top = ranked[0] if ranked else None
    return {
        "decision": decision,
        "citizen_id": citizen_id,
        "match_weight": round(float(top["match_weight"]), 3) if top else None,
        "match_probability": round(float(top["match_probability"]), 6) if top else None,
        "reason": why,
        "threshold": m.threshold,
        "review_band": [round(m.low, 3), round(m.high, 3)],
        "records_compared": len(rows),
        "set_aside": set_aside,
        "candidates": [
            {
                "citizen_id": r["citizen_id_r"],
                "record_key": r["record_key_r"],
                "match_weight": round(float(r["match_weight"]), 3),
                "match_probability": round(float(r["match_probability"]), 6),
                "evidence": _evidence(r, m, role),
            }
            for r in ranked[:SHOWN]
        ],
    }
