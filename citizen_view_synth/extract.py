"""`Extract`: one legacy system's output file, written chunk by chunk, with its noise and malformed rows."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any, ClassVar

from citizen_view_synth.names import NameBook
from citizen_view_synth.noise import NoiseConfig
from citizen_view_synth.people import Person
from citizen_view_synth.places import Gazetteer
from citizen_view_synth.render import Renderer

DUPLICATE_ID = "duplicate_id"
INVALID_UTF8_MARK = "\ue000"  # private-use character, swapped for raw invalid bytes after encoding
INVALID_UTF8_BYTES = b"\xff\xfe"


class Raw(str):
    """A line written exactly as is (a malformed row), bypassing the file format's serialiser."""


@dataclass(frozen=True)
class RunContext:
    """What every extract needs to know about the run."""

    out_dir: Path
    seed: int
    country: str
    noise: NoiseConfig
    bad_row_rate: float
    names: NameBook
    places: Gazetteer


class Extract:
    """Base of the five source extracts: select records from a chunk of persons, render them, write them."""

    name: ClassVar[str]
    relpath: ClassVar[str]
    noise_factor: ClassVar[float] = 1.0
    bad_kinds: ClassVar[tuple[str, ...]] = ()
    married_forms: ClassVar[bool] = True
    stale_addresses: ClassVar[bool] = True
    ascii_factor: ClassVar[float] = 1.0

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.path = ctx.out_dir / self.relpath
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.noise = ctx.noise.scaled(self.noise_factor)
        self.records = 0  # rows written, duplicates included
        self.bad_rows = 0
        self._serial = 0
        self.open()

    # -- to be provided by each source ---------------------------------------------------------------------

    def select(self, people: list[Person], rng: Random) -> list[tuple[Person, int]]:
        """The records this system holds for these persons: (person, per-person record number)."""
        raise NotImplementedError

    def record_id(self, serial: int) -> str:
        """The system's own key for its `serial`-th record."""
        raise NotImplementedError

    def render(self, p: Person, extra: int, rid: str, r: Renderer) -> Any:
        """One record as the system stores it (a list of cell values, or a dict for JSON)."""
        raise NotImplementedError

    def malform(self, row: Any, kind: str, rng: Random) -> Any:
        """A broken version of `row`: another row, or a `Raw` line."""
        raise NotImplementedError

    def open(self) -> None:
        """Create the output file and write its header."""
        raise NotImplementedError

    def emit(self, rows: list[Any]) -> None:
        """Append one chunk's rows to the file."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file."""
        raise NotImplementedError

    # -- shared chunk logic --------------------------------------------------------------------------------

    def write_chunk(self, people: list[Person], chunk: int) -> list[tuple[str, str]]:
        """Write this chunk's records; returns (record_id, person_id) for every written row."""
        ctx = self.ctx
        rng = Random(f"{self.name}:{ctx.seed}:{ctx.country}:{chunk}")
        r = Renderer(
            rng,
            self.noise,
            names=ctx.names,
            places=ctx.places,
            married_forms=self.married_forms,
            stale_addresses=self.stale_addresses,
            ascii_factor=self.ascii_factor,
        )
        picks = self.select(people, rng)
        rng.shuffle(picks)
        kinds = (*self.bad_kinds, DUPLICATE_ID) if self.bad_kinds else ()
        rows: list[Any] = []
        truth: list[tuple[str, str]] = []
        again: list[tuple[Person, int, str]] = []
        for p, extra in picks:
            self._serial += 1
            rid = self.record_id(self._serial)
            r.begin()
            row = self.render(p, extra, rid, r)
            if kinds and rng.random() < ctx.bad_row_rate:
                kind = kinds[rng.randrange(len(kinds))]
                if kind == DUPLICATE_ID:
                    again.append((p, extra, rid))
                else:
                    row = self.malform(row, kind, rng)
                self.bad_rows += 1
            rows.append(row)
            truth.append((rid, p.pid))
        for p, extra, rid in again:  # the same record exported a second time, later in the file
            r.begin()
            rows.append(self.render(p, extra, rid, r))
            truth.append((rid, p.pid))
        self.emit(rows)
        self.records += len(rows)
        return truth


class TextExtract(Extract):
    """An extract that is a text file: each chunk is serialised to one string and appended as bytes."""

    encoding: ClassVar[str] = "utf-8"
    invalid_bytes: ClassVar[bool] = False
    """When set, INVALID_UTF8_MARK in the text is written as the invalid byte sequence INVALID_UTF8_BYTES."""

    def open(self) -> None:
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        header = self.header()
        if header:
            self._fh.write(header.encode(self.encoding))

    def header(self) -> str:
        """The header line, or '' for none."""
        return ""

    def serialise(self, rows: list[Any]) -> str:
        """The chunk's rows as text (Raw rows verbatim)."""
        raise NotImplementedError

    def emit(self, rows: list[Any]) -> None:
        text = self.serialise(rows)
        if self.invalid_bytes and INVALID_UTF8_MARK in text:
            self._fh.write(text.encode(self.encoding).replace(INVALID_UTF8_MARK.encode("utf-8"), INVALID_UTF8_BYTES))
        else:
            self._fh.write(text.encode(self.encoding))

    def close(self) -> None:
        self._fh.close()


class CsvExtract(TextExtract):
    """A delimited text extract with a header row."""

    delimiter: ClassVar[str] = ","
    columns: ClassVar[tuple[str, ...]]

    def header(self) -> str:
        return self.delimiter.join(self.columns) + "\n"

    def serialise(self, rows: list[Any]) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.delimiter, lineterminator="\n")
        for row in rows:
            if isinstance(row, Raw):
                buf.write(row)
            else:
                writer.writerow(row)
        return buf.getvalue()

    def wrong_field_count(self, row: list[str], rng: Random) -> list[str]:
        """The row with one field too many or too few."""
        if rng.random() < 0.5:
            return [*row, ""]
        out = list(row)
        del out[rng.randrange(1, len(out))]
        return out


class FixedWidthExtract(TextExtract):
    """A fixed-width mainframe extract: values left-aligned, space-padded, truncated to their width."""

    widths: ClassVar[dict[str, int]]

    def serialise(self, rows: list[Any]) -> str:
        widths = tuple(self.widths.values())
        out: list[str] = []
        for row in rows:
            out.append(row if isinstance(row, Raw) else self.line(row, widths))
        return "".join(out)

    @staticmethod
    def line(row: list[str], widths: tuple[int, ...]) -> str:
        """One record as a fixed-width line."""
        return "".join(v.lstrip()[:w].ljust(w) for v, w in zip(row, widths, strict=True)) + "\n"


class JsonlExtract(TextExtract):
    """A JSON-lines extract, one object per line."""

    def serialise(self, rows: list[Any]) -> str:
        dumps = json.dumps
        return "".join(row if isinstance(row, Raw) else dumps(row, ensure_ascii=False) + "\n" for row in rows)
