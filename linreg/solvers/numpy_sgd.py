"""Minibatch SGD in NumPy: the DataLoader section's algorithm without torch.

Same batch size, a fresh shuffle every epoch, the last batch short when the
batch size does not divide n. Each epoch gathers the shuffled rows once, so a
step is a handful of NumPy calls on contiguous slices.

Data streamed from parquet (a `ParquetSource`, larger than the memory budget)
is shuffled in two levels: each epoch visits the row groups in a fresh random
order and shuffles the rows within each one, and batches do not cross row
groups (each group's last batch may be short). That approximates a full
shuffle: every row is seen once per epoch, in an order that mixes rows only
within a group. The rows were drawn i.i.d., so groups are alike and the fit
ends within the same minibatch noise of the closed form.
"""

from time import perf_counter
from typing import Callable

import numpy as np

from linreg.data import DataSource
from linreg.solvers.base import FitResult, SolverSpec, clip_batch_size, iterative_result


def with_intercept_column(x: np.ndarray, fit_intercept: bool = True) -> np.ndarray:
    """Return [x, 1]: (n, d + 1), so that one vector theta = [w, b] holds every parameter.

    Without an intercept the last column is 0: b then gets no gradient and stays at the 0 it starts from.
    """
    design = np.empty((x.shape[0], x.shape[1] + 1))
    design[:, :-1] = x
    design[:, -1] = 1.0 if fit_intercept else 0.0
    return design


def initial_theta(rng: np.random.Generator, d: int, fit_intercept: bool) -> np.ndarray:
    """[w, b] drawn from `rng`; b is 0 without an intercept (drawn all the same, so w starts alike)."""
    theta = rng.standard_normal(d + 1)
    if not fit_intercept:
        theta[-1] = 0.0
    return theta


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


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Fit [w, b] by minibatch SGD with hand-written gradients, reshuffled every epoch by a seeded Generator.

    Args:
        progress: called with the rows done: per row group as it is read when streamed, per epoch in memory.
    """
    rng = np.random.default_rng(data.spec.seed)
    batch_size = clip_batch_size(spec.batch_size, data.n)
    arrays = data.arrays()
    if arrays is None:
        return _fit_streamed(data, spec, rng, batch_size, progress)
    x, y = arrays
    design = with_intercept_column(x, spec.fit_intercept)
    theta = initial_theta(rng, data.d, spec.fit_intercept)
    losses = np.empty(spec.epochs)
    start = perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(spec.epochs):
            order = rng.permutation(data.n)
            losses[t] = sgd_epoch(design[order], y[order], theta, spec.lr, batch_size)
            if progress:
                progress(data.n)
    return iterative_result("numpy_sgd", theta[:-1], theta[-1], losses, perf_counter() - start, "cpu")


def streamed_sgd_epoch(source, theta: np.ndarray, lr: float, batch_size: int, rng, progress,
                       fit_intercept: bool = True) -> float:
    """One epoch over row groups in a random order, rows shuffled within each; updates `theta` in place.

    Returns:
        The epoch loss: batch MSEs taken before their steps, weighted by batch size.
    """
    total = 0.0
    for x, y in source.iter_row_groups(rng.permutation(source.row_groups)):
        order = rng.permutation(len(y))
        total += len(y) * sgd_epoch(with_intercept_column(x, fit_intercept)[order], y[order], theta, lr, min(batch_size, len(y)))
        if progress:
            progress(len(y))
    return total / source.n


def _fit_streamed(source, spec: SolverSpec, rng, batch_size: int, progress) -> FitResult:
    theta = initial_theta(rng, source.d, spec.fit_intercept)
    losses = np.empty(spec.epochs)
    start = perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(spec.epochs):
            losses[t] = streamed_sgd_epoch(source, theta, spec.lr, batch_size, rng, progress, spec.fit_intercept)
    return iterative_result("numpy_sgd", theta[:-1], theta[-1], losses, perf_counter() - start, "cpu")
