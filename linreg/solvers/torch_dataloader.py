"""Minibatch SGD through a `Dataset` and a shuffling `DataLoader`, as the tutorial's last section."""

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from linreg.data import Dataset
from linreg.solvers._torch import Stopwatch, as_tensors, make_sgd, seeded_generator, seeded_linear
from linreg.solvers.base import FitResult, iterative_result
from linreg.specs import SolverSpec

log = logging.getLogger("linreg.solvers.torch_dataloader")


class PairDataset(TorchDataset):
    """(x[i], y[i]) pairs; `__getitems__` fetches a whole batch with one gather per tensor.

    The DataLoader calls `__getitems__` when it exists, which replaces the
    per-sample fetch-and-collate (the tutorial loop's main cost) with one gather.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __getitems__(self, indices: torch.Tensor):
        return self.x[indices], self.y[indices]


class ShuffledBatches(Sampler):
    """A batch sampler: each epoch a fresh permutation of range(n), cut into index tensors.

    What `shuffle=True` with `batch_size` does, but each batch arrives as one
    tensor on the data's device instead of a list of Python ints to convert.
    The last batch is short when batch_size does not divide n (drop_last=False).
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: str):
        self.n, self.batch_size, self.generator, self.device = n, batch_size, generator, device

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        permutation = torch.randperm(self.n, generator=self.generator).to(self.device)
        return iter(permutation.split(self.batch_size))


def keep_batch(batch):
    """collate_fn for a dataset that already returns whole batches."""
    return batch


def make_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, g: torch.Generator) -> DataLoader:
    """A DataLoader reshuffled every epoch by `g`, batch_size clipped to n."""
    if batch_size > len(x):
        log.warning("batch_size %d is larger than n=%d; using %d (full batch)", batch_size, len(x), len(x))
        batch_size = len(x)
    sampler = ShuffledBatches(len(x), batch_size, g, str(x.device))
    # The loader draws a worker seed from its generator each epoch: give it `g`, not global RNG.
    return DataLoader(PairDataset(x, y), batch_sampler=sampler, collate_fn=keep_batch, generator=g)


def fit(data: Dataset, spec: SolverSpec) -> FitResult:
    x, y = as_tensors(data, spec.device)
    g = seeded_generator(data.spec.seed)
    model = nn.Sequential(seeded_linear(data.d, g)).to(spec.device)
    loader = make_loader(x, y, spec.batch_size, g)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd(model.parameters(), spec.lr, spec.device)
    history = []
    model.train()
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            # Sum of batch losses weighted by batch size, kept on the device: no host sync per step.
            total = torch.zeros((), device=spec.device)
            for x_batch, y_batch in loader:
                loss = loss_fn(y_batch, model(x_batch))
                model.zero_grad()  # what optimizer.zero_grad() does, without its profiler hook
                loss.backward()
                optimizer.step()
                total.add_(loss.detach(), alpha=len(x_batch))
            history.append(total)
    losses = torch.stack(history).cpu() / len(x)
    linear = model[0]
    return iterative_result(
        "torch_dataloader", linear.weight.detach().cpu(), linear.bias.detach().cpu(), losses,
        clock.seconds, spec.device,
    )
