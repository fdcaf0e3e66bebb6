"""Reading a CSV with pyarrow's own reader: RFC 4180 quoting (values may hold newlines), the
delimiter detected or given, a decimal comma, extra missing-value tokens, true/false as 1/0,
and compressed files, all streamed in blocks with the bytes hashed as they are read."""

import re
import shlex
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from linreg.storage.ingest.checks import choose_columns, is_numeric, non_numeric_error
from linreg.storage.ingest.model import TableError, quoted
from linreg.storage.ingest.sources import HashingReader, Location, one_line, open_text, text_head

DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
DECIMALS = (".", ",")
# A CSV is parsed in blocks of CSV_BLOCK_BYTES by pyarrow's streaming reader, which cuts
# blocks only between records (newlines_in_values: a quoted value may hold a line end).
CSV_BLOCK_BYTES = 4 << 20  # 4 MiB: 8 MiB was no faster here and held ~1.5-2x the memory (docs/own-data.md)
TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]
_SNIFF_BYTES = 1 << 16
NUL = b"\0"  # no text file holds one; almost every binary file does


@dataclass(frozen=True)
class Dialect:
    """How a CSV is written: its delimiter (None: detect it from the header line), its decimal
    point, and the tokens read as missing beside pyarrow's own ("", "NA", "NaN", "null", …)."""

    delimiter: str | None = None
    decimal: str = "."
    na_values: tuple[str, ...] = ()

    def check(self, name: str) -> None:
        """Refuse a dialect no CSV can have, naming the option and its allowed values."""
        if self.delimiter is not None and self.delimiter not in DELIMITERS:
            raise TableError(name, f"delimiter {self.delimiter!r} is not one of {quoted(DELIMITERS)}")
        if self.decimal not in DECIMALS:
            raise TableError(name, f"decimal {self.decimal!r} is not one of {quoted(DECIMALS)}")
        if self.decimal == self.delimiter:
            raise TableError(name, f"decimal {self.decimal!r} is also the delimiter: choose another delimiter")

    def parse_options(self) -> pacsv.ParseOptions:
        return pacsv.ParseOptions(delimiter=self.delimiter or ",", newlines_in_values=True)

    def convert_options(self, types: dict[str, pa.DataType] | None = None,
                        include: list[str] | None = None) -> pacsv.ConvertOptions:
        return pacsv.ConvertOptions(
            column_types=types or {}, include_columns=include or [], decimal_point=self.decimal,
            null_values=[*pacsv.ConvertOptions().null_values, *self.na_values], strings_can_be_null=True,
            true_values=TRUE_VALUES, false_values=FALSE_VALUES,
        )


def _columns_with(header: bytes, delimiter: str) -> int:
    try:
        parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
        return pacsv.read_csv(pa.py_buffer(header), parse_options=parse).num_columns
    except pa.ArrowException:
        return 0


def detect_delimiter(head: bytes, default: str | None) -> str:
    """The delimiter that splits the header line into the most columns, as pyarrow parses it
    (quotes respected); `default` (a suffix's) or a comma when none splits it."""
    line = head.split(b"\n", 1)[0] + b"\n"
    counts = {d: _columns_with(line, d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])  # the first of DELIMITERS on a tie
    if counts[best] <= 1:
        return default or ","
    if default is not None and counts.get(default, 0) == counts[best]:
        return default
    return best


def dialect_for(location: Location, given: Dialect) -> Dialect:
    """The dialect to read with: the given one, its delimiter detected when not given."""
    given.check(location.name)
    head = sniff_text(location)
    delimiter = given.delimiter or detect_delimiter(head, location.suffix_delimiter)
    dialect = Dialect(delimiter, given.decimal, tuple(given.na_values))
    dialect.check(location.name)
    return dialect


def sniff_text(location: Location) -> bytes:
    """The start of the text; refuses an empty file, or one that is not UTF-8 text."""
    head = text_head(location, _SNIFF_BYTES)
    if not head:
        raise TableError(location.name, "empty file: no header row")
    if NUL in head:
        raise TableError(location.name, f"not a text CSV file (a NUL byte at offset {head.index(NUL)}); "
                                        "is it a binary file named .csv?")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the end of the sample
            raise TableError(location.name, f"not a UTF-8 text CSV file (byte 0x{head[exc.start]:02x} at offset "
                                            f"{exc.start}); save it as UTF-8") from None
    return head


def open_csv(location: Location, dialect: Dialect, block_bytes: int, convert: pacsv.ConvertOptions | None = None,
             hashing: HashingReader | None = None) -> pacsv.CSVStreamingReader:
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=True)
    return pacsv.open_csv(open_text(location, hashing), read_options=read, parse_options=dialect.parse_options(),
                          convert_options=convert or dialect.convert_options())


def csv_header(location: Location, dialect: Dialect, block_bytes: int) -> pa.Schema:
    """Column names, and the types pyarrow infers from the first block."""
    try:
        with open_csv(location, dialect, block_bytes) as reader:
            return reader.schema
    except (pa.ArrowException, OSError) as exc:
        raise parse_error(location, dialect, exc, 0, block_bytes) from None


def csv_columns(location: Location, dialect: Dialect, block_bytes: int, target: str,
                features: list[str] | None) -> tuple[list[str], list[str], dict[str, pa.DataType]]:
    """The header's names, the features chosen (`choose_columns`), and the types pyarrow infers
    for every column from the first block.

    Raises:
        TableError: a chosen column that is text in the first block, naming its first text value.
    """
    schema = csv_header(location, dialect, block_bytes)
    names = schema.names
    features = choose_columns(location.name, names, target, features)
    types = {f.name: f.type for f in schema}
    for column in [*features, target]:
        dtype = types[column]
        if not (is_numeric(dtype) or pa.types.is_null(dtype)):  # null: empty in the first block
            first = first_text_value(location, dialect, column, block_bytes)
            where = shown_value(first, dialect)
            raise non_numeric_error(location.name, column, str(dtype), names, target, types, where)
    return names, features, types


def read_types(types: dict[str, pa.DataType], columns: list[str]) -> dict[str, pa.DataType]:
    """The type each chosen column is read as: bool when its first block is true/false (then
    0/1), else float64. Fixed rather than inferred block by block: an integer column with a
    decimal point further down would otherwise fail the read."""
    return {c: pa.bool_() if pa.types.is_boolean(types[c]) else pa.float64() for c in columns}


SHOWN_CHARS = 40  # of a value quoted in a message


def shown_value(first: tuple[int, str] | None, dialect: Dialect) -> str:
    """": 'value' at data row N" for a message, the value cut short, with a hint when it is a
    number with a decimal comma, or holds a line end (an unclosed quote, most likely)."""
    if first is None:
        return ""
    row, value = first
    text = repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "...")
    hint = ""
    if "\n" in value or "\r" in value:
        hint = "; a value over several lines: an unclosed quote?"
    elif dialect.decimal == "." and re.fullmatch(_number_pattern(","), value, re.IGNORECASE):
        hint = "; a decimal comma? read with --decimal ,"
    elif 0 < len(value.strip()) <= 3 and not any(ch.isalnum() for ch in value):
        hint = f"; a mark for a missing value? read with --na-values {shlex.quote(value.strip())} (and --drop-missing)"
    return f": {text} at data row {row}{hint}"


def _number_pattern(decimal: str) -> str:
    """A number as pyarrow's CSV reader parses it into float64 (only to find the first value that is not one)."""
    d = re.escape(decimal)
    return rf"^\s*[+-]?(\d+{d}?\d*([eE][+-]?\d+)?|{d}\d+([eE][+-]?\d+)?|inf|infinity|nan)\s*$"


def first_text_value(location: Location, dialect: Dialect, column: str, block_bytes: int) -> tuple[int, str] | None:
    """(data row, value) of the first value in `column` that is neither a number nor missing (an error path)."""
    convert = dialect.convert_options({column: pa.string()}, [column])
    row = 0
    try:
        with open_csv(location, dialect, block_bytes, convert) as reader:
            for batch in reader:
                text = batch.column(0)
                numeric = pc.match_substring_regex(text, _number_pattern(dialect.decimal), ignore_case=True).fill_null(True)
                flags = pc.is_in(text, pa.array(TRUE_VALUES + FALSE_VALUES))
                bad = np.flatnonzero(~(numeric.to_numpy(zero_copy_only=False) | flags.to_numpy(zero_copy_only=False)))
                if len(bad):
                    return row + int(bad[0]) + 1, text[int(bad[0])].as_py()
                row += batch.num_rows
    except pa.ArrowException:
        return None
    return None


def csv_batches(location: Location, dialect: Dialect, read_as: dict[str, pa.DataType], columns: list[str],
                block_bytes: int, hashing: HashingReader, names: list[str], target: str) -> Iterator[pa.RecordBatch]:
    """The chosen columns as float64 batches, in `columns` order and in row order; every stored
    byte goes through `hashing` as pyarrow reads it.

    Raises:
        TableError: a value that is not a number (naming the column, its first such value and
            row), or a record pyarrow cannot parse (naming the data rows read before it).
    """
    convert = dialect.convert_options(read_as, columns)
    schema = pa.schema([pa.field(c, pa.float64()) for c in columns])
    rows = 0
    try:
        with open_csv(location, dialect, block_bytes, convert, hashing) as reader:
            for batch in reader:
                arrays = [batch.column(c) for c in columns]
                arrays = [a if a.type == pa.float64() else a.cast(pa.float64()) for a in arrays]
                rows += batch.num_rows
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
    except pa.ArrowException as exc:
        raise _read_error(location, dialect, exc, names, target, rows, block_bytes, read_as) from None


def _read_error(location: Location, dialect: Dialect, exc: pa.ArrowException, names: list[str], target: str,
                rows: int, block_bytes: int, read_as: dict[str, pa.DataType]) -> TableError:
    """A pyarrow error met while streaming, as one line naming the column and row where it can."""
    found = re.search(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (double|bool)", str(exc))
    if found:
        column = names[int(found.group(1))]
        first = first_text_value(location, dialect, column, block_bytes)
        where = shown_value(first, dialect)
        if found.group(2) == "bool":
            return TableError(location.name, f"column {column!r} is true/false in its first rows, then not{where}")
        return non_numeric_error(location.name, column, "text", names, target, dict(read_as), where)
    return parse_error(location, dialect, exc, rows, block_bytes)


def parse_error(location: Location, dialect: Dialect, exc: BaseException, rows: int, block_bytes: int) -> TableError:
    """A record pyarrow cannot parse, as one line: the line and field counts of the first ragged
    record, or an unclosed quote; `rows`: data rows read before the error."""
    if "straddl" in str(exc):  # the chunker found no record end within a block
        return TableError(location.name, f"not a readable CSV file after data row {rows}: an unclosed quote, or a "
                                         f"record longer than the reader's block of {block_bytes} bytes")
    invalid = first_invalid_row(location, dialect, block_bytes)
    if invalid is not None:
        return TableError(location.name, f"not a readable CSV file: line {invalid.number} has {invalid.actual_columns} "
                                         f"fields where the header has {invalid.expected_columns} "
                                         f"({invalid.text[:80]!r}); read with delimiter "
                                         f"{DELIMITERS[dialect.delimiter or ',']}")
    return TableError(location.name, f"not a readable CSV file after data row {rows} ({one_line(exc)})")


def first_invalid_row(location: Location, dialect: Dialect, block_bytes: int):
    """The first record whose field count differs from the header's (pyarrow's `InvalidRow`:
    its physical line number, counts and text), or None (an error path: the file is read again)."""
    found = []

    def handler(row) -> str:
        found.append(row)
        return "error"

    parse = dialect.parse_options()
    parse.invalid_row_handler = handler
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=False)
    try:
        with pacsv.open_csv(open_text(location), read_options=read, parse_options=parse,
                            convert_options=dialect.convert_options(include=[])) as reader:
            for _ in reader:
                pass
    except pa.ArrowException:
        pass
    return found[0] if found else None
