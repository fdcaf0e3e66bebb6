"""Running commands from tests without ever waiting on a pipe.

A grandchild that outlives its parent keeps the parent's stdout open: a test
reading that pipe would wait for ever (it happened: the bench hung `make test`
for 600 s). So output goes to files, each command gets a session of its own,
and on a timeout the whole session's process group is killed and the test
fails saying what hung.
"""

import os
import signal
import subprocess
from pathlib import Path

import pytest


def run_logged(command: list[str], logs: Path, what: str, timeout: float, **popen) -> subprocess.CompletedProcess:
    """Run `command` with stdout and stderr in files under `logs`; kill its group on timeout.

    Args:
        what: a few words for the failure message ("scripts/server.sh start").
        timeout: seconds; keep it under pytest's own timeout so this message, not pytest's, reports the hang.
        popen: passed to subprocess.Popen (cwd, env).

    Returns:
        The finished process, with `.stdout` and `.stderr` read back from the files.
    """
    logs.mkdir(parents=True, exist_ok=True)
    name = "-".join(Path(part).name for part in command[:2]).replace(" ", "_")[:60]
    out_path, err_path = logs / f"{name}.out", logs / f"{name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   start_new_session=True, **popen)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            pytest.fail(f"{what} did not finish in {timeout:g} s; its output is in {out_path} and {err_path}:\n"
                        f"{out_path.read_text()[-2000:]}\n{err_path.read_text()[-2000:]}")
        finally:
            kill_group(process)  # whatever it left in its session
    return subprocess.CompletedProcess(command, returncode, out_path.read_text(), err_path.read_text())


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group that `process` leads, then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_captured(command: list[str], what: str, timeout: float = 60, **popen) -> subprocess.CompletedProcess:
    """`run_logged` into a temporary folder, for short commands whose output the test reads (git, ps)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="linreg-test-run-") as logs:
        return run_logged(command, Path(logs), what, timeout, **popen)


def default_sigint() -> None:
    """In a child, between fork and exec: SIGINT as a terminal gives it.

    A test run in the background of a shell without job control inherits SIGINT
    ignored, and the child would keep ignoring it: a test that stops a child with
    SIGINT passes this as `preexec_fn`, so the verdict does not depend on how
    pytest itself was started.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
