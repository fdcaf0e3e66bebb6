"""Faults a user causes: interrupted runs, concurrent runs, arbitrary valid specs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linreg.data import make_dataset
from linreg.solvers import SOLVERS
from linreg.solvers.closed_form import design_matrix
from linreg.specs import DataSpec
from linreg.storage import DatasetRef, read_dataset, sha256_file

LINREG = [sys.executable, "-m", "flows.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _env(prefect_home: Path) -> dict:
    env = dict(os.environ, PREFECT_HOME=str(prefect_home), PYTHONPATH=str(ROOT))
    env.pop("PREFECT_API_URL", None)  # each CLI starts its own temporary API, as a user's would
    return env


def _start(args, tmp_path, log_name):
    log = open(tmp_path / log_name, "w")
    return subprocess.Popen([*LINREG, "run", *args], cwd=tmp_path, env=_env(tmp_path / "prefect"),
                            stdout=log, stderr=subprocess.STDOUT), log


def _assert_nothing_partial(out: Path):
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    for parquet in out.rglob("*.parquet"):
        spec = DataSpec()
        read_dataset(DatasetRef(path=str(parquet), sha256=sha256_file(parquet), spec=spec))
    for summary in out.rglob("summary.json"):
        assert json.loads(summary.read_text())["results"]


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_run_leaves_no_partial_file_and_the_next_run_works(tmp_path, signum):
    out = tmp_path / "out"
    args = ["--output-dir", str(out), "--solvers", "closed_form,numpy_gd,torch_dataloader", "--epochs", "400"]
    proc, log = _start(args, tmp_path, "killed.log")
    # Kill while training runs: the dataset is written, the summary not yet. The generous
    # limits cover a loaded 2-core machine, where start-up alone has taken over a minute.
    _wait_for(lambda: list((out / "datasets").glob("*.parquet")) if (out / "datasets").exists() else False,
              240, "the dataset file")
    proc.send_signal(signum)
    assert proc.wait(timeout=240) == 130
    log.close()
    assert "interrupted" in (tmp_path / "killed.log").read_text()
    _assert_nothing_partial(out)
    assert not list(out.rglob("summary.json")), "the interrupted run must not publish a summary"

    again, log = _start(args[:4], tmp_path, "again.log")
    assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-2000:]
    log.close()
    assert len(list(out.rglob("summary.json"))) == 1
    _assert_nothing_partial(out)


def test_two_concurrent_runs_share_the_dataset_and_both_succeed(tmp_path):
    out = tmp_path / "out"
    args = ["--output-dir", str(out), "--solvers", "closed_form,numpy_gd,torch_module", "--epochs", "200"]
    procs = [_start(args, tmp_path, f"run{i}.log") for i in range(2)]
    for i, (proc, log) in enumerate(procs):
        assert proc.wait(timeout=300) == 0, (tmp_path / f"run{i}.log").read_text()[-2000:]
        log.close()
    assert len(list((out / "datasets").glob("*.parquet"))) == 1
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2
    digests = {json.loads((run / "summary.json").read_text())["dataset"]["sha256"] for run in runs}
    assert len(digests) == 1
    _assert_nothing_partial(out)


valid_specs = st.builds(
    DataSpec,
    n=st.integers(min_value=1, max_value=300),
    weights=st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=5),
    bias=st.floats(-10, 10, allow_nan=False),
    noise=st.sampled_from([0.0, 0.01, 0.5, 2.0]),
    seed=st.integers(0, 2**32 - 1),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=valid_specs)
def test_closed_form_is_exact_without_noise_and_every_solver_is_finite(spec):
    """Finite, or honestly `diverged`: a fixed learning rate can exceed 2 / curvature on tiny n."""
    import torch

    torch.set_num_threads(1)
    data = make_dataset(spec)
    for name, info in SOLVERS.items():
        result = info.fit(data, info.defaults.model_copy(update={"epochs": 30}))
        assert result.status in ("ok", "diverged"), (name, result.message)
        if result.status == "diverged":
            assert name != "closed_form" and not np.isfinite(result.loss_history[result.diverged_epoch])
            continue
        assert np.isfinite(result.coef).all() and np.isfinite(result.intercept)
        assert np.isfinite(result.loss_history).all()
        if name == "closed_form" and spec.noise == 0.0 and spec.n > spec.d:
            # Exact up to rounding, which grows with the design's condition number.
            scale = 1 + max(abs(w) for w in spec.weights) + abs(spec.bias)
            tol = 1e-13 * scale * np.linalg.cond(design_matrix(data.x))
            np.testing.assert_allclose(result.coef, spec.weights, rtol=0, atol=tol)
            assert abs(result.intercept - spec.bias) <= tol
