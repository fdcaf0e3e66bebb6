"""Does orchestration eat the gain? `linreg sweep` against the same fits in a plain Python loop.

The grid of issue 13: n = 1000, all eight solvers, eight learning rates, on
the CPU (57 fits: the closed form has no learning rate, so it runs once).
In turns (A B A B ...):

- `plain loop`: one process that imports the library, makes the dataset and
  fits every cell one after another, at one torch thread, with no Prefect;
- `linreg sweep`: the CLI in its own process, on the embedded default: the
  temporary API's start, the flow, the chunked training tasks, the parquet and
  CSV files, the plots and the artifacts, all counted.

Both are timed from process start to exit, on a Prefect home migrated
beforehand (as `make run`'s set-up does). Target: the sweep within 1.5x the loop.
"""

import sys
import tempfile
import time
from pathlib import Path

from bench.harness import BenchConfig, Row, interleave
from bench.prefect_overhead import run_quietly
from linreg.storage.catalog import SWEEP_PARQUET, Catalog

TARGET = 1 / 1.5
LEARNING_RATES = [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1]
LOOP = """
import sys, time, torch
torch.set_num_threads(1)
from linreg.data import make_dataset
from linreg.solvers import SOLVERS
from linreg.sweep import SweepSpec, data_specs, expand_grid
sweep = SweepSpec(n=[int(sys.argv[1])], lr=[float(v) for v in sys.argv[2].split(",")], epochs=[int(sys.argv[3])] if sys.argv[3] != "0" else [])
data = {spec.model_dump_json(): make_dataset(spec) for spec in data_specs(sweep)}
for cell in expand_grid(sweep):
    SOLVERS[cell.solver].fit(data[cell.data.model_dump_json()], cell.spec)
"""


def grid(config: BenchConfig) -> tuple[int, list[float], int]:
    """n, learning rates and epochs (0: each solver's own)."""
    return (200, LEARNING_RATES[:2], config.epochs) if config.quick else (1000, LEARNING_RATES, 0)


def run(config: BenchConfig) -> list[Row]:
    n, rates, epochs = grid(config)
    lr = ",".join(map(str, rates))
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="linreg-bench-sweep-") as scratch:
        scratch = Path(scratch)
        env = {"PREFECT_HOME": str(scratch / "home"), "PREFECT_API_URL": None}
        run_quietly([str(bin_dir / "prefect"), "server", "database", "upgrade", "-y"], env)  # set-up, not timed
        sweeps: list[Path] = []

        def sweep() -> None:
            out = scratch / f"out{len(sweeps)}"
            sweeps.append(out)
            command = [str(bin_dir / "linreg"), "sweep", "--n", str(n), "--lr", lr, "--device", "cpu",
                       "--output-dir", str(out)] + (["--epochs", str(epochs)] if epochs else [])
            run_quietly(command, env)

        loop = [sys.executable, "-c", LOOP, str(n), lr, str(epochs)]
        started = time.perf_counter()
        t = interleave({"loop": lambda: run_quietly(loop), "sweep": sweep}, reps=1 if config.quick else 2, warmup=0)
        cells = _cells_of(sweeps[-1])
    return [Row(
        section="sweep", case=f"`linreg sweep`, {cells} cells, embedded API", baseline="plain Python loop",
        n=n, d=1, reps=len(t["sweep"].seconds), ours_s=t["sweep"].median, baseline_s=t["loop"].median,
        target=TARGET,
        note=(f"8 solvers x {len(rates)} learning rates ({cells} fits); both timed from process start, "
              f"temporary API included; section took {time.perf_counter() - started:.0f} s"),
        checks={"every cell ran": cells == 1 + 7 * len(rates)},
        extra={"sweep_s": t["sweep"].seconds, "loop_s": t["loop"].seconds},
    )]


def _cells_of(out: Path) -> int:
    import pandas as pd

    frame = pd.read_parquet(next(Catalog(out).sweeps.iterdir()) / SWEEP_PARQUET)
    return int((frame["status"] == "ok").sum())
