"""Solvers: the tutorial's printed numbers, agreement with the closed form, determinism."""

from time import perf_counter

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from linreg.data import make_dataset, random_state_after_data
from linreg.devices import DeviceError, resolve_device, torch_threads
from linreg.solvers import DIVERGED, OK, SOLVERS
from linreg.specs import DataSpec

ITERATIVE = [name for name, info in SOLVERS.items() if info.iterative]
TORCH = [name for name, info in SOLVERS.items() if info.uses_torch]
FULL_BATCH_TORCH = ["torch_autograd", "torch_optim", "torch_module", "torch_sequential"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fit(name, data, **overrides):
    info = SOLVERS[name]
    return info.fit(data, info.defaults.model_copy(update=overrides))


def timed_fit(name, data):
    """The fit and the wall time of the whole call around it."""
    start = perf_counter()
    result = fit(name, data)
    return result, perf_counter() - start


@pytest.fixture(scope="module")
def timed_tutorial_fits(tutorial_data):
    return {name: timed_fit(name, tutorial_data) for name in SOLVERS}


@pytest.fixture(scope="module")
def tutorial_fits(timed_tutorial_fits):
    return {name: result for name, (result, _) in timed_tutorial_fits.items()}


# --- The tutorial's printed numbers, at the precision it prints them ---------------------

def test_numpy_initial_draws_continue_the_data_stream():
    rng = random_state_after_data(DataSpec())
    w, b = rng.standard_normal(1), rng.standard_normal(1)
    # Initial bias: [-0.14451867]  Initial weight: [-0.67517827]  (printed to 8 decimals)
    assert b[0] == pytest.approx(-0.14451867, abs=5e-9)
    assert w[0] == pytest.approx(-0.67517827, abs=5e-9)


def test_numpy_gd_ends_on_the_tutorial_values(tutorial_fits):
    result = tutorial_fits["numpy_gd"]
    # Final bias: [1.00716318]  Final weight: [1.99588476]  (printed to 8 decimals)
    assert result.intercept == pytest.approx(1.00716318, abs=5e-9)
    assert result.coef[0] == pytest.approx(1.99588476, abs=5e-9)


@pytest.mark.parametrize("name", FULL_BATCH_TORCH)
def test_full_batch_torch_prints_the_tutorial_values(tutorial_fits, name):
    # tensor([1.0072], requires_grad=True)  tensor([1.9959], requires_grad=True)  (4 decimals)
    assert tutorial_fits[name].intercept == pytest.approx(1.0072, abs=5e-5)
    assert tutorial_fits[name].coef[0] == pytest.approx(1.9959, abs=5e-5)


def test_torch_module_ends_on_the_tutorial_values(tutorial_fits):
    result = tutorial_fits["torch_module"]
    # Final bias (class + PyTorch): 1.0071604251861572
    # Final weight (class + PyTorch): 1.9958817958831787
    assert abs(result.intercept - 1.0071604251861572) < 1e-6
    assert abs(result.coef[0] - 1.9958817958831787) < 1e-6


def test_dataloader_ends_near_the_closed_form(tutorial_fits):
    reference = tutorial_fits["closed_form"]
    result = tutorial_fits["torch_dataloader"]
    assert abs(result.intercept - reference.intercept) < 1e-3
    assert np.abs(result.coef - reference.coef).max() < 1e-3


def test_closed_form_matches_the_normal_equations(tutorial_data):
    result = fit("closed_form", tutorial_data)
    design = np.column_stack([np.ones(tutorial_data.n), tutorial_data.x])
    beta = np.linalg.solve(design.T @ design, design.T @ tutorial_data.y)
    assert_allclose([result.intercept, *result.coef], beta, rtol=1e-12)


def test_results_report_what_ran(timed_tutorial_fits):
    for name, (result, wall) in timed_tutorial_fits.items():
        assert result.solver == name and result.status == OK and result.device == "cpu"
        # Measured, and of the fit itself: within the wall time of the call that made it.
        assert 0 < result.seconds <= wall, (name, result.seconds, wall)
        expected_epochs = 0 if name == "closed_form" else 1000
        assert result.epochs == expected_epochs == len(result.loss_history)


def test_loss_history_decreases_to_the_noise_floor(tutorial_fits):
    for name in ITERATIVE:
        history = tutorial_fits[name].loss_history
        assert history[-1] < history[0]
        assert_allclose(history[-1], 0.1**2, rtol=0.05)  # the noise variance


# --- Other data: every solver against the closed form -----------------------------------

# Full-batch GD converges to the closed form up to float rounding (float64: 1e-7,
# float32: 1e-4); minibatch SGD keeps a noise ball of about sqrt(lr * noise^2 / batch).
TOLERANCE = {"numpy_gd": 1e-7, "torch_dataloader": 5e-3, "numpy_sgd": 5e-3}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ITERATIVE)
def test_every_solver_agrees_with_closed_form_on_three_features(name, seed):
    data = make_dataset(DataSpec(n=600, weights=[2.0, -1.0, 0.5], bias=-0.3, noise=0.2, seed=seed))
    reference = fit("closed_form", data)
    result = fit(name, data)
    assert result.status == OK
    atol = TOLERANCE.get(name, 1e-4)
    assert_allclose(result.coef, reference.coef, atol=atol)
    assert_allclose(result.intercept, reference.intercept, atol=atol)


@pytest.mark.parametrize("name", TORCH)
def test_torch_solvers_are_deterministic_and_leave_global_rng_alone(name):
    data = make_dataset(DataSpec(n=200, weights=[1.0, 2.0], seed=5))
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first, second = fit(name, data, epochs=20), fit(name, data, epochs=20)
    assert torch.equal(torch.get_rng_state(), before)
    assert_array_equal(first.coef, second.coef)
    assert first.intercept == second.intercept


# --- Divergence and edge cases ----------------------------------------------------------

@pytest.mark.parametrize("name", ITERATIVE)
def test_a_learning_rate_that_blows_up_is_reported_as_diverged(name, tutorial_data):
    result = fit(name, tutorial_data, lr=10.0, epochs=300)
    assert result.status == DIVERGED
    assert 0 <= result.diverged_epoch < 300
    assert not np.isfinite(result.loss_history[result.diverged_epoch])
    assert np.isfinite(result.loss_history[: result.diverged_epoch]).all()
    assert f"epoch {result.diverged_epoch}" in result.message


def test_batch_size_above_n_is_clipped_with_a_warning(caplog):
    data = make_dataset(DataSpec(n=30, seed=2))
    result = fit("torch_dataloader", data, batch_size=1000, epochs=5)
    assert result.status == OK
    assert "batch_size 1000 is larger than n=30; using 30" in caplog.text


@pytest.mark.parametrize("name", list(SOLVERS))
def test_one_row_is_enough_to_fit_a_line_through_it(name):
    # One row: every line through the point is a least-squares fit. Descent from any
    # start converges onto one (the residual shrinks by |1 - 2 lr (1 + x^2)| per epoch);
    # the closed form says the design is rank-deficient and picks the minimum-norm one
    # in standardised units: the line through the point with slope 0.
    data = make_dataset(DataSpec(n=1, seed=0))
    result = fit(name, data)
    assert result.status == ("rank_deficient" if name == "closed_form" else OK) and result.coef.shape == (1,)
    residual = data.y[0] - result.intercept - result.coef[0] * data.x[0, 0]
    float_rounding = 1e-5 if SOLVERS[name].uses_torch else 1e-12  # float32 or float64, |y| ~ 4.6
    assert abs(residual) <= float_rounding * abs(data.y[0])
    if name == "closed_form":
        assert result.coef[0] == 0.0 and "columns involved: w0" in result.message
    else:
        assert result.loss_history[-1] < 1e-6 * result.loss_history[0]


# --- Devices ----------------------------------------------------------------------------

def test_auto_falls_back_to_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize(
    "device, count, words",
    [
        ("cuda", 0, "CUDA is not available"),
        ("cuda:0", 0, "CUDA is not available"),
        ("cuda:2", 2, "only 2 CUDA device(s) exist"),
        ("gpu", 1, "unknown device 'gpu'"),
        ("cuda:x", 1, "unknown device"),
    ],
)
def test_unusable_devices_are_refused(monkeypatch, device, count, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(DeviceError) as info:
        resolve_device(device)
    assert words in str(info.value)


def test_cuda_resolves_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == "cuda:0"
    assert resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto") == "cuda:0"


def test_thread_rule_keeps_total_within_cores():
    assert torch_threads(1000, concurrent_tasks=6, cores=2) == 1  # tiny: one thread each
    assert torch_threads(10**7, concurrent_tasks=1, cores=8) == 8
    assert torch_threads(10**7, concurrent_tasks=3, cores=8) == 2
    assert torch_threads(10**7, concurrent_tasks=16, cores=8) == 1


# --- numpy_sgd: the DataLoader section's algorithm in NumPy -------------------------------

def test_numpy_sgd_ends_near_the_closed_form(tutorial_fits):
    reference = tutorial_fits["closed_form"]
    result = tutorial_fits["numpy_sgd"]
    assert abs(result.intercept - reference.intercept) < 1e-3
    assert np.abs(result.coef - reference.coef).max() < 1e-3


def test_numpy_sgd_is_seeded_by_the_data_spec_alone():
    data = make_dataset(DataSpec(n=120, weights=[1.0, -2.0], seed=9))
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    first, second = fit("numpy_sgd", data, epochs=15), fit("numpy_sgd", data, epochs=15)
    assert_array_equal(np.random.get_state()[1], before)  # global NumPy state untouched
    assert_array_equal(first.coef, second.coef)
    assert_array_equal(first.loss_history, second.loss_history)
    other = fit("numpy_sgd", make_dataset(DataSpec(n=120, weights=[1.0, -2.0], seed=10)), epochs=15)
    assert not np.array_equal(first.coef, other.coef)


def test_numpy_sgd_batch_size_above_n_is_clipped_with_a_warning(caplog):
    data = make_dataset(DataSpec(n=30, seed=2))
    result = fit("numpy_sgd", data, batch_size=1000, epochs=5)
    assert result.status == OK
    assert "batch_size 1000 is larger than n=30; using 30" in caplog.text


def test_numpy_sgd_full_batch_is_gradient_descent():
    # With one batch of all rows, a step is exactly numpy_gd's step, in any row order.
    from linreg.solvers.numpy_sgd import sgd_epoch, with_intercept_column

    data = make_dataset(DataSpec(n=50, weights=[1.5, 0.5], seed=4))
    theta = np.array([0.3, -0.2, 0.1])
    w, b = theta[:2].copy(), theta[2]
    loss = sgd_epoch(with_intercept_column(data.x), data.y, theta, 0.05, batch_size=50)
    residual = data.y - (b + data.x @ w)
    assert_allclose(loss, np.mean(residual**2), rtol=1e-12)
    assert_allclose(theta[:2], w + 0.05 * 2 * np.mean(data.x * residual[:, None], axis=0), rtol=1e-12)
    assert_allclose(theta[2], b + 0.05 * 2 * np.mean(residual), rtol=1e-12)


def test_numpy_sgd_keeps_a_short_last_batch():
    # n = 7, batch 3: batches of 3, 3 and 1 row; the epoch loss weighs each by its size.
    from linreg.solvers.numpy_sgd import sgd_epoch, with_intercept_column

    data = make_dataset(DataSpec(n=7, seed=1))
    design = with_intercept_column(data.x)
    theta = np.zeros(2)
    loss = sgd_epoch(design, data.y, theta, lr=1e-9, batch_size=3)
    assert_allclose(loss, np.mean(data.y**2), rtol=1e-6)  # theta barely moves from 0


# --- closed_form: centred normal equations, checked against lstsq -------------------------

def lstsq_reference(x, y):
    beta, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(y)), x]), y, rcond=None)
    return beta


@pytest.mark.parametrize(
    "spec",
    [
        DataSpec(n=50, weights=[0.5], seed=1),
        DataSpec(n=600, weights=[2.0, -1.0, 0.5], bias=-0.3, noise=0.2, seed=0),
        DataSpec(n=20_000, weights=[float(k) for k in range(1, 11)], bias=3.0, noise=1.0, seed=7),
        DataSpec(n=5000, weights=[1e-3, 1e3], bias=1e4, noise=0.5, seed=3),  # large mean of y: second pass
    ],
)
def test_closed_form_agrees_with_lstsq(spec):
    data = make_dataset(spec)
    result = fit("closed_form", data)
    ours, reference = np.array([result.intercept, *result.coef]), lstsq_reference(data.x, data.y)
    # Relative to the solution's norm, not per element: both solves round by about
    # eps * ||beta||, spread over every coefficient, so one of 1e-3 beside ones of 1e3 and
    # 1e4 moves by ~1e-12 (up to 1e-9 of itself, depending on the BLAS build). Measured
    # here: at most 8e-15 of the norm, so 1e-12 leaves room for any build and still
    # catches a lost digit.
    error = np.linalg.norm(ours - reference) / np.linalg.norm(reference)
    assert error <= 1e-12, (error, ours, reference)


def test_closed_form_spans_many_blocks(monkeypatch):
    from linreg import moments

    monkeypatch.setattr(moments, "BLOCK_ELEMENTS", 64)  # 256-row blocks: 40 of them, the last short
    data = make_dataset(DataSpec(n=10_050, weights=[2.0, -3.0], seed=8))
    result = fit("closed_form", data)
    assert_allclose([result.intercept, *result.coef], lstsq_reference(data.x, data.y), rtol=1e-10)


def test_closed_form_solves_an_ill_conditioned_design_by_qr_and_says_what_it_lost():
    from linreg.least_squares import normal_equations
    from linreg.moments import Moments

    base = make_dataset(DataSpec(n=400, weights=[1.0, 1.0], seed=6))
    x = np.column_stack([base.x[:, 0], base.x[:, 0] + 1e-7 * base.x[:, 1]])  # condition number ~3e7
    assert normal_equations(Moments.of_chunk(x, base.y), True) is None  # the fast path declines
    data = type(base)(x=x, y=base.y, spec=base.spec)
    result = fit("closed_form", data)
    solution = result.least_squares
    assert result.status == OK and solution.method == "QR, extended precision"
    assert 1e7 < solution.condition_number_centred < 1e8
    # The coefficients are ~1e7: lstsq (float64 SVD) agrees to the digits the data determine.
    assert 4 < solution.expected_digits < 9
    reference = lstsq_reference(x, base.y)
    assert_allclose([result.intercept, *result.coef], reference, rtol=10 ** -(solution.expected_digits - 1))
    kappa = f"{solution.condition_number_centred:.3g}"
    assert f"ill-conditioned design (condition number {kappa} of the scaled centred design)" in result.message
    assert f"about {int(solution.expected_digits)} correct digits" in result.message


def test_closed_form_of_a_constant_feature_says_it_is_rank_deficient():
    base = make_dataset(DataSpec(n=30, seed=2))
    data = type(base)(x=np.full((30, 1), 3.0), y=base.y, spec=base.spec)
    result = fit("closed_form", data)
    assert result.status == "rank_deficient" and "columns involved: w0." in result.message
    # Minimum norm in standardised units: the constant column gets nothing, the intercept the mean.
    assert result.coef[0] == 0.0 and result.intercept == pytest.approx(data.y.mean(), rel=1e-14)
    assert np.isnan(result.least_squares.coef_se).all()


def test_closed_form_does_not_copy_the_data():
    import tracemalloc

    data = make_dataset(DataSpec(n=400_000, weights=[2.0], seed=1))  # x and y: 3.2 MB each
    tracemalloc.start()
    try:
        fit("closed_form", data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3_200_000  # a design matrix [1, x] alone would be 6.4 MB; x itself is 3.2 MB


@pytest.mark.parametrize("name", list(SOLVERS))
def test_without_an_intercept_every_solver_fits_through_the_origin(name, one_torch_thread):
    # Data with a bias of 3 that the model may not use: the fit must be the origin-constrained
    # least squares, sum(x y) / sum(x x) per column, not the slope of the fit with a bias.
    data = make_dataset(DataSpec(n=400, weights=[2.0, -1.0], bias=3.0, noise=0.1, seed=9))
    expected = np.linalg.lstsq(data.x, data.y, rcond=None)[0]
    with_bias = np.linalg.lstsq(np.column_stack([np.ones(data.n), data.x]), data.y, rcond=None)[0][1:]
    result = fit(name, data, fit_intercept=False)
    assert result.status == OK and result.intercept == 0.0  # reported as 0.0, never fitted
    tolerance = 1e-12 if name == "closed_form" else 2e-2 if SOLVERS[name].minibatch else 1e-4
    assert_allclose(result.coef, expected, rtol=tolerance)
    # ... and the test could tell them apart: the fit with a bias is ~0.13 away, the fit ~10x closer.
    assert np.linalg.norm(result.coef - expected) < 0.1 * np.linalg.norm(with_bias - expected)


def test_without_an_intercept_r2_is_uncentred():
    from linreg.evaluate import training_mse_r2
    from linreg.moments import Moments

    data = make_dataset(DataSpec(n=300, weights=[1.5], bias=2.0, seed=4))
    coef = np.linalg.lstsq(data.x, data.y, rcond=None)[0]
    residual = data.y - data.x @ coef
    _, r2 = training_mse_r2(Moments.of_chunk(data.x, data.y), coef, 0.0, fit_intercept=False)
    assert r2 == pytest.approx(1 - residual @ residual / (data.y @ data.y), rel=1e-12)  # statsmodels' convention
    solution = fit("closed_form", data, fit_intercept=False).least_squares
    assert solution.r_squared == pytest.approx(r2, rel=1e-12) and solution.tss == pytest.approx(data.y @ data.y)


def _solve(x, y, fit_intercept=True):
    from linreg.least_squares import solve_least_squares
    from linreg.moments import Moments

    return solve_least_squares(Moments.of_chunk(x, y), lambda: [(x, y)], fit_intercept)


def test_a_near_exact_fit_keeps_the_fast_path_and_warns_of_nothing():
    # The RSS cancels against syy here (R² = 1 − 1e-14): it is summed from the residuals in one
    # more pass, the normal equations stand, and nothing is lost to warn about.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 2))
    y = 1e4 + x @ [1.0, 2.0] + 1e-4 * rng.standard_normal(1000)
    solution = _solve(x, y)
    assert solution.method == "normal equations" and solution.warning is None
    reference = np.linalg.lstsq(np.column_stack([np.ones(1000), x]), y, rcond=None)
    assert solution.rss == pytest.approx(float(reference[1][0]), rel=1e-6)
    assert solution.expected_digits >= 9


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_a_constant_target_is_fitted_exactly_without_a_false_warning(fit_intercept):
    x = np.random.default_rng(1).standard_normal((50, 2))
    y = np.full(50, 3.0 if fit_intercept else 0.0)
    solution = _solve(x, y, fit_intercept)
    assert np.abs(solution.coef).max() <= 1e-12 and solution.intercept == pytest.approx(y[0])
    assert solution.warning is None and solution.rss <= 1e-20


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_non_finite_data_is_refused_naming_the_cause_and_huge_data_fits():
    from linreg.least_squares import NonFiniteData

    x = np.random.default_rng(2).standard_normal((20, 1))
    with pytest.raises(NonFiniteData, match="^the target holds a NaN or an infinite value"):
        _solve(x, np.where(np.arange(20) == 5, np.nan, 1.0))
    huge = 1e160 * np.random.default_rng(3).standard_normal(20)  # fitted in power-of-two units now
    assert np.isfinite(_solve(x, huge).coef).all()


def test_tiny_features_give_finite_standard_errors():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 2))
    y = 1 + x @ [1.0, -1.0] + 0.1 * rng.standard_normal(200)
    # 1e-152: the squares are still normal floats (below ~1e-154 they go subnormal and lose digits),
    # while 1 / sxx is 1e302: variances divided by squared scales sat at the edge of overflow.
    tiny, plain = _solve(x * 1e-152, y), _solve(x, y)
    assert np.isfinite(tiny.coef_se).all() and np.isfinite(tiny.intercept_se)
    assert_allclose(tiny.coef_se * 1e-152, plain.coef_se, rtol=1e-10)
    assert tiny.intercept_se == pytest.approx(plain.intercept_se, rel=1e-10)


def test_the_rounding_twin_moves_values_both_ways_within_float64_rounding():
    from linreg.least_squares import DATA_ROUNDOFF, EXTENDED, rounding_twin

    values = np.ones((4000, 1), dtype=EXTENDED)
    moved = (rounding_twin(values, np.random.default_rng(0)) - values)[:, 0].astype(np.float64)
    assert (moved > 0).mean() > 0.4 and (moved < 0).mean() > 0.4  # not one-sided, not stuck at 1
    assert np.abs(moved).max() <= DATA_ROUNDOFF
