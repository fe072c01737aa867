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

An incremental publication (view_update.py rewrites only the documents of the citizens it touched) writes the file
from the one beside the view it updated: that file's data copied as it is, the touched citizens' documents appended,
the index written anew. A replaced document stays in the data unreferenced until the superseded ones pass
GARBAGE_SHARE of the documents, when the file is written whole again.

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
# magic, documents, documents stored (superseded ones too), ID width, where name, data, ids, where and offsets start,
# and the name's length
HEADER = struct.Struct("<8s9Q")
BATCH_ROWS = 65_536  # documents converted at a time while the file is written
GARBAGE_SHARE = 0.25  # superseded documents in the data, against the live ones, above which the file is written whole


def path_for(view: Path) -> Path:
    """The documents file of the view file `view`."""
    return view.with_name(view.name + SUFFIX)


def write(view: Path, out: Path, *, name: str) -> int:
    """Write the documents of the (closed) view file `view` to `out`, for the view to be served as `name`, and flush
    it to disk; returns how many documents it holds."""
    import duckdb

    con = duckdb.connect(str(view), read_only=True)
    try:
        con.execute("SET enable_progress_bar = false")
        with _Writer(out, name) as w:
            for batch in con.sql("SELECT citizen_id, doc FROM citizen_docs").to_arrow_reader(BATCH_ROWS):
                w.append(batch)
            return w.finish()
    finally:
        con.close()


def write_changed(view: Path, out: Path, *, name: str, base: Path, base_view: str, changed: list[str]) -> int:
    """`write`, for a view that differs from the view `base_view` only in the documents of the citizens `changed`
    (view_update.py rewrites exactly theirs), from that view's documents file `base`: its data copied, theirs appended.
    Written whole instead when `base` is not that view's file or the superseded documents would pass GARBAGE_SHARE."""
    import duckdb

    try:
        old = DocumentFile(base, view=base_view, documents=None)
    except (OSError, ValueError):
        return write(view, out, name=name)
    con = duckdb.connect(str(view), read_only=True)
    try:
        con.execute("SET enable_progress_bar = false")
        documents = con.execute("SELECT count(*) FROM citizen_docs").fetchall()[0][0]
        if old.stored - len(old.ids) + len(changed) > GARBAGE_SHARE * max(documents, 1):
            old.close()
            con.close()
            return write(view, out, name=name)
        with _Writer(out, name) as w:
            w.copy_data(old)
            query = "SELECT citizen_id, doc FROM citizen_docs WHERE citizen_id = ANY($changed)"
            for batch in con.sql(query, params={"changed": changed}).to_arrow_reader(BATCH_ROWS):
                w.append(batch)
            return w.finish(kept=old, dropped=changed, documents=documents)
    finally:
        old.close()
        con.close()


class _Writer:
    """A documents file being written to `out`: the header's place, the name, then the data as it comes; the index and
    the header at `finish`."""

    def __init__(self, out: Path, name: str):
        self.out, self.raw_name = out, name.encode("utf-8")
        self.ids: list[np.ndarray] = []  # the IDs of the documents appended, in the order appended
        self.ends: list[np.ndarray] = [np.zeros(1, dtype=np.uint64)]  # where each stored document ends
        self.stored = self.written = 0  # documents and bytes in the data

    def __enter__(self) -> _Writer:
        self.f = open(self.out, "wb")
        self.f.write(b"\0" * HEADER.size)
        self.name_at = self.f.tell()
        self.f.write(self.raw_name)
        self.data_at = _pad(self.f)
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def copy_data(self, old: DocumentFile) -> None:
        """The data of `old` as it is (by the kernel, without passing through this process): its documents keep their
        numbers."""
        length = int(old.offsets[-1])
        with open(old.path, "rb") as src:
            self.f.flush()
            at, done = old.data_at, 0
            while done < length:
                copied = os.copy_file_range(src.fileno(), self.f.fileno(), length - done, at + done)
                if copied == 0:
                    raise OSError(f"{old.path} ended before its data did")
                done += copied
        self.f.seek(0, os.SEEK_END)
        self.ends = [np.asarray(old.offsets, dtype=np.uint64).copy()]
        self.stored, self.written = old.stored, length

    def append(self, batch) -> None:
        """One Arrow batch of (citizen_id, doc): the documents written, their IDs and ends kept."""
        import pyarrow as pa

        citizens, docs = batch.column(0), batch.column(1)
        if docs.type != pa.large_string():
            docs = docs.cast(pa.large_string())
        self.ids.append(citizens.to_numpy(zero_copy_only=False).astype("S"))
        starts = np.frombuffer(docs.buffers()[1], dtype=np.int64)[docs.offset : docs.offset + len(docs) + 1]
        data = docs.buffers()[2]
        if data is not None and starts[-1] > starts[0]:
            self.f.write(memoryview(data)[starts[0] : starts[-1]])
        ends = (starts[1:] - starts[0]).astype(np.uint64) + np.uint64(self.written)
        if docs.null_count:  # a document that is null reads as none: an empty slice
            ends = _nulls_empty(ends, docs.is_null().to_numpy(zero_copy_only=False), self.written)
        self.ends.append(ends)
        self.stored += len(docs)
        self.written += int(starts[-1] - starts[0])

    def finish(self, *, kept: DocumentFile | None = None, dropped: list[str] = (), documents: int | None = None) -> int:
        """The index (the appended documents, and those of `kept` but the `dropped` citizens'), the header, flushed
        to disk; returns the documents indexed. ValueError when they are not the view's `documents`."""
        appended = np.concatenate(self.ids) if self.ids else np.array([], dtype="S1")
        numbers = np.arange(self.stored - len(appended), self.stored, dtype=np.uint64)
        if kept is not None and len(kept.ids):
            width = max(kept.ids.dtype.itemsize, appended.dtype.itemsize, 1)
            gone = np.array([c.encode("utf-8") for c in dropped], dtype=f"S{width}")
            keep = ~np.isin(kept.ids, gone)
            appended = np.concatenate([kept.ids[keep].astype(f"S{width}"), appended.astype(f"S{width}")])
            numbers = np.concatenate([np.asarray(kept.where[keep], dtype=np.uint64), numbers])
        if documents is not None and len(appended) != documents:
            raise ValueError(f"the documents file would index {len(appended)} documents, the view holds {documents}")
        order = np.argsort(appended, kind="stable")
        ids_at = _pad(self.f)
        self.f.write(appended[order].tobytes())
        where_at = _pad(self.f)
        self.f.write(numbers[order].tobytes())
        offsets_at = _pad(self.f)
        self.f.write(np.concatenate(self.ends).tobytes())
        self.f.seek(0)
        header = (len(appended), self.stored, appended.dtype.itemsize, self.name_at, self.data_at, ids_at, where_at)
        self.f.write(HEADER.pack(MAGIC, *header, offsets_at, len(self.raw_name)))
        self.f.flush()
        os.fsync(self.f.fileno())
        return len(appended)


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

    def __init__(self, path: Path, *, view: str, documents: int | None):
        """Map `path`; ValueError unless it was written for the view file named `view`, holding `documents` (None:
        as many as it says)."""
        self.path = path
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._read(view, documents)
        except Exception:
            self.close()
            raise

    def _read(self, view: str, documents: int | None) -> None:
        if len(self._map) < HEADER.size:
            raise ValueError("the documents file is shorter than its header")
        magic, n, stored, width, name_at, data_at, ids_at, where_at, offsets_at, name_len = HEADER.unpack_from(
            self._map
        )
        if magic != MAGIC:
            raise ValueError("not a documents file of this release")
        name = bytes(self._map[name_at : name_at + name_len]).decode("utf-8")
        if name != view:
            raise ValueError(f"the documents file was written for view {name!r}, not {view!r}")
        if documents is not None and n != documents:
            raise ValueError(f"the documents file holds {n} documents, the view {documents}")
        if stored < n or offsets_at + (stored + 1) * 8 != len(self._map):
            raise ValueError("the documents file is not as long as its header says (cut short?)")
        self.data_at, self.stored = data_at, stored
        self.ids = np.frombuffer(self._map, dtype=f"S{max(width, 1)}", count=n, offset=ids_at)
        self.where = np.frombuffer(self._map, dtype=np.uint64, count=n, offset=where_at)
        self.offsets = np.frombuffer(self._map, dtype=np.uint64, count=stored + 1, offset=offsets_at)
        if data_at + int(self.offsets[-1]) > ids_at:  # the data part may end in padding, never run past it
            raise ValueError("the documents file's offsets point past its data")
        if n and int(self.where.max()) >= stored:
            raise ValueError("the documents file's index points past its documents")

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
        start, end = self.data_at + int(self.offsets[number]), self.data_at + int(self.offsets[number + 1])
        return self._map[start:end].decode("utf-8") if end > start else None

    def read_in(self, chunk: int = 16 << 20) -> None:
        """Read the whole file once, through the kernel's page cache, before the service uses it: a first look at a
        citizen then finds their page in memory instead of waiting on the disk (an advice to read ahead returns at once,
        and the first requests would wait for the pages it has not read yet). Shared by the service's processes: the
        second reads what the first brought in."""
        buffer = bytearray(chunk)
        with open(self.path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass

    def close(self) -> None:
        """Unmap the file (the arrays read from it must be gone by then; numpy holds the map open while they live)."""
        for name in ("ids", "where", "offsets"):
            self.__dict__.pop(name, None)
        try:
            self._map.close()
        except BufferError:  # an array still refers to it: it closes when that array goes
            pass
