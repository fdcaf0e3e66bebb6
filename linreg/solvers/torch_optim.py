"""Autograd with `nn.MSELoss` and `optim.SGD` on bare tensors.

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

# The tutorial's second torch section draws its (b, w) after the first one's.
TUTORIAL_POSITION = 1


def fit(data, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Args:
        progress: called with the rows of each chunk as it is read (streamed data only).
    """
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device, TUTORIAL_POSITION)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd([b, w], spec.lr, spec.device)
    if not isinstance(data, Dataset):
        with Stopwatch(spec.device) as clock:
            history = streamed_full_batch(
                data, spec.epochs, spec.device, lambda x, y: loss_fn(y, affine(x, w, b)),
                optimizer.zero_grad, optimizer.step, progress,
            )
        losses = torch.stack(history).cpu()
        return iterative_result("torch_optim", w.detach().cpu(), b.detach().cpu(), losses, clock.seconds, spec.device)
    x, y = as_tensors(data, spec.device)
    history = []
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            loss = loss_fn(y, affine(x, w, b))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(loss.detach())  # stays on the device: no host sync per step
    losses = torch.stack(history).cpu()
    return iterative_result("torch_optim", w.detach().cpu(), b.detach().cpu(), losses, clock.seconds, spec.device)
