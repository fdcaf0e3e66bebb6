"""Running a sweep's cells: a row per cell (fitted, skipped or failed), and the rows as one DataFrame."""

import io
import math
from typing import Callable

import numpy as np

from linreg.devices import DeviceError, planned_device
from linreg.scaling import ScaledSource, Scaling
from linreg.solvers.registry import SOLVERS
from linreg.sweep.grid import Cell

COLUMNS = ["cell", "n", "d", "seed", "solver", "device", "device_used", "lr", "epochs", "batch_size", "scale",
           "status", "reason", "seconds", "error", "final_loss", "diverged_epoch", "worker"]


def planned_cell(cell: Cell, fits_run_here: bool = True) -> tuple[str | None, str | None]:
    """The device a cell's fit runs on, or why it cannot run: a solver without a CUDA path off
    the CPU, or a device that `linreg.devices.planned_device` refuses (one this machine lacks,
    where the fits run here).

    Returns:
        (device, None) for a cell that can run; (None, the reason) for one that cannot.
    """
    if cell.device != "cpu" and not SOLVERS[cell.solver].cuda:
        return None, f"{cell.solver} runs on the CPU only"
    try:
        return planned_device(cell.device, fits_run_here, cell.data.n * cell.data.d)[0], None
    except DeviceError as exc:
        return None, str(exc)


def skip_reason(cell: Cell, fits_run_here: bool = True) -> str | None:
    """Why a cell cannot run where its fits are planned, or None (`planned_cell`)."""
    return planned_cell(cell, fits_run_here)[1]


def run_cells(data, cells: list[Cell], progress: Callable[[int], None] | None = None,
              worker: str | None = None, scaling: Scaling | None = None) -> list[dict]:
    """Fit every cell on one dataset, in order; each gives one row (see COLUMNS).

    Each cell's device is decided here, on the machine that fits it (a Dask worker sees its own
    GPUs). A cell whose device this machine lacks is `skipped` with the reason; one whose
    solver raises is `failed` with the error. Neither stops the others.

    Args:
        data: the cells' dataset (a `linreg.data.DataSource`).
        progress: called with the rows done, between epochs; it may raise to stop (Ctrl-C).
        scaling: the data's standard scaling: cells with scale "standard" fit the data standardised by
            it, and are reported in original units.
    """
    scaled = ScaledSource(data, scaling) if scaling is not None else None
    rows = []
    for cell in cells:
        device, reason = planned_cell(cell)
        if reason is not None:
            rows.append(cell_row(cell, status="skipped", reason=reason))
            continue
        spec = cell.spec.model_copy(update={"device": device})
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
