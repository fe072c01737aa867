"""A page of the clerical review queue as one role may see it: the items, their records' visible fields, the evidence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citizen_view.linkage.review import load_overrides, open_items, pair_id
from citizen_view.serving.documents import record_known, records_by_key
from citizen_view.serving.resolve import SHOWN_FIELDS

if TYPE_CHECKING:
    import duckdb

    from citizen_view.serving.access import Role

PAGE_SIZE = 10
COLUMNS = ("full_name", "date_of_birth", "national_id", "street", "house_number", "postcode", "city")


@dataclass
class ReviewPage:
    """One page of open review items with the records they compare, limited to what the role may see."""

    items: list[dict[str, Any]]
    total: int
    records: dict[str, dict[str, Any]]  # "source:source_record_id" -> the role's visible columns
    columns: list[str]
    citizen_ids: list[str]  # every citizen the page shows
    record_keys: list[str]
    queue: Any  # what open_items returned (the template reads its counts)


def review_page(
    cur: duckdb.DuckDBPyConnection,
    decisions_file: Path,
    role: Role,
    *,
    kind: str | None,
    source: str | None,
    page_no: int,
) -> ReviewPage:
    """Open items not yet decided, of the role's sources, one page; records and evidence cut to the role's fields."""
    decided = {pair_id(a, b) for a, b in load_overrides(decisions_file).select("record_key_l", "record_key_r").rows()}
    columns = [c for c in COLUMNS if role.sees(c)]  # the same fields as the role's profiles
    found = open_items(
        cur, decided, kind=kind, source=source, sources=role.sources, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    keys = sorted({k for i in found.items for k in (i["record_key_l"], i["record_key_r"])})
    shown = {i["citizen_id"] for i in found.items if i.get("citizen_id")}
    records: dict[str, dict[str, Any]] = {}
    for key, record in records_by_key(cur, keys).items():  # an index probe and a document per record
        records[key] = {c: record.get(c) for c in columns}
        shown.add(record["citizen_id"])
    for item in found.items:  # per-field weights only for comparisons of fields the role sees
        item["evidence"] = {k: v for k, v in item["evidence"].items() if compares_visible(k, role)}
    return ReviewPage(found.items, found.total, records, columns, sorted(shown), keys, found)


# The fields a suspicious citizen's reasons cite (linkage/review.py: several valid national IDs, several birth dates).
SUSPICION_FIELDS = ("national_id", "date_of_birth")


def review_needs(cur: duckdb.DuckDBPyConnection) -> frozenset[str]:
    """The comparisons (and fields) of the served review queue a reviewer must see: a reviewer weighs a link on all
    of its evidence, and a total weight beside the visible parts would tell how the hidden ones compared (a negative
    gap: the birth dates differ). Read from the queue: every uncertain link's evidence names every comparison of the
    model; a suspicious citizen cites national IDs and birth dates. The service reads it once per view (it parses
    every item's evidence: about 0.1 s at 1M, 84,860 items)."""
    names, suspicious = cur.execute(
        "SELECT list_distinct(flatten(list(json_keys(evidence::JSON)))), bool_or(evidence IS NULL) FROM review_queue"
    ).fetchall()[0]
    return frozenset(set(names or []) | (set(SUSPICION_FIELDS) if suspicious else set()))


def fields_hidden_from(needs: frozenset[str], role: Role) -> list[str]:
    """Which of the review queue's `needs` (review_needs) the role may not see. Empty: the role may review."""
    return sorted(n for n in needs if not compares_visible(n, role))


def compares_visible(comparison: str, role: Role) -> bool:
    """Whether a comparison's weight may be shown: it is named after a field the role sees (or that field's part); a
    term-frequency adjustment (`tf_adj_<name>`) goes with its comparison."""
    name = comparison.removeprefix("tf_adj_").removeprefix("tf_")
    if name in SHOWN_FIELDS:  # e.g. the address: one comparison over street, house number, postcode and city
        return all(role.sees(f) for f in SHOWN_FIELDS[name])
    return any(name == f or name.startswith(f"{f}_") or f.startswith(f"{name}_") for f in role.fields)


def record_exists(cur: duckdb.DuckDBPyConnection, key: str) -> bool:
    """Whether `source:source_record_id` names a record of the view."""
    return ":" in key and record_known(cur, key)
