"""The GPU path, dry-run on the CPU: every CUDA-only change checked against today's CPU parameters."""

import logging
import types

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

import linreg.moments as moments
from linreg.least_squares import normal_equations
from linreg.data import make_dataset
from linreg.solvers import SOLVERS
from linreg.solvers import _torch, closed_form, torch_dataloader
from linreg.specs import DataSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def parameters(result) -> np.ndarray:
    return np.array([result.intercept, *result.coef])


# --- closed form: moments on the device in float64 -------------------------------------------------

@pytest.mark.parametrize("n, d, shift", [(5, 2, 0.0), (70_000, 1, 0.0), (3000, 4, 1e4)])
def test_device_moments_match_the_cpu_moments(monkeypatch, n, d, shift):
    """The same raw sums (or, with a large mean, the centred pass), in blocks of rows: several here."""
    monkeypatch.setattr(moments, "DEVICE_BLOCK_ROWS", 1024)
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, d)) + shift
    y = 1.0 + x @ np.arange(1.0, d + 1) + 0.1 * rng.standard_normal(n)
    cpu, dry = moments.Moments.of_chunk(x, y), moments.moments_on_device(x, y, "cpu")
    assert dry.n == cpu.n
    for name in ("mean_x", "mean_y", "sxx", "sxy", "syy"):
        expected = np.asarray(getattr(cpu, name))
        assert_allclose(getattr(dry, name), expected, rtol=0, atol=1e-11 * np.max(np.abs(expected)))


def test_the_centred_pass_runs_when_raw_sums_would_cancel(monkeypatch):
    calls = []
    monkeypatch.setattr(moments, "centred_on_device", lambda *a: calls.append(a) or moments.Moments.empty(1))
    x = np.linspace(1e6, 1e6 + 1, 100).reshape(-1, 1)
    moments.moments_on_device(x, 2 * x[:, 0], "cpu")
    assert len(calls) == 1


def test_closed_form_on_cuda_agrees_with_the_cpu_to_1e_9(monkeypatch):
    """The CUDA branch of `fit`, with the device moments dry-run on the CPU."""
    monkeypatch.setattr(closed_form, "moments_on_device", lambda x, y, device: moments.moments_on_device(x, y, "cpu"))
    data = make_dataset(DataSpec(n=5000, weights=[2.0, -1.0, 0.5], seed=3))
    info = SOLVERS["closed_form"]
    cpu = info.fit(data, info.defaults)
    cuda = info.fit(data, info.defaults.model_copy(update={"device": "cuda:0"}))
    assert cuda.device == "cuda:0" and cpu.device == "cpu"
    assert_allclose(parameters(cuda), parameters(cpu), rtol=1e-9)


def test_streamed_closed_form_takes_the_device_moments_per_chunk():
    rng = np.random.default_rng(0)
    chunks = [(rng.standard_normal((k, 2)), rng.standard_normal(k)) for k in (300, 1, 700)]
    cpu = moments.accumulate(chunks, 2)
    dry = moments.accumulate(chunks, 2, of_chunk=lambda x, y: moments.moments_on_device(x, y, "cpu"))
    assert_allclose(normal_equations(dry, True).coef, normal_equations(cpu, True).coef, rtol=1e-12)


# --- full batch: compiled on CUDA only, eager everywhere else ---------------------------------------

def test_cpu_tensors_are_never_compiled():
    loss_of = lambda x, y: ((x - y) ** 2).mean()  # noqa: E731
    assert _torch.compiled_on_cuda(loss_of, torch.zeros(1 << 25, 1)) is loss_of


def test_a_compile_that_fails_falls_back_to_eager_with_a_warning(monkeypatch, caplog):
    def broken(fn, **_):
        def call(*a):
            raise RuntimeError("no triton")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    big_cuda = types.SimpleNamespace(device=torch.device("cuda", 0), numel=lambda: _torch.COMPILE_MIN_ELEMENTS)
    loss_of = lambda x, y: ((x - y) ** 2).mean()  # noqa: E731
    call = _torch.compiled_on_cuda(loss_of, big_cuda)
    a, b = torch.ones(4), torch.zeros(4)
    with caplog.at_level(logging.WARNING, logger="linreg.solvers"):
        assert call(a, b).item() == 1.0 and call(a, b).item() == 1.0
    assert sum("torch.compile failed" in r.message for r in caplog.records) == 1


def test_a_compiled_backward_that_fails_falls_back_to_eager(monkeypatch, caplog):
    """The backward may compile lazily, at the first backward(): its failure is caught too."""

    class BrokenBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, value):
            return value.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("inductor: backward failed to compile")

    def compiled_forward_only(fn, **_):
        return lambda *a: BrokenBackward.apply(fn(*a))

    monkeypatch.setattr(torch, "compile", compiled_forward_only)
    big_cuda = types.SimpleNamespace(device=torch.device("cuda", 0), numel=lambda: _torch.COMPILE_MIN_ELEMENTS)
    w = torch.ones(1, requires_grad=True)
    loss_of = lambda x, y: ((x * w - y) ** 2).mean()  # noqa: E731
    call = _torch.compiled_on_cuda(loss_of, big_cuda)
    with caplog.at_level(logging.WARNING, logger="linreg.solvers"):
        loss = call(torch.ones(4), torch.zeros(4))
    w.grad = None  # what the training loop's zero_grad does next
    loss.backward()  # eager: no error
    assert w.grad.item() == 2.0
    assert sum("backward failed to compile" in r.message for r in caplog.records) == 1


# --- torch_dataloader: same batches on every device; the static-buffer step ----------------------

def test_batches_come_from_the_cpu_generator_whatever_the_device():
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    sampler = torch_dataloader.ShuffledBatches(103, 10, g1, "cpu")
    batches = list(sampler)
    expected = torch.randperm(103, generator=g2).split(10)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    for got, want in zip(batches, expected):
        assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("n, batch_size", [(1000, 50), (1030, 50), (40, 64)])
def test_static_step_takes_the_same_steps_as_the_eager_loop(monkeypatch, n, batch_size):
    """The CUDA-graph step's buffers and arithmetic, run eagerly on the CPU: the same fit, to float32."""
    data = make_dataset(DataSpec(n=n, weights=[2.0, -1.0], seed=11))
    info = SOLVERS["torch_dataloader"]
    spec = info.defaults.model_copy(update={"epochs": 30, "batch_size": batch_size})
    eager = info.fit(data, spec)
    monkeypatch.setattr(
        torch_dataloader, "static_step",
        lambda model, loss_fn, opt, bs, d, device: torch_dataloader.StaticStep(model, loss_fn, opt, bs, d, device, False),
    )
    static = info.fit(data, spec)
    assert_allclose(parameters(static), parameters(eager), rtol=1e-6, atol=1e-7)
    assert_allclose(static.loss_history, eager.loss_history, rtol=1e-5)


def test_the_cpu_loop_takes_no_static_step():
    """No graph on the CPU: the tutorial's numbers (tests/test_solvers.py) come from the eager loop."""
    assert torch_dataloader.static_step(None, None, None, 50, 1, "cpu") is None
