"""Full-batch gradient descent with hand-written gradients, as the tutorial's NumPy section.

Data in memory runs the tutorial's loop. Data streamed from parquet (a
`ParquetSource`, larger than the memory budget) takes one pass over its row
groups per epoch, summing the loss and the gradient chunk by chunk before the
one step: the same full-batch descent, equal up to the order of float sums.
"""

from time import perf_counter
from typing import Callable

import numpy as np

from linreg.data import DataSource, random_state_after_data
from linreg.solvers.base import FitResult, SolverSpec, iterative_result


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Fit w and b by full-batch gradient descent with NumPy gradients, from the tutorial's initial draws.

    Args:
        progress: called with the rows done: per chunk as it is read when streamed, per epoch in memory.
    """
    # The tutorial draws w, then b, from the data's own RandomState stream.
    rng = random_state_after_data(data.spec)
    w = rng.standard_normal(data.d)
    b = rng.standard_normal(1)[0]
    if not spec.fit_intercept:
        b = 0.0  # drawn all the same, so the stream (and w) stay the tutorial's
    step_b = 1.0 if spec.fit_intercept else 0.0  # without an intercept b stays 0
    arrays = data.arrays()
    if arrays is None:
        return _fit_streamed(data, spec, w, b, progress, step_b)
    (x, y), n = arrays, data.n
    losses = np.empty(spec.epochs)
    start = perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(spec.epochs):
            # The tutorial's steps with the error as prediction - y, so that the gradients
            # -2 mean(x (y - y_pred)) and -2 mean(y - y_pred) are two BLAS products of it.
            error = x @ w
            error += b
            error -= y
            losses[t] = error @ error / n
            w = w - (2 * spec.lr / n) * (error @ x)
            b = b - step_b * (2 * spec.lr / n) * error.sum()
            if progress:
                progress(n)
    return iterative_result("numpy_gd", w, b, losses, perf_counter() - start, "cpu")


def streamed_gradient(data, w: np.ndarray, b: float, progress) -> tuple[float, np.ndarray, float]:
    """One pass over the chunks: sums of squared error, of error·x (d,) and of error."""
    squares, grad_w, grad_b = 0.0, np.zeros_like(w), 0.0
    for x, y in data.iter_chunks():
        error = x @ w
        error += b
        error -= y
        squares += error @ error
        grad_w += error @ x
        grad_b += error.sum()
        if progress:
            progress(len(y))
    return squares, grad_w, grad_b


def _fit_streamed(data, spec: SolverSpec, w: np.ndarray, b: float, progress, step_b: float = 1.0) -> FitResult:
    n = data.n
    losses = np.empty(spec.epochs)
    start = perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(spec.epochs):
            squares, grad_w, grad_b = streamed_gradient(data, w, b, progress)
            losses[t] = squares / n
            w = w - (2 * spec.lr / n) * grad_w
            b = b - step_b * (2 * spec.lr / n) * grad_b
    return iterative_result("numpy_gd", w, b, losses, perf_counter() - start, "cpu")
