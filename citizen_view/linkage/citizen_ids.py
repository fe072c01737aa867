"""Stable, opaque citizen IDs that survive re-runs, merges and splits.

The rule (documented in README "Stable citizen IDs"): pair each previous citizen ID with the new
cluster that holds the most of its records, largest overlaps first; each ID and each cluster is used
once. Ties: an ID split into equal parts stays with the part holding the records its golden record's
name, birth date and national ID came from (who caseworkers knew under it: a 1+1 split no longer
hands the ID, and its audit trail, to whichever record key sorts first); two IDs holding equal parts
of one cluster leave it to the one first seen (the older; IDs are random, so not the smaller text).
A cluster that receives no previous ID takes back a retired ID whose records it holds (most of them
first; a record missing from one delivery and back in the next keeps its citizen's ID: `revived`),
else gets a new one.
A previous ID that found no cluster is retired: `merged` into the ID of the cluster now holding most
of its records, or `retired` when its records are gone. A new ID minted for records that had an ID
before is recorded as `split` from that ID. Same inputs, same clusters: no ID changes.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import polars as pl


class HistoryEvent(StrEnum):
    """What happened to a citizen ID in a run (`citizen_id_history.event`)."""

    CREATED = "created"  # a new citizen
    SPLIT = "split"  # a new ID for records that had another ID before
    MERGED = "merged"  # the ID's records now belong to another ID (related_citizen_id)
    RETIRED = "retired"  # the ID's records are gone
    REVIVED = "revived"  # records of a retired ID came back: they take it again


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


# Who a previous ID's golden record was made of (citizen_id, record_key: the records its name, birth date and
# national ID came from), and when each ID was first seen ({citizen_id: a sortable time}); asked only for tied IDs.
Identity = Callable[[list[str]], pl.DataFrame]
FirstSeen = Callable[[list[str]], dict[str, Any]]
# The records of IDs now retired among the records of a frame (record_key, citizen_id): asked once, for the records
# of the clusters no previous ID went to (every record, in a first run: a frame, not a list).
Retired = Callable[[pl.DataFrame], pl.DataFrame]


def assign_citizen_ids(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None,
    *,
    taken: set[str] | None = None,
    mint: Callable[[], str] = mint_citizen_id,
    identity: Identity | None = None,
    first_seen: FirstSeen | None = None,
    retired: Retired | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(record_key -> citizen_id, history events) from new clusters and the previous record -> ID links. `identity`
    and `first_seen` break ties (the module's rule); without them a tie goes to the smaller ID, then cluster.
    `retired`: where the records of clusters no previous ID went to find a retired ID to take back."""
    taken = set(taken or ())
    assigned: dict[int, str] = {}
    used: set[str] = set()
    overlap = pl.DataFrame(schema={"cluster": pl.Int64, "citizen_id": pl.String, "n": pl.UInt32})
    if previous is not None and previous.height:
        overlap = _ordered(_overlap(clusters, previous), clusters, identity=identity, first_seen=first_seen)
        taken |= set(previous.get_column("citizen_id").unique().to_list())
        _hand_out(overlap, assigned, used)

    events: list[tuple[str, str, str | None, int]] = []
    # The main predecessor of each cluster (largest overlap), for split events.
    predecessor: dict[int, tuple[str, int]] = {}
    for cluster, cid, n in overlap.iter_rows():
        predecessor.setdefault(cluster, (cid, n))
    if retired is not None:
        events += _revive(clusters, assigned, used | taken, retired)
    sizes = dict(clusters.group_by("cluster").len().iter_rows())
    for cluster in sorted(sizes):
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
            events.append((new_id, HistoryEvent.CREATED, None, sizes[cluster]))

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


def _revive(
    clusters: pl.DataFrame, assigned: dict[int, str], unavailable: set[str], retired: Retired
) -> list[tuple[str, str, str | None, int]]:
    """Give clusters no previous ID went to the retired IDs whose records they hold (largest overlaps first, each ID
    and cluster once; an ID in use is never taken); their `revived` events. Updates `assigned`."""
    waiting = clusters.filter(~pl.col("cluster").is_in(list(assigned)))
    if not waiting.height:
        return []
    found = retired(waiting.select("record_key"))
    if not found.height:
        return []
    overlap = _ordered(_overlap(waiting, found), waiting, identity=None, first_seen=None)
    return [(cid, HistoryEvent.REVIVED, None, n) for _, cid, n in _hand_out(overlap, assigned, set(unavailable))]


def _overlap(clusters: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """(cluster, citizen_id, n): how many records of each ID in `links` (record_key, citizen_id) each cluster holds."""
    return (
        clusters.join(links.select("record_key", "citizen_id"), on="record_key", how="inner")
        .group_by("cluster", "citizen_id")
        .agg(pl.len().alias("n"))
    )


def _hand_out(ordered: pl.DataFrame, assigned: dict[int, str], unavailable: set[str]) -> list[tuple[int, str, int]]:
    """Walk the overlaps in order, giving each cluster the first ID not given yet nor `unavailable` (each ID once);
    updates `assigned` and `unavailable`; the (cluster, citizen_id, n) given."""
    given = []
    for cluster, cid, n in ordered.iter_rows():
        if cluster not in assigned and cid not in unavailable:
            assigned[cluster] = cid
            unavailable.add(cid)
            given.append((cluster, cid, n))
    return given


def _ordered(
    overlap: pl.DataFrame, clusters: pl.DataFrame, *, identity: Identity | None, first_seen: FirstSeen | None
) -> pl.DataFrame:
    """The overlaps (cluster, citizen_id, n) in the order IDs are handed out: largest first; an ID split into equal
    parts to the part holding more of its identity's records; among IDs tied on a cluster, the one first seen; then
    the smaller ID and cluster (deterministic). The tie-breakers are looked up only when some tie needs them."""
    anchored = pl.lit(0, dtype=pl.UInt32)
    split = overlap.filter(pl.len().over("citizen_id", "n") > 1).get_column("citizen_id").unique().to_list()
    if split and identity is not None:
        held = (
            identity(sorted(split))
            .join(clusters, on="record_key")
            .group_by("cluster", "citizen_id")
            .agg(pl.len().cast(pl.UInt32).alias("anchored"))
        )
        overlap = overlap.join(held, on=["cluster", "citizen_id"], how="left")
        anchored = pl.col("anchored").fill_null(0)
    seen = pl.lit(0, dtype=pl.Int64)
    shared = overlap.filter(pl.len().over("cluster", "n") > 1).get_column("citizen_id").unique().to_list()
    if shared and first_seen is not None:
        times = first_seen(sorted(shared))
        order = {cid: i for i, cid in enumerate(sorted(times, key=lambda c: (times[c], c)))}
        seen = pl.col("citizen_id").replace_strict(order, default=len(order), return_dtype=pl.Int64)
    return (
        overlap.with_columns(anchored.alias("_anchored"), seen.alias("_seen"))
        .sort(["n", "_anchored", "_seen", "citizen_id", "cluster"], descending=[True, True, False, False, False])
        .select("cluster", "citizen_id", "n")
    )


def assign_checked(
    clusters: pl.DataFrame,
    previous: pl.DataFrame | None,
    *,
    used_before: Callable[[list[str]], set[str]],
    mint: Callable[[], str] = mint_citizen_id,
    identity: Identity | None = None,
    first_seen: FirstSeen | None = None,
    retired: Retired | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`assign_citizen_ids`, each minted ID checked afterwards with `used_before` (which of these IDs were ever used)
    and the assignment made again without those: for a history too long to read into memory for a few new IDs."""
    taken: set[str] = set()
    while True:
        links, history = assign_citizen_ids(
            clusters, previous, taken=taken, mint=mint, identity=identity, first_seen=first_seen, retired=retired
        )
        minted = history.filter(pl.col("event").is_in([HistoryEvent.CREATED, HistoryEvent.SPLIT]))
        clash = used_before(minted.get_column("citizen_id").to_list())
        if not clash:
            return links, history
        taken |= clash


# Each citizen ID's predecessors, from `citizen_id_history`: an ID split off from another, or another merged into
# it, holds records the other held until then; so did that one's predecessors, until earlier still. (citizen_id,
# predecessor_id, until): looks at the predecessor before `until` were looks at some of this citizen's records.
# Each step goes back in time, so the recursion ends.
LINEAGE_SQL = f"""
    WITH RECURSIVE steps AS (
        SELECT citizen_id AS successor, related_citizen_id AS predecessor, recorded_at AS until
        FROM citizen_id_history WHERE event = '{HistoryEvent.SPLIT}' AND related_citizen_id IS NOT NULL
        UNION ALL
        SELECT related_citizen_id, citizen_id, recorded_at
        FROM citizen_id_history WHERE event = '{HistoryEvent.MERGED}' AND related_citizen_id IS NOT NULL
    ),
    chain(citizen_id, predecessor_id, until) AS (
        SELECT successor, predecessor, until FROM steps
        UNION
        SELECT c.citizen_id, s.predecessor, s.until FROM chain c
        JOIN steps s ON s.successor = c.predecessor_id AND s.until < c.until
    )
    SELECT citizen_id, predecessor_id, max(until) AS until FROM chain
    WHERE citizen_id <> predecessor_id GROUP BY citizen_id, predecessor_id
"""
