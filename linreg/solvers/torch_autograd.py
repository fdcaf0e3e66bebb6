"""Autograd computes the gradients; the update is written by hand under `no_grad`.

Data streamed from parquet (a `ParquetSource`, larger than the memory budget)
takes one pass over its chunks per epoch, each chunk's backward() adding into
the gradients, then one step: the same full-batch descent
(`_torch.streamed_full_batch`).
"""

from typing import Callable

import torch
import torch.nn.functional as F

from linreg.data import Dataset
from linreg.solvers._torch import (
    Stopwatch, affine, as_tensors, initial_bias_weights, seeded_generator, streamed_full_batch,
)
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec


def fit(data, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Args:
        progress: called with the rows of each chunk as it is read (streamed data only).
    """
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device)
    if not isinstance(data, Dataset):
        return _fit_streamed(data, spec, b, w, progress)
    x, y = as_tensors(data, spec.device)
    history = []
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            # mse_loss is the tutorial's mean((y - y_hat) ** 2) as one op: tiny tensors pay per op.
            loss = F.mse_loss(affine(x, w, b), y)
            loss.backward()
            with torch.no_grad():
                b.sub_(b.grad, alpha=spec.lr)
                w.sub_(w.grad, alpha=spec.lr)
            # None rather than zero_(): the next backward hands its gradient over without a copy.
            b.grad = w.grad = None
            history.append(loss.detach())  # stays on the device: no host sync per step
    losses = torch.stack(history).cpu()
    return iterative_result("torch_autograd", w.detach().cpu(), b.detach().cpu(), losses, clock.seconds, spec.device)


def _fit_streamed(data, spec: SolverSpec, b: torch.Tensor, w: torch.Tensor, progress) -> FitResult:
    def zero_grad():
        b.grad = w.grad = None

    def step():
        with torch.no_grad():
            b.sub_(b.grad, alpha=spec.lr)
            w.sub_(w.grad, alpha=spec.lr)

    with Stopwatch(spec.device) as clock:
        history = streamed_full_batch(
            data, spec.epochs, spec.device, lambda x, y: F.mse_loss(affine(x, w, b), y), zero_grad, step, progress
        )
    losses = torch.stack(history).cpu()
    return iterative_result("torch_autograd", w.detach().cpu(), b.detach().cpu(), losses, clock.seconds, spec.device)
