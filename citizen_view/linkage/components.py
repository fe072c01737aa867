"""Which connected component each linked record lies in, kept so an incremental run finds what to re-cluster at once.

A full link writes `linkage_components` (record_key, component): the connected components of the links it clusters
on (scored pairs at or above the threshold and reviewers' `same`, less their `different`). Every citizen lies inside
one component and each component is clustered on its own. An incremental run's new links all touch a new record, so
the components that change are unions of old components a new record links to, or that hold a record that is gone
or a reviewer's decision: re-clustering those whole old components with the new records gives the clusters a full
run with the same model gives. The run then writes the components it found for the records it re-clustered.

A warehouse linked before this table existed gets it from its scored pairs and citizens (`write_from_links`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from citizen_view.linkage.clusters import components
from citizen_view.linkage.records import KEY_HASH, key_hash_sql, with_key_hash
from citizen_view.warehouse import table_exists

if TYPE_CHECKING:
    import duckdb

TABLE = "linkage_components"


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    return table_exists(con, "main", TABLE)


def write_all(con: duckdb.DuckDBPyConnection, keys: pl.Series, component: np.ndarray) -> None:
    """(Re)create the table from every record's component (in the caller's transaction)."""
    _from_frame(con, f"CREATE OR REPLACE TABLE {TABLE} AS", keys, component)


def _from_frame(con: duckdb.DuckDBPyConnection, statement: str, keys: pl.Series, component: np.ndarray) -> None:
    """`statement` (a CREATE ... AS or an INSERT INTO the table) over the records' `keys` and their `component`."""
    con.register("_components_frame", pl.DataFrame({"record_key": keys, "component": component}))
    try:
        con.execute(
            f"{statement} SELECT record_key, component::BIGINT AS component, {key_hash_sql()} AS {KEY_HASH} "
            "FROM _components_frame"
        )
    finally:
        con.unregister("_components_frame")


def write_from_links(
    con: duckdb.DuckDBPyConnection, *, threshold: float, same: list[tuple[str, str]], different: list[tuple[str, str]]
) -> None:
    """The table for a warehouse linked without it: components of the linked records over the scored pairs at or
    above `threshold`, reviewers' `same` (less their `different`) and the records each citizen holds."""
    keys = con.sql("SELECT record_key, citizen_id FROM citizen_source_link ORDER BY citizen_id, record_key").pl()
    index = keys.select("record_key", pl.int_range(0, keys.height, dtype=pl.Int64).alias("i"))
    decided = pl.DataFrame(same or [], schema={"l": pl.String, "r": pl.String}, orient="row")
    apart = pl.DataFrame(different or [], schema={"l": pl.String, "r": pl.String}, orient="row")
    strong = con.sql(
        "SELECT record_key_l AS l, record_key_r AS r FROM match_edges WHERE match_weight >= $t", params={"t": threshold}
    ).pl()
    pairs = (
        pl.concat([strong, decided])
        .join(apart, on=["l", "r"], how="anti")
        .join(apart.rename({"l": "r", "r": "l"}), on=["l", "r"], how="anti")
        .join(index.rename({"record_key": "l", "i": "a"}), on="l")
        .join(index.rename({"record_key": "r", "i": "b"}), on="r")
    )
    # a citizen's records in a row: each joined to the next
    citizen = keys.get_column("citizen_id")
    chain = np.flatnonzero((citizen.shift(-1) == citizen).fill_null(False).to_numpy())
    left = np.concatenate([pairs.get_column("a").to_numpy(), chain])
    right = np.concatenate([pairs.get_column("b").to_numpy(), chain + 1])
    _, label = components(keys.height, left, right)
    write_all(con, keys.get_column("record_key"), label)


def scope(
    con: duckdb.DuckDBPyConnection, *, new_keys: str, new_edges: str | None, gone: str, decided: str, threshold: float
) -> int:
    """`_scope`: the new records and every present record of the components that a new record links to (its links in
    `new_edges` at or above `threshold`), or that hold a gone record or a `decided` one; `_scope_components`: those
    components. Returns the scope's size."""
    # a new record may still have a component row (its links were taken back): its old component is re-formed too
    touched = (
        f"SELECT record_key FROM {gone} UNION ALL SELECT record_key FROM {decided} "
        f"UNION ALL SELECT record_key FROM {new_keys}"
    )
    if new_edges:
        touched += (
            f" UNION ALL SELECT record_key_l FROM {new_edges} WHERE match_weight >= $t"
            f" UNION ALL SELECT record_key_r FROM {new_edges} WHERE match_weight >= $t"
        )
    # found on the key hashes: a record sharing a hash with a touched one adds its component, which re-forms as it was
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope_components AS SELECT DISTINCT component FROM {TABLE} "
        f"WHERE {KEY_HASH} IN ({with_key_hash(touched)})",
        {"t": threshold} if new_edges else None,
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _scope AS SELECT record_key FROM {TABLE} "
        f"WHERE component IN (SELECT component FROM _scope_components) AND record_key NOT IN (SELECT record_key FROM {gone}) "
        f"UNION SELECT record_key FROM {new_keys}"
    )
    return con.execute("SELECT count(*) FROM _scope").fetchall()[0][0]


def replace_scope(con: duckdb.DuckDBPyConnection, keys: pl.Series, component: np.ndarray) -> None:
    """Replace the rows of the re-clustered components with the records' components now (in the caller's transaction)."""
    start = con.execute(f"SELECT coalesce(max(component), -1) + 1 FROM {TABLE}").fetchall()[0][0]
    con.execute(f"DELETE FROM {TABLE} WHERE component IN (SELECT component FROM _scope_components)")
    _from_frame(con, f"INSERT INTO {TABLE} BY NAME", keys, component + start)
