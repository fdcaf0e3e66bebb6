"""The tutorial's `nn.Sequential(nn.Linear(d, 1))` section, trained full-batch with `optim.SGD`.

Full-batch, in memory or streamed from parquet (`_torch.full_batch`).
"""

from typing import Callable

from torch import nn

from linreg.data import DataSource
from linreg.solvers._torch import drop_intercept, full_batch, make_sgd, seeded_generator, seeded_linear
from linreg.solvers.base import FitResult, SolverSpec, iterative_result


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Fit `nn.Sequential(nn.Linear(d, 1))`, initialised from the data's seed, with `nn.MSELoss` and `optim.SGD`.

    Args:
        progress: called with the rows done: per chunk as it is read when streamed, per epoch in memory.
    """
    model = nn.Sequential(seeded_linear(data.d, seeded_generator(data.spec.seed))).to(spec.device)
    drop_intercept(model[0].bias, spec.fit_intercept)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd(model.parameters(), spec.lr, spec.device)
    model.train()
    # model.zero_grad() is what optimizer.zero_grad() does, without its profiler hook.
    losses, seconds = full_batch(
        data, spec, lambda x, y: loss_fn(y, model(x)), model.zero_grad, optimizer.step, progress
    )
    linear = model[0]
    return iterative_result(
        "torch_sequential", linear.weight.detach().cpu(), linear.bias.detach().cpu(), losses, seconds, spec.device
    )
