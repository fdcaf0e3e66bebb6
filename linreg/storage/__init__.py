"""All file I/O, in one package: nothing else in linreg reads or writes files.

- `atomic`: files written whole or not at all, CSV, digests;
- `parquet`: the dataset file format, its checks and `DatasetRef`;
- `source`: opening a dataset in memory or as a chunked `ParquetSource`;
- `cache`: the data root's layout, and reuse of a dataset file per spec;
- `ingest`: a user's own CSV or parquet table, checked, converted once or read in place;
- `refs`: `TableRef`, a table as a run reads it (seed, holdout), and `open_data` for either kind.
"""

from linreg.storage.atomic import atomic_path, sha256_file, write_bytes, write_csv, write_text
from linreg.storage.cache import dataset_path, ensure_dataset, existing_dataset, run_dir, spec_digest
from linreg.storage.ingest import TableDataset, TableError, TableSource, check_columns, ingest_table, open_table
from linreg.storage.parquet import (
    FORMAT_VERSION, DatasetError, DatasetRef, dataset_bytes, load_dataset, read_dataset, write_dataset,
    write_dataset_chunks,
)
from linreg.storage.source import DEFAULT_MEMORY_BUDGET, ParquetSource, open_dataset, open_source
from linreg.storage.refs import DataRef, TableRef, open_data, table_ref

__all__ = [
    "atomic_path", "sha256_file", "write_bytes", "write_csv", "write_text",
    "dataset_path", "ensure_dataset", "existing_dataset", "run_dir", "spec_digest",
    "FORMAT_VERSION", "DatasetError", "DatasetRef", "dataset_bytes", "load_dataset", "read_dataset",
    "write_dataset", "write_dataset_chunks",
    "DEFAULT_MEMORY_BUDGET", "ParquetSource", "open_dataset", "open_source",
    "TableDataset", "TableError", "TableSource", "check_columns", "ingest_table", "open_table",
    "DataRef", "TableRef", "open_data", "table_ref",
]
