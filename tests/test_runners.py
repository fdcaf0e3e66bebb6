"""Task runners: threads, processes and Dask give the same fits; Dask routes GPU work by resource."""

import numpy as np
import pytest
from distributed import LocalCluster

from flows.linreg_flow import linreg_flow
from linreg.solvers import SOLVERS
from linreg.specs import RunSpec
import tasks.train

pytestmark = pytest.mark.flow


def spec(tmp_path, runner, **extra) -> RunSpec:
    return RunSpec(
        data={"n": 300, "weights": [1.5, -0.5]}, defaults={"epochs": 60}, device="cpu",
        output_dir=tmp_path / "out", runner=runner, **extra,
    )


@pytest.fixture(scope="module")
def threads_fits(prefect_server, tmp_path_factory):
    summary = linreg_flow(spec(tmp_path_factory.mktemp("threads"), "threads"), return_state=True).result()
    return {r.solver: r for r in summary.results}


def assert_same_fits(summary, reference):
    assert [r.solver for r in summary.results] == list(SOLVERS)
    for row in summary.results:
        # Every solver is seeded and single-threaded at this size: bit-identical, not just close.
        assert row.status == "ok"
        assert row.weights == reference[row.solver].weights, row.solver
        assert row.bias == reference[row.solver].bias, row.solver


def test_processes_runner_matches_threads(prefect_server, tmp_path, threads_fits):
    state = linreg_flow(spec(tmp_path, "processes"), return_state=True)
    assert state.is_completed(), state.message
    assert_same_fits(state.result(), threads_fits)


def test_dask_local_cluster_matches_threads(prefect_server, tmp_path, threads_fits):
    state = linreg_flow(spec(tmp_path, "dask"), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert_same_fits(summary, threads_fits)
    assert all(r.worker and r.worker.startswith("tcp://") for r in summary.results)


@pytest.fixture
def cluster_with_one_gpu_worker():
    """A real two-worker LocalCluster; only the second worker declares the resource GPU=1."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        cpu_workers = set(cluster.scheduler_info["workers"])
        cluster.worker_spec["gpu"] = {
            "cls": cluster.new_spec["cls"],
            "options": {**cluster.new_spec["options"], "resources": {"GPU": 1}},
        }
        cluster.sync(cluster._correct_state)
        with cluster.get_client() as client:
            client.wait_for_workers(2, timeout=120)
            gpu = [a for a, w in client.scheduler_info()["workers"].items() if w["resources"].get("GPU")]
        assert len(gpu) == 1 and gpu[0] not in cpu_workers
        yield cluster, gpu[0]


def test_cuda_tagged_tasks_run_only_on_the_gpu_worker(prefect_server, tmp_path, monkeypatch,
                                                        cluster_with_one_gpu_worker):
    cluster, gpu_worker = cluster_with_one_gpu_worker
    # Tag torch tasks `cuda` (routed as GPU work) while they still run on the CPU.
    monkeypatch.setattr(tasks.train, "routing_tags", lambda solver, device: {"cuda"} if SOLVERS[solver].uses_torch else set())
    run = spec(tmp_path, "dask", dask_address=cluster.scheduler_address)
    state = linreg_flow(run, return_state=True)
    assert state.is_completed(), state.message
    placed = {r.solver: r.worker for r in state.result().results}
    torch_solvers = [name for name, info in SOLVERS.items() if info.uses_torch]
    assert {placed[name] for name in torch_solvers} == {gpu_worker}
    assert all(r.device == "cpu" for r in state.result().results)
    assert np.isfinite([r.bias for r in state.result().results]).all()
