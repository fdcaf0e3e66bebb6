"""Standard scaling for the iterative solvers: fit on standardised data, report in original units.

On a user's table the features may differ by orders of magnitude (Longley: GNP in the
hundreds of thousands beside a year near 1950). Gradient descent at the tutorial's
learning rates then diverges, or crawls along the small directions. With
`RunSpec.scale = "standard"` each iterative solver fits

    y' = (y - mean_y) / sd_y  on  x'_j = (x_j - mean_j) / sd_j,

and its result is mapped back: w_j = w'_j sd_y / sd_j, b = mean_y + sd_y b' - Σ w_j mean_j.
The residuals of the two models differ only by the factor sd_y, so the loss history is
reported in the original units too (times sd_y²). Without an intercept nothing is
centred (centring would add one): x'_j = x_j / rms_j, y' = y / rms_y.

The means and spreads come from the training rows' moments (`linreg.moments`), one pass.
Moments summed in power-of-two units (values beyond ~1e154, whose squares overflow)
give the same means and spreads in the data's units, multiplied back exactly.
"""

import math
from dataclasses import replace
from typing import Iterable, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict

from linreg.moments import Moments
from linreg.solvers.base import FitResult


class Scaling(BaseModel):
    """Shift and scale of each feature and of the target. Small and hashable: it crosses task boundaries."""

    model_config = ConfigDict(frozen=True)

    mean_x: tuple[float, ...]
    scale_x: tuple[float, ...]
    mean_y: float
    scale_y: float

    @classmethod
    def of(cls, moments: Moments, fit_intercept: bool = True) -> "Scaling":
        """Standard scaling from the training rows' moments: means and (population) SDs, or
        without an intercept no shift and root-mean-square scales. A zero spread scales by 1."""
        if moments.scaled:
            return cls._of_power_scaled(moments, fit_intercept)
        n = moments.n
        if fit_intercept:
            mean_x, mean_y = np.asarray(moments.mean_x, dtype=float), float(moments.mean_y)
            var_x, var_y = np.diag(moments.sxx) / n, moments.syy / n
        else:
            mean_x, mean_y = np.zeros(len(moments.mean_x)), 0.0
            var_x = np.diag(moments.sxx) / n + np.asarray(moments.mean_x) ** 2
            var_y = moments.syy / n + moments.mean_y**2
        scale_x = np.sqrt(np.maximum(var_x, 0.0))
        scale_x = np.where(scale_x > 0, scale_x, 1.0)
        scale_y = math.sqrt(max(var_y, 0.0)) or 1.0
        return cls(mean_x=tuple(map(float, mean_x)), scale_x=tuple(map(float, scale_x)),
                   mean_y=mean_y, scale_y=scale_y)

    @classmethod
    def _of_power_scaled(cls, moments: Moments, fit_intercept: bool) -> "Scaling":
        """`of` for moments in power-of-two units: the scaling in those units, each value multiplied back
        (exact; the means and spreads are at most the largest |value|, so they stay in range)."""
        units = cls.of(replace(moments, x_exponent=None, y_exponent=0), fit_intercept)
        x_exponent, y_exponent = moments.exponents
        mean_x, scale_x = (np.ldexp(np.asarray(v), np.asarray(x_exponent)) for v in (units.mean_x, units.scale_x))
        return cls(mean_x=tuple(map(float, mean_x)), scale_x=tuple(map(float, scale_x)),
                   mean_y=float(np.ldexp(units.mean_y, y_exponent)), scale_y=float(np.ldexp(units.scale_y, y_exponent)))

    def transform(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((x - np.asarray(self.mean_x)) / np.asarray(self.scale_x),
                (y - self.mean_y) / self.scale_y)

    def unscale(self, fit: FitResult) -> FitResult:
        """`fit` (made on scaled data) in the original units: weights, bias and loss history."""
        scale_x = np.asarray(self.scale_x)
        with np.errstate(over="ignore", invalid="ignore"):
            coef = fit.coef * self.scale_y / scale_x
            intercept = self.mean_y + self.scale_y * fit.intercept - float(np.dot(coef, self.mean_x))
            square = self.scale_y * self.scale_y  # inf, not OverflowError as ** raises, past float64's top
            loss = np.asarray(fit.loss_history) * square
            if not math.isfinite(square):  # a target beyond ~1e154: multiply in an order that stays in range
                coef = fit.coef * (self.scale_y / scale_x)
                intercept = self.mean_y + self.scale_y * fit.intercept - math.fsum(coef * np.asarray(self.mean_x))
                loss = np.asarray(fit.loss_history) * self.scale_y * self.scale_y  # inf only where the loss is
        return replace(fit, coef=coef, intercept=float(intercept), loss_history=loss)


class ScaledSource:
    """A `linreg.data.DataSource` that standardises every chunk of another one as it is read."""

    def __init__(self, source, scaling: Scaling):
        self._source, self.scaling = source, scaling
        self._held: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def spec(self):
        return self._source.spec

    @property
    def n(self) -> int:
        return self._source.n

    @property
    def d(self) -> int:
        return self._source.d

    @property
    def row_groups(self) -> int:
        return self._source.row_groups

    def arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._held is None:
            held = self._source.arrays()
            if held is None:
                return None
            self._held = self.scaling.transform(*held)
        return self._held

    def iter_chunks(self, rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        chunks = self._source.iter_chunks() if rows is None else self._source.iter_chunks(rows)
        for x, y in chunks:
            yield self.scaling.transform(x, y)

    def iter_row_groups(self, order: Iterable[int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for x, y in self._source.iter_row_groups(order):
            yield self.scaling.transform(x, y)

    def head(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        return self.scaling.transform(*self._source.head(rows))
