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


# `--device auto` picks CUDA only for data of at least this many elements (n·d); below it,
# a fit is bound by per-kernel launch and host-sync costs, and the CPU wins.
# NOT YET MEASURED BY A SWEEP: estimated on 2026-11-30 from the NVIDIA H200 figures quoted in
# issue 13 (torch_dataloader at n=1000: 15.8 s on the GPU against 5.5 s on the CPU; full-batch
# epochs at n=1e7, d=1 in 0.42-0.75 ms, launch-bound below about 1e6 elements). Replace it with
# the crossover that `linreg sweep --n 1e3,1e4,1e5,1e6,1e7 --device cpu,cuda` reports on a GPU
# machine (its crossover table gives n·d per solver), with that date and card.
CUDA_MIN_ELEMENTS = 1_000_000


def auto_device(elements: int | None, cuda_count: int) -> tuple[str, str]:
    """What "auto" picks, and why, for data of `elements` = n·d on a machine with `cuda_count` GPUs.

    Returns:
        ("cpu" or "cuda:0", a reason for the log and the summary).
    """
    if cuda_count == 0:
        return "cpu", "auto: no CUDA device on this machine"
    if elements is None:
        return "cuda:0", "auto: CUDA is available (data size not given)"
    if elements < CUDA_MIN_ELEMENTS:
        return "cpu", f"auto: n·d = {elements:,} is below the CUDA crossover of {CUDA_MIN_ELEMENTS:,} elements"
    return "cuda:0", f"auto: n·d = {elements:,} is at or above the CUDA crossover of {CUDA_MIN_ELEMENTS:,} elements"


def explain_device(device: str = "auto", elements: int | None = None) -> tuple[str, str]:
    """`resolve_device`, with the reason for its choice: for "auto", the data size against the crossover.

    Args:
        elements: n·d of the data; with "auto", below CUDA_MIN_ELEMENTS the CPU is chosen.

    Raises:
        DeviceError: see `resolve_device`.
    """
    if parse_device(device) != "auto":
        return resolve_device(device), f"{device} as asked"
    import torch  # deferred: "cpu" must not pay torch's import

    return auto_device(elements, torch.cuda.device_count() if torch.cuda.is_available() else 0)


def planned_device(device: str, fits_run_here: bool, elements: int | None = None) -> str:
    """The device the pipeline plans the fits for, decided once per run, before any work.

    When the fits run on this machine (threads or processes), the choice is
    resolved here: a device this machine lacks is refused at once, and a
    resolved "cuda:N" tags the training tasks for GPU routing. Under Dask the
    fits run on workers whose hardware this machine cannot see (a GPU worker
    behind a CPU-only scheduler host), so the string is kept as given: "cuda"
    still routes the tasks to GPU workers, and each task resolves it with
    `resolve_device` on the worker that runs it. Given `elements` (n·d), "auto"
    picks CUDA only at or above the crossover (`explain_device`).

    Raises:
        DeviceError: (fits_run_here only) see `resolve_device`.
    """
    if not fits_run_here:
        return parse_device(device)
    return explain_device(device, elements)[0] if elements is not None else resolve_device(device)


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
