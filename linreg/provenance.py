"""Which code made a run, with which libraries, where: recorded in summary.json and the report."""

import functools
import os
import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[1]
GIT_TIMEOUT = 5.0


class Provenance(BaseModel):
    """The code, libraries, machine and device of one run. None where a value is unknown."""

    commit: str | None = None  # git commit (12 hex digits), "-dirty" when tracked files had changes
    python: str
    numpy: str
    torch: str | None = None
    prefect: str | None = None
    host: str
    device: str = "cpu"  # where the fits ran: "cpu", or the "cuda:N" that torch fits used
    device_name: str | None = None  # the CPU model, or the GPU's name when device is CUDA
    cores: int | None = None  # CPUs this process may use
    load_average: float | None = None  # 1-minute load average when the run was scored: was the machine quiet?


def code_version(root: Path = REPO_ROOT) -> str | None:
    """The commit the code came from: `LINREG_VERSION` when set (a deployment exports it), else git.

    Returns:
        "<12-hex commit>" or "<commit>-dirty", or None outside a git checkout.
    """
    from_env = os.environ.get("LINREG_VERSION")
    if from_env:
        return None if from_env == "unversioned" else from_env  # scripts/server.sh's word for "no checkout"
    return _git_version(Path(root).resolve())


@functools.cache
def _git_version(root: Path) -> str | None:
    """Once per process and folder: git costs ~10 ms a call."""
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
        # An installed copy inside some other repository (a venv under a checkout) is not that checkout.
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
            return None
        commit = _git(root, "rev-parse", "--short=12", "HEAD")
        if commit.returncode != 0:  # a repository with no commit yet
            return None
        dirty = _git(root, "diff", "--quiet", "HEAD", "--").returncode != 0
    except (OSError, subprocess.TimeoutExpired):  # no git on this machine, or git hung
        return None
    return commit.stdout.strip() + ("-dirty" if dirty else "")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


@functools.cache
def package_version(name: str) -> str | None:
    """An installed distribution's version, without importing it."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name(device: str) -> str | None:
    """torch's name for a "cuda:N" device; None when CUDA is not visible here (a remote Dask worker's GPU)."""
    import torch  # deferred: only a CUDA run pays for it, and such a run has imported torch already

    if not torch.cuda.is_available():
        return None
    index = int(device.partition(":")[2] or 0)
    return torch.cuda.get_device_name(index) if index < torch.cuda.device_count() else None


def run_device(devices: list[str]) -> str:
    """The device that names a run: the first CUDA device any fit used, else "cpu"."""
    return next((d for d in devices if d.startswith("cuda")), "cpu")


def collect(device: str = "cpu") -> Provenance:
    """Provenance of a run whose fits ran on `device`, as seen from this process.

    Args:
        device: "cpu" or "cuda[:N]"; see `run_device`.
    """
    return Provenance(
        commit=code_version(),
        python=platform.python_version(),
        numpy=np.__version__,
        torch=package_version("torch"),
        prefect=package_version("prefect"),
        host=socket.gethostname(),
        device=device,
        device_name=gpu_name(device) if device.startswith("cuda") else cpu_model(),
        cores=len(os.sched_getaffinity(0)),
        load_average=round(os.getloadavg()[0], 2),
    )
