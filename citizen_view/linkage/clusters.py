"""Group linked records into citizens without chaining distinct people together.

Plain connected components chain: twin A ~ "J. de Vries" on a permit ~ twin B makes one citizen
of two. Here links are taken strongest first and a merge is refused when it would put into one
citizen two different valid national IDs, or a date of birth that is neither equal to, nor a day/month
swap or one-digit typo of, any date already in the cluster. Components without such a conflict (the
vast majority) are accepted as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class ClusterResult:
    """`labels`: record_key -> cluster (int); plus how many components needed the conflict-aware pass."""

    labels: pl.DataFrame
    components: int
    components_with_conflicts: int
    merges_refused: int


def near_dates(a: str, b: str) -> bool:
    """Same date, day and month swapped, two adjacent digits transposed, or one digit wrong (yyyymmdd).

    A wrong digit counts as a typo only from the last digit of the year on: 1960 and 1990 differ in
    one digit but are a generation apart (parent and child with the same name).
    """
    if a == b:
        return True
    if len(a) != 8 or len(b) != 8:
        return False
    if a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]:
        return True
    diff = [i for i in range(8) if a[i] != b[i]]
    if len(diff) == 1:
        return diff[0] >= 3
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


class _Cluster:
    __slots__ = ("members", "ids", "dates", "apart")

    def __init__(self, member: int, nid: str | None, dob: str | None, apart: set[int] | None = None):
        self.members = [member]
        self.ids = {nid} if nid else set()
        self.dates = {dob} if dob else set()
        self.apart = set(apart or ())  # records a reviewer said are a different person

    def kept_apart_from(self, other: _Cluster) -> bool:
        return bool(self.apart & set(other.members)) or bool(other.apart & set(self.members))

    def conflicts_with(self, other: _Cluster) -> bool:
        if self.ids and other.ids and len(self.ids | other.ids) > 1:
            return True
        if self.dates and other.dates:
            small, big = (other.dates, self.dates) if len(other.dates) <= len(self.dates) else (self.dates, other.dates)
            return any(not any(near_dates(d, e) for e in big) for d in small)
        return False

    def absorb(self, other: _Cluster) -> None:
        self.members.extend(other.members)
        self.ids |= other.ids
        self.dates |= other.dates
        self.apart |= other.apart


def cluster_records(
    records: pl.DataFrame, edges: pl.DataFrame, *, threshold: float,
    same: list[tuple[str, str]] | None = None, different: list[tuple[str, str]] | None = None,
) -> ClusterResult:
    """Cluster `records` (record_key, national_id, national_id_valid, dob) on `edges` at or above `threshold`.

    `edges` has record_key_l, record_key_r, match_weight. Every record gets a label, singletons included.
    Reviewers' decisions win over the model: `same` pairs are linked first and never refused (not even
    for a conflict), `different` pairs never end up in one citizen, whatever links connect them.
    """
    keys = records.get_column("record_key")
    index = pl.DataFrame({"record_key": keys, "_i": pl.int_range(0, keys.len(), eager=True)})
    forced = pl.DataFrame(same or [], schema={"record_key_l": pl.String, "record_key_r": pl.String}, orient="row")
    forced = forced.with_columns(pl.lit(float("inf")).alias("match_weight"))
    apart = pl.DataFrame(different or [], schema={"record_key_l": pl.String, "record_key_r": pl.String}, orient="row")
    strong = (
        pl.concat([forced, edges.filter(pl.col("match_weight") >= threshold).select(forced.columns)], how="vertical_relaxed")
        .join(apart, on=["record_key_l", "record_key_r"], how="anti")
        .join(apart.rename({"record_key_l": "record_key_r", "record_key_r": "record_key_l"}), on=["record_key_l", "record_key_r"], how="anti")
        .join(index.rename({"record_key": "record_key_l", "_i": "i"}), on="record_key_l")
        .join(index.rename({"record_key": "record_key_r", "_i": "j"}), on="record_key_r")
        .select("i", "j", "match_weight")
    )
    apart_idx = (
        apart.join(index.rename({"record_key": "record_key_l", "_i": "i"}), on="record_key_l")
        .join(index.rename({"record_key": "record_key_r", "_i": "j"}), on="record_key_r")
        .select("i", "j")
        .rows()
    )
    partners: dict[int, set[int]] = {}
    for a, b in apart_idx:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    n = keys.len()
    i = strong.get_column("i").to_numpy()
    j = strong.get_column("j").to_numpy()
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    comp = comp.astype(np.int64)

    # Components where two records could conflict (several valid IDs or several dates) get the careful pass.
    valid_id = pl.when(records.get_column("national_id_valid").fill_null(False)).then(records.get_column("national_id"))
    facts = pl.DataFrame({"comp": comp}).with_columns(
        pl.select(valid_id).to_series().alias("nid"), records.get_column("dob").alias("dob")
    )
    suspicious = (
        facts.group_by("comp")
        .agg(pl.col("nid").n_unique().alias("n_id"), pl.col("nid").null_count().alias("id_nulls"),
             pl.col("dob").n_unique().alias("n_dob"), pl.col("dob").null_count().alias("dob_nulls"), pl.len().alias("size"))  # fmt: skip
        .filter(
            (pl.col("size") > 1)
            & (((pl.col("n_id") - (pl.col("id_nulls") > 0).cast(pl.Int64)) > 1) | ((pl.col("n_dob") - (pl.col("dob_nulls") > 0).cast(pl.Int64)) > 1))
        )
        .get_column("comp")
        .to_numpy()
    )
    if partners:  # a component holding a `different` pair needs the careful pass too
        suspicious = np.union1d(suspicious, np.unique(comp[list(partners)]))
    labels = comp.copy()
    refused = 0
    if suspicious.size:
        next_label = n_comp
        flag = np.zeros(n_comp, dtype=bool)
        flag[suspicious] = True
        nid = facts.get_column("nid").to_list()
        dob = facts.get_column("dob").to_list()
        comp_edges = strong.with_columns(pl.Series("comp", comp[i] if len(i) else np.array([], dtype=np.int64))).filter(
            pl.Series(flag[comp[i]] if len(i) else np.array([], dtype=bool))
        )
        # strongest first; ties broken by record order so the same edges always give the same clusters
        comp_edges = comp_edges.sort(["comp", "match_weight", "i", "j"], descending=[False, True, False, False])
        for (c,), group in comp_edges.group_by(["comp"], maintain_order=True):
            members = np.flatnonzero(comp == c)
            clusters = {int(m): _Cluster(int(m), nid[m], dob[m], partners.get(int(m))) for m in members}
            owner = {int(m): int(m) for m in members}
            for a, b, weight in zip(group.get_column("i").to_list(), group.get_column("j").to_list(), group.get_column("match_weight").to_list()):
                ra, rb = owner[a], owner[b]
                if ra == rb:
                    continue
                ca, cb = clusters[ra], clusters[rb]
                reviewed_same = weight == float("inf")
                if ca.kept_apart_from(cb) or (not reviewed_same and ca.conflicts_with(cb)):
                    refused += 1
                    continue
                if len(ca.members) < len(cb.members):
                    ra, rb, ca, cb = rb, ra, cb, ca
                for m in cb.members:
                    owner[m] = ra
                ca.absorb(cb)
                del clusters[rb]
            for cl in clusters.values():
                labels[cl.members] = next_label
                next_label += 1
    return ClusterResult(
        labels=pl.DataFrame({"record_key": keys, "cluster": labels}),
        components=int(n_comp),
        components_with_conflicts=int(suspicious.size),
        merges_refused=refused,
    )
