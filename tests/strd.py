"""Reader for the NIST StRD linear-regression datasets vendored in tests/data/strd/.

Each ``<Name>.dat`` is NIST's file as published (see tests/data/strd/SOURCE.md): a
header with the model, the certified regression statistics and the ANOVA table, then
the data rows. The header itself says on which lines the data rows are
("Data (lines 61 to 142)"), and how many observations and parameters there are; the
reader checks what it parses against those statements, so a damaged file fails
loudly instead of yielding a slightly wrong case.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAMES = (
    "Norris",
    "Pontius",
    "NoInt1",
    "NoInt2",
    "Filip",
    "Longley",
    "Wampler1",
    "Wampler2",
    "Wampler3",
    "Wampler4",
    "Wampler5",
)

DATA_DIR = Path(__file__).resolve().parent / "data" / "strd"

# NIST quotes certified values to 15 significant digits, so 15 is the most an
# estimate can agree by; an exact match is reported as 15 rather than infinity.
LRE_CAP = 15.0

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?"
_DATA_LINES = re.compile(r"^\s*Data\s+\(lines\s+(\d+)\s+to\s+(\d+)\)")
_OBSERVATIONS = re.compile(r"^\s*(\d+)\s+Observations\b")
_PARAMETERS = re.compile(r"(\d+)\s+Parameters?\s+\(")
_LEVEL = re.compile(r"\b(Lower|Average|Higher)\s+Level of Difficulty", re.IGNORECASE)
_COEF = re.compile(rf"^\s*B(\d+)\s+({_NUMBER})\s+({_NUMBER})\s*$")
_RESIDUAL_SD = re.compile(rf"^\s*Standard Deviation\s+({_NUMBER})\s*$")
_R_SQUARED = re.compile(rf"^\s*R-Squared\s+({_NUMBER})\s*$")


@dataclass(frozen=True, eq=False)
class StrdCase:
    """One NIST StRD linear least-squares problem and its certified results.

    ``x`` holds the regressors without the intercept column: for the polynomial
    models (Pontius, Filip, Wampler1-5) its columns are x, x**2, ..., x**k computed
    in float64, for Longley the six predictors, otherwise the single predictor.
    ``coef`` and ``coef_sd`` belong to those columns in order; the intercept's
    certified value and standard deviation are kept apart (``intercept_value`` is
    0.0 and ``intercept_sd`` None for the no-intercept models NoInt1 and NoInt2).
    The arrays are read-only. ``eq=False`` because field-wise equality of NumPy
    arrays has no single truth value.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    intercept: bool
    coef: np.ndarray
    intercept_value: float
    coef_sd: np.ndarray
    intercept_sd: float | None
    residual_sd: float
    r_squared: float
    level: str | None

    @property
    def n(self) -> int:
        """Number of observations."""
        return int(self.y.shape[0])

    @property
    def d(self) -> int:
        """Number of regressor columns, the intercept excluded."""
        return int(self.x.shape[1])


@dataclass(frozen=True)
class StrdFile:
    """The parts of one .dat file, as the decimal strings NIST printed.

    Kept as strings so that an exact-arithmetic check can read the very digits in
    the file rather than their nearest float64.
    """

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    coefficients: tuple[tuple[int, str, str], ...]  # (index k of Bk, estimate, sd)
    residual_sd: str
    r_squared: str
    level: str | None


def path(name: str) -> Path:
    """Path of the vendored ``<name>.dat``, found next to this module, not the cwd."""
    if name not in NAMES:
        raise KeyError(f"unknown StRD dataset {name!r}; expected one of {NAMES}")
    return DATA_DIR / f"{name}.dat"


def _number(text: str) -> str:
    # Fortran-style 'D' exponents are legal in NIST's files in principle; mpmath
    # and float() only know 'E'.
    return text.replace("D", "E").replace("d", "e")


def _search(pattern: re.Pattern[str], lines: list[str], what: str, name: str) -> re.Match[str]:
    for line in lines:
        match = pattern.search(line)
        if match:
            return match
    raise ValueError(f"{name}.dat: no {what} found in the header")


@functools.lru_cache(maxsize=None)
def read(name: str) -> StrdFile:
    """Parse ``<name>.dat`` into its certified values and data rows, as strings."""
    # splitlines() copes with NIST's CRLF line ends as well as LF.
    lines = path(name).read_text(encoding="ascii").splitlines()

    span = _search(_DATA_LINES, lines, "'Data (lines a to b)' statement", name)
    first, last = int(span.group(1)), int(span.group(2))
    n_obs = int(_search(_OBSERVATIONS, lines, "observation count", name).group(1))
    n_par = int(_search(_PARAMETERS, lines, "parameter count", name).group(1))
    level_match = _LEVEL.search("\n".join(lines))
    level = level_match.group(1).lower() if level_match else None

    # The column labels sit on the line just above the first data row.
    label = lines[first - 2].split()
    if not label or label[0] != "Data:":
        raise ValueError(f"{name}.dat: line {first - 1} is not the 'Data:' label line")
    columns = tuple(label[1:])
    rows = tuple(tuple(_number(v) for v in line.split()) for line in lines[first - 1 : last])
    if len(rows) != n_obs:
        raise ValueError(f"{name}.dat: {len(rows)} data rows, the header says {n_obs}")
    for i, row in enumerate(rows, start=first):
        if len(row) != len(columns):
            raise ValueError(f"{name}.dat line {i}: {len(row)} values for columns {columns}")

    # Certified values: from the 'Certified Regression Statistics' heading up to the ANOVA table.
    start = next(i for i, line in enumerate(lines) if "Certified Regression Statistics" in line)
    stop = next(i for i, line in enumerate(lines) if "Analysis of Variance" in line)
    block = lines[start:stop]
    coefficients = []
    for line in block:
        match = _COEF.match(line)
        if match:
            coefficients.append((int(match.group(1)), _number(match.group(2)), _number(match.group(3))))
    if len(coefficients) != n_par:
        raise ValueError(f"{name}.dat: {len(coefficients)} certified coefficients, the header says {n_par}")
    residual_sd = _number(_search(_RESIDUAL_SD, block, "residual standard deviation", name).group(1))
    r_squared = _number(_search(_R_SQUARED, block, "R-squared", name).group(1))
    return StrdFile(name, columns, rows, tuple(coefficients), residual_sd, r_squared, level)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=None)
def load(name: str) -> StrdCase:
    """Load one dataset as float64 arrays with its certified values.

    Cached: the returned arrays are read-only, so sharing one case between tests is safe.
    """
    f = read(name)
    if f.columns[0] != "y":
        raise ValueError(f"{name}.dat: first data column is {f.columns[0]!r}, not 'y'")
    table = np.array([[float(v) for v in row] for row in f.rows], dtype=np.float64)
    y = table[:, 0].copy()
    predictors = table[:, 1:]

    by_index = {k: (est, sd) for k, est, sd in f.coefficients}
    intercept = 0 in by_index
    slopes = sorted(k for k in by_index if k != 0)
    d = len(slopes)
    if slopes != list(range(1, d + 1)):
        raise ValueError(f"{name}.dat: coefficient indices {sorted(by_index)} are not B1..B{d}")

    if predictors.shape[1] == d:
        x = predictors.copy()
    elif predictors.shape[1] == 1:
        # A polynomial model in one predictor: the columns are its powers 1..d.
        base = predictors[:, 0]
        x = np.column_stack([base**p for p in range(1, d + 1)])
    else:
        raise ValueError(f"{name}.dat: {predictors.shape[1]} predictor columns for {d} slope coefficients")

    return StrdCase(
        name=name,
        x=_readonly(np.ascontiguousarray(x, dtype=np.float64)),
        y=_readonly(y),
        intercept=intercept,
        coef=_readonly(np.array([float(by_index[k][0]) for k in slopes])),
        intercept_value=float(by_index[0][0]) if intercept else 0.0,
        coef_sd=_readonly(np.array([float(by_index[k][1]) for k in slopes])),
        intercept_sd=float(by_index[0][1]) if intercept else None,
        residual_sd=float(f.residual_sd),
        r_squared=float(f.r_squared),
        level=f.level,
    )


def lre(estimate, certified):
    """Log relative error: the number of leading digits on which ``estimate`` agrees.

    ``-log10(|estimate - certified| / |certified|)``, with ``|certified|`` replaced
    by 1 when ``certified == 0`` (the log absolute error), capped at 15 as NIST
    does, an exact match included. Works elementwise on arrays; returns a float for
    scalar inputs.
    """
    est = np.asarray(estimate, dtype=np.float64)
    cert = np.asarray(certified, dtype=np.float64)
    err = np.abs(est - cert)
    scale = np.where(cert == 0.0, 1.0, np.abs(cert))
    with np.errstate(divide="ignore"):
        # err == 0 gives +inf here, which the cap turns into 15.
        value = -np.log10(err / scale)
    value = np.minimum(value, LRE_CAP)
    if value.ndim == 0:
        return float(value)
    return value


__all__ = ["NAMES", "DATA_DIR", "LRE_CAP", "StrdCase", "StrdFile", "path", "read", "load", "lre"]
