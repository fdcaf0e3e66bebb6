"""`nn.Sequential(nn.Linear(d, 1))` trained full-batch with `optim.SGD`.

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
    Stopwatch, as_tensors, make_sgd, seeded_generator, seeded_linear, streamed_full_batch,
)
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec


def fit(data, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Args:
        progress: called with the rows of each chunk as it is read (streamed data only).
    """
    model = nn.Sequential(seeded_linear(data.d, seeded_generator(data.spec.seed))).to(spec.device)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd(model.parameters(), spec.lr, spec.device)
    model.train()
    if not isinstance(data, Dataset):
        with Stopwatch(spec.device) as clock:
            history = streamed_full_batch(
                data, spec.epochs, spec.device, lambda x, y: loss_fn(y, model(x)),
                model.zero_grad, optimizer.step, progress,
            )
        return _result(model, history, clock.seconds, spec.device)
    x, y = as_tensors(data, spec.device)
    history = []
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            loss = loss_fn(y, model(x))
            model.zero_grad()  # what optimizer.zero_grad() does, without its profiler hook
            loss.backward()
            optimizer.step()
            history.append(loss.detach())  # stays on the device: no host sync per step
    return _result(model, history, clock.seconds, spec.device)


def _result(model: nn.Sequential, history: list[torch.Tensor], seconds: float, device: str) -> FitResult:
    linear = model[0]
    return iterative_result(
        "torch_sequential", linear.weight.detach().cpu(), linear.bias.detach().cpu(), torch.stack(history).cpu(),
        seconds, device,
    )
