"""Reading and writing the log's files: numbered lines, the tail read backwards, durable appends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from citizen_view.audit.records import parse

TAIL_BLOCK = 64 * 1024


def lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines of a file, read one at a time, without their newline (only it: a carriage return the writer never
    writes stays, so verify sees it)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            yield number, raw.removesuffix(b"\n")


def tail(path: Path, *, block: int = TAIL_BLOCK) -> Iterator[bytes]:
    """The lines of a file from the last one backwards, reading blocks from the end."""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            parts = (f.read(step) + rest).split(b"\n")
            rest = parts[0]  # may continue in the block before
            yield from reversed(parts[1:])
        yield rest


def last_valid(path: Path, valid: Any) -> dict | None:
    for raw in tail(path):
        if raw.strip():
            value = parse(raw)
            if valid(value):
                return value
    return None


def ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def write_durably(f: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = f.write(view)
        view = view[written:]
    os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the file itself is already synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
