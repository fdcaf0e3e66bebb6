"""Section "scale": how time and memory grow with n, up to 100 million rows.

For n = 1e6, 1e7 and 1e8 (d = 1, the tutorial's spec at that n) the dataset
file is generated once into a scratch folder (deleted at the end). Each
solver then runs in its own subprocess, as a training task runs it: the file
opened with `open_dataset` (in memory within LINREG_MEMORY_BUDGET, else
streamed one row group at a time), one epoch for iterative solvers. The child
reports its wall time (digest check, load and fit) and its peak RSS (VmHWM
of /proc/self/status), so each number is one solver's own. Not
`getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries the forking parent's high-water
mark through fork and exec into it, so every child reported the bench's own
6.9 GB.

To stay within a few minutes, 1e8 runs only the NumPy solvers (closed_form,
numpy_gd, numpy_sgd), torch_dataloader (about 180 µs a step) stops at 1e6,
and the other torch solvers at 1e7.

Last, the streaming closed form's throughput from parquet (GB/s of x and y)
is timed in this process against the floor of any streamed pass: one
`iter_batches` decode of the same file, interleaved.

Writes bench/results/scale.md and scale.png (log-log seconds and peak RSS vs
n); rows also go to latest.json. Quick mode: n = 2,000 (NumPy solvers) and
20,000 (every solver) with a memory budget that makes the larger one stream;
its files go to the scratch folder only.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import RESULTS, BenchConfig, Row, interleave

DECODE_BASELINE = "one pyarrow iter_batches decode of the file"
FLOOR_FRACTION = 0.5  # the streaming closed form should reach half the decode floor's GB/s
NUMPY_ONLY = ("closed_form", "numpy_gd", "numpy_sgd")


def sizes(config: BenchConfig) -> list[int]:
    return [2_000, 20_000] if config.quick else [10**6, 10**7, 10**8]


def solvers_at(n: int, config: BenchConfig) -> list[str]:
    """Which solvers run at size n (see the module docstring)."""
    from linreg.solvers import SOLVERS

    if config.quick:  # torch solvers only where the data streams: each child imports torch
        return list(SOLVERS) if n == max(sizes(config)) else list(NUMPY_ONLY)
    limit = {"torch_dataloader": 10**6}
    return [s for s in SOLVERS if n <= limit.get(s, 10**7) or s in NUMPY_ONLY]


def child_env(n: int, config: BenchConfig) -> dict:
    """The environment of a solver's subprocess; quick mode forces its largest n to stream."""
    env = dict(os.environ)
    if config.quick:
        env["LINREG_MEMORY_BUDGET"] = str(100_000)  # 2,000 rows (32 kB) fit, 20,000 (320 kB) stream
    return env


def run_child(ref_json: str, solver: str, env: dict) -> dict:
    """One solver in a fresh interpreter; its JSON report (seconds, peak RSS, path taken)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--child", ref_json, solver],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1], timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scale child {solver} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_bytes() -> int:
    """This process's own peak resident set size (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_main(ref_json: str, solver: str) -> None:
    """In the subprocess: open the dataset as a training task does, fit, print a JSON line."""
    from linreg.solvers import SOLVERS
    from linreg.storage import DatasetRef, ParquetSource, open_dataset

    info = SOLVERS[solver]
    spec = info.defaults.model_copy(update={"epochs": 1, "device": "cpu"}) if info.iterative else info.defaults
    fit_fn = info.fit  # imports the solver's module (torch, for some) before the clock starts
    start = time.perf_counter()
    data = open_dataset(DatasetRef.model_validate_json(ref_json))
    fit = fit_fn(data, spec)
    wall = time.perf_counter() - start
    peak = peak_rss_bytes()
    print(json.dumps({
        "seconds": wall, "fit_seconds": fit.seconds, "peak_rss_bytes": peak, "status": fit.status,
        "streamed": isinstance(data, ParquetSource), "epochs": fit.epochs,
    }))


def decode_pass(path: Path) -> int:
    """The floor: one pass of pyarrow's decoder over the file, batch by batch; returns rows."""
    import pyarrow.parquet as pq

    from linreg.data import CHUNK_ROWS

    rows = 0
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=CHUNK_ROWS):
        rows += batch.num_rows
    return rows


def throughput_row(ref, config: BenchConfig) -> Row:
    """The streaming closed form's GB/s against the decode floor, interleaved on the same file."""
    from linreg.solvers import SOLVERS
    from linreg.storage import dataset_bytes, open_dataset

    source = open_dataset(ref, memory_budget=0)  # streamed at any size
    info = SOLVERS["closed_form"]
    t = interleave(
        {"ours": lambda: info.fit(source, info.defaults), "floor": lambda: decode_pass(Path(ref.path))},
        reps=config.reps,
    )
    size = dataset_bytes(ref.spec)
    ours_gbs, floor_gbs = size / t["ours"].median / 1e9, size / t["floor"].median / 1e9
    return Row(
        section="scale", case="closed_form streamed from parquet, GB/s", baseline=DECODE_BASELINE,
        n=ref.spec.n, d=ref.spec.d, reps=config.reps, ours_s=t["ours"].median, baseline_s=t["floor"].median,
        target=FLOOR_FRACTION,
        note=f"{ours_gbs:.2f} GB/s vs a decode floor of {floor_gbs:.2f} GB/s ({ours_gbs / floor_gbs:.0%})",
        extra={"ours_GBps": ours_gbs, "floor_GBps": floor_gbs, "fraction": ours_gbs / floor_gbs, "bytes": size},
    )


def solver_rows(ref, decode_s: float, config: BenchConfig) -> list[Row]:
    """Each solver at this n in its own subprocess; compared with one decode pass of the same file."""
    rows = []
    for solver in solvers_at(ref.spec.n, config):
        report = run_child(ref.model_dump_json(), solver, child_env(ref.spec.n, config))
        path = "streamed" if report["streamed"] else "in memory"
        epochs = f", {report['epochs']} epoch" if report["epochs"] else ""
        rows.append(Row(
            section="scale", case=f"{solver} ({path}{epochs})", baseline=DECODE_BASELINE,
            n=ref.spec.n, d=ref.spec.d, reps=1, ours_s=report["seconds"], baseline_s=decode_s,
            extra={"solver": solver, **report},
        ))
        print(f"bench: scale: n={ref.spec.n:,} {solver}: {report['seconds']:.2f} s, "
              f"{report['peak_rss_bytes'] / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    return rows


def render_table(rows: list[Row]) -> str:
    """scale.md: one line per (n, solver), then the throughput line."""
    lines = [
        "| n | solver | path | seconds (open + fit) | fit seconds | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "solver" not in r.extra:
            continue
        e = r.extra
        path = ("streamed" if e["streamed"] else "in memory") + (f", {e['epochs']} epoch" if e["epochs"] else "")
        lines.append(f"| {r.n:,} | {e['solver']} | {path} | {r.ours_s:.2f} | {e['fit_seconds']:.2f} "
                     f"| {e['peak_rss_bytes'] / 2**20:,.0f} MiB |")
    lines += ["", *[f"- {r.case}: {r.note}" for r in rows if r.note]]
    return "\n".join(lines) + "\n"


def render_plot(rows: list[Row]):
    """Log-log seconds and peak RSS against n, one line per solver."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5))
    left, right = figure.subplots(1, 2)
    by_solver: dict[str, list[Row]] = {}
    for r in rows:
        if "solver" in r.extra:
            by_solver.setdefault(r.extra["solver"], []).append(r)
    for solver, points in by_solver.items():
        ns = [r.n for r in points]
        left.plot(ns, [r.ours_s for r in points], marker="o", label=solver)
        right.plot(ns, [r.extra["peak_rss_bytes"] / 2**20 for r in points], marker="o", label=solver)
    for axis, label in ((left, "seconds (open + fit, 1 epoch)"), (right, "peak RSS (MiB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("n (rows, d = 1)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    return figure


def run(config: BenchConfig) -> list[Row]:
    from linreg.specs import DataSpec
    from linreg.storage import ensure_dataset

    scratch = Path(tempfile.mkdtemp(prefix="linreg-scale-"))
    try:
        rows, ref = [], None
        for n in sizes(config):
            ref, _ = ensure_dataset(DataSpec(n=n), scratch)
            start = time.perf_counter()
            decode_pass(Path(ref.path))
            rows += solver_rows(ref, time.perf_counter() - start, config)
        rows.append(throughput_row(ref, config))
        out = scratch / "results" if config.quick else RESULTS
        out.mkdir(parents=True, exist_ok=True)
        (out / "scale.md").write_text(render_table(rows))
        render_plot(rows).savefig(out / "scale.png", dpi=100)
        return rows
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2], sys.argv[3])
        # The report is out: leave without the interpreter's teardown, where a native thread pool
        # (BLAS, arrow, torch) shut down mid-join once aborted a child with "terminate called
        # without an active exception" on a loaded machine, failing a run that had measured fine.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    else:
        sys.exit("usage: python -m bench.scale --child REF_JSON SOLVER (the harness runs this section)")
