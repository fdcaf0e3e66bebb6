"""Synthetic data, drawn exactly as the tutorial draws it."""

from dataclasses import dataclass

import numpy as np

from linreg.specs import DataSpec

_SKIP_CHUNK = 1 << 20


@dataclass(frozen=True)
class Dataset:
    """Features and targets of one dataset.

    Attributes:
        x: (n, d) float64 features.
        y: (n,) float64 targets.
        spec: the spec that generated them.
    """

    x: np.ndarray
    y: np.ndarray
    spec: DataSpec

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def d(self) -> int:
        return self.x.shape[1]


def make_dataset(spec: DataSpec) -> Dataset:
    """Draw x ~ N(0, 1) of shape (n, d), then e of shape (n, 1), from RandomState(seed).

    With the default spec this is bit-identical to the tutorial: the first row is
    x = 0.4967..., y = 2.1334...
    """
    rng = np.random.RandomState(spec.seed)
    x = rng.standard_normal(size=(spec.n, spec.d))
    e = spec.noise * rng.standard_normal(size=(spec.n, 1))
    y = spec.bias + x @ np.asarray(spec.weights, dtype=np.float64) + e[:, 0]
    return Dataset(x=x, y=y, spec=spec)


def random_state_after_data(spec: DataSpec) -> np.random.RandomState:
    """Return RandomState(seed) advanced past the draws that made the data.

    The tutorial draws its NumPy initial parameters from the same stream right
    after the data, so `numpy_gd` continues it here. Skipping draws in chunks
    gives the same stream (RandomState carries its spare Gaussian between calls)
    without holding n * (d + 1) numbers at once.
    """
    rng = np.random.RandomState(spec.seed)
    remaining = spec.n * (spec.d + 1)
    while remaining:
        step = min(remaining, _SKIP_CHUNK)
        rng.standard_normal(size=step)
        remaining -= step
    return rng
