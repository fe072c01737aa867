"""The served view's citizen documents in a file of their own beside it, read by the service without a DuckDB statement.

A look at a citizen reads that citizen's document (documents.py). From the view it is an index probe: ~0.5 ms of CPU,
mostly the statement's fixed cost (DuckDB 2 spends ~0.2 ms on `SELECT 1`), and about half of a national-ID search's
CPU over HTTP. Publishing therefore writes the documents a second time, into `<view>.docs`:

    header   magic, counts, where each part starts and the index's checksum (HEADER, little-endian 64-bit integers)
    name     the view file's name: a documents file is only read beside the view it was written for
    data     the documents one after the other, in the view's stored order, each as its citizen ID, a newline and the
             JSON text (UTF-8): a look checks the ID it finds there, so a damaged index fails loudly, never answering
             with another citizen's document
    ids      the citizen IDs, sorted, fixed width (UTF-8)
    where    for each sorted ID, its document's number in `data`
    offsets  where each document starts and ends in `data`
    sums     each stored document's CRC-32 (ID, newline and text), checked at every look

Damage is found, not served: the header, name, ids, where, offsets and sums are checked against the header's CRC-32
when the file is opened (a file that fails is not used), and each document against its own CRC-32 when it is read
(a look that fails raises CorruptDocumentFile; the service then reads that view's documents from `citizen_docs`:
documents.py). A bit flipped in the data would otherwise serve a wrong value, one in the index a wrong 404 or a
citizen's superseded document.

An incremental publication (view_update.py rewrites only the documents of the citizens it touched) writes the file
from the one beside the view it updated: that file's data copied as it is, the touched citizens' documents appended,
the index written anew. A replaced document stays in the data unreferenced, its bytes blanked (zeros: what the view
no longer holds is not kept in the file either), until the superseded ones pass GARBAGE_SHARE of the documents, when
the file is written whole again; so it is when that way fails for any reason.

The service maps it into memory (`mmap`): a look is a binary search and a slice. The pages are the kernel's page
cache, shared by the service's worker processes, where the view's documents read into DuckDB's buffers were held once
per process. The view keeps its `citizen_docs` (the analysts' SQL views and the incremental update read it); the file
is derived from it, written before the view is switched in, and removed with it. A view without the file, or with one
that does not match it (another view's name, another number of documents), is served from `citizen_docs` as before,
with the same answers (tests/test_document_file.py).
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SUFFIX = ".docs"
MAGIC = b"CVDOCS03"
# magic, documents, documents stored (superseded ones too), ID width, where name, data, ids, where, offsets and sums
# start, the name's length, and the CRC-32 of the header (this field as 0), the name, ids, where, offsets and sums
HEADER = struct.Struct("<8s11Q")
CRC_FIELD = 11  # the index in HEADER's fields of the checksum
BATCH_ROWS = 65_536  # documents converted at a time while the file is written
GARBAGE_SHARE = 0.25  # superseded documents in the data, against the live ones, above which the file is written whole
CHUNK = 16 << 20  # bytes copied or read in at a time
COUNT_SQL = "SELECT count(citizen_id) FROM citizen_docs"  # the documents a file indexes: those with a citizen


class CorruptDocumentFile(ValueError):
    """A documents file that does not say what its header promises (found when it is opened, or at a look)."""


def path_for(view: Path) -> Path:
    """The documents file of the view file `view`."""
    return view.with_name(view.name + SUFFIX)


def write(view: Path, out: Path, *, name: str) -> int:
    """Write the documents of the (closed) view file `view` to `out`, for the view to be served as `name`, and flush
    it to disk; returns how many documents it indexes."""
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
    Written whole instead when `base` is not that view's file, when the superseded documents would pass
    GARBAGE_SHARE, or when writing it this way fails (a file system that cannot copy, a count that does not add up)."""
    try:
        return _write_changed(view, out, name=name, base=base, base_view=base_view, changed=changed)
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("documents file of %s written whole: %s", name, exc)
        return write(view, out, name=name)


def _write_changed(view: Path, out: Path, *, name: str, base: Path, base_view: str, changed: list[str]) -> int:
    import duckdb

    old = DocumentFile(base, view=base_view, documents=None)
    con = duckdb.connect(str(view), read_only=True)
    try:
        con.execute("SET enable_progress_bar = false")
        documents = con.execute(COUNT_SQL).fetchall()[0][0]
        if old.stored - len(old.ids) + len(changed) > GARBAGE_SHARE * max(documents, 1):
            raise ValueError("superseded documents would pass GARBAGE_SHARE")
        with _Writer(out, name) as w:
            w.copy_data(old)
            w.blank(old, changed)
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
        self.sums: list[np.ndarray] = []  # each stored document's CRC-32
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
        """The data of `old` as it is (by the kernel where it can: `copy_file_range`): its documents keep their numbers."""
        length = int(old.offsets[-1])
        self.f.flush()
        try:
            with open(old.path, "rb") as src:
                done = 0
                while done < length:
                    copied = os.copy_file_range(src.fileno(), self.f.fileno(), length - done, old.data_at + done)
                    if copied == 0:
                        raise CorruptDocumentFile(f"{old.path} ended before its data did")
                    done += copied
        except (OSError, AttributeError):  # a file system (or platform) without it: through this process, from the map
            self.f.seek(self.data_at)
            self.f.truncate()
            for at in range(0, length, CHUNK):
                self.f.write(old.data(at, min(at + CHUNK, length)))
        self.f.seek(0, os.SEEK_END)
        self.ends = [np.asarray(old.offsets, dtype=np.uint64).copy()]
        self.sums = [np.asarray(old.sums, dtype=np.uint32).copy()]
        self.stored, self.written = old.stored, length

    def blank(self, old: DocumentFile, citizens: list[str]) -> None:
        """Overwrite with zeros, in the data just copied from `old`, the documents `old` held for `citizens` (replaced
        or gone: no longer referenced)."""
        width = old.ids.dtype.itemsize
        wanted = [k for k in (c.encode("utf-8") for c in citizens) if 0 < len(k) <= width]  # longer: not in `old`
        if not wanted or not len(old.ids):
            return
        keys = np.array(wanted, dtype=old.ids.dtype)
        at = np.searchsorted(old.ids, keys).clip(0, len(old.ids) - 1)
        numbers = old.where[at[old.ids[at] == keys]]
        self.f.flush()
        for n in numbers.tolist():
            start, end = int(old.offsets[n]), int(old.offsets[n + 1])
            os.pwrite(self.f.fileno(), bytes(end - start), self.data_at + start)

    def append(self, batch) -> None:
        """One Arrow batch of (citizen_id, doc): each stored as its ID, a newline and the document (a null document as
        none), its ID and end kept. A row without a citizen ID is left out: no look can ask for it."""
        import pyarrow as pa
        import pyarrow.compute as pc

        batch = batch.filter(pc.is_valid(batch.column(0)))
        citizens = batch.column(0).cast(pa.large_string())
        docs = pc.fill_null(batch.column(1).cast(pa.large_string()), "")
        entries = pc.binary_join_element_wise(citizens, docs, pa.scalar("\n", pa.large_string()))
        self.ids.append(citizens.cast(pa.large_binary()).to_numpy(zero_copy_only=False).astype("S"))
        starts = np.frombuffer(entries.buffers()[1], dtype=np.int64)[entries.offset : entries.offset + len(entries) + 1]
        data = entries.buffers()[2]
        view = memoryview(data) if data is not None else memoryview(b"")
        bounds = starts.tolist()
        self.sums.append(np.fromiter((zlib.crc32(view[a:b]) for a, b in zip(bounds, bounds[1:])), np.uint32))
        if data is not None and starts[-1] > starts[0]:
            self.f.write(view[starts[0] : starts[-1]])
        self.ends.append((starts[1:] - starts[0]).astype(np.uint64) + np.uint64(self.written))
        self.stored += len(entries)
        self.written += int(starts[-1] - starts[0])

    def finish(self, *, kept: DocumentFile | None = None, dropped: list[str] = (), documents: int | None = None) -> int:
        """The index (the appended documents, and those of `kept` but the `dropped` citizens'), the header, flushed
        to disk; returns the documents indexed. ValueError when they are not the view's `documents`."""
        appended = np.concatenate(self.ids) if self.ids else np.array([], dtype="S1")
        numbers = np.arange(self.stored - len(appended), self.stored, dtype=np.uint64)
        if kept is not None and len(kept.ids):
            gone = [c.encode("utf-8") for c in dropped]
            width = max(kept.ids.dtype.itemsize, appended.dtype.itemsize, *(len(g) for g in gone), 1)
            keep = ~np.isin(kept.ids.astype(f"S{width}"), np.array(gone, dtype=f"S{width}"))
            appended = np.concatenate([kept.ids[keep].astype(f"S{width}"), appended.astype(f"S{width}")])
            numbers = np.concatenate([np.asarray(kept.where[keep], dtype=np.uint64), numbers])
        if documents is not None and len(appended) != documents:
            raise ValueError(f"the documents file would index {len(appended)} documents, the view holds {documents}")
        order = np.argsort(appended, kind="stable")
        ids = appended[order]
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            raise ValueError("a citizen ID is held twice among the documents")
        sums = np.concatenate(self.sums) if self.sums else np.array([], dtype=np.uint32)
        parts = [ids.tobytes(), numbers[order].tobytes(), np.concatenate(self.ends).tobytes(), sums.tobytes()]
        starts = []
        for part in parts:  # ids, where, offsets, sums
            starts.append(_pad(self.f))
            self.f.write(part)
        fields = [len(appended), self.stored, appended.dtype.itemsize, self.name_at, self.data_at, *starts]
        header = HEADER.pack(MAGIC, *fields, len(self.raw_name), 0)
        crc = _index_crc(header, self.raw_name, parts)
        self.f.seek(0)
        self.f.write(HEADER.pack(MAGIC, *fields, len(self.raw_name), crc))
        self.f.flush()
        os.fsync(self.f.fileno())
        return len(appended)


def _index_crc(header: bytes, name: bytes, parts: list) -> int:
    """CRC-32 of the header (its checksum field 0), the view's name and the index parts, in that order."""
    crc = zlib.crc32(header)
    for part in (name, *parts):
        crc = zlib.crc32(part, crc)
    return crc


def _pad(f) -> int:
    """Pad the file to a multiple of 8 bytes (numpy reads each part in place); returns the position."""
    f.write(b"\0" * (-f.tell() % 8))
    return f.tell()


class DocumentFile:
    """A view's documents file, mapped into memory: `get(citizen_id)` is the document `citizen_docs` holds for them."""

    def __init__(self, path: Path, *, view: str, documents: int | None):
        """Map `path`; CorruptDocumentFile (a ValueError) unless it was written for the view file named `view`, holding
        `documents` (None: as many as it says), with its parts where its header says and in order."""
        self.path = path
        self.damaged = False  # set once a look found a document failing its checks (`texts`): not used again
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._read(view, documents)
        except Exception:
            self.close()
            raise

    def _read(self, view: str, documents: int | None) -> None:
        size = len(self._map)
        if size < HEADER.size:
            raise CorruptDocumentFile("the documents file is shorter than its header")
        fields = HEADER.unpack_from(self._map)
        magic, n, stored, width, name_at, data_at, ids_at, where_at, offsets_at, sums_at, name_len, crc = fields
        if magic != MAGIC:
            raise CorruptDocumentFile("not a documents file of this release")
        if (
            not (HEADER.size <= name_at <= name_at + name_len <= data_at <= ids_at)
            or n > stored
            or not 0 < width < 1024
        ):
            raise CorruptDocumentFile("the documents file's header does not hold together")
        if (
            ids_at + n * width > where_at
            or where_at + n * 8 > offsets_at
            or offsets_at + (stored + 1) * 8 > sums_at
            or sums_at + stored * 4 != size
        ):
            raise CorruptDocumentFile("the documents file is not as long as its header says (cut short?)")
        zeroed = HEADER.pack(*fields[:CRC_FIELD], 0)
        parts = [(ids_at, n * width), (where_at, n * 8), (offsets_at, (stored + 1) * 8), (sums_at, stored * 4)]
        with memoryview(self._map) as whole:
            name_part, index = whole[name_at : name_at + name_len], [whole[a : a + k] for a, k in parts]
            found = _index_crc(zeroed, name_part, index)
            for part in (name_part, *index):
                part.release()
        if found != crc:
            raise CorruptDocumentFile("the documents file's index does not match its checksum (damaged?)")
        name = bytes(self._map[name_at : name_at + name_len]).decode("utf-8", "replace")
        if name != view:
            raise CorruptDocumentFile(f"the documents file was written for view {name!r}, not {view!r}")
        if documents is not None and n != documents:
            raise CorruptDocumentFile(f"the documents file holds {n} documents, the view {documents}")
        self.data_at, self.stored = data_at, stored
        self.ids = np.frombuffer(self._map, dtype=f"S{width}", count=n, offset=ids_at)
        self.where = np.frombuffer(self._map, dtype=np.uint64, count=n, offset=where_at)
        self.offsets = np.frombuffer(self._map, dtype=np.uint64, count=stored + 1, offset=offsets_at)
        self.sums = np.frombuffer(self._map, dtype=np.uint32, count=stored, offset=sums_at)
        if (
            self.offsets[0] != 0
            or (self.offsets[1:] < self.offsets[:-1]).any()
            or data_at + int(self.offsets[-1]) > ids_at
        ):
            raise CorruptDocumentFile("the documents file's offsets do not run in order within its data")
        if n and (int(self.where.max()) >= stored or not (self.ids[1:] > self.ids[:-1]).all()):
            raise CorruptDocumentFile("the documents file's index is not sorted or points past its documents")

    def data(self, start: int, end: int) -> bytes:
        """Bytes `start` to `end` of the data part."""
        return self._map[self.data_at + start : self.data_at + end]

    def get(self, citizen_id: str) -> str | None:
        """The citizen's document (JSON text), or None when the view has none for them. CorruptDocumentFile when the
        document the index points to is stored under another citizen's ID or does not match its checksum."""
        key = citizen_id.encode("utf-8", "replace")
        if not key or not len(self.ids) or len(key) > self.ids.dtype.itemsize or b"\0" in key:
            return None
        i = int(np.searchsorted(self.ids, np.array(key, dtype=self.ids.dtype)))
        if i >= len(self.ids) or self.ids[i] != key:
            return None
        number = int(self.where[i])
        entry = self.data(int(self.offsets[number]), int(self.offsets[number + 1]))
        if not entry.startswith(key + b"\n"):
            raise CorruptDocumentFile(f"{self.path}: the index points {citizen_id} to another citizen's document")
        if zlib.crc32(entry) != int(self.sums[number]):
            raise CorruptDocumentFile(f"{self.path}: the document of {citizen_id} does not match its checksum")
        return entry[len(key) + 1 :].decode("utf-8") or None

    def texts(self, citizen_ids: list[str]) -> dict[str, str | None] | None:
        """Each citizen's document (`get`), or None when this file is found damaged, now or at an earlier look: it is
        then set aside for good (logged), and the caller reads the view's `citizen_docs`, which gives the same
        answers."""
        if self.damaged:
            return None
        try:
            return {citizen_id: self.get(citizen_id) for citizen_id in citizen_ids}
        except CorruptDocumentFile as exc:
            self.damaged = True
            log.error("documents file %s is damaged (%s): documents are read from the view from now on", self.path, exc)
            return None

    def read_in(self) -> None:
        """Read the whole file once, through the kernel's page cache, before the service uses it: a first look at a
        citizen then finds their page in memory instead of waiting on the disk (an advice to read ahead returns at once,
        and the first requests would wait for the pages it has not read yet). Shared by the service's processes: the
        second reads what the first brought in."""
        for at in range(0, len(self._map), CHUNK):
            _ = self._map[at : at + CHUNK]  # a copy of each chunk, made to read it in

    def close(self) -> None:
        """Unmap and close the file (the arrays read from it must be gone by then; numpy holds the map open while they
        live)."""
        for name in ("ids", "where", "offsets", "sums"):
            self.__dict__.pop(name, None)
        try:
            self._map.close()
        except BufferError:  # an array still refers to it: it closes when that array goes
            pass
