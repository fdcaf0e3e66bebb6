"""A user's own table: a CSV converted once to parquet, or a parquet file or folder read in place.

One module per job:
- `sources`: where a table is (a local path or a URL, on a `pyarrow.fs` filesystem), its kind, its files, its bytes;
- `csv_reader`: CSV through `pyarrow.csv` (quotes, dialects, compression), hashed as it is read;
- `parquet_reader`: parquet files and folders through `pyarrow.dataset`, one schema over the files;
- `checks`: the columns chosen and one streamed pass of value checks;
- `convert`: the conversion written under the data root, and reused;
- `table`: `ingest_table`, which puts these together;
- `reader`: `open_table` and `TableSource`, the rows a solver reads at run time.
"""

from linreg.storage.ingest.checks import RESERVED_NAMES, choose_columns
from linreg.storage.ingest.csv_reader import CSV_BLOCK_BYTES, DELIMITERS, Dialect
from linreg.storage.ingest.model import TableDataset, TableError, quoted
from linreg.storage.ingest.reader import PARTS, TableSource, open_table
from linreg.storage.ingest.table import ingest_table

__all__ = [
    "CSV_BLOCK_BYTES", "DELIMITERS", "Dialect", "PARTS", "RESERVED_NAMES", "TableDataset", "TableError",
    "TableSource", "choose_columns", "ingest_table", "open_table", "quoted",
]
