"""Diagnostics of the reference least-squares fit, as a statistician reads them, streamed and exact.

What statsmodels prints below an OLS summary (Durbin–Watson, Omnibus, Jarque–Bera, skew,
kurtosis), heteroscedasticity-robust standard errors (HC0–HC3, as statsmodels' `cov_type` and
R's `sandwich::vcovHC`), each row's influence (leverage, Cook's distance, externally studentized
residual), and the arrays behind R's four `plot(lm)` panels and the partial-regression plots.
Every one is computed from passes over `chunks()`, a fresh iterator of (x (k, d), y (k,)) in row
order, holding one chunk at a time, and equals what the same formulas give on all rows in memory:

- **The bread** (X̃ᵀX̃)⁻¹, X̃ = [1, x] (or x without an intercept), is held as the upper-triangular
  factor R of the standardised design Z = [1, (x − x̄)/s] (or x/s), ZᵀZ = RᵀR (`Bread`). The
  reference (`LeastSquares`) keeps no factor, so R is taken here: when the moments' correlation
  matrix has condition number κ ≤ MAX_MOMENTS_CONDITION, as the Cholesky factor of that matrix
  (no pass: the moments are summed already, and about κ·u of relative error leaves 10 digits or
  more); otherwise by a TSQR pass over the data in extended precision (`linreg.least_squares.RFactor`),
  whose error does not square the design's condition number, as the normal equations' does.
- **One pass** then gives each row's residual e_i, in the centred form (y − ȳ) − (x − x̄)·w plus
  the constant ȳ − b − x̄·w (which, unlike y − b − x·w, does not cancel for data far from the
  origin), its whitened row q_i = R⁻ᵀz_i and its leverage h_i = ‖q_i‖², and feeds them to each
  statistic's running state: Pébay's pairwise update of the residuals' centred power sums, the
  Durbin–Watson sum carrying the previous chunk's last residual, the meats Σ ω_i e_i² q_i q_iᵀ,
  a running top k by Cook's distance, and the rows of a deterministic sample.

Data whose squares leave float64's range are fitted in power-of-two units (`linreg.moments`):
the passes run in the same units, and the residuals are further divided by the power of two
nearest their root mean square, so that their fourth powers neither overflow nor underflow.
Results are multiplied back to the data's units, exactly.

Statistics that do not exist are NaN, without a warning: every residual statistic and standard
error when the fit has no residual degrees of freedom (n = p: the residuals are rounding); the
externally studentized residual when n − p = 1; the Omnibus test below 8 rows (scipy's skewtest);
and, for a row whose leverage is 1 (within LEVERAGE_TOLERANCE: its residual is rounding, and
every ratio with 1 − h_i is noise), its Cook's distance, standardized and studentized residuals,
and the HC2 and HC3 covariances as a whole (a weight 1/(1 − h_i) is infinite, as in R's sandwich).
A rank-deficient fit has no bread: everything but `residual_tests` refuses it.

- `results`: the frozen results (`ResidualTests`, `Covariance`, `InfluentialRow`, `Panels`,
  `PartialRegression`, `Diagnostics`);
- `chunks`: the `Chunks` a caller streams, each checked and brought into the moments' units;
- `bread`: `Bread` and `bread_of`, from the moments' Cholesky factor or a QR pass;
- `passes`: the fit prepared in the moments' units, and one pass feeding each block of rows to sinks;
- `residuals`: the residuals' running moments and the tests on them (`skewtest_z`, `kurtosistest_z`);
- `covariance`: the meats and the nonrobust and HC0–HC3 covariances;
- `influence`: Cook's distance, studentized residuals and the running top k;
- `samples`: the deterministic sample, and the panels' and partial-regression arrays on it;
- here: the public functions, each one pass (two with a QR bread) over the sinks it needs.
"""

import numpy as np

from linreg.diagnostics.bread import MAX_MOMENTS_CONDITION, Bread, bread_of
from linreg.diagnostics.chunks import Chunks
from linreg.diagnostics.covariance import COV_TYPES, _covariance_of, _Meats
from linreg.diagnostics.influence import DEFAULT_TOP, _influential_of, _TopRows
from linreg.diagnostics.passes import LEVERAGE_TOLERANCE, _prepare, _run
from linreg.diagnostics.residuals import _ResidualSums, _tests_of, kurtosistest_z, skewtest_z
from linreg.diagnostics.results import (
    Covariance, Diagnostics, InfluentialRow, Panels, PartialRegression, ResidualTests,
)
from linreg.diagnostics.samples import DEFAULT_MAX_ROWS, SAMPLE_SEED_SALT, _panels_of, _partial_of, _Sample
from linreg.least_squares import LeastSquares
from linreg.moments import Moments

__all__ = [
    "residual_tests", "robust_covariance", "influential_rows", "diagnostic_panels", "partial_regression",
    "diagnose", "bread_of", "Bread", "Chunks",
    "ResidualTests", "Covariance", "InfluentialRow", "Panels", "PartialRegression", "Diagnostics",
    "skewtest_z", "kurtosistest_z",
    "COV_TYPES", "MAX_MOMENTS_CONDITION", "LEVERAGE_TOLERANCE", "DEFAULT_TOP", "DEFAULT_MAX_ROWS",
    "SAMPLE_SEED_SALT",
]


def residual_tests(solution: LeastSquares, moments: Moments, chunks: Chunks) -> ResidualTests:
    """Durbin–Watson, Omnibus, Jarque–Bera, skew and kurtosis of the fit's residuals, in one pass.

    Args:
        solution: the reference fit (`linreg.least_squares.solve_least_squares`); may be rank-deficient.
        moments: the moments of the same rows (`linreg.moments.accumulate`).
        chunks: returns a fresh iterator of (x (k, d), y (k,)) over every row, in row order.

    Raises:
        ValueError: the fit, the moments and the chunks do not describe the same rows.
    """
    fit = _prepare(solution, moments, chunks, need_bread=False)
    sums = _ResidualSums()
    _run(fit, chunks, [sums])
    return _tests_of(sums, fit.dof)


def robust_covariance(solution: LeastSquares, moments: Moments, chunks: Chunks, cov_type: str = "HC1") -> Covariance:
    """The parameters' covariance and standard errors of one of COV_TYPES, in one pass (two when
    the bread needs a QR pass): statsmodels' `cov_type`, R's `sandwich::vcovHC(type=...)`.

    "nonrobust" is s²(X̃ᵀX̃)⁻¹; HCk is (X̃ᵀX̃)⁻¹ (Σ ω_i e_i² x̃_i x̃_iᵀ) (X̃ᵀX̃)⁻¹ with ω_i = 1 (HC0),
    n/(n − p) (HC1), 1/(1 − h_i) (HC2), 1/(1 − h_i)² (HC3).

    Args: as `residual_tests`, and cov_type, one of COV_TYPES.

    Raises:
        ValueError: an unknown cov_type, a rank-deficient fit, or fit, moments and chunks that differ.
    """
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type: {cov_type!r} is not one of {', '.join(COV_TYPES)}")
    fit = _prepare(solution, moments, chunks)
    sums, meats = _ResidualSums(), _Meats(fit.p)
    _run(fit, chunks, [sums, meats])
    return _covariance_of(cov_type, fit, meats, sums.squares)


def influential_rows(solution: LeastSquares, moments: Moments, chunks: Chunks,
                     top: int = DEFAULT_TOP) -> tuple[InfluentialRow, ...]:
    """The `top` rows of largest Cook's distance, largest first, each with its data row number (from
    1, in streamed order), leverage and externally studentized residual; one pass keeping a running
    top `top` (two with a QR bread). Ties go to the earlier row; rows of leverage 1 (Cook's NaN) last.

    Raises:
        ValueError: top < 1, a rank-deficient fit, or fit, moments and chunks that differ.
    """
    _check_positive("top", top)
    fit = _prepare(solution, moments, chunks)
    sums, best = _ResidualSums(), _TopRows(top)
    _run(fit, chunks, [sums, best])
    return _influential_of(best, sums.squares, fit)


def diagnostic_panels(solution: LeastSquares, moments: Moments, chunks: Chunks,
                      max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0) -> Panels:
    """The arrays of R's four `plot(lm)` panels for at most `max_rows` rows (every row when n ≤
    max_rows, else a deterministic sample: `samples._Sample`), in one pass (two with a QR bread).

    Raises:
        ValueError: max_rows < 1, seed < 0, a rank-deficient fit, or fit, moments and chunks that differ.
    """
    fit, sums, sample = _sampled(solution, moments, chunks, max_rows, seed)
    return _panels_of(sample, sums.squares, fit)


def partial_regression(solution: LeastSquares, moments: Moments, chunks: Chunks,
                       max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0) -> PartialRegression:
    """Added-variable arrays on the rows `diagnostic_panels` takes (same max_rows and seed), the
    auxiliary regressions being the full data's, from the bread (no regression on the sample).

    Raises:
        ValueError: as `diagnostic_panels`.
    """
    fit, _, sample = _sampled(solution, moments, chunks, max_rows, seed)
    return _partial_of(sample, solution, fit)


def diagnose(solution: LeastSquares, moments: Moments, chunks: Chunks, top: int = DEFAULT_TOP,
             max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0) -> Diagnostics:
    """Every diagnostic above, every covariance type, from one pass (two with a QR bread).

    Raises:
        ValueError: as the functions it combines.
    """
    _check_positive("top", top)
    _check_sample(max_rows, seed)
    fit = _prepare(solution, moments, chunks)
    sums, meats, best = _ResidualSums(), _Meats(fit.p), _TopRows(top)
    sample = _Sample(fit.n, max_rows, seed, fit.bread)
    _run(fit, chunks, [sums, meats, best, sample])
    return Diagnostics(
        residual_tests=_tests_of(sums, fit.dof),
        covariances={t: _covariance_of(t, fit, meats, sums.squares) for t in COV_TYPES},
        influential=_influential_of(best, sums.squares, fit),
        panels=_panels_of(sample, sums.squares, fit),
        partial_regression=_partial_of(sample, solution, fit),
    )


def _sampled(solution, moments, chunks, max_rows: int, seed: int):
    _check_sample(max_rows, seed)
    fit = _prepare(solution, moments, chunks)
    sums, sample = _ResidualSums(), _Sample(fit.n, max_rows, seed, fit.bread)
    _run(fit, chunks, [sums, sample])
    return fit, sums, sample


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: {value!r} is not a whole number of rows, at least 1")


def _check_sample(max_rows: int, seed: int) -> None:
    _check_positive("max_rows", max_rows)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: {seed!r} is not a whole number at least 0")
