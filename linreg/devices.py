"""Device selection, in one place."""

import os
import re

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


class DeviceError(ValueError):
    """A device string that is malformed or names hardware this machine lacks."""


def parse_device(device: str) -> str:
    """Check a device string's form without touching hardware (or importing torch).

    Raises:
        DeviceError: not "auto", "cpu", "cuda" or "cuda:N".
    """
    if device not in ("auto", "cpu") and _CUDA.match(device) is None:
        raise DeviceError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def resolve_device(device: str = "auto") -> str:
    """Return the concrete torch device for a user's choice.

    Args:
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".

    Returns:
        "cpu" or "cuda:N".

    Raises:
        DeviceError: the string is not one of the forms above, or names a CUDA
            device this machine does not have.
    """
    if parse_device(device) == "cpu":
        return "cpu"
    import torch  # deferred: "cpu" must not pay torch's import

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        return "cuda:0" if count else "cpu"
    index = int(_CUDA.match(device).group(1) or 0)
    if count == 0:
        raise DeviceError(f"device {device!r} requested but CUDA is not available on this machine")
    if index >= count:
        raise DeviceError(f"device {device!r} requested but only {count} CUDA device(s) exist (cuda:0..cuda:{count - 1})")
    return f"cuda:{index}"


def planned_device(device: str, fits_run_here: bool) -> str:
    """The device the pipeline plans the fits for, decided once per run, before any work.

    When the fits run on this machine (threads or processes), the choice is
    resolved here: a device this machine lacks is refused at once, and a
    resolved "cuda:N" tags the training tasks for GPU routing. Under Dask the
    fits run on workers whose hardware this machine cannot see (a GPU worker
    behind a CPU-only scheduler host), so the string is kept as given: "cuda"
    still routes the tasks to GPU workers, and each task resolves it with
    `resolve_device` on the worker that runs it.

    Raises:
        DeviceError: (fits_run_here only) see `resolve_device`.
    """
    return resolve_device(device) if fits_run_here else parse_device(device)


SMALL_TENSOR = 1 << 16


def torch_threads(elements: int, concurrent_tasks: int = 1, cores: int | None = None) -> int:
    """Intra-op threads for one torch task, so that all tasks together fit the cores.

    Args:
        elements: n * d of the task's data.
        concurrent_tasks: torch tasks that may run at the same time.

    Returns:
        1 for tensors under SMALL_TENSOR elements, where threads only add
        contention (an epoch ran 38x slower with 2 threads beside a busy
        process); otherwise floor(cores / concurrent_tasks), at least 1.
    """
    if elements < SMALL_TENSOR:
        return 1
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(1, concurrent_tasks))
