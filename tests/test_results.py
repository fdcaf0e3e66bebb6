"""Results as DataFrames: one run, the history of a data root, comparisons, and the report built from them.

Run folders here are real: data generated and written as parquet by `linreg.storage`,
fitted by the registry's solvers, scored by `linreg.evaluate`, saved as `publish` saves them.
"""

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from linreg.evaluate import RunSummary, SolverReport, summarize
from linreg.provenance import collect
from linreg.report import SUMMARY_COLUMNS, comparison_markdown, comparison_text, render_markdown, summary_rows
from linreg.results import (
    COLUMNS, Model, RunNotFound, Thresholds, compare, history_table, load_history, load_run, previous_run,
    resolve_run, same_model, summaries_frame,
)
from linreg.solvers import SOLVERS
from linreg.solvers.base import failed_result, iterative_result
from linreg.specs import DataSpec
from linreg.storage import ensure_dataset, open_dataset, run_dir, write_csv, write_text

SPEC = DataSpec(n=200, weights=[2.0, -1.0], bias=0.5, seed=3)
SOLVER_NAMES = ("closed_form", "numpy_gd", "numpy_sgd")
EPOCHS = 1000  # each solver's own: converged, so a distance to the closed form moves little with the data


def make_run(root: Path, run_id: str, spec: DataSpec = SPEC, solvers=SOLVER_NAMES, fits=None) -> RunSummary:
    """A real run folder under `root`: dataset, fits, summary.csv, then summary.json, as `publish` writes them."""
    ref, _ = ensure_dataset(spec, root)
    data = open_dataset(ref)
    if fits is None:
        fits = [SOLVERS[s].fit(data, SOLVERS[s].defaults.model_copy(update={"epochs": EPOCHS})) for s in solvers]
    summary = summarize(run_id, ref, data, fits, sum(f.seconds for f in fits), collect("cpu"))
    save(root, summary)
    return summary


def save(root: Path, summary: RunSummary) -> Path:
    folder = run_dir(root, summary.run_id)
    write_csv(folder / "summary.csv", summary_rows(summary))
    write_text(folder / "summary.json", summary.model_dump_json(indent=2) + "\n")
    return folder


def edited(summary: RunSummary, run_id: str, **per_solver) -> RunSummary:
    """A copy of `summary` under another id, with fields of named solvers replaced: {solver: {field: value}}."""
    results = [SolverReport.model_validate({**r.model_dump(), **per_solver.get(r.solver, {})}) for r in summary.results]
    return summary.model_copy(update={"run_id": run_id, "results": results})


def run_id(k: int, second: int = 0) -> str:
    return f"20261201T{k:02d}00{second:02d}Z-{k:08x}"


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Three real runs, oldest first: two on SPEC, one on another seed."""
    root = tmp_path_factory.mktemp("history")
    runs = [make_run(root, run_id(1)), make_run(root, run_id(2), SPEC.model_copy(update={"seed": 4})),
            make_run(root, run_id(3))]
    return root, runs


def test_to_frame_round_trips_against_summary_json(three_runs):
    root, runs = three_runs
    raw = json.loads((root / "runs" / runs[0].run_id / "summary.json").read_text())
    frame = load_run(root / "runs" / runs[0].run_id).to_frame()
    assert list(frame.columns) == COLUMNS and len(frame) == len(raw["results"])
    for row, saved in zip(frame.to_dict("records"), raw["results"]):
        rebuilt = SolverReport(**{k: _json_value(row[k]) for k in SolverReport.model_fields})
        assert json.loads(rebuilt.model_dump_json()) == saved
        assert row["error"] == max(saved["bias_abs_error"], *saved["weights_abs_error"])
        assert row["max_weight_abs_error"] == max(saved["weights_abs_error"])
    first = frame.iloc[0]
    ds, made = raw["dataset"], raw["provenance"]
    assert (first.run_id, first.n, first.d, first.seed, first.noise, first.true_bias, first.dataset_sha256) == (
        raw["run_id"], ds["n"], ds["d"], ds["seed"], ds["noise"], ds["bias"], ds["sha256"])
    assert first.true_weights == ds["weights"] and first.training_seconds == raw["training_seconds"]
    assert (first.commit, first.python_version, first.numpy_version, first.torch_version, first.prefect_version,
            first.host, first.device_name) == (made["commit"], made["python"], made["numpy"], made["torch"],
                                               made["prefect"], made["host"], made["device_name"])
    assert first.time == pd.Timestamp("2026-12-01T01:00:00Z")


def _json_value(value):
    """A frame cell as summary.json holds it: missing values as None, numpy scalars unwrapped."""
    if isinstance(value, list):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def test_the_history_holds_the_same_rows_as_each_runs_frame(three_runs):
    root, runs = three_runs
    history = load_history(root)
    expected = pd.concat([r.to_frame() for r in runs], ignore_index=True)
    assert_frame_equal(history, expected)
    assert list(history["run_id"].unique()) == [r.run_id for r in runs]  # oldest first


def test_failed_and_diverged_fits_load_back_as_nan(tmp_path):
    data_fits = [
        iterative_result("numpy_gd", [np.inf, 1.0], np.nan, [1.0, np.inf], 0.1, "cpu"),
        failed_result("numpy_sgd", 2, RuntimeError("boom")),
    ]
    summary = make_run(tmp_path, run_id(1), fits=data_fits)
    loaded = load_run(tmp_path / "runs" / summary.run_id)
    assert [r.status for r in loaded.results] == ["diverged", "failed"]
    assert math.isnan(loaded.results[1].bias) and math.isnan(loaded.results[1].mse)
    frame = loaded.to_frame()
    assert frame["error"].isna().all() and frame.loc[0, "diverged_epoch"] == 1
    assert frame.loc[1, "message"] == "RuntimeError: boom"


def test_damaged_and_unfinished_folders_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    good = [make_run(tmp_path, run_id(1)), make_run(tmp_path, run_id(2))]
    runs = tmp_path / "runs"
    text = (runs / good[0].run_id / "summary.json").read_text()
    bad = {
        "truncated": text[: len(text) // 2],
        "wrong-type": text.replace('"epochs": 0', '"epochs": "many"', 1),
        "no-results": json.dumps({k: v for k, v in json.loads(text).items() if k != "results"}),
        "not-an-object": "[]",
    }
    for name, content in bad.items():
        (runs / name).mkdir()
        (runs / name / "summary.json").write_text(content)
    (runs / "unfinished").mkdir()
    (runs / "unfinished" / "fits.png").write_bytes(b"png")  # publish stopped before summary.json
    (runs / "20261201T000000Z-sweep-1").mkdir()  # a sweep's folder: not a run, not a warning
    (runs / "20261201T000000Z-sweep-1" / "sweep.parquet").write_bytes(b"x")
    (runs / "stray.txt").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="linreg.results"):
        history = load_history(tmp_path)
    assert list(history["run_id"].unique()) == [r.run_id for r in good]
    warned = {r.getMessage().split(":")[0] for r in caplog.records if r.name == "linreg.results"}
    assert warned == {f"skipping run folder {runs / name}" for name in [*bad, "unfinished"]}
    assert "epochs" in caplog.text and "no summary.json" in caplog.text


def test_a_summary_from_before_provenance_still_loads(tmp_path):
    summary = make_run(tmp_path, run_id(1))
    path = tmp_path / "runs" / summary.run_id / "summary.json"
    raw = json.loads(path.read_text())
    del raw["provenance"]
    path.write_text(json.dumps(raw))
    frame = load_history(tmp_path)
    assert len(frame) == len(SOLVER_NAMES) and frame["commit"].isna().all() and frame["host"].isna().all()
    assert "not recorded" in render_markdown(load_run(path), {})


def test_history_filters_by_spec_solvers_and_last(three_runs):
    root, runs = three_runs
    assert list(load_history(root, seed=3)["run_id"].unique()) == [runs[0].run_id, runs[2].run_id]
    assert list(load_history(root, seed=4)["run_id"].unique()) == [runs[1].run_id]
    assert load_history(root, n=201).empty and len(load_history(root, n=200, d=2)) == 3 * len(SOLVER_NAMES)
    only = load_history(root, solvers=["numpy_gd"], last=2)
    assert list(only["solver"]) == ["numpy_gd"] * 2 and list(only["run_id"]) == [runs[1].run_id, runs[2].run_id]
    assert list(load_history(root, seed=3, last=1)["run_id"].unique()) == [runs[2].run_id]
    assert load_history(root / "nowhere").empty and list(load_history(root / "nowhere").columns) == COLUMNS


def test_history_table_has_a_row_per_run_and_two_columns_per_solver(three_runs):
    root, runs = three_runs
    wide = history_table(load_history(root))
    grouped = [runs[0], runs[2], runs[1]]  # runs on the same data together, oldest first within each
    assert list(wide["run_id"]) == [r.run_id for r in grouped]
    assert list(wide["data"]) == [f"generated@{r.dataset.sha256[:8]}" for r in grouped]
    assert list(wide.columns[7:]) == [f"{s} {c}" for s in SOLVER_NAMES for c in ("s", "error", "status")]
    for run, (_, row) in zip(grouped, wide.iterrows()):
        for r in run.results:
            assert row[f"{r.solver} s"] == r.seconds and row[f"{r.solver} status"] == "ok"
            assert row[f"{r.solver} error"] == max(r.bias_abs_error, *r.weights_abs_error)


def test_summary_csv_and_table_rows_come_from_the_frame_with_every_column(three_runs):
    root, runs = three_runs
    rows = summary_rows(runs[0])
    assert SUMMARY_COLUMNS == ["solver", "status", "bias", "weights", "bias_abs_error", "max_weight_abs_error",
                               "distance_to_closed_form", "mse", "r2", "final_loss", "epochs", "seconds", "device",
                               "worker", "message"]
    assert [list(row) for row in rows] == [SUMMARY_COLUMNS] * len(SOLVER_NAMES)
    csv = pd.read_csv(root / "runs" / runs[0].run_id / "summary.csv", keep_default_na=False)
    frame = runs[0].to_frame()
    assert list(csv.columns) == SUMMARY_COLUMNS
    assert list(csv["solver"]) == list(frame["solver"]) and list(csv["epochs"]) == list(frame["epochs"])
    np.testing.assert_allclose(csv["mse"], frame["mse"], rtol=1e-12)
    np.testing.assert_allclose(csv["seconds"], frame["seconds"].round(4), rtol=1e-12)
    assert list(csv["weights"]) == [" ".join(f"{w:.8g}" for w in ws) for ws in frame["weights"]]


def test_runs_resolve_by_id_folder_latest_and_previous(three_runs, tmp_path):
    root, runs = three_runs
    folders = [root / "runs" / r.run_id for r in runs]
    assert resolve_run(root, "latest") == folders[2] and resolve_run(root, "previous") == folders[1]
    assert resolve_run(root, runs[0].run_id) == folders[0]
    assert resolve_run(tmp_path, str(folders[0])) == folders[0]  # a folder needs no data root
    assert resolve_run(tmp_path, str(folders[0] / "summary.json")) == folders[0]
    with pytest.raises(RunNotFound, match="'nope' is no run folder"):
        resolve_run(root, "nope")
    with pytest.raises(RunNotFound, match=r"'previous': 0 finished run\(s\)"):
        resolve_run(tmp_path, "previous")


def test_identical_runs_compare_clean():
    a = RunSummary.model_validate_json(_fixture_summary().model_dump_json())
    comparison = compare(a, edited(a, "b"))
    assert comparison.same_data and comparison.regressions == [] and comparison.notes == []
    assert (comparison.frame[["parameters_change", "error_change", "mse_change"]] == 0).all().all()
    assert (comparison.frame["seconds_ratio"] == 1).all()


def test_a_run_twice_as_slow_is_a_regression_only_above_the_noise_floor():
    a = edited(_fixture_summary(), "a", numpy_sgd={"seconds": 0.2}, numpy_gd={"seconds": 0.003})
    slow = edited(a, "b", numpy_sgd={"seconds": 0.4}, numpy_gd={"seconds": 0.006})
    comparison = compare(a, slow)
    assert comparison.regressions == ["numpy_sgd: 2.00x slower (0.2 s -> 0.4 s)"]  # not numpy_gd: +3 ms is noise
    assert compare(a, slow, Thresholds(slowdown=2.5)).regressions == []
    assert compare(a, slow, Thresholds(min_seconds=0.001)).regressions == [
        "numpy_gd: 2.00x slower (0.003 s -> 0.006 s)", "numpy_sgd: 2.00x slower (0.2 s -> 0.4 s)"]


def test_a_worse_error_and_a_worse_status_are_regressions():
    a = _fixture_summary()
    r = next(r for r in a.results if r.solver == "numpy_gd")
    error = max(r.bias_abs_error, *r.weights_abs_error) + 0.01
    worse = edited(a, "b", numpy_gd={"bias": SPEC.bias + error, "bias_abs_error": error},
                   numpy_sgd={"status": "diverged"})
    found = compare(a, worse).regressions
    assert found == ["numpy_gd: error grew by 0.01 (tolerance 0.001)", "numpy_sgd: status ok -> diverged"]
    assert compare(a, worse, Thresholds(tolerance=0.02)).regressions == ["numpy_sgd: status ok -> diverged"]
    assert compare(worse, a).regressions == []  # getting better is no regression


def test_runs_on_different_data_compare_only_what_is_comparable(three_runs):
    _, runs = three_runs
    comparison = compare(runs[0], runs[1])  # another seed: same truth, same n and d
    assert not comparison.same_data and "different data" in comparison.notes[0]
    assert "not compared: MSE" in comparison.notes[0]
    assert comparison.frame["mse_change"].isna().all() and comparison.frame["parameters_change"].notna().all()
    assert comparison.frame["error_change"].notna().all() and comparison.frame["seconds_ratio"].notna().all()
    other_truth = runs[1].model_copy(update={"dataset": runs[1].dataset.model_copy(update={"bias": 3.0, "n": 50})})
    comparison = compare(runs[0], other_truth)
    assert comparison.frame["parameters_change"].isna().all() and comparison.frame["seconds_ratio"].isna().all()
    assert "parameters (the true ones differ)" in comparison.notes[0] and "seconds (n or d differ)" in comparison.notes[0]
    # Across data, the error is flagged through the distance to the closed form, not sampling noise.
    far = edited(other_truth, "far", numpy_gd={"distance_to_closed_form": 0.5})
    assert [r.split(":")[0] for r in compare(runs[0], far).regressions] == ["numpy_gd"]
    assert "distance to the closed form grew" in compare(runs[0], far).regressions[0]


def test_a_run_on_a_busy_machine_says_so():
    a = _fixture_summary()
    busy = edited(a, "b").model_copy(update={"provenance": a.provenance.model_copy(update={"load_average": 3.5})})
    comparison = compare(a, busy)
    assert comparison.notes == ["the machine was busy (1-minute load average above its cores) in run B (3.5 on 2 "
                                "cores): its fits waited for CPU, so a slowdown may be load rather than code"]
    assert comparison.notes[0] in comparison_text(comparison)


def test_solvers_in_one_run_only_are_named_not_compared():
    a = _fixture_summary()
    b = a.model_copy(update={"run_id": "b", "results": a.results[:2]})
    comparison = compare(a, b)
    assert comparison.only_a == ["numpy_sgd"] and list(comparison.frame["solver"]) == ["closed_form", "numpy_gd"]
    assert "only in" in comparison_text(comparison)


def test_the_previous_run_is_the_latest_earlier_one_on_the_same_data(tmp_path):
    first = make_run(tmp_path, run_id(1))
    make_run(tmp_path, run_id(2), SPEC.model_copy(update={"seed": 9}))  # other data
    second = make_run(tmp_path, run_id(3))
    later = make_run(tmp_path, run_id(5))  # started after the run below: not its previous run
    current = edited(second, run_id(4))
    assert previous_run(tmp_path, current).run_id == second.run_id
    assert previous_run(tmp_path, edited(first, run_id(1, second=1))).run_id == first.run_id
    assert previous_run(tmp_path, first) is None  # itself is no earlier run
    assert previous_run(tmp_path, edited(later, run_id(6))).run_id == later.run_id
    shutil.rmtree(tmp_path / "runs" / second.run_id)
    assert previous_run(tmp_path, current).run_id == first.run_id


def as_table(summary: RunSummary, run_id: str | None = None, **dataset) -> RunSummary:
    """`summary` as if it had fitted a user's table (columns x0, x1 -> y, no truth), with dataset fields replaced."""
    ds = summary.dataset.model_copy(update={
        "source": "file", "source_path": "t.csv", "weights": None, "bias": None, "noise": None, "target": "y",
        "features": ["x0", "x1"], "rows": summary.dataset.n, **dataset})
    return summary.model_copy(update={"run_id": run_id or summary.run_id, "dataset": ds})


def worse(summary: RunSummary, run_id: str) -> RunSummary:
    """A copy of `summary` that regressed on any data: numpy_gd's error and distance +0.5, numpy_sgd diverged."""
    gd = next(r for r in summary.results if r.solver == "numpy_gd")
    return edited(summary, run_id, numpy_gd={"bias_abs_error": gd.bias_abs_error + 0.5,
                                             "distance_to_closed_form": gd.distance_to_closed_form + 0.5},
                  numpy_sgd={"status": "diverged"})


def with_model(summary: RunSummary, run_id: str, **fields) -> RunSummary:
    """A copy of `summary` under another id with run fields replaced (`fit_intercept`, `scale`)."""
    return summary.model_copy(update={"run_id": run_id, **fields})


def with_table(summary: RunSummary, run_id: str, **dataset) -> RunSummary:
    """A copy of `summary` under another id with dataset fields replaced (a table's `target`, `features`...)."""
    return summary.model_copy(update={"run_id": run_id, "dataset": summary.dataset.model_copy(update=dataset)})


# (name, run A from the fixture's summary, run B's model from A, how the output says they differ)
MODEL_CHANGES = [
    ("fit_intercept", lambda s: s, lambda a: with_model(a, "b", fit_intercept=False), "fit_intercept true -> false"),
    ("scaling", lambda s: s, lambda a: with_model(a, "b", scale="standard"), "scaling none -> standard"),
    ("table scaling", lambda s: with_model(as_table(s), "a", scale="none"),
     lambda a: with_model(a, "b", scale="standard"), "scaling none -> standard"),
    ("features order", as_table, lambda a: with_table(a, "b", features=["x1", "x0"]),
     "features x0, x1 -> x1, x0"),
    ("target", as_table, lambda a: with_table(a, "b", target="z"), "target y -> z"),
    ("holdout", as_table, lambda a: with_table(a, "b", holdout=0.25), "holdout none -> 0.25 (seed 3)"),
    ("holdout seed", lambda s: as_table(s, holdout=0.25), lambda a: with_table(a, "b", seed=4),
     "holdout 0.25 (seed 3) -> 0.25 (seed 4)"),
]


@pytest.mark.parametrize("make_a, change, says", [c[1:] for c in MODEL_CHANGES], ids=[c[0] for c in MODEL_CHANGES])
def test_runs_with_different_models_are_shown_side_by_side_with_no_verdict(make_a, change, says):
    a = make_a(_fixture_summary())
    assert compare(a, worse(a, "b")).regressions  # the same model: this much worse is a regression
    b = worse(change(a), "b")
    comparison = compare(a, b)
    assert not same_model(a, b) and comparison.model_changes == [says]
    assert comparison.regressions == [] and (comparison.frame["regression"] == "").all()
    assert list(comparison.frame["status_b"]) == ["ok", "ok", "diverged"]  # still shown, side by side
    assert comparison.notes[0] == f"different model: {says}"
    text = comparison_text(comparison)
    # A table's columns and holdout also choose its rows: those runs fitted different data too.
    assert comparison.same_data == (says.split()[0] in ("fit_intercept", "scaling"))
    differ = "model" if comparison.same_data else "data and model"
    assert text.splitlines()[1].endswith(f"(different {differ})") and f"different model: {says}\n" in text
    assert "no regression verdict" in text and "REGRESSION" not in text and "regression(s)" not in text


def test_the_same_model_keeps_the_verdict_and_a_field_a_run_did_not_record_reads_as_its_default(tmp_path):
    a = _fixture_summary()  # scale not recorded (null): generated data ran unscaled
    explicit = with_model(a, "b", scale="none", fit_intercept=True)
    assert Model.of(a) == Model.of(explicit) == Model(fit_intercept=True, scaling="none")
    found = compare(a, worse(explicit, "b")).regressions
    assert found[0].startswith("numpy_gd: error grew by") and found[1:] == ["numpy_sgd: status ok -> diverged"]
    table = as_table(a)  # a table with no recorded scale ran standardised, and held nothing out
    assert Model.of(table) == Model(True, "standard", "y", ("x0", "x1"), (0.0, None))
    assert same_model(table, with_model(table, "b", scale="standard"))
    assert not same_model(table, with_model(table, "b", scale="none"))
    assert same_model(table, with_table(table, "b", seed=9))  # the seed splits nothing without a holdout
    # summary.json from before `fit_intercept`, `scale` and `holdout` existed: the defaults it ran under.
    raw = json.loads(table.model_dump_json())
    for key in ("fit_intercept", "scale"):
        del raw[key]
    del raw["dataset"]["holdout"]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(raw))
    old = load_run(path)
    assert same_model(old, table) and not same_model(old, with_model(table, "b", fit_intercept=False))
    assert compare(old, worse(table, "b")).regressions


def test_the_previous_run_skips_runs_with_another_model(tmp_path):
    first = make_run(tmp_path, run_id(1))
    no_intercept = with_model(first, run_id(2), fit_intercept=False)
    scaled = with_model(first, run_id(3), scale="standard")
    save(tmp_path, no_intercept)
    save(tmp_path, scaled)
    assert previous_run(tmp_path, edited(first, run_id(4))).run_id == first.run_id
    assert previous_run(tmp_path, with_model(first, run_id(4), fit_intercept=False)).run_id == no_intercept.run_id
    assert previous_run(tmp_path, with_model(first, run_id(4), scale="standard")).run_id == scaled.run_id
    assert previous_run(tmp_path, with_model(first, run_id(4), fit_intercept=False, scale="standard")) is None
    text = render_markdown(first, {}, None)
    assert "No earlier run on the same data and model" in text


def test_the_report_shows_provenance_and_the_comparison_with_regressions_marked():
    a = edited(_fixture_summary(), "a", numpy_sgd={"seconds": 0.2})
    b = edited(a, "b", numpy_sgd={"seconds": 0.5})
    text = render_markdown(b, {}, compare(a, b))
    section = text.split("## Compared with the previous run on the same data")[1].split("##")[0]
    assert "Previous run: `a`" in section
    assert "| numpy_sgd | ok |" in section and "**regression**: 2.50x slower" in section
    assert "| numpy_gd | ok |" in section and section.count("**regression**") == 1
    made = b.provenance
    assert f"commit `{made.commit}`" in text and f"NumPy {made.numpy}" in text and f"`{made.host}`" in text
    assert f"Prefect {made.prefect}" in text and made.device_name in text
    assert "No earlier run on the same data" in comparison_markdown(None)


def test_the_frame_of_no_runs_has_the_columns():
    frame = summaries_frame([])
    assert frame.empty and list(frame.columns) == COLUMNS


_SUMMARY: list[RunSummary] = []


def _fixture_summary() -> RunSummary:
    """One real run's summary, made once (no files)."""
    if not _SUMMARY:
        from linreg.data import make_dataset
        from linreg.storage import DatasetRef

        data = make_dataset(SPEC)
        fits = [SOLVERS[s].fit(data, SOLVERS[s].defaults.model_copy(update={"epochs": EPOCHS})) for s in SOLVER_NAMES]
        ref = DatasetRef(path="d.parquet", sha256="ab" * 32, spec=SPEC)
        quiet = collect("cpu").model_copy(update={"cores": 2, "load_average": 0.5})  # this machine may be busy
        _SUMMARY.append(summarize("a", ref, data, fits, 0.1, quiet))
    return _SUMMARY[0]
