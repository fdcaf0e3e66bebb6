"""Nothing that `linreg run` starts outlives it: on success, on a failed API start, and when interrupted.

Each run goes through `process_watch.py`, a child subreaper: any process the
run leaves orphaned is re-parented to the watcher rather than to init, so the
watcher sees the whole tree (whatever session or group a process moved to),
reports what survived, and kills it.
"""

import json
import os
import sys
from pathlib import Path

import pytest

from procs import run_logged

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
WATCH = Path(__file__).with_name("process_watch.py")
LINREG = [sys.executable, "-m", "flows.cli", "run"]


def env_for(home: Path, **extra: str) -> dict:
    env = dict(os.environ, PREFECT_HOME=str(home), PYTHONPATH=str(ROOT), **extra)
    env.pop("PREFECT_API_URL", None)  # each run starts its own temporary API, as a user's does
    return env


def watched(tmp_path: Path, name: str, args: list[str], env: dict, signal_after: Path | None = None) -> dict:
    report = tmp_path / f"{name}.json"
    options = ["--signal", "SIGTERM", "--after-file", str(signal_after)] if signal_after else []
    done = run_logged([sys.executable, str(WATCH), str(report), *options, "--", *LINREG, *args],
                      tmp_path / name, f"linreg run ({name})", timeout=400, cwd=tmp_path, env=env)
    assert done.returncode == 0 and report.exists(), f"the watcher failed:\n{done.stdout}\n{done.stderr}"
    return {**json.loads(report.read_text()), "output": done.stdout + done.stderr}


def test_runs_leave_no_process_behind(tmp_path, migrated_prefect_home):
    out = tmp_path / "out"
    small = ["--output-dir", str(out), "--n", "200", "--solvers", "closed_form,numpy_gd,torch_module", "--epochs", "50"]
    for i in range(2):
        home = migrated_prefect_home(tmp_path / f"home{i}")
        result = watched(tmp_path, f"ok{i}", small, env_for(home))
        assert result["returncode"] == 0, result["output"][-3000:]
        assert result["survivors"] == [], result["survivors"]
    assert len(list((out / "runs").iterdir())) == 2


# On PYTHONPATH, imported by every Python process at start-up: the temporary API's process
# (the only one started with PREFECT__SERVER_EPHEMERAL=1) hangs before it can answer.
HANGING_API = """import os, time
if os.environ.get("PREFECT__SERVER_EPHEMERAL") == "1":
    time.sleep(3600)
"""


def test_an_api_that_does_not_start_in_time_is_stopped(tmp_path):
    """The leak's trigger: a start slower than the timeout. Here the API never answers, however
    fast the machine: its process hangs at start-up (HANGING_API), and the run must stop it."""
    hang = tmp_path / "hang"
    hang.mkdir()
    (hang / "sitecustomize.py").write_text(HANGING_API)
    env = env_for(tmp_path / "fresh-home", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    env["PYTHONPATH"] = f"{hang}{os.pathsep}{env['PYTHONPATH']}"
    result = watched(tmp_path, "timeout", ["--output-dir", str(tmp_path / "out")], env)
    assert result["returncode"] == 1, result["output"][-3000:]
    assert "did not answer within 1 s" in result["output"]
    assert "Traceback" not in result["output"]
    assert result["survivors"] == [], result["survivors"]
    assert not (tmp_path / "out" / "runs").exists()


def test_an_interrupted_run_stops_its_fits_and_leaves_no_process_behind(tmp_path, migrated_prefect_home):
    """Ten million epochs would train for days: the run ends within the timeout only if its fits stop."""
    out = tmp_path / "out"
    args = ["--output-dir", str(out), "--solvers", "closed_form,numpy_gd,torch_dataloader", "--epochs", "10000000"]
    result = watched(tmp_path, "interrupted", args, env_for(migrated_prefect_home(tmp_path / "home")),
                     signal_after=out / "datasets")
    assert result["signalled"], "the run ended before the signal: " + result["output"][-3000:]
    assert result["returncode"] == 130, result["output"][-3000:]
    assert result["survivors"] == [], result["survivors"]


def test_the_watcher_sees_an_orphaned_grandchild(tmp_path):
    """The check above could pass by seeing nothing: here a command orphans a sleeper on purpose."""
    report = tmp_path / "orphan.json"
    script = "import subprocess; subprocess.Popen(['sleep', '60'], start_new_session=True)"
    run_logged([sys.executable, str(WATCH), str(report), "--", sys.executable, "-c", script],
               tmp_path / "orphan", "the orphaning command", timeout=60)
    survivors = json.loads(report.read_text())["survivors"]
    assert [s["cmdline"] for s in survivors] == ["sleep 60"]


def test_an_interrupt_that_cannot_unwind_still_ends_the_process(tmp_path):
    """The CLI's last resort: code that swallows the KeyboardInterrupt (as a wedged library
    might) cannot keep an interrupted run alive past the grace period."""
    script = "\n".join([
        "import os, signal, sys, time",
        "from flows.cli.signals import Interrupts",
        "signal.signal(signal.SIGTERM, Interrupts('sweep', grace=1.0).on_signal)",
        "sent = False",
        "while True:",
        "    try:",
        "        if not sent:",
        "            sent = True",
        "            os.kill(os.getpid(), signal.SIGTERM)",
        "        time.sleep(0.1)",
        "    except KeyboardInterrupt:",
        "        pass  # swallowed: only the deadline can end this",
    ])
    done = run_logged([sys.executable, "-c", script], tmp_path / "logs", "the wedged interrupted process",
                      timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 130, done.stdout + done.stderr
    assert "linreg sweep: still stopping 1 s after the signal; exiting now" in done.stderr  # its command named


def test_two_temporary_apis_on_one_database_both_start(tmp_path, migrated_prefect_home, monkeypatch):
    """Two runs sharing a PREFECT_HOME start two servers on one SQLite file, which race to
    register Prefect's block types; the loser exits 3 and is started again (seen in CI)."""
    from flows.api.process import TemporaryAPI

    monkeypatch.setenv("PREFECT_HOME", str(migrated_prefect_home(tmp_path / "home")))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    apis = [TemporaryAPI(tmp_path / f"api{i}.log", timeout=120) for i in range(2)]
    try:
        for api in apis:
            api.start()
        urls = [api.wait_until_healthy() for api in apis]
    finally:
        for api in apis:
            api.stop()
    assert len(set(urls)) == 2
    assert all(api.process.poll() is not None for api in apis)


def test_a_temporary_api_whose_port_was_taken_starts_on_another(tmp_path, migrated_prefect_home, monkeypatch):
    """The race of every "free port": something binds it between the choice and the server's bind.
    Here the first port offered is held (listening) by the test; the API must start on another."""
    import socket

    from flows.api import process
    from linreg import ports

    monkeypatch.setenv("PREFECT_HOME", str(migrated_prefect_home(tmp_path / "home")))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        offered = iter([taken])
        monkeypatch.setattr(process, "free_port", lambda: next(offered, None) or ports.free_port())
        api = process.TemporaryAPI(tmp_path / "api.log", timeout=120)
        try:
            api.start()
            url = api.wait_until_healthy()
        finally:
            api.stop()
    assert api.port != taken and url == f"http://127.0.0.1:{api.port}/api"
    assert "address already in use" in (tmp_path / "api.log").read_text().lower()
