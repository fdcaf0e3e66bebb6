"""The reference least-squares fit: fast when the data allow it, right to the data's digits when not.

Two paths, chosen per dataset from the moments (`linreg.moments.Moments`), which
every fit gathers anyway:

- **normal equations** (the fast path): read off the moments, no further pass.
  Taken only when the correlation matrix's condition number is at most
  `MAX_CONDITION` (the normal equations square the design's) and the digits they
  keep, estimated from that condition number, the moments' own rounding and the
  means' amplification of the intercept's error, are at least `WARN_DIGITS`. When
  only the residual sum of squares would cancel (a near-exact fit), it is summed
  from the residuals in one more pass.
- **QR** (the stable path): one more pass over the data, in row blocks, each
  centred by the moments' means and scaled by their spreads, reduced by a
  Householder QR in extended precision (`np.longdouble`, 64-bit mantissa on
  x86) and merged into one R factor: a TSQR, the same for data in memory, a
  streamed file or moments summed on CUDA. Its error does not square the
  condition number, and the extended arithmetic keeps rounding below the
  float64 data's own.

Either way the result carries the design's condition numbers (columns scaled to
unit norm, with and without the intercept column), the digits the float64 data
determine (`expected_digits`), and a warning when they are fewer than
`WARN_DIGITS`. On the QR path those digits are measured, not bounded: the same
pass reduces a twin of the data with every x and y value perturbed at float64's
rounding (relative 2⁻⁵³, seeded), and the two solutions' difference is what the
data's own rounding does to the coefficients; a first-order bound per coefficient
(u·‖R⁻¹ row‖·‖R‖·‖θ‖ / |θ_j|, the intercept with the uncentred design's κ) caps it.
(The textbook worst case u·κ(1 + κ tan θ) promises 0 digits on NIST's Filip,
where 7.6 are right; this estimate promises 6.) A design that is numerically rank-deficient for float64 is said
to be so: it gets the minimum-norm solution in standardised units, named as such,
and the columns involved (by the user's names when the data has them). A fit with
no residual degrees of freedom (n = p) is exact and says it has no standard errors.

Data whose squares leave float64's range (|values| beyond ~1e154) are fitted in
the power-of-two units their moments were summed in (`linreg.moments`): every
column and y divided by a power of two, exactly. The coefficients, standard errors
and sums of squares are then multiplied back, again exactly; a coefficient that
float64 cannot hold is refused, naming its column.
"""

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from linreg.moments import (
    MAX_CANCELLATION, Moments, NonFiniteData, accumulate, block_rows, column_label, non_finite_value,
    power_scaled_chunks,
)

EXTENDED = np.longdouble
# Where long double is no wider than float64 (Windows, macOS on ARM), QR runs in float64 and says so.
HAS_EXTENDED = np.finfo(EXTENDED).eps < np.finfo(np.float64).eps
# Extended QR is elementwise NumPy (no BLAS): O(n·p²), ~3e7 row·columns² per second here. Wider designs
# use LAPACK's float64 QR per block, still free of the normal equations' squared condition number.
MAX_EXTENDED_COLUMNS = 64
# Rows per QR block: 1 MiB of long doubles per column keeps the reflections in cache; a wide
# design gets fewer rows, so that a block's temporaries stay near 32 MiB whatever its width.
QR_BLOCK_ROWS = 1 << 16
QR_BLOCK_VALUES = 1 << 21


def qr_block_rows(columns: int) -> int:
    """Rows per QR block for a design of `columns` columns (never fewer than the columns)."""
    return max(columns, min(QR_BLOCK_ROWS, QR_BLOCK_VALUES // columns))
# Unit roundoff of float64 input: every value of the data is known to this relative precision.
DATA_ROUNDOFF = np.finfo(np.float64).eps / 2
# The normal equations lose about log10(cond(correlation)) digits: 1e6 leaves ~10 of float64's 16.
MAX_CONDITION = 1e6
# RSS = syy - (explained) loses log10(syy / rss) digits on the fast path; beyond 6 the QR's RSS is used.
MAX_RSS_CANCELLATION = 1e6
# Fewer expected digits than this: the fit carries a warning that says how many.
WARN_DIGITS = 9.0
# A standardised design direction whose singular value is below this fraction of the largest is
# numerically zero for float64 data (its coefficients would be noise): the design is rank-deficient.
RANK_RCOND = 1e-13


@dataclass(frozen=True)
class LeastSquares:
    """The reference fit with its inference and how far it can be trusted.

    Attributes:
        coef: (d,) coefficients.
        intercept: the intercept; 0.0 when `fit_intercept` is False.
        fit_intercept: whether an intercept was fitted.
        n: rows.
        rss: residual sum of squares.
        tss: total sum of squares: centred with an intercept, uncentred without (as statsmodels).
        intercept_se: standard error of the intercept (NaN without one, or without residual dof).
        coef_se: (d,) standard errors of the coefficients (NaN without residual dof).
        condition_number: of the design as fitted ([1, x] with an intercept), columns scaled to unit norm.
        condition_number_centred: of the centred features, columns scaled to unit norm (no intercept
            column); None without an intercept. The one that measures collinearity.
        expected_digits: correct digits of the coefficients that float64 data support (at most 15).
        method: "normal equations", "QR, extended precision" or "QR, float64".
        rank_deficient: the standardised design has a singular value below RANK_RCOND of the largest.
        warning: what was lost, when anything was: digits, rank, the columns involved, residual dof.
        dropped: the columns involved in a rank deficiency ("intercept" or a feature name).
        rank: the numerical rank of the design (None: full, p).
        involved: the parameters involved in a rank deficiency, by index (0 is the intercept when fitted).
        y_exponent: y was fitted divided by 2**y_exponent (its squares beyond float64's range); `rss`
            and `tss` are then inf where they overflow, and `fitted_rss`, `fitted_tss` hold them in
            those units (R², the residual SD and F are read off them).
    """

    coef: np.ndarray
    intercept: float
    fit_intercept: bool
    n: int
    rss: float
    tss: float
    intercept_se: float
    coef_se: np.ndarray
    condition_number: float
    condition_number_centred: float | None
    expected_digits: float
    method: str
    rank_deficient: bool = False
    warning: str | None = None
    dropped: tuple[str, ...] = field(default_factory=tuple)
    rank: int | None = None
    involved: tuple[int, ...] = field(default_factory=tuple)
    y_exponent: int = 0
    fitted_rss: float | None = None
    fitted_tss: float | None = None

    @property
    def dof(self) -> int:
        """Residual degrees of freedom, n − rank (the rank is p unless the design is rank-deficient)."""
        rank = self.rank if self.rank is not None else len(self.coef) + int(self.fit_intercept)
        return self.n - rank

    @property
    def sums_of_squares(self) -> tuple[float, float]:
        """(RSS, TSS) in the units y was fitted in: their ratio is the data's, and both are finite."""
        if self.fitted_rss is None:
            return self.rss, self.tss
        return self.fitted_rss, self.fitted_tss

    @property
    def residual_sd(self) -> float:
        if self.dof <= 0:
            return math.nan
        return _ldexp(math.sqrt(self.sums_of_squares[0] / self.dof), self.y_exponent)

    @property
    def r_squared(self) -> float:
        """1 − RSS/TSS, with the TSS convention of `tss`."""
        rss, tss = self.sums_of_squares
        return 1.0 - rss / tss if tss > 0 else math.nan

    def named(self, names: Sequence[str]) -> "LeastSquares":
        """The same fit with its warning and `dropped` naming the features `names` (a table's columns),
        quoted in the warning, since a column's name may hold a comma."""
        return with_warning(self, list(names), quoted=True)


def feature_names(d: int) -> list[str]:
    """The default names of d features, as the inference table names their weights."""
    return [f"w{i}" for i in range(d)]


def solve_least_squares(
    moments: Moments,
    chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    fit_intercept: bool = True,
    names: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> LeastSquares:
    """The least-squares fit of y on x, by the fast path when it is safe, else by a QR pass.

    Args:
        moments: the moments of all rows (one pass, already taken).
        chunks: returns a fresh iterator of (x (k, d), y (k,)) over every row, in any
            blocking: called only when the QR pass is needed.
        fit_intercept: fit y = b + x·w (True) or y = x·w (False).
        names: the features' names, for warnings and errors: a table's columns, quoted in the
            warning (default w0, w1, ..., as they are).
        progress: called with the rows of each block the QR pass reduces.

    Raises:
        NonFiniteData: a NaN or infinite value in the data, or a coefficient beyond float64's
            range; either names its column.
    """
    labels = list(names) if names else feature_names(moments.d)
    moments = moments_in_range(moments, chunks, labels)
    if moments.scaled:  # the fit in the moments' power-of-two units, multiplied back after
        solution = _solve(moments, lambda: power_scaled_chunks(chunks(), moments), fit_intercept, labels, progress)
        solution = in_data_units(solution, moments, labels)
    else:
        solution = _solve(moments, chunks, fit_intercept, labels, progress)
    return with_warning(solution, labels, quoted=bool(names))


def _solve(moments: Moments, chunks, fit_intercept: bool, names: list[str], progress) -> "LeastSquares":
    fast = normal_equations(moments, fit_intercept, rss_pass=lambda coef, b: residual_sum_of_squares(chunks(), coef, b),
                            min_digits=WARN_DIGITS)
    if fast is not None:
        return fast
    return qr_least_squares(moments, chunks(), fit_intercept, names, progress)


def moments_in_range(moments: Moments, chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
                     names: list[str]) -> Moments:
    """`moments`, or the same in power-of-two units where float64's sums are out of range: rescaled
    when finite, else summed again from `chunks` (moments a caller summed outside `Moments.of_chunk`).

    Raises:
        NonFiniteData: a NaN or infinite value in the data, naming its column.
    """
    if not moments.finite:
        try:
            moments = accumulate(chunks(), moments.d)
        except NonFiniteData as error:  # said again with the columns' names
            if error.column is None:
                raise
            raise non_finite_value(error.column, names) from None
    moments = moments.in_range()
    check_finite_moments(moments)
    return moments


def check_finite_moments(moments: Moments) -> None:
    """Refuse moments that are not all finite.

    Raises:
        NonFiniteData: a NaN or infinite value in x or y.
    """
    if not moments.finite:
        raise NonFiniteData("the data hold a NaN or an infinite value: check the data")


def in_data_units(solution: "LeastSquares", moments: Moments, names: list[str]) -> "LeastSquares":
    """A fit made in the power-of-two units of `moments`, in the data's: w_j·2^(e_y − e_j), b·2^e_y,
    the sums of squares times 4^e_y (inf where they overflow; kept in the fitted units too).

    Raises:
        NonFiniteData: a coefficient (or the intercept) beyond float64's range, naming its column.
    """
    x_exponent, y_exponent = moments.exponents
    shift = y_exponent - np.asarray(x_exponent)
    with np.errstate(over="ignore", under="ignore"):
        coef, coef_se = np.ldexp(solution.coef, shift), np.ldexp(solution.coef_se, shift)
        intercept, intercept_se = (float(np.ldexp(v, y_exponent)) for v in (solution.intercept, solution.intercept_se))
        rss, tss = (float(np.ldexp(v, 2 * y_exponent)) for v in (solution.rss, solution.tss))
    lost = np.flatnonzero(~np.isfinite(coef) & np.isfinite(solution.coef))
    if len(lost):
        j = int(lost[0])
        raise _beyond_range(f"the coefficient of {column_label(j, names)}", solution.coef[j], int(shift[j]), j)
    if math.isinf(intercept) and math.isfinite(solution.intercept):
        raise _beyond_range("the intercept", solution.intercept, y_exponent, None)
    return replace(solution, coef=coef, coef_se=coef_se, intercept=intercept, intercept_se=intercept_se,
                   rss=rss, tss=tss, y_exponent=y_exponent, fitted_rss=solution.rss, fitted_tss=solution.tss)


def _beyond_range(what: str, fitted: float, exponent: int, column: int | None) -> NonFiniteData:
    """The one-line refusal of a parameter `fitted`·2^exponent that float64 cannot hold."""
    size = math.frexp(float(fitted))[1] + exponent
    return NonFiniteData(f"{what} is about 2^{size}, beyond float64's range (2^1024): rescale the target "
                         "or that column before fitting", column)


def _ldexp(value: float, exponent: int) -> float:
    """value·2^exponent, inf past float64's top (math.ldexp raises there)."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.ldexp(value, exponent))


def residual_sum_of_squares(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], coef: np.ndarray, intercept: float
) -> float:
    """Σ (y − b − x·w)² in one pass over the data: no cancellation, unlike syy − wᵀsxy."""
    total = 0.0
    for x, y in chunks:
        residual = y - x @ coef
        residual -= intercept
        total += float(residual @ residual)
    return total


# --- The fast path -----------------------------------------------------------------------------

def normal_equations(
    moments: Moments, fit_intercept: bool, rss_pass: Callable[[np.ndarray, float], float] | None = None,
    min_digits: float | None = None,
) -> LeastSquares | None:
    """The fit from the moments alone, or None when that would keep fewer than ~10 digits.

    Args:
        rss_pass: (coef, intercept) -> the RSS from one pass over the data, used when
            syy − wᵀsxy would cancel (a near-exact fit, noise 0); without it such data take the QR.
        min_digits: None when the estimated digits fall below it (many rows of data far
            from the origin, say): the QR then does better.
    """
    n, d = moments.n, moments.d
    p = d + int(fit_intercept)
    finite = all(np.isfinite(a).all() for a in (moments.sxx, moments.sxy, moments.mean_x, moments.mean_y, moments.syy))
    if n <= p or not finite:
        return None
    if fit_intercept:
        gram, cross, total = moments.sxx, moments.sxy, moments.syy
    else:  # uncentred cross-products, rebuilt from the accurate centred moments and the means
        gram = moments.sxx + n * np.outer(moments.mean_x, moments.mean_x)
        cross = moments.sxy + n * moments.mean_x * moments.mean_y
        total = moments.syy + n * moments.mean_y**2
    scale = np.sqrt(np.diag(gram))
    if not np.all(scale > 0):
        return None
    correlation = (gram / scale[:, None]) / scale[None, :]  # two steps: tiny scales must not overflow
    correlation_condition = np.linalg.cond(correlation)
    if not correlation_condition <= MAX_CONDITION:
        return None
    coef = np.linalg.solve(correlation, cross / scale) / scale
    intercept = float(moments.mean_y - moments.mean_x @ coef) if fit_intercept else 0.0
    rounding = DATA_ROUNDOFF * moment_rounding(moments, gram, total)
    relative = rounding * correlation_condition  # normwise, for the intercept's amplification below
    digits = digits_of(componentwise(rounding, np.linalg.inv(correlation), np.linalg.norm(correlation, 2), coef * scale))
    if fit_intercept:  # b = ȳ − x̄·w: the slopes' error, and ȳ's, amplified by the means
        digits = min(digits, digits_of(intercept_error(relative, moments.mean_x, coef, moments.mean_y, intercept)))
    if min_digits is not None and digits < min_digits:
        return None
    rss = total - coef @ cross
    if not (total > 0 and total <= MAX_RSS_CANCELLATION * rss):
        if rss_pass is None:
            return None  # the RSS would cancel: the QR gives it directly
        rss = rss_pass(coef, intercept)
    # Variances in correlation units, divided by the scales only inside the square root's
    # result: features of 1e-160 have standard errors of 1e160, whose squares overflow.
    inverse = np.linalg.inv(correlation)
    sigma2 = rss / (n - p)
    coef_se = np.sqrt(sigma2 * np.diag(inverse)) / scale
    if fit_intercept:
        r_centred = np.linalg.cholesky(moments.sxx).T
        r = np.block([[np.sqrt(n) * np.ones((1, 1)), np.zeros((1, d))], [np.zeros((d, 1)), r_centred]])
        standardised_mean = moments.mean_x / scale
        intercept_se = float(np.sqrt(sigma2 * (1 / n + standardised_mean @ inverse @ standardised_mean)))
        shift = moments.mean_x
    else:
        r = np.linalg.cholesky(gram).T
        intercept_se = math.nan
        shift = np.zeros(d)
    with_intercept, centred = condition_numbers(r, shift, np.ones(d), fit_intercept)
    return LeastSquares(
        coef=coef, intercept=intercept, fit_intercept=fit_intercept, n=n, rss=float(rss), tss=float(total),
        intercept_se=intercept_se, coef_se=coef_se,
        condition_number=with_intercept, condition_number_centred=centred if fit_intercept else None,
        expected_digits=digits, method="normal equations",
    )


# --- Condition and digits ----------------------------------------------------------------------

def condition_numbers(r: np.ndarray, shift: np.ndarray, scale: np.ndarray, fit_intercept: bool) -> tuple[float, float]:
    """Condition numbers of the design, from the R factor of its transformed columns.

    Args:
        r: (p, p) upper-triangular R of [1, (x − shift)/scale] with an intercept, or of x/scale without.
        shift: (d,) the column shift used (zeros without an intercept).
        scale: (d,) the column scale used.

    Returns:
        (of the design as fitted with unit-norm columns, of the centred features with unit-norm
        columns). Without an intercept both are the first.
    """
    r = np.asarray(r, dtype=np.float64)
    if fit_intercept:
        # [1, x] = [1, x'] T with T = [[1, shiftᵀ], [0, diag(scale)]]: R T is the R of [1, x].
        d = len(shift)
        transform = np.eye(d + 1)
        transform[0, 1:] = shift
        transform[1:, 1:] *= scale
        as_fitted = _unit_columns_condition(r @ transform)
        centred = _unit_columns_condition(r[1:, 1:])  # R of x' with the mean removed
        return as_fitted, centred
    value = _unit_columns_condition(r)
    return value, value


def _unit_columns_condition(r: np.ndarray) -> float:
    norms = np.linalg.norm(r, axis=0)
    if not np.all(norms > 0) or not np.isfinite(r).all():
        return math.inf
    singular = np.linalg.svd(r / norms, compute_uv=False)
    return float(singular[0] / singular[-1]) if singular[-1] > 0 else math.inf


def digits_of(relative_error: float) -> float:
    """−log10 of a relative error, within [0, 15] (NIST's convention: 15 for an exact match)."""
    if not math.isfinite(relative_error):
        return 0.0
    return float(min(15.0, max(0.0, -math.log10(relative_error)))) if relative_error > 0 else 15.0


def componentwise(rounding: float, inverse: np.ndarray, norm: float, theta: np.ndarray) -> float:
    """The largest relative error of one coefficient of M θ = c when M and c are off by `rounding`
    relatively: |δθ_j| ≲ rounding·‖M⁻¹ row j‖·‖M‖·‖θ‖, relative to |θ_j| (floored at 1e-8 of ‖θ‖).

    Tighter than κ·‖θ‖/|θ_j|, which counts every coefficient's error as the worst direction's.
    """
    theta = np.asarray(theta, dtype=np.float64)
    theta_norm = float(np.linalg.norm(theta))
    rows = np.linalg.norm(np.asarray(inverse, dtype=np.float64), axis=1)
    size = np.maximum(np.abs(theta), 1e-8 * theta_norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = np.where(size > 0, rounding * rows * norm * theta_norm / size, 0.0)
    return float(np.max(errors, initial=0.0))


def moment_rounding(moments: Moments, gram: np.ndarray, total: float) -> float:
    """How many times u the moments may be off: sums over a BLAS block of rows (√rows, as
    rounding errors add at random), times what centring raw sums cancelled (when every column's
    was at most MAX_CANCELLATION; when one's was more, the two-pass sums were taken for all)."""
    n = moments.n
    squares = np.append(np.diag(gram), total)
    means = np.append(moments.mean_x, moments.mean_y)
    with np.errstate(divide="ignore", invalid="ignore"):
        cancel = np.where(squares > 0, 1 + n * means**2 / squares, 1.0)
    worst = float(np.max(cancel)) if np.all(cancel <= MAX_CANCELLATION) else 1.0
    return max(1.0, math.sqrt(min(n, block_rows(moments.d))) * worst)


def intercept_error(relative: float, mean_x: np.ndarray, coef: np.ndarray, mean_y: float, intercept: float) -> float:
    """Relative error of b = ȳ − x̄·w when w carries a relative error `relative`: the means amplify it.

    Taken relative to |b|, floored at 1e-8 of the terms that make it, so that an intercept
    that is 0 up to rounding does not read as 0 digits.
    """
    terms = float(np.abs(mean_x) @ np.abs(coef))
    size = max(abs(intercept), 1e-8 * (terms + abs(mean_y)))
    if size == 0:
        return 0.0
    return (relative * terms + DATA_ROUNDOFF * abs(mean_y)) / size


def perturbation_digits(estimate: np.ndarray, twin: np.ndarray) -> float:
    """Correct digits per parameter, the fewest, from a solution and its perturbed twin's.

    Each parameter's change is taken relative to its own size, floored at 1e-8 of the
    largest, so that one near 0 does not read as 0 digits; a parameter that is 0 in both
    (a constant y) is exact.
    """
    estimate, twin = np.asarray(estimate, dtype=np.float64), np.asarray(twin, dtype=np.float64)
    size = np.maximum(np.abs(estimate), 1e-8 * np.max(np.abs(estimate), initial=0.0))
    change = np.abs(twin - estimate)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(change == 0, 0.0, change / size)
    worst = float(np.max(relative, initial=0.0))
    return digits_of(worst if np.isfinite(worst) else math.inf)


# --- The stable path: TSQR in extended precision ---------------------------------------------------

def householder_r(a: np.ndarray) -> np.ndarray:
    """The R factor (p, p) of a (m, p) matrix by Householder reflections, in a's own precision.

    Written out because LAPACK has no long-double QR. The columns are held as
    contiguous rows of aᵀ, so every inner product is a contiguous `np.sum`, which
    NumPy adds pairwise: rounding grows with log m, not m (a plain dot product's
    sequential sum cost 5 digits on a million rows). a is not modified; rows of R
    beyond m < p are zero.
    """
    columns = np.array(a.T, copy=True, order="C")
    p, m = columns.shape
    r = np.zeros((p, p), dtype=columns.dtype)
    for k in range(min(m, p)):
        v = columns[k, k:].copy()
        alpha = np.sqrt(np.sum(v * v))
        if alpha == 0:
            continue
        if v[0] > 0:
            alpha = -alpha
        v[0] -= alpha
        rest = columns[k:, k:]
        rest -= np.outer(np.sum(rest * v, axis=1) * (2 / np.sum(v * v)), v)
    rows = min(m, p)
    r[:rows] = np.triu(columns[:, :rows].T)
    return r


class RFactor:
    """The R factor of a tall matrix whose rows arrive in blocks (TSQR).

    Block R factors are merged in a binary tree, as pairwise summation adds
    numbers: the R of 2ᵏ blocks is merged only with another of 2ᵏ, so rounding
    grows with the log of the row count rather than with the number of blocks.
    """

    def __init__(self, columns: int):
        self.extended = HAS_EXTENDED and columns <= MAX_EXTENDED_COLUMNS
        self.dtype = EXTENDED if self.extended else np.float64
        self.columns = columns
        self._levels: list[np.ndarray | None] = []  # _levels[k]: the R of 2ᵏ blocks, or None

    def _qr(self, stacked: np.ndarray) -> np.ndarray:
        if self.extended:
            return householder_r(stacked)
        r = np.linalg.qr(stacked, mode="r")
        return np.vstack([r, np.zeros((self.columns - len(r), self.columns))]) if len(r) < self.columns else r

    def add(self, block: np.ndarray) -> None:
        r = self._qr(block.astype(self.dtype, copy=False))
        level = 0
        while level < len(self._levels) and self._levels[level] is not None:
            r = self._qr(np.vstack([self._levels[level], r]))
            self._levels[level] = None
            level += 1
        if level == len(self._levels):
            self._levels.append(None)
        self._levels[level] = r

    @property
    def r(self) -> np.ndarray:
        """The R factor of every row added so far."""
        parts = [r for r in self._levels if r is not None]
        if not parts:
            return np.zeros((self.columns, self.columns), dtype=self.dtype)
        return parts[0] if len(parts) == 1 else self._qr(np.vstack(parts))

    @property
    def method(self) -> str:
        return "QR, extended precision" if self.extended else "QR, float64"


# The twin's perturbations are seeded: the same data always report the same digits.
PERTURBATION_SEED = 20261204


def rounding_twin(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """values with each entry moved by a random relative amount in ±DATA_ROUNDOFF: what rounding
    the data to float64 could have done to them."""
    # In the values' own (extended) precision: 1 + 1e-16·u in float64 would round to 1 or 1 − 2⁻⁵³.
    return values + values * (DATA_ROUNDOFF * rng.uniform(-1.0, 1.0, size=values.shape)).astype(values.dtype)


def _blocks(chunks: Iterable[tuple[np.ndarray, np.ndarray]], rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for x, y in chunks:
        for start in range(0, len(y), rows):
            yield x[start : start + rows], y[start : start + rows]


def qr_least_squares(
    moments: Moments,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    fit_intercept: bool,
    names: list[str],
    progress: Callable[[int], None] | None = None,
) -> LeastSquares:
    """Least squares by a TSQR of [1, x', y'] (x' = (x − mean)/sd, y' likewise), in extended precision.

    The shift and scale come from the moments; without an intercept nothing is
    shifted (it would change the model). The last column's R entries give Qᵀy'
    and the residual norm directly, so the RSS never cancels.
    """
    n, d = moments.n, moments.d
    shift_x = moments.mean_x if fit_intercept else np.zeros(d)
    shift_y = moments.mean_y if fit_intercept else 0.0
    spread_x = np.sqrt(np.diag(moments.sxx) + (0 if fit_intercept else n * moments.mean_x**2))
    spread_y = math.sqrt(moments.syy + (0 if fit_intercept else n * moments.mean_y**2))
    # A constant (or all-zero) column keeps scale 1: its zero R column then shows the rank deficiency.
    scale_x = np.where(spread_x > 0, spread_x, 1.0)
    scale_y = spread_y if spread_y > 0 else 1.0
    p = d + int(fit_intercept)
    factor, twin = RFactor(p + 1), RFactor(p + 1)
    rng = np.random.default_rng(PERTURBATION_SEED)
    shift_x_e, scale_x_e = shift_x.astype(factor.dtype), scale_x.astype(factor.dtype)
    for x, y in _blocks(chunks, qr_block_rows(p + 1)):
        columns = np.empty((len(y), d + 1), dtype=factor.dtype)
        columns[:, :d], columns[:, d] = x, y
        for target, values in ((factor, columns), (twin, rounding_twin(columns, rng))):
            block = np.empty((len(y), p + 1), dtype=factor.dtype)
            if fit_intercept:
                block[:, 0] = 1.0
            block[:, int(fit_intercept) : p] = (values[:, :d] - shift_x_e) / scale_x_e
            block[:, p] = (values[:, d] - shift_y) / scale_y
            target.add(block)
        if progress:
            progress(len(y))
    r_full = factor.r  # merged once: each read of `.r` merges the tree's levels
    r_design, qty, residual = r_full[:p, :p], r_full[:p, p], abs(r_full[p, p])
    with_intercept, centred = condition_numbers(r_design, shift_x, scale_x, fit_intercept)
    # tss in standardised units: centred it is 1 by construction; uncentred likewise.
    tss_scaled = float(qty @ qty + residual**2)

    inverse, cov, kept = _solve_r(r_design)
    rss_scaled = float(residual**2) + (float(np.sum(_dropped_residual(r_design, qty, kept) ** 2)) if kept < p else 0.0)
    theta = inverse @ qty if kept == p else _min_norm(r_design, qty)
    coef, intercept = _original_units(theta, shift_x, shift_y, scale_x, scale_y, fit_intercept)
    digits = 0.0
    if kept == p:
        twin_r = twin.r
        twin_theta = _triangular_inverse(twin_r[:p, :p]) @ twin_r[:p, p]
        # The first-order bound u·κ is reached by perturbations along the worst direction; random
        # ones average over the rows: the fewer digits of the two is what is promised. Without
        # extended precision the QR's own rounding counts too, at its worst case.
        # The slopes answer to the centred design's κ; the intercept, a coefficient of [1, x] as
        # given, to the uncentred one's (data far from the origin amplify its error).
        tan_theta = float(residual) / max(math.sqrt(max(float(qty @ qty), 0.0)), np.finfo(float).tiny)
        slopes = slice(int(fit_intercept), p)
        kappa = centred if fit_intercept else with_intercept
        # R θ = Qᵀy: each slope's error from R⁻¹'s row, in the centred design's block
        r_slopes = np.asarray(r_design, dtype=np.float64)[slopes, slopes]
        growth = _bound(kappa, tan_theta, p, factor) / (DATA_ROUNDOFF * kappa)  # 1, or the float64 QR's worst case
        bound = componentwise(DATA_ROUNDOFF * growth, np.asarray(inverse, dtype=np.float64)[slopes, slopes],
                              np.linalg.norm(r_slopes, 2), np.asarray(theta[slopes], dtype=np.float64))
        digits = min(perturbation_digits(theta[slopes], twin_theta[slopes]), digits_of(bound))
        if fit_intercept:
            twin_b = _original_units(twin_theta, shift_x, shift_y, scale_x, scale_y, True)[1]
            size = max(abs(intercept), 1e-8 * (float(np.abs(shift_x) @ np.abs(coef)) + abs(shift_y)))
            measured = abs(twin_b - intercept) / size if size > 0 else 0.0
            digits = min(digits, digits_of(measured), digits_of(_bound(with_intercept, tan_theta, p, factor)))

    dof = n - p
    sigma2 = rss_scaled / dof if dof > 0 else math.nan
    cov = np.asarray(cov, dtype=np.float64) * sigma2 * scale_y**2
    coef_se = np.sqrt(np.diag(cov)[int(fit_intercept):]) * (1 / scale_x)
    intercept_se = math.nan
    if fit_intercept:
        # intercept = shift_y + s_y θ0 − Σ shift_j s_y θj / scale_j: its gradient in θ, times s_y.
        gradient = np.concatenate([[1.0], -shift_x / scale_x])
        intercept_se = float(math.sqrt(max(gradient @ cov @ gradient, 0.0)))

    rank_deficient = kept < p
    solution = LeastSquares(
        coef=coef, intercept=intercept, fit_intercept=fit_intercept, n=n,
        rss=rss_scaled * scale_y**2, tss=tss_scaled * scale_y**2,
        intercept_se=intercept_se, coef_se=coef_se,
        condition_number=with_intercept, condition_number_centred=centred if fit_intercept else None,
        expected_digits=digits, method=factor.method, rank=kept,
        rank_deficient=rank_deficient, involved=_involved(r_design) if rank_deficient else (),
    )
    return with_warning(solution, list(names), quoted=False)


def _bound(kappa: float, tan_theta: float, p: int, factor: "RFactor") -> float:
    """First-order relative error: u·κ from the data's rounding; without extended precision also
    the float64 QR's own rounding at its worst, (p + 1)·u·κ(1 + κ tan θ)."""
    bound = DATA_ROUNDOFF * kappa
    if not factor.extended:
        bound = max(bound, (p + 1) * DATA_ROUNDOFF * kappa * (1 + kappa * tan_theta))
    return bound


def _original_units(theta, shift_x, shift_y, scale_x, scale_y, fit_intercept: bool) -> tuple[np.ndarray, float]:
    """(coef, intercept) in the data's units from θ of the standardised design [1, (x − shift)/scale]."""
    coef = scale_y * np.asarray(theta[int(fit_intercept):], dtype=np.float64) / scale_x
    intercept = float(shift_y + scale_y * float(theta[0]) - shift_x @ coef) if fit_intercept else 0.0
    return coef, intercept


def _solve_r(r: np.ndarray):
    """(R⁻¹ in R's precision, R⁻¹R⁻ᵀ, rank kept) for the triangular R of the standardised design.

    Rank is judged on the columns scaled to unit norm; when it is short, the
    inverse is not used (see `_min_norm`) and the covariance is NaN.
    """
    p = len(r)
    singular = np.linalg.svd(np.asarray(r, dtype=np.float64) / _safe_norms(r), compute_uv=False)
    kept = int(np.sum(singular > RANK_RCOND * singular[0])) if singular[0] > 0 else 0
    if kept < p:
        return None, np.full((p, p), np.nan), kept
    inverse = _triangular_inverse(r)
    return inverse, inverse @ inverse.T, kept


def _safe_norms(r: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(np.asarray(r, dtype=np.float64), axis=0)
    return np.where(norms > 0, norms, 1.0)


def _triangular_inverse(r: np.ndarray) -> np.ndarray:
    """R⁻¹ of an upper-triangular R by back substitution, a row at a time, in R's precision
    (LAPACK has no long double)."""
    p = len(r)
    inverse = np.zeros_like(r)
    for i in range(p - 1, -1, -1):
        inverse[i, i] = 1 / r[i, i]
        if i + 1 < p:
            inverse[i, i + 1 :] = -(r[i, i + 1 :] @ inverse[i + 1 :, i + 1 :]) / r[i, i]
    return inverse


def _min_norm(r: np.ndarray, qty: np.ndarray) -> np.ndarray:
    """The minimum-norm solution of R θ = Qᵀy in unit-norm column units, singular values below RANK_RCOND dropped."""
    norms = _safe_norms(r)
    scaled = np.asarray(r, dtype=np.float64) / norms
    return np.linalg.lstsq(scaled, np.asarray(qty, dtype=np.float64), rcond=RANK_RCOND)[0] / norms


def _dropped_residual(r: np.ndarray, qty: np.ndarray, kept: int) -> np.ndarray:
    """The part of Qᵀy the truncated solution cannot reach: it adds to the RSS."""
    norms = _safe_norms(r)
    u, _, _ = np.linalg.svd(np.asarray(r, dtype=np.float64) / norms)
    return u[:, kept:].T @ np.asarray(qty, dtype=np.float64)


def _involved(r: np.ndarray) -> tuple[int, ...]:
    """The parameters (by index) that the numerically null directions of the standardised R weigh on."""
    norms = _safe_norms(r)
    _, singular, vt = np.linalg.svd(np.asarray(r, dtype=np.float64) / norms)
    null = vt[singular <= RANK_RCOND * singular[0]] if singular[0] > 0 else vt
    weight = np.max(np.abs(null), axis=0)
    return tuple(int(i) for i in np.flatnonzero(weight > 0.1))


# The words of the warning for a fit without residual degrees of freedom (tests and docs quote them).
NO_RESIDUAL_DOF = "0 residual degrees of freedom: no standard errors"


def with_warning(solution: LeastSquares, names: list[str], quoted: bool) -> LeastSquares:
    """`solution` with its warning (and `dropped`) written for the features `names`.

    What was lost, each said once: rank (naming the columns involved; the user's names
    quoted when `quoted`), digits (when the rank is whole), residual degrees of freedom.
    """
    columns = (["intercept"] if solution.fit_intercept else []) + list(names)
    dropped = tuple(columns[i] for i in solution.involved)
    parts = []
    kappa = solution.condition_number_centred if solution.fit_intercept else solution.condition_number
    scaled = f"scaled{' centred' if solution.fit_intercept else ''} design"
    if solution.rank_deficient:
        shown = [c if not quoted or (solution.fit_intercept and i == 0) else repr(c)
                 for i, c in zip(solution.involved, dropped)]
        parts.append(
            f"the design is numerically rank-deficient for float64 data (condition number {kappa:.3g} of the "
            f"{scaled}); columns involved: {', '.join(shown)}. "
            "The coefficients are the minimum-norm solution in standardised units, not a unique fit."
        )
    elif solution.expected_digits < WARN_DIGITS:
        parts.append(
            f"ill-conditioned design (condition number {kappa:.3g} of the {scaled}): the float64 data "
            f"determine about {math.floor(solution.expected_digits)} correct digits of the coefficients"
        )
    if solution.dof <= 0:
        p = len(solution.coef) + int(solution.fit_intercept)
        parts.append(f"{NO_RESIDUAL_DOF} ({solution.n} rows for {p} parameters: the fit is exact, and the "
                     "standard errors, confidence intervals and F test do not exist)")
    if len(parts) > 1:
        parts = [" ".join(part if part.endswith(".") else part + "." for part in parts)]
    return replace(solution, warning=parts[0] if parts else None, dropped=dropped)
