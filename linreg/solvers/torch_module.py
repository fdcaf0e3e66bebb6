"""An `nn.Module` subclass holding `b` and `w` as parameters, trained with `optim.SGD`.

Data streamed from parquet (a `ParquetSource`, larger than the memory budget)
takes one pass over its chunks per epoch, each chunk's backward() adding into
the gradients, then one step: the same full-batch descent
(`_torch.streamed_full_batch`).
"""

from typing import Callable

import torch
from torch import nn

from linreg.data import Dataset
from linreg.solvers._torch import (
    Stopwatch, affine, as_tensors, initial_bias_weights, make_sgd, seeded_generator, streamed_full_batch,
)
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec

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


def fit(data, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Args:
        progress: called with the rows of each chunk as it is read (streamed data only).
    """
    model = LinearRegression(data.d, seeded_generator(data.spec.seed), TUTORIAL_POSITION).to(spec.device)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd(model.parameters(), spec.lr, spec.device)
    model.train()
    if not isinstance(data, Dataset):
        with Stopwatch(spec.device) as clock:
            history = streamed_full_batch(
                data, spec.epochs, spec.device, lambda x, y: loss_fn(y, model(x)),
                model.zero_grad, optimizer.step, progress,
            )
        return iterative_result(
            "torch_module", model.w.detach().cpu(), model.b.detach().cpu(), torch.stack(history).cpu(),
            clock.seconds, spec.device,
        )
    x, y = as_tensors(data, spec.device)
    history = []
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            loss = loss_fn(y, model(x))
            model.zero_grad()  # what optimizer.zero_grad() does, without its profiler hook
            loss.backward()
            optimizer.step()
            history.append(loss.detach())  # stays on the device: no host sync per step
    losses = torch.stack(history).cpu()
    return iterative_result(
        "torch_module", model.w.detach().cpu(), model.b.detach().cpu(), losses, clock.seconds, spec.device
    )
