"""Runs as pandas DataFrames: one run, the history under a data root, and run-vs-run comparison.

A data root holds `runs/<run-id>/summary.json` (paths named by `linreg.storage.catalog`),
written last by each run: a folder without it is a run that is still going or never
finished. Loading never fails the whole history for one bad folder: it is skipped with a
warning naming it. The frames themselves are built by `linreg.frames`.
"""

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from pydantic import ValidationError

from linreg.evaluate import RunSummary
from linreg.frames import COLUMNS, largest, summaries_frame
from linreg.solvers.base import Status
from linreg.storage.catalog import SUMMARY, Catalog, run_started

__all__ = [
    "COLUMNS", "Comparison", "Model", "RunNotFound", "Thresholds", "compare", "history_table", "iter_runs",
    "load_history", "load_run", "model_changes", "previous_run", "resolve_run", "run_folders", "same_data",
    "same_model", "summaries_frame", "summary_file",
]

log = logging.getLogger("linreg.results")

SPEC_FIELDS = ("n", "weights", "bias", "noise", "seed")  # what generates a dataset
STATUS_RANK = {Status.OK: 0, Status.RANK_DEFICIENT: 1, Status.DIVERGED: 1, Status.FAILED: 2}


class RunNotFound(LookupError):
    """A run reference (`latest`, `previous`, an id or a folder) that names no loadable run."""


# ---------------------------------------------------------------------------------------------
# Loading


def summary_file(run: Path) -> Path:
    """The summary.json of a run folder (or the file itself)."""
    run = Path(run)
    return run if run.name == SUMMARY and not run.is_dir() else run / SUMMARY


def load_run(run: Path) -> RunSummary:
    """One run's summary.json as a RunSummary.

    Args:
        run: a run folder, or its summary.json.

    Raises:
        FileNotFoundError: no summary.json there (the run is unfinished, or this is no run).
        ValueError: the file is not a valid summary (a pydantic ValidationError, naming the field).
    """
    return RunSummary.model_validate_json(summary_file(run).read_bytes())


def run_folders(root: Path) -> list[Path]:
    """Every run folder under `<root>/runs`, oldest first (`linreg.storage.Catalog.run_folders`)."""
    return Catalog(root).run_folders()


def iter_runs(root: Path, newest_first: bool = False) -> Iterator[tuple[Path, RunSummary]]:
    """(folder, summary) of every complete run under `root`; bad folders are logged and skipped."""
    folders = run_folders(root)
    for folder in reversed(folders) if newest_first else folders:
        summary = _load_or_warn(folder)
        if summary is not None:
            yield folder, summary


def _load_or_warn(folder: Path) -> RunSummary | None:
    try:
        return load_run(folder)
    except FileNotFoundError:
        log.warning("skipping run folder %s: no %s (the run did not finish, or is still running)", folder, SUMMARY)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        log.warning("skipping run folder %s: damaged %s: %s: %s (%d errors)", folder, SUMMARY, where,
                    first["msg"], exc.error_count())
    except (OSError, ValueError) as exc:
        log.warning("skipping run folder %s: unreadable %s: %s", folder, SUMMARY, exc)
    return None


def load_history(
    root: Path, *, solvers: list[str] | None = None, n: int | None = None, d: int | None = None,
    seed: int | None = None, last: int | None = None,
) -> pd.DataFrame:
    """Every complete run under `<root>/runs` as one DataFrame: a row per run and solver, oldest first.

    Damaged or unfinished run folders are skipped, each with a warning (logger
    `linreg.results`) naming the folder.

    Args:
        solvers: keep only these solvers' rows.
        n, d, seed: keep only runs whose data has this spec.
        last: keep only the last `last` runs (after the other filters).
    """
    frame = summaries_frame(summary for _, summary in iter_runs(root))
    keep = pd.Series(True, index=frame.index)
    for column, value in (("n", n), ("d", d), ("seed", seed)):
        if value is not None:
            keep &= frame[column] == value
    if solvers is not None:
        keep &= frame["solver"].isin(solvers)
    frame = frame[keep]
    if last is not None:
        frame = frame[frame["run_id"].isin(frame["run_id"].unique()[-last:])] if last > 0 else frame.iloc[:0]
    return frame.reset_index(drop=True)


def data_labels(frame: pd.DataFrame) -> pd.Series:
    """Which data each row's run fitted, in a few characters: the file's name and its sha256's
    first 8 digits (`longley.csv@1a2b3c4d`), or `generated@…` with the generated parquet's."""
    names = frame["data_source"].map(lambda source: "generated" if source == "generated" else Path(source).name)
    return names + "@" + frame["dataset_sha256"].str[:8]


def history_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The history wide: one row per run, seconds, error and status columns per solver.

    Runs on the same data (the same sha256: one file, or one generated dataset) are grouped
    together, the groups in the order their first run appears, and oldest first within each.

    Returns:
        Columns run_id, time, data (`data_labels`), n, d, seed, commit, then `<solver> s`,
        `<solver> error` and `<solver> status` for each solver, in the order solvers first appear.
    """
    runs = frame.drop_duplicates("run_id").assign(data=data_labels)
    group = runs.groupby("dataset_sha256", sort=False).ngroup()  # numbered in order of first appearance
    runs = runs.assign(_group=group).sort_values("_group", kind="stable")
    runs = runs[["run_id", "time", "data", "n", "d", "seed", "commit"]].set_index("run_id")
    solvers = list(dict.fromkeys(frame["solver"]))
    if not solvers:
        return runs.reset_index()
    values = {"seconds": "s", "error": "error", "status": "status"}
    wide = frame.drop_duplicates(["run_id", "solver"]).pivot(index="run_id", columns="solver", values=list(values))
    parts = {f"{s} {label}": wide[(value, s)] for s in solvers for value, label in values.items()}
    return runs.join(pd.DataFrame(parts)).reset_index()


# ---------------------------------------------------------------------------------------------
# Finding runs


def resolve_run(root: Path, reference: str) -> Path:
    """The run folder that `reference` names.

    Args:
        reference: "latest", "previous" (the run before the latest), a run folder or
            its summary.json, or a run id under `<root>/runs`.

    Raises:
        RunNotFound: naming what was looked for, and where.
    """
    catalog = Catalog(root)
    if reference in ("latest", "previous"):
        complete = [f for f in catalog.run_folders() if (f / SUMMARY).is_file()]
        index = -1 if reference == "latest" else -2
        if len(complete) < -index:
            raise RunNotFound(f"{reference!r}: {len(complete)} finished run(s) under {catalog.runs}")
        return complete[index]
    path = Path(reference)
    if summary_file(path).is_file():
        return summary_file(path).parent
    if "/" not in reference and catalog.summary(reference).is_file():
        return catalog.run(reference)
    raise RunNotFound(f"{reference!r} is no run folder, and no finished run of that id is under {catalog.runs}")


def _table_choice(ds) -> tuple:
    """What makes a user's table the same data: its bytes, the columns chosen, the rows kept and held out."""
    return (ds.sha256, ds.target, tuple(ds.features or ()), ds.rows, ds.holdout, ds.seed if ds.holdout else None)


def same_data(a: RunSummary, b: RunSummary) -> bool:
    """Whether two runs fitted the same data: generated, the same file digest or the same generating
    spec; a user's table, the same file digest, columns, rows and holdout. What was fitted to the
    data (intercept, scaling, and a table's columns and holdout again) is `same_model`'s question."""
    da, db = a.dataset, b.dataset
    if da.source != db.source:
        return False
    if da.source == "file":
        return _table_choice(da) == _table_choice(db)
    return da.sha256 == db.sha256 or all(getattr(da, k) == getattr(db, k) for k in SPEC_FIELDS)


@dataclass(frozen=True)
class Model:
    """What a run chose to fit to its data, beside the data itself (`Model.of`).

    Attributes:
        fit_intercept: whether every solver fitted a bias.
        scaling: what the iterative solvers saw: "none" or "standard" (`RunSpec.scaling`).
        target, features, holdout: a user's table only (None for generated data): the target
            column, the feature columns in order, and (fraction, seed that splits it), (0.0, None)
            when nothing is held out.
    """

    fit_intercept: bool
    scaling: str
    target: str | None = None
    features: tuple[str, ...] | None = None
    holdout: tuple[float, int | None] | None = None

    @classmethod
    def of(cls, summary: RunSummary) -> "Model":
        """The model of a run, from its summary.

        Runs written before a field existed read as the default they ran under: summary.json's
        `fit_intercept` defaults to true (every fit had an intercept) and `holdout` to 0 (nothing
        held out); a null `scale` (a run from before it was recorded, or a summary made without
        it) reads as what `--scale auto` resolves to (`RunSpec.scaling`): standard for a user's
        table, none for generated data.
        """
        ds = summary.dataset
        scaling = summary.scale or ("standard" if ds.source == "file" else "none")
        if ds.source != "file":
            return cls(summary.fit_intercept, scaling)
        holdout = (ds.holdout, ds.seed) if ds.holdout else (0.0, None)
        return cls(summary.fit_intercept, scaling, ds.target, tuple(ds.features or ()), holdout)

    def described(self) -> dict[str, str]:
        """Each field this model has, as text: true/false, names comma-separated, "0.25 (seed 3)" or "none"."""
        text = {"fit_intercept": str(self.fit_intercept).lower(), "scaling": self.scaling}
        if self.features is not None:
            fraction, seed = self.holdout or (0.0, None)
            text |= {"target": str(self.target), "features": ", ".join(self.features) or "(none)",
                     "holdout": f"{fraction:g} (seed {seed})" if fraction else "none"}
        return text


def model_changes(a: RunSummary, b: RunSummary) -> list[str]:
    """How run B's model differs from run A's: "<field> <A> -> <B>" per field, in `Model`'s order; [] when the same.

    A table's target, features and holdout are compared only when both runs fitted a table.
    """
    ma, mb = Model.of(a), Model.of(b)
    ta, tb = ma.described(), mb.described()
    return [f"{k} {ta[k]} -> {tb[k]}" for k in ta if k in tb and getattr(ma, k) != getattr(mb, k)]


def same_model(a: RunSummary, b: RunSummary) -> bool:
    """Whether two runs fitted the same model (`Model`): intercept, scaling, and a table's columns and holdout."""
    return not model_changes(a, b)


def previous_run(root: Path, summary: RunSummary) -> RunSummary | None:
    """The most recent earlier run on the same data, with the same model, as `summary` under `root`, if any.

    Reads folders newest first and stops at the first match, checking the dataset's
    digest on the raw JSON before validating a candidate fully. A run with another model
    (`same_model`) is skipped: its errors and seconds moved with the model, not the code.
    """
    own = run_started(summary.run_id)
    for folder in reversed(run_folders(root)):
        started = run_started(folder.name)
        if folder.name == summary.run_id or (own and started and started > own):
            continue
        try:
            raw = json.loads(summary_file(folder).read_bytes())["dataset"]
            maybe = raw["sha256"] == summary.dataset.sha256 or (summary.dataset.source == "generated" and all(
                raw.get(k) == getattr(summary.dataset, k) for k in SPEC_FIELDS))
        except (OSError, ValueError, KeyError, TypeError):
            maybe = True  # the full load below names the folder and its problem
        if maybe:
            earlier = _load_or_warn(folder)
            if earlier is not None and same_data(earlier, summary) and same_model(earlier, summary):
                return earlier
    return None


# ---------------------------------------------------------------------------------------------
# Comparing two runs


@dataclass(frozen=True)
class Thresholds:
    """What counts as a regression from run A to run B.

    Attributes:
        tolerance: largest allowed growth of a solver's error (absolute). On the same
            data the error is the largest absolute error of bias and weights against the
            truth; across different data, where sampling noise moves that error, it is
            the distance to the closed form fitted on the same data.
        slowdown: a fit is slower when B's seconds exceed A's times this factor...
        min_seconds: ...and by at least this many seconds. Timings of fits of a few
            milliseconds vary by more than 1.5x from run to run (thread scheduling,
            a busy machine), which is noise, not a regression.
    """

    tolerance: float = 1e-3
    slowdown: float = 1.5
    min_seconds: float = 0.05


@dataclass(frozen=True)
class Comparison:
    """Run A against run B, solver by solver.

    Attributes:
        frame: one row per solver in both runs: status_a/b, parameters_change (largest
            absolute change of bias or a weight; NaN unless both fitted the same truth),
            error_a/b/_change, distance_a/b, mse_a/b/_change (NaN unless the same data),
            seconds_a/b, seconds_ratio (NaN unless the same n and d), and `regression`:
            the reasons, "; "-joined, or "" (always "" between different models).
        notes: what was not compared, and why.
        model_changes: how B's model differs from A's (`model_changes`); [] for the same model.
            Different models are shown side by side with no regression verdict: a change of
            model, not of code, moved their errors, MSE and seconds.
    """

    run_a: str
    run_b: str
    same_data: bool
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    thresholds: Thresholds = Thresholds()
    model_changes: list[str] = field(default_factory=list)

    @property
    def same_model(self) -> bool:
        return not self.model_changes

    @property
    def regressions(self) -> list[str]:
        """"solver: reason" for every regression found."""
        return [f"{row.solver}: {row.regression}" for row in self.frame.itertuples() if row.regression]


def compare(a: RunSummary, b: RunSummary, thresholds: Thresholds = Thresholds()) -> Comparison:
    """Compare run B (the newer) against run A, for the solvers both ran.

    Runs on different data are compared on what stays comparable: errors against
    the truth always (flagged through the distance to the closed form), fitted
    parameters only when the true parameters are the same, MSE only on the same
    data, seconds only at the same n and d. `notes` says what was left out.

    Runs with different models (`Model`: intercept, scaling, a table's columns or holdout)
    are shown the same way, side by side, with no regression verdict: the model, not the
    code, moved their errors, MSE and seconds. `notes` says how the models differ.
    """
    data = same_data(a, b)
    model = model_changes(a, b)
    known = a.dataset.has_truth and b.dataset.has_truth
    truth = known and a.dataset.weights == b.dataset.weights and a.dataset.bias == b.dataset.bias
    size = (a.dataset.n, a.dataset.d) == (b.dataset.n, b.dataset.d)
    notes = ([f"different model: {'; '.join(model)}"] if model else []) + \
        ([] if data else [_different_data(a, b, truth, size)]) + _busy_machine(a, b)
    if not known:
        notes.append("a user's table has no true parameters: errors are the distance to the closed form")
    rows_a = {r.solver: r for r in a.results}
    rows_b = {r.solver: r for r in b.results}
    same_table = data and not known  # the same table: parameters compare, with no truth to score them
    rows = [_solver_change(rows_a[s], rows_b[s], data, truth or same_table, size, thresholds, by_error=known,
                           judged=not model) for s in rows_b if s in rows_a]
    columns = ["solver", "status_a", "status_b", "parameters_change", "error_a", "error_b", "error_change",
               "distance_a", "distance_b", "mse_a", "mse_b", "mse_change", "seconds_a", "seconds_b",
               "seconds_ratio", "regression"]
    return Comparison(
        run_a=a.run_id, run_b=b.run_id, same_data=data, frame=pd.DataFrame(rows, columns=columns), notes=notes,
        only_a=[s for s in rows_a if s not in rows_b], only_b=[s for s in rows_b if s not in rows_a],
        thresholds=thresholds, model_changes=model,
    )


def _different_data(a: RunSummary, b: RunSummary, truth: bool, size: bool) -> str:
    def spec(s: RunSummary) -> str:
        ds = s.dataset
        if ds.source == "file":
            return (f"{ds.source_path} (sha256 {ds.sha256[:12]}), target {ds.target}, {ds.n} rows, "
                    f"features {', '.join(ds.features or [])}" + (f", holdout {ds.holdout:g}" if ds.holdout else ""))
        return f"n={ds.n}, d={ds.d}, weights={ds.weights}, bias={ds.bias}, noise={ds.noise}, seed={ds.seed}"

    left_out = ([] if truth else ["parameters (the true ones differ)"]) + ["MSE"] + \
        ([] if size else ["seconds (n or d differ)"])
    return (f"the runs fitted different data (A: {spec(a)}; B: {spec(b)}): not compared: {', '.join(left_out)}; "
            f"errors are flagged through the distance to the closed form")


def _busy_machine(a: RunSummary, b: RunSummary) -> list[str]:
    """A note when either run was scored on a machine busier than its cores: its seconds include waiting."""
    busy = [f"{name} ({s.provenance.load_average:g} on {s.provenance.cores} cores)" for name, s in (("A", a), ("B", b))
            if s.provenance and s.provenance.load_average is not None and s.provenance.cores
            and s.provenance.load_average > s.provenance.cores]
    if not busy:
        return []
    return [f"the machine was busy (1-minute load average above its cores) in run {' and '.join(busy)}: "
            "its fits waited for CPU, so a slowdown may be load rather than code"]


def _solver_change(ra, rb, data: bool, truth: bool, size: bool, t: Thresholds, by_error: bool = True,
                   judged: bool = True) -> dict:
    """One solver's row of `Comparison.frame`; with `judged` False (different models) no regression."""
    if by_error:
        err_a, err_b = largest([ra.bias_abs_error, *ra.weights_abs_error]), largest([rb.bias_abs_error, *rb.weights_abs_error])
    else:  # no truth: the error is the distance to the closed form
        err_a, err_b = ra.distance_to_closed_form, rb.distance_to_closed_form
    row = {
        "solver": rb.solver, "status_a": ra.status.value, "status_b": rb.status.value,
        "parameters_change": largest(np.abs(np.subtract([rb.bias, *rb.weights], [ra.bias, *ra.weights])).tolist())
        if truth and len(ra.weights) == len(rb.weights) else math.nan,
        "error_a": err_a, "error_b": err_b, "error_change": err_b - err_a,
        "distance_a": ra.distance_to_closed_form, "distance_b": rb.distance_to_closed_form,
        "mse_a": ra.mse if data else math.nan, "mse_b": rb.mse if data else math.nan,
        "mse_change": rb.mse - ra.mse if data else math.nan,
        "seconds_a": ra.seconds, "seconds_b": rb.seconds,
        "seconds_ratio": rb.seconds / ra.seconds if size and ra.seconds > 0 else math.nan,
    }
    reasons = []
    if STATUS_RANK[rb.status] > STATUS_RANK[ra.status]:
        reasons.append(f"status {ra.status.value} -> {rb.status.value}")
    scored = data and by_error  # against the truth; else (other data, or no truth) against the closed form
    grew = (err_b - err_a) if scored else (rb.distance_to_closed_form - ra.distance_to_closed_form)
    if grew > t.tolerance:  # False when either is NaN: a fit with no error already shows in its status
        what = "error" if scored else "distance to the closed form"
        reasons.append(f"{what} grew by {grew:.3g} (tolerance {t.tolerance:g})")
    both_ok = ra.status == rb.status == Status.OK
    if size and both_ok and ra.epochs == rb.epochs and rb.seconds > t.slowdown * ra.seconds \
            and rb.seconds - ra.seconds > t.min_seconds:
        reasons.append(f"{rb.seconds / ra.seconds:.2f}x slower ({ra.seconds:.3g} s -> {rb.seconds:.3g} s)")
    return {**row, "regression": "; ".join(reasons) if judged else ""}
