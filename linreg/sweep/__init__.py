"""Sweeps: a grid of (data, solver, device, hyperparameters) cells, their results as one DataFrame,
and the crossover where CUDA starts to beat the CPU.

Its parts: `spec` (SweepSpec), `grid` (datasets, cells, chunks), `cells` (running
cells, the rows and the results frame) and `crossover`; every public name is here.
No Prefect here: `flows/sweep_flow.py` sets the order and `tasks/sweep.py`
runs chunks of cells through `run_cells`. The sweep's plots are in `linreg.plots`
(`plot_sweep_seconds`, `plot_sweep_error`) and its report in `linreg.report`
(`sweep_markdown`, `sweep_table`). `SweepSpec` takes its field types and checks
from `linreg.specs`, as `RunSpec` does.

A cell is one fit. Hyperparameters are expanded only for the solvers that use
them: the closed form gets one cell per (data, device), whatever the lr and
epochs grids. NumPy solvers run on the CPU only: asked for on CUDA alone they
become `skipped` rows that say so. Data specs are (n, d, seed); the true
weights of d features are `true_weights(d)`.

A sweep over a user's table (`SweepSpec.data`) has one dataset and no truth:
its cells' error is measured against the closed form fitted on the table
(`TableCells.reference`), and its iterative cells fit standardised data
unless `scale` is "none" (`linreg.scaling`), as a run's do.
"""

from linreg.sweep.cells import (
    COLUMNS, cell_row, count_statuses, fit_row, frame_parquet, results_frame, run_cells, skip_reason,
)
from linreg.sweep.crossover import NEVER, crossover_table, timing_table
from linreg.sweep.grid import Cell, TableCells, chunk_cells, data_specs, expand_grid, true_weights
from linreg.sweep.spec import GENERATED_AXES, MAX_CELLS, MAX_VALUES, Features, SweepSpec

__all__ = [
    "COLUMNS", "GENERATED_AXES", "MAX_CELLS", "MAX_VALUES", "NEVER", "Cell", "Features", "SweepSpec", "TableCells",
    "cell_row", "chunk_cells", "count_statuses", "crossover_table", "data_specs", "expand_grid", "fit_row",
    "frame_parquet", "results_frame", "run_cells", "skip_reason", "timing_table", "true_weights",
]
