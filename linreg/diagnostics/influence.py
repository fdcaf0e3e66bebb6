"""Each row's influence: Cook's distance, standardized and studentized residuals, and the running top k."""

import math

import numpy as np

from linreg.diagnostics.passes import _Fit, _one_minus, _Rows
from linreg.diagnostics.results import InfluentialRow

DEFAULT_TOP = 5


def _cook_scores(residual: np.ndarray, leverage: np.ndarray) -> np.ndarray:
    """e_i² h_i / (1 − h_i)²: Cook's distance up to the common factor 1/(p s²); NaN where h_i is 1."""
    with np.errstate(invalid="ignore"):
        return residual**2 * leverage / _one_minus(leverage) ** 2


class _TopRows:
    """The running top k rows by Cook's distance (ties to the earlier row; NaN after every number)."""

    def __init__(self, k: int):
        self.k = k
        self.rows = np.zeros(0, dtype=np.int64)
        self.residual, self.leverage, self.score = (np.zeros(0) for _ in range(3))

    def add(self, rows: _Rows) -> None:
        score = _cook_scores(rows.residual, rows.leverage)
        key = np.where(np.isnan(score), -np.inf, score)
        if len(key) > self.k:  # every row tied with the k-th largest is kept, for the tie-break
            keep = key >= np.partition(key, len(key) - self.k)[len(key) - self.k]
        else:
            keep = np.ones(len(key), dtype=bool)
        index = np.flatnonzero(keep)
        self._merge(rows.start + index + 1, rows.residual[index], rows.leverage[index], score[index])

    def _merge(self, numbers, residual, leverage, score) -> None:
        numbers = np.concatenate([self.rows, numbers])
        residual, leverage, score = (np.concatenate(pair) for pair in
                                     ((self.residual, residual), (self.leverage, leverage), (self.score, score)))
        order = np.lexsort((numbers, -np.where(np.isnan(score), -np.inf, score)))[: self.k]
        self.rows, self.residual, self.leverage, self.score = numbers[order], residual[order], leverage[order], score[order]


def _influence_of(residual, leverage, squares: float, fit: _Fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Cook's distance, standardized residual, externally studentized residual) of rows with
    these residuals (in the pass's units) and leverages, given the RSS `squares` (same units)."""
    dof = fit.dof
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma2 = squares / dof if dof > 0 else math.nan
        one_minus = _one_minus(leverage)
        standardized = residual / np.sqrt(sigma2 * one_minus)
        cooks = _cook_scores(residual, leverage) / (fit.p * sigma2)
        left_out = (squares - residual**2 / one_minus) / (dof - 1) if dof > 1 else np.full(len(residual), math.nan)
        student = residual / np.sqrt(left_out * one_minus)
    return cooks, standardized, student


def _influential_of(top: _TopRows, squares: float, fit: _Fit) -> tuple[InfluentialRow, ...]:
    cooks, _, student = _influence_of(top.residual, top.leverage, squares, fit)
    residual = np.ldexp(top.residual, fit.y_exponent)
    return tuple(InfluentialRow(int(r), float(c), float(h), float(t), float(e))
                 for r, c, h, t, e in zip(top.rows, cooks, top.leverage, student, residual))
