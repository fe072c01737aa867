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


@dataclass
class ClusterResult:
    """`labels`: record_key -> cluster (int); plus how many components needed the conflict-aware pass."""

    labels: pl.DataFrame
    components: int
    components_with_conflicts: int
    merges_refused: int
    bridges_cut: int = 0
    component: np.ndarray | None = None  # per record (labels' order): its connected component on the links followed


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
    records: pl.DataFrame,
    edges: pl.DataFrame,
    *,
    threshold: float,
    evidence: IdentityEvidence | None = None,
    duplicate_free: set[str] | None = None,
    same: list[tuple[str, str]] | None = None,
    different: list[tuple[str, str]] | None = None,
) -> ClusterResult:
    """Cluster `records` (record_key, source, national_id, national_id_valid, dob) on `edges` at or above `threshold`.

    `edges` has record_key_l, record_key_r, match_weight. Every record gets a label, singletons included.
    `evidence`: the fitted model's identity weights (no evidence: only reviewers' and source constraints).
    `duplicate_free`: sources of which a citizen may hold at most one record.
    """
    evidence = evidence or IdentityEvidence()
    duplicate_free = duplicate_free or set()
    keys = records.get_column("record_key")
    strong, partners = _strong_links(keys, edges, threshold=threshold, same=same, different=different)
    i = strong.get_column("i").to_numpy()
    j = strong.get_column("j").to_numpy()
    n_comp, comp = components(keys.len(), i, j)
    facts = _identity_facts(records, comp, duplicate_free)
    suspicious = _components_with_conflicts(facts, comp, partners)
    labels = comp.copy()
    refused = 0
    if suspicious.size:
        flag = np.zeros(n_comp, dtype=bool)
        flag[suspicious] = True
        # The records of the components that get the careful pass, grouped by component and in record order within
        # one (a stable sort): each component's records are a slice found by binary search, not a pass over every
        # record per component (at 1M: 26 of the 29 s clustering took; 4.1 s in all now).
        order = np.argsort(comp, kind="stable")
        order = order[flag[comp[order]]]
        comp_of = comp[order]
        facts_of = facts.select("dob", "nid", "source")[order]
        member = {
            m: _Member(d, v, s)
            for m, d, v, s in zip(
                order.tolist(),
                facts_of.get_column("dob").to_list(),
                facts_of.get_column("nid").to_list(),
                facts_of.get_column("source").to_list(),
            )
        }
        comp_edges = strong.with_columns(pl.Series("comp", comp[i] if len(i) else np.array([], dtype=np.int64))).filter(
            pl.Series(flag[comp[i]] if len(i) else np.array([], dtype=bool))
        )
        # strongest first; ties broken by record order so the same edges always give the same clusters
        comp_edges = comp_edges.sort(["comp", "match_weight", "i", "j"], descending=[False, True, False, False])
        edge_comp = comp_edges.get_column("comp").to_numpy()
        pairs = list(
            zip(
                comp_edges.get_column("i").to_list(),
                comp_edges.get_column("j").to_list(),
                comp_edges.get_column("match_weight").to_list(),
            )
        )
        next_label = n_comp
        for s, e in _runs(edge_comp):
            c = edge_comp[s]
            lo, hi = np.searchsorted(comp_of, c, side="left"), np.searchsorted(comp_of, c, side="right")
            clusters, n_refused = _merge_component(
                order[lo:hi],
                pairs[s:e],
                member=member,
                partners=partners,
                threshold=threshold,
                duplicate_free=duplicate_free,
                evidence=evidence,
            )
            refused += n_refused
            for cl in clusters:
                labels[cl.members] = next_label
                next_label += 1
    labels, cut = _cut_weak_bridges(labels, i, j, strong.get_column("match_weight").to_numpy(), threshold=threshold)
    return ClusterResult(
        labels=pl.DataFrame({"record_key": keys, "cluster": labels}),
        components=int(n_comp),
        components_with_conflicts=int(suspicious.size),
        merges_refused=refused,
        bridges_cut=cut,
        component=comp,
    )


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) positions of each run of equal values in `values` (sorted, so each value is one run)."""
    if not len(values):
        return []
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return list(zip(starts.tolist(), np.r_[starts[1:], len(values)].tolist()))


def _strong_links(
    keys: pl.Series,
    edges: pl.DataFrame,
    *,
    threshold: float,
    same: list[tuple[str, str]] | None,
    different: list[tuple[str, str]] | None,
) -> tuple[pl.DataFrame, dict[int, set[int]]]:
    """The links clustering follows (i, j, match_weight by record position): reviewers' `same` (weight +inf) and
    scored pairs at or above the threshold, less reviewers' `different`; and, per record, the records it must
    stay apart from."""
    index = pl.DataFrame({"record_key": keys, "_i": pl.int_range(0, keys.len(), eager=True)})
    forced = pl.DataFrame(same or [], schema={"record_key_l": pl.String, "record_key_r": pl.String}, orient="row")
    forced = forced.with_columns(pl.lit(float("inf")).alias("match_weight"))
    apart = pl.DataFrame(different or [], schema={"record_key_l": pl.String, "record_key_r": pl.String}, orient="row")
    strong = (
        pl.concat(
            [forced, edges.filter(pl.col("match_weight") >= threshold).select(forced.columns)], how="vertical_relaxed"
        )
        .join(apart, on=["record_key_l", "record_key_r"], how="anti")
        .join(
            apart.rename({"record_key_l": "record_key_r", "record_key_r": "record_key_l"}),
            on=["record_key_l", "record_key_r"],
            how="anti",
        )
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
    return strong, partners


def _identity_facts(records: pl.DataFrame, comp: np.ndarray, duplicate_free: set[str]) -> pl.DataFrame:
    """Per record: its component, checksum-valid national ID, birth date, source, and whether that source is duplicate-free."""
    valid_id = pl.when(records.get_column("national_id_valid").fill_null(False)).then(records.get_column("national_id"))
    source = records.get_column("source") if "source" in records.columns else pl.Series([""] * len(comp))
    return pl.DataFrame({"comp": comp}).with_columns(
        pl.select(valid_id).to_series().alias("nid"),
        records.get_column("dob").alias("dob"),
        source.alias("source"),
        source.is_in(sorted(duplicate_free)).alias("dup_free"),
    )


def _components_with_conflicts(facts: pl.DataFrame, comp: np.ndarray, partners: dict[int, set[int]]) -> np.ndarray:
    """Components where two records could contradict each other (several birth dates, several valid IDs, two
    records of a duplicate-free source, a reviewer's `different` pair): they get the careful pass; the rest
    are accepted as they are."""
    suspicious = (
        facts.group_by("comp")
        .agg(
            pl.col("nid").drop_nulls().n_unique().alias("n_id"),
            pl.col("dob").drop_nulls().n_unique().alias("n_dob"),
            (
                pl.col("source").filter(pl.col("dup_free")).len()
                - pl.col("source").filter(pl.col("dup_free")).n_unique()
            ).alias("dup"),
            pl.len().alias("size"),
        )
        .filter((pl.col("size") > 1) & ((pl.col("n_id") > 1) | (pl.col("n_dob") > 1) | (pl.col("dup") > 0)))
        .get_column("comp")
        .to_numpy()
    )
    if partners:
        suspicious = np.union1d(suspicious, np.unique(comp[list(partners)]))
    return suspicious


def _merge_component(
    members: np.ndarray,
    pairs: list[tuple[int, int, float]],
    *,
    member: dict[int, _Member],
    partners: dict[int, set[int]],
    threshold: float,
    duplicate_free: set[str],
    evidence: IdentityEvidence,
) -> tuple[list[_Cluster], int]:
    """The careful pass over one component (`members`, its records; `pairs`, its links (i, j, weight), strongest
    first): merge along its links in that order, refusing a merge that reviewers kept apart or that would contradict
    identity evidence. Returns the clusters and merges refused."""
    clusters = {m: _Cluster(m, member[m], partners.get(m)) for m in members.tolist()}
    owner = {m: m for m in members.tolist()}
    linked = {(min(a, b), max(a, b)) for a, b, _ in pairs}
    refused = 0
    for a, b, weight in pairs:
        ra, rb = owner[a], owner[b]
        if ra == rb:
            continue
        ca, cb = clusters[ra], clusters[rb]
        reviewed_same = weight == float("inf")
        if ca.kept_apart_from(cb) or (
            not reviewed_same
            and (
                _shares_duplicate_free(ca, cb, duplicate_free)
                or _contradicts(ca, cb, weight, threshold, member, linked, evidence)
            )
        ):
            refused += 1
            continue
        if len(ca.members) < len(cb.members):
            ra, rb, ca, cb = rb, ra, cb, ca
        for m in cb.members:
            owner[m] = ra
        ca.absorb(cb)
        del clusters[rb]
    return list(clusters.values()), refused


BRIDGE_SHARE = (
    0.5  # a bridge is weak when it clears the threshold by less than this share of what the parts' own links do
)
BRIDGE_MIN_SIDE = 3  # records each side of a bridge must keep for it to be cut: two well-knit parts, not a pair


def _cut_weak_bridges(
    labels: np.ndarray, i: np.ndarray, j: np.ndarray, w: np.ndarray, *, threshold: float
) -> tuple[np.ndarray, int]:
    """Split clusters held together by one weak link between two well-knit parts (a chain through a hub record).

    A bridge is a link whose removal splits its cluster. It is cut when both sides keep at least
    BRIDGE_MIN_SIDE records and its weight clears the threshold by less than BRIDGE_SHARE of the median margin of the
    cluster's other (non-bridge) links: the parts are each one person, the link between them is not.
    A cluster that is a chain of single links (a tree: no other links to compare with) is never cut,
    and a reviewer's `same` (infinite weight) never is a weak bridge.
    """
    labels = labels.copy()
    if not len(i):
        return labels, 0
    inside = labels[i] == labels[j]
    i, j, w = i[inside], j[inside], w[inside]
    size = np.bincount(labels)
    big = size[labels[i]] >= 2 * BRIDGE_MIN_SIDE
    i, j, w = i[big], j[big], w[big]
    if not len(i):
        return labels, 0
    order = np.argsort(labels[i], kind="stable")
    i, j, w = i[order], j[order], w[order]
    next_label = int(labels.max()) + 1
    cut = 0
    for s, e in _runs(labels[i]):
        pending = [(i[s:e], j[s:e], w[s:e])]
        while pending:
            ci, cj, cw = pending.pop()
            nodes, local = np.unique(np.r_[ci, cj], return_inverse=True)
            li, lj = local[: len(ci)], local[len(ci) :]
            weight: dict[tuple[int, int], float] = {}
            for a, b, x in zip(li.tolist(), lj.tolist(), cw.tolist()):
                key = (min(a, b), max(a, b))
                weight[key] = max(weight.get(key, -math.inf), x)
            found = set(bridges(len(nodes), set(weight)))
            others = [x for k, x in weight.items() if k not in found]
            if not found or not others:
                continue
            margin = float(np.median(others)) - threshold
            weak = sorted((x, k) for k, x in weight.items() if k in found and x - threshold < BRIDGE_SHARE * margin)
            for x, (a, b) in weak:
                rest = [k for k in weight if k != (a, b)]
                n_parts, part = components(
                    len(nodes),
                    np.array([k[0] for k in rest], dtype=np.int64),
                    np.array([k[1] for k in rest], dtype=np.int64),
                )
                if n_parts != 2 or min(np.bincount(part)) < BRIDGE_MIN_SIDE:
                    continue
                # keep the larger part's label, give the other a new one, and look again inside each part
                small = part == np.argmin(np.bincount(part))
                labels[nodes[small]] = next_label
                next_label += 1
                cut += 1
                keep = np.array([part[a2] == part[b2] for a2, b2 in zip(li.tolist(), lj.tolist())])
                same_side = keep & np.array(
                    [not (min(a2, b2) == a and max(a2, b2) == b) for a2, b2 in zip(li.tolist(), lj.tolist())]
                )
                for side in (True, False):
                    pick = same_side & (small[li] == side)
                    if pick.any():
                        pending.append((ci[pick], cj[pick], cw[pick]))
                break
    return labels, cut


def _shares_duplicate_free(a: _Cluster, b: _Cluster, duplicate_free: set[str]) -> bool:
    return bool(a.sources & b.sources & duplicate_free)


def _contradicts(
    a: _Cluster,
    b: _Cluster,
    weight: float,
    threshold: float,
    member: dict[int, _Member],
    linked: set[tuple[int, int]],
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


# --- what a chained citizen looks like ---------------------------------------------------------------

SIZE_FENCE_SPREADS = 2.0  # how many inter-quartile spreads (in doublings) above the upper quartile a size may reach
SIZE_FENCE_MIN_CITIZENS = 10  # fewer multi-record citizens than this: no distribution to learn a bound from


def size_bound(sizes: np.ndarray, *, cap: int | None = None, counts: np.ndarray | None = None) -> int | None:
    """The most records a citizen may plausibly hold, from the data: a robust outlier fence on records per citizen.

    Over citizens with two or more records, on a log2 scale (sizes multiply, they do not add):
    upper quartile + 2 x max(inter-quartile range, one doubling). A register with 1-2 records a person
    gets 8, FEBRL's 1-6 about 30, a historical register with 5-20 about 60. `cap` (the explicit
    `quality.max_citizen_records`) lowers it; None when there is neither a distribution nor a cap.
    With `counts`, `sizes` are distinct sizes and `counts` how many citizens have each (the same bound, from a
    dozen numbers instead of a million).
    """
    values = np.asarray(sizes, dtype=float)
    weights = np.ones(len(values), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    keep = values > 1
    values, weights = values[keep], weights[keep]
    fence = None
    if weights.sum() >= SIZE_FENCE_MIN_CITIZENS:
        q1, q3 = _percentiles(np.log2(values), weights, (0.25, 0.75))
        fence = int(math.floor(2 ** (q3 + SIZE_FENCE_SPREADS * max(q3 - q1, 1.0)) + 1e-9))
    if cap is not None:
        fence = cap if fence is None else min(fence, cap)
    return fence


def _percentiles(values: np.ndarray, counts: np.ndarray, quantiles: tuple[float, ...]) -> list[float]:
    """The quantiles of `values` each repeated `counts` times, interpolated linearly between the two nearest (as
    numpy.percentile's default), without repeating them."""
    order = np.argsort(values, kind="stable")
    values, ends = values[order], np.cumsum(counts[order])  # ends[i]: index one past the last copy of values[i]
    n = int(ends[-1])

    def at(index: int) -> float:
        return float(values[np.searchsorted(ends, index, side="right")])

    out = []
    for q in quantiles:
        position = q * (n - 1)
        below = math.floor(position)
        low, high = at(below), at(min(below + 1, n - 1))
        out.append(low + (high - low) * (position - below))
    return out


@dataclass(frozen=True)
class ClusterShape:
    """How a citizen's records hang together on its own links: pieces (1 when connected), density, bridge links."""

    records: int
    links: int
    pieces: int
    density: float
    bridges: int


def cluster_shape(n: int, left: list[int], right: list[int]) -> ClusterShape:
    """The shape of one citizen of `n` records (0..n-1) joined by the links (left[k], right[k])."""
    pairs = {(min(a, b), max(a, b)) for a, b in zip(left, right) if a != b}
    pieces, _ = (
        components(n, np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64))
        if n
        else (0, None)
    )
    density = len(pairs) / (n * (n - 1) / 2) if n > 1 else 1.0
    return ClusterShape(n, len(pairs), pieces, round(density, 4), len(bridges(n, pairs)))


def bridges(n: int, pairs: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """The links whose removal disconnects their piece (Tarjan's low-link, iterative)."""
    adjacent: list[list[int]] = [[] for _ in range(n)]
    for a, b in pairs:
        adjacent[a].append(b)
        adjacent[b].append(a)
    order = [-1] * n
    low = [0] * n
    found: list[tuple[int, int]] = []
    counter = 0
    for root in range(n):
        if order[root] != -1:
            continue
        order[root] = low[root] = counter
        counter += 1
        stack = [(root, -1, iter(adjacent[root]))]
        while stack:
            node, parent, neighbours = stack[-1]
            step = next(neighbours, None)
            if step is None:
                stack.pop()
                if parent != -1:
                    low[parent] = min(low[parent], low[node])
                    if low[node] > order[parent]:
                        found.append((min(parent, node), max(parent, node)))
                continue
            if step == parent:
                continue
            if order[step] == -1:
                order[step] = low[step] = counter
                counter += 1
                stack.append((step, node, iter(adjacent[step])))
            else:
                low[node] = min(low[node], order[step])
    return found
