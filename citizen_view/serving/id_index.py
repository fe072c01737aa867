"""The served view's national IDs in memory: an exact-ID search finds its rows without a DuckDB statement.

`search_ids` holds one row per national ID, citizen and source. A DuckDB index probe of it costs ~0.5 ms of CPU,
most of it the statement's fixed cost (parsing, planning, binding), a sixth of an ID search over HTTP. Held as three
sorted fixed-width arrays (the IDs, their citizens, a code for their source), a lookup is two binary searches of a few
microseconds; at 1M persons (2.4M rows) the arrays take ~60 MB a service process, read when the process opens the
view. IDs one typo away are still found by the view's head and tail indexes (`search.search_national_id`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import duckdb

# A national ID searched for, separators removed (`search.search_national_id` refuses any other): the IDs held.
ACCEPTED_ID = re.compile(r"[0-9A-Za-z]{4,20}")
# DuckDB vectors (2,048 rows each) converted at a time: their Python strings are held one batch at a time
BATCH_VECTORS = 100


class IdIndex:
    """Every row of a view's `search_ids` as (national ID, citizen, source), ordered as an index probe returns them
    (by ID, then as stored)."""

    def __init__(self, keys: np.ndarray, citizens: np.ndarray, codes: np.ndarray, sources: list[str]):
        self.keys, self.citizens, self.codes, self.sources = keys, citizens, codes, sources

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection) -> IdIndex:
        """The index of the view `con` reads. Only IDs of the form a search accepts are held (`ACCEPTED_ID`): the arrays
        are as wide as the longest ID held, and `search_ids` also holds agencies' raw text, where one long junk value
        would multiply their memory. `rows` says when an ID is not of that form, and the caller probes the view
        instead."""
        sources: dict[str, int] = {}
        keys, citizens, codes = [], [], []
        with con.cursor() as cur:
            cur.execute("SET enable_progress_bar = false")  # a read of seconds would draw one on the service's console
            cur.execute(
                "SELECT national_id, citizen_id, source FROM search_ids WHERE regexp_full_match(national_id, ?) "
                "AND citizen_id IS NOT NULL AND source IS NOT NULL",
                [ACCEPTED_ID.pattern],
            )  # in stored order (rowid), which a probe of one ID returns its rows in; sorted by ID below
            while len(chunk := cur.fetch_df_chunk(BATCH_VECTORS)):
                keys.append(chunk["national_id"].to_numpy().astype("S"))
                citizens.append(chunk["citizen_id"].to_numpy().astype("S"))
                codes.append(np.array([sources.setdefault(s, len(sources)) for s in chunk["source"]], dtype=np.int32))
        if not keys:
            return cls(np.array([], dtype="S1"), np.array([], dtype="S1"), np.array([], dtype=np.int32), [])
        key, citizen, code = np.concatenate(keys), np.concatenate(citizens), np.concatenate(codes)
        if len(key) > 1 and not (key[1:] >= key[:-1]).all():  # publish stores the table by ID: usually sorted already
            order = np.argsort(key, kind="stable")  # stable: one ID's rows stay in stored order
            key, citizen, code = key[order], citizen[order], code[order]
        return cls(key, citizen, code, list(sources))

    def rows(self, national_id: str) -> list[tuple[str, str]] | None:
        """(citizen, source) of each row with exactly this national ID, as `WHERE national_id = ?` returns them; None
        for an ID not of the form held (`ACCEPTED_ID`): only a probe of the view can say."""
        if not ACCEPTED_ID.fullmatch(national_id):
            return None
        if len(national_id) > self.keys.dtype.itemsize:
            return []  # longer than any ID held
        key = national_id.encode("ascii")
        probe = np.array(key, dtype=self.keys.dtype)
        low, high = np.searchsorted(self.keys, probe, "left"), np.searchsorted(self.keys, probe, "right")
        return [(self.citizens[i].decode("utf-8"), self.sources[self.codes[i]]) for i in range(low, high)]

    @property
    def nbytes(self) -> int:
        """The memory the arrays take."""
        return self.keys.nbytes + self.citizens.nbytes + self.codes.nbytes
