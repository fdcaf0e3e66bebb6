"""Full-batch gradient descent with hand-written gradients, as the tutorial's NumPy section."""

from time import perf_counter

import numpy as np

from linreg.data import Dataset, random_state_after_data
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    # The tutorial draws w, then b, from the data's own RandomState stream.
    rng = random_state_after_data(data.spec)
    w = rng.standard_normal(data.d)
    b = rng.standard_normal(1)[0]
    x, y, n = data.x, data.y, data.n
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
            b = b - (2 * spec.lr / n) * error.sum()
    return iterative_result("numpy_gd", w, b, losses, perf_counter() - start, "cpu")
