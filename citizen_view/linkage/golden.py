"""The golden record: one row per citizen, each attribute chosen by survivorship, with where it came from.

Survivorship per attribute group: the most trusted source (sources.yaml `survivorship.ranking`, or
`per_field` for one group), then the most recent extract, then the value most of the citizen's
records agree on, then the record key. Parts that belong together (the name parts; street, number,
postcode and city) always come from one record, so an address is never stitched from two places.

Before the ranking: a record whose name, street, city or birth place is a stand-in ("unknown", "-", "XXX": the
values linkage treats as missing, found from the data by common_values.py and kept with the model as
`linkage_common_values`) gives that group's value only when no record of the citizen has a real one. A top-ranked
register's "UNKNOWN" then does not hide the family name another agency holds; a citizen known only by stand-ins
keeps what the sources wrote, with its provenance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.warehouse import table_columns, table_exists, transaction

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

Group = tuple[tuple[str, ...], str, str, str]


def _single(column: str, agrees: str | None = None, *, first: str = "") -> Group:
    """A group of one column: a record takes part when it has a value, and records agree on the value itself."""
    return (column,), f"{column} IS NOT NULL", agrees or column, first


# group -> (columns taken together, condition a record must meet, the value that "agrees", extra ordering first)
GROUPS: dict[str, Group] = {
    "name": (
        ("given_name", "middle_name", "family_name", "full_name"),
        "family_name IS NOT NULL",
        "coalesce(given_name_std, '') || '|' || coalesce(family_name_std, '')",
        "",
    ),
    "date_of_birth": _single("date_of_birth", "date_of_birth::VARCHAR"),
    "date_of_death": _single("date_of_death", "date_of_death::VARCHAR"),
    "sex": _single("sex"),
    "national_id": _single("national_id", first="national_id_valid DESC NULLS LAST,"),
    "address": (
        ("street", "house_number", "unit", "postcode", "city", "area_code"),
        "coalesce(street, postcode, area_code) IS NOT NULL",
        "coalesce(postcode, '') || '|' || coalesce(house_number, '')",
        "",
    ),
    "birth_place": _single("birth_place", "birth_place_std"),
    "email": _single("email"),
    "phone": _single("phone"),
}


# Per group, the standardised fields whose stand-ins (linkage_common_values: field, value) make a record's value for
# the group a stand-in; the fields are common_values.FIELDS.
STAND_IN_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("first_name_std", "family_name_std"),
    "address": ("street_std", "city_std"),
    "birth_place": ("birth_place_std",),
}
STAND_INS = "linkage_common_values"  # where the warehouse keeps them (common_values.TABLE), with the model
StandIns = dict[str, frozenset[str]]  # field -> its stand-in values, in memory

# The record columns golden_select reads: each group's columns, the columns its condition and agreement read, and the
# columns every group orders by.
COLUMNS_READ = {c for cols, *_ in GROUPS.values() for c in cols} | {
    "given_name_std",
    "family_name_std",
    "birth_place_std",
    *(f for fields in STAND_IN_FIELDS.values() for f in fields),
    "national_id_valid",
    "source",
    "source_record_id",
    "extracted_at",
    "record_key",
}


def rank_rows(sources: SourcesFile) -> list[tuple[str, str, int]]:
    """(attribute group, source, rank) for every group: `per_field` first, then the overall ranking."""
    ranks = sources.source_rank()
    per_field = sources.survivorship.per_field
    rows = []
    for group in GROUPS:
        order = list(per_field.get(group, [])) + [s for s in ranks if s not in per_field.get(group, [])]
        rows += [(group, s, i) for i, s in enumerate(order)]
    return rows


def _stand_in_sql(group: str, stand_ins: str | None) -> str:
    """SQL (over a record's columns): whether the record's value for `group` is a stand-in listed in table
    `stand_ins` (field, value); false for a group without such fields, or without a table."""
    fields = STAND_IN_FIELDS.get(group, ()) if stand_ins else ()
    found = [f"coalesce({f} IN (SELECT value FROM {stand_ins} WHERE field = '{f}'), false)" for f in fields]
    return " OR ".join(found) or "false"


def golden_select(linked: str, ranks: str, *, before: str = "", stand_ins: str | None = None) -> str:
    """SQL for one golden row per citizen from `linked` (citizen_id + source_records columns) and `ranks` (grp, source, rank).

    The same survivorship serves the warehouse's `citizen` (over every source) and a caseworker's view
    (over the sources their role may see). `before`: common table expressions the query starts with (`linked` may
    be one of them), so a caller can select the records in the same query. `stand_ins`: a table (field, value) of
    stand-in values (see the module's note), or None for none.
    """
    selects = []
    for group, (cols, condition, agree, first) in GROUPS.items():
        col_list = ", ".join(cols)
        stand_in = _stand_in_sql(group, stand_ins)
        selects.append(
            f"""
            {group} AS (
                SELECT citizen_id, {col_list}, source || ':' || source_record_id AS {group}_from
                FROM (
                    SELECT *, row_number() OVER (
                        PARTITION BY citizen_id
                        ORDER BY {first} stand_in, rank, extracted_at DESC NULLS LAST, agree DESC, source,
                                 source_record_id
                    ) AS pick
                    FROM (
                        SELECT x.*, k.rank, count(*) OVER (PARTITION BY citizen_id, {agree}) AS agree,
                               ({stand_in}) AS stand_in
                        FROM {linked} x JOIN {ranks} k ON k.grp = '{group}' AND k.source = x.source
                        WHERE {condition}
                    )
                ) WHERE pick = 1
            )"""
        )
    joins = " ".join(f"LEFT JOIN {g} USING (citizen_id)" for g in GROUPS)
    columns = ", ".join(f"{c}" for g, (cols, *_rest) in GROUPS.items() for c in [*cols, f"{g}_from"])
    return f"""
        WITH {before + "," if before else ""} members AS (
            SELECT citizen_id, count(*) AS record_count, count(DISTINCT source) AS source_count,
                   list(DISTINCT source ORDER BY source) AS sources
            FROM {linked} GROUP BY citizen_id
        ),
        {", ".join(selects)}
        SELECT citizen_id, {columns}, record_count, source_count, sources
        FROM members {joins}
    """


@dataclass
class GoldenReport:
    citizens: int
    in_several_sources: int


def build_golden(
    con: duckdb.DuckDBPyConnection,
    sources: SourcesFile,
    *,
    only_changed: bool = False,
    relinked: tuple[str, str] | None = None,
) -> GoldenReport:
    """(Re)create `citizen` from `citizen_source_link` and `source_records`, and count the citizens more than one source knows.

    `only_changed`: rebuild just the citizens an incremental link touched (table `linkage_changes`). `relinked`: the
    tables (links, records) that incremental link left on this connection, holding every record of those citizens
    (the temporary `_relinked` and `_scope_rows`): read instead of the big tables.
    """
    ranks = rank_rows(sources)
    # a new survivorship ranking, or a new list of stand-ins (a model trained again), changes any citizen's choices
    if only_changed and ranked_otherwise(con, ranks):
        only_changed, relinked = False, None
    if only_changed and relinked and table_exists(con, "main", "citizen"):
        _rebuild_relinked(con, sources, relinked)
        return _report(con)
    con.execute("CREATE OR REPLACE TEMP TABLE _source_rank (grp VARCHAR, source VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO _source_rank VALUES (?, ?, ?)", ranks)
    if only_changed and relinked:
        links, records = relinked
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _linked AS SELECT l.citizen_id, r.* FROM {records} r JOIN {links} l USING (record_key)"
        )
    elif only_changed:
        # the few links of the touched citizens first, then only the record columns survivorship reads: a join of
        # every link with every record, all columns, costs more than the rest of the step at a million records
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _changed_links AS SELECT record_key, citizen_id FROM citizen_source_link "
            "SEMI JOIN linkage_changes USING (citizen_id)"
        )
        present = set(table_columns(con, "source_records"))
        read = ", ".join(f"r.{c}" for c in sorted(COLUMNS_READ & present))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _linked AS SELECT l.citizen_id, {read} "
            "FROM source_records r JOIN _changed_links l USING (record_key)"
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _linked AS SELECT l.citizen_id, r.* "
            "FROM citizen_source_link l JOIN source_records r USING (record_key)"
        )
    select = golden_select(
        "_linked", "_source_rank", stand_ins=STAND_INS if table_exists(con, "main", STAND_INS) else None
    )
    if only_changed and table_exists(con, "main", "citizen"):
        with transaction(con):
            con.execute("DELETE FROM citizen WHERE citizen_id IN (SELECT citizen_id FROM linkage_changes)")
            con.execute(f"INSERT INTO citizen BY NAME {select}")
    else:
        with transaction(con):
            con.execute(f"CREATE OR REPLACE TABLE citizen AS {select} ORDER BY citizen_id")
            store_ranking(con, ranks)
    return _report(con)


RANKING = "golden_ranking"  # the survivorship ranking the whole of `citizen` was last built with
STAND_INS_USED = "golden_stand_ins"  # and the stand-ins it passed over (field, value)


def read_stand_ins(con: duckdb.DuckDBPyConnection, table: str = STAND_INS) -> StandIns:
    """The stand-in values of `table` (field, value) by field; none when there is no such table."""
    if not table_exists(con, "main", table):
        return {}
    found: dict[str, set[str]] = {}
    for field, value in con.execute(f"SELECT field, value FROM {table}").fetchall():
        found.setdefault(field, set()).add(value)
    return {field: frozenset(values) for field, values in found.items()}


def ranked_otherwise(con: duckdb.DuckDBPyConnection, ranks: list[tuple[str, str, int]]) -> bool:
    """Whether `citizen` was built with another survivorship ranking than `ranks` or other stand-ins than the model's
    (or unknown ones, as by a release before they were recorded): then every golden record is chosen anew, not only
    the citizens an update touched."""
    if not table_exists(con, "main", RANKING) or not table_exists(con, "main", STAND_INS_USED):
        return True
    if set(con.execute(f"SELECT grp, source, rank FROM {RANKING}").fetchall()) != set(ranks):
        return True
    return read_stand_ins(con, STAND_INS_USED) != read_stand_ins(con)


def store_ranking(con: duckdb.DuckDBPyConnection, ranks: list[tuple[str, str, int]]) -> None:
    """Record the ranking `citizen` was built with and the stand-ins it passed over (the model's now), in the caller's
    transaction, with the table."""
    con.execute(f"CREATE OR REPLACE TABLE {RANKING} (grp VARCHAR, source VARCHAR, rank INTEGER)")
    con.executemany(f"INSERT INTO {RANKING} VALUES (?, ?, ?)", ranks)
    con.execute(f"CREATE OR REPLACE TABLE {STAND_INS_USED} (field VARCHAR, value VARCHAR)")
    if table_exists(con, "main", STAND_INS):
        con.execute(f"INSERT INTO {STAND_INS_USED} SELECT field, value FROM {STAND_INS}")


def _report(con: duckdb.DuckDBPyConnection) -> GoldenReport:
    n = con.execute("SELECT count(*) FROM citizen").fetchall()[0][0]
    multi = con.execute("SELECT count(*) FROM citizen WHERE source_count > 1").fetchall()[0][0]
    return GoldenReport(n, multi)


def _rebuild_relinked(con: duckdb.DuckDBPyConnection, sources: SourcesFile, relinked: tuple[str, str]) -> None:
    """The golden rows of the citizens an incremental link touched, from the tables it left (`relinked`: links,
    records), by golden_frame: for the few thousand records of an update, the SQL's twenty window passes cost
    several times more than the rows themselves."""
    links, records = relinked
    present = set(table_columns(con, records))
    read = ", ".join(f"r.{c}" for c in sorted(COLUMNS_READ & present))
    linked = con.sql(f"SELECT l.citizen_id, {read} FROM {records} r JOIN {links} l USING (record_key)").pl()
    with transaction(con, _golden_rows=golden_frame(linked, rank_rows(sources), read_stand_ins(con))):
        con.execute("DELETE FROM citizen WHERE citizen_id IN (SELECT citizen_id FROM linkage_changes)")
        con.execute("INSERT INTO citizen BY NAME SELECT * FROM _golden_rows")


def _polars_rules() -> dict[str, tuple[pl.Expr, pl.Expr, list[tuple[str, bool]]]]:
    """Each group's condition, the value its records agree on and what it orders by first (column, descending), as
    Polars expressions: GROUPS' SQL, for golden_frame."""

    def joined(*cols: str) -> pl.Expr:
        return pl.concat_str([pl.col(c).fill_null("") for c in cols], separator="|")

    rules = {
        "name": (pl.col("family_name").is_not_null(), joined("given_name_std", "family_name_std"), []),
        "address": (
            pl.any_horizontal(pl.col(c).is_not_null() for c in ("street", "postcode", "area_code")),
            joined("postcode", "house_number"),
            [],
        ),
        "birth_place": (pl.col("birth_place").is_not_null(), pl.col("birth_place_std"), []),
    }
    for g in ("date_of_birth", "date_of_death", "sex", "national_id", "email", "phone"):
        rules[g] = (pl.col(g).is_not_null(), pl.col(g), [("national_id_valid", True)] if g == "national_id" else [])
    return rules


def _stand_in_expr(group: str, stand_ins: StandIns) -> pl.Expr:
    """Polars: whether a record's value for `group` is a stand-in (_stand_in_sql)."""
    found = [
        pl.col(f).is_in(sorted(stand_ins[f])).fill_null(False)
        for f in STAND_IN_FIELDS.get(group, ())
        if stand_ins.get(f)
    ]
    return pl.any_horizontal(found) if found else pl.lit(False)


def golden_frame(
    linked: pl.DataFrame, ranks: list[tuple[str, str, int]], stand_ins: StandIns | None = None
) -> pl.DataFrame:
    """golden_select over a frame of linked records (citizen_id and source_records columns), in Polars: one golden
    row per citizen (tests/test_golden.py checks it against the SQL where each tie-breaker decides). One pass: each
    group's rank (one join with a small table of ranks), eligibility and agreement as columns, then one aggregation per
    citizen that takes each group's first record in its order (a join, sort and unique per group cost three times
    more; a `replace_strict` per group for the ranks cost ~1 ms each, ~20 of an update's ~40 ms on 3,300 records)."""
    rules = _polars_rules()
    rank_of: dict[str, dict[str, int]] = {group: {} for group in GROUPS}
    for g, s, r in ranks:  # a source ranked twice for a group takes its best (lowest) rank, as the SQL's join does
        if g in rank_of:
            rank_of[g][s] = min(r, rank_of[g].get(s, r))
    sources = sorted({s for by in rank_of.values() for s in by})
    ranked = pl.DataFrame(
        {
            "source": pl.Series(sources, dtype=linked.schema["source"]),
            **{
                f"_rank{i}": pl.Series([rank_of[g].get(s) for s in sources], dtype=pl.Int64)
                for i, g in enumerate(GROUPS)
            },
        }
    )
    marks = []
    for i, group in enumerate(GROUPS):
        eligible = (rules[group][0] & pl.col(f"_rank{i}").is_not_null()).fill_null(False)
        marks += [eligible.alias(f"_ok{i}"), _stand_in_expr(group, stand_ins or {}).alias(f"_stand{i}")]
    frame = linked.lazy().join(ranked.lazy(), on="source", how="left").with_columns(marks)
    agreed = [
        pl.col(f"_ok{i}").sum().over("citizen_id", rules[group][1]).alias(f"_agree{i}")
        for i, group in enumerate(GROUPS)
    ]
    frame = frame.with_columns(*agreed, (pl.col("source") + ":" + pl.col("source_record_id")).alias("_from"))
    picks = []
    for i, (group, (cols, *_sql)) in enumerate(GROUPS.items()):
        first = rules[group][2]
        order = [(f"_ok{i}", True), *first, (f"_stand{i}", False), (f"_rank{i}", False), ("extracted_at", True)]
        order += [(f"_agree{i}", True)]
        order += [("source", False), ("source_record_id", False)]
        picked = (
            pl.struct(f"_ok{i}", *cols, "_from")
            .sort_by([c for c, _ in order], descending=[d for _, d in order], nulls_last=True)
            .first()
        )
        picks.append(picked.alias(f"_pick{i}"))
    out = frame.group_by("citizen_id").agg(
        pl.len().cast(pl.Int64).alias("record_count"),
        pl.col("source").n_unique().cast(pl.Int64).alias("source_count"),
        pl.col("source").unique().sort().alias("sources"),
        *picks,
    )
    fields = []
    for i, (group, (cols, *_sql)) in enumerate(GROUPS.items()):
        pick, ok = pl.col(f"_pick{i}"), pl.col(f"_pick{i}").struct.field(f"_ok{i}")
        fields += [pl.when(ok).then(pick.struct.field(c)).alias(c) for c in cols]
        fields.append(pl.when(ok).then(pick.struct.field("_from")).alias(f"{group}_from"))
    return out.select("citizen_id", "record_count", "source_count", "sources", *fields).collect()


# The same survivorship over the few records of one look (the service: one citizen's records, by index probes), in
# Python: a group's condition and the value its records agree on, as functions of a record. Planning and running the
# SQL above for five records costs tens of milliseconds; tests/test_resolve.py checks both choose the same values.
def _agree_text(*cols: str):
    return lambda r: tuple(r.get(c) or "" for c in cols)


GROUP_RULES: dict[str, tuple] = {
    "name": (lambda r: r.get("family_name") is not None, _agree_text("given_name_std", "family_name_std")),
    "address": (
        lambda r: any(r.get(c) is not None for c in ("street", "postcode", "area_code")),
        _agree_text("postcode", "house_number"),
    ),
    "birth_place": (lambda r: r.get("birth_place") is not None, lambda r: r.get("birth_place_std")),
    **{
        g: ((lambda r, c=g: r.get(c) is not None), (lambda r, c=g: r.get(c)))
        for g in ("date_of_birth", "date_of_death", "sex", "national_id", "email", "phone")
    },
}


def _newest_first(value) -> tuple:
    return (0, -value.timestamp()) if value is not None else (1, 0.0)


def golden_rows(
    records: list[dict], ranks: list[tuple[str, str, int]], stand_ins: StandIns | None = None
) -> dict[str, dict]:
    """`golden_select` over records in memory (dicts with citizen_id and source_records columns): citizen -> golden."""
    rank = {(g, s): r for g, s, r in ranks}
    stand_ins = stand_ins or {}

    def stand_in(r: dict, group: str) -> bool:
        return any(r.get(f) in stand_ins.get(f, ()) for f in STAND_IN_FIELDS.get(group, ()))

    by_citizen: dict[str, list[dict]] = {}
    for rec in records:
        by_citizen.setdefault(rec["citizen_id"], []).append(rec)
    out = {}
    for citizen_id, rows in by_citizen.items():
        sources = sorted({r["source"] for r in rows})
        golden: dict = {"citizen_id": citizen_id}
        for group, (cols, *_sql) in GROUPS.items():
            condition, agree = GROUP_RULES[group]
            eligible = [r for r in rows if (group, r["source"]) in rank and condition(r)]
            counts: dict = {}
            for r in eligible:
                counts[agree(r)] = counts.get(agree(r), 0) + 1

            def order(r: dict, group: str = group, agree=agree, counts=counts) -> tuple:
                valid = r.get("national_id_valid")
                first = (0 if valid else 1 if valid is False else 2) if group == "national_id" else 0
                newest = _newest_first(r.get("extracted_at"))
                held = (first, stand_in(r, group), rank[group, r["source"]], newest, -counts[agree(r)])
                return (*held, r["source"], r["source_record_id"])

            pick = min(eligible, key=order) if eligible else None
            golden |= {c: (pick.get(c) if pick else None) for c in cols}
            golden[f"{group}_from"] = f"{pick['source']}:{pick['source_record_id']}" if pick else None
        golden |= {"record_count": len(rows), "source_count": len(sources), "sources": sources}
        out[citizen_id] = golden
    return out
