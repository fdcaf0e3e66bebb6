"""Pieces the torch solvers share: tensors, the full-batch loop, seeded initial values, timing."""

import logging
from time import perf_counter
from typing import Callable

import numpy as np
import torch
from torch import nn, optim
from torch.nn.utils import skip_init

from linreg.data import DataSource
from linreg.solvers.base import SolverSpec


def as_tensors(x: np.ndarray, y: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return x as (n, d) and y as (n, 1), float32 on `device`, as the tutorial converts them."""
    return chunk_tensors(x, y, device)


def chunk_tensors(x: np.ndarray, y: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x (k, d) and y (k,) as float32 tensors (k, d) and (k, 1) on `device`."""
    # astype copies: the arrays read from parquet are read-only, which torch warns about.
    x = torch.from_numpy(x.astype(np.float32)).to(device)
    y = torch.from_numpy(y.astype(np.float32).reshape(-1, 1)).to(device)
    return x, y


def streamed_full_batch(
    source,
    epochs: int,
    device: str,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    zero_grad: Callable[[], None],
    step: Callable[[], None],
    progress: Callable[[int], None] | None = None,
) -> list[torch.Tensor]:
    """Full-batch training over data streamed one chunk at a time.

    Each epoch clears the gradients, then for every chunk takes its mean loss
    scaled by rows / n and calls backward(), which adds into `.grad`: after the
    last chunk the gradients are those of the mean loss over all n rows. Then
    one step. The result is full-batch descent, up to the order of float sums.

    Args:
        source: anything with `n` and `iter_chunks()` yielding (x (k, d), y (k,)) arrays.
        loss_of: (x (k, d), y (k, 1)) tensors -> the chunk's mean loss.
        progress: called with the rows of each chunk once its gradient is in.

    Returns:
        The loss of each epoch, as device tensors.
    """
    history = []
    for _ in range(epochs):
        zero_grad()
        total = torch.zeros((), device=device)
        for x_chunk, y_chunk in source.iter_chunks():
            x, y = chunk_tensors(x_chunk, y_chunk, device)
            loss = loss_of(x, y) * (len(y_chunk) / source.n)
            loss.backward()
            total.add_(loss.detach())
            if progress:
                progress(len(y_chunk))
        step()
        history.append(total)
    return history


def full_batch(
    data: DataSource,
    spec: SolverSpec,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    zero_grad: Callable[[], None],
    step: Callable[[], None],
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, float]:
    """Full-batch gradient descent: each epoch one loss over all rows, one backward, one step.

    The four full-batch solvers (torch_autograd, torch_optim, torch_module,
    torch_sequential) differ only in how they build the model and take the step;
    each passes those in. Data in memory is converted to tensors once (the loss is
    compiled for a large CUDA tensor, `compiled_on_cuda`); streamed data goes through
    `streamed_full_batch`.

    Args:
        loss_of: (x (k, d), y (k, 1)) tensors -> mean loss.
        zero_grad: clears the parameters' gradients.
        step: updates the parameters from their gradients.
        progress: called with the rows done: per chunk when streamed, per epoch in memory.

    Returns:
        (losses (epochs,) on the CPU, seconds of the loop).
    """
    arrays = data.arrays()
    if arrays is None:
        with Stopwatch(spec.device) as clock:
            history = streamed_full_batch(data, spec.epochs, spec.device, loss_of, zero_grad, step, progress)
        return torch.stack(history).cpu(), clock.seconds
    x, y = as_tensors(*arrays, spec.device)  # moved to the device once
    loss_of = compiled_on_cuda(loss_of, x)
    history = []
    with Stopwatch(spec.device) as clock:
        for _ in range(spec.epochs):
            loss = loss_of(x, y)
            zero_grad()
            loss.backward()
            step()
            history.append(loss.detach())  # stays on the device: no host sync per step
            if progress:
                progress(len(x))
    return torch.stack(history).cpu(), clock.seconds


# On CUDA, from this many elements (n·d) up, the full-batch loss (and so its backward) is compiled
# with torch.compile: eager autograd reads and writes the n rows once per op (7% of copy
# bandwidth at n=1e8 on an H200, issue 13), the compiled step fuses them (22% there). Below it,
# the compile's seconds outweigh the gain. CPU fits are never compiled: their results stay as they were.
COMPILE_MIN_ELEMENTS = 1 << 24

log = logging.getLogger("linreg.solvers")


def compiled_on_cuda(
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`loss_of` compiled when x is a large CUDA tensor, else as it is.

    A compile that fails (no Triton, no C compiler on the machine) falls back
    to eager on its first call, with a warning: the fit itself never fails for it.
    The first call also runs one trial backward, because the backward graph may be
    compiled lazily, at the first `backward()`; the caller zeroes gradients after
    calling this and before its own backward, so the trial's gradients are discarded.
    """
    if x.device.type != "cuda" or x.numel() < COMPILE_MIN_ELEMENTS:
        return loss_of
    compiled = torch.compile(loss_of, fullgraph=False, dynamic=False)
    state = {"call": None}

    def call(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if state["call"] is None:
            try:
                compiled(a, b).backward()  # forward and backward both compile here
                state["call"] = compiled
            except Exception as exc:  # torch._dynamo / inductor errors carry many types
                log.warning("torch.compile failed (%s: %s); training eagerly", type(exc).__name__, exc)
                state["call"] = loss_of
        return state["call"](a, b)

    return call


def seeded_generator(seed: int) -> torch.Generator:
    """A private CPU generator: parallel solvers never share or touch global RNG state."""
    return torch.Generator().manual_seed(seed)


def initial_bias_weights(
    g: torch.Generator, d: int, device: str, position: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw b (1,) then w (d, 1) from `g`, in the tutorial's order, as leaf tensors on `device`.

    The tutorial seeds torch once and its sections draw (b, w) one after the
    other, so section k starts k * (1 + d) draws in. `position` = k skips those
    draws to reproduce that section's exact initial values, on a private generator.
    """
    if position:
        torch.randn(position * (1 + d), generator=g)
    b = torch.randn(1, generator=g).to(device).requires_grad_()
    w = torch.randn(d, 1, generator=g).to(device).requires_grad_()
    return b, w


def drop_intercept(bias: torch.Tensor, fit_intercept: bool) -> None:
    """Without an intercept: the bias becomes a constant 0 that no optimizer updates.

    It is still drawn first, so the generator's stream, and so every other initial
    value, is the same as with an intercept. Reported bias: 0.0.
    """
    if fit_intercept:
        return
    with torch.no_grad():
        bias.zero_()
    bias.requires_grad_(False)


def seeded_linear(d: int, g: torch.Generator) -> nn.Linear:
    """nn.Linear(d, 1) with its default init, U(-1/sqrt(d), 1/sqrt(d)), drawn from `g`.

    `skip_init` builds the layer without its usual draw from the global RNG.
    """
    layer = skip_init(nn.Linear, d, 1)
    bound = d**-0.5
    with torch.no_grad():
        nn.init.uniform_(layer.weight, -bound, bound, generator=g)
        nn.init.uniform_(layer.bias, -bound, bound, generator=g)
    return layer


def affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """b + x @ w as one op: x (n, d), w (d, 1), b (1,) -> (n, 1).

    Tiny tensors pay per op and per autograd node, not per element. With one
    feature the product is elementwise, and addcmul's backward is cheaper than
    a one-column matmul's (a BLAS call per gradient).
    """
    if x.shape[1] == 1:
        return torch.addcmul(b, x, w)
    return torch.addmm(b, x, w)


def make_sgd(params, lr: float, device: str) -> optim.SGD:
    """optim.SGD with the implementation its default would pick named up front.

    The default (foreach on CUDA, the per-tensor loop on CPU) is otherwise
    re-probed on every step(), a measurable cost when a step is microseconds.
    """
    return optim.SGD(params, lr=lr, foreach=device.startswith("cuda"))


class Stopwatch:
    """Wall time of a block, synchronising CUDA so that queued kernels are counted."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.seconds = 0.0

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
        self._start = perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = perf_counter() - self._start
