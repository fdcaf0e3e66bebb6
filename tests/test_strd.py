"""The closed form against NIST's certified values (StRD), in correct digits (LRE).

Gates (issue 19): every coefficient at least 9 digits, 7 on Filip and Wampler5
(the float64 data limits: x and its powers are rounded before any method starts);
within 1 digit of that when the data is streamed by row group from parquet, and
on the device path. Standard errors reach 7 wherever the coefficients reach
their gate. docs/accuracy.md has the table these produce.
"""

import numpy as np
import pytest

from linreg.data import Dataset
from linreg.solvers import SOLVERS, closed_form
from linreg.specs import DataSpec
from linreg.storage import open_dataset, write_dataset_chunks
from strd import NAMES, lre, load

GATE = {name: 7.0 if name in ("Filip", "Wampler5") else 9.0 for name in NAMES}
SE_GATE = 7.0
STREAM_ROWS = 1_000_000  # each dataset replicated to at least this many rows: the same certified answer
ROW_GROUP = 65_536
# The promised digits are an estimate: they may exceed what was delivered by a fraction of a
# digit (NoInt1: 15 promised, 14.7 delivered), never by a whole one. The streamed copies are the
# hardest case: replicated rows repeat one rounding error 25,000 times, where the twin's
# perturbations, independent per row as real data's are, average out (Pontius: 13.3 for 12.6).
PROMISE_SLACK = 1.0


def as_dataset(case, x=None, y=None) -> Dataset:
    x = case.x if x is None else x
    y = case.y if y is None else y
    return Dataset(x=x, y=y, spec=DataSpec(n=len(y), weights=[0.0] * case.d, bias=0.0, noise=0.0, seed=0))


def closed_form_fit(data, case, device="cpu"):
    info = SOLVERS["closed_form"]
    return info.fit(data, info.defaults.model_copy(update={"fit_intercept": case.intercept, "device": device}))


def estimates(fit, case):
    return np.concatenate([[fit.intercept], fit.coef]) if case.intercept else fit.coef


def certified(case):
    return np.concatenate([[case.intercept_value], case.coef]) if case.intercept else case.coef


def std_errors(fit, case):
    solution = fit.least_squares
    return np.concatenate([[solution.intercept_se], solution.coef_se]) if case.intercept else solution.coef_se


def certified_se(case):
    return np.concatenate([[case.intercept_sd], case.coef_sd]) if case.intercept else case.coef_sd


@pytest.mark.parametrize("name", NAMES)
def test_in_memory_every_certified_statistic(name):
    case = load(name)
    fit = closed_form_fit(as_dataset(case), case)
    assert fit.status == "ok"
    assert np.min(lre(estimates(fit, case), certified(case))) >= GATE[name]
    assert np.min(lre(std_errors(fit, case), certified_se(case))) >= SE_GATE
    solution = fit.least_squares
    assert lre(solution.residual_sd, case.residual_sd) >= SE_GATE
    assert lre(solution.r_squared, case.r_squared) >= SE_GATE  # NoInt: uncentred, as NIST certifies it


@pytest.mark.parametrize("name", NAMES)
def test_streamed_by_row_group_from_parquet(name, tmp_path):
    case = load(name)
    copies = -(-STREAM_ROWS // case.n)
    x, y = np.tile(case.x, (copies, 1)), np.tile(case.y, copies)
    chunks = ((x[i : i + ROW_GROUP], y[i : i + ROW_GROUP]) for i in range(0, len(y), ROW_GROUP))
    spec = DataSpec(n=len(y), weights=[0.0] * case.d, bias=0.0, noise=0.0, seed=0)
    ref = write_dataset_chunks(spec, chunks, tmp_path / f"{name}.parquet")
    data = open_dataset(ref, memory_budget=1)
    assert data.arrays() is None and data.row_groups == -(-len(y) // ROW_GROUP)  # really streamed
    fit = closed_form_fit(data, case)
    assert fit.status == "ok"
    delivered = np.min(lre(estimates(fit, case), certified(case)))
    assert delivered >= GATE[name] - 1
    assert fit.least_squares.expected_digits <= delivered + PROMISE_SLACK  # a million rows add rounding: said


@pytest.mark.parametrize("name", NAMES)
def test_on_the_device_path_dry_run_on_the_cpu(name, monkeypatch):
    """The CUDA branch of the closed form, its float64 device moments run on the CPU."""
    from linreg import moments

    calls = []

    def on_cpu(x, y, device):
        calls.append(device)
        return moments.moments_on_device(x, y, "cpu")

    monkeypatch.setattr(closed_form, "moments_on_device", on_cpu)
    case = load(name)
    fit = closed_form_fit(as_dataset(case), case, device="cuda:0")
    assert calls == ["cuda:0"] and fit.device == "cuda:0"
    assert np.min(lre(estimates(fit, case), certified(case))) >= GATE[name] - 1


@pytest.mark.parametrize("name", ["Filip", "Wampler5", "Wampler4"])
def test_lost_digits_are_said(name):
    case = load(name)
    fit = closed_form_fit(as_dataset(case), case)
    solution = fit.least_squares
    # The promise is never more than what was delivered ...
    assert solution.expected_digits <= np.min(lre(estimates(fit, case), certified(case)))
    # ... and below 9 digits it is said, with the condition number.
    assert solution.expected_digits < 9 and fit.message.startswith("ill-conditioned design (condition number")
    assert solution.method == "QR, extended precision"


@pytest.mark.parametrize("extended", [True, False], ids=["extended", "float64-qr"])
@pytest.mark.parametrize("name", NAMES)
def test_the_promise_never_exceeds_the_digits_delivered(name, extended, monkeypatch):
    """Also where long double is float64 (Windows, macOS on ARM) or the design is wider than
    MAX_EXTENDED_COLUMNS: the float64 QR then misses some gates, and must say so."""
    from linreg import least_squares

    monkeypatch.setattr(least_squares, "HAS_EXTENDED", extended)
    case = load(name)
    fit = closed_form_fit(as_dataset(case), case)
    solution = fit.least_squares
    delivered = np.min(lre(estimates(fit, case), certified(case)))
    assert solution.expected_digits <= delivered + PROMISE_SLACK
    if solution.expected_digits < 9:
        assert fit.message.startswith("ill-conditioned design")
    if delivered < GATE[name]:  # below the gate only without extended precision, and then said
        assert not extended and fit.message.startswith("ill-conditioned design")
    if not extended and solution.method != "normal equations":
        assert solution.method == "QR, float64"


@pytest.mark.parametrize("name", ["Norris", "NoInt1", "NoInt2", "Longley"])
def test_well_conditioned_data_keeps_the_fast_path(name):
    case = load(name)
    fit = closed_form_fit(as_dataset(case), case)
    assert fit.least_squares.method == "normal equations" and fit.message is None


def test_condition_numbers_are_those_of_the_scaled_design():
    case = load("Longley")
    fit = closed_form_fit(as_dataset(case), case)
    design = np.column_stack([np.ones(case.n), case.x])
    centred = case.x - case.x.mean(axis=0)
    expected = np.linalg.cond(design / np.linalg.norm(design, axis=0))
    expected_centred = np.linalg.cond(centred / np.linalg.norm(centred, axis=0))
    assert fit.least_squares.condition_number == pytest.approx(expected, rel=1e-6)
    assert fit.least_squares.condition_number_centred == pytest.approx(expected_centred, rel=1e-6)


def test_a_duplicated_column_is_rank_deficient_and_names_the_columns():
    case = load("Longley")
    x = np.column_stack([case.x, case.x[:, 2]])  # a seventh column equal to the third
    fit = closed_form_fit(as_dataset(case, x=x), case)
    assert fit.status == "rank_deficient"
    assert "columns involved: w2, w6" in fit.message and "minimum-norm solution in standardised units" in fit.message
    assert fit.least_squares.expected_digits == 0.0
    # The minimum-norm split of a duplicated column: equal shares.
    assert fit.coef[2] == pytest.approx(fit.coef[6], rel=1e-9)
