"""The reference's honesty through a real flow run: models without an intercept, and a design
the closed form cannot solve uniquely. The maths is tested in test_strd.py and test_solvers.py."""

import json
import math

import pytest

from flows.linreg_flow import linreg_flow
from linreg.report import render_markdown
from linreg.specs import RunSpec
from linreg.storage import run_dir

pytestmark = pytest.mark.flow


def test_a_run_without_an_intercept_fits_none_and_says_which_r2(prefect_server, tmp_path):
    run = RunSpec(output_dir=tmp_path / "out", device="cpu", fit_intercept=False,
                  data={"n": 300, "weights": [2.0, -1.0], "bias": 3.0},
                  solvers=["closed_form", "numpy_gd", "torch_module", "numpy_sgd"])
    state = linreg_flow(run, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary.fit_intercept is False and summary.reference.r2_convention == "uncentred"
    assert all(row.bias == 0.0 for row in summary.results)
    assert [i.parameter for i in summary.inference] == ["w0", "w1"]  # no bias row
    # Every solver fitted the model the reference fitted (with a bias of 3 in the data, a fit with
    # an intercept would be ~3 away from it).
    assert all(row.distance_to_closed_form < 0.05 for row in summary.results), summary.results
    saved = json.loads((run_dir(run.output_dir, summary.run_id) / "summary.json").read_text())
    assert saved["fit_intercept"] is False and saved["reference"]["r2_convention"] == "uncentred"
    assert "without an intercept" in render_markdown(summary, {}) and "R² uncentred" in render_markdown(summary, {})


def test_a_rank_deficient_reference_is_said_and_compared_with_nothing(prefect_server, tmp_path, monkeypatch):
    import tasks.events

    emitted = []
    monkeypatch.setattr(tasks.events, "emit_event", lambda **event: emitted.append(event))
    # Two rows, three parameters: every plane through both points fits exactly.
    run = RunSpec(output_dir=tmp_path / "out", device="cpu", data={"n": 2, "weights": [2.0, -1.0]},
                  defaults={"epochs": 20}, solvers=["closed_form", "numpy_gd"])
    state = linreg_flow(run, return_state=True)
    assert state.is_completed()
    assert "1 rank_deficient (closed_form)" in state.message
    summary = state.result()
    closed = summary.results[0]
    assert closed.status == "rank_deficient" and "columns involved" in closed.message
    assert summary.reference.rank_deficient and "rank-deficient" in summary.reference.warning
    assert math.isnan(summary.results[1].distance_to_closed_form)  # no reference to be near
    assert [e["event"] for e in emitted] == ["linreg.solver.rank_deficient"]  # an automation can alert on it
