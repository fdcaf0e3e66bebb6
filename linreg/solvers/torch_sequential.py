"""`nn.Sequential(nn.Linear(d, 1))` trained full-batch with `optim.SGD`."""

import torch
from torch import nn, optim

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, as_tensors, seeded_linear, seeded_generator
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    model = nn.Sequential(seeded_linear(data.d, seeded_generator(data.spec.seed))).to(spec.device)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = optim.SGD(model.parameters(), lr=spec.lr)
    losses = torch.empty(spec.epochs, device=spec.device)
    model.train()
    with Stopwatch(spec.device) as clock:
        for t in range(spec.epochs):
            loss = loss_fn(y, model(x))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[t] = loss.detach()
    linear = model[0]
    return iterative_result(
        "torch_sequential", linear.weight.detach().cpu(), linear.bias.detach().cpu(), losses.cpu(),
        clock.seconds, spec.device,
    )
