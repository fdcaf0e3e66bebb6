"""What every solver returns, and the bookkeeping they share."""

from dataclasses import dataclass, field

import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import Field

from linreg.validation import MAX_BATCH, MAX_EPOCHS, FrozenModel, range_check


if TYPE_CHECKING:
    from linreg.least_squares import LeastSquares

log = logging.getLogger("linreg.solvers")


class Status(StrEnum):
    """How a fit ended."""

    OK = "ok"  # finished with finite parameters
    DIVERGED = "diverged"  # the loss became non-finite
    FAILED = "failed"  # the solver raised
    # The closed form only: the design is numerically rank-deficient for float64 data; the
    # coefficients are the minimum-norm solution in standardised units, not a unique fit.
    RANK_DEFICIENT = "rank_deficient"


OK, DIVERGED, FAILED = Status.OK, Status.DIVERGED, Status.FAILED


class SolverSpec(FrozenModel):
    """Hyperparameters of one iterative solver; the closed form ignores them."""

    lr: Annotated[float, range_check(0.0, lo_open=True)] = Field(0.01, description="learning rate, > 0")
    epochs: Annotated[int, range_check(1, MAX_EPOCHS)] = Field(1000, description="passes over the data")
    batch_size: Annotated[int, range_check(1, MAX_BATCH)] = Field(
        50, description="minibatch size; a value above n is clipped to n with a warning"
    )
    device: str = Field("cpu", description="resolved torch device")
    fit_intercept: bool = Field(True, description="fit y = b + x·w; False fits y = x·w and reports b = 0.0")


@dataclass(frozen=True)
class FitResult:
    """The fitted state of one solver, named as scikit-learn names it.

    Attributes:
        solver: registry name.
        coef: (d,) fitted weights.
        intercept: fitted bias.
        loss_history: (epochs_run,) training MSE per epoch; empty for the closed form.
        seconds: wall time of the fit itself, excluding data loading.
        device: where it ran ("cpu", "cuda:0").
        epochs: epochs run (0 for the closed form).
        status: "ok", "diverged" (the loss became non-finite) or "failed" (it raised).
        message: why, when the status is not "ok".
        diverged_epoch: first epoch whose loss was non-finite, when diverged.
        worker: where the orchestrator ran the fit (a Dask worker's address), when known.
        least_squares: the closed form's full solution (inference, condition numbers, method).

    `message` also carries a warning for an `ok` fit that lost digits (the closed form on
    an ill-conditioned design).
    """

    solver: str
    coef: np.ndarray
    intercept: float
    loss_history: np.ndarray = field(default_factory=lambda: np.empty(0))
    seconds: float = 0.0
    device: str = "cpu"
    epochs: int = 0
    status: Status = Status.OK
    message: str | None = None
    diverged_epoch: int | None = None
    worker: str | None = None
    least_squares: "LeastSquares | None" = None


def iterative_result(
    solver: str, coef, intercept, losses, seconds: float, device: str
) -> FitResult:
    """Build a FitResult from a finished loop, marking divergence.

    Args:
        coef: (d,) array-like of final weights.
        intercept: final bias.
        losses: (epochs,) array-like of per-epoch losses.
    """
    history = np.asarray(losses, dtype=np.float64)
    coef = np.asarray(coef, dtype=np.float64).reshape(-1)
    intercept = float(np.asarray(intercept).reshape(-1)[0])
    bad = np.flatnonzero(~np.isfinite(history))
    status, message, diverged_at = OK, None, None
    if bad.size or not (np.isfinite(coef).all() and np.isfinite(intercept)):
        diverged_at = int(bad[0]) if bad.size else len(history) - 1
        status = DIVERGED
        message = f"loss became non-finite at epoch {diverged_at}; try a smaller lr"
    return FitResult(
        solver=solver, coef=coef, intercept=intercept, loss_history=history,
        seconds=seconds, device=device, epochs=len(history), status=status,
        message=message, diverged_epoch=diverged_at,
    )


def failed_result(solver: str, d: int, error: BaseException, device: str = "cpu") -> FitResult:
    """The result recorded for a solver that raised: NaN parameters and the error."""
    return FitResult(
        solver=solver, coef=np.full(d, np.nan), intercept=float("nan"), device=device,
        status=FAILED, message=f"{type(error).__name__}: {error}",
    )


def clip_batch_size(batch_size: int, n: int) -> int:
    """batch_size, or n (full batch) with a logged warning when it is larger."""
    if batch_size > n:
        log.warning("batch_size %d is larger than n=%d; using %d (full batch)", batch_size, n, n)
        return n
    return batch_size
