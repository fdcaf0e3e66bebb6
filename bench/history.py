"""Section "history": loading the run history of a data root with 1,000 run folders.

The folders are made in a temporary directory from one real summary (every solver
fitted, scored and provenance recorded by the library), each under its own run id,
seed and seconds. Timed in turn, with the files in the page cache:

- ours: `linreg.results.load_history`, each summary.json validated by pydantic
  (in Rust) and every row built into one DataFrame;
- baseline: the same rows from `json.loads` without any validation, one DataFrame:
  what skipping validation would save. (`RunSummary.to_frame()` per run and one
  `pd.concat` takes 30 ms a run, 30 s for 1,000: not a contender.)

The target: 1,000 run folders load in under 2 s (a first row, against that
budget; --quick: 100 folders against 0.2 s). A second row shows what validation
costs against not validating. Reading and `json.loads` of every file alone is noted.
"""

import json
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from bench.harness import BenchConfig, Row, interleave
from linreg.data import make_dataset
from linreg.evaluate import RunSummary, summarize
from linreg.provenance import collect
from linreg.results import COLUMNS, load_history, run_folders
from linreg.solvers import SOLVERS
from linreg.specs import DataSpec
from linreg.storage import Catalog, DatasetRef
from linreg.storage.catalog import SUMMARY, new_run_id

TARGET_SECONDS = 2.0
RUNS, QUICK_RUNS = 1000, 100

FIRST_RUN = datetime(2026, 1, 1, tzinfo=timezone.utc)  # the made-up runs start here, a minute apart


def real_summary(epochs: int) -> RunSummary:
    """Every solver fitted on the tutorial's data (n=1000), scored as a run scores them."""
    spec = DataSpec()
    data = make_dataset(spec)
    fits = [SOLVERS[name].fit(data, SOLVERS[name].defaults.model_copy(update={"epochs": epochs})) for name in SOLVERS]
    ref = DatasetRef(path="/data/datasets/tutorial.parquet", sha256="0" * 64, spec=spec)
    return summarize("template", ref, data, fits, sum(f.seconds for f in fits), collect("cpu"))


def write_runs(root: Path, template: RunSummary, count: int) -> None:
    """`count` run folders under root/runs, one a minute, seeds cycling over 10, seconds varied."""
    raw = json.loads(template.model_dump_json())
    for k in range(count):
        raw["run_id"] = new_run_id(f"{k:08x}", now=FIRST_RUN + timedelta(minutes=k))
        raw["dataset"]["seed"] = k % 10
        for i, row in enumerate(raw["results"]):
            row["seconds"] = template.results[i].seconds * (1 + (k % 7) / 10)
        summary = Catalog(root).summary(raw["run_id"])
        summary.parent.mkdir(parents=True)
        summary.write_text(json.dumps(raw, indent=2))


def unvalidated(root: Path) -> pd.DataFrame:
    """The history's rows straight from json.loads: no types checked, no damaged file caught."""
    records = []
    for folder in run_folders(root):
        raw = json.loads((folder / SUMMARY).read_bytes())
        ds, made = raw["dataset"], raw.get("provenance") or {}
        run = {"run_id": raw["run_id"], "n": ds["n"], "d": ds["d"], "noise": ds["noise"], "seed": ds["seed"],
               "true_weights": ds["weights"], "true_bias": ds["bias"], "dataset_sha256": ds["sha256"],
               "dataset_path": ds["path"], "training_seconds": raw.get("training_seconds"),
               **{column: made.get(key) for column, key in PROVENANCE_KEYS.items()}}
        for r in raw["results"]:
            errors = [r["bias_abs_error"], *r["weights_abs_error"]]
            records.append({**run, **r, "error": None if None in errors else max(errors),
                            "max_weight_abs_error": max(r["weights_abs_error"])})
    return pd.DataFrame.from_records(records, columns=COLUMNS)


PROVENANCE_KEYS = {"commit": "commit", "python_version": "python", "numpy_version": "numpy", "torch_version": "torch",
                   "prefect_version": "prefect", "host": "host", "run_device": "device", "device_name": "device_name",
                   "cores": "cores", "load_average": "load_average"}


def read_json_only(root: Path) -> int:
    return len([json.loads((folder / SUMMARY).read_bytes()) for folder in run_folders(root)])


def run(config: BenchConfig) -> list[Row]:
    count = QUICK_RUNS if config.quick else RUNS
    root = Path(tempfile.mkdtemp(prefix="linreg-bench-history-"))
    try:
        template = real_summary(epochs=20 if config.quick else 100)
        write_runs(root, template, count)
        t = interleave({"ours": lambda: load_history(root), "baseline": lambda: unvalidated(root)},
                       reps=config.reps)
        floor = interleave({"json": lambda: read_json_only(root)}, reps=config.reps)["json"]
        ours, baseline = t["ours"].result, t["baseline"].result
        started = time.perf_counter()
        filtered = load_history(root, seed=3, solvers=["closed_form"], last=10)
        filtered_s = time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)
    agreement = float((ours["seconds"] - baseline["seconds"]).abs().max())
    budget = TARGET_SECONDS * count / RUNS  # 2 s per 1,000 folders
    checks = {"a row per run and solver": len(ours) == len(baseline) == count * len(SOLVERS) and len(filtered) == 10,
              "the same rows as without validation": list(ours["run_id"]) == list(baseline["run_id"])}
    common = {"section": "history", "case": f"load_history, {count} run folders", "n": count, "d": len(SOLVERS),
              "reps": config.reps, "ours_s": t["ours"].median}
    return [
        Row(**common, baseline=f"the budget: {TARGET_SECONDS:g} s per {RUNS:,} folders", baseline_s=budget,
            target=1.0, checks=checks,
            note=f"n = run folders, d = solvers per run; {len(ours)} rows in {t['ours'].median:.2f} s against "
                 f"{budget:.2f} s allowed. Reading and json.loads alone: {floor.median * 1e3:.0f} ms; a filtered "
                 f"load (seed, solver, last 10): {filtered_s:.2f} s",
            extra={"wall_s": t["ours"].seconds, "json_only_s": floor.median, "rows": len(ours),
                   "filtered_s": filtered_s}),
        Row(**common, baseline="json.loads, no validation", baseline_s=t["baseline"].median,
            agreement=agreement, tolerance=0.0,
            note="what pydantic's validation of each summary.json costs (it is what catches a damaged file)",
            extra={"wall_s": t["ours"].seconds, "baseline_wall_s": t["baseline"].seconds}),
    ]
