"""Centred first and second moments of (x, y): the one pass behind the closed form and the evaluation.

`Moments.of_chunk` reads a chunk once, in cache-sized blocks, and takes raw
sums of products with BLAS (gemm, gemv, syrk): no design matrix, no copy of
the data. Raw sums are centred only when little cancels (a mean small against
its spread); otherwise a second pass sums the centred chunk itself (the
corrected two-pass algorithm). Chunks are merged with the pairwise update of
Chan, Golub and LeVeque, which stays accurate where raw sums would cancel, so
a file streamed one row group at a time gives the moments of the whole.

`linreg.least_squares` reads the fit off these moments when that is safe, and
takes a QR pass over the data when it is not.

Values whose squares leave float64's range (beyond ~1e154, or below ~1e-154,
where squares turn subnormal) are summed in power-of-two units: a chunk whose
sums overflow is summed again with each column (and y) divided by the power of
two that brings its largest |value| into [0.5, 1). That is exact (only values
some 2¹⁰⁷⁴ times below their column's largest lose digits), needs no pass
before the first, and costs nothing on data in range: their moments are as
before, bit for bit. Moments in different units merge by rescaling the finer
one, again by powers of two. `Moments.x_exponent` and `y_exponent` say which
units the moments are in; `linreg.least_squares` fits in them and reports in
the data's.
"""

import math
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import numpy as np
from threadpoolctl import threadpool_limits

# Elements of x per block: 2 MiB of float64, small enough to stay in cache for
# the products taken of each block, large enough that per-call costs vanish.
BLOCK_ELEMENTS = 1 << 18
# Centring raw sums loses log10(raw / centred) digits; beyond 2 digits, sum the
# centred data instead.
MAX_CANCELLATION = 1e2
# A column's sum of squares above this is too near float64's top (2¹⁰²⁴) for the products the fit
# forms from it (2⁶⁴ of headroom: merging up to 2⁶⁴ chunks cannot overflow); its moments are
# taken in power-of-two units instead.
HUGE_SUMS = 2.0**960
# Below this mean square a column's squares are subnormal and lose digits: power-of-two units too.
TINY_MEAN_SQUARE = 2.0**-1022


class NonFiniteData(ArithmeticError):
    """The data hold a NaN or an infinite value, or a result lies beyond float64's range.

    Attributes:
        column: the feature column (0-based) at fault, -1 for the target, None when unknown.
    """

    def __init__(self, message: str, column: int | None = None):
        super().__init__(message)
        self.column = column


def column_label(column: int, names: list[str] | None = None) -> str:
    """How an error names a column: the user's name quoted, else "feature column j"; -1 is the target."""
    if column < 0:
        return "the target"
    return repr(names[column]) if names else f"feature column {column} (from 0)"


def non_finite_value(column: int, names: list[str] | None = None) -> NonFiniteData:
    """The error for a NaN or infinite value in `column` (-1: the target), in one line."""
    return NonFiniteData(f"{column_label(column, names)} holds a NaN or an infinite value: check the data", column)


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of a linear fit.

    In power-of-two units when the data's squares leave float64's range: the
    statistics are then those of x_j / 2**x_exponent[j] and y / 2**y_exponent.

    Attributes:
        n: rows seen.
        mean_x: (d,) column means.
        mean_y: mean target.
        sxx: (d, d) centred cross-products, sum (x - mean_x)(x - mean_x)ᵀ.
        sxy: (d,) sum (x - mean_x)(y - mean_y).
        syy: sum (y - mean_y)².
        x_exponent: (d,) the power of two each column was divided by; None: the data's own units.
        y_exponent: the power of two y was divided by (0 with x_exponent None).
    """

    n: int
    mean_x: np.ndarray
    mean_y: float
    sxx: np.ndarray
    sxy: np.ndarray
    syy: float
    x_exponent: tuple[int, ...] | None = None
    y_exponent: int = 0

    @classmethod
    def empty(cls, d: int) -> "Moments":
        """The moments of no rows: the identity of `merge`."""
        return cls(0, np.zeros(d), 0.0, np.zeros((d, d)), np.zeros(d), 0.0)

    @classmethod
    def of_chunk(cls, x: np.ndarray, y: np.ndarray) -> "Moments":
        """Moments of x (k, d) and y (k,), k ≥ 1, without copying either.

        One pass takes raw sums (`raw_sums`); when centring them would cancel
        more than MAX_CANCELLATION allows, a second pass sums the centred data.
        """
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught below, and summed again
            moments = centred_from_raw(len(y), *raw_sums(x, y),
                                       second_pass=lambda mean_x, mean_y: centred_products(x, y, mean_x, mean_y))
        return power_scaled_moments(x, y) if moments.out_of_range else moments

    def merge(self, other: "Moments") -> "Moments":
        """Moments of both sets of rows together (Chan, Golub & LeVeque's pairwise update).

        Moments in different power-of-two units are first brought to the coarser of each
        column's two (exact, but for values far below the column's largest)."""
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        if self.exponents != other.exponents:
            x_exponent = tuple(map(max, self.exponents[0], other.exponents[0]))
            y_exponent = max(self.y_exponent, other.y_exponent)
            return self.rescaled(x_exponent, y_exponent).merge(other.rescaled(x_exponent, y_exponent))
        n = self.n + other.n
        weight = self.n * other.n / n
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        return Moments(
            n=n,
            mean_x=self.mean_x + dx * (other.n / n),
            mean_y=self.mean_y + dy * (other.n / n),
            sxx=self.sxx + other.sxx + np.outer(dx, dx) * weight,
            sxy=self.sxy + other.sxy + dx * dy * weight,
            syy=self.syy + other.syy + dy * dy * weight,
            x_exponent=self.x_exponent, y_exponent=self.y_exponent,
        )

    @property
    def d(self) -> int:
        return len(self.mean_x)

    @property
    def scaled(self) -> bool:
        """Whether the moments are in power-of-two units rather than the data's."""
        return self.x_exponent is not None

    @property
    def exponents(self) -> tuple[tuple[int, ...], int]:
        """(x_exponent, y_exponent), zeros in the data's own units."""
        return (self.x_exponent if self.x_exponent is not None else (0,) * self.d), self.y_exponent

    @property
    def finite(self) -> bool:
        return all(np.isfinite(part).all() for part in (self.sxx, self.sxy, self.mean_x, self.mean_y, self.syy))

    def _sizes(self) -> np.ndarray:
        """(d + 1,) each column's (then y's) larger of its centred and mean sums of squares: Σv² within 2x."""
        with np.errstate(over="ignore", invalid="ignore"):
            means = np.append(self.mean_x, self.mean_y)
            return np.maximum(np.abs(np.append(np.diag(self.sxx), self.syy)), self.n * means**2)

    @property
    def out_of_range(self) -> bool:
        """Sums not finite, within HUGE_SUMS of float64's top, or of squares gone subnormal (TINY_MEAN_SQUARE):
        the fit needs them in power-of-two units."""
        if self.n == 0:
            return False
        if not self.finite:
            return True
        sizes, means = self._sizes(), np.append(self.mean_x, self.mean_y)
        tiny = ((sizes > 0) & (sizes / self.n < TINY_MEAN_SQUARE)) | ((sizes == 0) & (means != 0))
        return bool(np.any(sizes > HUGE_SUMS) or np.any(tiny))

    def rescaled(self, x_exponent: tuple[int, ...], y_exponent: int) -> "Moments":
        """The same moments in the units 2**x_exponent (per column) and 2**y_exponent: exact by powers of two
        (but for underflow of what is some 2¹⁰⁷⁴ below the rest)."""
        old_x, old_y = self.exponents
        step_x = np.asarray(old_x) - np.asarray(x_exponent, dtype=int)
        step_y = old_y - int(y_exponent)
        unscaled = not any(x_exponent) and y_exponent == 0
        with np.errstate(over="ignore", under="ignore"):
            return Moments(
                n=self.n, mean_x=np.ldexp(self.mean_x, step_x), mean_y=float(np.ldexp(self.mean_y, step_y)),
                sxx=np.ldexp(self.sxx, step_x[:, None] + step_x[None, :]), sxy=np.ldexp(self.sxy, step_x + step_y),
                syy=float(np.ldexp(self.syy, 2 * step_y)),
                x_exponent=None if unscaled else tuple(int(e) for e in x_exponent), y_exponent=int(y_exponent),
            )

    def in_range(self) -> "Moments":
        """These moments, rescaled by powers of two when finite but out of range (no pass over the data):
        each column's root mean square brought into [0.5, 1). Non-finite ones are returned as they are."""
        if not self.out_of_range or not self.finite:
            return self
        rms = np.sqrt(self._sizes() / self.n)
        step = np.where(rms > 0, np.frexp(rms)[1], 0)
        old_x, old_y = self.exponents
        return self.rescaled(tuple(int(e) for e in np.asarray(old_x) + step[:-1]), int(old_y + step[-1]))

    def in_units(self, coef: np.ndarray, intercept: float) -> tuple[np.ndarray, float]:
        """(coef, intercept) of the data as parameters of these moments' units (the same, unscaled)."""
        if not self.scaled:
            return coef, intercept
        x_exponent, y_exponent = self.exponents
        with np.errstate(over="ignore", under="ignore"):
            return (np.ldexp(np.asarray(coef, dtype=np.float64), np.asarray(x_exponent) - y_exponent),
                    float(np.ldexp(intercept, -y_exponent)))

    def rss(self, coef: np.ndarray, intercept: float) -> float:
        """Residual sum of squares of y ≈ intercept + x @ coef, without another pass, in the data's units:
        inf when it lies beyond float64's range (`rss_in_units` is then finite).

        sum (y - b - x w)² = syy - 2 wᵀsxy + wᵀsxx w + n (mean_y - b - mean_x·w)².
        """
        value = self.rss_in_units(*self.in_units(coef, intercept))
        if not self.scaled or not math.isfinite(value):
            return value
        with np.errstate(over="ignore"):
            return float(np.ldexp(value, 2 * self.y_exponent))

    def rss_in_units(self, coef: np.ndarray, intercept: float) -> float:
        """`rss` in these moments' units, of (coef, intercept) given in them (`in_units`)."""
        with np.errstate(over="ignore", invalid="ignore"):
            offset = self.mean_y - intercept - self.mean_x @ coef
            value = self.syy - 2 * coef @ self.sxy + coef @ self.sxx @ coef + self.n * offset**2
        return max(float(value), 0.0) if np.isfinite(value) else float("nan")


def accumulate(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], d: int, progress: Callable[[int], None] | None = None,
    of_chunk: Callable[[np.ndarray, np.ndarray], Moments] | None = None,
) -> Moments:
    """Merge the moments of every (x, y) chunk.

    BLAS is held to one thread meanwhile: a chunk is summed at ~12 GB/s on one
    core, faster than parquet decodes it (~4 GB/s), while multi-threaded
    OpenBLAS calls on a loaded machine stalled for up to a second per chunk
    (streamed throughput 0.1 GB/s, against 2.9 GB/s on one thread).

    Args:
        chunks: (k, d) features and (k,) targets.
        progress: called with the rows of each chunk once it is summed.
        of_chunk: the moments of one chunk (default `Moments.of_chunk`; on CUDA, `moments_on_device`).
    """
    of_chunk = of_chunk or Moments.of_chunk
    total = Moments.empty(d)
    with threadpool_limits(1, user_api="blas"):
        for x, y in chunks:
            if len(y):
                total = total.merge(of_chunk(x, y))
            if progress:
                progress(len(y))
    return total.in_range()


# --- The one-chunk pass ----------------------------------------------------------------------

def block_rows(d: int) -> int:
    """Rows per block so that a block of x holds about BLOCK_ELEMENTS values."""
    return max(256, BLOCK_ELEMENTS // d)


def blocks(x: np.ndarray, y: np.ndarray):
    """Yield views (x_block (m, d), y_block as a column (m, 1)) of consecutive rows."""
    rows = block_rows(x.shape[1])
    column = y.reshape(-1, 1)
    for start in range(0, len(y), rows):
        yield x[start : start + rows], column[start : start + rows]


def centred_from_raw(n: int, xx, xy, sx, yy, sy, second_pass) -> Moments:
    """Moments from raw sums (xᵀx, xᵀy, Σx, yᵀy, Σy) of n rows, centred by subtraction;
    when that would cancel more than MAX_CANCELLATION allows, `second_pass(mean_x, mean_y)`
    sums the centred data instead (on the CPU, or on the device that holds it).
    Raw sums that overflowed give non-finite moments at once: they are summed again in
    power-of-two units (`power_scaled_moments`), not centred."""
    mean_x, mean_y = sx / n, sy / n
    sxx = xx - n * np.outer(mean_x, mean_x)
    sxy = xy - n * mean_x * mean_y
    syy = yy - n * mean_y**2
    raw = np.append(np.diag(xx), yy)
    centred = np.append(np.diag(sxx), syy)
    if np.all(np.isfinite(raw)) and not np.all(raw <= MAX_CANCELLATION * centred):
        return second_pass(mean_x, mean_y)
    return Moments(n=n, mean_x=mean_x, mean_y=float(mean_y), sxx=sxx, sxy=sxy, syy=float(syy))


def raw_sums(x: np.ndarray, y: np.ndarray):
    """Sums over rows of x xᵀ, x y, x, y² and y, in one pass of cache-sized blocks.

    Every product is 2-D, so NumPy hands it to BLAS (gemm, gemv, syrk); column
    sums as products with ones run several times faster than `sum(axis=0)`.

    Returns:
        xx (d, d), xy (d,), sx (d,), yy, sy.
    """
    return (_narrow_sums if x.shape[1] == 1 else _wide_sums)(x, y)


def _narrow_sums(x: np.ndarray, y: np.ndarray):
    """One column: five products of the blocks as they are (copying y anywhere costs more)."""
    xx, xy, sx, yy, sy = (np.zeros((1, 1)) for _ in range(5))
    ones = np.ones((min(block_rows(1), len(y)), 1))
    for xb, yb in blocks(x, y):
        one = ones[: len(yb)]
        xx += xb.T @ xb
        xy += xb.T @ yb
        sx += xb.T @ one
        yy += yb.T @ yb
        sy += yb.T @ one
    return xx, xy[0], sx[0], yy[0, 0], sy[0, 0]


def _wide_sums(x: np.ndarray, y: np.ndarray):
    """Several columns: pairing y with ones reads each block of x twice instead of three times."""
    d = x.shape[1]
    xx, x_pair, y_pair = np.zeros((d, d)), np.zeros((d, 2)), np.zeros((1, 2))
    pairs = np.ones((min(block_rows(d), len(y)), 2))  # column 0 takes each block of y
    for xb, yb in blocks(x, y):
        pair = pairs[: len(yb)]
        pair[:, :1] = yb
        xx += xb.T @ xb
        x_pair += xb.T @ pair
        y_pair += yb.T @ pair
    return xx, x_pair[:, 0], x_pair[:, 1], y_pair[0, 0], y_pair[0, 1]


def centred_products(x: np.ndarray, y: np.ndarray, mean_x: np.ndarray, mean_y: float) -> Moments:
    """Second pass: moments from the centred data itself, the means refined on the way.

    The sums of the centred data are zero but for the rounding of the first
    means; they correct both the means and the cross-products (the corrected
    two-pass algorithm of Chan, Golub & LeVeque, 1983).
    """
    d = x.shape[1]
    sxx, sxy, syy, sx, sy = np.zeros((d, d)), np.zeros(d), 0.0, np.zeros(d), 0.0
    for xb, yb in blocks(x, y):
        xc, yc = xb - mean_x, yb[:, 0] - mean_y
        sxx += xc.T @ xc
        sxy += xc.T @ yc
        syy += yc @ yc
        sx += xc.sum(axis=0)
        sy += yc.sum()
    n = len(y)
    return Moments(
        n=n, mean_x=mean_x + sx / n, mean_y=float(mean_y + sy / n),
        sxx=sxx - np.outer(sx, sx) / n, sxy=sxy - sx * sy / n, syy=float(syy - sy * sy / n),
    )


# --- Power-of-two units, for values whose squares leave float64's range -----------------------------

def column_exponents(x: np.ndarray, y: np.ndarray) -> tuple[tuple[int, ...], int]:
    """The power of two that brings each column's (and y's) largest |value| into [0.5, 1); 0 for a column of zeros.

    Raises:
        NonFiniteData: a NaN or infinite value, naming the first column that holds one.
    """
    top = np.zeros(x.shape[1] + 1)
    for xb, yb in blocks(x, y):
        top = np.maximum(top, np.append(np.max(np.abs(xb), axis=0), np.max(np.abs(yb))))
    bad = np.flatnonzero(~np.isfinite(top))
    if len(bad):
        raise non_finite_value(int(bad[0]) if bad[0] < x.shape[1] else -1)
    exponents = np.frexp(top)[1]
    return tuple(int(e) for e in exponents[:-1]), int(exponents[-1])


def power_scaled(x: np.ndarray, y: np.ndarray, x_exponent: tuple[int, ...], y_exponent: int):
    """New arrays x_j / 2**x_exponent[j] and y / 2**y_exponent: exact (but for what underflows)."""
    with np.errstate(under="ignore"):
        return np.ldexp(x, -np.asarray(x_exponent)), np.ldexp(y, -y_exponent)


def power_scaled_moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """`Moments.of_chunk` in power-of-two units (`column_exponents`), a few blocks at a time (no copy of x)."""
    x_exponent, y_exponent = column_exponents(x, y)
    rows = 16 * block_rows(x.shape[1])
    total = Moments.empty(x.shape[1])
    for start in range(0, len(y), rows):
        xs, ys = power_scaled(x[start : start + rows], y[start : start + rows], x_exponent, y_exponent)
        total = total.merge(centred_from_raw(len(ys), *raw_sums(xs, ys),
                                             second_pass=lambda mx, my: centred_products(xs, ys, mx, my)))
    return replace(total, x_exponent=x_exponent, y_exponent=y_exponent)


def power_scaled_chunks(chunks: Iterable[tuple[np.ndarray, np.ndarray]], moments: Moments):
    """Each (x, y) chunk in the power-of-two units of `moments` (as it is when they are the data's)."""
    x_exponent, y_exponent = moments.exponents
    for x, y in chunks:
        yield power_scaled(x, y, x_exponent, y_exponent) if moments.scaled else (x, y)


# --- On a CUDA device, in float64 ------------------------------------------------------------------

# Rows per block of the batched products: each block's (d + 2)² sums are one small matmul, and the
# blocks run as one bmm, so the n·(d + 2) values are read once, with the card's parallelism.
DEVICE_BLOCK_ROWS = 1 << 16


def augmented_tensor(x: np.ndarray, y: np.ndarray, device: str):
    """[x, y, 1] as one float64 (k, d + 2) tensor on `device`: x and y are copied there once, into place."""
    import torch  # deferred: the CPU path never imports torch

    k, d = x.shape
    z = torch.empty((k, d + 2), dtype=torch.float64, device=device)
    z[:, :d].copy_(_readable_tensor(x))
    z[:, d].copy_(_readable_tensor(y))
    z[:, d + 1] = 1.0
    return z


def _readable_tensor(a: np.ndarray):
    """A float64 tensor over `a`, read only (copied from once): arrays read from parquet are read-only,
    which torch.from_numpy warns about although nothing writes to them."""
    import torch  # deferred: the CPU path never imports torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def gram(z):
    """zᵀz in float64 for a tall (k, m) tensor, as a (m, m) NumPy array: blocks of rows in one bmm."""
    k, m = z.shape
    blocks_ = k // DEVICE_BLOCK_ROWS
    head = z[: blocks_ * DEVICE_BLOCK_ROWS].view(blocks_, DEVICE_BLOCK_ROWS, m)
    total = head.transpose(1, 2).bmm(head).sum(dim=0) if blocks_ else z.new_zeros((m, m))
    tail = z[blocks_ * DEVICE_BLOCK_ROWS :]
    if len(tail):
        total = total + tail.T @ tail
    return total.cpu().numpy()


def moments_on_device(x: np.ndarray, y: np.ndarray, device: str) -> Moments:
    """`Moments.of_chunk` on a CUDA device, in float64: the same raw sums and cancellation check.

    x and y move to the device once, as [x, y, 1]; one batched product gives every
    raw sum. When centring would cancel too much, a second pass sums the centred
    data on the device, block by block (no full-size centred copy).
    """
    z = augmented_tensor(x, y, device)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught below, and summed again
        moments = moments_of_augmented(z)
    # Sums beyond float64's range: summed again on the CPU, in power-of-two units (rare: |values| ≳ 1e154).
    return Moments.of_chunk(x, y) if moments.out_of_range else moments


def moments_of_augmented(z) -> Moments:
    """Moments of x and y held on a device as z = [x, y, 1] (k, d + 2), float64."""
    n, d = len(z), z.shape[1] - 2
    g = gram(z)
    return centred_from_raw(n, g[:d, :d], g[:d, d], g[:d, d + 1], g[d, d], g[d, d + 1],
                            second_pass=lambda mean_x, mean_y: centred_on_device(z, mean_x, float(mean_y)))


def centred_on_device(z, mean_x: np.ndarray, mean_y: float) -> Moments:
    """`centred_products` on the device: the corrected two-pass sums, one block of rows at a time."""
    import torch  # deferred: the CPU path never imports torch

    n, d = len(z), z.shape[1] - 2
    means = torch.from_numpy(np.append(mean_x, mean_y)).to(z.device)
    products = z.new_zeros((d + 1, d + 1))
    sums = z.new_zeros(d + 1)
    for block in z[:, : d + 1].split(DEVICE_BLOCK_ROWS * 16):
        centred = block - means
        products += centred.T @ centred
        sums += centred.sum(dim=0)
    c, s = products.cpu().numpy(), sums.cpu().numpy()
    sx, sy = s[:d], s[d]
    return Moments(
        n=n, mean_x=mean_x + sx / n, mean_y=float(mean_y + sy / n),
        sxx=c[:d, :d] - np.outer(sx, sx) / n, sxy=c[:d, d] - sx * sy / n, syy=float(c[d, d] - sy * sy / n),
    )
