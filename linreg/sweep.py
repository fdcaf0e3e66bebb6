"""Sweeps: a grid of (data, solver, device, hyperparameters) cells, their results as one DataFrame,
and the crossover where CUDA starts to beat the CPU.

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

import io
import json
import math
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Annotated, Callable, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from linreg.devices import DeviceError, parse_device, planned_device, resolve_device
from linreg.scaling import ScaledSource, Scaling
from linreg.solvers.base import SolverSpec
from linreg.solvers.registry import SOLVERS
from linreg.specs import (
    DASK_ADDRESS_SCHEMA, BatchSize, Bias, DataSpec, Epochs, FileData, LearningRate, Noise, OutputDir, Rows, Seed,
    dask_address_for,
)
from linreg.validation import MAX_D, MAX_EPOCHS, MAX_N, MAX_SEED, FrozenModel, range_check

MAX_VALUES = 64  # values per axis; a grid is their product
MAX_CELLS = 10_000

Features = Annotated[int, range_check(1, MAX_D)]  # a run's d is its weights' count; a sweep's is an axis


def _axis(description: str, default: list):
    return Field(default_factory=lambda: list(default), min_length=1 if default else 0, max_length=MAX_VALUES,
                 description=description)


class SweepSpec(FrozenModel):
    """A sweep's grid and where it runs. Every list is one axis of the grid."""

    n: list[Rows] = _axis(f"rows of each dataset, 1..{MAX_N}", [1000])
    d: list[Features] = _axis(f"features of each dataset, 1..{MAX_D}", [1])
    seeds: list[Seed] = _axis(f"data seeds, 0..{MAX_SEED}; repeated seeds give the spread", [42])
    solvers: list[str] = Field(default_factory=lambda: list(SOLVERS), min_length=1, description="solver names")
    devices: list[str] = Field(default_factory=lambda: ["cpu"], min_length=1, max_length=MAX_VALUES,
                               description="'cpu', 'cuda' or 'cuda:N'")
    lr: list[LearningRate] = _axis("learning rates, > 0; empty: each solver's own", [])
    epochs: list[Epochs] = _axis(f"epochs, 1..{MAX_EPOCHS}; empty: each solver's own", [])
    batch_size: BatchSize | None = Field(None, description="minibatch size")
    bias: Bias = Field(1.0, description="true intercept of every dataset")
    noise: Noise = Field(0.1, description="noise standard deviation, >= 0")
    runner: Literal["threads", "processes", "dask"] = Field("threads", description="task runner")
    dask_address: str | None = Field(None, description="tcp://host:port of a Dask scheduler; runner dask only",
                                     json_schema_extra=DASK_ADDRESS_SCHEMA)
    output_dir: OutputDir = Field(Path("data"), description="data root: datasets/ and sweeps/<sweep-id>/ go here")
    data: FileData | None = Field(None, description="a user's table instead of generated data (n, d, seeds, "
                                                    "noise and bias then stay unset)")
    scales: list[Literal["auto", "none", "standard"]] = Field(
        default_factory=lambda: ["auto"], min_length=1, max_length=3,
        description="an axis: iterative cells on standardised data (standard) or as given (none); "
                    "auto: standard for a table, none for generated data")

    @property
    def scalings(self) -> list[Literal["none", "standard"]]:
        """The scale axis with "auto" decided, each value once, in order."""
        auto = "standard" if self.data is not None else "none"
        return list(dict.fromkeys(auto if s == "auto" else s for s in self.scales))

    @field_validator("solvers")
    @classmethod
    def _known_solvers(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in SOLVERS]
        if unknown:
            raise PydanticCustomError("solvers", "unknown solver(s): {unknown}; known: {known}",
                                      {"unknown": ", ".join(unknown), "known": ", ".join(SOLVERS)})
        return _no_duplicates(names, "solvers")

    @field_validator("devices")
    @classmethod
    def _device_forms(cls, devices: list[str]) -> list[str]:
        for device in devices:
            try:
                if parse_device(device) == "auto":
                    raise DeviceError("'auto' is no sweep axis; expected 'cpu', 'cuda' or 'cuda:N'")
            except DeviceError as exc:
                raise PydanticCustomError("device", "{reason}", {"reason": str(exc)}) from None
        return _no_duplicates(devices, "device")

    @field_validator("n", "d", "seeds", "lr", "epochs", "scales")
    @classmethod
    def _distinct(cls, values: list, info) -> list:
        return _no_duplicates(values, info.field_name)

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, address: str | None, info: ValidationInfo) -> str | None:
        return dask_address_for(address, info.data.get("runner"))

    @model_validator(mode="after")
    def _whole_grid(self) -> "SweepSpec":
        generated = [name for name in GENERATED_AXES if name in self.model_fields_set]
        if self.data is not None and generated:
            raise PydanticCustomError(generated[0], "describes generated data and cannot be used with a file "
                                                    "(data); leave out {names}", {"names": ", ".join(generated)})
        if self.data is None and "standard" in self.scales:
            raise PydanticCustomError("scales", "'standard' is for a user's table (data); a generated grid keeps "
                                                "the tutorial's fits (none)", {})
        cells = len(expand_grid(self))
        if cells > MAX_CELLS:
            raise PydanticCustomError("grid", "the grid has {cells} cells; at most {most}",
                                      {"cells": cells, "most": MAX_CELLS})
        return self


GENERATED_AXES = ("n", "d", "seeds", "noise", "bias")


def _no_duplicates(values: list, field: str) -> list:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise PydanticCustomError(field, "duplicate value(s): {dupes}", {"dupes": ", ".join(dupes)})
    return values


def true_weights(d: int) -> list[float]:
    """The true weights of a d-feature sweep dataset: 2, -1, 2/3, -1/2, ... (2 for d = 1, the tutorial's)."""
    return [2.0 * (-1) ** j / (j + 1) for j in range(d)]


@dataclass(frozen=True)
class TableCells:
    """A user's table as a sweep's cells see it, once ingested: its size, the seed, and the
    closed form fitted on it, (intercept, *coef), which stands in for the truth."""

    n: int
    d: int
    seed: int
    reference: tuple[float, ...]

    def model_dump_json(self) -> str:
        return json.dumps({"n": self.n, "d": self.d, "seed": self.seed, "reference": self.reference})

    @property
    def truth(self) -> tuple[float, ...]:
        return self.reference


def data_specs(sweep: SweepSpec) -> list[DataSpec]:
    """Every dataset of the grid, once each: (n, d, seed), in that order (none for a table's sweep)."""
    if sweep.data is not None:
        return []
    return [DataSpec(n=n, weights=true_weights(d), bias=sweep.bias, noise=sweep.noise, seed=seed)
            for n, d, seed in product(sweep.n, sweep.d, sweep.seeds)]


@dataclass(frozen=True)
class Cell:
    """One fit of the grid: `spec.device` is the device asked for (resolved where it runs)."""

    index: int
    data: "DataSpec | TableCells"
    solver: str
    spec: SolverSpec
    scale: str = "none"  # "standard": an iterative solver fits standardised data (linreg.scaling)

    @property
    def device(self) -> str:
        return self.spec.device

    @property
    def truth(self) -> tuple[float, ...]:
        """(bias, *weights) the fit is scored against: the generating ones, or a table's closed form."""
        if isinstance(self.data, TableCells):
            return self.data.reference
        return (self.data.bias, *self.data.weights)


def expand_grid(sweep: SweepSpec, datasets: "list[DataSpec | TableCells] | None" = None) -> list[Cell]:
    """Every cell of the grid, numbered: data × solver × device × lr × epochs.

    The closed form has no hyperparameters: one cell per (data, device). NumPy
    solvers run on the CPU: one cell per hyperparameter set, on "cpu" (a
    skipped cell when the grid has no CPU device).

    Args:
        datasets: the grid's data; `data_specs(sweep)` by default, or for a table's sweep
            its `TableCells` once ingested (a placeholder of the same count before).
    """
    if datasets is None:
        datasets = data_specs(sweep) if sweep.data is None else [TableCells(1, 1, sweep.data.seed, ())]
    cells: list[Cell] = []
    for data, solver in product(datasets, sweep.solvers):
        scalings = sweep.scalings if SOLVERS[solver].iterative else ["none"]  # the closed form fits x as given
        for device in _devices_of(solver, sweep.devices):
            for spec, scale in product(_specs_of(solver, sweep), scalings):
                spec = spec.model_copy(update={"device": device})
                cells.append(Cell(len(cells), data, solver, spec, scale))
    return cells


def _devices_of(solver: str, devices: list[str]) -> list[str]:
    if SOLVERS[solver].cuda:
        return devices
    return ["cpu"] if "cpu" in devices else [devices[0]]  # the second form becomes a skipped cell


def _specs_of(solver: str, sweep: SweepSpec) -> list[SolverSpec]:
    info = SOLVERS[solver]
    if not info.iterative:
        return [info.defaults]
    base = info.defaults
    if sweep.batch_size is not None:
        base = base.model_copy(update={"batch_size": sweep.batch_size})
    return [base.model_copy(update={"lr": lr, "epochs": epochs})
            for lr, epochs in product(sweep.lr or [base.lr], sweep.epochs or [base.epochs])]


def chunk_cells(cells: list[Cell], chunks: int) -> list[list[Cell]]:
    """Split cells into at most `chunks` lists of about equal cost, longest first in each.

    Greedy longest-processing-time: each cell, costliest first, goes to the
    lightest chunk. Cost is `SolverInfo.relative_cost`; only the order matters.
    """
    if not cells:
        return []
    costs = {cell.index: SOLVERS[cell.solver].relative_cost(cell.data.n, cell.spec) + 1.0 for cell in cells}
    bins: list[tuple[float, list[Cell]]] = [(0.0, []) for _ in range(min(chunks, len(cells)))]
    for cell in sorted(cells, key=lambda c: -costs[c.index]):
        k = min(range(len(bins)), key=lambda i: bins[i][0])
        bins[k] = (bins[k][0] + costs[cell.index], bins[k][1] + [cell])
    return [chunk for _, chunk in bins if chunk]


# --- Running cells ---------------------------------------------------------------------------------

COLUMNS = ["cell", "n", "d", "seed", "solver", "device", "device_used", "lr", "epochs", "batch_size", "scale",
           "status", "reason", "seconds", "error", "final_loss", "diverged_epoch", "worker"]


def skip_reason(cell: Cell, fits_run_here: bool = True) -> str | None:
    """Why a cell cannot run, or None: a solver without a CUDA path off the CPU, or a device that
    `linreg.devices.planned_device` refuses (one this machine lacks, where the fits run here)."""
    if cell.device != "cpu" and not SOLVERS[cell.solver].cuda:
        return f"{cell.solver} runs on the CPU only"
    try:
        planned_device(cell.device, fits_run_here)
    except DeviceError as exc:
        return str(exc)
    return None


def run_cells(data, cells: list[Cell], progress: Callable[[int], None] | None = None,
              worker: str | None = None, scaling: Scaling | None = None) -> list[dict]:
    """Fit every cell on one dataset, in order; each gives one row (see COLUMNS).

    A cell whose device this machine lacks is `skipped` with the reason; one
    whose solver raises is `failed` with the error. Neither stops the others.

    Args:
        data: the cells' dataset (a `linreg.data.DataSource`).
        progress: called with the rows done, between epochs; it may raise to stop (Ctrl-C).
        scaling: the data's standard scaling: cells with scale "standard" fit the data standardised by
            it, and are reported in original units.
    """
    scaled = ScaledSource(data, scaling) if scaling is not None else None
    rows = []
    for cell in cells:
        reason = skip_reason(cell)
        if reason is not None:
            rows.append(cell_row(cell, status="skipped", reason=reason))
            continue
        spec = cell.spec.model_copy(update={"device": resolve_device(cell.device)})
        on_scaled = cell.scale == "standard" and SOLVERS[cell.solver].iterative
        if on_scaled and scaled is None:
            raise ValueError(f"cell {cell.index}: scale 'standard' needs the data's scaling")
        try:
            fit = SOLVERS[cell.solver].fit(scaled if on_scaled else data, spec, progress=progress)
            if on_scaled:
                fit = scaling.unscale(fit)
        except Exception as exc:  # a failed fit is a result; interrupts (BaseException) pass
            rows.append(cell_row(cell, status="failed", reason=f"{type(exc).__name__}: {exc}", device_used=spec.device))
            continue
        rows.append(fit_row(cell, fit, worker))
    return rows


def cell_row(cell: Cell, **values) -> dict:
    """A row with the cell's coordinates and NaN results, then `values`."""
    row = {
        "cell": cell.index, "n": cell.data.n, "d": cell.data.d, "seed": cell.data.seed, "solver": cell.solver,
        "device": cell.device, "device_used": None,
        "lr": cell.spec.lr if SOLVERS[cell.solver].iterative else math.nan,
        "epochs": cell.spec.epochs if SOLVERS[cell.solver].iterative else 0,
        "batch_size": cell.spec.batch_size if SOLVERS[cell.solver].minibatch else 0, "scale": cell.scale,
        "status": "ok", "reason": None, "seconds": math.nan, "error": math.nan, "final_loss": math.nan,
        "diverged_epoch": None, "worker": None,
    }
    row.update(values)
    return row


def fit_row(cell: Cell, fit, worker: str | None = None) -> dict:
    """The row of a finished fit: error is the largest absolute error of (bias, weights) against the
    truth (a table's: its closed form)."""
    truth = np.array(cell.truth, dtype=float)
    fitted = np.array([fit.intercept, *np.asarray(fit.coef).reshape(-1)], dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        error = float(np.max(np.abs(fitted - truth)))
    return cell_row(
        cell, device_used=fit.device, status=str(fit.status), reason=fit.message, seconds=fit.seconds,
        error=error if math.isfinite(error) else math.nan,
        final_loss=float(fit.loss_history[-1]) if len(fit.loss_history) else math.nan,
        diverged_epoch=fit.diverged_epoch, worker=worker or fit.worker,
    )


def results_frame(rows: list[dict]):
    """The sweep's rows as one DataFrame with COLUMNS, ordered by cell."""
    import pandas as pd  # deferred: the grid and its specs load without pandas

    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values("cell", kind="stable").reset_index(drop=True)


def frame_parquet(frame) -> bytes:
    """The DataFrame as parquet bytes (the caller writes them atomically)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def count_statuses(frame) -> dict[str, int]:
    """Cells per status, every status named (ok, diverged, skipped, failed), in that order."""
    return {status: int((frame["status"] == status).sum()) for status in ("ok", "diverged", "skipped", "failed")}


# --- Crossover -------------------------------------------------------------------------------------

NEVER = "never in range"


def timing_table(frame):
    """Median, min and max seconds over seeds and hyperparameters, per (solver, d, n, device kind)."""
    ran = frame[frame["status"].isin(["ok", "diverged"])].copy()
    ran["kind"] = np.where(ran["device"].str.startswith("cuda"), "cuda", "cpu")
    grouped = ran.groupby(["solver", "d", "n", "kind"])["seconds"]
    return grouped.agg(median="median", low="min", high="max", count="count").reset_index()


def crossover_table(frame):
    """For each (solver, d): the smallest n from which CUDA beats the CPU at every larger n of the grid.

    Compared on median seconds over seeds and hyperparameters, at the sizes
    where both devices ran. "never in range" when CUDA loses at the largest
    size; "no CUDA rows" (or "no CPU rows") when one side never ran.

    Returns:
        DataFrame: solver, d, crossover_n (None when never), crossover_elements (n·d),
        cpu_s and cuda_s at the largest n, verdict.
    """
    import pandas as pd  # deferred: the grid and its specs load without pandas

    table = timing_table(frame)
    rows = []
    for (solver, d), group in table.groupby(["solver", "d"], sort=False):
        wide = group.pivot(index="n", columns="kind", values="median").sort_index()
        row = {"solver": solver, "d": int(d), "crossover_n": None, "crossover_elements": None,
               "cpu_s": None, "cuda_s": None}
        missing = [kind for kind in ("cpu", "cuda") if kind not in wide or wide[kind].isna().all()]
        if missing:
            rows.append({**row, "verdict": f"no {missing[0].upper() if missing[0] == 'cpu' else 'CUDA'} rows"})
            continue
        both = wide.dropna(subset=["cpu", "cuda"])
        wins = (both["cuda"] < both["cpu"]).to_numpy()
        row.update(cpu_s=float(both["cpu"].iloc[-1]), cuda_s=float(both["cuda"].iloc[-1]))
        if not wins[-1]:
            rows.append({**row, "verdict": NEVER})
            continue
        first = len(wins) - int(np.argmin(wins[::-1])) if not wins.all() else 0  # start of the final run of wins
        n = int(both.index[first])
        verdict = f"CUDA faster from n = {n:,}" + (" (the smallest n swept)" if first == 0 else "")
        rows.append({**row, "crossover_n": n, "crossover_elements": n * int(d), "verdict": verdict})
    table = pd.DataFrame(rows, columns=["solver", "d", "crossover_n", "crossover_elements", "cpu_s", "cuda_s",
                                        "verdict"])
    return table.astype({"crossover_n": "Int64", "crossover_elements": "Int64", "cpu_s": float, "cuda_s": float})


# --- Names that moved --------------------------------------------------------------------------------

# The plots and tables that lived here until issue 21, by their old names, for the modules that still
# import them from here. Looked up on first use: the spec and the grid load without matplotlib.
_MOVED = {"plot_seconds": ("linreg.plots", "plot_sweep_seconds"), "plot_error": ("linreg.plots", "plot_sweep_error"),
          "frame_rows": ("linreg.report", "frame_rows"), "markdown_table": ("linreg.report", "sweep_table")}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, new_name = _MOVED[name]
    return getattr(importlib.import_module(module), new_name)
