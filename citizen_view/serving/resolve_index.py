"""A served view's linked records and their blocking keys, held in a service process's memory for resolving records
online (serving/resolve.py): read once per view, then a record's candidates cost no statement.

Why in memory: DuckDB fetches each row an index finds on its own. At 1M persons (2.7M records, 21.7M keys) one probe
of the key table and the ~20 records it found cost 2.7 ms of CPU once their blocks were read and ~5 ms before, most
of a resolve. Here the keys are a sorted array (binary search: microseconds) and the records' columns one Arrow table
in record-number order (the ~20 rows of a record taken in ~0.2 ms). At 1M they take ~0.8 GB a process (keys 12 bytes
each, records ~200 bytes), read in ~4 s of CPU when the process starts or first resolves against a new view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from citizen_view.serving.resolve_view import RECORD_NUMBER

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


@dataclass(frozen=True)
class ResolveIndex:
    """The view's `resolve_keys` (sorted key hashes and their record numbers) and `resolve_records` (the records'
    columns, their record numbers sorted beside them)."""

    key_hashes: np.ndarray  # uint64, sorted
    key_records: np.ndarray  # the record number of each key
    numbers: np.ndarray  # the records' numbers, sorted
    records: pa.Table  # the records' columns, in the order of `numbers`
    source_names: tuple[str, ...]  # the sources of the records, each once
    source_codes: np.ndarray  # each record's source as its place in `source_names`, in the order of `numbers`
    # a number of each record's key (DuckDB's hash of it), in the order of `numbers`: the order candidates are taken in
    # among those found by as many keys, whatever numbers a view gave its records (an update numbers the records it
    # rewrites after the others, a full publish in the linkage input's order)
    order: np.ndarray

    @classmethod
    def read(cls, cur: duckdb.DuckDBPyConnection) -> ResolveIndex:
        """Read through a DuckDB instance of its own, closed when done: the blocks read stay out of the service's
        buffer pool (at 1M: a process at 1.1 GB instead of 1.9 GB)."""
        import duckdb

        (path,) = cur.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
        if not path:  # a database in memory: read through the caller's own connection
            return cls._read(cur)
        with duckdb.connect() as own:
            own.execute("ATTACH ? AS view (READ_ONLY)", [path])
            own.execute("USE view")
            return cls._read(own)

    @classmethod
    def _read(cls, cur: duckdb.DuckDBPyConnection) -> ResolveIndex:
        keys = cur.execute(f"SELECT key_hash, {RECORD_NUMBER} FROM resolve_keys").fetchnumpy()
        hashes, records = np.asarray(keys["key_hash"], dtype=np.uint64), np.asarray(keys[RECORD_NUMBER])
        del keys
        hashes, records = sorted_keys(hashes, records)
        sql, params = _records_sql(cur)
        keyed = "record_key" in cur.sql(sql, params=params).columns  # a record's key (not in a hand-made table)
        order_sql = "hash(record_key)" if keyed else f"{RECORD_NUMBER}::UBIGINT"
        table = cur.sql(f"SELECT *, {order_sql} AS {_ORDER} FROM ({sql})", params=params)
        table = table.to_arrow_table().combine_chunks()
        numbers = table.column(RECORD_NUMBER).to_numpy()
        if len(numbers) > 1 and not bool(np.all(numbers[:-1] <= numbers[1:])):  # read out of their stored order
            order = np.argsort(numbers, kind="stable")
            table, numbers = table.take(order).combine_chunks(), numbers[order]
        by_key = np.asarray(table.column(_ORDER).to_numpy(), dtype=np.uint64)
        table = table.drop_columns([RECORD_NUMBER, _ORDER])
        encoded = table.column("source").combine_chunks().dictionary_encode()  # a role's sources: a mask of codes
        names = tuple(str(name) for name in encoded.dictionary.to_pylist())
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        return cls(hashes, records, numbers, table, names, codes, by_key)

    def record_numbers(self, hashes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(the numbers of the records any of the key `hashes` finds, each once, sorted; how many of the keys found
        each)."""
        wanted = np.asarray(hashes, dtype=np.uint64)
        first = np.searchsorted(self.key_hashes, wanted, side="left")
        last = np.searchsorted(self.key_hashes, wanted, side="right")
        found = [self.key_records[a:b] for a, b in zip(first.tolist(), last.tolist()) if b > a]
        if not found:
            return np.empty(0, dtype=self.key_records.dtype), np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(found), return_counts=True)

    def records_of(self, found: tuple[np.ndarray, np.ndarray], sources: set[str], limit: int) -> list[dict[str, Any]]:
        """The records `found` (record_numbers) whose source is one of `sources`, at most `limit` of them, each as a
        dict of its columns: those found by the most keys first (the same ID and birth date before a shared phone
        number alone), then by their key's number (`order`), so that which records are kept does not depend on how a
        view numbered them."""
        numbers, counts = found
        rows = np.searchsorted(self.numbers, numbers)
        seen = np.fromiter((name in sources for name in self.source_names), dtype=bool, count=len(self.source_names))
        visible = seen[self.source_codes[rows]]
        rows, counts = rows[visible], counts[visible]
        if not len(rows):
            return []
        ranked = rows[np.lexsort((self.order[rows], -counts))][:limit]
        return self.records.take(ranked).to_pylist()


_ORDER = "_cv_order"


def sorted_keys(hashes: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The keys (and their record numbers beside them) sorted by hash. As stored they are sorted, or (in a view an
    incremental run updated: serving/resolve_view.py) sorted up to a tail of keys appended since, which is sorted
    alone and merged in: at 1M, about 0.1 s for a landing's tail against 2-3 s for sorting 21.7M keys whole. A view
    published before its keys were sorted is a tail from its first key."""
    if len(hashes) < 2:
        return hashes, records
    unsorted = np.flatnonzero(hashes[:-1] > hashes[1:])
    if not len(unsorted):
        return hashes, records
    cut = int(unsorted[0]) + 1
    order = np.argsort(hashes[cut:], kind="stable")
    tail_hashes, tail_records = hashes[cut:][order], records[cut:][order]
    at = np.searchsorted(hashes[:cut], tail_hashes, side="right")
    return np.insert(hashes[:cut], at, tail_hashes), np.insert(records[:cut], at, tail_records)


def _records_sql(cur: duckdb.DuckDBPyConnection) -> tuple[str, list[str]]:
    """The statement (and its parameters) reading the records' number and columns; from a view published before they
    were stored as columns, unpacked from the one JSON column `inputs` they were packed in then (slower: the JSON is
    parsed)."""
    columns = [name for name, *_ in cur.execute("DESCRIBE resolve_records").fetchall()]
    if "inputs" not in columns:
        return "SELECT * FROM resolve_records", []
    types = {n: t for n, t, *_ in cur.execute("DESCRIBE resolve_columns").fetchall() if not n.startswith("tf_")}
    return f"SELECT {RECORD_NUMBER}, unnest(from_json(inputs, ?)) FROM resolve_records", [json.dumps(types)]
