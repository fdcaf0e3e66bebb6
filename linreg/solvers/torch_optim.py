"""Autograd with `nn.MSELoss` and `optim.SGD` on bare tensors."""

import torch
from torch import nn

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, affine, as_tensors, initial_bias_weights, make_sgd, seeded_generator
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec

# The tutorial's second torch section draws its (b, w) after the first one's.
TUTORIAL_POSITION = 1


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device, TUTORIAL_POSITION)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd([b, w], spec.lr, spec.device)
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
