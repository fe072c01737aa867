"""The documents file beside a served view (document_file.py): written with every view, it holds exactly the view's
`citizen_docs`; the service reads it only beside the view it was written for, and its answers are the same either way;
views pruned or crashed publications take their documents files with them."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from citizen_view.layout import PARTIAL, WarehouseLayout, clean_partials
from citizen_view.serving import document_file
from citizen_view.serving.access import EXAMPLE_ACCESS_FILE, load_access
from citizen_view.serving.deps import ServedView, read_documents
from citizen_view.serving.document_file import DocumentFile
from citizen_view.serving.documents import DOCS, ViewInfo
from citizen_view.serving.profile import load_profile, summaries
from citizen_view.serving.snapshot import KEEP_VIEWS, _prune, current_view


@pytest.fixture(scope="module")
def view(linked_world):
    """The view the linked world's run published (read only)."""
    return current_view(WarehouseLayout.of(linked_world.warehouse).serving_dir)


@pytest.fixture(scope="module")
def docs_of_view(view):
    con = duckdb.connect(str(view), read_only=True)
    try:
        yield dict(con.execute(f"SELECT citizen_id, doc FROM {DOCS}").fetchall())
    finally:
        con.close()


def test_every_published_view_has_a_documents_file_holding_exactly_its_documents(view, docs_of_view):
    path = document_file.path_for(view)
    assert path.is_file()
    docs = DocumentFile(path, view=view.name, documents=len(docs_of_view))
    assert len(docs_of_view) > 300
    assert all(docs.get(citizen_id) == doc for citizen_id, doc in docs_of_view.items())
    # a citizen the view does not hold, and IDs no citizen can have
    for unknown in ("CV-AAAA-AAAA-AAAA", "", "CV-ÄÄÄÄ", "CV-" + "A" * 60, min(docs_of_view)[:-1]):
        assert unknown not in docs_of_view and docs.get(unknown) is None


def test_a_documents_file_is_refused_beside_another_view_or_when_it_does_not_hold_the_view(
    view, docs_of_view, tmp_path
):
    path = document_file.path_for(view)
    n = len(docs_of_view)
    with pytest.raises(ValueError, match="written for view"):
        DocumentFile(path, view="view-another.duckdb", documents=n)
    with pytest.raises(ValueError, match="holds"):
        DocumentFile(path, view=view.name, documents=n + 1)
    cut = tmp_path / "cut.docs"
    cut.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="cut short"):
        DocumentFile(cut, view=view.name, documents=n)
    other = tmp_path / "other.docs"
    other.write_bytes(b"PAR1" + path.read_bytes()[4:])
    with pytest.raises(ValueError, match="not a documents file"):
        DocumentFile(other, view=view.name, documents=n)


def _served(view, path) -> ServedView:
    con = duckdb.connect(str(path), read_only=True)
    return ServedView(con, view.name, ViewInfo.read(con), path)


def test_the_service_answers_the_same_from_the_documents_file_as_from_the_view(view, docs_of_view, tmp_path):
    """Every role's profile and result-list summary of a sample of citizens, read through the mapped documents file
    and through the view's index: the same. (A role's sources apply to the document's records either way.)"""
    served = _served(view, view)
    read_documents(served)
    assert served.info.docs is not None
    without = ViewInfo.read(served.con)
    assert without.docs is None
    sources = [r[0] for r in served.con.execute("SELECT DISTINCT source FROM source_rank").fetchall()]
    sample = sorted(docs_of_view)[::5]
    cur = served.con.cursor()
    compared = 0
    for role in (r.for_view(sources) for r in load_access(EXAMPLE_ACCESS_FILE).roles.values()):
        with_file = summaries(cur, sample, role, served.info)
        assert with_file == summaries(cur, sample, role, without)
        for citizen_id in sample[:20]:
            a, b = load_profile(cur, citizen_id, role, served.info), load_profile(cur, citizen_id, role, without)
            assert (a.as_dict() if a else None) == (b.as_dict() if b else None)
            compared += a is not None
    assert compared > 20
    served.con.close()


def test_a_view_whose_documents_file_does_not_match_is_served_from_the_view(view, tmp_path):
    """A documents file from another view beside this one (as after a copy by hand) is not used."""
    copy = tmp_path / view.name
    shutil.copy(view, copy)
    other = tmp_path / "view-other.duckdb"
    shutil.copy(view, other)
    document_file.write(other, document_file.path_for(copy), name=other.name)
    served = _served(view, copy)
    read_documents(served)
    assert served.info.docs is None
    served.con.close()


def test_pruned_views_and_crashed_publications_take_their_documents_files_with_them(view, tmp_path):
    folder = tmp_path / "serving"
    folder.mkdir()
    names = [f"view-2026010{i}-000000-000000-run.duckdb" for i in range(KEEP_VIEWS + 2)]
    for name in names:
        (folder / name).write_bytes(b"view")
        document_file.path_for(folder / name).write_bytes(b"docs")
    orphan = document_file.path_for(folder / "view-20250101-000000-000000-gone.duckdb")
    orphan.write_bytes(b"docs")  # a crash between the documents file's rename and its view's
    (folder / "CURRENT").write_text(names[-1] + "\n")
    _prune(folder, keep=KEEP_VIEWS)
    kept = sorted(p.name for p in folder.glob("view-*"))
    assert kept == sorted(n + s for n in names[-KEEP_VIEWS:] for s in ("", document_file.SUFFIX))
    partial_docs = document_file.path_for(folder / f".{names[0]}{PARTIAL}")
    partial_docs.write_bytes(b"half")
    assert partial_docs in clean_partials(folder) and not partial_docs.exists()


def test_a_documents_file_written_from_an_earlier_one_holds_the_view_and_is_written_whole_past_its_garbage_share(
    view, docs_of_view, tmp_path
):
    """`write_changed` on the same view with a few citizens said to have changed: the earlier file's data copied,
    theirs appended, every document as the view holds it. With more changed than GARBAGE_SHARE allows, or beside a
    file of another view, it is written whole (nothing superseded)."""
    base = document_file.path_for(view)
    n = len(docs_of_view)
    some = sorted(docs_of_view)[:7]
    out = tmp_path / "changed.docs"
    assert document_file.write_changed(view, out, name="next", base=base, base_view=view.name, changed=some) == n
    docs = DocumentFile(out, view="next", documents=n)
    assert docs.stored == n + len(some)
    assert all(docs.get(c) == doc for c, doc in docs_of_view.items())
    # the replaced documents are kept as zeros only: what the view no longer holds is not in the file either
    superseded = sorted(set(range(docs.stored)) - set(docs.where.tolist()))
    assert len(superseded) == len(some)
    for number in superseded:
        start, end = int(docs.offsets[number]), int(docs.offsets[number + 1])
        assert end > start and docs.data(start, end) == bytes(end - start)
    many = sorted(docs_of_view)[: int(document_file.GARBAGE_SHARE * n) + 1]
    for name, base_view, changed in (("whole", view.name, many), ("other", "view-other.duckdb", some)):
        out = tmp_path / f"{name}.docs"
        document_file.write_changed(view, out, name=name, base=base, base_view=base_view, changed=changed)
        docs = DocumentFile(out, view=name, documents=n)
        assert docs.stored == n and all(docs.get(c) == doc for c, doc in docs_of_view.items())


def _resealed(raw: bytearray) -> bytes:
    """A documents file's bytes with its index checksum computed anew over what they hold now: a file written wrong
    rather than damaged in storage, which only the checks behind the checksum can catch."""
    fields = list(document_file.HEADER.unpack_from(raw))
    n, stored, width, name_at, ids_at, where_at, offsets_at, sums_at, name_len = (
        fields[i] for i in (1, 2, 3, 4, 6, 7, 8, 9, 10)
    )
    parts = [
        raw[ids_at : ids_at + n * width],
        raw[where_at : where_at + n * 8],
        raw[offsets_at : offsets_at + (stored + 1) * 8],
        raw[sums_at : sums_at + stored * 4],
    ]
    zeroed = document_file.HEADER.pack(*fields[: document_file.CRC_FIELD], 0)
    fields[document_file.CRC_FIELD] = document_file._index_crc(zeroed, raw[name_at : name_at + name_len], parts)
    document_file.HEADER.pack_into(raw, 0, *fields)
    return bytes(raw)


def _stored_at(view, documents: int, citizen_id: str) -> tuple[int, int]:
    """Where a citizen's document lies in the view's documents file: its first byte and the byte after its last."""
    docs = DocumentFile(document_file.path_for(view), view=view.name, documents=documents)
    try:
        number = int(docs.where[list(docs.ids).index(citizen_id.encode())])
        return docs.data_at + int(docs.offsets[number]), docs.data_at + int(docs.offsets[number + 1])
    finally:
        docs.close()


def test_a_damaged_file_is_refused_or_fails_its_look_instead_of_answering_wrongly(view, docs_of_view, tmp_path):
    """Damage in the index (two entries swapped, one bit of an ID flipped) fails the index checksum when the file is
    opened; a flipped bit in a document fails that document's checksum at its look. Behind the checksum, each stored
    document begins with its citizen's ID, checked at every look, and offsets out of order are refused at opening."""
    path = document_file.path_for(view)
    raw = bytearray(path.read_bytes())
    fields = document_file.HEADER.unpack_from(raw)
    n, ids_at, where_at, offsets_at = fields[1], fields[6], fields[7], fields[8]
    assert n > 2
    swapped = bytearray(raw)
    swapped[where_at : where_at + 8], swapped[where_at + 8 : where_at + 16] = (
        raw[where_at + 8 : where_at + 16],
        raw[where_at : where_at + 8],
    )
    flipped_id = bytearray(raw)
    flipped_id[ids_at + 5] ^= 0x01
    for name, damage in (("swapped", swapped), ("flipped-id", flipped_id)):
        damaged = tmp_path / f"{name}.docs"
        damaged.write_bytes(bytes(damage))
        with pytest.raises(document_file.CorruptDocumentFile, match="checksum"):
            DocumentFile(damaged, view=view.name, documents=n)
    # behind the checksum: the ID each document begins with
    damaged = tmp_path / "swapped-resealed.docs"
    damaged.write_bytes(_resealed(swapped))
    docs = DocumentFile(damaged, view=view.name, documents=n)
    first = docs.ids[0].decode()
    with pytest.raises(document_file.CorruptDocumentFile, match="another citizen"):
        docs.get(first)
    assert docs.get(docs.ids[2].decode()) == docs_of_view[docs.ids[2].decode()]  # the rest still answer
    docs.close()
    # one bit of one document's birth date: the index holds, that look fails, the others answer
    victim = next(c for c, doc in docs_of_view.items() if '"date_of_birth": "19' in doc or '"date_of_birth":"19' in doc)
    start, end = _stored_at(view, n, victim)
    at = raw.index(b'"date_of_birth"', start, end)
    at = raw.index(b"19", at, end)
    in_doc = bytearray(raw)
    in_doc[at + 3] ^= 0x01  # 1977 -> 1976: the same shape, another value
    damaged = tmp_path / "document.docs"
    damaged.write_bytes(bytes(in_doc))
    docs = DocumentFile(damaged, view=view.name, documents=n)
    with pytest.raises(document_file.CorruptDocumentFile, match="does not match its checksum"):
        docs.get(victim)
    other = next(c for c in docs_of_view if c != victim)
    assert docs.get(other) == docs_of_view[other]
    docs.close()
    disordered = bytearray(raw)
    disordered[offsets_at + 8 : offsets_at + 16] = (2**40).to_bytes(8, "little")
    damaged = tmp_path / "offsets.docs"
    damaged.write_bytes(_resealed(disordered))
    with pytest.raises(document_file.CorruptDocumentFile, match="offsets"):
        DocumentFile(damaged, view=view.name, documents=n)


def test_a_document_failing_its_checksum_is_answered_from_the_view_and_the_file_set_aside(
    view, docs_of_view, tmp_path, caplog
):
    """The service, mapping a documents file in which one document is damaged: the look at that citizen (a profile, and
    a result list holding them) answers what the view holds, as without the file, and the file is not used again."""
    copy = tmp_path / view.name
    shutil.copy(view, copy)
    raw = bytearray(document_file.path_for(view).read_bytes())
    victim = sorted(docs_of_view)[3]
    _start, end = _stored_at(view, len(docs_of_view), victim)
    raw[end - 2] ^= 0x01  # inside the document's JSON text, before its closing brace
    document_file.path_for(copy).write_bytes(bytes(raw))
    served = _served(view, copy)
    read_documents(served)
    assert served.info.docs is not None and not served.info.docs.damaged  # the index holds: the file is used
    without = ViewInfo.read(served.con)
    sources = [r[0] for r in served.con.execute("SELECT DISTINCT source FROM source_rank").fetchall()]
    role = next(r.for_view(sources) for r in load_access(EXAMPLE_ACCESS_FILE).roles.values())
    cur = served.con.cursor()
    sample = sorted(docs_of_view)[:8]
    assert summaries(cur, sample, role, served.info) == summaries(cur, sample, role, without)
    assert served.info.docs.damaged and "is damaged" in caplog.text
    a, b = load_profile(cur, victim, role, served.info), load_profile(cur, victim, role, without)
    assert (a.as_dict() if a else None) == (b.as_dict() if b else None)
    served.con.close()


def test_an_update_that_does_not_add_up_is_written_whole_and_a_document_without_a_citizen_is_left_out(
    view, docs_of_view, tmp_path
):
    """A view whose documents differ from its base file's in a citizen not listed as changed (one removed here): the
    count does not add up, so the file is written whole, holding exactly the view's documents. A row without a citizen
    ID (none is written; one is put in here) is left out of the file: no look can ask for it."""
    copy = tmp_path / "changed.duckdb"
    shutil.copy(view, copy)
    gone = min(docs_of_view)
    with duckdb.connect(str(copy)) as con:
        con.execute(f"DELETE FROM {DOCS} WHERE citizen_id = ?", [gone])
        con.execute(f"INSERT INTO {DOCS} (citizen_id, doc) VALUES (NULL, '{{}}')")
    out = tmp_path / "changed.docs"
    base = document_file.path_for(view)
    n = document_file.write_changed(copy, out, name="changed", base=base, base_view=view.name, changed=[])
    docs = DocumentFile(out, view="changed", documents=len(docs_of_view) - 1)
    assert n == len(docs_of_view) - 1 and docs.stored == n  # written whole: nothing superseded; the null row left out
    assert docs.get(gone) is None and docs.get("None") is None
    assert all(docs.get(c) == doc for c, doc in docs_of_view.items() if c != gone)
