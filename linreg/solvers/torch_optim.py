"""The tutorial's `nn.MSELoss` + `optim.SGD` section, on bare tensors b and w.

Full-batch, in memory or streamed from parquet (`_torch.full_batch`).
"""

from typing import Callable

from torch import nn

from linreg.data import DataSource
from linreg.solvers._torch import affine, drop_intercept, full_batch, initial_bias_weights, make_sgd, seeded_generator
from linreg.solvers.base import FitResult, SolverSpec, iterative_result

# The tutorial's second torch section draws its (b, w) after the first one's.
TUTORIAL_POSITION = 1


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Fit b and w as leaf tensors with `nn.MSELoss` and an `optim.SGD` over [b, w].

    Args:
        progress: called with the rows done: per chunk as it is read when streamed, per epoch in memory.
    """
    b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, spec.device, TUTORIAL_POSITION)
    drop_intercept(b, spec.fit_intercept)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd([b, w], spec.lr, spec.device)
    losses, seconds = full_batch(
        data, spec, lambda x, y: loss_fn(y, affine(x, w, b)), optimizer.zero_grad, optimizer.step, progress
    )
    return iterative_result("torch_optim", w.detach().cpu(), b.detach().cpu(), losses, seconds, spec.device)
