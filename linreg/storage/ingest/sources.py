"""Finding and opening a user's table: its filesystem, its kind, its files, and its bytes as read.

Every read goes through a `pyarrow.fs.FileSystem`: a local path gets the local
one, a URL (`s3://…`, `file://…`) the one pyarrow builds for it, so the readers
never call `open()` on a path.
"""

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs

from linreg.storage.ingest.model import TableError

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}  # a suffix and the delimiter it implies ("," is only a default)
# What pyarrow's input streams decompress, by suffix.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
PARQUET_MAGIC = b"PAR1"
READ_BYTES = 4 << 20


@dataclass(frozen=True)
class Location:
    """A table's place: the filesystem, the path on it, and how to name it in messages.

    Attributes:
        fs: the filesystem that reads it.
        path: the path on `fs` (absolute, '/'-separated).
        name: the file or folder as the user named it, made absolute (a URL stays a URL).
        kind: "csv", "parquet" or "folder".
        compression: a CSV's codec ("gzip", "bz2", "zstd") or None.
        suffix_delimiter: the delimiter a CSV's suffix implies ("\\t" for .tsv), else None.
    """

    fs: pafs.FileSystem
    path: str
    name: str
    kind: str = "csv"
    compression: str | None = None
    suffix_delimiter: str | None = None

    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def child(self, path: str) -> "Location":
        """A file of a folder dataset, named in messages by its URL or absolute path."""
        name = self.name.rstrip("/") + "/" + PurePosixPath(path).relative_to(self.path).as_posix()
        return Location(self.fs, path, name, "parquet")


def is_url(path: str) -> bool:
    return "://" in path


def filesystem(path: Path | str) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path on it, name for messages) for a local path or a URL pyarrow knows.

    Raises:
        TableError: a URL whose scheme or store pyarrow cannot open, with its reason.
    """
    text = str(path)
    if is_url(text):
        try:
            fs, inner = pafs.FileSystem.from_uri(text)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise TableError(text, f"cannot open this location ({one_line(exc)})") from None
        return fs, inner, text
    local = Path(text).absolute()
    return pafs.LocalFileSystem(), local.as_posix(), str(local)


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, cut short: pyarrow quotes whole rows of data."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def locate(path: Path | str) -> Location:
    """Where the table is and what kind it is; refuses anything else, naming what is accepted.

    Raises:
        TableError: no such file or folder, or not a CSV (.csv, .tsv, either compressed) or parquet.
    """
    fs, inner, name = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        raise TableError(name, "no such file or folder")
    if info.type == pafs.FileType.Directory:
        return Location(fs, inner, name, "folder")
    suffixes = [s.lower() for s in PurePosixPath(inner).suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    base = suffixes[-2] if compression and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if base in CSV_SUFFIXES:
        return Location(fs, inner, name, "csv", compression, CSV_SUFFIXES[base] if base != ".csv" else None)
    if base in PARQUET_SUFFIXES and not compression:
        return Location(fs, inner, name, "parquet")
    with fs.open_input_stream(inner, compression=None) as fh:
        if not compression and fh.read(4) == PARQUET_MAGIC:
            return Location(fs, inner, name, "parquet")
    raise TableError(
        name, f"not a CSV or parquet file (suffix {''.join(suffixes[-2:]) or 'none'!r}); expected a .csv or .tsv "
        f"file (or one compressed: {', '.join(COMPRESSIONS)}), a .parquet file or a folder of .parquet files"
    )


def parquet_files(folder: Location) -> list[Location]:
    """The parquet files of a folder dataset, in name order, leaving out hidden and `_`-prefixed ones
    (`.x.tmp`, Spark's `_SUCCESS` and `_metadata`), as pyarrow's dataset discovery does.

    Raises:
        TableError: the folder holds no parquet file.
    """
    found = folder.fs.get_file_info(pafs.FileSelector(folder.path, recursive=True))
    files = sorted(
        f.path for f in found if f.type == pafs.FileType.File and PurePosixPath(f.path).suffix.lower() in PARQUET_SUFFIXES
        and not any(part.startswith((".", "_")) for part in PurePosixPath(f.path).relative_to(folder.path).parts)
    )
    if not files:
        raise TableError(folder.name, f"empty folder: no {'/'.join(PARQUET_SUFFIXES)} files in it")
    return [folder.child(f) for f in files]


class HashingReader(io.RawIOBase):
    """A raw byte stream that updates a sha256 with every byte read through it.

    Written by hand because no pyarrow stream hashes: with it, the CSV reader's own
    reads are the only read of the file, and the digest is whole when the parse ends.
    hashlib releases the GIL on large blocks, so hashing overlaps pyarrow's parsing.
    """

    def __init__(self, raw: pa.NativeFile):
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_text(location: Location, hashing: HashingReader | None = None) -> pa.NativeFile:
    """A CSV's decompressed bytes as a stream; `hashing`, when given, wraps the stored bytes."""
    if hashing is not None:
        stream = pa.PythonFile(hashing, mode="r")
    else:
        stream = location.fs.open_input_stream(location.path, compression=None, buffer_size=READ_BYTES)
    if location.compression:
        stream = pa.CompressedInputStream(stream, location.compression)
    return stream


def hashing_reader(location: Location) -> HashingReader:
    return HashingReader(location.fs.open_input_stream(location.path, compression=None, buffer_size=READ_BYTES))


def text_head(location: Location, size: int) -> bytes:
    """The first `size` bytes of a CSV's text (decompressed).

    Raises:
        TableError: the file cannot be read or decompressed.
    """
    try:
        with open_text(location) as stream:
            return stream.read(size)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(location.name, f"cannot read it as {location.compression or 'text'} ({one_line(exc)})") from None


def file_sha256(location: Location) -> str:
    """The sha256 of a file's stored bytes, read in pieces."""
    digest = hashlib.sha256()
    with location.fs.open_input_stream(location.path, compression=None, buffer_size=READ_BYTES) as fh:
        while block := fh.read(READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def data_sha256(location: Location) -> str:
    """The sha256 of a file, or one digest for a folder dataset: each parquet file's relative name and sha256."""
    if location.kind != "folder":
        return file_sha256(location)
    digest = hashlib.sha256()
    for f in parquet_files(location):
        relative = PurePosixPath(f.path).relative_to(location.path).as_posix()
        digest.update(f"{relative}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def identity(location: Location) -> dict:
    """What identifies a file without reading it: its name, size and modification time."""
    info = location.info()
    return {"path": location.name, "size": info.size, "mtime_ns": info.mtime_ns}
