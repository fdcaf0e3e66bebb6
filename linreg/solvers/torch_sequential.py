"""`nn.Sequential(nn.Linear(d, 1))` trained full-batch with `optim.SGD`."""

import torch
from torch import nn

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, as_tensors, make_sgd, seeded_generator, seeded_linear
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    model = nn.Sequential(seeded_linear(data.d, seeded_generator(data.spec.seed))).to(spec.device)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd(model.parameters(), spec.lr, spec.device)
    history = []
    model.train()
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            loss = loss_fn(y, model(x))
            model.zero_grad()  # what optimizer.zero_grad() does, without its profiler hook
            loss.backward()
            optimizer.step()
            history.append(loss.detach())  # stays on the device: no host sync per step
    linear = model[0]
    return iterative_result(
        "torch_sequential", linear.weight.detach().cpu(), linear.bias.detach().cpu(), torch.stack(history).cpu(),
        clock.seconds, spec.device,
    )
