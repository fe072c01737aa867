"""Text files as lines split by line feeds only, with the lines the declared encoding cannot decode marked."""

from __future__ import annotations

import re
from dataclasses import dataclass

from citizen_view.contract import SourceError


@dataclass
class _Lines:
    """A text file's lines (line ends removed) and which of them hold bytes the encoding cannot decode."""

    text: list[str]
    bad: dict[int, str]  # line index -> why the line cannot be a record (undecodable bytes, a NUL byte)


SINGLE_BYTE = ("latin-1", "iso-8859-1", "cp1252")


def split_lines(data: bytes, encoding: str, name: str = "") -> _Lines:
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
        if may_have_surrogates(line):  # only bytes the encoding could not decode leave lone surrogates
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


def may_have_surrogates(line: str) -> bool:
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
