"""The reference fit's diagnostics as a run reports them: statsmodels' lower block, the most
influential rows by the table's own row numbers, and the covariance its standard errors use.

`linreg.diagnostics` computes them (streamed, exact); this module turns them into the
summary's models and maps row numbers among the rows fitted to the table's rows.
"""

from dataclasses import dataclass, replace
from typing import Callable, Iterable

import numpy as np
from pydantic import BaseModel

from linreg.data import table_positions
from linreg.diagnostics import COV_TYPES, Covariance, Diagnostics, diagnose, residual_tests
from linreg.least_squares import LeastSquares
from linreg.moments import Moments
from linreg.validation import ReportFloat

Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
TOP_ROWS = 5  # influential rows named in the report


Float = ReportFloat


class ResidualStatistics(BaseModel):
    """The lower block of statsmodels' OLS summary, for the reference's residuals (`linreg.diagnostics`)."""

    durbin_watson: Float
    omnibus: Float
    omnibus_pvalue: Float
    jarque_bera: Float
    jarque_bera_pvalue: Float
    skew: Float
    kurtosis: Float  # not excess: 3 for normal residuals


class InfluentialRow(BaseModel):
    """One of the rows that move the reference fit most.

    `row` is the table's data row, counted from 1 as the bad-data messages count them (for
    generated data, the dataset's row); `student_residual` is externally studentized.
    """

    row: int
    cooks_distance: Float
    leverage: Float
    student_residual: Float


@dataclass(frozen=True)
class RowNumbers:
    """How the rows fitted map to the table's rows: a holdout takes rows out by position.

    Attributes:
        rows: the table's rows (after any dropped), before the holdout.
        holdout: the fraction held out (0: none), split with `seed` (`linreg.data.holdout_mask`).
    """

    rows: int
    holdout: float = 0.0
    seed: int = 0

    def of(self, fitted: np.ndarray) -> np.ndarray:
        """Table row numbers (from 1) of rows numbered from 1 among the rows fitted."""
        fitted = np.asarray(fitted, dtype=np.int64)
        return table_positions(fitted - 1, self.rows, self.holdout, self.seed) + 1


@dataclass(frozen=True)
class Diagnosis:
    """What the run reports of its reference fit, and the arrays its figures draw."""

    residual_statistics: ResidualStatistics | None
    influential_rows: list[InfluentialRow] | None
    covariance: Covariance | None  # the one the coefficient table uses; None: the fit's own
    diagnostics: Diagnostics | None  # None for a rank-deficient fit: no unique influence


def diagnose_reference(solution: LeastSquares, moments: Moments, chunks: Chunks, numbers: RowNumbers,
                       cov_type: str = "nonrobust", seed: int = 0) -> Diagnosis:
    """The reference's diagnostics from one more pass over the rows fitted (two with a QR bread).

    A rank-deficient fit has no unique leverage or covariance: it gets the residual tests only.

    Raises:
        ValueError: an unknown `cov_type`.
    """
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type: {cov_type!r} is not one of {', '.join(COV_TYPES)}")
    if solution.rank_deficient:
        return Diagnosis(_residual_statistics(residual_tests(solution, moments, chunks)), None, None, None)
    found = diagnose(solution, moments, chunks, top=TOP_ROWS, seed=seed)
    found = _in_table_rows(found, numbers)
    influential = [InfluentialRow(row=int(r.row), cooks_distance=r.cooks_distance, leverage=r.leverage,
                                  student_residual=r.student_residual) for r in found.influential]
    return Diagnosis(_residual_statistics(found.residual_tests), influential,
                     found.covariances[cov_type] if cov_type != "nonrobust" else None, found)


def _residual_statistics(tests) -> ResidualStatistics:
    return ResidualStatistics(
        durbin_watson=tests.durbin_watson, omnibus=tests.omnibus, omnibus_pvalue=tests.omnibus_pvalue,
        jarque_bera=tests.jarque_bera, jarque_bera_pvalue=tests.jarque_bera_pvalue, skew=tests.skew,
        kurtosis=tests.kurtosis,
    )


def _in_table_rows(found: Diagnostics, numbers: RowNumbers) -> Diagnostics:
    """`found` with every row number the table's (a holdout's rows fitted are not the table's)."""
    if numbers.holdout <= 0.0:
        return found
    influential = tuple(replace(r, row=int(numbers.of([r.row])[0])) for r in found.influential)
    panels = replace(found.panels, rows=numbers.of(found.panels.rows))
    partial = replace(found.partial_regression, rows=numbers.of(found.partial_regression.rows))
    return replace(found, influential=influential, panels=panels, partial_regression=partial)
