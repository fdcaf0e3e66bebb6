"""Data generation: bit-identical to the tutorial, and spec validation."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from pydantic import ValidationError

from linreg.data import iter_dataset_chunks, make_dataset, random_state_after_data
from linreg.specs import DataSpec


def tutorial_draws(n=1000, seed=42):
    """The tutorial's own data code, verbatim apart from the names."""
    rng = np.random.RandomState(seed)
    b0, w0 = 1, 2
    x = rng.standard_normal(size=(n, 1))
    e = 0.1 * rng.standard_normal(size=(n, 1))
    y = b0 + x * w0 + e
    return x, y, rng


def test_default_spec_is_bit_identical_to_the_tutorial(tutorial_data):
    x, y, _ = tutorial_draws()
    assert_array_equal(tutorial_data.x, x)
    assert_array_equal(tutorial_data.y, y[:, 0])


def test_first_row_matches_the_tutorial_print(tutorial_data):
    # The tutorial prints: First item in train_data: (tensor([0.4967]), tensor([2.1334]))
    assert tutorial_data.x[0, 0] == pytest.approx(0.4967, abs=5e-5)  # printed to 4 decimals
    assert tutorial_data.y[0] == pytest.approx(2.1334, abs=5e-5)


def test_stream_after_data_continues_the_tutorial_stream():
    _, _, rng = tutorial_draws()
    continued = random_state_after_data(DataSpec())
    assert_array_equal(continued.standard_normal(5), rng.standard_normal(5))


def test_stream_skip_is_chunk_independent(monkeypatch):
    spec = DataSpec(n=1001, weights=[1.0, 2.0, 3.0], seed=7)
    whole = random_state_after_data(spec).standard_normal(4)
    monkeypatch.setattr("linreg.data._SKIP_CHUNK", 17)
    assert_array_equal(random_state_after_data(spec).standard_normal(4), whole)


def test_multifeature_shapes_and_truth():
    spec = DataSpec(n=500, weights=[2.0, -1.0, 0.5], bias=3.0, noise=0.0, seed=1)
    data = make_dataset(spec)
    assert data.x.shape == (500, 3) and data.y.shape == (500,)
    np.testing.assert_allclose(data.y, 3.0 + data.x @ [2.0, -1.0, 0.5], rtol=0, atol=1e-12)


def test_generation_does_not_touch_global_numpy_state():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    make_dataset(DataSpec(n=10))
    assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"n": 0}, "n", "must be in [1, 1000000000], got 0"),
        ({"n": -5}, "n", "must be in [1, 1000000000]"),
        ({"n": 2.5}, "n", "valid integer"),
        ({"n": 10**10}, "n", "must be in [1, 1000000000]"),
        ({"weights": []}, "weights", "at least 1 item"),
        ({"weights": [1.0, float("nan")]}, "weights", "finite"),
        ({"weights": [float("inf")]}, "weights", "finite"),
        ({"bias": float("nan")}, "bias", "finite"),
        ({"noise": float("inf")}, "noise", "finite"),
        ({"noise": -0.1}, "noise", "must be in [0.0, inf)"),
        ({"seed": -1}, "seed", "must be in [0, 4294967295]"),
        ({"seed": 2**32}, "seed", "must be in [0, 4294967295]"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_bad_data_spec_names_the_field_and_range(fields, field, words):
    with pytest.raises(ValidationError) as info:
        DataSpec(**fields)
    error = info.value.errors()[0]
    assert error["loc"][0] == field
    assert words in error["msg"]


@pytest.mark.parametrize("rows", [1, 7, 64, 1000])
def test_chunked_generation_is_identical_whatever_the_chunk_size(rows):
    spec = DataSpec(n=300, weights=[0.5, -2.0, 3.0, 1.0], bias=0.2, noise=0.7, seed=9)
    whole = make_dataset(spec)
    chunks = list(iter_dataset_chunks(spec, rows=rows))
    assert all(len(x) <= rows for x, _ in chunks)
    assert_array_equal(np.concatenate([x for x, _ in chunks]), whole.x)
    assert_array_equal(np.concatenate([y for _, y in chunks]), whole.y)


def test_chunked_default_spec_is_the_tutorial():
    x, y, _ = tutorial_draws()
    chunks = list(iter_dataset_chunks(DataSpec(), rows=333))
    assert_array_equal(np.concatenate([c for c, _ in chunks]), x)
    assert_array_equal(np.concatenate([c for _, c in chunks]), y[:, 0])
