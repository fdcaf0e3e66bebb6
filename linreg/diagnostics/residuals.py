"""The residuals' running moments and Durbin–Watson sum, and the normality tests on them (`ResidualTests`)."""

import math

import numpy as np
from scipy.special import chdtrc

from linreg.diagnostics.passes import _Rows
from linreg.diagnostics.results import ResidualTests


class _ResidualSums:
    """Running n, mean and centred power sums M2, M3, M4 of the residuals (Pébay's pairwise update),
    Σ e² and the Durbin–Watson numerator, carrying the last residual across chunks."""

    def __init__(self):
        self.n, self.mean, self.m2, self.m3, self.m4 = 0, 0.0, 0.0, 0.0, 0.0
        self.squares, self.differences, self.last = 0.0, 0.0, None

    def add(self, rows: _Rows) -> None:
        e = rows.residual
        if not len(e):
            return
        steps = np.diff(e) if self.last is None else np.diff(e, prepend=self.last)
        self.differences += float(steps @ steps)
        self.squares += float(e @ e)
        self.last = float(e[-1])
        mean = float(np.mean(e))
        c = e - mean
        c2 = c * c
        self._merge(len(e), mean, float(np.sum(c2)), float(c2 @ c), float(c2 @ c2))

    def _merge(self, nb: int, mean_b: float, m2b: float, m3b: float, m4b: float) -> None:
        na, n = self.n, self.n + nb
        delta = mean_b - self.mean
        m2a, m3a = self.m2, self.m3
        self.m4 += (m4b + delta**4 * na * nb * (na * na - na * nb + nb * nb) / n**3
                    + 6 * delta**2 * (na * na * m2b + nb * nb * m2a) / n**2 + 4 * delta * (na * m3b - nb * m3a) / n)
        self.m3 += m3b + delta**3 * na * nb * (na - nb) / n**2 + 3 * delta * (na * m2b - nb * m2a) / n
        self.m2 += m2b + delta**2 * na * nb / n
        self.mean += delta * nb / n
        self.n = n


def _tests_of(sums: _ResidualSums, dof: int) -> ResidualTests:
    n = sums.n
    if dof <= 0:  # an exact fit: its residuals are rounding
        return ResidualTests(n, *(math.nan,) * 7)
    with np.errstate(divide="ignore", invalid="ignore"):
        m2, m3, m4 = (np.float64(m) / n for m in (sums.m2, sums.m3, sums.m4))
        zero = m2 <= (np.finfo(np.float64).eps * sums.mean) ** 2  # as scipy.stats.skew: nothing to measure
        skew = math.nan if zero else float(m3 / m2**1.5)
        kurtosis = math.nan if zero else float(m4 / m2**2)
        omnibus = skewtest_z(n, skew) ** 2 + kurtosistest_z(n, kurtosis) ** 2
        jb = n / 6.0 * (skew**2 + (kurtosis - 3.0) ** 2 / 4.0)
        dw = float(np.float64(sums.differences) / sums.squares)
    return ResidualTests(n, dw, float(omnibus), float(chdtrc(2, omnibus)), float(jb), float(chdtrc(2, jb)),
                         skew, kurtosis)


def skewtest_z(n: int, skew: float) -> float:
    """D'Agostino's z of the skewness test (`scipy.stats.skewtest`) from n and the biased skewness;
    NaN below 8 rows."""
    if n < 8 or not math.isfinite(skew):
        return math.nan
    y = skew * math.sqrt((n + 1) * (n + 3) / (6.0 * (n - 2)))
    beta2 = 3.0 * (n**2 + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2.0) * (n + 5) * (n + 7) * (n + 9))
    w2 = -1 + math.sqrt(2 * (beta2 - 1))
    delta = 1 / math.sqrt(0.5 * math.log(w2))
    alpha = math.sqrt(2.0 / (w2 - 1))
    y = 1.0 if y == 0 else y
    return delta * math.log(y / alpha + math.sqrt((y / alpha) ** 2 + 1))


def kurtosistest_z(n: int, kurtosis: float) -> float:
    """Anscombe and Glynn's z of the kurtosis test (`scipy.stats.kurtosistest`) from n and the biased,
    non-excess kurtosis; NaN below 5 rows (scipy warns below 20; this does not)."""
    if n < 5 or not math.isfinite(kurtosis):
        return math.nan
    mean = 3.0 * (n - 1) / (n + 1)
    variance = 24.0 * n * (n - 2) * (n - 3) / ((n + 1) * (n + 1.0) * (n + 3) * (n + 5))
    x = (kurtosis - mean) / variance**0.5
    sqrt_beta1 = 6.0 * (n * n - 5 * n + 2) / ((n + 7) * (n + 9)) * (6.0 * (n + 3) * (n + 5) / (n * (n - 2) * (n - 3))) ** 0.5
    a = 6.0 + 8.0 / sqrt_beta1 * (2.0 / sqrt_beta1 + (1 + 4.0 / sqrt_beta1**2) ** 0.5)
    denominator = 1 + x * (2 / (a - 4.0)) ** 0.5
    if denominator == 0:
        return math.nan
    term2 = math.copysign(((1 - 2.0 / a) / abs(denominator)) ** (1 / 3), denominator)
    return (1 - 2 / (9.0 * a) - term2) / (2 / (9.0 * a)) ** 0.5
