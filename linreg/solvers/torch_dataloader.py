"""Minibatch SGD through a `Dataset` and a shuffling `DataLoader`, as the tutorial's last section.

Data streamed from parquet (a `ParquetSource`, larger than the memory budget)
is shuffled in two levels: each epoch visits the row groups in a fresh random
order, and a DataLoader shuffles the rows within each one; batches do not
cross row groups (each group's last batch may be short). That approximates a
full shuffle; the rows were drawn i.i.d., so the fit ends within the same
minibatch noise of the closed form.

On CUDA the tensors live on the device, the permutation is still drawn by the
CPU generator (so a seed gives the same batches on every device) and moved
once per epoch, and each full-size step replays a captured CUDA graph (`StaticStep`).
"""

import logging
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from linreg.data import DataSource
from linreg.solvers._torch import (
    Stopwatch, as_tensors, chunk_tensors, drop_intercept, make_sgd, seeded_generator, seeded_linear,
)
from linreg.solvers.base import FitResult, SolverSpec, clip_batch_size, iterative_result

log = logging.getLogger("linreg.solvers")


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


def make_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, g: torch.Generator, warn: bool = True) -> DataLoader:
    """A DataLoader reshuffled every epoch by `g`, batch_size clipped to n (with a warning if `warn`)."""
    batch_size = clip_batch_size(batch_size, len(x)) if warn else min(batch_size, len(x))
    sampler = ShuffledBatches(len(x), batch_size, g, str(x.device))
    # The loader draws a worker seed from its generator each epoch: give it `g`, not global RNG.
    return DataLoader(PairDataset(x, y), batch_sampler=sampler, collate_fn=keep_batch, generator=g)


def loader_epoch(model: nn.Module, loader: DataLoader, loss_fn, optimizer, device: str,
                 static: "StaticStep | None" = None) -> torch.Tensor:
    """One pass over `loader`, a step per batch; returns the sum of batch losses weighted by batch size.

    The sum stays on the device: no host sync per step. With `static`, every
    full-size batch is copied into its buffers and stepped there (a CUDA graph
    replay on CUDA); a short last batch takes the eager step.
    """
    total = torch.zeros((), device=device)
    for x_batch, y_batch in loader:
        if static is not None and len(x_batch) == static.batch_size:
            static(x_batch, y_batch)
            continue
        eager_step(model, loss_fn, optimizer, x_batch, y_batch, total)
    if static is not None:
        total += static.take_total()
    return total


def eager_step(model: nn.Module, loss_fn, optimizer, x: torch.Tensor, y: torch.Tensor, total: torch.Tensor) -> None:
    """Forward, backward, SGD step; adds the batch's loss times its size into `total` (on the device)."""
    loss = loss_fn(y, model(x))
    model.zero_grad()  # what optimizer.zero_grad() does, without its profiler hook
    loss.backward()
    optimizer.step()
    total.add_(loss.detach(), alpha=len(x))


class StaticStep:
    """The step of one full-size batch on fixed buffers: captured as a CUDA graph on CUDA.

    A step of batch 50 is a dozen tiny kernels, each paying a launch (issue 13:
    200 epochs of n=1000 took 2.9 s on CUDA eagerly, 0.48 s replayed from a
    graph). Each batch is copied into `x` and `y`, then the captured forward,
    backward, SGD step and loss sum replay as one launch. With `capture=False`
    (the CPU dry run) the same buffers and step run eagerly: the same batches
    and the same arithmetic, which the tests compare against `eager_step`.
    """

    def __init__(self, model: nn.Module, loss_fn, optimizer, batch_size: int, d: int, device: str, capture: bool):
        self.model, self.loss_fn, self.optimizer, self.batch_size = model, loss_fn, optimizer, batch_size
        self.x = torch.zeros(batch_size, d, device=device)
        self.y = torch.zeros(batch_size, 1, device=device)
        self.total = torch.zeros((), device=device)
        self.graph = self._capture(device) if capture else None

    def _capture(self, device: str) -> "torch.cuda.CUDAGraph":
        """Warm up on a side stream (as torch.cuda.graphs asks), restore the parameters, then capture."""
        saved = [p.detach().clone() for p in self.model.parameters()]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step()
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.no_grad():
            for p, value in zip(self.model.parameters(), saved):
                p.copy_(value)
        self.total.zero_()
        graph = torch.cuda.CUDAGraph()
        self.model.zero_grad(set_to_none=True)  # the graph's backward allocates the gradients in its pool
        with torch.cuda.graph(graph):
            self._step()
        return graph

    def _step(self) -> None:
        eager_step(self.model, self.loss_fn, self.optimizer, self.x, self.y, self.total)

    def __call__(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> None:
        self.x.copy_(x_batch)
        self.y.copy_(y_batch)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()

    def take_total(self) -> torch.Tensor:
        """The loss sum since the last call, as a new tensor; the buffer restarts at zero."""
        total = self.total.clone()
        self.total.zero_()
        return total


def static_step(model, loss_fn, optimizer, batch_size: int, d: int, device: str) -> StaticStep | None:
    """A CUDA-graph step on CUDA; None on the CPU (its loop is already the fastest there) or when
    capture fails (then the eager loop runs, with a warning)."""
    if not device.startswith("cuda"):
        return None
    try:
        return StaticStep(model, loss_fn, optimizer, batch_size, d, device, capture=True)
    except Exception as exc:  # capture is best effort: the eager loop gives the same steps
        log.warning("CUDA graph capture failed (%s: %s); stepping eagerly", type(exc).__name__, exc)
        model.zero_grad(set_to_none=True)
        return None


def fit(data: DataSource, spec: SolverSpec, progress: Callable[[int], None] | None = None) -> FitResult:
    """Fit `nn.Sequential(nn.Linear(d, 1))` by minibatch SGD over a shuffling `DataLoader` of a `Dataset`.

    Args:
        progress: called with the rows done: per row group as it is read when streamed, per epoch in memory.
    """
    g = seeded_generator(data.spec.seed)
    model = nn.Sequential(seeded_linear(data.d, g)).to(spec.device)
    drop_intercept(model[0].bias, spec.fit_intercept)
    loss_fn = nn.MSELoss(reduction="mean")
    optimizer = make_sgd(model.parameters(), spec.lr, spec.device)
    model.train()
    arrays = data.arrays()
    if arrays is None:
        return _fit_streamed(data, spec, g, model, loss_fn, optimizer, progress)
    x, y = as_tensors(*arrays, spec.device)  # device-resident: batches are gathered there
    loader = make_loader(x, y, spec.batch_size, g)
    static = static_step(model, loss_fn, optimizer, loader.batch_sampler.batch_size, data.d, spec.device)
    history = []
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            history.append(loader_epoch(model, loader, loss_fn, optimizer, spec.device, static))
            if progress:
                progress(len(x))
    return _result(model, torch.stack(history).cpu() / len(x), clock.seconds, spec.device)


def streamed_epoch(source, model, loss_fn, optimizer, batch_size: int, g: torch.Generator, device: str, progress):
    """Row groups in a random order, each shuffled by its own loader; the weighted sum of batch losses."""
    total = torch.zeros((), device=device)
    for x_chunk, y_chunk in source.iter_row_groups(torch.randperm(source.row_groups, generator=g).tolist()):
        x, y = chunk_tensors(x_chunk, y_chunk, device)
        total += loader_epoch(model, make_loader(x, y, batch_size, g, warn=False), loss_fn, optimizer, device)
        if progress:
            progress(len(y_chunk))
    return total


def _fit_streamed(source, spec: SolverSpec, g, model, loss_fn, optimizer, progress) -> FitResult:
    batch_size = clip_batch_size(spec.batch_size, source.n)
    history = []
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            history.append(streamed_epoch(source, model, loss_fn, optimizer, batch_size, g, spec.device, progress))
    return _result(model, torch.stack(history).cpu() / source.n, clock.seconds, spec.device)


def _result(model: nn.Sequential, losses: torch.Tensor, seconds: float, device: str) -> FitResult:
    linear = model[0]
    return iterative_result(
        "torch_dataloader", linear.weight.detach().cpu(), linear.bias.detach().cpu(), losses, seconds, device,
    )
