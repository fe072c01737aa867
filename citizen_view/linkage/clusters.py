"""Group linked records into citizens without chaining distinct people together.

Plain connected components chain: twin A ~ "J. de Vries" on a permit ~ twin B makes one citizen of two.
Here links are taken strongest first, and a merge of two groups is refused when

1. it would put two different national IDs that both pass a *declared* checksum scheme (`nl.bsn`,
   `no.fodselsnummer`, any python-stdnum scheme) into one citizen: a valid checksum is issued to one
   person (twins who look alike on every other field are kept apart by this). An opaque identifier
   (scheme `none`) never refuses a merge; or
2. the fitted model itself says that a pair of records across the two groups are different people
   more strongly than the joining link says they are the same: for a pair (x, y) the model did not link
   directly, `weight(level of x and y's birth dates) + link weight < threshold`. The level weight is
   the model's own log2(m/u) for the birth-date level the pair falls in (`IdentityEvidence`), so the
   rule follows the data: where the same person's birth date is often written differently, the fitted
   "different" level is weak evidence and rarely refuses; where birth dates are reliable it refuses
   the parent and child with the same name whom a record without a birth date links to both.

Reviewers' decisions come first: a `same` pair is linked whatever the evidence, a `different` pair is
never in one citizen. With `link_only`, a citizen holds at most one record of each source.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n: int, left: np.ndarray, right: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of `n` nodes joined by the edges (left[k], right[k]): (count, label per node)."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    return int(count), labels.astype(np.int64)


def swapped(dob: str | None) -> str | None:
    """yyyymmdd of a real date with day and month swapped, where the day can be a month (as the linkage input's `dob_swapped`)."""
    if dob is None or len(dob) != 8 or not dob.isdigit() or int(dob[6:8]) > 12:
        return None
    try:
        dt.date(int(dob[:4]), int(dob[4:6]), int(dob[6:8]))
    except ValueError:
        return None
    return dob[:4] + dob[6:8] + dob[4:6]


def within_one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance at most 1: one substitution, insertion, deletion or adjacent swap."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


@dataclass(frozen=True)
class IdentityEvidence:
    """The fitted model's weights (log2 m/u) for the levels of its birth-date and national-ID comparisons.

    The level rules mirror the comparisons in model.py (tests check both give the same level).
    """

    dob: dict[str, float] = field(default_factory=dict)
    national_id: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_model(cls, model: dict[str, Any] | None) -> IdentityEvidence:
        weights: dict[str, dict[str, float]] = {}
        for comparison in (model or {}).get("comparisons", []):
            levels = {}
            for level in comparison["comparison_levels"]:
                m, u = level.get("m_probability"), level.get("u_probability")
                if level.get("is_null_level") or not m or not u:
                    continue
                levels[level.get("label_for_charts", "")] = math.log2(m / u)
            weights[comparison["output_column_name"]] = levels
        return cls(weights.get("date_of_birth", {}), weights.get("national_id", {}))

    def dob_weight(self, a: str | None, b: str | None) -> float | None:
        if a is None or b is None or not self.dob:
            return None
        if a == b:
            label = "same date of birth"
        elif a == swapped(b) or b == swapped(a):
            label = "day and month swapped"
        elif within_one_edit(a, b):
            label = "date of birth one digit off"
        elif a[:4] == b[:4]:
            label = "same year of birth"
        else:
            label = "different"
        return self.dob.get(label)

    def id_weight(self, a: str | None, b: str | None) -> float | None:
        if a is None or b is None or not self.national_id:
            return None
        if a == b:
            label = "same national ID"
        elif within_one_edit(a, b):
            label = "national ID one digit off"
        else:
            label = "different"
        return self.national_id.get(label)


@dataclass
class ClusterResult:
    """`labels`: record_key -> cluster (int); plus how many components needed the conflict-aware pass."""

    labels: pl.DataFrame
    components: int
    components_with_conflicts: int
    merges_refused: int


@dataclass
class _Member:
    dob: str | None
    nid: str | None  # checksum-valid national ID, else None
    source: str


class _Cluster:
    __slots__ = ("members", "apart", "sources", "ids")

    def __init__(self, member: int, info: _Member, apart: set[int] | None = None):
        self.members = [member]
        self.sources = {info.source}
        self.ids = {info.nid} if info.nid else set()
        self.apart = set(apart or ())  # records a reviewer said are a different person

    def kept_apart_from(self, other: _Cluster) -> bool:
        return bool(self.apart & set(other.members)) or bool(other.apart & set(self.members))

    def absorb(self, other: _Cluster) -> None:
        self.members.extend(other.members)
        self.apart |= other.apart
        self.sources |= other.sources
        self.ids |= other.ids


def cluster_records(
    records: pl.DataFrame, edges: pl.DataFrame, *, threshold: float, evidence: IdentityEvidence | None = None,
    duplicate_free: set[str] | None = None,
    same: list[tuple[str, str]] | None = None, different: list[tuple[str, str]] | None = None,
) -> ClusterResult:
    """Cluster `records` (record_key, source, national_id, national_id_valid, dob) on `edges` at or above `threshold`.

    `edges` has record_key_l, record_key_r, match_weight. Every record gets a label, singletons included.
    `evidence`: the fitted model's identity weights (no evidence: only reviewers' and source constraints).
    `duplicate_free`: sources of which a citizen may hold at most one record.
    """
    evidence = evidence or IdentityEvidence()
    duplicate_free = duplicate_free or set()
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
    n_comp, comp = components(n, i, j)

    # Components where two records could contradict each other (several birth dates, several valid IDs,
    # two records of a duplicate-free source) get the careful pass; the rest are accepted as they are.
    valid_id = pl.when(records.get_column("national_id_valid").fill_null(False)).then(records.get_column("national_id"))
    source = records.get_column("source") if "source" in records.columns else pl.Series([""] * n)
    facts = pl.DataFrame({"comp": comp}).with_columns(
        pl.select(valid_id).to_series().alias("nid"), records.get_column("dob").alias("dob"), source.alias("source"),
        source.is_in(sorted(duplicate_free)).alias("dup_free"),
    )
    suspicious = (
        facts.group_by("comp")
        .agg(pl.col("nid").drop_nulls().n_unique().alias("n_id"), pl.col("dob").drop_nulls().n_unique().alias("n_dob"),
             (pl.col("source").filter(pl.col("dup_free")).len() - pl.col("source").filter(pl.col("dup_free")).n_unique()).alias("dup"),
             pl.len().alias("size"))  # fmt: skip
        .filter((pl.col("size") > 1) & ((pl.col("n_id") > 1) | (pl.col("n_dob") > 1) | (pl.col("dup") > 0)))
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
        member = [_Member(d, v, s) for d, v, s in zip(facts.get_column("dob").to_list(), facts.get_column("nid").to_list(),
                                                         facts.get_column("source").to_list())]  # fmt: skip
        comp_edges = strong.with_columns(pl.Series("comp", comp[i] if len(i) else np.array([], dtype=np.int64))).filter(
            pl.Series(flag[comp[i]] if len(i) else np.array([], dtype=bool))
        )
        # strongest first; ties broken by record order so the same edges always give the same clusters
        comp_edges = comp_edges.sort(["comp", "match_weight", "i", "j"], descending=[False, True, False, False])
        for (c,), group in comp_edges.group_by(["comp"], maintain_order=True):
            members = np.flatnonzero(comp == c)
            clusters = {int(m): _Cluster(int(m), member[m], partners.get(int(m))) for m in members}
            owner = {int(m): int(m) for m in members}
            pairs = list(zip(group.get_column("i").to_list(), group.get_column("j").to_list(), group.get_column("match_weight").to_list()))
            linked = {(min(a, b), max(a, b)) for a, b, _ in pairs}
            for a, b, weight in pairs:
                ra, rb = owner[a], owner[b]
                if ra == rb:
                    continue
                ca, cb = clusters[ra], clusters[rb]
                reviewed_same = weight == float("inf")
                if ca.kept_apart_from(cb) or (
                    not reviewed_same
                    and (_shares_duplicate_free(ca, cb, duplicate_free) or _contradicts(ca, cb, weight, threshold, member, linked, evidence))
                ):
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


def _shares_duplicate_free(a: _Cluster, b: _Cluster, duplicate_free: set[str]) -> bool:
    return bool(a.sources & b.sources & duplicate_free)


def _contradicts(
    a: _Cluster, b: _Cluster, weight: float, threshold: float, member: list[_Member], linked: set[tuple[int, int]],
    evidence: IdentityEvidence,
) -> bool:
    """Two different checksum-valid IDs across the groups, or a pair whose birth dates disagree more than the link agrees."""
    if a.ids and b.ids and len(a.ids | b.ids) > 1:
        return True
    for x in a.members:
        if member[x].dob is None:
            continue
        for y in b.members:
            if (min(x, y), max(x, y)) in linked:
                continue  # the model compared these two on every field and linked them
            w = evidence.dob_weight(member[x].dob, member[y].dob)
            if w is not None and w + weight < threshold:
                return True
    return False
