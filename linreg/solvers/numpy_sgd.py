"""Minibatch SGD in NumPy: the DataLoader section's algorithm without torch.

Same batch size, a fresh shuffle every epoch, the last batch short when the
batch size does not divide n. Each epoch gathers the shuffled rows once, so a
step is a handful of NumPy calls on contiguous slices.
"""

import logging
from time import perf_counter

import numpy as np

from linreg.data import Dataset
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec

log = logging.getLogger("linreg.solvers.numpy_sgd")


def clip_batch_size(batch_size: int, n: int) -> int:
    """batch_size, or n (full batch) with a logged warning when it is larger."""
    if batch_size > n:
        log.warning("batch_size %d is larger than n=%d; using %d (full batch)", batch_size, n, n)
        return n
    return batch_size


def with_intercept_column(x: np.ndarray) -> np.ndarray:
    """Return [x, 1]: (n, d + 1), so that one vector theta = [w, b] holds every parameter."""
    design = np.empty((x.shape[0], x.shape[1] + 1))
    design[:, :-1] = x
    design[:, -1] = 1.0
    return design


def sgd_epoch(design: np.ndarray, y: np.ndarray, theta: np.ndarray, lr: float, batch_size: int) -> float:
    """One pass over already-shuffled rows, updating `theta` (d + 1,) in place.

    Returns:
        The epoch loss: the batch MSEs, each taken before its step, weighted by batch size.
    """
    total = 0.0
    for start in range(0, len(y), batch_size):
        rows = design[start : start + batch_size]
        residual = rows @ theta
        residual -= y[start : start + batch_size]
        total += residual @ residual
        residual *= 2.0 * lr / len(residual)
        theta -= residual @ rows
    return total / len(y)


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    rng = np.random.default_rng(data.spec.seed)
    batch_size = clip_batch_size(spec.batch_size, data.n)
    design = with_intercept_column(data.x)
    theta = rng.standard_normal(data.d + 1)
    losses = np.empty(spec.epochs)
    start = perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(spec.epochs):
            order = rng.permutation(data.n)
            losses[t] = sgd_epoch(design[order], data.y[order], theta, spec.lr, batch_size)
    return iterative_result("numpy_sgd", theta[:-1], theta[-1], losses, perf_counter() - start, "cpu")
