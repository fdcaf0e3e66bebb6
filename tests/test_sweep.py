"""Sweeps: the grid, chunking, skipped cells, the crossover table, plots, the CLI's refusals, and one real flow."""

import math
import types

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose

from linreg.data import make_dataset
from linreg.plots import plot_sweep_error, plot_sweep_seconds
from linreg.solvers import SOLVERS
from linreg.sweep import (
    COLUMNS, NEVER, SweepSpec, chunk_cells, crossover_table, data_specs, expand_grid, results_frame, run_cells,
    skip_reason, true_weights,
)

# --- The grid -------------------------------------------------------------------------------------

def test_grid_expands_data_solvers_devices_and_hyperparameters():
    sweep = SweepSpec(n=[100, 1000], d=[1, 3], seeds=[1, 2, 3], devices=["cpu", "cuda"], lr=[0.01, 0.1],
                      epochs=[10, 20], solvers=["closed_form", "numpy_gd", "torch_autograd"])
    cells = expand_grid(sweep)
    specs = data_specs(sweep)
    assert len(specs) == 2 * 2 * 3 and len({s.model_dump_json() for s in specs}) == 12
    per_data = 1 * 2 + 4 * 1 + 4 * 2  # closed form: once per device; numpy: cpu only; torch: both devices
    assert len(cells) == 12 * per_data
    assert [c.index for c in cells] == list(range(len(cells)))
    torch_cells = {(c.data.n, c.data.d, c.data.seed, c.device, c.spec.lr, c.spec.epochs)
                   for c in cells if c.solver == "torch_autograd"}
    assert len(torch_cells) == 12 * 2 * 2 * 2  # every combination, each once
    assert {c.device for c in cells if c.solver == "numpy_gd"} == {"cpu"}
    assert {(c.spec.lr, c.spec.epochs) for c in cells if c.solver == "closed_form"} == {
        (SOLVERS["closed_form"].defaults.lr, SOLVERS["closed_form"].defaults.epochs)}


def test_empty_hyperparameter_axes_keep_each_solvers_own():
    cells = expand_grid(SweepSpec(solvers=["torch_autograd", "numpy_sgd"], batch_size=20))
    assert [(c.solver, c.spec.lr, c.spec.epochs, c.spec.batch_size) for c in cells] == [
        ("torch_autograd", 0.1, 1000, 20), ("numpy_sgd", 0.01, 1000, 20)]


def test_datasets_carry_the_sweeps_true_parameters():
    spec = data_specs(SweepSpec(n=[50], d=[3], seeds=[9], bias=-2.0, noise=0.5))[0]
    assert (spec.n, spec.weights, spec.bias, spec.noise, spec.seed) == (50, true_weights(3), -2.0, 0.5, 9)
    assert true_weights(1) == [2.0]  # d=1 is the tutorial's line


@pytest.mark.parametrize("fields, words", [
    ({"n": [0]}, "must be in [1, 1000000000], got 0"),
    ({"d": [1001]}, "must be in [1, 1000], got 1001"),
    ({"lr": [0.0]}, "must be in (0.0, inf), got 0.0"),
    ({"epochs": [0]}, "must be in [1, 10000000], got 0"),
    ({"seeds": [-1]}, "must be in [0, 4294967295], got -1"),
    ({"seeds": [1, 1]}, "duplicate value(s): 1"),
    ({"solvers": ["sgd"]}, "unknown solver(s): sgd"),
    ({"devices": ["auto"]}, "'auto' is no sweep axis"),
    ({"devices": ["tpu"]}, "unknown device 'tpu'"),
    ({"dask_address": "tcp://h:1"}, "only used with runner 'dask'"),
    ({"n": list(range(1, 41)), "seeds": list(range(40)), "lr": [0.1, 0.2]}, "at most 10000"),
])
def test_bad_sweeps_are_refused_naming_the_field(fields, words):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        SweepSpec(**fields)
    assert words in str(info.value)


def test_the_json_schema_states_the_ranges():
    properties = SweepSpec.model_json_schema()["properties"]
    assert properties["n"]["items"] == {"type": "integer", "minimum": 1, "maximum": 1_000_000_000}
    assert properties["d"]["items"]["maximum"] == 1000
    assert properties["lr"]["items"]["exclusiveMinimum"] == 0
    assert properties["seeds"]["items"]["maximum"] == 2**32 - 1


def test_chunks_cover_every_cell_once_with_balanced_cost():
    cells = expand_grid(SweepSpec(lr=[0.001 * k for k in range(1, 9)]))
    chunks = chunk_cells(cells, 4)
    assert len(chunks) == 4
    assert sorted(c.index for chunk in chunks for c in chunk) == [c.index for c in cells]
    cost = [sum(SOLVERS[c.solver].relative_cost(c.data.n, c.spec) + 1 for c in chunk) for chunk in chunks]
    assert max(cost) <= 1.5 * min(cost)  # 8 dataloader cells dominate: two per chunk
    assert chunk_cells([], 4) == [] and len(chunk_cells(cells[:2], 4)) == 2


# --- Running cells ----------------------------------------------------------------------------------

@pytest.fixture()
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_cuda_cells_without_cuda_are_skipped_with_the_reason(no_cuda, one_torch_thread):
    sweep = SweepSpec(n=[50], devices=["cpu", "cuda"], epochs=[5], solvers=["closed_form", "torch_optim", "numpy_gd"])
    cells = expand_grid(sweep)
    rows = run_cells(make_dataset(data_specs(sweep)[0]), cells)
    frame = results_frame(rows)
    assert list(frame.columns) == COLUMNS and len(frame) == 5
    skipped = frame[frame["device"] == "cuda"]
    assert set(skipped["solver"]) == {"closed_form", "torch_optim"} and (skipped["status"] == "skipped").all()
    assert skipped["reason"].str.contains("CUDA is not available").all()
    assert skipped["seconds"].isna().all()
    ran = frame[frame["device"] == "cpu"]
    assert (ran["status"] == "ok").all() and (ran["device_used"] == "cpu").all() and (ran["seconds"] > 0).all()


def test_under_dask_a_cuda_this_machine_lacks_is_left_to_the_workers(no_cuda):
    """The flow skips cells by `skip_reason`: here a missing CUDA skips them; under Dask only a CPU-only
    solver off the CPU does, since the GPU workers' hardware is not this machine's."""
    cells = expand_grid(SweepSpec(n=[20], devices=["cuda"], solvers=["torch_optim", "numpy_gd"], epochs=[2]))
    assert [skip_reason(c, fits_run_here=False) for c in cells] == [None, "numpy_gd runs on the CPU only"]
    assert "CUDA is not available" in skip_reason(cells[0], fits_run_here=True)


def test_numpy_solvers_asked_for_on_cuda_alone_are_skipped():
    cells = expand_grid(SweepSpec(n=[20], devices=["cuda"], solvers=["numpy_gd"], epochs=[2]))
    rows = run_cells(make_dataset(data_specs(SweepSpec(n=[20]))[0]), cells)
    assert rows[0]["status"] == "skipped" and rows[0]["reason"] == "numpy_gd runs on the CPU only"


def test_a_solver_that_raises_is_a_failed_row_and_the_others_run(monkeypatch):
    from linreg.solvers import registry

    def boom(data, spec, progress=None):
        raise ValueError("boom")

    real = SOLVERS["numpy_gd"]
    monkeypatch.setitem(registry.SOLVERS, "numpy_gd", types.SimpleNamespace(
        **{k: getattr(real, k) for k in ("name", "defaults", "uses_torch", "cuda", "iterative", "minibatch")},
        fit=boom))
    sweep = SweepSpec(n=[30], solvers=["numpy_gd", "closed_form"])
    rows = run_cells(make_dataset(data_specs(sweep)[0]), expand_grid(sweep))
    assert [(r["solver"], r["status"]) for r in rows] == [("numpy_gd", "failed"), ("closed_form", "ok")]
    assert rows[0]["reason"] == "ValueError: boom"


def test_a_fit_row_measures_the_error_against_the_truth():
    sweep = SweepSpec(n=[2000], d=[2], solvers=["closed_form"])
    row = run_cells(make_dataset(data_specs(sweep)[0]), expand_grid(sweep))[0]
    assert 0 < row["error"] < 0.02 and math.isnan(row["final_loss"]) and row["epochs"] == 0


# --- The crossover ----------------------------------------------------------------------------------

def timing_frame(seconds: dict) -> pd.DataFrame:
    """Rows of (solver, n, device) -> seconds per seed."""
    rows = []
    for (solver, n, device), per_seed in seconds.items():
        for seed, s in enumerate(per_seed):
            rows.append({"solver": solver, "d": 1, "n": n, "device": device, "seed": seed, "status": "ok",
                         "seconds": s})
    rows.append({"solver": "late", "d": 1, "n": 10, "device": "cuda", "seed": 0, "status": "skipped",
                 "seconds": float("nan")})
    return pd.DataFrame(rows)


def test_crossover_from_a_known_table():
    frame = timing_frame({
        # wins from 1e5 on (the median of three seeds decides, not the one fast seed at 1e4)
        ("late", 1e3, "cpu"): [1, 1, 1], ("late", 1e3, "cuda"): [5, 5, 5],
        ("late", 1e4, "cpu"): [2, 2, 2], ("late", 1e4, "cuda"): [1, 3, 3],
        ("late", 1e5, "cpu"): [9, 9, 9], ("late", 1e5, "cuda:0"): [3, 3, 3],
        ("late", 1e6, "cpu"): [90, 90, 90], ("late", 1e6, "cuda"): [4, 4, 4],
        # wins in the middle only: loses at the largest size
        ("never", 1e3, "cpu"): [1], ("never", 1e3, "cuda"): [2],
        ("never", 1e4, "cpu"): [3], ("never", 1e4, "cuda"): [2],
        ("never", 1e5, "cpu"): [3], ("never", 1e5, "cuda"): [4],
        # wins everywhere
        ("always", 1e3, "cpu"): [2], ("always", 1e3, "cuda"): [1],
        ("always", 1e4, "cpu"): [3], ("always", 1e4, "cuda"): [1],
        # never ran on CUDA
        ("cpu_only", 1e3, "cpu"): [1],
    })
    table = crossover_table(frame).set_index("solver")
    assert table.loc["late", "crossover_n"] == 100_000 and table.loc["late", "crossover_elements"] == 100_000
    assert table.loc["late", "verdict"] == "CUDA faster from n = 100,000"
    assert (table.loc["late", "cpu_s"], table.loc["late", "cuda_s"]) == (90, 4)
    assert table.loc["never", "verdict"] == NEVER and pd.isna(table.loc["never", "crossover_n"])
    assert table.loc["always", "crossover_n"] == 1000 and "smallest n swept" in table.loc["always", "verdict"]
    assert table.loc["cpu_only", "verdict"] == "no CUDA rows"


def test_plots_are_log_log_figures_with_one_line_per_solver_and_device():
    frame = timing_frame({("a", 1e3, "cpu"): [1, 2], ("a", 1e4, "cpu"): [3, 4], ("a", 1e3, "cuda"): [2, 2]})
    frame["error"] = 0.01
    for fig in (plot_sweep_seconds(frame), plot_sweep_error(frame)):
        ax = fig.axes[0]
        assert ax.get_xscale() == ax.get_yscale() == "log"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a cpu", "a cuda"]
    line = plot_sweep_seconds(frame).axes[0].lines[0]
    assert_allclose(np.asarray(line.get_ydata(), dtype=float), [1.5, 3.5])  # medians over seeds; bars span min..max


# --- The CLI refuses bad options before any work -----------------------------------------------------

@pytest.mark.parametrize("argv, line", [
    (["--n", "0"], "linreg sweep: error: --n: must be in [1, 1000000000], got 0"),
    (["--n", "1e3,1.5"], "linreg sweep: error: --n: Input should be a valid integer"),
    (["--d", "0"], "linreg sweep: error: --d: must be in [1, 1000], got 0"),
    (["--device", "cpu,gpu"], "linreg sweep: error: --device: unknown device 'gpu'"),
    (["--lr", "0.1,-1"], "linreg sweep: error: --lr: must be in (0.0, inf), got -1.0"),
    (["--seeds", "1,1"], "linreg sweep: error: --seeds: duplicate value(s): 1"),
    (["--solvers", "x"], "linreg sweep: error: --solvers: unknown solver(s): x"),
    (["--runner", "gpu"], "linreg sweep: error: --runner: Input should be 'threads', 'processes' or 'dask'"),
    (["--dask-address", "tcp://h:1"], "linreg sweep: error: --dask-address: is only used with runner 'dask'"),
])
def test_bad_options_are_one_line_naming_the_option(capsys, argv, line):
    from flows.cli import main

    assert main(["sweep", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1


def test_integer_axes_take_scientific_notation():
    from flows.cli import build_parser as _parser
    from flows.cli.sweep import build_sweep_spec

    spec = build_sweep_spec(_parser().parse_args(["sweep", "--n", "1e3,1e5", "--device", "cpu,cuda", "--lr", "1e-2"]))
    assert spec.n == [1000, 100_000] and spec.devices == ["cpu", "cuda"] and spec.lr == [0.01]


# --- One real flow: datasets made once, skipped cells, files and artifacts ---------------------------

@pytest.mark.flow
def test_sweep_flow_publishes_one_frame_with_skipped_cuda_cells(prefect_server, tmp_path, no_cuda, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    import tasks.dataset
    from flows.sweep_flow import sweep_flow
    from linreg.results import run_folders
    from linreg.storage.catalog import Catalog, is_sweep_id, run_time

    made = []
    real = tasks.dataset.ensure_dataset
    monkeypatch.setattr(tasks.dataset, "ensure_dataset", lambda spec, *a: made.append(spec.seed) or real(spec, *a))
    sweep = SweepSpec(n=[60, 120], seeds=[1, 2], devices=["cpu", "cuda"], epochs=[5], lr=[0.01, 0.05],
                      solvers=["closed_form", "torch_autograd", "numpy_sgd"], output_dir=tmp_path)
    state = sweep_flow(sweep, return_state=True)
    frame = state.result()
    assert state.is_completed()
    assert sorted(made) == [1, 1, 2, 2]  # each of the 4 datasets prepared once, for all its 14 cells
    assert len(frame) == len(expand_grid(sweep)) == 4 * (2 + 4 + 2)
    assert set(frame.loc[frame["device"] == "cuda", "status"]) == {"skipped"}
    assert set(frame.loc[frame["device"] == "cpu", "status"]) == {"ok"}
    (folder,) = Catalog(tmp_path).sweeps.iterdir()  # a folder of its own, named by the catalog's sweep id
    assert is_sweep_id(folder.name) and run_time(folder.name) is not None
    assert str(folder) in state.message and "12 skipped" in state.message
    assert not Catalog(tmp_path).runs.exists() and run_folders(tmp_path) == []  # the history sees no run
    saved = pd.read_parquet(folder / "sweep.parquet")
    pd.testing.assert_frame_equal(saved, frame)
    assert len(pd.read_csv(folder / "sweep.csv")) == len(frame)
    assert (folder / "seconds.png").read_bytes().startswith(b"\x89PNG")
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
        artifacts = {a.key: a for a in client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))}
    assert {"linreg-sweep", "linreg-sweep-report"} <= set(artifacts)
    report = artifacts["linreg-sweep-report"].data
    assert "Crossover" in report and "data:image/png;base64," in report and "CUDA is not available" in report
    assert "no CUDA rows" in report  # the CUDA cells were skipped: no crossover can be read
