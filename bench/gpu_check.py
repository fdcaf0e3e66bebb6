"""`make gpu-check`: every torch solver on CUDA against itself on CPU, and full-batch throughput.

1. Agreement: each torch solver fits the tutorial's data (n=1000) with its own
   defaults on the CPU and on the GPU; the parameters must agree within float32
   tolerance (the minibatch solver shuffles with the same CPU generator on both,
   so it takes the same steps).
2. Throughput: each full-batch torch solver runs EPOCHS epochs on n=1e7, d=1
   on the GPU; GB/s counts one read of x and y per epoch (the least an epoch
   must move), next to the card's memory bandwidth: the one its clock and bus
   width give, when torch reports them, and a measured device-to-device copy.

Writes bench/results/gpu.json (or --out). Without CUDA it prints "gpu-check
skipped: no CUDA" and exits 0, writing nothing. `--device cpu` runs the same
checks with the CPU standing in for the GPU: a dry run for machines without one.
"""

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from linreg.data import Dataset, make_dataset
from linreg.solvers import SOLVERS
from linreg.specs import DataSpec

FULL_BATCH = ["torch_autograd", "torch_optim", "torch_module", "torch_sequential"]
TOLERANCE = {"torch_dataloader": 1e-3}  # 20,000 float32 steps; full-batch solvers: FLOAT32
FLOAT32 = 1e-4
EPOCHS = 200
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


def large_dataset(n: int) -> Dataset:
    """y = 1 + 2x + 0.1e, from a fast Generator: only the sizes matter here."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1))
    y = 1.0 + 2.0 * x[:, 0] + 0.1 * rng.standard_normal(n)
    return Dataset(x=x, y=y, spec=DataSpec(n=n, weights=[2.0], seed=0))


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
    parser.add_argument("--n", type=int, default=10_000_000, help="rows for the throughput runs")
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
    report["ok"] = all(row["agrees"] for row in report["agreement"])
    report["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"gpu-check {'passed' if report['ok'] else 'FAILED'}: wrote {args.out / 'gpu.json'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
