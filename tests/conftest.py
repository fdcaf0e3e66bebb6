"""Shared fixtures. Prefect state is isolated per test session, before prefect is imported."""

import os
import sys
import tempfile

# Prefect reads these when it is first imported: set them before any test imports it.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="linreg-test-prefect-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "linreg")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# A `make server` running in this checkout must not receive the tests' runs (flows.api.choose.project_server).
os.environ["LINREG_SERVER_RUN_DIR"] = os.path.join(os.environ["PREFECT_HOME"], "no-project-server")
# scripts/server.sh and postgres.sh run from the venv that runs the tests (.venv, .venv-3.12, ...).
os.environ["LINREG_VENV"] = sys.prefix

import pytest  # noqa: E402

from linreg.data import make_dataset  # noqa: E402
from linreg.specs import DataSpec  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect API for every flow test in the session (it takes ~9 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    from prefect.settings import get_current_settings

    # Generous: a loaded 2-core machine has taken over a minute (the default is 30 s).
    with prefect_test_harness(server_startup_timeout=300):
        # Worker processes (process pool, Dask) read the API from the environment,
        # not from this process's settings: without it each would start its own.
        os.environ["PREFECT_API_URL"] = get_current_settings().api.url
        try:
            yield
        finally:
            os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(autouse=True)
def _logging_on_open_streams():
    """After each test, no log handler is left writing to a stream that test's capture closed.

    A test that runs the CLI under capsys or capfd gets handlers bound to its captured
    stream: `logging.basicConfig` (`linreg history`, `linreg compare`) on the root logger,
    and Prefect's console handler when Prefect sets its logging up again. The next test
    to log through them would fail inside logging, whichever test that is, so the verdicts
    would depend on the order. Such handlers are pointed back at this process's stderr.
    """
    yield
    import logging

    names = ["", "prefect", "linreg", *(n for n in logging.root.manager.loggerDict if n.startswith("prefect."))]
    for handler in {h for name in names for h in logging.getLogger(name or None).handlers}:
        stream = getattr(handler, "stream", None)
        if stream is not None and getattr(stream, "closed", False):
            handler.stream = sys.__stderr__  # not setStream: it flushes the closed one first
            if hasattr(handler, "console"):  # Prefect's rich console writes to the stream it was given
                handler.console.file = sys.__stderr__


@pytest.fixture(scope="session")
def tutorial_data():
    """The tutorial's dataset: n=1000, w=2, b=1, noise 0.1, seed 42."""
    return make_dataset(DataSpec())


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is fastest, and what the training tasks choose."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def migrated_prefect_home(tmp_path_factory):
    """A factory of fresh PREFECT_HOMEs, each with a copy of one database migrated once.

    A CLI run on an empty home spends 10-20 s migrating its database before the
    flow starts (what `make run`'s set-up does once for `.prefect/`); copying a
    migrated file gives each subprocess test its own state without that wait.
    """
    import shutil
    import sys
    from pathlib import Path

    from procs import run_logged

    template = tmp_path_factory.mktemp("prefect-template")
    env = dict(os.environ, PREFECT_HOME=str(template))
    env.pop("PREFECT_API_URL", None)
    prefect = str(Path(sys.executable).with_name("prefect"))
    done = run_logged([prefect, "server", "database", "upgrade", "-y"], template / "logs",
                      "prefect server database upgrade", timeout=240, env=env)
    assert done.returncode == 0, done.stdout + done.stderr

    def fresh(home: Path) -> Path:
        home.mkdir(parents=True)
        shutil.copy(template / "prefect.db", home / "prefect.db")
        return home

    return fresh


# `make test` runs on four pytest-xdist workers (-n 4), one per fixed group of tests, each
# group about as long as the others: the SQLite stack of test_server_faults.py (its burst and
# restart share it); the PostgreSQL stack's burst and restart, then the SIGKILLed workers on
# a stack of their own, which mostly waits on heartbeats; the browser and bench subprocesses
# (test_e2e_server, test_bench); and everything else. Measured on a quiet fresh clone
# (2026-12-05): with three groups (every server test in one) that group took 1181 s and the
# others 811 and 807; with all the stacks in one group and the SIGKILL test apart, 952, 819,
# 766 and 373 s. Each group runs in its
# usual order in a process of its own, so the same tests meet in the same process every time.
# Five workers (the server tests split by database) were tried: 20.5 min against 21.8, but
# every test ran two to three times slower on two cores, and a loaded run left the
# PostgreSQL burst short of its wait. xdist's own --dist loadgroup cannot be used: its
# group suffix no longer reaches pytest 9's node ids.
GROUPS = {
    "test_server_faults.py": "server-sqlite",
    "test_server_faults.py[postgres]": "server-postgres-and-sigkill",
    "test_server_faults.py::test_loopback_auth_and_a_sigkilled_worker": "server-postgres-and-sigkill",
    "test_e2e_server.py": "browser-and-bench",
    "test_bench.py": "browser-and-bench",
}


def xdist_group(nodeid: str) -> str:
    """The group of a test: by `module.py::test`, else by module and parameter (`module.py[param]`),
    else by its module."""
    module, _, name = nodeid.partition("::")
    module = module.rsplit("/", 1)[-1]
    param = name[name.index("[") + 1:-1] if name.endswith("]") and "[" in name else None
    return (GROUPS.get(f"{module}::{name}") or GROUPS.get(f"{module}[{param}]")
            or GROUPS.get(module, "the-rest"))


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class FixedGroups(LoadScopeScheduling):
        """Whole groups to a worker each, in collection order (xdist's scheduling by scope)."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return FixedGroups(config, log)


_GROUP_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Add each phase's time (setup, call, teardown) to its xdist group's total."""
    group = xdist_group(report.nodeid)
    _GROUP_SECONDS[group] = _GROUP_SECONDS.get(group, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """Each group's summed test time: the group that ends last sets the suite's wall time."""
    if len(_GROUP_SECONDS) > 1:
        terminalreporter.write_sep("=", "seconds per xdist group (tests/conftest.py)")
        for group, seconds in sorted(_GROUP_SECONDS.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:8.1f}s  {group}")
