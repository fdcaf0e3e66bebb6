"""Autograd computes the gradients; the update is written by hand under `no_grad`."""

import torch
import torch.nn.functional as F

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, affine, as_tensors, initial_bias_weights, seeded_generator
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device)
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
