"""JSON lines: one object per line; nested objects become dotted columns, lists stay as JSON text; a key given twice
or a value that is not text is set aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.readers.common import (
    ISSUES,
    FileRead,
    Reject,
    check_accounting,
    mapped_columns,
    reserved_in,
    reserved_message,
    too_big,
)
from citizen_view.readers.text import may_have_surrogates, split_lines

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig


def read_jsonl(source: SourceConfig, path: Path, name: str) -> FileRead:
    """One JSON object per line; nested objects become dotted columns, lists stay as JSON text."""
    encoding = str(source.option("encoding"))
    split = split_lines(path.read_bytes(), encoding, name)
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
        if len(line) > max_bytes // 4 and (problem := too_big(list(flat.values()), list(flat), max_bytes)):
            rejects.append(Reject(name, i + 1, problem, line))
            continue
        if ('"_' in line or '"\\u005' in line) and (reserved := reserved_in(flat)):  # "_ or "\u005f (_)
            rejects.append(Reject(name, i + 1, reserved_message(reserved), line))
            continue
        columns.update(flat)  # its keys, in the order first seen (a key seen before keeps its place)
        records.append(flat)
        set_aside.append(json.dumps(issues, ensure_ascii=False) if issues else None)
        line_nos.append(i + 1)
    check_accounting(name, len(lines), blank=blank, records=len(records) + len(rejects))
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
            if may_have_surrogates(key):
                raise _NotText(f"a JSON key that is {LONE_SURROGATE}")
            if isinstance(v, (str, list)) and may_have_surrogates(text := json.dumps(v, ensure_ascii=False)):
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
