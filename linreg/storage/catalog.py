"""The data root's layout, in one place, as Kedro's catalog names every dataset.

Under a data root (`--output-dir`, default `data`):

    datasets/linreg-<spec digest>.parquet             generated data, one file per spec
    datasets/<csv|parquet>-<sha256>-<choice>.parquet  a user's table, converted once
    runs/<run-id>/                                    one run: RUN_FILES, summary.json last
    sweeps/<sweep-id>/                                one sweep: SWEEP_FILES, sweep.parquet last
    history.csv, history.png                          the history of the runs

A run id is `<UTC start, to the second>-<first 8 characters of the flow run's id>`
(`20261201T101500Z-7f65b0aa`), a sweep id the same with `-sweep-` in the middle: both
sort by time. Data roots made before sweeps had their own folder hold sweeps under
`runs/`; `Catalog.run_folders` knows them by their id and leaves them out.
"""

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

from linreg.specs import DataSpec

DATASETS, RUNS, SWEEPS = "datasets", "runs", "sweeps"

SUMMARY = "summary.json"  # written last: a run folder without it did not finish
SUMMARY_CSV = "summary.csv"
# fits.png: every run (for d > 1 the partial-regression plots); diagnostics.png: every run whose
# reference is not rank-deficient (R's four panels).
FITS_PNG, LOSSES_PNG, DIAGNOSTICS_PNG = "fits.png", "losses.png", "diagnostics.png"
PREDICTED_PNG, RESIDUALS_PNG, COEFFICIENTS_PNG = "predicted.png", "residuals.png", "coefficients.png"  # d > 1, files
RUN_FIGURES = (FITS_PNG, LOSSES_PNG, PREDICTED_PNG, RESIDUALS_PNG, COEFFICIENTS_PNG, DIAGNOSTICS_PNG)
RUN_FILES = (SUMMARY_CSV, *RUN_FIGURES, SUMMARY)

SWEEP_PARQUET = "sweep.parquet"  # written last: a sweep folder without it did not finish
SWEEP_CSV = "sweep.csv"
CROSSOVER_CSV = "crossover.csv"  # per solver and d: where CUDA starts to win, if it does
SECONDS_PNG, ERROR_PNG = "seconds.png", "error.png"
SWEEP_FIGURES = (SECONDS_PNG, ERROR_PNG)
SWEEP_FILES = (SWEEP_CSV, CROSSOVER_CSV, *SWEEP_FIGURES, SWEEP_PARQUET)

HISTORY_CSV, HISTORY_PNG = "history.csv", "history.png"

TIME_FORMAT = "%Y%m%dT%H%M%SZ"  # the start of every run and sweep id
RUN_TIME = re.compile(r"^(\d{8}T\d{6}Z)")
SWEEP_ID = re.compile(r"^\d{8}T\d{6}Z-sweep-")


# ---------------------------------------------------------------------------------------------
# Ids


def new_run_id(flow_run_id: UUID | str, now: datetime | None = None) -> str:
    """A sortable, unique run folder name: the UTC time to the second, then the flow run's id.

    Args:
        flow_run_id: the Prefect flow run's id; its first 8 characters are kept.
        now: an aware datetime (default: now).
    """
    return f"{_stamp(now)}-{str(flow_run_id)[:8]}"


def new_sweep_id(flow_run_id: UUID | str, now: datetime | None = None) -> str:
    """A sortable, unique sweep folder name: as `new_run_id`, with `sweep` before the flow run's id."""
    return f"{_stamp(now)}-sweep-{str(flow_run_id)[:8]}"


def _stamp(now: datetime | None) -> str:
    now = datetime.now(timezone.utc) if now is None else now.astimezone(timezone.utc)
    return f"{now:{TIME_FORMAT}}"


def run_started(run_id: str) -> str | None:
    """The UTC start time a run or sweep id begins with, as written ("20261201T101500Z"); None if it has none."""
    match = RUN_TIME.match(run_id)
    return match.group(1) if match else None


def run_time(run_id: str) -> datetime | None:
    """The UTC start time of a run or sweep id, as an aware datetime; None if it has none."""
    started = run_started(run_id)
    return None if started is None else datetime.strptime(started, TIME_FORMAT).replace(tzinfo=timezone.utc)


def is_sweep_id(name: str) -> bool:
    return SWEEP_ID.match(name) is not None


def spec_digest(spec: DataSpec) -> str:
    """A short stable name for a spec: the same spec always maps to the same file."""
    return hashlib.sha256(spec.model_dump_json(exclude={"source"}).encode()).hexdigest()[:16]  # as before files existed


# ---------------------------------------------------------------------------------------------
# Paths


@dataclass(frozen=True)
class Catalog:
    """Every path under one data root. Naming a path creates nothing."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def datasets(self) -> Path:
        return self.root / DATASETS

    def dataset(self, spec: DataSpec) -> Path:
        """The parquet file of the data `spec` generates."""
        return self.datasets / f"linreg-{spec_digest(spec)}.parquet"

    def conversion(self, prefix: str, source_sha256: str, choice: str) -> Path:
        """The parquet a user's table (`prefix` csv or parquet) is converted to, for one column choice."""
        return self.datasets / f"{prefix}-{source_sha256}-{choice}.parquet"

    def conversions(self, prefix: str, choice: str) -> list[Path]:
        """Every conversion of a `prefix` table (csv or parquet) for one column choice, whatever its source."""
        return sorted(self.datasets.glob(self.conversion(prefix, "*", choice).name))

    @property
    def runs(self) -> Path:
        return self.root / RUNS

    def run(self, run_id: str) -> Path:
        """Where one run's summary and plots go."""
        return self.runs / run_id

    def runs_of(self, flow_run_id: UUID | str) -> list[Path]:
        """The run folders of one flow run (`new_run_id` keeps its first 8 characters)."""
        return sorted(self.runs.glob(f"*-{str(flow_run_id)[:8]}"))

    def run_file(self, run_id: str, name: str) -> Path:
        """One of RUN_FILES in a run's folder.

        Raises:
            ValueError: `name` is no run file.
        """
        return self.run(run_id) / _known(name, RUN_FILES)

    def summary(self, run_id: str) -> Path:
        return self.run(run_id) / SUMMARY

    @property
    def sweeps(self) -> Path:
        return self.root / SWEEPS

    def sweep(self, sweep_id: str) -> Path:
        """Where one sweep's table and plots go."""
        return self.sweeps / sweep_id

    def sweep_file(self, sweep_id: str, name: str) -> Path:
        """One of SWEEP_FILES in a sweep's folder.

        Raises:
            ValueError: `name` is no sweep file.
        """
        return self.sweep(sweep_id) / _known(name, SWEEP_FILES)

    @property
    def history_csv(self) -> Path:
        return self.root / HISTORY_CSV

    @property
    def history_png(self) -> Path:
        return self.root / HISTORY_PNG

    def run_folders(self) -> list[Path]:
        """Every run folder under runs/, finished or not, oldest first.

        Hidden folders and sweeps (kept under runs/ by older versions) are left out.
        Run ids begin with their UTC start time, to the second; within a second, the
        run whose summary.json was written first comes first.
        """
        if not self.runs.is_dir():
            return []
        folders = [p for p in self.runs.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and not is_sweep_id(p.name)]
        started = {f: run_started(f.name) or "" for f in folders}
        ties = Counter(started.values())
        # Only runs that started in the same second need their files' times (a stat each).
        return sorted(folders, key=lambda f: (started[f], _written(f) if ties[started[f]] > 1 else 0, f.name))


def _written(folder: Path) -> int:
    try:
        return (folder / SUMMARY).stat().st_mtime_ns
    except OSError:
        return 0


def _known(name: str, names: tuple[str, ...]) -> str:
    if name not in names:
        raise ValueError(f"{name!r} is not one of {', '.join(names)}")
    return name


def run_dir(root: Path, run_id: str) -> Path:
    """Where one run's summary and plots go: `Catalog(root).run(run_id)`."""
    return Catalog(root).run(run_id)


def dataset_path(root: Path, spec: DataSpec) -> Path:
    """The parquet file of the data `spec` generates: `Catalog(root).dataset(spec)`."""
    return Catalog(root).dataset(spec)
