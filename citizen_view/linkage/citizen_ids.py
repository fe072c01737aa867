"""Stable, opaque citizen IDs that survive re-runs, merges and splits.

The rule (documented in README "Stable citizen IDs"): pair each previous citizen ID with the new
cluster that holds the most of its records, largest overlaps first (ties: the older, i.e. smaller,
ID); each ID and each cluster is used once. A cluster that receives no previous ID gets a new one.
A previous ID that found no cluster is retired: `merged` into the ID of the cluster now holding most
of its records, or `retired` when its records are gone. A new ID minted for records that had an ID
before is recorded as `split` from that ID. Same inputs, same clusters: no ID changes.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from enum import StrEnum

import polars as pl


class HistoryEvent(StrEnum):
    """What happened to a citizen ID in a run (`citizen_id_history.event`)."""

    CREATED = "created"  # a new citizen
    SPLIT = "split"  # a new ID for records that had another ID before
    MERGED = "merged"  # the ID's records now belong to another ID (related_citizen_id)
    RETIRED = "retired"  # the ID's records are gone


HISTORY_SCHEMA = {
    "citizen_id": pl.String,
    "event": pl.String,
    "related_citizen_id": pl.String,
    "records": pl.Int64,
}


def mint_citizen_id() -> str:
    """A new opaque ID, e.g. CV-7K3M-9QX2-D8PA (60 random bits, Crockford-like base32, no record key in it)."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()[:12]
    return f"CV-{raw[:4]}-{raw[4:8]}-{raw[8:12]}"


def assign_citizen_ids(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None,
    *,
    taken: set[str] | None = None,
    mint: Callable[[], str] = mint_citizen_id,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(record_key -> citizen_id, history events) from new clusters and the previous record -> ID links."""
    taken = set(taken or ())
    assigned: dict[int, str] = {}
    used: set[str] = set()
    overlap = pl.DataFrame(schema={"cluster": pl.Int64, "citizen_id": pl.String, "n": pl.UInt32})
    if previous is not None and previous.height:
        overlap = (
            clusters.join(previous.select("record_key", "citizen_id"), on="record_key", how="inner")
            .group_by("cluster", "citizen_id")
            .agg(pl.len().alias("n"))
            .sort(["n", "citizen_id", "cluster"], descending=[True, False, False])
        )
        taken |= set(previous.get_column("citizen_id").unique().to_list())
        for cluster, cid, _n in overlap.iter_rows():
            if cluster not in assigned and cid not in used:
                assigned[cluster] = cid
                used.add(cid)

    events: list[tuple[str, str, str | None, int]] = []
    # The main predecessor of each cluster (largest overlap), for split events.
    predecessor: dict[int, tuple[str, int]] = {}
    for cluster, cid, n in overlap.iter_rows():
        predecessor.setdefault(cluster, (cid, n))
    for cluster in clusters.get_column("cluster").unique().sort().to_list():
        if cluster in assigned:
            continue
        new_id = mint()
        while new_id in taken:
            new_id = mint()
        taken.add(new_id)
        assigned[cluster] = new_id
        if cluster in predecessor:
            old, n = predecessor[cluster]
            events.append((new_id, HistoryEvent.SPLIT, old, n))
        else:
            events.append((new_id, HistoryEvent.CREATED, None, 0))

    links = clusters.with_columns(
        pl.col("cluster")
        .replace_strict(list(assigned), list(assigned.values()), return_dtype=pl.String)
        .alias("citizen_id")
    )
    if previous is not None and previous.height:
        lost = set(previous.get_column("citizen_id").unique().to_list()) - used
        if lost:
            where = (
                previous.filter(pl.col("citizen_id").is_in(list(lost)))
                .join(links.select("record_key", pl.col("citizen_id").alias("successor")), on="record_key", how="left")
                .group_by("citizen_id", "successor")
                .agg(pl.len().alias("n"))
                .sort(["citizen_id", "n", "successor"], descending=[False, True, False], nulls_last=True)
                .group_by("citizen_id", maintain_order=True)
                .first()
            )
            for cid, successor, n in where.iter_rows():
                events.append((cid, HistoryEvent.MERGED if successor else HistoryEvent.RETIRED, successor, n))
    history = pl.DataFrame(events, schema=HISTORY_SCHEMA, orient="row")
    return links.select("record_key", "citizen_id"), history


def assign_checked(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None,
    *,
    used_before: Callable[[list[str]], set[str]],
    mint: Callable[[], str] = mint_citizen_id,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`assign_citizen_ids`, each minted ID checked afterwards with `used_before` (which of these IDs were ever used)
    and the assignment made again without those: for a history too long to read into memory for a few new IDs."""
    taken: set[str] = set()
    while True:
        links, history = assign_citizen_ids(clusters, previous, taken=taken, mint=mint)
        minted = history.filter(pl.col("event").is_in([HistoryEvent.CREATED, HistoryEvent.SPLIT]))
        clash = used_before(minted.get_column("citizen_id").to_list())
        if not clash:
            return links, history
        taken |= clash
