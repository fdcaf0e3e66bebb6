"""The one registry of solvers.

Modules are imported on first use, so validating a solver name does not pay
for importing torch. Adding a solver takes a module with `fit(data, spec, progress=None)`,
a line here, and, for an iterative solver, a tutorial loop to race in `bench/solvers.py`
(docs/library.md, "Add a solver in three steps").
"""

from dataclasses import dataclass
from importlib import import_module
from typing import Callable

from linreg.solvers.base import SolverSpec


@dataclass(frozen=True)
class SolverInfo:
    """A registered solver: where its `fit` lives, its tutorial defaults, and what it can do.

    Attributes:
        uses_torch: fits with torch (its per-step cost, its intra-op threads).
        cuda: has a CUDA path, so a `cuda` device reaches it; False runs on the CPU only.
        iterative: trains for epochs (the closed form does not).
        minibatch: takes `batch_size` rows per step.
    """

    name: str
    module: str
    defaults: SolverSpec
    uses_torch: bool
    iterative: bool = True
    minibatch: bool = False
    cuda: bool = False

    @property
    def fit(self) -> Callable:
        return import_module(self.module).fit

    def relative_cost(self, n: int, spec: SolverSpec) -> float:
        """A rough cost of a fit in memory, to start the longest first: its Python-level steps.

        Tiny fits are bound by per-step overhead, not by n: a torch step (autograd,
        optimizer) costs about ten NumPy steps. Only the order matters; at the
        tutorial's size this ranks torch_dataloader (5.7 s here) far above the rest (< 0.3 s each).
        """
        if not self.iterative:
            return 0.0
        steps = spec.epochs * (-(-n // min(spec.batch_size, n)) if self.minibatch else 1)
        return steps * (1.0 if self.uses_torch else 0.1)

    def rows_streamed(self, data, spec: SolverSpec) -> int:
        """Rows a fit of `data` (a `linreg.data.DataSource`) will read from parquet:
        n per epoch when streamed, 0 in memory."""
        if data.arrays() is not None:
            return 0
        return data.n * (spec.epochs if self.iterative else 1)


def _entry(
    name: str, uses_torch: bool, iterative: bool = True, minibatch: bool = False, cuda: bool = False, **defaults
) -> tuple[str, SolverInfo]:
    return name, SolverInfo(
        name, f"linreg.solvers.{name}", SolverSpec(**defaults), uses_torch, iterative, minibatch, cuda
    )


# What every other solver is compared with.
REFERENCE = "closed_form"

SOLVERS: dict[str, SolverInfo] = dict(
    [
        # NumPy with a CUDA path: its moments are summed on the device (linreg.moments).
        _entry("closed_form", uses_torch=False, iterative=False, cuda=True),
        _entry("numpy_gd", uses_torch=False, lr=0.01, epochs=1000),
        _entry("torch_autograd", uses_torch=True, cuda=True, lr=0.1, epochs=1000),
        _entry("torch_optim", uses_torch=True, cuda=True, lr=0.01, epochs=1000),
        _entry("torch_module", uses_torch=True, cuda=True, lr=0.01, epochs=1000),
        _entry("torch_sequential", uses_torch=True, cuda=True, lr=0.01, epochs=1000),
        _entry("torch_dataloader", uses_torch=True, cuda=True, minibatch=True, lr=0.01, epochs=1000, batch_size=50),
        _entry("numpy_sgd", uses_torch=False, minibatch=True, lr=0.01, epochs=1000, batch_size=50),
    ]
)
