"""Readers for legacy extract formats: every record either parses into string columns or is rejected with a reason.

Records are split the way each format defines them, and never by anything else: text formats by
line feeds only (`\n`, with `\r\n` accepted), so a form feed, a byte 0x85 or a U+2028 inside a
value stays inside its record; a CSV record may continue over the next lines only inside a quoted
value, and only for `max_record_lines` lines: a quote left open longer is a fault of that one line,
which is rejected, and reading resumes on the next line. Each reader accounts for every line of its
file (header, blank, part of a record) and counts the file's records itself; `FileRead.records` is
that count and must equal rows parsed + rows rejected, or the source stops (`SourceError`).
Each parsed row has its values as text plus `_file` and `_line` (the 1-based line or spreadsheet
row where the record starts); each rejected one keeps its raw text and the reason.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from citizen_view.contract import SourceError

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig


@dataclass(frozen=True)
class Reject:
    """A row that could not be loaded, kept with the reason."""

    file: str
    line: int
    reason: str
    raw: str


@dataclass
class FileRead:
    """What one extract file gave: parsed rows (text columns + `_file`, `_line`), rejected rows, and its record count."""

    rows: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    records: int | None = None  # records in the file, counted by the reader's own accounting (None: = rows + rejects)

    def __post_init__(self) -> None:
        if self.records is None:
            self.records = self.rows.height + len(self.rejects)


# A hidden column of parsed rows: values a reader set aside (JSON list of {column, raw, reason}), recorded in
# field_issues by canonical.py.
ISSUES = "_issues"
# The names of the columns ingest adds to parsed rows (where a row came from, what was set aside, its place while
# it is made canonical). A file's own column may not take one: its values would be overwritten. Any other name,
# `_id` of a document store's export among them, is the file's data like every other column.
_INTERNAL = frozenset({"_file", "_line", ISSUES, "_row", "_rid", "_reason", "_pos", "_series", "_extracted_at"})
_INTERNAL_PREFIXES = ("_first_", "_tidy", "_kept_")


def internal(column: str) -> bool:
    """Whether `column` is one ingest adds to parsed rows (see _INTERNAL)."""
    return column in _INTERNAL or column.startswith(_INTERNAL_PREFIXES)


def _reserved_in(columns: Iterable[str]) -> list[str]:
    return sorted({c for c in columns if internal(c)})


def _reserved_message(columns: list[str]) -> str:
    return f"column name(s) {columns} are kept for ingest's own use (which file and line a row came from)"


# Characters nobody sees: a byte-order mark, zero-width spaces and joiners, the word joiner, a soft hyphen.
INVISIBLE = "[\ufeff\u200b\u200c\u200d\u2060\u00ad]"


def read_file(source: SourceConfig, path: Path, *, display_name: str) -> FileRead:
    """Read one extract file of a source in its declared format; check every record is accounted for.

    Record ids are normalised (NFC, without invisible characters), so two ids that look the same are the same.
    """
    reader = _READERS[source.format]
    try:
        got = reader(source, path, display_name)
        rid = source.record_id
        if rid and rid in got.rows.columns:
            got.rows = got.rows.with_columns(pl.col(rid).str.replace_all(INVISIBLE, "").str.normalize("NFC"))
    except SourceError:
        raise
    except Exception as exc:  # any reader's failure (polars, calamine's CalamineError, OS) stops this source alone
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SourceError(
            f"source {source.name!r}: file {display_name!r} cannot be read as {source.format}: {first_line}"
        ) from exc
    if got.records != got.rows.height + len(got.rejects):
        raise SourceError(
            f"source {source.name!r}: file {display_name!r} holds {got.records:,} records but the reader accounted for "
            f"{got.rows.height:,} parsed + {len(got.rejects):,} rejected; nothing was loaded"
        )
    return got


# --- text: lines split by line feeds only ---------------------------------------------------------


@dataclass
class _Lines:
    """A text file's lines (line ends removed) and which of them hold bytes the encoding cannot decode."""

    text: list[str]
    bad: dict[int, str]  # line index -> why the line cannot be a record (undecodable bytes, a NUL byte)


SINGLE_BYTE = ("latin-1", "iso-8859-1", "cp1252")


def _split_lines(data: bytes, encoding: str, name: str = "") -> _Lines:
    """Decode and split on `\n` only (a trailing `\r` is part of the line end); undecodable bytes mark their line.
    A file whose first line ends in `\r` alone has the line ends of old Mac exporters: it is split on those (read as
    one line, every record would be lost in its header). A Ctrl-Z ending the file is DOS's end-of-file mark."""
    _check_declared_encoding(data, encoding, name)
    try:
        text, clean = data.decode(encoding), True  # strictly decoded text holds no lone surrogates
    except UnicodeDecodeError:
        text, clean = data.decode(encoding, errors="surrogateescape"), False
    if text.startswith("\ufeff"):
        text = text[1:]
    if text.endswith("\x1a"):  # the end-of-file mark DOS-era exporters write (Ctrl-Z): no record
        text = text[:-1]
    lines = text.split("\r" if _cr_line_ends(text) else "\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ends with a line end: no empty last line
    out = [line[:-1] if line.endswith("\r") else line for line in lines] if "\r" in text else lines
    bad: dict[int, str] = {}
    # Bytes 0x80-0x9F are control characters in Latin-1 that no text holds, and letters and punctuation (’ – € Š) in
    # Windows-1252, the usual encoding of files labelled Latin-1: a line holding one is set aside, not loaded wrong.
    # (The other lines read alike in both.) Only a line that is not ASCII can hold one.
    c1 = encoding.lower().replace("_", "-") in LATIN_1
    if clean and "\x00" not in text and not c1:  # the usual file: no line needs a look of its own
        return _Lines(out, bad)
    # only a line that is not ASCII can hold a lone surrogate, and only one with a NUL a NUL: the others need no look
    for i in [i for i, line in enumerate(out) if not line.isascii() or "\x00" in line]:
        line = out[i]
        if _may_have_surrogates(line):  # only bytes the encoding could not decode leave lone surrogates
            bad[i] = _undecodable(encoding)
            line = line.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
        if "\x00" in line:  # text never holds NUL: binary data or a corrupt extract, kept visible in `raw`
            bad.setdefault(i, NUL_BYTE)
            line = line.replace("\x00", "\\x00")
        if c1 and (found := _C1.search(line)):
            bad.setdefault(i, _c1_byte(ord(found.group())))
        out[i] = line
    return _Lines(out, bad)


def _cr_line_ends(text: str) -> bool:
    """Whether the file's lines end in `\r` alone (old Mac exporters; Mac Excel then writes a line break inside a
    value as `\n`): its first line end, the header's, is a `\r` not followed by `\n`."""
    first = re.search("[\r\n]", text)
    return first is not None and first.group() == "\r" and text[first.end() : first.end() + 1] != "\n"


def _check_declared_encoding(data: bytes, encoding: str, name: str) -> None:
    """Stop a file whose declared encoding would load its letters wrong, nothing loaded, with the encoding to set:

    - a UTF-16 file (it starts with UTF-16's byte-order mark) declared otherwise: every line would be undecodable;
    - a file declared in a one-byte encoding that is really UTF-8: every accented letter would load as mojibake
      ("é" as "Ã©"). Text in those encodings practically never forms valid multi-byte UTF-8 sequences."""
    enc = encoding.lower().replace("_", "-")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") and not enc.startswith("utf-16"):
        raise SourceError(
            f"file {name!r} is declared {encoding} but starts with UTF-16's byte-order mark: set options.encoding: "
            f"utf-16; nothing was loaded"
        )
    if encoding.lower() not in SINGLE_BYTE or data.isascii():
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return
    raise SourceError(
        f"file {name!r} is declared {encoding} but is UTF-8 text (its non-ASCII bytes all form UTF-8 characters): "
        f"set options.encoding: utf-8; nothing was loaded"
    )


def _may_have_surrogates(line: str) -> bool:
    try:
        line.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


NUL_BYTE = "a NUL byte in a text record (binary data or a corrupt extract)"
LATIN_1 = ("latin-1", "iso-8859-1", "latin1", "iso8859-1", "l1")
_C1 = re.compile("[\x80-\x9f]")


def _c1_byte(byte: int) -> str:
    return (
        f"byte 0x{byte:02X}: a control character in Latin-1 that no text holds, a letter or punctuation mark in "
        f"Windows-1252 (set options.encoding: cp1252 if the file is Windows-1252)"
    )


def _undecodable(encoding: str) -> str:
    return f"undecodable bytes for encoding {encoding}"


def _frame(columns: list[str], values: list[list[str | None]], files: str, lines: list[int]) -> pl.DataFrame:
    data: dict[str, list] = {c: v for c, v in zip(columns, values)}
    df = pl.DataFrame(data, schema={c: pl.String for c in columns}) if columns else pl.DataFrame()
    return df.with_columns(pl.lit(files).alias("_file"), pl.Series("_line", lines, dtype=pl.Int64))


def _check_accounting(name: str, total: int, **parts: int) -> None:
    """Every line of the file is the header, blank, undecodable or part of exactly one record."""
    if sum(parts.values()) != total:
        detail = ", ".join(f"{k} {v:,}" for k, v in parts.items())
        raise SourceError(f"file {name!r}: {total:,} lines but {detail} account for {sum(parts.values()):,}")


# --- csv -------------------------------------------------------------------------------------------


def read_csv(source: SourceConfig, path: Path, name: str, *, in_bulk: bool = True) -> FileRead:
    """Delimited text; a record with the wrong number of fields, or a quote left open, is rejected with its line.

    Lines are read one record at a time, except where `_plain_lines` finds runs that need less: lines with no quote
    character and the right number of delimiters are split in bulk by polars, and lines whose quotes pair up are
    read by one csv reader per run rather than one per line (at 700k lines, about 1.4 s of Python less).
    `in_bulk=False` reads every line one at a time: the reference a test holds the bulk reading to."""
    encoding = str(source.option("encoding"))
    lines = _split_lines(path.read_bytes(), encoding, name)
    text, bad = lines.text, lines.bad
    delimiter = str(source.option("delimiter"))
    quotechar = source.option("quotechar") or None
    max_lines = int(source.option("max_record_lines"))
    max_bytes = int(source.option("max_field_bytes"))
    rejects: list[Reject] = []
    header: list[str] | None = None if source.option("header") else []
    cols: list[list[str | None]] = []
    line_nos: list[int] = []
    header_lines = blank = record_lines = 0
    i, n = 0, len(text)
    plain: _Plain | None = None  # known once the header is (see _plain_lines)
    runs: list[tuple[int, int]] = []  # runs [a, b) of lines split in bulk
    while i < n:
        if plain is None and header and in_bulk:
            plain = _plain_lines(text, i, bad, delimiter, quotechar, len(header), max_bytes // 4)
        if plain is not None and plain.fast[i]:
            end = int(plain.others[np.searchsorted(plain.others, i)])  # the run of such lines from i
            runs.append((i, end))
            record_lines += end - i
            i = end
            continue
        line = text[i]
        if i in bad and header is None:  # read as a record, it would leave the next line to be taken as the header
            raise SourceError(
                f"source {source.name!r}: file {name!r}: the header line cannot be read ({bad[i]}): check "
                f"options.encoding; nothing was loaded"
            )
        if i in bad:
            rejects.append(Reject(name, i + 1, bad[i], line))
            record_lines += 1
            i += 1
            continue
        if not line.strip():
            blank += 1
            i += 1
            continue
        row, used, problem = _one_record(text, i, bad, delimiter, quotechar, max_lines)
        if header is None:
            if problem:
                raise SourceError(f"source {source.name!r}: file {name!r}: the header line cannot be read ({problem})")
            header = [h.strip() for h in row]
            _check_header(source, name, header)
            cols = [[] for _ in header]
            header_lines += used
            i += used
            continue
        if not header:
            header = [f"column_{k + 1}" for k in range(len(row))]
            cols = [[] for _ in header]
        if problem is None and len(row) != len(header):
            problem = f"wrong field count: {len(row)} fields, expected {len(header)}"
        stray = None
        if used > 1:  # a stray quote comes first: the records it swallowed are read as records of their own
            stray = _swallowed(text[i + 1 : i + used], i + 2, delimiter, quotechar, len(header))
            problem = stray or problem
        # a field is no longer than its line, unless its record spans lines: most lines need no look at each field
        if (
            problem is None
            and (used > 1 or len(line) > max_bytes // 4)
            and max(map(len, row), default=0) > max_bytes // 4
        ):
            problem = _too_big(row, header, max_bytes)
        if problem is not None:
            # A stray quote is rejected with its line only: the next line starts a new record, so it can never
            # swallow the records after it. Any other record that fails is rejected whole, with every line it
            # spans: none of them is read as a record of its own (a value's second line is no person).
            taken = 1 if stray else used
            rejects.append(Reject(name, i + 1, problem, "\n".join(text[i : i + taken])))
            record_lines += taken
            i += taken
            continue
        for column, v in zip(cols, row):  # as many fields as columns (checked above)
            column.append(v or None)  # "" is no value
        line_nos.append(i + 1)
        record_lines += used
        i += used
    if header is None:
        raise SourceError(f"source {source.name!r}: file {name!r} is empty (no header row)")
    _check_accounting(name, n, header=header_lines, blank=blank, records=record_lines)
    rows = _frame(header, cols, name, line_nos)
    if runs and plain is not None:
        rows = pl.concat([rows, *plain.records(runs, header, name, delimiter)]).sort("_line")
    return FileRead(rows, rejects, records=rows.height + len(rejects))


@dataclass
class _Plain:
    """Lines from `start` that need less than a look of their own (see _plain_lines): `fast` over all lines (with a
    sentinel after the last that is not), `others` the indices of the lines that are not; the lines from `start` as a
    polars Series (to split the bare ones in bulk), and the rows of the paired ones that are records of one line."""

    start: int
    lines: pl.Series
    bare: np.ndarray
    fast: np.ndarray
    others: np.ndarray
    paired_at: np.ndarray  # line indices of the paired lines read as records of one line, in order
    paired_rows: list[list[str]]

    def records(self, runs: list[tuple[int, int]], header: list[str], name: str, delimiter: str) -> list[pl.DataFrame]:
        """The records of the lines in `runs` (the runs of fast lines the reading came to): text columns ("" is no
        value), `_file` and `_line`; the bare ones split on the delimiter, the paired ones as the csv reader read
        them."""
        taken = np.zeros(len(self.fast), dtype=bool)
        for a, b in runs:
            taken[a:b] = True
        bare_at = np.flatnonzero(taken & self.bare)
        split = (
            self.lines.gather(bare_at - self.start)
            .str.split_exact(delimiter, len(header) - 1)  # bare: exactly len(header) - 1 delimiters
            .struct.rename_fields(header)
            .struct.unnest()
        )
        chosen = np.flatnonzero(taken[self.paired_at])
        paired = pl.DataFrame(
            [self.paired_rows[k] for k in chosen], schema={c: pl.String for c in header}, orient="row"
        )
        return [
            frame.select(
                *(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in header),
                pl.lit(name).alias("_file"),
                pl.Series("_line", at + 1, dtype=pl.Int64),
            )
            for frame, at in ((split, bare_at), (paired, self.paired_at[chosen]))
        ]


def _plain_lines(
    text: list[str], start: int, bad: dict[int, str], delimiter: str, quotechar: str | None, fields: int, longest: int
) -> _Plain:
    """Which lines from `start` the one-at-a-time reading would take as a record of one line with no question asked.
    All are decodable and no longer than `longest` characters (so no field can be too big), and either

    - bare: no quote character and exactly `fields - 1` delimiters (with a delimiter holding no blank character,
      such a line is not blank), split in bulk; or
    - paired: an even number of quote characters, and one csv reader, given the paired lines one after the other,
      reads each as a record of one line with `fields` fields (_one_line_records).

    Only where the reading comes to such a line is it taken so: a line inside a record spanning lines never is.
    None qualify when the delimiter or quote character holds a blank character or a record has a single field."""
    n = len(text)
    bare, paired = np.zeros(n + 1, dtype=bool), np.zeros(n + 1, dtype=bool)  # + a sentinel that is neither
    lines = pl.Series("line", text[start:], dtype=pl.String)
    if fields >= 2 and delimiter and not any(c.isspace() for c in delimiter + (quotechar or "")):
        fits = lines.str.len_chars() <= longest
        count = lines.str.count_matches(delimiter, literal=True) == fields - 1
        if quotechar:
            quotes = lines.str.count_matches(quotechar, literal=True)
            bare[start:n] = (fits & count & (quotes == 0)).fill_null(False).to_numpy()
            paired[start:n] = (fits & (quotes > 0) & (quotes % 2 == 0)).fill_null(False).to_numpy()
        else:
            bare[start:n] = (fits & count).fill_null(False).to_numpy()
        for k in bad:
            bare[k] = paired[k] = False
    paired_at, paired_rows = _one_line_records(text, np.flatnonzero(paired), delimiter, quotechar, fields)
    fast = bare.copy()
    fast[paired_at] = True
    return _Plain(start, lines, bare, fast, np.flatnonzero(~fast), paired_at, paired_rows)


def _one_line_records(
    text: list[str], at: np.ndarray, delimiter: str, quotechar: str | None, fields: int
) -> tuple[np.ndarray, list[list[str]]]:
    """The lines `at` given one after the other to a csv reader: those it reads as a record of one line with `fields`
    fields (their indices and rows). A line it reads otherwise is left out, and so are the lines its record took in;
    after a csv error a new reader starts at the next line."""
    got_at: list[int] = []
    rows: list[list[str]] = []
    k, lines = 0, at.tolist()
    while k < len(lines):
        reader = csv.reader(
            map(text.__getitem__, itertools.islice(lines, k, None)),  # a record of one line needs no line end
            delimiter=delimiter,
            quotechar=quotechar,
            strict=True,
        )
        read = 0  # lines of at[k:] read as good records
        try:
            for row in reader:
                if reader.line_num == read + 1 and len(row) == fields:
                    got_at.append(lines[k + read])
                    rows.append(row)
                    read += 1
                    continue
                read = reader.line_num  # this record and the lines it took in are left out
                break
            else:
                break  # all read
        except csv.Error:
            read = max(reader.line_num, read + 1)  # the line it failed on is left out
        k += read
    return np.array(got_at, dtype=np.int64), rows


def _one_record(
    text: list[str], start: int, bad: dict[int, str], delimiter: str, quotechar: str | None, max_lines: int
) -> tuple[list[str], int, str | None]:
    """The record starting at line `start`: (fields, lines it spans, problem or None)."""
    line = text[start]
    if quotechar is None or quotechar not in line:
        return line.split(delimiter), 1, None
    stop = start
    while stop < len(text) and stop - start < max_lines and (stop == start or stop not in bad):
        stop += 1
    reader = csv.reader(
        (text[k] + "\n" for k in range(start, stop)), delimiter=delimiter, quotechar=quotechar, strict=True
    )
    try:
        row = next(reader)
    except csv.Error as exc:
        spanned = reader.line_num
        if "unexpected end of data" in str(exc) and spanned >= max_lines:
            return (
                [],
                1,
                f"unbalanced quote: the quoted value is not closed within {max_lines} lines (max_record_lines)",
            )
        if "unexpected end of data" in str(exc):
            return [], 1, "unbalanced quote: the quoted value is never closed"
        if "new-line character seen in unquoted field" in str(exc):  # the csv module's advice is for its callers
            return [], 1, "malformed quoting: a line break (\\r or \\n) inside the line, outside a quoted value"
        return [], 1, f"malformed quoting: {exc}"
    return row, reader.line_num, None


def _fields_of(line: str, delimiter: str, quotechar: str) -> int | None:
    """How many fields one line reads as, on its own (None if it is no record of one line)."""
    try:
        rows = list(csv.reader([line], delimiter=delimiter, quotechar=quotechar, strict=True))
    except csv.Error:
        return None
    return len(rows[0]) if len(rows) == 1 else None


def mapped_columns(source: SourceConfig) -> set[str]:
    """Columns the contract maps to canonical fields or the record id: each holds one value on one line."""
    return {m.column for m in source.fields.values()} | ({source.record_id} if source.record_id else set())


def _swallowed(continued: list[str], first: int, delimiter: str, quotechar: str | None, fields: int) -> str | None:
    """A quoted value spanning lines whose next lines each hold a whole record's fields: two stray quotes
    swallowed the records between them. Those lines are then read as records of their own.

    A line holding a whole record has `fields - 1` delimiters and, if it holds quotes, reads as such a record on its
    own: its quotes pair up (the line that closes a value opened above mostly holds an odd number)."""
    if fields < 2:
        return None
    for k, line in enumerate(continued):
        whole = line.count(delimiter) == fields - 1
        if whole and quotechar and quotechar in line:
            whole = line.count(quotechar) % 2 == 0 and _fields_of(line, delimiter, quotechar) == fields
        if whole:
            return (
                f"stray quote: the quoted value runs over line {first + k}, which holds a whole record of its own "
                f"({fields} fields)"
            )
    return None


def _too_big(values: list[str], header: list[str], max_bytes: int) -> str | None:
    for col, value in zip(header, values):
        if value is not None and len(value) > max_bytes // 4 and len(value.encode("utf-8")) > max_bytes:
            return f"field too big: column {col!r} holds {len(value.encode('utf-8')):,} bytes (max_field_bytes {max_bytes:,})"
    return None


def _check_header(source: SourceConfig, name: str, header: list[str]) -> None:
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SourceError(f"source {source.name!r}: file {name!r} repeats column name(s) {dupes} in its header")
    if reserved := _reserved_in(header):
        raise SourceError(
            f"source {source.name!r}: file {name!r}: {_reserved_message(reserved)}; rename them in the extract; "
            f"nothing was loaded"
        )


# --- fixed width -----------------------------------------------------------------------------------


def read_fixed_width(source: SourceConfig, path: Path, name: str) -> FileRead:
    """Mainframe-style fixed-width records, one per line; a line of the wrong length is rejected."""
    encoding = str(source.option("encoding"))
    widths: dict[str, int] = dict(source.option("widths"))
    _check_header(source, name, list(widths))
    total = sum(widths.values())
    lines = _split_lines(path.read_bytes(), encoding, name)
    rejects: list[Reject] = []
    skip_header = bool(source.option("header"))
    keep_text: list[str] = []
    keep_no: list[int] = []
    header_lines = blank = 0
    for i, line in enumerate(lines.text):
        if skip_header and i == 0:
            header_lines = 1
            continue
        if i in lines.bad:
            rejects.append(Reject(name, i + 1, lines.bad[i], line))
            continue
        if not line.strip():
            blank += 1
            continue
        if len(line) != total:
            rejects.append(
                Reject(name, i + 1, f"wrong field count: record is {len(line)} characters, expected {total}", line)
            )
            continue
        keep_text.append(line)
        keep_no.append(i + 1)
    _check_accounting(name, len(lines.text), header=header_lines, blank=blank, records=len(keep_text) + len(rejects))
    s = pl.Series("line", keep_text, dtype=pl.String)
    exprs = []
    offset = 0
    for col, width in widths.items():
        exprs.append(pl.col("line").str.slice(offset, width).str.strip_chars().replace("", None).alias(col))
        offset += width
    df = pl.DataFrame(s).select(exprs)
    rows = df.with_columns(pl.lit(name).alias("_file"), pl.Series("_line", keep_no, dtype=pl.Int64))
    return FileRead(rows, rejects, records=len(keep_text) + len(rejects))


# --- JSON lines ------------------------------------------------------------------------------------


def read_jsonl(source: SourceConfig, path: Path, name: str) -> FileRead:
    """One JSON object per line; nested objects become dotted columns, lists stay as JSON text."""
    encoding = str(source.option("encoding"))
    split = _split_lines(path.read_bytes(), encoding, name)
    lines, bad = split.text, split.bad
    rejects: list[Reject] = []
    records: list[dict[str, str | None]] = []
    line_nos: list[int] = []
    columns: dict[str, str | None] = {}  # only the keys count
    max_depth = int(source.option("max_depth"))
    max_bytes = int(source.option("max_field_bytes"))
    scalars = mapped_columns(source)
    set_aside: list[str | None] = []
    blank = 0
    decode = _Decoder()
    for i, line in enumerate(lines):
        if i in bad:
            rejects.append(Reject(name, i + 1, bad[i], line))
            continue
        if not line.strip():
            blank += 1
            continue
        if (depth := _json_depth(line, max_depth)) > max_depth:
            rejects.append(Reject(name, i + 1, f"JSON nested deeper than max_depth {max_depth}", line))
            continue
        try:
            obj = decode(line)
        except json.JSONDecodeError as exc:
            message = exc.msg.removesuffix(" at")  # "Invalid control character at": the column follows
            rejects.append(Reject(name, i + 1, f"invalid JSON: {message} at column {exc.colno}", line))
            continue
        except RecursionError:  # not reached below max_depth, kept as a guard
            rejects.append(Reject(name, i + 1, f"JSON nested deeper than max_depth {max_depth} ({depth})", line))
            continue
        except ValueError as exc:  # NaN or Infinity; or valid JSON Python refuses: an integer of over 4,300 digits
            rejects.append(Reject(name, i + 1, f"invalid JSON: {exc}", line))
            continue
        if not isinstance(obj, dict):
            rejects.append(Reject(name, i + 1, f"expected a JSON object, got {type(obj).__name__}", line))
            continue
        flat: dict[str, str | None] = {}
        issues: list[dict[str, str]] = []
        try:
            _flatten(obj, "", flat, scalars, issues, escapes="\\u" in line, exact=decode.marked)
        except _NotText as exc:
            rejects.append(Reject(name, i + 1, str(exc), line))
            continue
        if len(line) > max_bytes // 4 and (problem := _too_big(list(flat.values()), list(flat), max_bytes)):
            rejects.append(Reject(name, i + 1, problem, line))
            continue
        if ('"_' in line or '"\\u005' in line) and (reserved := _reserved_in(flat)):  # "_ or "\u005f (_)
            rejects.append(Reject(name, i + 1, _reserved_message(reserved), line))
            continue
        columns.update(flat)  # its keys, in the order first seen (a key seen before keeps its place)
        records.append(flat)
        set_aside.append(json.dumps(issues, ensure_ascii=False) if issues else None)
        line_nos.append(i + 1)
    _check_accounting(name, len(lines), blank=blank, records=len(records) + len(rejects))
    if not records:  # an empty (or all-rejected) file still has the mapped columns, with no rows
        columns = dict.fromkeys(sorted(mapped_columns(source)))
    cols = list(columns)
    rows = pl.from_dicts(records, schema={c: pl.String for c in cols}) if cols else pl.DataFrame()
    frame = rows.with_columns(
        pl.lit(name).alias("_file"),
        pl.Series("_line", line_nos, dtype=pl.Int64),
        pl.Series(ISSUES, set_aside, dtype=pl.String),
    )
    return FileRead(frame, rejects, records=len(records) + len(rejects))


def _json_depth(line: str, limit: int) -> int:
    """How deeply a JSON text nests (brackets outside strings), counted only when it may exceed `limit`."""
    if line.count("{") + line.count("[") <= limit:
        return 0
    depth = deepest = 0
    in_string = escaped = False
    for ch in line:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


# json.dumps(v, ensure_ascii=False), without making an encoder for each call
_JSON_TEXT = json.JSONEncoder(ensure_ascii=False).encode


class _Number(str):
    """A JSON number with a fraction or an exponent, in the file's own text: as a float it would be rounded
    (12345678901234567.89) or overflow (1e400)."""


class _Repeated(list):
    """The values one JSON object gives a key it holds more than once, in order (json.loads keeps the last)."""


def _not_a_number(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class _Decoder:
    """json.loads for one file's lines, except that numbers with a fraction or an exponent keep their text, a key an
    object gives twice keeps every value, and NaN or Infinity are refused. `marked`: the last line held a number
    or key so kept (only then must its lists be written by `_json_text` rather than the C encoder)."""

    def __init__(self) -> None:
        self.marked = False
        self._decode = json.JSONDecoder(
            object_pairs_hook=self._object, parse_float=self._number, parse_constant=_not_a_number
        ).decode

    def __call__(self, line: str) -> object:
        self.marked = False
        return self._decode(line)

    def _number(self, text: str) -> _Number:
        self.marked = True
        return _Number(text)

    def _object(self, pairs: list[tuple[str, object]]) -> dict:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            self.marked = True
            values: dict[str, list] = {}
            for k, v in pairs:
                values.setdefault(k, []).append(v)
            for k, given in values.items():
                if len(given) > 1:
                    obj[k] = _Repeated(given)
        return obj


def _json_text(value: object) -> str:
    """A JSON value as text, numbers as the file writes them and a key given twice as often as it is."""
    kind = type(value)
    if kind is _Number:
        return str(value)
    if kind is list or kind is _Repeated:
        return "[" + ", ".join(map(_json_text, value)) + "]"
    if kind is dict:
        return (
            "{"
            + ", ".join(
                f"{_JSON_TEXT(k)}: {_json_text(x)}"
                for k, v in value.items()
                for x in (v if type(v) is _Repeated else (v,))
            )
            + "}"
        )
    return _JSON_TEXT(value)


class _NotText(ValueError):
    """A JSON key that is not text (a lone UTF-16 surrogate escape such as \\ud800)."""


LONE_SURROGATE = "not text: a lone UTF-16 surrogate escape (such as \\ud800)"


def _flatten(
    obj: dict,
    prefix: str,
    out: dict[str, str | None],
    scalars: set[str],
    issues: list[dict[str, str]],
    *,
    escapes: bool = True,
    exact: bool = True,
) -> None:
    """Nested objects as dotted columns; `escapes`: the line holds \\u escapes (only they can make non-text, so only
    then are keys and values checked for it). Values are dispatched on their exact type (the decoder's own kinds,
    `_Number` and `_Repeated`, are subclasses of text and list): text first, the most common. `exact`: the line holds numbers or keys `_Decoder` kept, so its lists are
    written by `_json_text` (otherwise by the C encoder, the same text faster)."""
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if (prefix or "." in k) and key in out:  # {"a": {"b": 1}, "a.b": 2}: two values for column a.b
            issues.append(
                {
                    "column": key,
                    "raw": _json_text([out[key], v])[:1000],
                    "reason": f"two values for column {key} (a nested key and a dotted one)",
                }
            )
            out[key] = None
            continue
        if escapes:
            if _may_have_surrogates(key):
                raise _NotText(f"a JSON key that is {LONE_SURROGATE}")
            if isinstance(v, (str, list)) and _may_have_surrogates(text := json.dumps(v, ensure_ascii=False)):
                out[key] = None  # JSON allows the escape, no text holds it: the value is set aside, the row kept
                raw = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
                issues.append({"column": key, "raw": raw[:1000], "reason": f"{LONE_SURROGATE} (column {key})"})
                continue
        kind = type(v)
        if kind is str:
            out[key] = v or None  # "" is no value
        elif kind is _Repeated:  # the object gives this key several values: which one is meant is not ours to say
            out[key] = None
            issues.append(
                {
                    "column": key,
                    "raw": _json_text(v)[:1000],
                    "reason": f"the key {k!r} appears {len(v)} times in one object (column {key})",
                }
            )
        elif (kind is dict or kind is list) and key in scalars:  # a mapped field holds one value: set it aside
            out[key] = None
            issues.append(
                {
                    "column": key,
                    "raw": _json_text(v)[:1000],
                    "reason": f"a JSON {'object' if kind is dict else 'array'} where a single value is expected "
                    f"(column {key})",
                }
            )
        elif kind is dict:
            _flatten(v, key + ".", out, scalars, issues, escapes=escapes, exact=exact)
        elif kind is list:
            out[key] = _json_text(v) if exact else _JSON_TEXT(v)
        elif v is None:
            out[key] = None
        elif kind is bool:
            out[key] = "true" if v else "false"
        else:  # int, _Number
            out[key] = str(v)


# --- spreadsheets and parquet ----------------------------------------------------------------------


def read_xlsx(source: SourceConfig, path: Path, name: str) -> FileRead:
    """First (or the named) sheet of a workbook; header in row 1, every cell read as text.

    In mapped columns, a formula saved without its computed value and a cell typed as a date where text is
    expected are set aside (field_issues); a date cell in a mapped date field is written in the field's format.
    """
    sheet = source.option("sheet")
    kwargs: dict = {"sheet_name": sheet} if isinstance(sheet, str) else {"sheet_id": (sheet or 0) + 1}
    df = pl.read_excel(
        path,
        engine="calamine",
        infer_schema_length=0,
        drop_empty_rows=False,
        drop_empty_cols=False,  # the cells flagged from the sheet's XML are placed by column: none may go missing
        raise_if_empty=False,
        **kwargs,
    )
    _check_header(source, name, df.columns)
    part = _sheet_part(path, sheet)
    first = part.origin[0] + 1 if part is not None else 2  # the row after the frame's first, its header
    df = df.with_columns(pl.col(c).cast(pl.String).str.strip_chars().replace("", None) for c in df.columns)
    df = df.with_columns(
        pl.int_range(first, first + df.height, dtype=pl.Int64).alias("_line"), pl.lit(name).alias("_file")
    )
    data_cols = [c for c in df.columns if c not in ("_line", "_file")]
    df = _typed_cells(source, part, df, data_cols, first=first)
    if data_cols:  # a row of empty cells is no record; one whose values were all set aside is (its issues say why)
        df = df.filter(~pl.all_horizontal(pl.col(c).is_null() for c in data_cols) | pl.col(ISSUES).is_not_null())
    return FileRead(df.select([*data_cols, "_file", "_line", ISSUES]))


_XL = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_XL_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_BUILTIN_DATE_FORMATS = {*range(14, 23), 45, 46, 47}  # ECMA-376 18.8.30: the built-in date and time formats


def _typed_cells(
    source: SourceConfig, part: _SheetPart | None, df: pl.DataFrame, data_cols: list[str], *, first: int
) -> pl.DataFrame:
    """Apply what the sheet's XML says about mapped cells (calamine gives their text only); adds the ISSUES column.
    `first`: the sheet row of the frame's first row."""
    by_column: dict[str, list[str]] = {}
    for canonical, mapping in source.fields.items():
        by_column.setdefault(mapping.column, []).append(canonical)
    if source.record_id:
        by_column.setdefault(source.record_id, [])
    flagged = _flags(part, data_cols, set(by_column)) if part is not None else {}
    values = {c: df.get_column(c).to_list() for c in by_column if c in df.columns}
    issues: list[list[dict[str, str]] | None] = [None] * df.height
    for (line, column), kind in flagged.items():
        pos = line - first
        if not 0 <= pos < df.height or column not in values:
            continue
        raw = values[column][pos]
        if kind.startswith("shown:"):  # a whole number shown through a format of zeros: the text the sheet shows
            if raw:
                values[column][pos] = _shown(raw, part.digit_styles[int(kind[6:])]) if part is not None else raw
            continue
        date_fields = [f for f in by_column[column] if f in ("date_of_birth", "date_of_death")]
        if kind == "date" and date_fields and raw:
            fmt = source.fields[date_fields[0]].format or "%Y-%m-%d"
            parsed = _calamine_datetime(raw)
            if parsed is not None:
                values[column][pos] = parsed.strftime(fmt)  # the date as the source meant it, in its declared format
                continue
        reason = {
            "formula": f"a formula saved without its computed value (column {column})",
            "error": f"a spreadsheet error value such as #N/A or #REF! (column {column})",
        }.get(kind, f"a cell typed as a date where text is expected (column {column})")
        values[column][pos] = None
        issues[pos] = [*(issues[pos] or []), {"column": column, "raw": raw or "", "reason": reason}]
    return df.with_columns(
        *(pl.Series(c, v, dtype=pl.String) for c, v in values.items()),
        pl.Series(ISSUES, [json.dumps(i, ensure_ascii=False) if i else None for i in issues], dtype=pl.String),
    )


def _calamine_datetime(text: str):
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class _SheetPart:
    """A worksheet's XML, the workbook's date styles and digit styles (_cell_styles), and where calamine's frame
    starts: (row, column index) of the first row and the leftmost column holding a value (1-based row, 0-based
    column)."""

    xml: bytes
    date_styles: set[int]
    origin: tuple[int, int]
    digit_styles: dict[int, tuple[str | None, ...]] = field(default_factory=dict)


def _sheet_part(path: Path, sheet: str | int | None) -> _SheetPart | None:
    """The chosen sheet's part of the workbook (None if the workbook does not name it)."""
    import xml.etree.ElementTree as ET
    import zipfile

    with zipfile.ZipFile(path) as z:
        book = ET.fromstring(z.read("xl/workbook.xml"))
        sheets = list(book.iter(f"{_XL}sheet"))
        chosen = (
            next((e for e in sheets if e.get("name") == sheet), None) if isinstance(sheet, str) else sheets[sheet or 0]
        )
        if chosen is None:
            return None
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target", "") for r in rels if r.get("Id") == chosen.get(_XL_REL))
        member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        date_styles, digit_styles = _cell_styles(z, ET)
        sheet_xml = z.read(member)
    return _SheetPart(sheet_xml, date_styles, _origin(sheet_xml), digit_styles)


# Rows and cells of a sheet's XML, and what makes calamine count a cell as holding a value.
_ROW = re.compile(rb"<(?:[\w.-]+:)?row\b([^>]*?)(/?)>")
_ROW_END = re.compile(rb"</(?:[\w.-]+:)?row>")
_CELL = re.compile(rb"<(?:[\w.-]+:)?c\b([^>]*?)(/?)>")
_CELL_END = re.compile(rb"</(?:[\w.-]+:)?c>")
_REF = re.compile(rb"""\br\s*=\s*["']([A-Za-z]{1,3})([0-9]+)["']""")
_ROW_NUMBER = re.compile(rb"""\br\s*=\s*["']([0-9]+)["']""")
_V_TEXT = re.compile(rb"<(?:[\w.-]+:)?v\b[^>/]*>[^<]")
_V_OR_IS = re.compile(rb"<(?:[\w.-]+:)?(?:v|is)\b")
_TEXT_TYPE = re.compile(rb"""\bt\s*=\s*["'](?:str|inlineStr)["']""")


def _origin(sheet_xml: bytes) -> tuple[int, int]:
    """(row, column index) where calamine's frame of the sheet starts: the first row with a value, the leftmost
    column with one. An empty cell that only carries a style, or a sheet that starts below row 1 or right of
    column A, moves it. Rows come in order, and so do the cells of a row: the first row with a value gives the row,
    and each row's first cell with a value is the only one that can move the column. Rows and cells written without
    a reference (it is optional) count on from the one before."""
    origin_row, origin_col, row = None, None, 0
    for m in _ROW.finditer(sheet_xml):
        number = _ROW_NUMBER.search(m[1])
        row = int(number[1]) if number else row + 1
        if m[2]:  # <row/>: no cells
            continue
        end = _ROW_END.search(sheet_xml, m.end())
        if end is None:
            break
        col = _first_value_column(sheet_xml, m.end(), end.start())
        if col is not None:
            if origin_row is None:
                origin_row, origin_col = row, col
            else:
                origin_col = min(origin_col, col)
            if origin_col == 0:
                break
    return (origin_row or 1, origin_col or 0)


def _first_value_column(sheet_xml: bytes, start: int, end: int) -> int | None:
    """The column index of the first cell with a value between `start` and `end` (one row's cells), if any."""
    position = 0
    for c in _CELL.finditer(sheet_xml, start, end):
        ref = _REF.search(c[1])
        col = _col_index(ref[1].decode()) if ref else position
        position = col + 1
        if c[2]:  # <c .../>: no value
            continue
        stop = close.start() if (close := _CELL_END.search(sheet_xml, c.end(), end)) else end
        # calamine keeps a text cell even when its text is empty, and any cell whose value has characters
        if (_TEXT_TYPE.search(c[1]) and _V_OR_IS.search(sheet_xml, c.end(), stop)) or _V_TEXT.search(
            sheet_xml, c.end(), stop
        ):
            return col
    return None


def _flags(part: _SheetPart, columns: list[str], wanted: set[str]) -> dict[tuple[int, str], str]:
    """{(row, column name): "formula" | "date" | "error" | "shown:<style>"} for cells of `wanted` columns holding a
    formula without a cached value, typed as a date (a date style on a number, or an ISO date cell), holding an error
    value (#N/A), or a number shown through a format of zeros (a digit style), read from the sheet's XML."""
    if not _may_flag(part.xml, part.date_styles | set(part.digit_styles)):
        return {}
    styles = (part.date_styles, set(part.digit_styles))
    return _CellFlagger(columns, wanted, *styles, first_col=part.origin[1]).parse(part.xml)


# Markup that may make a cell worth flagging (a superset: a hit only means the sheet is parsed cell by cell).
_FORMULA_TAG = re.compile(rb"<(?:[\w.-]+:)?f[\s/>]")
_DATE_TYPE = re.compile(rb"\bt\s*=\s*[\"'][de][\"']")  # a date cell, or an error value (#N/A)
_STYLE = re.compile(rb"\bs\s*=\s*[\"']([^\"']*)[\"']")


def _may_flag(sheet_xml: bytes, styles: set[int]) -> bool:
    """Whether any cell of the sheet can hold a formula, a date or a number in one of `styles` (date and digit
    styles): a fast scan of the bytes (most extracts have none, and then no cell needs to be looked at)."""
    if _FORMULA_TAG.search(sheet_xml) or _DATE_TYPE.search(sheet_xml):
        return True
    if not styles:
        return False
    used = set(_STYLE.findall(sheet_xml))
    return any(not v.isdigit() or int(v) in styles for v in used)


class _CellFlagger:
    """Streams a worksheet's XML through expat (C) and flags cells of wanted columns: one Python call per element
    start and end, no element objects (ElementTree's iterparse built one per cell, its value and its formula)."""

    def __init__(
        self, columns: list[str], wanted: set[str], date_styles: set[int], digit_styles: set[int], *, first_col: int = 0
    ):
        self.columns, self.wanted, self.date_styles = columns, wanted, date_styles
        self.digit_styles = digit_styles  # number formats of zeros (_digit_pattern): their cells are flagged too
        self.out: dict[tuple[int, str], str] = {}
        self.first_col = first_col  # the frame's first column (_origin)
        self.depth = 0
        self.row, self.next_col = 0, 0  # for cells without a reference: their row's and the place after the last
        self.cell: list | None = None  # [depth, row, column, t, s, has formula, has value, value has text]
        self._index: dict[str, int] = {}

    def parse(self, sheet_xml: bytes) -> dict[tuple[int, str], str]:
        from xml.parsers import expat

        parser = expat.ParserCreate(namespace_separator="}")
        parser.buffer_text = True
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        self._parser = parser
        parser.Parse(sheet_xml, True)
        return self.out

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        cell = self.cell
        if cell is not None:
            if self.depth == cell[0] + 1:
                if name == _XL_F:
                    cell[5] = True
                elif name == _XL_V and not cell[6]:  # find() takes the first <v> child: only its text counts
                    cell[6] = True
                    self._parser.CharacterDataHandler = self._text
            return
        if name == _XL_C:
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                index = self._index.get(letters)
                if index is None:
                    index = self._index[letters] = _col_index(letters)
                row = int(ref[len(letters) :])
            else:  # the reference is optional: the cell after the last one of its row
                index, row = self.next_col, self.row
            self.next_col = index + 1
            k = index - self.first_col
            if 0 <= k < len(self.columns) and self.columns[k] in self.wanted:
                self.cell = [self.depth, row, self.columns[k], attrs.get("t"), attrs.get("s", 0), False, False, False]
        elif name == _XL_ROW:
            self.row = int(attrs.get("r") or self.row + 1)
            self.next_col = 0

    def _text(self, data: str) -> None:
        if data and self.cell is not None:
            self.cell[7] = True

    def _end(self, name: str) -> None:
        cell = self.cell
        if cell is not None:
            if self.depth == cell[0] + 1 and name == _XL_V:
                self._parser.CharacterDataHandler = None
            elif self.depth == cell[0]:
                self._flag(cell)
                self.cell = None
        self.depth -= 1

    def _flag(self, cell: list) -> None:
        _depth, row, column, t, s, has_formula, has_value, value_text = cell
        style = int(s) if str(s).isdigit() else -1
        if has_formula and not (has_value and value_text):
            self.out[(row, column)] = "formula"
        elif t == "d" or ((t or "n") == "n" and style in self.date_styles):
            self.out[(row, column)] = "date"
        elif t == "e":
            self.out[(row, column)] = "error"
        elif (t or "n") == "n" and style in self.digit_styles:
            self.out[(row, column)] = f"shown:{style}"


_XL_NS = _XL[1:-1]
_XL_C, _XL_V, _XL_F, _XL_ROW = (f"{_XL_NS}}}{tag}" for tag in ("c", "v", "f", "row"))


def _cell_styles(z, ET) -> tuple[set[int], dict[int, tuple[str | None, ...]]]:  # noqa: N803
    """Indexes of the cell formats that show a number as a date or time, and of those that show it through zeros
    (`000000000`, `000\\-00\\-0000`), with their pattern (_digit_pattern)."""
    try:
        styles = ET.fromstring(z.read("xl/styles.xml"))
    except KeyError:
        return set(), {}
    date_ids = set(_BUILTIN_DATE_FORMATS)
    digit_formats: dict[int, tuple[str | None, ...]] = {}
    for fmt in styles.iter(f"{_XL}numFmt"):
        code = fmt.get("formatCode", "")
        pattern = _digit_pattern(code)
        if pattern is not None:
            digit_formats[int(fmt.get("numFmtId", -1))] = pattern
        code = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", code).lower()
        if re.search(r"[dyhs]|m", code) and "general" not in code:
            date_ids.add(int(fmt.get("numFmtId", -1)))
    xfs = styles.find(f"{_XL}cellXfs")
    formats = [int(xf.get("numFmtId", 0)) for xf in (xfs if xfs is not None else [])]
    dates = {i for i, f in enumerate(formats) if f in date_ids}
    return dates, {i: digit_formats[f] for i, f in enumerate(formats) if f in digit_formats}


def _digit_pattern(code: str) -> tuple[str | None, ...] | None:
    """A number format that shows a whole number as digits padded with zeros, perhaps with literal separators (an ID
    or postcode kept as a number: `00000000000`, `000\\-00\\-0000`, `"NL"000`), as its parts: None for each digit
    place, text for a literal. None for any other format (one with #, ?, a decimal point, a thousands separator, a
    colour, a condition or more than one section), which the sheet's text from calamine already matches or which
    is not an identifier's."""
    parts: list[str | None] = []
    i = 0
    while i < len(code):
        ch = code[i]
        if ch == "0":
            parts.append(None)
        elif ch == "\\" and i + 1 < len(code):
            parts.append(code[i + 1])
            i += 1
        elif ch == '"':
            end = code.find('"', i + 1)
            if end < 0:
                return None
            parts.append(code[i + 1 : end])
            i = end
        elif ch in " -()":
            parts.append(ch)
        else:
            return None
        i += 1
    return tuple(parts) if parts.count(None) >= 2 else None


def _shown(text: str, pattern: tuple[str | None, ...]) -> str:
    """The cell's number (`text`, as calamine writes it) as a digit pattern shows it: padded with zeros to the
    pattern's digit places, the digits beyond them in the first place, as a spreadsheet does. A number that is not
    whole or is negative is left as it is: such a value is no identifier, and its checks say so."""
    if not (text.isascii() and text.isdigit()):
        return text
    places = pattern.count(None)
    digits = text.zfill(places)
    extra, taken, out = len(digits) - places, 0, []
    for part in pattern:
        if part is None:
            width = 1 + extra if taken == 0 else 1
            out.append(digits[taken : taken + width])
            taken += width
        else:
            out.append(part)
    return "".join(out)


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters.rstrip("0123456789").upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def read_parquet(source: SourceConfig, path: Path, name: str) -> FileRead:
    """A Parquet file; typed columns are kept as their text form (dates as ISO yyyy-mm-dd)."""
    import pyarrow.parquet as pq

    df = pl.read_parquet(path)
    _check_header(source, name, df.columns)
    df, set_aside = _nested_as_text(df, mapped_columns(source))
    df = df.with_columns(pl.col(c).cast(pl.String) for c in df.columns)
    if set_aside is not None:
        df = df.with_columns(pl.Series(ISSUES, set_aside, dtype=pl.String))
    df = df.with_columns(pl.lit(name).alias("_file"), pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("_line"))
    return FileRead(df, records=pq.ParquetFile(path).metadata.num_rows)  # the file's own row count


def _nested_as_text(df: pl.DataFrame, scalars: set[str]) -> tuple[pl.DataFrame, list[str | None] | None]:
    """Struct, list and binary columns as JSON text; in a mapped field (one value expected) each such value is set
    aside with its reason, as the JSONL reader does (the second item: the rows' set-aside JSON, or None)."""
    nested = [c for c, t in df.schema.items() if t.is_nested() or t in (pl.Binary, pl.Object)]
    per_row: list[list[dict[str, str]]] = [[] for _ in range(df.height)]
    for c in nested:
        texts = [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in df[c].to_list()]
        if c in scalars:
            kind = str(df.schema[c]).split("(")[0].lower()
            reason = f"a {kind} value where a single value is expected (column {c})"
            for r, t in enumerate(texts):
                if t is not None:
                    per_row[r].append({"column": c, "raw": t[:1000], "reason": reason})
            texts = [None] * df.height
        df = df.with_columns(pl.Series(c, texts, dtype=pl.String))
    if not any(per_row):
        return df, None
    return df, [json.dumps(i, ensure_ascii=False) if i else None for i in per_row]


_READERS = {
    "csv": read_csv,
    "fixed_width": read_fixed_width,
    "jsonl": read_jsonl,
    "xlsx": read_xlsx,
    "parquet": read_parquet,
}


def raw_text(row: dict) -> str:
    """A parsed row as JSON text, for rejected_records.raw when the row was rejected after parsing."""
    return json.dumps({k: v for k, v in row.items() if not internal(k)}, ensure_ascii=False)


__all__ = ["ISSUES", "FileRead", "Reject", "internal", "mapped_columns", "read_file", "raw_text"]
