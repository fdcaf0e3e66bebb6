"""Solvers: the tutorial's printed numbers, agreement with the closed form, determinism."""

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


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is fastest (and what the tasks choose)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fit(name, data, **overrides):
    info = SOLVERS[name]
    return info.fit(data, info.defaults.model_copy(update=overrides))


@pytest.fixture(scope="module")
def tutorial_fits(tutorial_data):
    return {name: fit(name, tutorial_data) for name in SOLVERS}


# --- The tutorial's printed numbers, at the precision it prints them ---------------------

def test_numpy_initial_draws_continue_the_data_stream():
    rng = random_state_after_data(DataSpec())
    w, b = rng.standard_normal(1), rng.standard_normal(1)
    # Initial bias: [-0.14451867]  Initial weight: [-0.67517827]
    assert round(b[0], 8) == -0.14451867
    assert round(w[0], 8) == -0.67517827


def test_numpy_gd_ends_on_the_tutorial_values(tutorial_fits):
    result = tutorial_fits["numpy_gd"]
    # Final bias: [1.00716318]  Final weight: [1.99588476]
    assert round(result.intercept, 8) == 1.00716318
    assert round(result.coef[0], 8) == 1.99588476


@pytest.mark.parametrize("name", FULL_BATCH_TORCH)
def test_full_batch_torch_prints_the_tutorial_values(tutorial_fits, name):
    # tensor([1.0072], requires_grad=True)  tensor([1.9959], requires_grad=True)
    assert round(tutorial_fits[name].intercept, 4) == 1.0072
    assert round(tutorial_fits[name].coef[0], 4) == 1.9959


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


def test_results_report_what_ran(tutorial_fits):
    for name, result in tutorial_fits.items():
        assert result.solver == name and result.status == OK and result.device == "cpu"
        assert result.seconds > 0
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
TOLERANCE = {"numpy_gd": 1e-7, "torch_dataloader": 5e-3}


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
def test_one_row_is_enough_to_run(name):
    result = fit(name, make_dataset(DataSpec(n=1, seed=0)), epochs=3)
    assert result.coef.shape == (1,)


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
