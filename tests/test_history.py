"""`linreg history`, `linreg compare` and the linreg-history flow, over real run folders.

The runs are made through the library (real data, fits and scores, saved as `publish`
saves them): a `linreg run` costs ~10 s each. The flow tests at the end run Prefect.
"""

import json
import logging
import shutil

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from test_results import SOLVER_NAMES, SPEC, as_table, edited, make_run, run_id, save, with_model, worse

from flows.cli import main
from linreg.report import HISTORY_ARTIFACT_COLUMNS, _fmt
from linreg.results import COLUMNS, load_run
from linreg.storage import Catalog

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Three real runs, oldest first: the first and last on SPEC, the middle one on another seed."""
    root = tmp_path_factory.mktemp("history-cli")
    runs = [make_run(root, run_id(1)), make_run(root, run_id(2), SPEC.model_copy(update={"seed": 4})),
            make_run(root, run_id(3))]
    return root, runs


def history(capsys, *argv) -> tuple[int, list[str], str]:
    code = main(["history", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_history_prints_a_line_per_run_same_data_together_and_writes_csv_and_png(three_runs, capsys):
    root, runs = three_runs
    code, lines, err = history(capsys, "--output-dir", str(root))
    assert code == 0, err
    assert lines[0].split() == ["run_id", "data", "n", "d", "seed", "commit", *SOLVER_NAMES]
    table = lines[1:4]
    grouped = [runs[0], runs[2], runs[1]]  # the first and last runs fitted the same data: together, oldest first
    assert [line.split()[0] for line in table] == [r.run_id for r in grouped]
    assert [line.split()[1] for line in table] == [f"generated@{r.dataset.sha256[:8]}" for r in grouped]
    assert [line.split()[4] for line in table] == ["3", "3", "4"]
    for line, run in zip(table, grouped):
        assert line.split()[5] == run.provenance.commit
        for r in run.results:  # "<seconds> s / <error>" per solver, in the header's order
            assert f"{_fmt(r.seconds, 3)} s / {_fmt(max(r.bias_abs_error, *r.weights_abs_error), 3)}" in line
    assert lines[-1].startswith("3 runs; wrote")
    csv = pd.read_csv(root / "history.csv")
    assert list(csv.columns) == COLUMNS and len(csv) == 3 * len(SOLVER_NAMES)
    assert list(csv["run_id"].unique()) == [r.run_id for r in runs]
    assert list(csv["solver"][:3]) == list(SOLVER_NAMES)
    assert csv["seconds"].tolist() == [round(r.seconds, 4) for run in runs for r in run.results]
    assert (root / "history.png").read_bytes().startswith(PNG)


def test_history_skips_sweeps_in_their_own_folder_and_in_an_old_roots_runs_without_a_warning(
        three_runs, tmp_path, capsys, caplog):
    root, runs = three_runs
    copy = Catalog(tmp_path / "root")
    shutil.copytree(root / "runs", copy.runs)
    # sweeps/ as now, and runs/ as older versions kept them: both a finished sweep's files, no summary.json.
    for folder in (copy.sweep("20261201T020000Z-sweep-0000000a"), copy.run("20261201T020000Z-sweep-0000000b")):
        folder.mkdir(parents=True)
        (folder / "sweep.parquet").write_bytes(b"PAR1")
    with caplog.at_level(logging.WARNING, logger="linreg.results"):
        code, lines, err = history(capsys, "--output-dir", str(copy.root))
    assert code == 0, err
    assert sorted(line.split()[0] for line in lines[1:-2]) == [r.run_id for r in runs]
    assert lines[-1] == f"3 runs; wrote {copy.history_csv} and {copy.history_png}"
    assert [r.getMessage() for r in caplog.records if r.name == "linreg.results"] == []


def test_a_fit_that_did_not_end_ok_shows_its_status_and_an_absent_one_a_dash(tmp_path, three_runs, capsys):
    from linreg.data import make_dataset
    from linreg.solvers import SOLVERS
    from linreg.solvers.base import failed_result

    _, runs = three_runs
    first = runs[0].model_copy(update={"results": runs[0].results[:2]})  # no numpy_sgd
    save(tmp_path, first)
    data = make_dataset(SPEC)
    fits = [SOLVERS[s].fit(data, SOLVERS[s].defaults) for s in ("closed_form", "numpy_sgd")]
    make_run(tmp_path, run_id(2), fits=[fits[0], failed_result("numpy_gd", 2, RuntimeError("x")), fits[1]])
    code, lines, _ = history(capsys, "--output-dir", str(tmp_path))
    assert code == 0 and lines[0].split()[6:] == ["closed_form", "numpy_gd", "numpy_sgd"]
    assert lines[1].split()[-1] == "-" and "0 s / failed" in lines[2]


def test_history_filters_by_seed_solvers_and_last(three_runs, capsys):
    root, runs = three_runs
    code, lines, _ = history(capsys, "--output-dir", str(root), "--seed", "4")
    assert code == 0 and [line.split()[0] for line in lines[1:-2]] == [runs[1].run_id]
    code, lines, _ = history(capsys, "--output-dir", str(root), "--solvers", "numpy_gd", "--last", "2", "--n", "200",
                             "--d", "2")
    assert code == 0 and lines[0].split() == ["run_id", "data", "n", "d", "seed", "commit", "numpy_gd"]
    assert [line.split()[0] for line in lines[1:-2]] == [runs[1].run_id, runs[2].run_id]


BAD_HISTORY = [
    (["--n", "0"], "--n: must be in [1, 1000000000], got 0"),
    (["--n", "x"], "--n: must be an integer in [1, 1000000000], got 'x'"),
    (["--d", "1001"], "--d: must be in [1, 1000], got 1001"),
    (["--seed", "-1"], "--seed: must be in [0, 4294967295], got -1"),
    (["--last", "0"], "--last: must be in [1, 1000000000], got 0"),
    (["--solvers", "numpy_gd,lasso"], "--solvers: unknown solver(s): lasso; known: closed_form, numpy_gd,"),
    (["--solvers", ","], "--solvers: must name at least one solver"),
]


@pytest.mark.parametrize("argv, message", BAD_HISTORY, ids=[" ".join(a) for a, _ in BAD_HISTORY])
def test_a_bad_history_option_exits_2_with_one_line(three_runs, capsys, argv, message):
    root, _ = three_runs
    code, _, err = history(capsys, "--output-dir", str(root), *argv)
    assert code == 2 and err.startswith(f"linreg history: error: {message}") and err.count("\n") == 1


def test_history_of_a_missing_folder_or_no_match(tmp_path, three_runs, capsys):
    code, _, err = history(capsys, "--output-dir", str(tmp_path / "nowhere"))
    assert code == 2 and err == f"linreg history: error: --output-dir: no folder '{tmp_path / 'nowhere'}'\n"
    root, _ = three_runs
    code, lines, err = history(capsys, "--output-dir", str(root), "--seed", "99")
    assert code == 1 and lines == [] and "no finished run" in err


# A slowdown counts only above this many seconds: never, for real runs whose seconds depend on load.
NO_TIMING = ("--min-seconds", "1e9")


def compare(capsys, root, *argv) -> tuple[int, str, str]:
    code = main(["compare", *argv, "--output-dir", str(root)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_two_real_runs_of_the_same_spec_compare_clean(three_runs, capsys):
    root, runs = three_runs
    # Real fits' seconds vary with the machine's load: timing is left out here (NO_TIMING) and
    # checked on runs edited to known seconds below.
    code, out, _ = compare(capsys, root, runs[0].run_id, "latest", *NO_TIMING)
    assert code == 0 and "0 regression(s)" in out and "REGRESSION" not in out
    assert f"A: {runs[0].run_id}\nB: {runs[2].run_id}\n" in out


@pytest.fixture
def timed_pair(tmp_path, three_runs):
    """Run A: the last real run with realistic seconds (closed form 2 ms, the others 0.3 and 0.6 s); B copies it."""
    _, runs = three_runs
    a = edited(runs[2], run_id(4), closed_form={"seconds": 0.002}, numpy_gd={"seconds": 0.3},
               numpy_sgd={"seconds": 0.6})
    save(tmp_path, a)
    return tmp_path, a


def test_a_run_edited_to_be_twice_as_slow_exits_1(timed_pair, capsys):
    root, a = timed_pair
    slow = edited(a, run_id(5), **{r.solver: {"seconds": 2 * r.seconds} for r in a.results})
    save(root, slow)
    code, out, _ = compare(capsys, root, "previous", "latest")
    assert code == 1
    assert "2 regression(s): numpy_gd: 2.00x slower (0.3 s -> 0.6 s); numpy_sgd: 2.00x slower (0.6 s -> 1.2 s)" in out
    closed = next(line for line in out.splitlines() if line.startswith("closed_form"))
    assert "REGRESSION" not in closed  # 2 ms -> 4 ms: under the 0.05 s floor, timing noise
    code, out, _ = compare(capsys, root, "previous", "latest", "--slowdown", "2.5")
    assert code == 0 and "0 regression(s)" in out


def test_a_run_edited_to_a_worse_error_exits_1(timed_pair, capsys):
    root, a = timed_pair
    r = next(r for r in a.results if r.solver == "numpy_sgd")
    worse = [w + 0.05 for w in r.weights_abs_error]
    save(root, edited(a, run_id(6), numpy_sgd={"weights_abs_error": worse,
                                               "weights": [t + e for t, e in zip(SPEC.weights, worse)]}))
    code, out, _ = compare(capsys, root, str(root / "runs" / a.run_id), run_id(6))
    assert code == 1 and "numpy_sgd: error grew by 0.05 (tolerance 0.001)" in out
    code, _, _ = compare(capsys, root, a.run_id, run_id(6), "--tolerance", "0.1")
    assert code == 0


def test_identical_runs_exit_0(timed_pair, capsys):
    root, a = timed_pair
    shutil.copytree(root / "runs" / a.run_id, root / "runs" / run_id(7))
    code, out, _ = compare(capsys, root, a.run_id, run_id(7))
    assert code == 0 and "0 regression(s)" in out


def test_a_run_without_the_intercept_is_a_different_model_not_a_regression(timed_pair, capsys):
    root, a = timed_pair
    # As `make run ARGS=--no-intercept` after `make run`: no bias fitted, so its error is the true bias.
    no_bias = {r.solver: {"bias": 0.0, "bias_abs_error": SPEC.bias} for r in a.results}
    save(root, with_model(edited(a, run_id(8), **no_bias), run_id(8), fit_intercept=False))
    code, out, _ = compare(capsys, root, "previous", "latest")
    assert code == 0 and "B: " + run_id(8) + "  (different model)\n" in out
    assert "different model: fit_intercept true -> false\n" in out and "no regression verdict" in out
    assert "REGRESSION" not in out and "regression(s)" not in out
    save(root, edited(a, run_id(9), **no_bias))  # the same error growth with the intercept: a regression
    code, out, _ = compare(capsys, root, a.run_id, run_id(9))
    assert code == 1 and "error grew by" in out


def test_a_tables_runs_with_other_scaling_are_a_different_model_not_a_regression(timed_pair, capsys):
    root, a = timed_pair
    unscaled = with_model(as_table(a, run_id(8)), run_id(8), scale="none")
    save(root, unscaled)
    save(root, worse(with_model(unscaled, run_id(9), scale="standard"), run_id(9)))
    code, out, _ = compare(capsys, root, "previous", "latest")
    assert code == 0 and "different model: scaling none -> standard\n" in out and "(different data)" not in out
    assert "no regression verdict" in out and "REGRESSION" not in out
    save(root, worse(unscaled, run_id(10)))  # the same model: a regression, as before
    code, out, _ = compare(capsys, root, run_id(8), "latest")
    assert code == 1 and "numpy_sgd: status ok -> diverged" in out


def test_runs_on_different_data_say_so(three_runs, capsys):
    root, runs = three_runs
    code, out, _ = compare(capsys, root, runs[0].run_id, runs[1].run_id, *NO_TIMING)
    assert code == 0 and "(different data)" in out and "the runs fitted different data" in out
    assert "not compared: MSE" in out


BAD_COMPARE = [
    (["nope", "latest"], "RUN_A: 'nope' is no run folder"),
    (["latest", "nope"], "RUN_B: 'nope' is no run folder"),
    (["latest", "latest", "--slowdown", "0.5"], "--slowdown: must be in [1.0, inf), got 0.5"),
    (["latest", "latest", "--tolerance", "-1"], "--tolerance: must be in [0.0, inf), got -1"),
    (["latest", "latest", "--min-seconds", "x"], "--min-seconds: must be a number in [0.0, inf), got 'x'"),
]


@pytest.mark.parametrize("argv, message", BAD_COMPARE, ids=[" ".join(a) for a, _ in BAD_COMPARE])
def test_a_bad_compare_option_exits_2_with_one_line(three_runs, capsys, argv, message):
    root, _ = three_runs
    code, _, err = compare(capsys, root, *argv)
    assert code == 2 and err.startswith(f"linreg compare: error: {message}") and err.count("\n") == 1


def test_a_damaged_run_is_refused_naming_it(tmp_path, three_runs, capsys):
    _, runs = three_runs
    folder = tmp_path / "runs" / "broken"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text('{"run_id": "broken"}')
    code, _, err = compare(capsys, tmp_path, "broken", str(tmp_path / "runs" / "broken"))
    assert code == 2 and err.startswith(f"linreg compare: error: RUN_A: damaged summary.json in {folder}")


def artifacts_of(flow_run_id) -> dict:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a for a in found}


@pytest.mark.flow
def test_the_history_flow_publishes_a_table_and_the_plot(prefect_server, three_runs):
    from flows.history_flow import history_flow

    root, runs = three_runs
    state = history_flow(output_dir=root, return_state=True)
    assert state.is_completed() and state.message == f"3 runs, {3 * len(SOLVER_NAMES)} rows"
    artifacts = artifacts_of(state.state_details.flow_run_id)
    table, report = artifacts["linreg-history"], artifacts["linreg-history-report"]
    rows = json.loads(table.data)
    assert table.type == "table" and [list(row) for row in rows] == [HISTORY_ARTIFACT_COLUMNS] * len(rows)
    assert [(row["run_id"], row["solver"]) for row in rows] == [
        (run.run_id, r.solver) for run in runs for r in run.results]
    assert rows[0]["seconds"] == round(runs[0].results[0].seconds, 4) and rows[0]["commit"] == runs[0].provenance.commit
    assert report.type == "markdown" and report.data.count("](data:image/png;base64,") == 1
    assert all(f"| {run.run_id} |" in report.data for run in runs)
    assert (root / "history.png").read_bytes().startswith(PNG)


@pytest.mark.flow
def test_the_history_flow_fails_on_a_wrong_data_root_or_solver(prefect_server, three_runs, tmp_path):
    from flows.history_flow import history_flow

    root, _ = three_runs
    wrong = history_flow(output_dir=tmp_path / "empty", return_state=True)
    assert wrong.is_failed() and wrong.message.startswith("output_dir: ") and "has no runs/ folder" in wrong.message
    typo = history_flow(output_dir=root, solvers=["numpy-gd"], return_state=True)
    assert typo.is_failed() and typo.message.startswith("solvers: unknown numpy-gd; known: ")
    assert artifacts_of(wrong.state_details.flow_run_id) == {} == artifacts_of(typo.state_details.flow_run_id)


@pytest.mark.flow
def test_the_second_runs_report_compares_it_with_the_first(prefect_server, tmp_path):
    from flows.linreg_flow import linreg_flow
    from linreg.specs import RunSpec

    run = RunSpec(data={"n": 100}, solvers=["closed_form", "numpy_gd"], defaults={"epochs": 50}, device="cpu",
                  output_dir=tmp_path)
    reports, summaries = [], []
    for _ in range(2):
        state = linreg_flow(run, return_state=True)
        summaries.append(state.result())
        reports.append(artifacts_of(state.state_details.flow_run_id)["linreg-report"].data)
    section = "## Compared with the previous run on the same data"
    assert section in reports[0] and "No earlier run on the same data" in reports[0]
    assert f"Previous run: `{summaries[0].run_id}`" in reports[1].split(section)[1]
    assert "| closed_form | ok |" in reports[1].split(section)[1]
    saved = load_run(tmp_path / "runs" / summaries[1].run_id)
    assert saved.provenance is not None and saved.provenance.prefect and saved.provenance.device == "cpu"
    assert f"commit `{saved.provenance.commit}`" in reports[1]
