"""Autograd computes the gradients; the update is written by hand under `no_grad`."""

import torch

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, as_tensors, initial_bias_weights, seeded_generator
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device)
    losses = torch.empty(spec.epochs, device=spec.device)
    with Stopwatch(spec.device) as clock:
        for t in range(spec.epochs):
            loss = torch.mean((y - (b + x @ w)) ** 2)
            loss.backward()
            with torch.no_grad():
                b -= spec.lr * b.grad
                w -= spec.lr * w.grad
                losses[t] = loss
            b.grad.zero_()
            w.grad.zero_()
    return iterative_result("torch_autograd", w.detach().cpu(), b.detach().cpu(), losses.cpu(), clock.seconds, spec.device)
