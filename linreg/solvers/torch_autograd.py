"""The tutorial's autograd section: autograd computes the gradients, the update is written by hand.

Full-batch, in memory or streamed from parquet (`_torch.full_batch`).
"""

from typing import Callable

import torch
import torch.nn.functional as F

from linreg.data import DataSource
from linreg.solvers._torch import affine, drop_intercept, full_batch, initial_bias_weights, seeded_generator
from linreg.solvers.base import FitResult, SolverSpec, iterative_result


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Fit b and w as leaf tensors: `loss.backward()`, then `b -= lr * b.grad` under `no_grad`.

    Args:
        progress: called with the rows done: per chunk as it is read when streamed, per epoch in memory.
    """
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device)
    drop_intercept(b, spec.fit_intercept)

    def zero_grad() -> None:
        # None rather than zero_(): the next backward hands its gradient over without a copy.
        b.grad = w.grad = None

    def step() -> None:
        with torch.no_grad():
            if b.requires_grad:
                b.sub_(b.grad, alpha=spec.lr)
            w.sub_(w.grad, alpha=spec.lr)

    # mse_loss is the tutorial's mean((y - y_hat) ** 2) as one op: tiny tensors pay per op.
    losses, seconds = full_batch(data, spec, lambda x, y: F.mse_loss(affine(x, w, b), y), zero_grad, step, progress)
    return iterative_result("torch_autograd", w.detach().cpu(), b.detach().cpu(), losses, seconds, spec.device)
