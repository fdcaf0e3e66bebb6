"""Autograd with `nn.MSELoss` and `optim.SGD` on bare tensors."""

import torch
from torch import nn, optim

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, as_tensors, initial_bias_weights, seeded_generator
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec

# The tutorial's second torch section draws its (b, w) after the first one's.
TUTORIAL_POSITION = 1


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device, TUTORIAL_POSITION)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = optim.SGD([b, w], lr=spec.lr)
    losses = torch.empty(spec.epochs, device=spec.device)
    with Stopwatch(spec.device) as clock:
        for t in range(spec.epochs):
            loss = loss_fn(y, b + x @ w)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[t] = loss.detach()
    return iterative_result("torch_optim", w.detach().cpu(), b.detach().cpu(), losses.cpu(), clock.seconds, spec.device)
