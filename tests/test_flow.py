"""Real flow runs on a temporary Prefect API: the wiring, not the maths."""

import json
import os
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

from flows.cli import main
from flows.linreg_flow import linreg_flow
from linreg.solvers import SOLVERS
from linreg.solvers.registry import SolverInfo
from linreg.specs import RunSpec, SolverSpec

pytestmark = pytest.mark.flow
PNG = b"\x89PNG\r\n\x1a\n"


def small_run(tmp_path, **fields) -> RunSpec:
    fields.setdefault("data", {"n": 200, "weights": [2.0, -1.0]})
    fields.setdefault("defaults", {"epochs": 50})
    return RunSpec(output_dir=tmp_path / "out", device="cpu", **fields)


def runs_under(client, flow_run_id) -> list:
    """The flow run's id and its subflow runs' ids."""
    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
    )
    return [flow_run_id, *(child.id for child in children)]


def artifacts_of(flow_run_id):
    """Artifacts of a run and of its training subflow, by key."""
    with get_client(sync_client=True) as client:
        ids = runs_under(client, flow_run_id)
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    return {a.key: a for a in found}


def task_runs_of(flow_run_id, expected: int, timeout: float = 15.0):
    """Task runs reach the API through events, so poll until all have arrived.

    Fails, naming what did arrive, if fewer than `expected` have by `timeout`:
    a partial list would only make the caller's check fail further from the cause.
    """
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            ids = runs_under(client, flow_run_id)
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        if len(runs) >= expected:
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"only {len(runs)} of {expected} task runs of flow run {flow_run_id} reached the API "
                        f"within {timeout:g} s: {sorted(r.name for r in runs)}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def default_run(prefect_server, tmp_path_factory):
    run = small_run(tmp_path_factory.mktemp("flow"))
    state = linreg_flow(run, return_state=True)
    return run, state, state.result()


def test_run_completes_with_every_solver(default_run):
    run, state, summary = default_run
    assert state.is_completed() and state.message == f"all {len(SOLVERS)} solvers ok"
    assert (summary.device, summary.device_reason) == ("cpu", "cpu as asked")
    assert [r.solver for r in summary.results] == list(SOLVERS)
    assert all(r.status == "ok" and r.epochs == (0 if r.solver == "closed_form" else 50) for r in summary.results)


def test_run_records_the_wall_time_of_its_training(default_run):
    _, state, summary = default_run
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    # Every fit ran inside the training step, and the step inside the flow run.
    assert max(r.seconds for r in summary.results) <= summary.training_seconds <= flow_run.total_run_time.total_seconds()


def test_run_folder_holds_summary_csv_and_plots(default_run):
    run, _, summary = default_run
    folder = run.output_dir / "runs" / summary.run_id
    # d = 2: besides the partial-regression plots, the losses and the reference's four diagnostic
    # panels, the figures a d > 1 fit needs.
    assert sorted(p.name for p in folder.iterdir()) == [
        "coefficients.png", "diagnostics.png", "fits.png", "losses.png", "predicted.png", "residuals.png",
        "summary.csv", "summary.json"]
    saved = json.loads((folder / "summary.json").read_text())
    assert set(saved["dataset"]) >= {"path", "sha256", "n", "d", "weights", "bias", "noise", "seed"}
    assert saved["dataset"]["n"] == 200 and saved["dataset"]["weights"] == [2.0, -1.0]
    keys = {"solver", "weights", "bias", "status", "seconds", "epochs", "final_loss",
            "weights_abs_error", "bias_abs_error", "mse", "r2", "device"}
    assert all(keys <= set(row) for row in saved["results"])
    assert len((folder / "summary.csv").read_text().splitlines()) == 1 + len(SOLVERS)
    assert all((folder / name).read_bytes().startswith(PNG)
               for name in ("fits.png", "losses.png", "predicted.png", "residuals.png", "coefficients.png",
                            "diagnostics.png"))
    assert not list(folder.glob(".*.tmp"))


def test_artifacts_are_published(default_run):
    _, state, summary = default_run
    artifacts = artifacts_of(state.state_details.flow_run_id)
    table = json.loads(artifacts["linreg-summary"].data)
    assert artifacts["linreg-summary"].type == "table"
    assert [row["solver"] for row in table] == list(SOLVERS)
    report = artifacts["linreg-report"]
    assert report.type == "markdown"
    # partial regression (fits.png), losses, the four diagnostic panels, and for d = 2
    # predicted-vs-actual, residuals and coefficients
    assert report.data.count("](data:image/png;base64,") == 6
    assert "### Partial regression: each coefficient as a slope" in report.data
    assert "### Diagnostics of the reference fit" in report.data
    assert "Residuals: Durbin–Watson " in report.data and "Most influential rows of the reference fit" in report.data
    assert summary.dataset.sha256 in report.data and summary.dataset.path in report.data
    progress = artifacts["linreg-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0


def test_training_tasks_are_tagged_and_named(default_run):
    _, state, _ = default_run
    runs = task_runs_of(state.state_details.flow_run_id, expected=len(SOLVERS) + 3)
    tags = {r.name: set(r.tags) for r in runs if r.name.startswith("train-")}
    # One task per solver, named after it; no tag at all: the device resolved to CPU,
    # and a tag would cost each task a concurrency-slot request.
    assert tags == {f"train-{name}": set() for name in SOLVERS}


def test_only_tasks_bound_for_a_gpu_are_tagged_cuda():
    """Solvers with a CUDA path (`SolverInfo.cuda`) are tagged on CUDA; the others never leave the CPU."""
    from tasks.train import routing_tags

    for name, info in SOLVERS.items():
        assert routing_tags(name, "cuda:0") == ({"cuda"} if info.cuda else set()), name
        assert routing_tags(name, "cpu") == set(), name


def test_same_spec_reuses_the_dataset_file(prefect_server, tmp_path, caplog):
    run = small_run(tmp_path, solvers=["closed_form"])
    first = linreg_flow(run, return_state=True).result()
    path = first.dataset.path
    stamp = (os.stat(path).st_ino, os.stat(path).st_mtime_ns)
    second = linreg_flow(run, return_state=True).result()
    assert second.dataset.path == path and second.dataset.sha256 == first.dataset.sha256
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == stamp
    assert "reused dataset" in caplog.text
    assert second.run_id != first.run_id


def _exploding_fit(data, spec, progress=None):
    raise RuntimeError("injected failure")


@pytest.fixture
def exploding_solver(monkeypatch):
    """A test-only solver that always raises, registered like any other."""
    module = types.ModuleType("linreg_test_exploding")
    module.fit = _exploding_fit
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(SOLVERS, "exploding", SolverInfo("exploding", module.__name__, SolverSpec(), False))
    return "exploding"


def test_a_raising_solver_fails_the_run_but_not_the_others(prefect_server, tmp_path, exploding_solver):
    run = small_run(tmp_path, solvers=["closed_form", exploding_solver, "numpy_gd"])
    state = linreg_flow(run, return_state=True)
    assert state.is_failed()
    assert state.message == "2 of 3 solvers ok; 1 failed (exploding)"
    summary = state.result(raise_on_failure=False)
    statuses = {r.solver: (r.status, r.message) for r in summary.results}
    assert statuses == {
        "closed_form": ("ok", None), "exploding": ("failed", "RuntimeError: injected failure"),
        "numpy_gd": ("ok", None),
    }
    artifacts = artifacts_of(state.state_details.flow_run_id)
    assert "linreg-summary" in artifacts and "linreg-report" in artifacts
    assert (run.output_dir / "runs" / summary.run_id / "summary.json").exists()


def test_divergence_completes_and_says_so(prefect_server, tmp_path):
    run = small_run(tmp_path, solvers=["closed_form", "numpy_gd", "torch_autograd"], defaults={"lr": 10.0})
    state = linreg_flow(run, return_state=True)
    assert state.is_completed()
    assert state.message == "1 of 3 solvers ok; 2 diverged (numpy_gd, torch_autograd)"
    summary = state.result()
    diverged = [r for r in summary.results if r.status == "diverged"]
    assert all(r.diverged_epoch is not None and np.isnan(r.mse) for r in diverged)


def test_invalid_parameters_are_refused_before_any_work(prefect_server, tmp_path):
    out = tmp_path / "out"
    state = linreg_flow(run={"data": {"n": 0}, "output_dir": str(out)}, return_state=True)
    assert state.is_failed()
    assert "must be in [1, 1000000000], got 0" in state.message
    assert not out.exists()


def test_cli_prints_the_table_the_run_folder_and_its_ui_page(prefect_server, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["run", "--n", "100", "--epochs", "20", "--solvers", "closed_form,numpy_gd", "--output-dir", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert lines[-3] == "completed: all 2 solvers ok"
    folder = Path(lines[-2].removeprefix("run folder: "))
    assert folder.parent == (out / "runs").resolve() and (folder / "summary.json").exists()
    # PREFECT_API_URL is set (the test harness): the page is on that server's UI.
    api = os.environ["PREFECT_API_URL"]
    match = re.fullmatch(rf"in the UI:  {re.escape(api.removesuffix('/api'))}/runs/flow-run/([0-9a-f-]{{36}})", lines[-1])
    assert match, lines[-1]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(match.group(1)).name == "n100-d1-seed42-cpu"
    assert any(line.startswith("numpy_gd") and " ok " in line for line in lines)


@pytest.fixture
def flaky_storage(monkeypatch):
    """ensure_dataset that fails with a transient OSError on its first call only."""
    import tasks.dataset

    real, calls = tasks.dataset.ensure_dataset, []

    def flaky(spec, root, *args, **kwargs):
        calls.append(spec)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        return real(spec, root, *args, **kwargs)

    monkeypatch.setattr(tasks.dataset, "ensure_dataset", flaky)
    monkeypatch.setattr(tasks.dataset.prepare_dataset, "retry_delay_seconds", 0)
    return calls


def test_transient_io_errors_are_retried(prefect_server, tmp_path, flaky_storage):
    state = linreg_flow(small_run(tmp_path, solvers=["closed_form"]), return_state=True)
    assert state.is_completed()
    assert len(flaky_storage) == 2


def test_a_damaged_file_is_not_retried(prefect_server, tmp_path, monkeypatch):
    import tasks.dataset
    from linreg.storage import DatasetError

    calls = []

    def damaged(spec, root, *args, **kwargs):
        calls.append(spec)
        raise DatasetError(root / "x.parquet", "sha256 mismatch")

    monkeypatch.setattr(tasks.dataset, "ensure_dataset", damaged)
    state = linreg_flow(small_run(tmp_path, solvers=["closed_form"]), return_state=True)
    assert state.is_failed() and len(calls) == 1
    assert "x.parquet: sha256 mismatch" in str(state.result(raise_on_failure=False))


@pytest.fixture
def fails_once_solver(monkeypatch):
    """A test-only solver that raises on its first call and fits on any later one: a retry would hide the failure."""
    calls = []

    def fit(data, spec, progress=None):
        calls.append(spec)
        if len(calls) == 1:
            raise RuntimeError("injected first-call failure")
        return SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults)

    module = types.ModuleType("linreg_test_fails_once")
    module.fit = fit
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(SOLVERS, "fails_once", SolverInfo("fails_once", module.__name__, SolverSpec(), False))
    return calls


def test_a_training_task_that_raises_is_not_retried(prefect_server, tmp_path, fails_once_solver):
    state = linreg_flow(small_run(tmp_path, solvers=["closed_form", "fails_once"]), return_state=True)
    assert len(fails_once_solver) == 1, "the failed fit was run again"
    assert state.is_failed() and state.message == "1 of 2 solvers ok; 1 failed (fails_once)"
    statuses = {r.solver: (r.status, r.message) for r in state.result(raise_on_failure=False).results}
    assert statuses == {
        "closed_form": ("ok", None), "fails_once": ("failed", "RuntimeError: injected first-call failure"),
    }


def test_runs_are_named_after_what_ran(default_run):
    _, state, _ = default_run
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(flow_run_id)
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
    assert parent.name == "n200-d2-seed42-cpu"
    assert [child.name for child in children] == ["train-n200-d2-seed42-cpu"]


def test_a_run_persists_nothing_in_prefect_home(prefect_server, tmp_path):
    """Result persistence is off (see tasks/train.py): no pickles pile up in $PREFECT_HOME/storage.
    (Prefect 3.9 always writes the exception of a *failed* flow run there; other tests make some.)"""
    from prefect.settings import get_current_settings

    storage = get_current_settings().results.local_storage_path
    before = set(storage.iterdir()) if storage.exists() else set()
    state = linreg_flow(small_run(tmp_path), return_state=True)
    assert state.is_completed()
    assert (set(storage.iterdir()) if storage.exists() else set()) == before


def solver_events(flow_run_id, expected: int, timeout: float = 15.0) -> list:
    """linreg.solver.* events about a flow run, polled until `expected` have arrived."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    query = EventFilter(event=EventNameFilter(prefix=["linreg.solver."]),
                        resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]))
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            events = client.read_events(query, limit=50).events  # the server refuses the default 100
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.25)


def test_diverged_and_failed_solvers_emit_events(prefect_server, tmp_path, exploding_solver):
    run = small_run(tmp_path, solvers=["closed_form", "torch_autograd", exploding_solver],
                    defaults={"epochs": 50, "lr": 10.0})
    state = linreg_flow(run, return_state=True)
    assert state.message == "1 of 3 solvers ok; 1 failed (exploding); 1 diverged (torch_autograd)"
    events = solver_events(state.state_details.flow_run_id, expected=2)
    found = {e.payload["solver"]: (e.event, e.payload["message"]) for e in events}
    assert found == {
        "torch_autograd": ("linreg.solver.diverged", "loss became non-finite at epoch 15; try a smaller lr"),
        "exploding": ("linreg.solver.failed", "RuntimeError: injected failure"),
    }
    assert all(e.related[0]["prefect.resource.name"] == "linreg" for e in events)


def test_a_fit_past_its_time_limit_fails_alone(prefect_server, tmp_path):
    run = small_run(tmp_path, solvers=["closed_form", "numpy_gd"],
                    overrides={"numpy_gd": {"epochs": 10_000_000}}, timeouts={"fit_seconds": 0.5})
    # Ten million epochs would take hours: the run ends (within pytest's timeout) only because the fit is stopped.
    state = linreg_flow(run, return_state=True)
    assert state.is_failed() and state.message == "1 of 2 solvers ok; 1 failed (numpy_gd)"
    rows = {r.solver: r for r in state.result(raise_on_failure=False).results}
    assert rows["closed_form"].status == "ok"
    assert rows["numpy_gd"].message == "FitTimedOut: the fit went past its time limit of 0.5 s (timeouts.fit_seconds)"


def test_a_run_past_its_time_limit_stops_and_fails(prefect_server, tmp_path):
    run = small_run(tmp_path, solvers=["numpy_gd"], defaults={"epochs": 10_000_000}, timeouts={"run_seconds": 2})
    state = linreg_flow(run, return_state=True)  # ends only because the run's deadline stops the fit
    assert state.is_failed() and "the run went past its time limit (timeouts.run_seconds)" in state.message
    assert not (run.output_dir / "runs").exists()  # nothing published


def test_a_full_disk_during_publish_fails_naming_the_path_and_keeps_the_dataset(prefect_server, tmp_path, monkeypatch):
    """ENOSPC while the run folder is written (at fsync, where many file systems report it):
    the run fails naming the file, no partial file remains, and the dataset cache is intact."""
    import errno

    import linreg.storage.atomic as atomic
    import tasks.publish
    from linreg.storage import sha256_file

    real_fsync = os.fsync

    def full_in_runs(fd):
        if f"{os.sep}runs{os.sep}" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", full_in_runs)
    monkeypatch.setattr(tasks.publish.publish_run, "retry_delay_seconds", 0)
    run = small_run(tmp_path, solvers=["closed_form"])
    state = linreg_flow(run, return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert f"{run.output_dir / 'runs'}{os.sep}" in str(error) and str(error).endswith(".png'")
    leftovers = [p for p in (run.output_dir / "runs").rglob("*") if p.is_file()]
    assert leftovers == []
    (dataset,) = (run.output_dir / "datasets").glob("*.parquet")
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    again = linreg_flow(run, return_state=True)  # the disk has room again: the cached dataset is reused
    assert again.is_completed() and again.result().dataset.sha256 == sha256_file(dataset)


def test_the_run_is_named_as_asked_then_after_the_planned_device(prefect_server, tmp_path):
    """Prefect names the run before the flow body, with the device as asked; the flow decides the
    device once (`flows.linreg_flow.run_device`) and renames the run after it."""
    import flows.linreg_flow as module

    asked = RunSpec(device="auto", data={"n": 50}, solvers=["closed_form"], output_dir=tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "flow_run", types.SimpleNamespace(parameters={"run": asked}))
        assert module.linreg_run_name() == "n50-d1-seed42-auto"
    state = linreg_flow(asked, return_state=True)
    assert state.result().device == "cpu"  # n·d = 50: below the CUDA crossover, whatever the machine
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).name == "n50-d1-seed42-cpu"
