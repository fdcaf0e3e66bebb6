"""The device policy (`linreg.devices.planned_device`), on any machine: the CUDA count is set per test."""

import re

import pytest

import linreg.devices as devices
from linreg.devices import CUDA_MIN_ELEMENTS, DeviceError, planned_device
from linreg.solvers import SOLVERS

BELOW = f"auto: n·d = {CUDA_MIN_ELEMENTS - 1:,} is below the CUDA crossover of {CUDA_MIN_ELEMENTS:,} elements"
AT = f"auto: n·d = {CUDA_MIN_ELEMENTS:,} is at or above the CUDA crossover of {CUDA_MIN_ELEMENTS:,} elements"
AS_GIVEN = "as given; each Dask worker resolves it on its own hardware"


@pytest.fixture
def cuda_count(monkeypatch):
    """Set how many CUDA devices this machine seems to have."""

    def set_count(count: int) -> None:
        monkeypatch.setattr(devices, "cuda_device_count", lambda: count)

    return set_count


# --- fits here: "auto" is CUDA only at or above the crossover ----------------------------------

def test_auto_picks_the_cpu_below_the_crossover_and_says_why(cuda_count):
    cuda_count(1)
    assert planned_device("auto", fits_run_here=True, elements=CUDA_MIN_ELEMENTS - 1) == ("cpu", BELOW)


def test_auto_picks_cuda_at_the_crossover_and_above(cuda_count):
    cuda_count(2)
    assert planned_device("auto", fits_run_here=True, elements=CUDA_MIN_ELEMENTS) == ("cuda:0", AT)
    assert planned_device("auto", fits_run_here=True, elements=10 * CUDA_MIN_ELEMENTS)[0] == "cuda:0"


@pytest.mark.parametrize("elements", [None, 1000, 10 * CUDA_MIN_ELEMENTS])
def test_auto_without_cuda_is_the_cpu_whatever_the_size(cuda_count, elements):
    cuda_count(0)
    assert planned_device("auto", fits_run_here=True, elements=elements) == ("cpu", "auto: no CUDA device on this machine")


def test_named_devices_are_resolved_as_asked_whatever_the_size(cuda_count):
    cuda_count(2)
    assert planned_device("cpu", fits_run_here=True, elements=10**9) == ("cpu", "cpu as asked")
    assert planned_device("cuda", fits_run_here=True, elements=10) == ("cuda:0", "cuda as asked")
    assert planned_device("cuda:1", fits_run_here=True, elements=10) == ("cuda:1", "cuda:1 as asked")


@pytest.mark.parametrize("device, count, words", [
    ("cuda", 0, "CUDA is not available"),
    ("cuda:2", 2, "only 2 CUDA device(s) exist"),
    ("gpu", 1, "unknown device 'gpu'"),
])
def test_a_device_this_machine_lacks_is_refused_here(cuda_count, device, count, words):
    cuda_count(count)
    with pytest.raises(DeviceError, match=re.escape(words)):
        planned_device(device, fits_run_here=True, elements=10)


# --- fits on Dask workers: kept as given, except "auto" below the crossover ------------------------

def test_under_dask_auto_keeps_small_data_on_the_cpu(cuda_count):
    """Below the crossover the CPU wins on any worker, so a GPU worker is never sent a small fit."""
    cuda_count(0)
    assert planned_device("auto", fits_run_here=False, elements=CUDA_MIN_ELEMENTS - 1) == ("cpu", BELOW)
    assert planned_device("auto", fits_run_here=False, elements=CUDA_MIN_ELEMENTS) == ("auto", AS_GIVEN)


def test_under_dask_this_machines_hardware_is_never_asked(monkeypatch):
    """A CPU-only scheduler host routes `cuda` fits to GPU workers: no refusal, no CUDA count here."""

    def no_count():
        raise AssertionError("the submitting machine's CUDA count was read")

    monkeypatch.setattr(devices, "cuda_device_count", no_count)
    assert planned_device("cuda:3", fits_run_here=False, elements=10) == ("cuda:3", AS_GIVEN)
    assert planned_device("cpu", fits_run_here=False, elements=10) == ("cpu", AS_GIVEN)
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        planned_device("gpu", fits_run_here=False, elements=10)


# --- which solvers a CUDA device reaches --------------------------------------------------------------

def test_the_registry_gives_cuda_to_the_torch_solvers_and_the_closed_form_only():
    """The closed form is NumPy with a CUDA path (its moments on the device); numpy_gd and numpy_sgd are CPU only."""
    cuda = {name for name, info in SOLVERS.items() if info.cuda}
    assert cuda == {name for name, info in SOLVERS.items() if info.uses_torch} | {"closed_form"}
    assert not cuda & {"numpy_gd", "numpy_sgd"}
