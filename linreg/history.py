"""The history's two files under a data root, history.csv and history.png: one writer for
`linreg history` and the linreg-history flow, through `linreg.storage`."""

from pathlib import Path

import pandas as pd

from linreg.frames import COLUMNS
from linreg.plots import figure_png, plot_history
from linreg.report import frame_rows
from linreg.storage import Catalog, write_bytes, write_csv


def write_history(root: Path, frame: pd.DataFrame) -> bytes:
    """Write `Catalog(root).history_csv` (the tidy frame, a row per run and solver, in COLUMNS)
    and `history_png` (seconds and error per solver across runs), each atomically.

    Args:
        frame: the history as `linreg.results.load_history` returns it, not empty.

    Returns:
        The PNG's bytes, for a report to embed.
    """
    catalog = Catalog(root)
    png = figure_png(plot_history(frame))
    write_csv(catalog.history_csv, frame_rows(frame, COLUMNS))
    write_bytes(catalog.history_png, png)
    return png
