"""A sweep's grid: its datasets, its cells (one fit each), and the cells cut into chunks of equal cost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

from linreg.solvers.base import SolverSpec
from linreg.solvers.registry import SOLVERS
from linreg.specs import DataSpec

if TYPE_CHECKING:  # the spec counts its grid's cells with expand_grid
    from linreg.sweep.spec import SweepSpec


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
                spec = spec.model_copy(update={"device": device, "fit_intercept": sweep.fit_intercept})
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
