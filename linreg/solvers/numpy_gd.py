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
    x, y = data.x, data.y
    losses = np.empty(spec.epochs)
    start = perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(spec.epochs):
            residual = y - (b + x @ w)
            losses[t] = np.mean(residual**2)
            dw = -2 * np.mean(x * residual[:, None], axis=0)
            db = -2 * np.mean(residual)
            w = w - spec.lr * dw
            b = b - spec.lr * db
    return iterative_result("numpy_gd", w, b, losses, perf_counter() - start, "cpu")
