"""Device selection: the device policy in one function (`planned_device`), the
"string -> torch device" step below it (`resolve_device`), and the torch thread count."""

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


def cuda_device_count() -> int:
    """CUDA devices this machine has (0 without CUDA)."""
    import torch  # deferred: "cpu" must not pay torch's import

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(device: str = "auto") -> str:
    """Return the concrete torch device for a device string, on the machine that runs the fit.

    This is the low-level step, with no data size: "auto" here means "CUDA if this
    machine has any". The size rule (the crossover) is `planned_device`'s, which
    passes "auto" down to a worker only for data at or above the crossover.

    Args:
        device: "auto" (cuda:0 when this machine has CUDA, else CPU), "cpu", "cuda" or "cuda:N".

    Returns:
        "cpu" or "cuda:N".

    Raises:
        DeviceError: the string is not one of the forms above, or names a CUDA
            device this machine does not have.
    """
    if parse_device(device) == "cpu":
        return "cpu"
    count = cuda_device_count()
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


def planned_device(device: str, fits_run_here: bool, elements: int) -> tuple[str, str]:
    """The device a run's or a sweep cell's fits are planned on, and why: the one device policy.

    - "auto" picks CUDA only for data of at least CUDA_MIN_ELEMENTS (n·d); below it the
      CPU wins, wherever the fits run.
    - Where the fits run here (threads, processes), the choice is resolved here
      (`resolve_device`): a device this machine lacks is refused at once, and "cuda"
      becomes "cuda:N", which tags the training tasks for GPU routing.
    - Under Dask the fits run on workers whose hardware this machine cannot see (a GPU
      worker behind a CPU-only scheduler host), so the string is kept as given: "cuda"
      still routes the tasks to GPU workers, and each task resolves it with
      `resolve_device` on the worker that runs it.

    It reads only its arguments and this machine's CUDA count, so the run name and the
    flow, which both ask it, get the same answer.

    Args:
        device: "auto", "cpu", "cuda" or "cuda:N".
        fits_run_here: False when Dask workers run the fits.
        elements: n·d of the data.

    Returns:
        (the device, a reason for the log and the summary).

    Raises:
        DeviceError: a malformed string; where the fits run here, also a device this machine lacks.
    """
    auto = parse_device(device) == "auto"
    if fits_run_here and not auto:
        return resolve_device(device), f"{device} as asked"
    if fits_run_here and cuda_device_count() == 0:
        return "cpu", "auto: no CUDA device on this machine"
    if auto and elements < CUDA_MIN_ELEMENTS:
        return "cpu", f"auto: n·d = {elements:,} is below the CUDA crossover of {CUDA_MIN_ELEMENTS:,} elements"
    if not fits_run_here:
        return device, "as given; each Dask worker resolves it on its own hardware"
    return "cuda:0", f"auto: n·d = {elements:,} is at or above the CUDA crossover of {CUDA_MIN_ELEMENTS:,} elements"


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
