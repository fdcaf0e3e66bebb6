"""Files written whole or not at all, CSV tables, and digests."""

import csv
import hashlib
import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    A crash or interruption leaves `path` as it was (absent or the old file),
    never half-written, and the temporary file is removed. An OSError (a full
    disk, say) is raised again naming `path`, not the temporary file.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


class PendingFile:
    """A file written under a temporary name, whose own name is known only once it is whole
    (a content-addressed file): see `pending_file`."""

    def __init__(self, path: Path):
        self.path = path
        self.published: Path | None = None

    def publish(self, path: Path) -> Path:
        """Flush the file to disk and rename it onto `path`, in the same folder."""
        path = Path(path)
        try:
            with open(self.path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.path, path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        self.published = path
        return path


@contextmanager
def pending_file(folder: Path, prefix: str) -> Iterator[PendingFile]:
    """Yield a `PendingFile` in `folder` to write; unless `publish` named it by the end of the
    block, it is removed, with the folders made for it: an error, an interruption or a change
    of mind leaves nothing, not even an empty `datasets/`."""
    folder = Path(folder).absolute()
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{prefix}.", suffix=".tmp")
    os.close(fd)
    pending = PendingFile(Path(tmp))
    try:
        yield pending
    finally:
        if pending.published is None:
            pending.path.unlink(missing_ok=True)
            for empty in made:
                try:
                    empty.rmdir()
                except OSError:  # something else was written there meanwhile: it stays
                    break


def write_bytes(path: Path, payload: bytes) -> Path:
    """Write `payload` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write dict rows as CSV, atomically; the first row's keys are the header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
