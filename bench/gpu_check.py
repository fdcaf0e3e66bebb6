"""`make gpu-check`: the proof that the GPU path is worth routing to (issue 13).

Runs on the GPU machine without Prefect, and without pydantic installed: the
library's specs need pydantic, so when it is missing the wheels carried in
`.whl/` (see docs/sweeps.md) are installed into a temporary folder first.
Checks, each with its target:

1. agreement: every torch solver on the CPU and on CUDA, tutorial data, own
   defaults, within float32 tolerance (the closed form's is in check 3);
2. full-batch throughput at n=1e8, d=1: each torch solver's epoch as a fraction
   of the measured device-to-device copy bandwidth, counting one read of x and
   y (float32) per epoch; target >= 20%;
3. closed form at n=1e8, d=10: the float64 moments of data already on the
   device, as a fraction of copy bandwidth (one read of x and y as float64;
   target >= 30%), within 1e-9 relative of the CPU closed form, and >= 20x
   faster than the CPU closed form in the same process;
4. torch_dataloader at the tutorial's size: CUDA no slower than the CPU;
5. `linreg run --device auto` no slower than `--device cpu` (needs Prefect:
   skipped, saying so, when it cannot be imported).

Writes bench/results/gpu.json (or --out). Without CUDA it prints "gpu-check
skipped: no CUDA" and exits 0, writing nothing. `--device cpu` runs the same
checks with the CPU standing in for the GPU, at tiny sizes with `--quick`: the
dry run of the tests.
"""

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import importlib.util
import os
import subprocess
import tempfile

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def ensure_pydantic(wheels: Path = ROOT / ".whl") -> None:
    """Make pydantic importable: installed already, or from the carried wheels into a temporary folder.

    Raises:
        SystemExit: neither, with one line saying what to carry.
    """
    if importlib.util.find_spec("pydantic") is not None:
        return
    found = sorted(str(p) for p in wheels.glob("*.whl"))
    if not found:
        raise SystemExit(f"gpu-check: pydantic is not installed and no wheels are in {wheels}; carry them (docs/sweeps.md)")
    target = tempfile.mkdtemp(prefix="gpu-check-site-")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--target", target, *found], check=True)
    sys.path.insert(0, target)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [target, str(ROOT), os.environ.get("PYTHONPATH")]))


if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
ensure_pydantic()

from linreg.data import Dataset, make_dataset  # noqa: E402  (after the wheels are in place)
from linreg.solvers import SOLVERS  # noqa: E402
from linreg.specs import DataSpec  # noqa: E402

FULL_BATCH = ["torch_autograd", "torch_optim", "torch_module", "torch_sequential"]
TOLERANCE = {"torch_dataloader": 1e-3}  # 20,000 float32 steps; full-batch solvers: FLOAT32
FLOAT32 = 1e-4
EPOCHS = 200
TARGET_FULL_BATCH = 0.20  # of copy bandwidth
TARGET_CLOSED_FORM = 0.30
TARGET_CLOSED_FORM_SPEEDUP = 20.0
RESULTS = Path(__file__).parent / "results"


def parameters(result) -> np.ndarray:
    return np.array([result.intercept, *result.coef])


def agreement(device: str, epochs: int | None = None) -> list[dict]:
    """Each torch solver on CPU and on `device`: tutorial data, its defaults (or `epochs`)."""
    data = make_dataset(DataSpec())
    rows = []
    for name, info in SOLVERS.items():
        if not info.uses_torch:
            continue
        spec = info.defaults if epochs is None else info.defaults.model_copy(update={"epochs": epochs})
        cpu = info.fit(data, spec)
        gpu = info.fit(data, spec.model_copy(update={"device": device}))
        difference = float(np.max(np.abs(parameters(cpu) - parameters(gpu))))
        tolerance = TOLERANCE.get(name, FLOAT32)
        rows.append({
            "solver": name, "device": gpu.device, "max_abs_difference": difference, "tolerance": tolerance,
            "agrees": difference <= tolerance and cpu.status == gpu.status == "ok",
            "cpu_seconds": cpu.seconds, "device_seconds": gpu.seconds,
        })
    return rows


def large_dataset(n: int, d: int = 1) -> Dataset:
    """y = 1 + x·w + 0.1e, from a fast Generator: only the sizes matter here."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d))
    weights = [2.0 * (-1) ** j / (j + 1) for j in range(d)]
    y = 1.0 + x @ np.array(weights) + 0.1 * rng.standard_normal(n)
    return Dataset(x=x, y=y, spec=DataSpec(n=n, weights=weights, seed=0))


def closed_form_check(device: str, n: int, d: int, copy_gbps: float) -> dict:
    """The float64 moments on the device, against the CPU closed form of the same data."""
    from linreg.least_squares import normal_equations
    from linreg.moments import augmented_tensor, moments_of_augmented

    data = large_dataset(n, d)
    info = SOLVERS["closed_form"]
    cpu = info.fit(data, info.defaults)
    z = augmented_tensor(data.x, data.y, device)  # the data on the device, once
    moments_of_augmented(z)  # warm-up
    seconds = []
    for _ in range(5):
        synchronize(device)
        start = time.perf_counter()
        m = moments_of_augmented(z)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    solution = normal_equations(m, fit_intercept=True)  # well-conditioned data: the fast path
    coef, intercept = solution.coef, solution.intercept
    full = info.fit(data, info.defaults.model_copy(update={"device": device}))  # with the copy to the device
    best = float(np.median(seconds))
    reference = parameters(cpu)
    error = float(np.max(np.abs(np.array([intercept, *coef]) - reference)) / np.max(np.abs(reference)))
    gbps = n * (d + 1) * 8 / best / 1e9
    row = {
        "n": n, "d": d, "moments_s": best, "GBps": gbps, "fraction_of_copy_bandwidth": gbps / copy_gbps,
        "relative_error_vs_cpu": error, "cpu_fit_s": cpu.seconds, "device_fit_s_with_copy": full.seconds,
        "speedup_vs_cpu": cpu.seconds / best,
    }
    row["met"] = bool(row["fraction_of_copy_bandwidth"] >= TARGET_CLOSED_FORM and error <= 1e-9
                      and row["speedup_vs_cpu"] >= TARGET_CLOSED_FORM_SPEEDUP)
    return row


def dataloader_check(device: str, epochs: int | None) -> dict:
    """torch_dataloader at the tutorial's size: CUDA (graph-replayed steps) against the CPU."""
    data = make_dataset(DataSpec())
    info = SOLVERS["torch_dataloader"]
    spec = info.defaults if epochs is None else info.defaults.model_copy(update={"epochs": epochs})
    torch.set_num_threads(1)  # what a training task gets at this size
    cpu = info.fit(data, spec)
    gpu = info.fit(data, spec.model_copy(update={"device": device}))
    return {"cpu_s": cpu.seconds, "device_s": gpu.seconds, "met": gpu.seconds <= cpu.seconds}


def default_run_check(quick: bool) -> dict:
    """`linreg run` with --device auto against --device cpu, each its own process (Prefect needed)."""
    if importlib.util.find_spec("prefect") is None:
        return {"skipped": "prefect is not importable here; carry its wheels to run this check", "met": None}
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-run-") as scratch:
        env = {**os.environ, "PREFECT_HOME": str(Path(scratch) / "home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        extra = ["--n", "200", "--epochs", "20"] if quick else []
        for device in ("cpu", "auto", "cpu", "auto"):  # the first pair migrates the database and warms caches
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--device", device,
                                   "--output-dir", str(Path(scratch) / device), *extra],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
            seconds[device] = time.perf_counter() - start
            if done.returncode != 0:
                return {"error": f"linreg run --device {device} exited {done.returncode}", "met": False}
    return {"cpu_s": seconds["cpu"], "auto_s": seconds["auto"], "met": seconds["auto"] <= seconds["cpu"] * 1.05}


def throughput(device: str, n: int, epochs: int) -> list[dict]:
    """GB/s of full-batch epochs on `device`: float32 x and y read once per epoch."""
    data = large_dataset(n)
    bytes_per_epoch = n * 2 * 4  # x (n, 1) and y (n, 1) as float32
    rows = []
    for name in FULL_BATCH:
        info = SOLVERS[name]
        spec = info.defaults.model_copy(update={"device": device, "epochs": epochs})
        info.fit(data, spec.model_copy(update={"epochs": 2}))  # warm-up: kernels, allocator
        result = info.fit(data, spec)
        rows.append({
            "solver": name, "n": n, "epochs": epochs, "seconds": result.seconds,
            "epoch_ms": 1e3 * result.seconds / epochs, "GBps": bytes_per_epoch * epochs / result.seconds / 1e9,
            "status": result.status,
        })
    return rows


def card_bandwidth(device: str) -> dict:
    """The card's memory bandwidth: from its properties when torch has them, and a measured copy."""
    info: dict = {"name": "cpu (dry run)" if device == "cpu" else torch.cuda.get_device_name(device)}
    if device != "cpu":
        props = torch.cuda.get_device_properties(device)
        clock_khz, bus_bits = getattr(props, "memory_clock_rate", None), getattr(props, "memory_bus_width", None)
        if clock_khz and bus_bits:  # double data rate: two transfers per clock
            info["theoretical_GBps"] = 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9
    source = torch.empty(1 << 28, dtype=torch.uint8, device=device)  # 256 MiB
    target = torch.empty_like(source)
    target.copy_(source)
    seconds = []
    for _ in range(10):
        synchronize(device)
        start = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    info["copy_GBps"] = 2 * source.numel() / float(np.median(seconds)) / 1e9  # read + write
    return info


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a dry run")
    parser.add_argument("--n", type=int, default=100_000_000, help="rows for the throughput runs (d=1)")
    parser.add_argument("--closed-form-n", type=int, default=100_000_000, help="rows for the closed form (d=10)")
    parser.add_argument("--skip-run", action="store_true", help="leave out the `linreg run` auto-vs-cpu check")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs per throughput run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu.json")
    parser.add_argument("--quick", action="store_true", help="20 epochs, n=20000: the test's dry run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.epochs = 20_000, 5
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu-check skipped: no CUDA (torch {torch.__version__}, built for CUDA {torch.version.cuda})")
        return 0
    device = "cpu" if args.device == "cpu" else str(torch.device(args.device if ":" in args.device else "cuda:0"))
    started = time.perf_counter()
    bandwidth = card_bandwidth(device)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device, "torch": torch.__version__, "card": bandwidth,
        "agreement": agreement(device, 20 if args.quick else None),
        "throughput": throughput(device, args.n, args.epochs),
    }
    for row in report["throughput"]:
        row["fraction_of_copy_bandwidth"] = row["GBps"] / bandwidth["copy_GBps"]
        row["met"] = row["fraction_of_copy_bandwidth"] >= TARGET_FULL_BATCH
    torch.cuda.empty_cache() if device.startswith("cuda") else None
    report["closed_form"] = closed_form_check(device, *((20_000, 3) if args.quick else (args.closed_form_n, 10)),
                                              bandwidth["copy_GBps"])
    report["dataloader"] = dataloader_check(device, 20 if args.quick else None)
    skip_run = "--skip-run" if args.skip_run else "--quick" if args.quick else None
    report["default_run"] = {"skipped": skip_run, "met": None} if skip_run else default_run_check(args.quick)
    report["targets_met"] = {
        "full_batch": all(row["met"] for row in report["throughput"]),
        "closed_form": report["closed_form"]["met"], "dataloader": report["dataloader"]["met"],
        "default_run": report["default_run"]["met"],
    }
    report["ok"] = all(row["agrees"] for row in report["agreement"]) and report["closed_form"]["relative_error_vs_cpu"] <= 1e-9
    report["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"gpu-check {'passed' if report['ok'] else 'FAILED'} (agreement); targets: {report['targets_met']}; "
          f"wrote {args.out / 'gpu.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
