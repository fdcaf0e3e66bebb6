"""The CLI refuses bad options with one line naming the option, before any work starts."""

import os
import signal
import sys
from pathlib import Path

import pytest

from flows.cli import main
from procs import run_captured

BAD = [
    (["--n", "0"], "--n: must be in [1, 1000000000], got 0"),
    (["--n", "-3"], "--n: must be in [1, 1000000000], got -3"),
    (["--n", "2.5"], "--n: Input should be a valid integer"),
    (["--n", "2000000000"], "--n: must be in [1, 1000000000]"),
    (["--weights", ""], "--weights: List should have at least 1 item"),
    (["--weights", "1,nan"], "--weights: must be a finite number, got nan"),
    (["--weights", "1,x"], "--weights: Input should be a valid number"),
    (["--bias", "inf"], "--bias: must be a finite number, got inf"),
    (["--noise", "-1"], "--noise: must be in [0.0, inf), got -1.0"),
    (["--noise", "nan"], "--noise: must be a finite number"),
    (["--seed", "-1"], "--seed: must be in [0, 4294967295], got -1"),
    (["--seed", "4294967296"], "--seed: must be in [0, 4294967295]"),
    (["--lr", "0"], "--lr: must be in (0.0, inf), got 0.0"),
    (["--lr", "nan"], "--lr: must be a finite number"),
    (["--lr", "inf"], "--lr: must be a finite number"),
    (["--epochs", "0"], "--epochs: must be in [1, 10000000], got 0"),
    (["--batch-size", "0"], "--batch-size: must be in [1, 2147483647], got 0"),
    (["--solvers", "numpy_gd,lasso"], "--solvers: unknown solver(s): lasso; known: closed_form, numpy_gd,"),
    (["--solvers", ","], "--solvers: must name at least one solver; known: closed_form"),
    (["--solvers", "numpy_gd,numpy_gd"], "--solvers: duplicate solver(s): numpy_gd"),
    (["--runner", "ray"], "--runner: Input should be 'threads', 'processes' or 'dask', got 'ray'"),
    (["--dask-address", "tcp://127.0.0.1:8786"], "--dask-address: is only used with runner 'dask'"),
    (["--runner", "dask", "--dask-address", "localhost"], "--dask-address: must look like tcp://host:port"),
    (["--device", "tpu"], "--device: unknown device 'tpu'; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_option_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["run", *argv, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"linreg run: error: {message}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_cuda_without_cuda_is_refused(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "--device", "cuda:1", "--output-dir", str(tmp_path / "o")]) == 2
    assert "--device: device 'cuda:1' requested but CUDA is not available" in capsys.readouterr().err


def test_cuda_index_beyond_the_device_count_is_refused(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main(["run", "--device", "cuda:1", "--output-dir", str(tmp_path / "o")]) == 2
    assert "only 1 CUDA device(s) exist" in capsys.readouterr().err


def test_output_dir_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["run", "--output-dir", str(target)]) == 2
    assert f"--output-dir: {target} exists and is not a folder" in capsys.readouterr().err


def test_output_dir_under_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--output-dir", str(blocker / "sub")]) == 2
    assert f"--output-dir: {blocker} is not a writable folder" in capsys.readouterr().err


def test_output_dir_without_write_permission_is_refused(tmp_path, capsys, monkeypatch):
    # Permission bits do not stop root (CI runs as root), so the permission check itself is stubbed.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    assert main(["run", "--output-dir", str(locked / "runs")]) == 2
    assert f"--output-dir: {locked} is not a writable folder" in capsys.readouterr().err


def test_cuda_is_accepted_for_dask_workers_without_local_cuda(monkeypatch):
    import torch

    from flows.cli import build_parser
    from flows.cli.run import build_run_spec

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = build_parser().parse_args(["run", "--runner", "dask", "--dask-address", "tcp://10.0.0.5:8786", "--device", "cuda"])
    assert build_run_spec(args).device == "cuda"


def test_the_ui_hint_names_the_command_that_serves_this_home(monkeypatch, tmp_path):
    """`make ui` serves the project's .prefect/; any other PREFECT_HOME needs `linreg ui` with it."""
    from flows.api.choose import REPO, ui_command

    monkeypatch.setenv("PREFECT_HOME", str(REPO / ".prefect"))
    assert ui_command() == "make ui"
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert ui_command() == "linreg ui"


def test_no_intercept_reaches_every_solver():
    from flows.cli import build_parser
    from flows.cli.run import build_run_spec

    spec = build_run_spec(build_parser().parse_args(["run", "--no-intercept", "--output-dir", "/tmp"]))
    assert spec.fit_intercept is False
    assert all(spec.solver_spec(name, "cpu").fit_intercept is False for name in spec.solvers)
    default = build_run_spec(build_parser().parse_args(["run", "--output-dir", "/tmp"]))
    assert default.fit_intercept is True and default.solver_spec("closed_form", "cpu").fit_intercept is True


def test_the_cli_loads_without_prefect_until_the_options_are_valid():
    """Bad options fail fast: importing the CLI and every subcommand's parser loads no Prefect, pandas or torch."""
    script = ("import sys; from flows.cli import build_parser; build_parser(); "
              "print(sorted({'prefect', 'pandas', 'torch'} & set(sys.modules)))")
    done = run_captured([sys.executable, "-c", script], "the CLI's import check", timeout=120,
                        cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("port, message", [
    ("0", "linreg ui: error: --port: must be in [1, 65535], got 0"),
    ("65536", "linreg ui: error: --port: must be in [1, 65535], got 65536"),
    ("4300x", "linreg ui: error: --port: must be an integer in [1, 65535], got '4300x'"),
])
def test_ui_refuses_a_port_out_of_range_in_one_line(capsys, port, message):
    assert main(["ui", "--port", port]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_ui_refuses_a_port_in_use(capsys):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    assert capsys.readouterr().err == f"linreg ui: error: --port: 127.0.0.1:{port} is already in use; choose another with --port\n"


def test_a_signal_before_the_flow_raises_at_once_and_names_itself():
    """Before the flow starts there is no safe point to wait for; the handler remembers the signal's name."""
    from flows.cli.signals import Interrupts
    from tasks.interrupt import STOP

    interrupts = Interrupts("run", grace=600)
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            interrupts.on_signal(signal.SIGTERM, None)
        assert STOP.is_set() and interrupts.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            interrupts.raise_if_stopped()
    finally:
        interrupts._deadline.cancel()
        STOP.clear()


def test_a_first_signal_during_the_flow_only_asks_it_to_stop():
    from flows.cli.signals import Interrupts
    from tasks.interrupt import STOP

    interrupts = Interrupts("run", grace=600)
    try:
        with interrupts.flow_running():
            interrupts.on_signal(signal.SIGINT, None)  # no raise: the flow stops at its next safe point
            assert STOP.is_set()
            with pytest.raises(KeyboardInterrupt, match="SIGINT"):
                interrupts.on_signal(signal.SIGINT, None)  # a second one does not wait
        assert not interrupts.flow_started
    finally:
        interrupts._deadline.cancel()
        STOP.clear()
