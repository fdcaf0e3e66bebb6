"""A user's own table through the parameters, the command line, the solvers and the flow.

The ingest itself (every refusal, streaming, conversion once) is tested in test_ingest.py,
the statsmodels-style table's maths in test_inference.py; here they are wired together.
"""

import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from flows.cli import build_parser, main
from flows.cli.run import build_run_spec
from linreg.data import holdout_count, holdout_mask
from linreg.least_squares import solve_least_squares
from linreg.moments import accumulate
from linreg.scaling import Scaling, ScaledSource
from linreg.solvers import SOLVERS
from linreg.specs import DataSpec, FileData, RunSpec
from linreg.storage import ingest_table, open_data, table_ref

ROOT = Path(__file__).resolve().parents[1]
LONGLEY = ROOT / "data" / "examples" / "longley.csv"
FEATURES = ["gnp_deflator", "gnp", "unemployed", "armed_forces", "population", "year"]


def file_data(**fields) -> dict:
    return {"source": "file", "path": str(LONGLEY), "target": "employed", **fields}


# --- the parameters ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def schema() -> dict:
    from prefect.utilities.callables import parameter_schema

    from flows.linreg_flow import linreg_flow

    return parameter_schema(linreg_flow).model_dump_for_openapi()


def prefect_message(params: dict, schema: dict) -> str:
    """What the server answers a deployment run with these parameters (its own validator)."""
    from prefect.utilities.schema_tools.validation import ValidationError as SchemaError
    from prefect.utilities.schema_tools.validation import validate

    with pytest.raises(SchemaError) as refused:
        validate(params, schema, raise_on_error=True)
    return str(refused.value)


def test_the_data_parameter_is_either_kind_and_old_parameters_still_mean_generated_data(schema):
    assert isinstance(RunSpec().data, DataSpec)
    assert isinstance(RunSpec(data={"n": 5}).data, DataSpec)  # saved before files existed: no `source`
    spec = RunSpec(data=file_data(features=["gnp", "year"], holdout=0.25))
    assert isinstance(spec.data, FileData) and spec.data.features == ["gnp", "year"]
    assert spec.scaling == "standard" and RunSpec().scaling == "none"  # auto, decided by the kind
    assert RunSpec(data=file_data(), scale="none").scaling == "none"
    assert spec.label("cpu") == "longley-employed-cpu"
    for params in ({"run": {"data": file_data()}}, {"run": {"data": {"n": 5}}}, {"run": {"data": file_data(),
                                                                                        "scale": "standard"}}):
        jsonschema.validate(params, schema)
    union = schema["definitions"]["RunSpec"]["properties"]["data"]
    assert [branch["$ref"].rsplit("/", 1)[-1] for branch in union["anyOf"]] == ["DataSpec", "FileData"]


def test_deployment_parameters_saved_before_files_existed_still_pass_the_server(schema):
    """The server checks a deployment's parameters with every `required` removed (as prefect.yaml's
    deployments are created): generated data without `source` must still read as generated."""
    from prefect.utilities.schema_tools.validation import validate

    saved = {"run": {"data": {"n": 1000, "weights": [2.0], "bias": 1.0, "noise": 0.1, "seed": 42}}}
    for ignore_required in (False, True):
        validate(saved, schema, raise_on_error=True, ignore_required=ignore_required)
        validate({"run": {"data": file_data()}}, schema, raise_on_error=True, ignore_required=ignore_required)


BAD_FILE_DATA = {
    "no target": ({"source": "file", "path": "x.csv"}, "'target' is a required property", ("data", "file", "target")),
    "holdout above 0.9": (file_data(holdout=0.95), "'run.data.holdout'", ("data", "file", "holdout")),
    "generated field": (file_data(n=5), "'n' was unexpected", ("data", "file", "n")),
    "empty features": (file_data(features=[]), "'run.data.features'", ("data", "file", "features")),
    "unknown source": ({"source": "sql"}, "not valid under any", ("data",)),
}


@pytest.mark.parametrize("data, server_says, loc", BAD_FILE_DATA.values(), ids=BAD_FILE_DATA.keys())
def test_the_server_and_pydantic_refuse_bad_file_data_naming_the_field(schema, data, server_says, loc):
    params = {"run": {"data": data}}
    assert server_says in prefect_message(params, schema)
    with pytest.raises(ValidationError) as refused:
        RunSpec(**params["run"])
    assert refused.value.errors()[0]["loc"][: len(loc)] == loc


def test_generated_data_errors_still_name_their_field_on_the_server(schema):
    message = prefect_message({"run": {"data": {"n": 0}}}, schema)
    assert "'run.data.n'" in message and "less than the minimum of 1" in message


def test_pydantic_refuses_the_target_among_the_features():
    with pytest.raises(ValidationError, match="the target 'employed' is among the features"):
        RunSpec(data=file_data(features=["gnp", "employed"]))


# --- the command line ----------------------------------------------------------------------------

def cli_spec(*argv: str) -> RunSpec:
    return build_run_spec(build_parser().parse_args(["run", *argv]))


def test_the_cli_builds_file_data_with_an_absolute_path_and_named_features(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = cli_spec("--data", "data/examples/longley.csv", "--target", "employed", "--features", "gnp,year",
                    "--holdout", "0.25", "--seed", "7", "--no-intercept", "--scale", "none")
    assert spec.data == FileData(path=str(LONGLEY), target="employed", features=["gnp", "year"], holdout=0.25,
                                 seed=7)
    assert spec.fit_intercept is False and spec.scaling == "none"


@pytest.mark.parametrize("argv, message", [
    (["--data", str(LONGLEY), "--target", "employed", "--n", "5", "--noise", "0"],
     "--data and --n cannot be used together: --n, --noise describe generated data"),
    (["--data", str(LONGLEY), "--target", "employed", "--weights", "1,2"], "--data and --weights"),
    (["--data", str(LONGLEY)], "--target: required with --data"),
    (["--target", "employed"], "--target: only with --data PATH"),
    (["--holdout", "0.2"], "--holdout: only with --data PATH"),
    (["--drop-missing"], "--drop-missing: only with --data PATH"),
    (["--data", str(LONGLEY), "--target", "employed", "--holdout", "1"], "--holdout: must be in [0.0, 0.9]"),
    (["--data", str(LONGLEY), "--target", "employed", "--scale", "max"], "--scale: Input should be"),
    (["--data", str(LONGLEY), "--target", "employd"], "--data: " + str(LONGLEY) + ": unknown target column 'employd'"),
    (["--data", str(LONGLEY), "--target", "employed", "--features", "gnp,gdp"], "unknown feature column 'gdp'"),
    (["--data", str(LONGLEY), "--target", "employed", "--features", "gnp,employed"],
     "--features: the target 'employed' is among the features"),
    (["--data", "no-such-file.csv", "--target", "y"], "no-such-file.csv: no such file or folder"),
    (["--data", str(LONGLEY), "--target", "employed", "--cov", "HC4"],
     "--cov: Input should be 'nonrobust', 'HC0', 'HC1', 'HC2' or 'HC3', got 'HC4'"),
])
def test_the_cli_refuses_bad_options_in_one_line_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["run", *argv, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
    assert one_error_line(err) and not out.exists()  # one line; nothing written


def one_error_line(err: str) -> bool:
    """The refusal is the last line, and the only one that says error (a "checking" line may precede it)."""
    lines = err.strip().splitlines()
    return lines[-1].startswith("linreg run: error: ") and sum("error" in line for line in lines) == 1


BAD_VALUES = {
    "missing value": ("y,a,b\n1,2,3\n2,,5\n3,4,\n4,5,6\n5,1,1\n", [],
                      "'a': 1 missing, first at data row 2"),
    "infinite value": ("y,a\n1,2\n2,inf\n3,4\n", [], "infinite"),
    "constant feature": ("y,a,b\n1,2,7\n2,3,7\n3,5,7\n4,4,7\n", [], "constant"),
    "too few rows": ("y,a,b\n1,2,3\n2,3,1\n", [], "rows"),
    "holdout leaves too few": ("y,a\n1,2\n2,3\n3,5\n4,4\n", ["--holdout", "0.9"], "--holdout 0.9"),
}


@pytest.mark.parametrize("text, extra, message", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_refused_by_the_cli_in_one_line_and_nothing_is_written(tmp_path, capsys, text, extra,
                                                                              message):
    table = tmp_path / "t.csv"
    table.write_text(text)
    out = tmp_path / "out"
    status = main(["run", "--data", str(table), "--target", "y", *extra, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and message in err and str(table) in err, err
    assert one_error_line(err)
    written = sorted(p.name for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert written == [], written  # no conversion, whole or partial
    assert not out.exists()  # not even the folders a conversion would have gone in


def test_a_refused_holdout_keeps_a_conversion_an_earlier_run_left(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("y,a\n1,2\n2,3\n3,5\n4,4\n")
    out = tmp_path / "out"
    earlier = ingest_table(table, "y", data_root=out)  # as a run on the same table would have left it
    status = main(["run", "--data", str(table), "--target", "y", "--holdout", "0.9", "--output-dir", str(out)])
    assert status == 2 and "--holdout 0.9" in capsys.readouterr().err
    assert sorted(p for p in out.rglob("*") if p.is_file()) == [Path(earlier.path)]


def test_drop_missing_says_how_many_rows_it_dropped(tmp_path, capsys, monkeypatch):
    table = tmp_path / "t.csv"
    table.write_text("y,a\n1,2\n2,\n3,5\n4,4\n6,1\n")
    args = build_parser().parse_args(["run", "--data", str(table), "--target", "y", "--drop-missing",
                                      "--output-dir", str(tmp_path / "out")])
    spec = build_run_spec(args)
    assert "--drop-missing dropped 1 of 5 rows" in capsys.readouterr().err
    assert spec.data.drop_missing


def test_a_text_column_is_refused_before_prefect_with_a_hint(tmp_path, capsys):
    table = tmp_path / "cars.csv"
    table.write_text("mpg,name,weight\n21.0,mazda,2.62\n22.8,datsun,2.32\n21.4,hornet,3.215\n")
    status = main(["run", "--data", str(table), "--target", "mpg", "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "column 'name' is not numeric" in err and "--feature weight" in err, err
    assert one_error_line(err)


# --- the holdout split and the scaling -----------------------------------------------------------

def test_the_holdout_split_is_the_same_whole_or_by_chunk_and_seeded():
    whole = holdout_mask(0, 100_000, 0.2, seed=3)
    chunks = np.concatenate([holdout_mask(s, 7_000, 0.2, seed=3)[: max(0, min(7_000, 100_000 - s))]
                             for s in range(0, 100_000, 7_000)])
    assert np.array_equal(whole, chunks)
    assert abs(whole.mean() - 0.2) < 0.01  # binomial: sd 0.0013
    assert holdout_count(100_000, 0.2, 3, block=4_096) == whole.sum()
    assert not np.array_equal(whole, holdout_mask(0, 100_000, 0.2, seed=4))
    assert not holdout_mask(0, 1000, 0.0, seed=3).any()


@pytest.fixture(scope="module")
def longley(tmp_path_factory):
    return ingest_table(LONGLEY, "employed", data_root=tmp_path_factory.mktemp("root"))


@pytest.mark.parametrize("budget", [1 << 30, 64], ids=["in memory", "streamed"])
def test_held_out_rows_are_in_no_fit_and_train_plus_holdout_is_the_table(longley, budget):
    ref = table_ref(longley, seed=5, holdout=0.3)
    train, held, whole = (open_data(ref, budget, part) for part in ("train", "holdout", "all"))
    rows = lambda source: {tuple(r) for x, y in source.iter_chunks(5) for r in np.column_stack([x, y])}
    assert ref.n_holdout == held.n > 0 and train.n == ref.n == 16 - ref.n_holdout
    assert rows(train) | rows(held) == rows(whole) and not rows(train) & rows(held)
    assert len(rows(train)) == train.n and train.spec.n == train.n and train.spec.seed == 5


def test_a_holdout_that_leaves_too_few_rows_is_refused(longley):
    from linreg.storage import TableError

    with pytest.raises(TableError, match="leaves .* rows to fit 7 parameters"):
        table_ref(longley, seed=0, holdout=0.9)
    with pytest.raises(TableError, match="holds out no row of 16"):
        table_ref(longley, seed=0, holdout=0.001)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_a_fit_on_standardised_data_maps_back_to_the_original_units(longley, fit_intercept):
    """The least-squares fit is invariant under the scaling: solved on the standardised data and
    mapped back, it is the fit on the data as given (Longley: condition 4e4, so to ~9 digits)."""
    data = open_data(table_ref(longley, seed=0))
    scaling = Scaling.of(accumulate(data.iter_chunks(), data.d), fit_intercept)
    scaled = ScaledSource(data, scaling)
    x, y = scaled.arrays()
    if fit_intercept:
        assert np.allclose(x.mean(axis=0), 0, atol=1e-12) and np.allclose(x.std(axis=0), 1)
    on_scaled = SOLVERS["closed_form"].fit(scaled, SOLVERS["closed_form"].defaults.model_copy(
        update={"fit_intercept": fit_intercept}))
    direct = solve_least_squares(accumulate(data.iter_chunks(), data.d), data.iter_chunks, fit_intercept)
    back = scaling.unscale(on_scaled)
    assert np.allclose(back.coef, direct.coef, rtol=1e-7) and math.isclose(back.intercept, direct.intercept,
                                                                           rel_tol=1e-7, abs_tol=1e-6)


# --- through the flow ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def statsmodels_longley():
    sm = pytest.importorskip("statsmodels.api")
    frame = pd.read_csv(LONGLEY)
    return sm.OLS(frame["employed"], sm.add_constant(frame[FEATURES])).fit()


def statsmodels_influence(ols, top: int = 5) -> list[tuple[int, float, float, float]]:
    """statsmodels' top rows by Cook's distance: (data row from 1, Cook's, leverage, studentized residual)."""
    frame = ols.get_influence().summary_frame().reset_index(drop=True)
    best = frame.sort_values("cooks_d", ascending=False, kind="stable").head(top)
    return [(int(i) + 1, r.cooks_d, r.hat_diag, r.student_resid) for i, r in best.iterrows()]


@pytest.mark.parametrize("cov", ["nonrobust", "HC3"])
def test_a_tables_summary_has_statsmodels_lower_block_influence_and_covariance(longley, statsmodels_longley, cov):
    from statsmodels.stats.stattools import durbin_watson, jarque_bera, omni_normtest

    from linreg.evaluate import summarize

    ref = table_ref(longley, seed=0)
    data = open_data(ref)
    fit = SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults)
    summary = summarize("r1", ref, data, [fit], cov=cov)
    ols = statsmodels_longley if cov == "nonrobust" else statsmodels_longley.model.fit(cov_type=cov)
    r, resid = summary.residual_statistics, ols.resid
    omnibus, omnibus_p = omni_normtest(resid)
    jb, jb_p, skew, kurtosis = jarque_bera(resid)
    for ours, theirs in ((r.durbin_watson, durbin_watson(resid)), (r.omnibus, omnibus), (r.omnibus_pvalue, omnibus_p),
                         (r.jarque_bera, jb), (r.jarque_bera_pvalue, jb_p), (r.skew, skew), (r.kurtosis, kurtosis)):
        assert math.isclose(ours, theirs, rel_tol=1e-8), (ours, theirs)
    found = [(i.row, i.cooks_distance, i.leverage, i.student_residual) for i in summary.influential_rows]
    expected = statsmodels_influence(statsmodels_longley)
    assert [row for row, *_ in found] == [row for row, *_ in expected]
    assert np.allclose([f[1:] for f in found], [e[1:] for e in expected], rtol=1e-7)
    table = {c.parameter: c for c in summary.coefficients}
    assert np.allclose([table[n].std_error for n in ["intercept", *FEATURES]], ols.bse.to_numpy(), rtol=1e-7)
    assert summary.cov_type == summary.fit_statistics.cov_type == cov
    assert math.isclose(summary.fit_statistics.f_statistic, ols.fvalue, rel_tol=1e-6)
    robust_said = "Standard errors: HC3, heteroscedasticity-robust" in console_table_of(summary)
    assert robust_said == (cov == "HC3")


def console_table_of(summary) -> str:
    from linreg.report import console_table

    return console_table(summary)


def test_influential_rows_with_a_holdout_are_named_by_their_row_in_the_table(longley):
    from linreg.evaluate import summarize

    ref = table_ref(longley, seed=3, holdout=0.25)
    data = open_data(ref)
    fit = SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults)
    summary = summarize("r1", ref, data, [fit])
    kept = np.flatnonzero(~holdout_mask(0, 16, 0.25, 3))  # the table's rows the fit saw, from 0
    frame = pd.read_csv(LONGLEY).iloc[kept]
    sm = pytest.importorskip("statsmodels.api")
    ols = sm.OLS(frame["employed"], sm.add_constant(frame[FEATURES])).fit()
    expected = [(int(kept[row - 1]) + 1, *rest) for row, *rest in statsmodels_influence(ols)]
    found = [(i.row, i.cooks_distance, i.leverage, i.student_residual) for i in summary.influential_rows]
    assert [row for row, *_ in found] == [row for row, *_ in expected]
    assert np.allclose([f[1:] for f in found], [e[1:] for e in expected], rtol=1e-6)


@pytest.mark.flow
def test_longley_through_the_flow_names_every_weight_and_matches_statsmodels(
        prefect_server, tmp_path, statsmodels_longley):
    from flows.linreg_flow import linreg_flow
    from linreg.report import console_table, render_markdown
    from linreg.storage import run_dir

    run = RunSpec(output_dir=tmp_path / "out", device="cpu", data=file_data())
    state = linreg_flow(run, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    ds = summary.dataset
    assert (ds.source, ds.source_path, ds.target, ds.features, ds.rows, ds.n) == (
        "file", str(LONGLEY), "employed", FEATURES, 16, 16)
    assert ds.feature_dtypes == ["double", "int64", "int64", "int64", "int64", "int64"] and ds.converted
    assert ds.weights is None and ds.bias is None and summary.scale == "standard"
    # Every iterative solver ends ok, or diverged with its epoch and reason; its distance is reported.
    for row in summary.results:
        assert row.status in ("ok", "diverged"), row
        if row.status == "diverged":
            assert row.diverged_epoch is not None and "epoch" in row.message
        assert len(row.weights) == 6 and math.isfinite(row.distance_to_closed_form)
        assert math.isnan(row.bias_abs_error)  # no truth
    # The reference's table against statsmodels' OLS on the same data.
    ols = statsmodels_longley
    table = {c.parameter: c for c in summary.coefficients}
    assert list(table) == ["intercept", *FEATURES]
    for name, sm_name in zip(table, ["const", *FEATURES]):
        c = table[name]
        for ours, theirs in ((c.coefficient, ols.params[sm_name]), (c.std_error, ols.bse[sm_name]),
                             (c.t, ols.tvalues[sm_name]), (c.p_value, ols.pvalues[sm_name]),
                             (c.ci_low, ols.conf_int().loc[sm_name, 0]), (c.ci_high, ols.conf_int().loc[sm_name, 1])):
            assert math.isclose(ours, theirs, rel_tol=1e-6), (name, ours, theirs)
    f = summary.fit_statistics
    assert f.nobs == 16 and math.isclose(f.r_squared, ols.rsquared, rel_tol=1e-9)
    assert math.isclose(f.adj_r_squared, ols.rsquared_adj, rel_tol=1e-9)
    assert math.isclose(f.f_statistic, ols.fvalue, rel_tol=1e-6)
    assert all(i.truth is None and i.covers_truth is None for i in summary.inference)
    # What the user reads: weights under their columns' names, no truth columns.
    text = console_table(summary)
    assert all(name in text for name in FEATURES) and "truth" not in text
    report = render_markdown(summary, {})
    assert "| solver | bias | gnp_deflator | gnp |" in report and "covers_truth" not in report
    folder = run_dir(run.output_dir, summary.run_id)
    saved = json.loads((folder / "summary.json").read_text())
    assert saved["dataset"]["sha256"] == ds.sha256 and saved["dataset"]["features"] == FEATURES
    # summary.csv (and the linreg-summary table, the same rows): a weight column per feature, by name, in order.
    header = (folder / "summary.csv").read_text().splitlines()[0].split(",")
    assert [c for c in header if c.startswith("weight")] == [f"weight_{name}" for name in FEATURES]
    rows = pd.read_csv(folder / "summary.csv").set_index("solver")
    reference = next(r for r in summary.results if r.solver == "closed_form")
    assert np.allclose([rows.loc["closed_form", f"weight_{n}"] for n in FEATURES], reference.weights, rtol=1e-7)
    assert {"fits.png", "losses.png", "predicted.png", "residuals.png", "coefficients.png"} <= {
        p.name for p in folder.iterdir()}


@pytest.mark.flow
def test_a_parquet_is_read_in_place_with_a_holdout_and_history_knows_same_data(prefect_server, tmp_path):
    from flows.linreg_flow import linreg_flow
    from linreg.results import compare, previous_run

    table = tmp_path / "longley.parquet"
    pq.write_table(pa.Table.from_pandas(pd.read_csv(LONGLEY)), table)
    before = sorted(p.name for p in tmp_path.iterdir())
    data = {"source": "file", "path": str(table), "target": "employed", "features": ["year", "gnp"],
            "holdout": 0.25, "seed": 3}
    run = RunSpec(output_dir=tmp_path / "out", device="cpu", data=data, solvers=["closed_form", "numpy_gd"])
    first = linreg_flow(run, return_state=True).result()
    ds = first.dataset
    assert ds.path == str(table) and not ds.converted and ds.features == ["year", "gnp"]
    assert ds.n + ds.n_holdout == 16 and ds.n_holdout > 0
    assert not (tmp_path / "out" / "datasets").exists()  # read in place: nothing copied
    assert all(math.isfinite(r.holdout_mse) and math.isfinite(r.holdout_r2) for r in first.results)
    assert first.coefficients[1].parameter == "year"  # the order given, not the file's
    # The held-out rows are in no fit: the reference is OLS on the other rows alone.
    assert first.fit_statistics.nobs == ds.n
    train = open_data(table_ref(ingest_table(table, "employed", ["year", "gnp"], data_root=tmp_path / "check"),
                                seed=3, holdout=0.25), 1 << 30)
    x, y = train.arrays()
    assert len(y) == ds.n
    ols = np.linalg.lstsq(np.column_stack([np.ones(len(y)), x]), y, rcond=None)[0]
    reference = next(r for r in first.results if r.solver == "closed_form")
    assert np.allclose([reference.bias, *reference.weights], ols, rtol=1e-6)
    second = linreg_flow(run, return_state=True).result()
    assert previous_run(run.output_dir, second).run_id == first.run_id
    assert compare(first, second).same_data
    other = linreg_flow(run.model_copy(update={"data": FileData(**{**data, "seed": 4})}), return_state=True).result()
    assert not compare(second, other).same_data  # another holdout split is other data
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["out"])


@pytest.mark.flow
def test_the_readme_command_then_history_groups_by_file_and_compare_names_another_file(
        prefect_server, tmp_path, capsys):
    """`make run ARGS="--data data/examples/longley.csv --target employed"` as the README shows it, twice,
    then on a copy with one value changed: history puts the first two together, compare tells the third apart."""
    out = tmp_path / "out"
    changed = tmp_path / "copy" / "longley.csv"
    changed.parent.mkdir()
    changed.write_text(LONGLEY.read_text().replace("\n83.0,234289,2356,1590,107608,1947,60323\n",
                                                   "\n83.0,234289,2356,1590,107608,1947,60324\n"))
    common = ["--target", "employed", "--solvers", "closed_form,numpy_gd", "--epochs", "50", "--device", "cpu",
              "--output-dir", str(out)]
    for path in (LONGLEY, LONGLEY, changed):
        assert main(["run", "--data", str(path), *common]) == 0
        text = capsys.readouterr().out
        assert "Coefficients (bias, then each feature by name):" in text and all(name in text for name in FEATURES)
        assert "Reference fit (closed form), as statsmodels' OLS reports it:" in text and "adjusted R²" in text
    assert main(["history", "--output-dir", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["run_id", "data"]
    runs, data = zip(*(line.split()[:2] for line in lines[1:4]))
    assert data[0] == data[1] != data[2] and all(label.startswith("longley.csv@") for label in data)
    assert list(runs[:2]) == sorted(runs[:2])  # oldest first within the group
    assert main(["compare", runs[0], runs[1], "--output-dir", str(out), "--min-seconds", "1e9"]) == 0
    assert "(different data)" not in capsys.readouterr().out
    assert main(["compare", runs[1], runs[2], "--output-dir", str(out), "--min-seconds", "1e9"]) == 0
    text = capsys.readouterr().out
    assert "(different data)" in text and "the runs fitted different data" in text
    assert f"sha256 {data[1].split('@')[1]}" in text and f"sha256 {data[2].split('@')[1]}" in text


# --- sweeps --------------------------------------------------------------------------------------

def test_a_sweep_over_a_table_refuses_generated_axes_naming_them(capsys):
    from linreg.sweep import SweepSpec, expand_grid

    sweep = SweepSpec(data=file_data(), solvers=["closed_form", "numpy_gd"], lr=[0.01, 0.1])
    assert sweep.scalings == ["standard"] and len(expand_grid(sweep)) == 3  # closed form once, numpy_gd per lr
    both = SweepSpec(data=file_data(), solvers=["closed_form", "numpy_gd"], lr=[0.01, 0.1], scales=["none", "standard"])
    assert [(c.solver, c.scale) for c in expand_grid(both)] == [("closed_form", "none")] + [
        ("numpy_gd", s) for _ in (0.01, 0.1) for s in ("none", "standard")]
    with pytest.raises(ValidationError, match="'standard' is for a user's table"):
        SweepSpec(scales=["standard"])
    with pytest.raises(ValidationError, match="describes generated data .* leave out n, noise"):
        SweepSpec(data=file_data(), n=[100], noise=0.5)
    status = main(["sweep", "--data", str(LONGLEY), "--target", "employed", "--d", "2"])
    err = capsys.readouterr().err
    assert status == 2 and "--data and --d cannot be used together: --d describes generated data" in err, err
    status = main(["sweep", "--target", "employed"])
    assert status == 2 and "--target: only with --data PATH" in capsys.readouterr().err


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "nope.csv", "no such file or folder"),
    (lambda d: (d / "t.csv").write_text("a,city,y\n1,Lyon,2\n2,Oslo,3\n3,Rome,5\n") and d / "t.csv",
     "column 'city' is not numeric (string: 'Lyon' at data row 1)"),
], ids=["missing file", "text column"])
def test_a_sweep_checks_the_whole_table_before_prefect_in_one_line(tmp_path, capsys, make, message):
    path = make(tmp_path)
    out = tmp_path / "out"
    status = main(["sweep", "--data", str(path), "--target", "y", "--output-dir", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and err[-1].startswith(f"linreg sweep: error: --data: {path}: {message}"), err
    assert err[:-1] == [f"linreg sweep: checking {path}"] and not out.exists()


def test_sweep_options_no_intercept_and_a_seed_only_with_a_table(tmp_path, capsys):
    from flows.cli.sweep import build_sweep_spec
    from linreg.sweep import SweepSpec, expand_grid

    spec = build_sweep_spec(build_parser().parse_args(
        ["sweep", "--data", str(LONGLEY), "--target", "employed", "--no-intercept", "--seed", "7",
         "--output-dir", str(tmp_path)]))
    assert spec.fit_intercept is False and spec.data.seed == 7
    assert all(cell.spec.fit_intercept is False for cell in expand_grid(spec))
    assert all(cell.spec.fit_intercept for cell in expand_grid(SweepSpec(solvers=["closed_form", "numpy_gd"])))
    capsys.readouterr()
    assert main(["sweep", "--seed", "7"]) == 2
    assert capsys.readouterr().err == ("linreg sweep: error: --seed: only with --data PATH (your own table); "
                                       "generated data's seeds are an axis: --seeds\n")


@pytest.mark.flow
def test_linreg_sweep_on_longley_without_an_intercept_prints_its_crossover(prefect_server, tmp_path, capfd):
    """`linreg sweep --data … --no-intercept`: every cell fits y = x·w, scored against the closed form
    of y = x·w on the same table (itself at 0), and the crossover table is printed.

    capfd, not capsys: the sweep sets up Prefect's console logging on the sys.stderr it finds,
    which capsys would close under the tests that follow."""
    from linreg.storage import Catalog

    out = tmp_path / "out"
    status = main(["sweep", "--data", str(LONGLEY), "--target", "employed", "--features", "gnp,year",
                   "--solvers", "closed_form,numpy_gd", "--lr", "0.01,0.1", "--epochs", "30", "--no-intercept",
                   "--output-dir", str(out)])
    text = capfd.readouterr().out
    assert status == 0, text
    (folder,) = Catalog(out).sweeps.iterdir()
    frame = pd.read_csv(folder / "sweep.csv")
    assert list(frame["solver"]) == ["closed_form", "numpy_gd", "numpy_gd"]
    assert frame.loc[0, "error"] == 0.0 and (frame["status"] == "ok").all()
    x = pd.read_csv(LONGLEY)[["gnp", "year"]].to_numpy(float)
    y = pd.read_csv(LONGLEY)["employed"].to_numpy(float)
    through_origin = np.linalg.lstsq(x, y, rcond=None)[0]
    with_intercept = np.linalg.lstsq(np.column_stack([np.ones(16), x]), y, rcond=None)[0]
    # Scored against y = x·w's fit: a cell at the intercept model's fit would be far off.
    assert np.abs(np.array([0.0, *through_origin]) - with_intercept).max() > 1e3
    # The crossover, printed and written: a row per solver; on this CPU-only grid, no CUDA rows.
    crossover = pd.read_csv(folder / "crossover.csv")
    assert list(crossover["solver"]) == ["closed_form", "numpy_gd"] and (crossover["d"] == 2).all()
    assert list(crossover["verdict"]) == ["no CUDA rows"] * 2
    assert "| solver | d | crossover_n | crossover_elements | cpu_s | cuda_s | verdict |" in text
    assert "| numpy_gd | 2 | – | – | – | – | no CUDA rows |" in text


@pytest.mark.flow
def test_a_sweep_over_longley_scores_cells_against_its_closed_form(prefect_server, tmp_path):
    from flows.sweep_flow import sweep_flow
    from linreg.storage import Catalog
    from linreg.sweep import SweepSpec

    sweep = SweepSpec(data=file_data(features=["gnp", "year"]), solvers=["closed_form", "numpy_gd", "torch_module"],
                      lr=[0.01, 0.1], epochs=[50], scales=["none", "standard"], output_dir=tmp_path / "out")
    state = sweep_flow(sweep, return_state=True)
    assert state.is_completed(), state.message
    frame = state.result()
    assert list(frame["solver"]) == ["closed_form"] + ["numpy_gd"] * 4 + ["torch_module"] * 4
    assert list(frame["scale"]) == ["none"] + ["none", "standard"] * 4
    # Unscaled, Longley's raw columns (GNP ~ 5e5) blow gradient descent up; standardised, it converges.
    scaled = frame[frame["scale"] == "standard"]
    assert (scaled["status"] == "ok").all()
    (folder,) = Catalog(tmp_path / "out").sweeps.iterdir()
    assert {"sweep.parquet", "sweep.csv", "crossover.csv", "seconds.png", "error.png"} <= {
        p.name for p in folder.iterdir()}
    assert (frame["n"] == 16).all() and (frame["d"] == 2).all() and (frame["seed"] == 42).all()
    assert frame.loc[0, "error"] == 0.0  # the closed form is the reference
    iterative = frame.iloc[1:]
    assert iterative["status"].isin(["ok", "diverged"]).all()
    assert (scaled["error"] > 0).all()
