"""The tutorial's `nn.Module` section: a subclass holding b and w as parameters, trained with `optim.SGD`.

Full-batch, in memory or streamed from parquet (`_torch.full_batch`).
"""

from typing import Callable

import torch
from torch import nn

from linreg.data import DataSource
from linreg.solvers._torch import affine, drop_intercept, full_batch, initial_bias_weights, make_sgd, seeded_generator
from linreg.solvers.base import FitResult, SolverSpec, iterative_result

# The tutorial's third torch section draws its (b, w) after two earlier sections.
TUTORIAL_POSITION = 2


class LinearRegression(nn.Module):
    """y = b + x @ w, with b (1,) and w (d, 1) drawn from `g`."""

    def __init__(self, d: int, g: torch.Generator, position: int = 0):
        super().__init__()
        b, w = initial_bias_weights(g, d, "cpu", position)
        self.b = nn.Parameter(b.detach())
        self.w = nn.Parameter(w.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return affine(x, self.w, self.b)


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Fit a `LinearRegression` module with `nn.MSELoss` and `optim.SGD` over its parameters.

    Args:
        progress: called with the rows done: per chunk as it is read when streamed, per epoch in memory.
    """
    model = LinearRegression(data.d, seeded_generator(data.spec.seed), TUTORIAL_POSITION).to(spec.device)
    drop_intercept(model.b, spec.fit_intercept)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd(model.parameters(), spec.lr, spec.device)
    model.train()
    # model.zero_grad() is what optimizer.zero_grad() does, without its profiler hook.
    losses, seconds = full_batch(
        data, spec, lambda x, y: loss_fn(y, model(x)), model.zero_grad, optimizer.step, progress
    )
    return iterative_result("torch_module", model.w.detach().cpu(), model.b.detach().cpu(), losses, seconds, spec.device)
