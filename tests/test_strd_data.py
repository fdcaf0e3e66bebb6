"""The vendored NIST StRD linear-regression files: they parse, and their numbers agree.

The exact-arithmetic check refits every model in 50-digit decimal arithmetic from
the digits printed in the file and compares with the certified values printed in
the same file. Agreement to 12 or more digits (NIST prints 15) can only happen if
both the data rows and the certified values were vendored without a transcription
error, so a later fault found with these cases is the solver's, not the data's.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from mpmath import mp

import strd

ROWS = {
    "Norris": 36,
    "Pontius": 40,
    "NoInt1": 11,
    "NoInt2": 3,
    "Filip": 82,
    "Longley": 16,
    "Wampler1": 21,
    "Wampler2": 21,
    "Wampler3": 21,
    "Wampler4": 21,
    "Wampler5": 21,
}
# Columns of the design without the intercept, as NIST's model statements give them.
DEGREE = {"Pontius": 2, "Filip": 10, "Longley": 6, **{f"Wampler{i}": 5 for i in range(1, 6)}}
NO_INTERCEPT = {"NoInt1", "NoInt2"}

# Filip's design has condition number ~1.8e15, so its normal matrix ~3e30: 50
# digits leave ~20 correct, well beyond the 15 NIST prints (checked: 100 digits
# give the same float64 coefficients).
DPS = 50
MIN_LRE = 12.0


def test_names_are_the_eleven_in_nist_order():
    assert strd.NAMES == tuple(ROWS)
    assert len(set(strd.NAMES)) == 11


@pytest.mark.parametrize("name", strd.NAMES)
def test_loads_with_nist_shapes(name):
    case = strd.load(name)
    d = DEGREE.get(name, 1)
    assert case.name == name
    assert case.x.shape == (ROWS[name], d) and case.x.dtype == np.float64
    assert case.y.shape == (ROWS[name],) and case.y.dtype == np.float64
    assert case.intercept is (name not in NO_INTERCEPT)
    assert case.coef.shape == case.coef_sd.shape == (d,)
    # Certified coefficients in the file: one per x column, plus B0 with an intercept.
    assert len(strd.read(name).coefficients) == d + int(case.intercept)
    if case.intercept:
        assert case.intercept_sd is not None and math.isfinite(case.intercept_sd)
    else:
        assert case.intercept_value == 0.0 and case.intercept_sd is None
    assert case.level in {"lower", "average", "higher"}
    assert np.isfinite(case.x).all() and np.isfinite(case.y).all()
    assert not case.x.flags.writeable and not case.y.flags.writeable


@pytest.mark.parametrize("name", ["Pontius", "Filip", "Wampler1", "Wampler5"])
def test_polynomial_columns_are_float64_powers(name):
    case = strd.load(name)
    base = np.array([float(row[1]) for row in strd.read(name).rows])
    for p in range(1, case.d + 1):
        np.testing.assert_array_equal(case.x[:, p - 1], base**p)


def test_levels_and_certified_values_as_published():
    # Spot values copied from NIST's pages, independent of the parser.
    assert strd.load("Norris").level == "lower"
    assert strd.load("NoInt1").level == "average"
    assert strd.load("Filip").level == "higher"
    assert strd.load("Norris").intercept_value == -0.262323073774029
    assert strd.load("Longley").coef[5] == 1829.15146461355
    assert strd.load("Filip").coef[-1] == -0.402962525080404e-04
    assert strd.load("Wampler5").r_squared == 0.224668921574940e-02
    assert strd.load("NoInt2").coef_sd[0] == 0.420827318078432e-01


def test_load_does_not_depend_on_cwd(tmp_path, monkeypatch):
    strd.load.cache_clear()
    strd.read.cache_clear()
    monkeypatch.chdir(tmp_path)
    assert strd.load("NoInt2").n == 3


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    # The header's own statements (data lines, observation count) catch a lost row.
    lines = strd.path("Norris").read_bytes().splitlines(keepends=True)
    del lines[70]
    (tmp_path / "Norris.dat").write_bytes(b"".join(lines))
    monkeypatch.setattr(strd, "DATA_DIR", tmp_path)
    strd.read.cache_clear()
    strd.load.cache_clear()
    try:
        with pytest.raises(ValueError):
            strd.load("Norris")
    finally:
        strd.read.cache_clear()
        strd.load.cache_clear()


def test_unknown_name_is_refused():
    with pytest.raises(KeyError):
        strd.load("Misra1a")


def _exact_fit(name):
    """Least squares in DPS-digit arithmetic on the file's decimal strings.

    Returns the coefficients (B0 first when there is one), their standard
    deviations, the residual standard deviation and R-squared, as mpf values.
    R-squared is centred with an intercept and uncentred without, as NIST defines it.
    """
    f = strd.read(name)
    case = strd.load(name)
    with mp.workdps(DPS):
        rows = [[mpmath.mpf(v) for v in row] for row in f.rows]
        y = [row[0] for row in rows]
        columns = [[mpmath.mpf(1)] * len(rows)] if case.intercept else []
        if len(f.columns) - 1 == case.d:
            columns += [[row[j] for row in rows] for j in range(1, len(f.columns))]
        else:
            # Powers formed in mpmath from the exact decimal x, never in float64.
            columns += [[row[1] ** p for row in rows] for p in range(1, case.d + 1)]
        n, k = len(rows), len(columns)
        X = mp.matrix(n, k)
        for j, column in enumerate(columns):
            for i, value in enumerate(column):
                X[i, j] = value
        Y = mp.matrix(y)
        # Householder QR, so the conditioning is not squared for the estimates.
        beta, _ = mp.qr_solve(X, Y)
        residual = Y - X * beta
        rss = sum(r**2 for r in residual)
        s2 = rss / (n - k)
        if case.intercept:
            mean = sum(y) / n
            tss = sum((v - mean) ** 2 for v in y)
        else:
            tss = sum(v**2 for v in y)
        inverse = mp.inverse(X.T * X)
        sds = [mp.sqrt(s2 * inverse[j, j]) for j in range(k)]
        return list(beta), sds, mp.sqrt(s2), 1 - rss / tss


@pytest.mark.parametrize("name", strd.NAMES)
def test_certified_values_are_reproduced_exactly(name):
    case = strd.load(name)
    beta, sds, residual_sd, r_squared = _exact_fit(name)
    certified = ([case.intercept_value] if case.intercept else []) + list(case.coef)
    certified_sd = ([case.intercept_sd] if case.intercept else []) + list(case.coef_sd)

    coef_lre = strd.lre([float(b) for b in beta], certified)
    sd_lre = strd.lre([float(s) for s in sds], certified_sd)
    assert coef_lre.min() >= MIN_LRE, f"{name} coefficient LREs {np.round(coef_lre, 2)}"
    assert sd_lre.min() >= MIN_LRE, f"{name} standard-deviation LREs {np.round(sd_lre, 2)}"
    assert strd.lre(float(residual_sd), case.residual_sd) >= MIN_LRE
    assert strd.lre(float(r_squared), case.r_squared) >= MIN_LRE


def test_lre_hand_examples():
    assert strd.lre(1.0, 1.0) == 15.0  # exact: capped, not infinite
    assert strd.lre(1.001, 1.0) == pytest.approx(3.0)
    assert strd.lre(-2.0000002, -2.0) == pytest.approx(7.0, abs=1e-6)
    # Certified zero: the log absolute error.
    assert strd.lre(1e-9, 0.0) == pytest.approx(9.0)
    assert strd.lre(0.0, 0.0) == 15.0
    # Agreement beyond 15 digits still counts as 15.
    assert strd.lre(1.0 + 2**-52, 1.0) == 15.0
    # Off by more than the value itself: fewer than zero digits agree.
    assert strd.lre(30.0, 1.0) == pytest.approx(-math.log10(29.0))
    assert isinstance(strd.lre(1.5, 1.0), float)


def test_lre_is_elementwise():
    out = strd.lre(np.array([1.0, 1.01, 5e-4]), np.array([1.0, 1.0, 0.0]))
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, [15.0, 2.0, -math.log10(5e-4)])
