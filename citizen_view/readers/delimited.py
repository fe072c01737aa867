"""Delimited text (CSV): a record with the wrong number of fields, or a quote left open, is rejected with its line."""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from citizen_view.contract import SourceError
from citizen_view.readers.common import FileRead, Reject, check_accounting, check_header, frame_of, too_big
from citizen_view.readers.text import split_lines

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig


def read_csv(source: SourceConfig, path: Path, name: str, *, in_bulk: bool = True) -> FileRead:
    """Delimited text; a record with the wrong number of fields, or a quote left open, is rejected with its line.

    Lines are read one record at a time, except where `_plain_lines` finds runs that need less: lines with no quote
    character and the right number of delimiters are split in bulk by polars, and lines whose quotes pair up are
    read by one csv reader per run rather than one per line (at 700k lines, about 1.4 s of Python less).
    `in_bulk=False` reads every line one at a time: the reference a test holds the bulk reading to."""
    encoding = str(source.option("encoding"))
    lines = split_lines(path.read_bytes(), encoding, name)
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
            check_header(source, name, header)
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
            problem = too_big(row, header, max_bytes)
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
    check_accounting(name, n, header=header_lines, blank=blank, records=record_lines)
    rows = frame_of(header, cols, name, line_nos)
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
