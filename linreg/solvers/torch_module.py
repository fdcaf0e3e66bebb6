"""An `nn.Module` subclass holding `b` and `w` as parameters, trained with `optim.SGD`."""

import torch
from torch import nn

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, affine, as_tensors, initial_bias_weights, make_sgd, seeded_generator
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


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    model = LinearRegression(data.d, seeded_generator(data.spec.seed), TUTORIAL_POSITION).to(spec.device)
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
    losses = torch.stack(history).cpu()
    return iterative_result(
        "torch_module", model.w.detach().cpu(), model.b.detach().cpu(), losses, clock.seconds, spec.device
    )
