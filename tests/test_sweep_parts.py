"""The sweep's parts that live beside a run's: the spec's shared field checks, the one markdown
table renderer, the sweep's report and plots in their modules, and the shared task runner."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from pydantic import ValidationError

from linreg.plots import plot_sweep_error, plot_sweep_seconds
from linreg.report import frame_rows, markdown_table, sweep_markdown, sweep_table
from linreg.specs import RunSpec
from linreg.sweep import COLUMNS, SweepSpec, crossover_table
from tasks.runners import ThreadsSettingTorch, dask_gpu_annotation, intra_op_threads, task_runner_for

# --- The spec: the checks a run makes, made the same way ---------------------------------------------

def errors(model, **fields) -> list[tuple[tuple, str, str]]:
    with pytest.raises(ValidationError) as info:
        model(**fields)
    return [(e["loc"], e["type"], e["msg"]) for e in info.value.errors()]


@pytest.fixture()
def under_a_file(tmp_path):
    """A folder path below a plain file: it cannot be made, whether or not we are root."""
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "out"


@pytest.mark.parametrize("fields, field, words", [
    ({"runner": "dask", "dask_address": "localhost:8786"}, "dask_address", "must look like tcp://host:port"),
    ({"runner": "dask", "dask_address": "tcp://host:1/path"}, "dask_address", "must look like tcp://host:port"),
    ({"bias": math.inf}, "bias", "must be a finite number, got inf"),
    ({"bias": math.nan}, "bias", "must be a finite number, got nan"),
])
def test_a_sweep_refuses_what_a_run_refuses_naming_the_field(fields, field, words):
    sweep = errors(SweepSpec, **fields)
    run_fields = {"data": {"bias": fields["bias"]}} if "bias" in fields else fields
    run = errors(RunSpec, **run_fields)
    assert sweep[0][0] == (field,) and words in sweep[0][2]
    assert (sweep[0][1], sweep[0][2]) == (run[0][1], run[0][2])  # the same refusal, word for word


def test_an_output_dir_that_cannot_be_written_is_refused_by_both(under_a_file):
    sweep = errors(SweepSpec, output_dir=under_a_file)
    assert sweep == [(("output_dir",), "output_dir", f"{under_a_file.parent} is not a writable folder")]
    assert errors(RunSpec, output_dir=under_a_file) == sweep


def test_a_dask_address_without_the_dask_runner_is_refused_naming_the_field():
    sweep = errors(SweepSpec, dask_address="tcp://h:1")
    assert sweep == [(("dask_address",), "dask_address", "is only used with runner 'dask' (runner is 'threads')")]
    assert errors(RunSpec, dask_address="tcp://h:1") == sweep


def test_good_values_pass_and_the_schema_states_the_address_pattern(tmp_path):
    sweep = SweepSpec(runner="dask", dask_address="tcp://10.0.0.1:8786", output_dir=tmp_path / "new", bias=-2.5)
    assert (sweep.dask_address, sweep.bias) == ("tcp://10.0.0.1:8786", -2.5)
    address = SweepSpec.model_json_schema()["properties"]["dask_address"]
    assert address == RunSpec.model_json_schema()["properties"]["dask_address"] | {
        "description": address["description"]}


# --- One markdown table renderer ---------------------------------------------------------------------

def test_one_renderer_writes_the_runs_tables_and_the_sweeps():
    rows = [{"solver": "a|b", "seconds": 0.123456789, "note": None}, {"solver": "c", "seconds": math.nan, "note": 3}]
    assert markdown_table(rows, ["solver", "seconds", "note"]) == (
        "| solver | seconds | note |\n|---|---|---|\n| a\\|b | 0.123457 | None |\n| c | nan | 3 |")
    assert sweep_table(rows) == (
        "| solver | seconds | note |\n|---|---|---|\n| a\\|b | 0.123 | – |\n| c | – | 3 |\n")
    assert sweep_table([]) == "(none)\n"


def test_frame_rows_gives_plain_values_and_every_column_by_default():
    frame = pd.DataFrame({"n": np.array([1, 2]), "x": [0.5, np.nan]}).astype({"n": "Int64"})
    frame.loc[1, "n"] = pd.NA
    assert frame_rows(frame) == [{"n": 1, "x": 0.5}, {"n": None, "x": None}]
    assert frame_rows(frame, ["x"]) == [{"x": 0.5}, {"x": None}]


# --- The sweep's report and plots in their modules ---------------------------------------------------

def sweep_frame() -> pd.DataFrame:
    rows = []
    for cell, (n, device, seconds) in enumerate([(100, "cpu", 0.2), (1000, "cpu", 2.0), (100, "cuda", 1.0),
                                                 (1000, "cuda", 0.5)]):
        rows.append({c: None for c in COLUMNS} | {
            "cell": cell, "n": n, "d": 1, "seed": 1, "solver": "s", "device": device, "status": "ok",
            "seconds": seconds, "error": 0.01})
    rows.append({c: None for c in COLUMNS} | {"cell": 4, "n": 100, "d": 1, "seed": 1, "solver": "t", "device": "cuda",
                                              "status": "skipped", "reason": "no CUDA"})
    return pd.DataFrame(rows, columns=COLUMNS)


def test_the_sweep_report_has_counts_crossover_plots_and_cells_not_run():
    frame = sweep_frame()
    report = sweep_markdown("sid", frame, crossover_table(frame), {"Seconds": b"\x89PNG"})
    assert report.startswith("# linreg sweep sid\n\n5 cells: 4 ok, 0 diverged, 1 skipped, 0 failed.\n")
    assert "| s | 1 | 1000 | 1000 | 2 | 0.5 | CUDA faster from n = 1,000 |" in report
    assert "![Seconds](data:image/png;base64,iVBORw==)" in report
    assert report.endswith(
        "## Cells not run\n\n| status | reason | cells |\n|---|---|---|\n| skipped | no CUDA | 1 |\n")


def test_the_sweep_plots_are_figures_left_unsaved():
    frame = sweep_frame()
    for fig in (plot_sweep_seconds(frame), plot_sweep_error(frame)):
        assert isinstance(fig, Figure) and fig.axes[0].get_xscale() == "log"
        assert fig.canvas.manager is None  # a bare Figure, not a pyplot window: the caller saves it


# --- The task runner and the GPU annotation a run uses -----------------------------------------------

def test_a_sweep_gets_the_runs_task_runner_with_one_torch_thread_per_task():
    runner = task_runner_for(SweepSpec())
    assert isinstance(runner, ThreadsSettingTorch) and runner.torch_threads == 1
    assert intra_op_threads(SweepSpec(runner="processes")) == 1
    assert intra_op_threads(SweepSpec(runner="dask")) is None


def test_the_gpu_annotation_asks_dask_for_a_gpu_only_when_wanted():
    dask = pytest.importorskip("dask")
    with dask_gpu_annotation(True):
        assert dask.get_annotations() == {"resources": {"GPU": 1}}
    with dask_gpu_annotation(False):
        assert dask.get_annotations() == {}
