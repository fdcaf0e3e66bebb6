"""Helpers of the table tests (test_ingest.py, test_ingest_formats.py): writing a file, and the
one line a refused table gets, with nothing left written."""

from pathlib import Path

import pytest

from linreg.storage import TableError, ingest_table


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def leftovers(root: Path) -> list[str]:
    """Everything under the data root's datasets/ folder, temporary files included."""
    folder = root / "datasets"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def refused(path, target="y", features=None, root=None, **kwargs) -> str:
    """The one line a bad input gets; nothing may be left written (not even an empty datasets/)."""
    root = root or Path(path).parent / "root"
    with pytest.raises(TableError) as info:
        ingest_table(path, target, features, data_root=root, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{info.value.location}: ")  # the file, or a folder's file
    assert leftovers(root) == [] and not (root / "datasets").exists()
    return message
