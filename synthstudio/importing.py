"""Import pipeline core, plain Python (no Django): readers → parsers; the makers that build rows live in
services.import_run.

- Readers stream records out of a binary file: CSV/TSV through the csv module fed one decoded line at a time,
  JSONL line by line, JSON arrays incrementally (one object at a time with raw_decode over a sliding buffer).
  Nothing holds the whole file. Every record carries its row number (1 = the first data record).
- The readers enforce the content limits below (columns, bytes per line or record, JSON nesting) while they
  read, so a hostile file fails fast with an error naming the limit instead of holding a process or
  producing a page nobody can load. Limit errors are LimitError, which the upload refuses at once.
- The parser checks one record against a ColumnMapping and the codebook's label names and returns a
  ParsedRow, or raises RowError naming the row and why.

All-or-nothing is the caller's job: run the parser over the whole file first, then insert.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import PurePath
from typing import Any, BinaryIO, TypeVar

from synthstudio.csv_safety import formula_unescape

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",  # e.g. a Hugging Face dataset's data/<split>.parquet
}
PARQUET_BATCH_ROWS = 1000
JSON_CHUNK_CHARS = 1 << 20
MULTI_FIELD_SEPARATOR = "\n"
_Decoded = TypeVar("_Decoded")

# ---------------------------------------------------------------------------------------------- limits
# What one uploaded file may hold, for every upload path (data import, pairwise judgments, benchmark test
# file, Label Studio). The file's size is the IMPORT_MAX_MB setting, enforced while the upload streams in
# (synthstudio.uploads); these bound what is inside it. Reused by evaluation.pairwise_files and the Label
# Studio import, so the numbers live here once.
MAX_COLUMNS = 1000  # header columns of CSV/TSV; keys of one JSON record; columns seen in a preview
MAX_LINE_BYTES = 1 << 20  # a line; a CSV record spanning lines (quoted newlines); an object of a JSON array
MAX_JSON_DEPTH = 64  # nesting of objects and arrays in one JSON value

# The csv module's own field limit stays out of the way: MAX_LINE_BYTES bounds a whole record before any
# field can grow past it, with an error that names the row.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unknown format, no header, not a JSON array, ...)."""


class RowError(Exception):
    """One record is bad. `row` is 1-based over data records; `line` is the file line where known."""

    def __init__(self, row: int, reason: str, *, line: int | None = None) -> None:
        self.row, self.reason, self.line = row, reason, line
        where = f"Row {row}" + (f" (line {line})" if line is not None and line != row else "")
        super().__init__(f"{where}: {reason}")


class LimitError(Exception):
    """Marks an error that breaks one of the limits above: the upload is refused outright, not stored."""


class FileLimitError(ImportFileError, LimitError):
    """The file as a whole breaks a limit (a header with too many columns or too long a line)."""


class RowLimitError(RowError, LimitError):
    """One record breaks a limit (too long, too many fields, nested too deep)."""


class JsonTooDeep(ValueError):
    """A JSON value nested deeper than MAX_JSON_DEPTH (a ValueError, like json.JSONDecodeError)."""


def size_text(size_bytes: int) -> str:
    """1 MB, 512 KB, 100 bytes: how a limit or a size reads in a message."""
    if size_bytes >= 1 << 20:
        return f"{size_bytes / (1 << 20):.3g} MB"
    if size_bytes >= 1 << 10:
        return f"{size_bytes / (1 << 10):.3g} KB"
    return f"{size_bytes} bytes"


def json_depth(value: Any, *, stop_after: int = MAX_JSON_DEPTH) -> int:
    """Levels of objects/arrays in a decoded value (a scalar is 0, {} is 1), counted without recursion and
    given up one level past `stop_after` (the caller only needs to know it is over)."""
    depth, level = 0, [value]
    while depth <= stop_after:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            return depth
        depth += 1
        level = [
            child for item in containers for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


TOO_DEEP = f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep; the limit is {MAX_JSON_DEPTH} levels"


def check_json_depth(value: Any) -> None:
    """JsonTooDeep if `value` is nested past MAX_JSON_DEPTH."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise JsonTooDeep(TOO_DEEP)


def json_loads_bounded(text: str | bytes) -> Any:
    """json.loads for untrusted text: JsonTooDeep instead of RecursionError (Python's json gives up near
    1,000 levels) or a value nested a few hundred levels that recursive code further on would trip over."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonTooDeep(TOO_DEEP) from None
    check_json_depth(value)
    return value


def detect_format(filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ImportFileError(
            f"Cannot tell the format of {filename!r}: name it .csv, .tsv, .jsonl, .json or .parquet (or choose "
            "the format)."
        )
    return EXTENSIONS[suffix]


# ---------------------------------------------------------------------------------------------- readers


@dataclass
class Record:
    row: int
    values: dict[str, Any]
    line: int | None = None


def read_records(stream: BinaryIO, file_format: str) -> Iterator[Record]:
    """Yield the file's records in order. Raises ImportFileError / RowError."""
    if file_format in ("csv", "tsv"):
        return _read_delimited(stream, delimiter="," if file_format == "csv" else "\t")
    if file_format == "jsonl":
        return _read_jsonl(stream)
    if file_format == "json":
        return _read_json_array(stream)
    if file_format == "parquet":
        return _read_parquet(stream)
    raise ImportFileError(f"Unknown format {file_format!r}: use one of {', '.join(FORMATS)}.")


def _decode_line(raw: bytes, *, row: int, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RowError(
            row,
            f"bad encoding: byte 0x{raw[error.start]:02x} at position {error.start + 1} is not UTF-8",
            line=line,
        ) from None


def _read_delimited(stream: BinaryIO, *, delimiter: str) -> Iterator[Record]:
    """Cells are read back with formula_unescape, the inverse of the spreadsheet-safe escape of our CSV export."""
    # The decoder needs the row number the csv reader is building, the line it starts on and the bytes it has
    # taken for that record (a quoted field may span lines): all set by the loop below before each record.
    position = {"line": 0, "row": 0, "start_line": 1, "record_bytes": 0, "quoted": False}

    def decoded_lines() -> Iterator[str]:
        while raw := stream.readline(MAX_LINE_BYTES + 1):
            position["line"] += 1
            position["record_bytes"] += len(raw)
            if position["record_bytes"] > MAX_LINE_BYTES:
                if position["row"] == 0:
                    raise _header_too_long(stream, raw, delimiter)
                raise RowLimitError(
                    position["row"],
                    f"the row is longer than {size_text(MAX_LINE_BYTES)}; "
                    f"the limit is {size_text(MAX_LINE_BYTES)} per row",
                    line=position["start_line"],
                )
            text = _decode_line(raw, row=position["row"], line=position["line"])
            if position["line"] == 1:
                text = text.removeprefix("\ufeff")
            position["quoted"] = position["quoted"] or "'" in text  # only then can a cell need unescaping
            yield text

    reader = csv.reader(decoded_lines(), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("The file is empty: expected a header row naming the columns.") from None
    except (csv.Error, RowError) as error:
        raise ImportFileError(f"The header row cannot be read: {getattr(error, 'reason', error)}.") from None
    if len(header) > MAX_COLUMNS:
        raise FileLimitError(f"The header has {len(header):,} columns; the limit is {MAX_COLUMNS:,} columns.")
    header = [formula_unescape(name.strip()) for name in header]
    if not any(header):
        raise ImportFileError("The first row must name the columns (a header row); it is empty.")
    width = len(header)
    while True:
        position["row"] += 1
        position["record_bytes"], position["quoted"] = 0, False
        position["start_line"] = start_line = position["line"] + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise RowError(
                position["row"], f"malformed {'CSV' if delimiter == ',' else 'TSV'}: {error}", line=start_line
            ) from None
        if not cells or (len(cells) == 1 and cells[0] == ""):
            position["row"] -= 1  # blank lines are not rows
            continue
        if len(cells) > width:
            raise RowError(
                position["row"], f"{len(cells)} cells but the header names {width} columns", line=start_line
            )
        if position["quoted"]:
            cells = [formula_unescape(cell) for cell in cells]
        # Short rows: the missing cells are absent (None), which the parser reports as a missing column.
        values = {name: cells[index] if index < len(cells) else None for index, name in enumerate(header)}
        yield Record(position["row"], values, start_line)


def _header_too_long(stream: BinaryIO, start: bytes, delimiter: str) -> FileLimitError:
    """The error for a header line over MAX_LINE_BYTES. Its columns are counted by scanning the rest of the
    line in bounded reads (the file is already bounded by IMPORT_MAX_MB), so the message can say which limit
    the header breaks: usually a million-column header rather than one absurdly long column name."""
    separator = delimiter.encode()
    columns = start.count(separator) + 1
    tail = start
    while not tail.endswith(b"\n") and (tail := stream.readline(MAX_LINE_BYTES)):
        columns += tail.count(separator)
    if columns > MAX_COLUMNS:
        return FileLimitError(f"The header has {columns:,} columns; the limit is {MAX_COLUMNS:,} columns.")
    return FileLimitError(
        f"The header row is longer than {size_text(MAX_LINE_BYTES)}; "
        f"the limit is {size_text(MAX_LINE_BYTES)} per line."
    )


def _check_width(value: dict, row: int, line: int | None = None) -> None:
    if len(value) > MAX_COLUMNS:
        raise RowLimitError(
            row, f"the object has {len(value):,} fields; the limit is {MAX_COLUMNS:,}", line=line
        )


def _decode_json(decode: Callable[[], _Decoded], row: int, line: int | None = None) -> _Decoded:
    """Run a json decode call, turning the RecursionError of a very deep value into a RowLimitError."""
    try:
        return decode()
    except RecursionError:
        raise RowLimitError(row, TOO_DEEP, line=line) from None


def _check_depth(value: Any, row: int, line: int | None = None, *, brackets: int) -> None:
    """`brackets`: the number of { and [ in the record's text; with no more than MAX_JSON_DEPTH of them it
    cannot be nested deeper, and the walk (the costly part for ordinary records) is skipped."""
    if brackets > MAX_JSON_DEPTH and json_depth(value) > MAX_JSON_DEPTH:
        raise RowLimitError(row, TOO_DEEP, line=line)


def _plain(value: Any) -> Any:
    """A Parquet cell as a JSON value: dates and times as ISO text, bytes refused by the caller."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_parquet(stream: BinaryIO) -> Iterator[Record]:
    """Rows of a Parquet file (a Hugging Face dataset's data/<split>.parquet) read in batches of
    PARQUET_BATCH_ROWS by pyarrow, so memory stays flat; the same column and nesting limits as JSON."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as error:
        raise ImportFileError(f"The file is not a Parquet file ({error}).") from None
    columns = parquet.schema_arrow.names
    if len(columns) > MAX_COLUMNS:
        raise FileLimitError(f"The file has {len(columns):,} columns; the limit is {MAX_COLUMNS:,} columns.")
    binary = [field.name for field in parquet.schema_arrow if pa.types.is_binary(field.type)]
    row = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for values in batch.to_pylist():
            row += 1
            record = {name: value for name, value in _plain(values).items() if name not in binary}
            _check_depth(record, row, brackets=MAX_JSON_DEPTH + 1)
            yield Record(row=row, values=record)


def _read_jsonl(stream: BinaryIO) -> Iterator[Record]:
    row = line_number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        line_number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise RowLimitError(
                row + 1,
                f"the line is longer than {size_text(MAX_LINE_BYTES)}; "
                f"the limit is {size_text(MAX_LINE_BYTES)} per line",
                line=line_number,
            )
        if not raw.strip():
            continue
        row += 1
        text = _decode_line(raw, row=row, line=line_number)
        if line_number == 1:
            text = text.removeprefix("\ufeff")
        try:
            value = _decode_json(partial(json.loads, text), row, line_number)
        except json.JSONDecodeError as error:
            raise RowError(
                row, f"malformed JSON: {error.msg} at column {error.colno}", line=line_number
            ) from None
        if not isinstance(value, dict):
            raise RowError(row, f"expected a JSON object, got {_json_kind(value)}", line=line_number)
        _check_depth(value, row, line_number, brackets=text.count("{") + text.count("["))
        _check_width(value, row, line_number)
        yield Record(row, value, line_number)


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _read_json_array(stream: BinaryIO) -> Iterator[Record]:
    """A top-level JSON array of objects, one object in memory at a time.

    Bytes are decoded with surrogateescape so that a bad byte becomes a lone surrogate inside the record that
    holds it; the record is then reported by row number instead of the chunk failing somewhere ahead.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    json_decoder = json.JSONDecoder()
    buffer, pos, at_eof = "", 0, False

    def fill() -> bool:
        nonlocal buffer, pos, at_eof
        if at_eof:
            return False
        chunk = stream.read(JSON_CHUNK_CHARS)
        at_eof = not chunk
        buffer = buffer[pos:] + decoder.decode(chunk, final=at_eof)
        pos = 0
        return True

    def skip_whitespace() -> bool:
        """Move past whitespace; False at the end of the file."""
        nonlocal pos
        while True:
            match = _WHITESPACE.match(buffer, pos)
            assert match is not None  # the pattern matches the empty string
            pos = match.end()
            if pos < len(buffer):
                return True
            if not fill():
                return False

    fill()
    if buffer.startswith("\ufeff"):
        pos = 1
    if not skip_whitespace():
        raise ImportFileError("The file is empty: expected a JSON array of objects.")
    if buffer[pos] != "[":
        raise ImportFileError(
            'A .json file must hold one array of objects: [{"text": ...}, ...]. Use .jsonl for one object per line.'
        )
    pos += 1
    row = 0
    while True:
        if not skip_whitespace():
            raise RowError(row + 1, "malformed JSON: the file ends before the array is closed with ]")
        if buffer[pos] == "]":
            pos += 1
            if skip_whitespace():
                raise ImportFileError("Unexpected content after the closing ] of the JSON array.")
            return
        if row:
            if buffer[pos] != ",":
                raise RowError(
                    row + 1, f"malformed JSON: expected ',' or ']' between objects, found {buffer[pos]!r}"
                )
            pos += 1
            if not skip_whitespace():
                raise RowError(row + 1, "malformed JSON: the file ends before the array is closed with ]")
        row += 1
        if buffer[pos] != "{":
            raise RowError(row, f"expected a JSON object, found {buffer[pos]!r}")
        while True:
            try:
                value, end = _decode_json(partial(json_decoder.raw_decode, buffer, pos), row)
                break
            except json.JSONDecodeError as error:
                if len(buffer) - pos > MAX_LINE_BYTES:
                    raise RowLimitError(
                        row,
                        f"malformed JSON, or an object longer than {size_text(MAX_LINE_BYTES)}"
                        f" (the limit is {size_text(MAX_LINE_BYTES)} per object): {error.msg}",
                    ) from None
                if not fill():
                    raise RowError(row, f"malformed JSON: {error.msg}") from None
        _check_depth(value, row, brackets=buffer.count("{", pos, end) + buffer.count("[", pos, end))
        pos = end
        _check_width(value, row)
        _reject_undecodable(value, row)
        yield Record(row, value)


def _reject_undecodable(value: Any, row: int) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RowError(row, "bad encoding: the record holds bytes that are not UTF-8") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_undecodable(key, row)
            _reject_undecodable(item, row)
    elif isinstance(value, list):
        for item in value:
            _reject_undecodable(item, row)


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


@dataclass
class Preview:
    columns: list[str]
    rows: list[dict[str, Any]]
    error: str = ""
    over_limit: bool = False  # the error breaks a limit: the upload is refused instead of kept


def preview_records(stream: BinaryIO, file_format: str, *, limit: int = 10) -> Preview:
    """The first `limit` records and the columns seen in them (in order of first appearance), never more
    than MAX_COLUMNS columns: the mapping page renders a few widgets per column."""
    columns: dict[str, None] = {}
    rows: list[dict[str, Any]] = []
    try:
        for record in read_records(stream, file_format):
            seen = len(columns) + sum(1 for name in record.values if name not in columns)
            if seen > MAX_COLUMNS:
                raise FileLimitError(
                    f"The first {len(rows) + 1} rows name {seen:,} different columns; "
                    f"the limit is {MAX_COLUMNS:,} columns."
                )
            for name in record.values:
                columns.setdefault(name, None)
            rows.append(record.values)
            if len(rows) >= limit:
                break
    except (ImportFileError, RowError) as error:
        return Preview(list(columns), rows, str(error), over_limit=isinstance(error, LimitError))
    return Preview(list(columns), rows)


# ---------------------------------------------------------------------------------------------- parser


@dataclass
class ColumnMapping:
    """Which columns feed what. Several text columns are joined ("name: value" lines) and also kept as fields."""

    text_columns: list[str]
    field_columns: list[str] = field(default_factory=list)
    gold_label_column: str = ""
    llm_label_column: str = ""
    llm_confidence_column: str = ""
    llm_distribution_column: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnMapping:
        return cls(
            text_columns=list(data.get("text_columns") or []),
            field_columns=list(data.get("field_columns") or []),
            gold_label_column=data.get("gold_label_column") or "",
            llm_label_column=data.get("llm_label_column") or "",
            llm_confidence_column=data.get("llm_confidence_column") or "",
            llm_distribution_column=data.get("llm_distribution_column") or "",
        )

    @property
    def uses_labels(self) -> bool:
        return bool(self.gold_label_column or self.llm_label_column or self.llm_distribution_column)

    @property
    def has_llm_annotation(self) -> bool:
        return bool(self.llm_label_column or self.llm_distribution_column)


@dataclass
class ParsedRow:
    row: int
    text: str
    fields: dict[str, Any]
    gold_label: str = ""
    llm_label: str = ""
    llm_confidence: float | None = None
    llm_distribution: dict[str, float] = field(default_factory=dict)


class RowParser:
    def __init__(self, mapping: ColumnMapping, label_names: Iterable[str]) -> None:
        if not mapping.text_columns:
            raise ImportFileError("Choose at least one text column.")
        self.mapping = mapping
        self.label_names = list(label_names)
        self._canonical = {name: name for name in self.label_names}
        for name in self.label_names:
            self._canonical.setdefault(name.casefold(), name)
        if mapping.uses_labels and not self.label_names:
            raise ImportFileError(
                "The project's codebook has no labels yet: write the codebook before importing labels."
            )

    def parse(self, record: Record) -> ParsedRow:
        mapping, row, values = self.mapping, record.row, record.values

        def fail(reason: str) -> RowError:
            return RowError(row, reason, line=record.line)

        parts = []
        for column in mapping.text_columns:
            if column not in values or values[column] is None:
                raise fail(f"missing column {column!r}")
            parts.append((column, self._as_text(values[column], column, fail)))
        if len(parts) == 1:
            text = parts[0][1].strip()
            fields: dict[str, Any] = {}
        else:
            text = MULTI_FIELD_SEPARATOR.join(
                f"{column}: {value.strip()}" for column, value in parts if value.strip()
            )
            fields = {column: value for column, value in parts}
        if not text:
            raise fail("empty text" if len(parts) == 1 else "empty text (every text column is empty)")
        for column in mapping.field_columns:
            if values.get(column) is not None:
                fields[column] = values[column]

        parsed = ParsedRow(row=row, text=text, fields=fields)
        if mapping.gold_label_column:
            parsed.gold_label = self._label(
                values.get(mapping.gold_label_column), mapping.gold_label_column, fail
            )
        if mapping.llm_distribution_column:
            parsed.llm_distribution = self._distribution(values.get(mapping.llm_distribution_column), fail)
        if mapping.llm_label_column:
            parsed.llm_label = self._label(
                values.get(mapping.llm_label_column), mapping.llm_label_column, fail
            )
        if not parsed.llm_label and parsed.llm_distribution:
            parsed.llm_label = max(self.label_names, key=lambda name: parsed.llm_distribution[name])
        if mapping.llm_confidence_column:
            parsed.llm_confidence = self._confidence(values.get(mapping.llm_confidence_column), fail)
            if parsed.llm_confidence is not None and not parsed.llm_label:
                raise fail(f"a confidence in {mapping.llm_confidence_column!r} but no LLM label")
        if parsed.llm_confidence is None and parsed.llm_label and parsed.llm_distribution:
            parsed.llm_confidence = parsed.llm_distribution[parsed.llm_label]
        return parsed

    @staticmethod
    def _as_text(value: Any, column: str, fail) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise fail(
                f"column {column!r} holds {_json_kind(value) if not isinstance(value, dict) else 'an object'}, not text"
            )
        return str(value)

    def _label(self, value: Any, column: str, fail) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            value = str(value)
        value = value.strip()
        if not value:
            return ""
        name = self._canonical.get(value) or self._canonical.get(value.casefold())
        if name is None:
            raise fail(
                f"label {value!r} in column {column!r} is not in the codebook ({', '.join(self.label_names)})"
            )
        return name

    def _confidence(self, value: Any, fail) -> float | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        column = self.mapping.llm_confidence_column
        if isinstance(value, bool):
            raise fail(f"bad confidence in {column!r}: {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise fail(f"bad confidence in {column!r}: {value!r} is not a number") from None
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise fail(f"bad confidence in {column!r}: {value!r} is not between 0 and 1")
        return number

    def _distribution(self, value: Any, fail) -> dict[str, float]:
        column = self.mapping.llm_distribution_column
        if value is None or (isinstance(value, str) and not value.strip()):
            return {}
        if isinstance(value, str):
            try:
                value = json_loads_bounded(value)
            except json.JSONDecodeError as error:
                raise fail(f"malformed JSON in {column!r}: {error.msg} at column {error.colno}") from None
            except JsonTooDeep as error:
                raise fail(f"{column!r}: {error}") from None
        if not isinstance(value, dict):
            raise fail(f"{column!r} must be a JSON object {{label: probability}}, got {_json_kind(value)}")
        distribution = dict.fromkeys(self.label_names, 0.0)
        for key, probability in value.items():
            name = self._canonical.get(str(key)) or self._canonical.get(str(key).casefold())
            if name is None:
                raise fail(
                    f"label {key!r} in {column!r} is not in the codebook ({', '.join(self.label_names)})"
                )
            if isinstance(probability, bool) or not isinstance(probability, (int, float)):
                raise fail(f"probability of {key!r} in {column!r} is not a number: {probability!r}")
            if not math.isfinite(probability) or probability < 0:
                raise fail(
                    f"probability of {key!r} in {column!r} must be a finite number ≥ 0, got {probability!r}"
                )
            distribution[name] += float(probability)
        total = sum(distribution.values())
        if total <= 0:
            raise fail(f"the probabilities in {column!r} sum to 0")
        return {name: probability / total for name, probability in distribution.items()}


def parse_file(stream: BinaryIO, file_format: str, parser: RowParser) -> Iterator[ParsedRow]:
    """Stream ParsedRows; the first bad record raises RowError (ImportFileError for whole-file problems)."""
    for record in read_records(stream, file_format):
        yield parser.parse(record)


def batched(rows: Iterable[ParsedRow], size: int) -> Iterator[list[ParsedRow]]:
    batch: list[ParsedRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
