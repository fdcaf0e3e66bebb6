"""Reading a parquet file or a folder of them with `pyarrow.dataset`: one schema over every file,
each chosen column read as float64 (integers, decimals and floats as they are, booleans as 0/1)."""

from contextlib import contextmanager
from typing import Iterator

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from linreg.storage.ingest.checks import choose_columns, is_numeric, non_numeric_error
from linreg.storage.ingest.model import TableError, quoted
from linreg.storage.ingest.sources import Location, one_line, parquet_files


@contextmanager
def read_errors(name: str) -> Iterator[None]:
    """Turn a failed parquet read (a damaged page, a bad checksum) into one TableError line."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise TableError(name, f"not a readable parquet file ({one_line(exc)})") from None


def parquet_file(location: Location, checksums: bool = False) -> pq.ParquetFile:
    """A parquet file's reader on its filesystem. pre_buffer=False: otherwise pyarrow preloads
    the whole file. With `checksums`, page CRCs (conversions have them) are checked as pages are read.

    Raises:
        TableError: not a readable parquet file.
    """
    with read_errors(location.name):
        return pq.ParquetFile(location.fs.open_input_file(location.path), pre_buffer=False,
                              page_checksum_verification=checksums)


def table_files(location: Location) -> list[Location]:
    """The parquet files a table is read from: the file itself, or a folder's files."""
    return parquet_files(location) if location.kind == "folder" else [location]


def unified_type(types: list[pa.DataType]) -> pa.DataType:
    """One type for a column stored with different types in different files (int32 and int64
    give int64, int64 and double give double), as pyarrow's permissive unification decides."""
    fields = [pa.schema([pa.field("c", t)]) for t in types]
    return pa.unify_schemas(fields, promote_options="permissive").field("c").type


def parquet_columns(location: Location, target: str,
                    features: list[str] | None) -> tuple[list[Location], list[str], dict[str, pa.DataType]]:
    """The files, the features chosen and each chosen column's type unified over the files, from the
    footers only.

    Raises:
        TableError: a chosen column missing from a file, or one that is not numeric or boolean in a
            file (naming the file and its type).
    """
    files = table_files(location)
    schemas = []
    for f in files:
        with read_errors(f.name):
            schemas.append(parquet_file(f).schema_arrow)
    names = schemas[0].names
    given = features is not None
    features = choose_columns(location.name, names, target, features)
    columns = [*features, target]
    for f, schema in zip(files[1:], schemas[1:]):
        # Every column, when the features are "all but the target"; else the chosen ones.
        missing = [c for c in (columns if given else names) if c not in schema.names]
        extra = [] if given else [c for c in schema.names if c not in names]
        if missing or extra:
            lacks = f"lacks {quoted(missing)}" if missing else ""
            adds = f"adds {quoted(extra)}" if extra else ""
            raise TableError(f.name, f"columns differ from {files[0].name}'s: it {' and '.join(filter(None, [lacks, adds]))}; "
                                     "every file of a folder needs the same columns (or choose the features by name)")
    types = {}
    for column in columns:
        for f, schema in zip(files, schemas):
            dtype = schema.field(column).type
            if not is_numeric(dtype):
                first = {c: schemas[0].field(c).type for c in names}
                raise non_numeric_error(f.name, column, str(dtype), names, target, first)
        types[column] = unified_type([schema.field(column).type for schema in schemas])
    return files, features, types


def parquet_batches(f: Location, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    """One file's chosen columns as float64 batches of at most `rows` rows, in the order given."""
    schema = pa.schema([pa.field(c, pa.float64()) for c in columns])
    with read_errors(f.name):
        dataset = ds.dataset(f.path, filesystem=f.fs, format="parquet", schema=schema)
        for batch in dataset.to_batches(columns=columns, batch_size=rows, use_threads=False):
            if batch.num_rows:
                yield batch
