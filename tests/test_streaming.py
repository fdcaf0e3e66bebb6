"""Data larger than the memory budget: every solver streamed from parquet, and the wiring that shows progress."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from linreg.data import iter_dataset_chunks, make_dataset
from linreg.least_squares import solve_least_squares
from linreg.moments import Moments, accumulate
from linreg.solvers import OK, SOLVERS
from linreg.specs import DataSpec
from linreg.storage import ParquetSource, open_dataset, write_dataset_chunks

SPEC = DataSpec(n=3000, weights=[2.0, -1.0], bias=0.5, noise=0.2, seed=3)
ROW_GROUP = 500  # six row groups
FULL_BATCH = ["numpy_gd", "torch_autograd", "torch_optim", "torch_module", "torch_sequential"]
MINIBATCH = ["torch_dataloader", "numpy_sgd"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = tmp_path_factory.mktemp("streaming") / "data.parquet"
    return write_dataset_chunks(SPEC, iter_dataset_chunks(SPEC, rows=ROW_GROUP), path)


@pytest.fixture(scope="module")
def source(ref):
    data = open_dataset(ref, memory_budget=1)  # one byte: nothing fits, everything streams
    assert isinstance(data, ParquetSource) and data.row_groups == SPEC.n // ROW_GROUP
    return data


@pytest.fixture(scope="module")
def in_memory(ref):
    data = open_dataset(ref)
    assert not isinstance(data, ParquetSource)
    return data


def fit(name, data, progress=None, **overrides):
    info = SOLVERS[name]
    return info.fit(data, info.defaults.model_copy(update=overrides), progress=progress)


@pytest.mark.parametrize("name", FULL_BATCH)
def test_streamed_full_batch_descent_is_the_in_memory_descent(name, source, in_memory):
    streamed, whole = fit(name, source, epochs=40), fit(name, in_memory, epochs=40)
    assert streamed.status == whole.status == OK and streamed.epochs == 40
    # Only the order of the float sums differs: float64 to 1e-10, float32 to 1e-5.
    tolerance = 1e-10 if name == "numpy_gd" else 1e-5
    assert_allclose(streamed.coef, whole.coef, rtol=tolerance, atol=tolerance)
    assert_allclose(streamed.intercept, whole.intercept, rtol=tolerance, atol=tolerance)
    assert_allclose(streamed.loss_history, whole.loss_history, rtol=10 * tolerance)


@pytest.mark.parametrize("name", MINIBATCH)
def test_streamed_minibatch_sgd_ends_near_the_closed_form(name, source, in_memory):
    reference = fit("closed_form", in_memory)
    result = fit(name, source, epochs=60)
    assert result.status == OK and result.epochs == 60
    # The minibatch noise ball, as for the in-memory fit (tests/test_solvers.py).
    assert_allclose(result.coef, reference.coef, atol=5e-3)
    assert_allclose(result.intercept, reference.intercept, atol=5e-3)
    assert result.loss_history[-1] < result.loss_history[0]


@pytest.mark.parametrize("name", MINIBATCH)
def test_streamed_minibatch_sgd_is_deterministic_and_reshuffles_each_epoch(name, source):
    first, second = fit(name, source, epochs=3), fit(name, source, epochs=3)
    assert first.coef.tolist() == second.coef.tolist()
    assert first.loss_history.tolist() == second.loss_history.tolist()
    other = fit(name, source, epochs=3, lr=0.02)
    assert other.coef.tolist() != first.coef.tolist()


def test_streamed_closed_form_matches_lstsq(source):
    data = make_dataset(SPEC)
    beta = np.linalg.lstsq(np.column_stack([np.ones(SPEC.n), data.x]), data.y, rcond=None)[0]
    result = fit("closed_form", source)
    assert result.status == OK
    assert_allclose([result.intercept, *result.coef], beta, rtol=1e-10)


def test_streamed_closed_form_of_collinear_features_is_the_minimum_norm_solution(tmp_path):
    spec = DataSpec(n=400, weights=[1.0], seed=6)
    x = make_dataset(spec).x[:, 0]
    twin = np.column_stack([x, x])  # perfectly collinear: infinitely many least-squares fits
    y = 1.0 + 2.0 * x
    chunks = [(twin[i : i + 100], y[i : i + 100]) for i in range(0, 400, 100)]
    spec2 = DataSpec(n=400, weights=[1.0, 1.0], seed=6)
    ref = write_dataset_chunks(spec2, chunks, tmp_path / "twin.parquet")
    result = fit("closed_form", open_dataset(ref, memory_budget=1))
    # Said, not hidden: the status, the columns involved, and what the numbers are.
    assert result.status == "rank_deficient"
    assert "columns involved: w0, w1" in result.message and "minimum-norm solution" in result.message
    assert_allclose(result.coef, [1.0, 1.0], rtol=1e-8)  # the least-norm split of the slope 2
    assert_allclose(result.intercept, 1.0, rtol=1e-8)


def test_streamed_closed_form_of_values_beyond_float64s_squares_is_the_in_memory_one(tmp_path):
    """Row groups of 1e200: each summed in its own power-of-two units, merged exactly, as in memory."""
    spec = DataSpec(n=400, weights=[1.0, 1.0], seed=8)
    data = make_dataset(spec)
    x = data.x * [1e200, 1e-5]
    y = (data.y + 0.1 * np.random.default_rng(8).standard_normal(400)) * 1e190
    chunks = [(x[i : i + 100], y[i : i + 100]) for i in range(0, 400, 100)]
    ref = write_dataset_chunks(spec, chunks, tmp_path / "huge.parquet")
    streamed, whole = fit("closed_form", open_dataset(ref, memory_budget=1)), fit("closed_form", open_dataset(ref))
    assert streamed.status == whole.status == OK and streamed.message is None
    assert np.isfinite(streamed.coef).all() and np.all(streamed.coef != 0)
    # Only the blocking of the sums differs: relative to each coefficient (they differ by 195 orders).
    assert_allclose(streamed.coef, whole.coef, rtol=1e-12)
    assert_allclose(streamed.intercept, whole.intercept, rtol=1e-12)
    assert_allclose(streamed.least_squares.coef_se, whole.least_squares.coef_se, rtol=1e-10)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_progress_reports_every_row_of_every_epoch(name, source):
    seen = []
    info = SOLVERS[name]
    spec = info.defaults.model_copy(update={"epochs": 3})
    result = info.fit(source, spec, progress=seen.append)
    assert result.status == OK
    assert sum(seen) == info.rows_streamed(source, spec) == SPEC.n * (3 if info.iterative else 1)
    assert max(seen) <= SPEC.n  # one call per chunk, never one per row


def test_progress_is_for_streaming_only(in_memory):
    info = SOLVERS["numpy_gd"]
    assert info.rows_streamed(in_memory, info.defaults) == 0


@pytest.mark.parametrize("name", list(SOLVERS))
def test_in_memory_fits_report_each_epoch_and_stop_when_progress_raises(name, in_memory):
    """The pipeline's Ctrl-C: its callback raises, and a fit in a pool thread stops at its next epoch."""
    info = SOLVERS[name]
    spec = info.defaults.model_copy(update={"epochs": 5})
    seen = []
    assert info.fit(in_memory, spec, progress=seen.append).status == OK
    assert seen == [in_memory.n] * (5 if info.iterative else 1)

    class Stop(Exception):
        pass

    def stop_at_the_second(rows):
        seen.append(rows)
        if len(seen) == 2:
            raise Stop

    seen.clear()
    if info.iterative:
        with pytest.raises(Stop):
            info.fit(in_memory, spec, progress=stop_at_the_second)
        assert len(seen) == 2


def test_moments_merge_in_any_split_matches_one_pass():
    data = make_dataset(DataSpec(n=1001, weights=[1.0, -2.0, 0.5], bias=3.0, seed=2))
    whole = Moments.of_chunk(data.x, data.y)
    for sizes in ([1001], [1, 1000], [500, 1, 500], [7] * 143, [1] * 1001):
        edges = np.cumsum([0, *sizes])
        merged = accumulate(((data.x[a:b], data.y[a:b]) for a, b in zip(edges, edges[1:])), 3)
        assert merged.n == 1001
        assert_allclose(merged.mean_x, whole.mean_x, rtol=1e-12)
        assert_allclose(merged.sxx, whole.sxx, rtol=1e-10)
        assert_allclose(merged.sxy, whole.sxy, rtol=1e-10)
        assert merged.syy == pytest.approx(whole.syy, rel=1e-10)
    assert Moments.empty(3).merge(whole) is whole and whole.merge(Moments.empty(3)) is whole


@pytest.mark.parametrize("weights", [[1.0], [1.0, 2.0]], ids=["one-column", "two-columns"])  # two raw-sum paths
def test_moments_far_from_the_origin_take_the_second_pass(weights, monkeypatch):
    from linreg import moments as moments_module

    data = make_dataset(DataSpec(n=2000, weights=weights, bias=1e7, seed=8))
    x = data.x + 1e7  # raw sums of squares would cancel every digit of the spread
    second_passes = []
    real_second_pass = moments_module.centred_products

    def counted_second_pass(*args):
        second_passes.append(len(args[1]))
        return real_second_pass(*args)

    monkeypatch.setattr(moments_module, "centred_products", counted_second_pass)
    one_chunk = Moments.of_chunk(x, data.y)
    assert second_passes == [2000]
    # Streamed as 50 row groups: each takes the second pass, and merging keeps every digit.
    merged = accumulate(zip(np.array_split(x, 50), np.array_split(data.y, 50)), len(weights))
    assert len(second_passes) == 51
    xc, yc = x - x.mean(axis=0), data.y - data.y.mean()
    for moments in (one_chunk, merged):
        # Relative to the matrix's norm: merging means of 1e7 rounds each by ~1e-9, an error
        # the size of sxx's diagonal times 1e-11, which is 1e-9 of the small off-diagonal.
        # Raw sums would be off by 1e-2 of the norm.
        assert np.linalg.norm(moments.sxx - xc.T @ xc) <= 1e-9 * np.linalg.norm(xc.T @ xc)
        assert np.linalg.norm(moments.sxy - xc.T @ yc) <= 1e-9 * np.linalg.norm(xc.T @ yc)
        assert moments.syy == pytest.approx(yc @ yc, rel=1e-9)
    # The slopes do not depend on the shift: both paths give the well-conditioned unshifted fit's.
    closed_form = SOLVERS["closed_form"]
    unshifted = closed_form.fit(data, closed_form.defaults).coef
    shifted = closed_form.fit(type(data)(x=x, y=data.y, spec=data.spec), closed_form.defaults).coef
    assert_allclose(shifted, unshifted, rtol=1e-9)
    assert_allclose(solve_least_squares(merged, lambda: [(x, data.y)]).coef, unshifted, rtol=1e-9)


@pytest.mark.flow
def test_a_run_larger_than_the_memory_budget_streams_every_solver(prefect_server, tmp_path, monkeypatch):
    import tasks.progress
    from flows.linreg_flow import linreg_flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from linreg.specs import RunSpec

    monkeypatch.setenv("LINREG_MEMORY_BUDGET", "1000")  # bytes: 2000 rows x 3 columns do not fit
    monkeypatch.setattr(tasks.progress, "CHUNK_ROWS", 100)  # so that the progress artifacts appear
    run = RunSpec(output_dir=tmp_path / "out", device="cpu", data={"n": 2000, "weights": [2.0, -1.0]},
                  defaults={"epochs": 30})
    state = linreg_flow(run, return_state=True)
    summary = state.result()
    assert state.is_completed() and state.message == f"all {len(SOLVERS)} solvers ok"
    by_name = {r.solver: r for r in summary.results}
    assert set(by_name) == set(SOLVERS) and all(r.status == "ok" for r in summary.results)
    assert by_name["numpy_gd"].epochs == 30
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="linreg-train-")))}
    assert {f"linreg-train-{name.replace('_', '-')}-progress" for name in SOLVERS} <= keys
