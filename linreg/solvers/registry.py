"""The one registry of solvers.

Modules are imported on first use, so validating a solver name does not pay
for importing torch. Adding a solver means one module with `fit(data, spec)`
and one line here.
"""

from dataclasses import dataclass
from importlib import import_module
from typing import Callable

from linreg.specs import SolverSpec


@dataclass(frozen=True)
class SolverInfo:
    """A registered solver: where its `fit` lives and its tutorial defaults."""

    name: str
    module: str
    defaults: SolverSpec
    uses_torch: bool
    iterative: bool = True

    @property
    def fit(self) -> Callable:
        return import_module(self.module).fit

    def rows_streamed(self, data, spec: SolverSpec) -> int:
        """Rows a fit of `data` will read from parquet: n per epoch when streamed, 0 in memory."""
        from linreg.data import Dataset

        if isinstance(data, Dataset):
            return 0
        return data.n * (spec.epochs if self.iterative else 1)


def _entry(name: str, uses_torch: bool, iterative: bool = True, **defaults) -> tuple[str, SolverInfo]:
    return name, SolverInfo(name, f"linreg.solvers.{name}", SolverSpec(**defaults), uses_torch, iterative)


SOLVERS: dict[str, SolverInfo] = dict(
    [
        _entry("closed_form", uses_torch=False, iterative=False),
        _entry("numpy_gd", uses_torch=False, lr=0.01, epochs=1000),
        _entry("torch_autograd", uses_torch=True, lr=0.1, epochs=1000),
        _entry("torch_optim", uses_torch=True, lr=0.01, epochs=1000),
        _entry("torch_module", uses_torch=True, lr=0.01, epochs=1000),
        _entry("torch_sequential", uses_torch=True, lr=0.01, epochs=1000),
        _entry("torch_dataloader", uses_torch=True, lr=0.01, epochs=1000, batch_size=50),
        _entry("numpy_sgd", uses_torch=False, lr=0.01, epochs=1000, batch_size=50),
    ]
)
