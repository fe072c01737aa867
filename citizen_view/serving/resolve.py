"""Which citizen one incoming record belongs to, answered from the served view without a pipeline run.

The record is standardised as ingest would (linkage/incoming.py); its candidates are the linked records the model's
own blocking rules pair it with, found by its key of each rule and side (linkage/candidates.py) among the view's keys
held in memory (serving/resolve_index.py), only among records of sources the caller's role may see; each candidate's comparison levels are the saved model's own
conditions, evaluated in Python (linkage/gamma.py, identical to DuckDB running Splink's SQL; a model with a
condition it does not evaluate runs that SQL instead), and Splink's weights are added up (linkage/online.py). Per citizen the best-scoring record counts: `matched` when one citizen reaches the upper end
of the review band and is clearly ahead of any other citizen reaching its lower end (`decide`); `new` when none reaches the lower end; `review`
otherwise (a weight inside the band, or two citizens competing). The band is the review queue's (`review.band`,
default the threshold +/- 1.5).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from citizen_view.contract import DEFAULT_ID_SCHEMES, OPAQUE_ID
from citizen_view.linkage.candidates import ProbeKey, probe_keys
from citizen_view.linkage.explain import _input_columns
from citizen_view.linkage.gamma import Mismatch, Unsupported, comparison_levels, gammas
from citizen_view.linkage.incoming import linkage_values, standardise_one
from citizen_view.linkage.model import tf_columns
from citizen_view.linkage.online import INPUT_COLUMNS, OnlineScorer, probability, scorer
from citizen_view.serving.resolve_index import ResolveIndex

if TYPE_CHECKING:
    import duckdb

    from citizen_view.serving.access import Role
    from citizen_view.serving.deps import ServedView
    from citizen_view.serving.documents import ViewInfo

log = logging.getLogger(__name__)
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
    keys: tuple[ProbeKey, ...]  # the blocking rules' keys (linkage/candidates.py)
    tf: dict[str, float]  # `<column>US<value>` -> term frequency over every record (resolve_tf), for an older view only
    levels: dict[str, list[tuple[int, Callable[[dict], bool] | None]]] | None  # None: DuckDB runs the levels' SQL
    index: ResolveIndex  # the linked records and their keys, in memory (serving/resolve_index.py)
    # per source (`tf_sources`, sorted): `<column>US<value>` and `<column>` -> records with the value / with any value
    # (resolve_tf_by_source); None for a view written before it (then `tf`, over every source, is used)
    tf_sources: tuple[str, ...] = ()
    tf_counts: dict[str, tuple[int, ...]] | None = None


def _python_levels(model_json: str) -> dict[str, list[tuple[int, Callable[[dict], bool] | None]]] | None:
    from splink import SettingsCreator

    try:
        return comparison_levels(SettingsCreator.from_path_or_dict(json.loads(model_json)).get_settings("duckdb"))
    except Unsupported:
        return None


_models: dict[int, ResolveModel | None] = {}  # id(the opened view's ViewInfo) -> its model, while that object lives
_failed: dict[
    int, tuple[float, str]
] = {}  # id(ViewInfo) -> (monotonic time until which a failed read is not retried, why)
_lock = threading.Lock()
_reading = threading.Lock()  # held by the one thread reading a view's model
READING_RETRY = 5  # seconds a request refused while a model is read is told to wait (a read takes ~4 s at 1M)
FAILED_FOR = 30.0  # seconds a failed read is answered from memory, not tried again by every request


class NotReady(Exception):
    """The view's model cannot be used now: it is being read, or reading it failed a moment ago (answer 503)."""

    def __init__(self, why: str, retry_after: int):
        super().__init__(why)
        self.retry_after = retry_after


def resolve_model(
    cur: duckdb.DuckDBPyConnection,
    view: ViewInfo,
    *,
    wait: bool = False,
    replaced: Callable[[], bool] | None = None,
) -> ResolveModel | None:
    """The model of the opened view whose `ViewInfo` is `view`, or None for a view published without one: read once
    per opened view and kept as long as that `ViewInfo` lives, i.e. while the process serves that view file or a
    request still answers from it (deps.ViewStore drops it once a new view is published): an old view's ~0.8 GB at 1M
    go with its last request, and a request still answering from it does not read it again.

    One thread reads at a time. Unless `wait`, a request that finds a read under way raises `NotReady` at once
    instead of holding a worker thread for seconds (at 400 records/s the shared pool would fill in 0.1 s); a read
    that failed raises `NotReady` for `FAILED_FOR` seconds without being tried again. A view `replaced` says a newer
    one replaced is not read at all (`NotReady`: the retry answers from the new view), so a request that started on
    the old view cannot bring its ~0.8 GB back beside the new one's."""
    key = id(view)
    with _lock:
        if key in _models:
            return _models[key]
    if not _reading.acquire(blocking=wait):
        raise NotReady("the served view's records are being read into memory: retry shortly", READING_RETRY)
    try:
        with _lock:
            if key in _models:
                return _models[key]
            until, why = _failed.get(key, (0.0, ""))
        if time.monotonic() < until:
            raise NotReady(why, max(1, math.ceil(until - time.monotonic())))
        if replaced is not None and replaced():
            raise NotReady("a new view was published while this request started: retry", 1)
        try:
            found = _read_model(cur)
        except Exception as exc:
            log.exception("the served view's resolve model could not be read")
            why = f"the served view's resolve model could not be read ({type(exc).__name__}): retry later"
            with _lock:
                _failed[key] = (time.monotonic() + FAILED_FOR, why)
                weakref.finalize(view, _failed.pop, key, None)
            raise NotReady(why, int(FAILED_FOR)) from exc
        with _lock:
            _models[key] = found
            # dict.pop takes no lock: the finalizer may run in any thread, that one holding `_lock` included
            weakref.finalize(view, _models.pop, key, None)
        return found
    finally:
        _reading.release()


def warm_up(served: ServedView) -> None:
    """Read the model, records and keys of a view this process opens (a `ViewStore.on_switch` callback: at start
    before the first request, after a publish in the store's switch thread; a record to resolve against that view
    meanwhile is answered 503 with Retry-After, see `resolve_model`). A failure is logged by the store and answered
    503 for `FAILED_FOR` seconds."""
    cur = served.con.cursor()
    try:
        resolve_model(cur, served.info, wait=True)
    finally:
        cur.close()


def _read_model(cur: duckdb.DuckDBPyConnection) -> ResolveModel | None:
    found = None
    published = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'resolve_keys'"
    if cur.execute(published).fetchall()[0][0]:  # a view published before its key table: none
        model_json, threshold, low, high, earliest, latest = cur.execute("SELECT * FROM resolve_model").fetchall()[0]
        country = cur.execute("SELECT country FROM view_info").fetchall()[0][0]
        masked: dict[str, set[str]] = {}
        for field, value in cur.execute("SELECT field, value FROM resolve_masked").fetchall():
            masked.setdefault(field, set()).add(value)
        model = json.loads(model_json)
        tf_sources, tf_counts = _tf_by_source(cur)
        # every record's frequencies, for a view written before the counts per source (no role reads them otherwise)
        tf = dict(cur.execute("SELECT tf_key, tf FROM resolve_tf").fetchall()) if tf_counts is None else {}
        found = ResolveModel(
            model,
            scorer(model_json),
            tf_columns(model),
            threshold,
            low,
            high,
            earliest,
            latest,
            country,
            masked,
            probe_keys(model_json),
            tf,
            _python_levels(model_json),
            ResolveIndex.read(cur),
            tf_sources,
            tf_counts,
        )
    return found


def _candidates(
    m: ResolveModel, values: dict[str, Any], sources: list[str]
) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    """(the linked records of `sources` the model's blocking rules pair the record with, each once, at most
    MAX_CANDIDATES (those the most of the record's keys find first: ResolveIndex.records_of), as dicts of the comparison's columns and their term frequencies `tf_<column>`;
    the record's own term frequencies). The record's keys are hashed here and looked up in the view's keys held in
    memory (`ResolveModel.index`); the term frequencies are the view's counts over `sources` (`_Frequencies`)."""
    tf = _Frequencies(m, sources)  # a role's frequencies count its sources' records only
    tfs = {f"tf_{c}": tf(c, values.get(c)) for c in m.tf_columns}
    hashes = [key.incoming_hash(found) for key in m.keys if (found := key.incoming_values(values)) is not None]
    if not hashes:
        return [], tfs
    found = m.index.records_of(m.index.record_numbers(hashes), set(sources), MAX_CANDIDATES)
    for record in found:
        record.update((f"tf_{c}", tf(c, record[c])) for c in m.tf_columns)
    return found, tfs


def _tf_by_source(cur: duckdb.DuckDBPyConnection) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]] | None]:
    """(the sources, each term-frequency key's counts per source) from resolve_tf_by_source; ((), None) without it."""
    present = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'resolve_tf_by_source'"
    if not cur.execute(present).fetchall()[0][0]:
        return (), None
    rows = cur.execute("SELECT tf_key, source, n FROM resolve_tf_by_source").fetchall()
    sources = tuple(sorted({source for _, source, _ in rows}))
    at = {source: i for i, source in enumerate(sources)}
    counts: dict[str, list[int]] = {}
    for key, source, n in rows:
        counts.setdefault(key, [0] * len(sources))[at[source]] = n
    return sources, {key: tuple(n) for key, n in counts.items()}


class _Frequencies:
    """Term frequencies as one role reads them: among the records of its sources where the view counts per source,
    else (a view written before) among every record."""

    def __init__(self, m: ResolveModel, sources: list[str]) -> None:
        self.m = m
        visible = set(sources)
        self.seen = [i for i, source in enumerate(m.tf_sources) if source in visible]
        self.totals: dict[str, int] = {}

    def __call__(self, column: str, value: Any) -> float | None:
        if value is None:
            return None
        key = f"{column}\x1f{value}"
        counts = self.m.tf_counts
        if counts is None:
            return self.m.tf.get(key)
        found = counts.get(key)
        if found is None:
            return None
        n = sum(found[i] for i in self.seen)
        if column not in self.totals:
            every = counts.get(column)
            self.totals[column] = sum(every[i] for i in self.seen) if every else 0
        total = self.totals[column]
        return n / total if n and total else None


def _gamma_sql(cur: duckdb.DuckDBPyConnection, m: ResolveModel, pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pair with its `gamma_<comparison>` from Splink's CASE SQL run by DuckDB (a model whose conditions
    linkage/gamma.py does not evaluate)."""
    frame = pl.DataFrame(pairs, schema=_pair_schema(cur, m), strict=False)
    cur.register("_online_pairs", frame)
    try:
        found = cur.execute(f"SELECT {m.scorer.gamma_sql} FROM _online_pairs")
        names = [d[0] for d in found.description]
        return [pair | dict(zip(names, g)) for pair, g in zip(pairs, found.fetchall())]
    finally:
        cur.unregister("_online_pairs")


def _pair_schema(cur: duckdb.DuckDBPyConnection, m: ResolveModel) -> dict[str, pl.DataType]:
    cols = [*INPUT_COLUMNS, "citizen_id", *(f"tf_{c}" for c in m.tf_columns)]
    frame = cur.sql(f"SELECT {', '.join(cols)} FROM resolve_columns").pl()
    return {f"{c}_{side}": frame.schema[c] for c in cols for side in ("l", "r")}


def score_candidates(
    cur: duckdb.DuckDBPyConnection, m: ResolveModel, values: dict[str, Any], sources: list[str]
) -> list[dict[str, Any]]:
    """The model's comparison of the record with every candidate record of `sources`: one row each (the columns on
    either side as `<column>_l` / `_r`, `gamma_<comparison>`, `match_weight`, `fields`), best first."""
    right, tfs = _candidates(m, values, sources)
    if not right:
        return []
    left = {c: values.get(c) for c in INPUT_COLUMNS} | {"record_key": "online:incoming", "source": "online"}
    left |= {"citizen_id": None, **tfs}
    pairs = [{f"{c}_l": v for c, v in left.items()} | {f"{c}_r": v for c, v in r.items()} for r in right]
    try:
        pairs = _gamma_sql(cur, m, pairs) if m.levels is None else [pair | gammas(m.levels, pair) for pair in pairs]
    except Mismatch:  # values of two kinds met in a condition: DuckDB casts them by its own rules
        pairs = _gamma_sql(cur, m, pairs)
    for row in pairs:
        row["match_weight"], row["fields"] = m.scorer.weights(row)
        row["match_probability"] = probability(row["match_weight"])
    return sorted(pairs, key=lambda r: (-r["match_weight"], r["citizen_id_r"], r["record_key_r"]))


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
    """(decision, citizen or None, why) from each citizen's best-scoring record, best first.

    `matched` needs the best citizen at the band's upper end or above and, with the record belonging to one citizen
    at most, a probability of being that one's among the citizens reaching the band at least what the upper end gives
    a lone candidate: 2^w1 over 1 plus the sum of 2^w of every citizen at the band's lower end or above
    (`_exclusive_probability`). Citizens below the lower end do not compete (as for `new`): a lone candidate in the
    band is matched from the upper end on whatever namesakes lie below it; a second citizen far below the best (a
    household member at +2 beside a +50) leaves it matched, one near it sends the record to review. A weight that is
    no finite number sends it to review."""
    if not best or best[0]["match_weight"] < m.low:
        top = (
            f"the best match weight {best[0]['match_weight']:+.2f}"
            if best
            else "no candidate record found: weight -inf"
        )
        return NEW, None, f"{top} is below the review band's lower end {m.low:+.2f}"
    if math.isnan(best[0]["match_weight"]):
        return REVIEW, None, "the best match weight is no number"
    first, in_band = best[0], [b for b in best if not b["match_weight"] < m.low]  # a NaN competes
    competing = len(in_band)
    lone = first["citizen_id_r"] if competing == 1 else None  # the citizen a review names: only when it is alone
    if first["match_weight"] < m.high:
        if competing > 1:
            return REVIEW, None, f"{competing} citizens reach the review band"
        return (
            REVIEW,
            lone,
            f"match weight {first['match_weight']:+.2f} is within the review band [{m.low:+.2f}, {m.high:+.2f}]",
        )
    share, needed = _exclusive_probability(in_band), _exclusive_probability([{"match_weight": m.high}])
    if not math.isfinite(share):
        return REVIEW, None, f"match weight {first['match_weight']:+.2f}: no finite probability among the citizens"
    if share < needed:
        return (
            REVIEW,
            lone,
            f"{competing} citizens reach the review band: the best one's probability among them {share:.4f} is "
            f"below {needed:.4f}",
        )
    why = f"match weight {first['match_weight']:+.2f} is at or above {m.high:+.2f}"
    if competing > 1:
        why += f"; its probability among the {competing} citizens in the band {share:.4f} is at least {needed:.4f}"
    return MATCHED, first["citizen_id_r"], why


def _exclusive_probability(best: list[dict[str, Any]]) -> float:
    """The probability that the record is the best citizen's when it is one citizen's at most: 2^w1 / (1 + sum 2^w)
    over the citizens `best` holds (the caller's choice), computed relative to the best weight (no overflow); NaN for
    a weight that is no finite number."""
    top = best[0]["match_weight"]
    if not all(math.isfinite(b["match_weight"]) for b in best):
        return math.nan
    return 1.0 / (2.0 ** min(-top, 1000.0) + sum(2.0 ** (b["match_weight"] - top) for b in best))


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
