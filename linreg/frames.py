"""Run summaries as one tidy DataFrame: a row per run and solver, the same columns everywhere.

`RunSummary.to_frame`, `linreg.results.load_history`, summary.csv and history.csv all
build their rows here. It takes RunSummary objects and imports nothing that imports it.
"""

import math
from typing import Iterable

import pandas as pd

from linreg.storage.catalog import RUN_TIME, TIME_FORMAT

# The history's columns, in order: the run, its data, then one solver's result, then provenance.
RUN_COLUMNS = ["run_id", "time", "n", "d", "noise", "seed", "true_weights", "true_bias", "dataset_sha256",
               "dataset_path", "data_source", "target", "features", "holdout", "training_seconds"]
SOLVER_COLUMNS = ["solver", "status", "seconds", "epochs", "error", "max_weight_abs_error", "bias_abs_error",
                  "distance_to_closed_form", "mse", "r2", "final_loss", "weights", "bias", "weights_abs_error",
                  "device", "worker", "message", "diverged_epoch", "holdout_mse", "holdout_r2"]
PROVENANCE_COLUMNS = ["commit", "python_version", "numpy_version", "torch_version", "prefect_version", "host",
                      "run_device", "device_name", "cores", "load_average"]
COLUMNS = RUN_COLUMNS + SOLVER_COLUMNS + PROVENANCE_COLUMNS
FLOAT_COLUMNS = ["noise", "true_bias", "training_seconds", "seconds", "error", "max_weight_abs_error",
                 "bias_abs_error", "distance_to_closed_form", "mse", "r2", "final_loss", "bias", "load_average",
                 "holdout", "holdout_mse", "holdout_r2"]
INT_COLUMNS = ["n", "d", "seed", "epochs", "diverged_epoch", "cores"]


def summaries_frame(summaries: Iterable) -> pd.DataFrame:
    """One tidy DataFrame, a row per run and solver, in the order given (see COLUMNS).

    Args:
        summaries: `linreg.evaluate.RunSummary` objects.
    """
    records = [record for summary in summaries for record in _records(summary)]
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    frame[FLOAT_COLUMNS] = frame[FLOAT_COLUMNS].astype("float64")
    frame[INT_COLUMNS] = frame[INT_COLUMNS].astype("Int64")  # nullable: diverged_epoch is mostly missing
    frame["time"] = pd.to_datetime(frame["run_id"].str.extract(RUN_TIME, expand=False), format=TIME_FORMAT,
                                   utc=True, errors="coerce")
    return frame


def _records(summary) -> list[dict]:
    ds = summary.dataset
    p = summary.provenance
    run = {
        "run_id": summary.run_id, "time": None, "n": ds.n, "d": ds.d, "noise": ds.noise, "seed": ds.seed,
        "true_weights": ds.weights, "true_bias": ds.bias, "dataset_sha256": ds.sha256, "dataset_path": ds.path,
        "data_source": ds.source_path if ds.source == "file" else "generated", "target": ds.target,
        "features": ds.features, "holdout": ds.holdout,
        "training_seconds": summary.training_seconds,
        "commit": p and p.commit, "python_version": p and p.python, "numpy_version": p and p.numpy,
        "torch_version": p and p.torch, "prefect_version": p and p.prefect, "host": p and p.host,
        "run_device": p and p.device, "device_name": p and p.device_name, "cores": p and p.cores,
        "load_average": p and p.load_average,
    }
    return [
        {
            **run,
            "solver": r.solver, "status": r.status.value, "seconds": r.seconds, "epochs": r.epochs,
            # Against the truth; a user's table has none, and its error is the distance to the closed form.
            "error": largest([r.bias_abs_error, *r.weights_abs_error]) if ds.has_truth else r.distance_to_closed_form,
            "max_weight_abs_error": largest(r.weights_abs_error), "bias_abs_error": r.bias_abs_error,
            "distance_to_closed_form": r.distance_to_closed_form, "mse": r.mse, "r2": r.r2,
            "final_loss": r.final_loss, "weights": r.weights, "bias": r.bias,
            "weights_abs_error": r.weights_abs_error, "device": r.device, "worker": r.worker,
            "message": r.message, "diverged_epoch": r.diverged_epoch,
            "holdout_mse": r.holdout_mse, "holdout_r2": r.holdout_r2,
        }
        for r in summary.results
    ]


def largest(values: list[float]) -> float:
    """The largest of values >= 0 (absolute errors), NaN if any is NaN (a failed fit has no error).

    Plain Python: np.max costs 10 us a call, a third of the history's load time; a NaN
    (and only a NaN, for values >= 0) makes the sum NaN.
    """
    return float(max(values)) if values and not math.isnan(sum(values)) else math.nan
