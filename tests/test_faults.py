"""Faults a user causes: interrupted runs, concurrent runs, arbitrary valid specs."""

import json
import os
import re
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
from linreg.specs import DataSpec
from linreg.storage import DatasetRef, read_dataset, sha256_file
from procs import default_sigint, kill_group, run_logged

pytestmark = pytest.mark.faults

LINREG = [sys.executable, "-m", "flows.cli"]
ROOT = Path(__file__).resolve().parents[1]
# Written by the training subflow as it begins: training has started (the dataset is written).
TRAINING_STARTED = "for flow 'linreg-train'"


def _env(prefect_home: Path) -> dict:
    env = dict(os.environ, PREFECT_HOME=str(prefect_home), PYTHONPATH=str(ROOT))
    env.pop("PREFECT_API_URL", None)  # each CLI starts its own temporary API, as a user's would
    return env


@pytest.fixture
def start_cli(tmp_path, migrated_prefect_home):
    """Start `linreg run ARGS` in a session of its own, output to a file; kill every group left at teardown."""
    started = []
    home = migrated_prefect_home(tmp_path / "prefect")

    def start(args, log_name):
        log = open(tmp_path / log_name, "w")
        proc = subprocess.Popen([*LINREG, "run", *args], cwd=tmp_path, env=_env(home), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=default_sigint)
        started.append((proc, log))
        return proc

    yield start
    for proc, log in started:
        kill_group(proc)
        log.close()


def _tail(path: Path) -> str:
    return path.read_text()[-3000:]


def _exit_code(proc, timeout, what, log: Path) -> int:
    """Wait for `proc`; on a timeout fail saying what hung, with its log (teardown kills it)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not exit within {timeout} s; its log {log} ends:\n{_tail(log)}")


def _assert_nothing_partial(out: Path):
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    for parquet in out.rglob("*.parquet"):
        spec = DataSpec()
        read_dataset(DatasetRef(path=str(parquet), sha256=sha256_file(parquet), spec=spec))
    for summary in out.rglob("summary.json"):
        assert json.loads(summary.read_text())["results"]


def _wait_for(predicate, timeout, what, log: Path, proc):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run exited ({proc.returncode}) while waiting for {what}:\n{_tail(log)}"
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}:\n{_tail(log)}"
        time.sleep(0.05)


@pytest.mark.timeout(900)  # above the waits below and the migrated home's set-up, so that theirs say what hung
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_run_leaves_no_partial_file_and_the_next_run_works(tmp_path, start_cli, signum):
    out = tmp_path / "out"
    # torch_dataloader's 2000 epochs take 10-25 s here (11 ms each), against the 50 ms between
    # seeing training start and the signal: the signal lands mid-training on any machine.
    # Not minutes: the run that follows trains as long.
    args = ["--output-dir", str(out), "--solvers", "closed_form,numpy_gd,torch_dataloader", "--epochs", "2000"]
    killed_log = tmp_path / "killed.log"
    proc = start_cli(args, killed_log.name)
    # The generous limits cover a loaded 2-core machine, where start-up alone has taken over a minute.
    _wait_for(lambda: list(out.glob("datasets/*.parquet")) and TRAINING_STARTED in killed_log.read_text(),
              240, "the dataset file and the start of training", killed_log, proc)
    proc.send_signal(signum)
    assert "train-torch_dataloader' - Finished" not in killed_log.read_text(), "training ended before the signal"
    code = _exit_code(proc, 240, f"the run signalled with {signum.name} during training", killed_log)
    assert code == 130, f"exit {code}, not 130 (interrupted):\n{_tail(killed_log)}"
    text = killed_log.read_text()
    assert "interrupted (" in text and "no partial files were kept" in text
    # The proof that the signal landed mid-run: the training subflow itself stopped, interrupted.
    training = re.search(r"Beginning subflow run '([^']+)' " + TRAINING_STARTED, text).group(1)
    assert re.search(rf"Flow run '{training}' - Finished in state Failed\('.*RunInterrupted", text), _tail(killed_log)
    assert f"{signum.name}); no partial files were kept" in text
    _assert_nothing_partial(out)
    assert not list(out.rglob("summary.json")), "the interrupted run must not publish a summary"

    again_log = tmp_path / "again.log"
    again = start_cli(args[:4], again_log.name)
    code = _exit_code(again, 300, "the run after the interrupted one", again_log)
    assert code == 0, _tail(again_log)
    assert len(list(out.rglob("summary.json"))) == 1
    _assert_nothing_partial(out)


def test_two_concurrent_runs_share_the_dataset_and_both_succeed(tmp_path, start_cli):
    """Two runs on one PREFECT_HOME: one serves its SQLite database, the other waits for it
    (flows.api.lock.HomeLock), so two servers never write the file at once."""
    out = tmp_path / "out"
    args = ["--output-dir", str(out), "--solvers", "closed_form,numpy_gd,torch_module", "--epochs", "200"]
    procs = [start_cli(args, f"run{i}.log") for i in range(2)]
    for i, proc in enumerate(procs):
        log = tmp_path / f"run{i}.log"
        code = _exit_code(proc, 300, f"concurrent run {i}", log)
        assert code == 0, _tail(log)
    waited = ["is in use by another linreg run" in (tmp_path / f"run{i}.log").read_text() for i in range(2)]
    assert sorted(waited) == [False, True]
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
def test_closed_form_is_exact_without_noise_and_every_solver_is_finite(one_torch_thread, spec):
    """Finite, or honestly `diverged`: a fixed learning rate can exceed 2 / curvature on tiny n."""
    data = make_dataset(spec)
    for name, info in SOLVERS.items():
        result = info.fit(data, info.defaults.model_copy(update={"epochs": 30}))
        # The closed form says so when the design is rank-deficient (n <= d, a constant column):
        # finite minimum-norm coefficients, honestly marked.
        allowed = ("ok", "diverged", "rank_deficient") if name == "closed_form" else ("ok", "diverged")
        assert result.status in allowed, (name, result.message)
        if result.status == "rank_deficient":
            assert np.isfinite(result.coef).all() and np.isfinite(result.intercept), result.message
            continue
        if result.status == "diverged":
            assert name != "closed_form" and not np.isfinite(result.loss_history[result.diverged_epoch])
            continue
        assert np.isfinite(result.coef).all() and np.isfinite(result.intercept)
        assert np.isfinite(result.loss_history).all()
        if name == "closed_form" and spec.noise == 0.0 and spec.n > spec.d:
            # Exact up to rounding, which grows with the design's condition number.
            scale = 1 + max(abs(w) for w in spec.weights) + abs(spec.bias)
            tol = 1e-13 * scale * np.linalg.cond(np.column_stack([np.ones(len(data.x)), data.x]))
            np.testing.assert_allclose(result.coef, spec.weights, rtol=0, atol=tol)
            assert abs(result.intercept - spec.bias) <= tol


def test_an_unreachable_api_gives_one_line_naming_it(tmp_path):
    """PREFECT_API_URL pointing at a closed port: a one-line error naming the URL, exit 1,
    no traceback, nothing written."""
    import socket

    # A port bound but never listening: connections to it are refused for as long as the test holds it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        env = dict(os.environ, PREFECT_API_URL=url, PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "home"))
        done = run_logged([*LINREG, "run", "--n", "50", "--output-dir", str(tmp_path / "out")], tmp_path / "logs",
                          "linreg run against a closed port", timeout=240, cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [f"linreg run: no Prefect API answers at {url} (Connection refused)"]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()
