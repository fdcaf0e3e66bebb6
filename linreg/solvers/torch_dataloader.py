"""Minibatch SGD through a `Dataset` and a shuffling `DataLoader`, as the tutorial's last section."""

import logging

import torch
from torch import nn, optim
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, as_tensors, seeded_linear, seeded_generator
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec

log = logging.getLogger("linreg.solvers.torch_dataloader")


class PairDataset(TorchDataset):
    """(x[i], y[i]) pairs; `__getitems__` fetches a whole batch with one index op.

    The DataLoader calls `__getitems__` when it exists, which replaces the
    per-sample fetch-and-collate (the tutorial loop's main cost) with one gather.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, device=self.x.device)
        return self.x[index], self.y[index]


def keep_batch(batch):
    """collate_fn for a dataset that already returns whole batches."""
    return batch


def make_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, g: torch.Generator) -> DataLoader:
    """A DataLoader reshuffled every epoch by `g`, batch_size clipped to n."""
    if batch_size > len(x):
        log.warning("batch_size %d is larger than n=%d; using %d (full batch)", batch_size, len(x), len(x))
        batch_size = len(x)
    return DataLoader(PairDataset(x, y), batch_size=batch_size, shuffle=True, generator=g, collate_fn=keep_batch)


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    g = seeded_generator(data.spec.seed)
    model = nn.Sequential(seeded_linear(data.d, g)).to(spec.device)
    loader = make_loader(x, y, spec.batch_size, g)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = optim.SGD(model.parameters(), lr=spec.lr)
    losses = torch.zeros(spec.epochs, device=spec.device)
    model.train()
    with Stopwatch(spec.device) as clock:
        for t in range(spec.epochs):
            for x_batch, y_batch in loader:
                loss = loss_fn(y_batch, model(x_batch))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                # Epoch loss is the size-weighted mean of batch losses, kept on device: no host sync per step.
                losses[t] += loss.detach() * (len(x_batch) / len(x))
    linear = model[0]
    return iterative_result(
        "torch_dataloader", linear.weight.detach().cpu(), linear.bias.detach().cpu(), losses.cpu(),
        clock.seconds, spec.device,
    )
