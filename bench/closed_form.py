"""Section "closed_form": the closed form against scikit-learn and a memory-bandwidth floor.

Cases: n=1e8, d=1 and n=1e7, d=10, data in memory as float64 (x (n, d) and
y (n,), as `linreg.data.Dataset` holds them). Each case times, in turn, our
`closed_form.fit`, scikit-learn's `LinearRegression().fit` and, for d=1, the
floor: one NumPy pass (`sum`) over a 2 GB array, whose GB/s is the most a pass
that reads x and y once could reach.

Then the two paths of the reference side by side at n=1e7: the fast path (normal
equations from the moments) on well-conditioned data, and the stable path (an
extended-precision TSQR pass, `linreg.least_squares`) on Wampler1's design, a
degree-5 polynomial of x = 0..20 whose certified coefficients are all 1,
replicated to n rows (the least-squares solution is unchanged).

Everything above runs twice: with the process's BLAS threads (what the pipeline gets)
and with BLAS held to one thread for both sides (threadpoolctl, this process
only). On a small machine shared with other work, a multi-threaded BLAS call
waits whenever one of its threads is descheduled, and the single-threaded floor
does not; the one-thread rows compare like with like.
"""

from contextlib import nullcontext

import numpy as np

from bench.harness import BenchConfig, Row, interleave, max_abs_difference
from linreg.data import Dataset
from linreg.solvers import SOLVERS
from linreg.specs import DataSpec

FLOOR_BYTES = 2 * 10**9
AGREEMENT = 1e-8  # two exact least-squares solutions, in float64
TARGETS = {1: 20.0, 10: 10.0}  # speed-up over scikit-learn, by d
FLOOR_FRACTION = 0.5


def cases(config: BenchConfig) -> list[tuple[int, int]]:
    """(n, d) of each case."""
    return [(200_000, 1), (50_000, 10)] if config.quick else [(100_000_000, 1), (10_000_000, 10)]


def synthetic(n: int, d: int, seed: int) -> Dataset:
    """y = 1 + x @ w + 0.5 e with x, e ~ N(0, 1), from a fast Generator (not the tutorial's stream)."""
    rng = np.random.default_rng(seed)
    weights = np.linspace(-2.0, 2.0, d) if d > 1 else np.array([2.0])
    x = rng.standard_normal((n, d))
    y = x @ weights
    y += 1.0
    y += 0.5 * rng.standard_normal(n)
    return Dataset(x=x, y=y, spec=DataSpec(n=n, weights=weights.tolist(), bias=1.0, noise=0.5, seed=seed))


def sklearn_fit(data: Dataset):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(data.x, data.y)
    return np.array([model.intercept_, *model.coef_])


def ours_fit(data: Dataset):
    info = SOLVERS["closed_form"]
    result = info.fit(data, info.defaults)
    return np.array([result.intercept, *result.coef])


def blas_threads(limit: int | None):
    """A context holding BLAS to `limit` threads in this process, or changing nothing."""
    if limit is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=limit, user_api="blas")


def case_rows(data: Dataset, floor: np.ndarray | None, config: BenchConfig, limit: int | None) -> list[Row]:
    """Ours against scikit-learn (and, given `floor`, against one pass over it), interleaved."""
    contenders = {"ours": lambda: ours_fit(data), "sklearn": lambda: sklearn_fit(data)}
    if floor is not None:
        contenders["floor"] = floor.sum
    with blas_threads(limit):
        t = interleave(contenders, reps=config.reps)
    threads = "process default" if limit is None else f"{limit}"
    data_bytes = data.x.nbytes + data.y.nbytes
    ours_gbs = data_bytes / t["ours"].median / 1e9
    row = Row(
        section="closed_form", case=f"closed_form, BLAS threads: {threads}", baseline="scikit-learn LinearRegression",
        n=data.n, d=data.d, reps=config.reps, ours_s=t["ours"].median, baseline_s=t["sklearn"].median,
        agreement=max_abs_difference(t["ours"].result, t["sklearn"].result), tolerance=AGREEMENT,
        target=TARGETS.get(data.d), extra={"ours_GBps": ours_gbs},
    )
    rows = [row]
    if floor is not None:
        floor_gbs = floor.nbytes / t["floor"].median / 1e9
        # The floor as a row of its own: its time is the floor's GB/s over the bytes the fit reads,
        # so that "speed-up" is our GB/s over the floor's, the fraction the target names.
        rows.append(Row(
            section="closed_form", case=f"closed_form GB/s, BLAS threads: {threads}",
            baseline=f"one NumPy pass over {floor.nbytes / 1e9:g} GB (sum)", n=data.n, d=data.d, reps=config.reps,
            ours_s=t["ours"].median, baseline_s=data_bytes / floor_gbs / 1e9, target=FLOOR_FRACTION,
            note=(f"BLAS threads {threads}: the fit reads x and y ({data_bytes / 1e9:.1f} GB) at {ours_gbs:.1f} GB/s, "
                  f"the floor's pass runs at {floor_gbs:.1f} GB/s"),
            extra={"ours_GBps": ours_gbs, "floor_GBps": floor_gbs, "fraction": ours_gbs / floor_gbs},
        ))
    return rows


STABLE_DEGREE = 5  # Wampler1: y = 1 + x + x² + x³ + x⁴ + x⁵, x = 0..20, exact in float64


def wampler1(n: int) -> Dataset:
    """Wampler1's 21 rows replicated to n: condition number 1.6e3 (centred, scaled), correlations 2.7e6."""
    x1 = np.arange(n, dtype=np.float64) % 21
    x = np.column_stack([x1**p for p in range(1, STABLE_DEGREE + 1)])
    y = 1.0 + x.sum(axis=1)
    return Dataset(x=x, y=y, spec=DataSpec(n=n, weights=[1.0] * STABLE_DEGREE, bias=1.0, noise=0.0, seed=0))


def path_rows(config: BenchConfig) -> list[Row]:
    """The stable path's seconds on ill-conditioned data against the fast path's on well-conditioned data."""
    n = 50_000 if config.quick else 10_000_000
    hard, easy = wampler1(n), synthetic(n, STABLE_DEGREE, config.seed)
    info = SOLVERS["closed_form"]
    methods = {}

    def timed(data, key):
        def fit():
            result = info.fit(data, info.defaults)
            methods[key] = result.least_squares.method
            return np.array([result.intercept, *result.coef])
        return fit

    # One timed turn each, no warm-up: the stable path reads 1e7 rows twice, at about 8 µs a row on this machine.
    t = interleave({"stable": timed(hard, "stable"), "fast": timed(easy, "fast")}, reps=1, warmup=0)
    error = float(np.max(np.abs(t["stable"].result - 1.0)))
    return [Row(
        section="closed_form", case=f"closed_form stable path ({methods['stable']}), Wampler1 design",
        baseline=f"closed_form fast path ({methods['fast']}), well-conditioned data of the same size",
        n=n, d=STABLE_DEGREE, reps=1, ours_s=t["stable"].median, baseline_s=t["fast"].median,
        note=(f"what ill-conditioned data costs: {t['stable'].median / t['fast'].median:.1f}x the fast path; "
              f"largest error of the stable fit against the certified 1.0: {error:.2g}"),
        checks={"stable path taken": methods["stable"] != "normal equations",
                "fast path taken": methods["fast"] == "normal equations", "certified to 1e-8": error <= 1e-8},
        extra={"max_error": error},
    )]


def run(config: BenchConfig) -> list[Row]:
    rows = path_rows(config)
    for n, d in cases(config):
        data = synthetic(n, d, config.seed)
        # The floor needs 2 GB of its own: only beside the d=1 case, and freed with it.
        floor = np.ones((FLOOR_BYTES if not config.quick else 16 * 10**6) // 8) if d == 1 else None
        for limit in (None, 1):
            rows += case_rows(data, floor, config, limit)
        del data, floor
    return rows
