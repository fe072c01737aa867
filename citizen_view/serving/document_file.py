"""The served view's citizen documents in a file of their own beside it, read by the service without a DuckDB statement.

A look at a citizen reads that citizen's document (documents.py). From the view it is an index probe: ~0.5 ms of CPU,
mostly the statement's fixed cost (DuckDB 2 spends ~0.2 ms on `SELECT 1`), and about half of a national-ID search's
CPU over HTTP. Publishing therefore writes the documents a second time, into `<view>.docs`:

    header   magic, counts and where each part starts (HEADER, little-endian 64-bit integers)
    name     the view file's name: a documents file is only read beside the view it was written for
    data     the documents (UTF-8 JSON) one after the other, in the view's stored order
    ids      the citizen IDs, sorted, fixed width (ASCII)
    where    for each sorted ID, its document's number in `data`
    offsets  where each document starts and ends in `data`

The service maps it into memory (`mmap`): a look is a binary search and a slice. The pages are the kernel's page
cache, shared by the service's worker processes, where the view's documents read into DuckDB's buffers were held once
per process. The view keeps its `citizen_docs` (the analysts' SQL views and the incremental update read it); the file
is derived from it, written before the view is switched in, and removed with it. A view without the file, or with one
that does not match it (another view's name, another number of documents), is served from `citizen_docs` as before,
with the same answers (tests/test_document_file.py).
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import numpy as np

SUFFIX = ".docs"
MAGIC = b"CVDOCS01"
# magic, documents, ID width, and where name, data, ids, where and offsets start, and the name's length
HEADER = struct.Struct("<8s8Q")
BATCH_ROWS = 65_536  # documents converted at a time while the file is written


def path_for(view: Path) -> Path:
    """The documents file of the view file `view`."""
    return view.with_name(view.name + SUFFIX)


def write(view: Path, out: Path, *, name: str) -> int:
    """Write the documents of the (closed) view file `view` to `out`, for the view to be served as `name`, and flush
    it to disk; returns how many documents it holds."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(str(view), read_only=True)
    ids: list[np.ndarray] = []
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.uint64)]
    written = 0
    with open(out, "wb") as f:
        f.write(b"\0" * HEADER.size)
        name_at = f.tell()
        raw_name = name.encode("utf-8")
        f.write(raw_name)
        data_at = _pad(f)
        try:
            con.execute("SET enable_progress_bar = false")
            reader = con.sql("SELECT citizen_id, doc FROM citizen_docs").to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                citizens, docs = batch.column(0), batch.column(1)
                if docs.type != pa.large_string():
                    docs = docs.cast(pa.large_string())
                ids.append(citizens.to_numpy(zero_copy_only=False).astype("S"))
                starts = np.frombuffer(docs.buffers()[1], dtype=np.int64)[docs.offset : docs.offset + len(docs) + 1]
                data = docs.buffers()[2]
                if data is not None and starts[-1] > starts[0]:
                    f.write(memoryview(data)[starts[0] : starts[-1]])
                ends = (starts[1:] - starts[0]).astype(np.uint64) + np.uint64(written)
                if docs.null_count:  # a document that is null reads as none: an empty slice
                    ends = _nulls_empty(ends, docs.is_null().to_numpy(zero_copy_only=False), written)
                offsets.append(ends)
                written += int(starts[-1] - starts[0])
        finally:
            con.close()
        key = np.concatenate(ids) if ids else np.array([], dtype="S1")
        order = np.argsort(key, kind="stable").astype(np.uint64)
        ids_at = _pad(f)
        f.write(key[order].tobytes())
        where_at = _pad(f)
        f.write(order.tobytes())
        offsets_at = _pad(f)
        f.write(np.concatenate(offsets).tobytes())
        f.seek(0)
        f.write(
            HEADER.pack(
                MAGIC, len(key), key.dtype.itemsize, name_at, data_at, ids_at, where_at, offsets_at, len(raw_name)
            )
        )
        f.flush()
        os.fsync(f.fileno())
    return len(key)


def _pad(f) -> int:
    """Pad the file to a multiple of 8 bytes (numpy reads each part in place); returns the position."""
    f.write(b"\0" * (-f.tell() % 8))
    return f.tell()


def _nulls_empty(ends: np.ndarray, nulls: np.ndarray, before: int) -> np.ndarray:
    """`ends` with each null document's end set to its start (Arrow gives a null string no bytes anyway)."""
    starts = np.concatenate([[np.uint64(before)], ends[:-1]])
    return np.where(nulls, starts, ends).astype(np.uint64)


class DocumentFile:
    """A view's documents file, mapped into memory: `get(citizen_id)` is the document `citizen_docs` holds for them."""

    def __init__(self, path: Path, *, view: str, documents: int):
        """Map `path`; ValueError unless it was written for the view file named `view`, holding `documents`."""
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._read(view, documents)
        except Exception:
            self.close()
            raise

    def _read(self, view: str, documents: int) -> None:
        if len(self._map) < HEADER.size:
            raise ValueError("the documents file is shorter than its header")
        magic, n, width, name_at, data_at, ids_at, where_at, offsets_at, name_len = HEADER.unpack_from(self._map)
        if magic != MAGIC:
            raise ValueError("not a documents file of this release")
        name = bytes(self._map[name_at : name_at + name_len]).decode("utf-8")
        if name != view:
            raise ValueError(f"the documents file was written for view {name!r}, not {view!r}")
        if n != documents:
            raise ValueError(f"the documents file holds {n} documents, the view {documents}")
        if offsets_at + (n + 1) * 8 != len(self._map):
            raise ValueError("the documents file is not as long as its header says (cut short?)")
        self._data_at = data_at
        self.ids = np.frombuffer(self._map, dtype=f"S{max(width, 1)}", count=n, offset=ids_at)
        self.where = np.frombuffer(self._map, dtype=np.uint64, count=n, offset=where_at)
        self.offsets = np.frombuffer(self._map, dtype=np.uint64, count=n + 1, offset=offsets_at)
        if n and data_at + int(self.offsets[-1]) > ids_at:  # the data part may end in padding, never run past it
            raise ValueError("the documents file's offsets point past its data")

    def get(self, citizen_id: str) -> str | None:
        """The citizen's document (JSON text), or None when the view has none for them."""
        try:
            key = citizen_id.encode("ascii")
        except UnicodeEncodeError:
            return None
        if not len(self.ids) or len(key) > self.ids.dtype.itemsize:
            return None
        i = int(np.searchsorted(self.ids, np.array(key, dtype=self.ids.dtype)))
        if i >= len(self.ids) or self.ids[i] != key:
            return None
        number = int(self.where[i])
        start, end = self._data_at + int(self.offsets[number]), self._data_at + int(self.offsets[number + 1])
        return self._map[start:end].decode("utf-8") if end > start else None

    def advise_resident(self) -> None:
        """Ask the kernel to read the whole file into its page cache now (a first look then finds its page there)."""
        self._map.madvise(mmap.MADV_WILLNEED)

    def close(self) -> None:
        """Unmap the file (the arrays read from it must be gone by then; numpy holds the map open while they live)."""
        for name in ("ids", "where", "offsets"):
            self.__dict__.pop(name, None)
        try:
            self._map.close()
        except BufferError:  # an array still refers to it: it closes when that array goes
            pass
