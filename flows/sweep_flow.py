"""The sweep: prepare each dataset once, train every chunk of cells together, publish one DataFrame."""

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from linreg.storage import catalog
from linreg.sweep import (
    SweepSpec, TableCells, cell_row, chunk_cells, count_statuses, data_specs, expand_grid, results_frame, skip_reason,
)
from tasks.dataset import fit_scaling, prepare_dataset, prepare_table
from tasks.interrupt import raise_if_interrupted
from tasks.runners import cores, intra_op_threads, set_torch_threads, task_runner_for
from tasks.sweep import publish_sweep, reference_fit, submit_cells

# Chunks per (dataset, device): twice the cores, so that a chunk that runs long is
# balanced by the others, while each task's own cost (~0.1 s of API calls) is paid
# a few times per dataset instead of once per cell.
CHUNKS_PER_CORE = 2


def new_sweep_id() -> str:
    """A sortable, unique folder name, as the catalog writes it: UTC time plus the flow run's id."""
    return catalog.new_sweep_id(flow_run.id)


@flow(name="linreg-sweep-train")
def sweep_train_flow(sweep: SweepSpec) -> list[dict]:
    """Every dataset prepared once, as a task; every chunk of cells submitted at once, after its dataset."""
    if sweep.runner == "threads":
        set_torch_threads(intra_op_threads(sweep))  # the flow's own thread; pool threads set theirs (tasks/runners.py)
    scaling, datasets = None, None
    if sweep.data is not None:  # a user's table: ingested once, its closed form the cells' reference
        table = prepare_table(sweep.data, sweep.output_dir, sweep.fit_intercept)
        cells_data = TableCells(table.n, table.d, sweep.data.seed, reference_fit(table, sweep.fit_intercept))
        refs, datasets = {cells_data.model_dump_json(): table}, [cells_data]
        scaling = fit_scaling(table, sweep.fit_intercept) if "standard" in sweep.scalings else None
    else:
        specs = data_specs(sweep)
        refs = {spec.model_dump_json(): prepare_dataset.submit(spec, sweep.output_dir) for spec in specs}
    rows, futures = [], {}
    for key, group in _groups(sweep, datasets):
        reasons = {cell.index: skip_reason(cell, fits_run_here=sweep.runner != "dask") for cell in group}
        rows += [cell_row(c, status="skipped", reason=reasons[c.index]) for c in group if reasons[c.index]]
        group = [cell for cell in group if not reasons[cell.index]]
        for k, chunk in enumerate(chunk_cells(group, CHUNKS_PER_CORE * cores())):
            name = f"train-{chunk[0].device}-n{chunk[0].data.n}-d{chunk[0].data.d}-seed{chunk[0].data.seed}-{k}"
            futures[submit_cells(refs[key], chunk, name, dask=sweep.runner == "dask", scaling=scaling)] = chunk
    for future in as_completed(list(futures)):
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, list):
            rows += outcome
        else:
            get_run_logger().error("chunk %s failed: %s", future.task_run_id, outcome)
            rows += [cell_row(c, status="failed", reason=f"{type(outcome).__name__}: {outcome}") for c in futures[future]]
    raise_if_interrupted()  # cells cut short by Ctrl-C are no results
    return rows


def _groups(sweep: SweepSpec, datasets=None):
    """(dataset key, cells) per dataset and device, in grid order."""
    groups: dict[tuple[str, str], list] = {}
    for cell in expand_grid(sweep, datasets):
        groups.setdefault((cell.data.model_dump_json(), cell.device), []).append(cell)
    return [(data, cells) for (data, _), cells in groups.items()]


@flow(name="linreg-sweep", log_prints=True)
def sweep_flow(sweep: SweepSpec = SweepSpec()):
    """Fit every cell of the grid and report where each solver and device wins.

    Ends Completed unless a cell failed (raised); skipped cells (a device this
    machine lacks) are rows that say why, never failures. Returns the results DataFrame.
    """
    sweep_id = new_sweep_id()
    rows = sweep_train_flow.with_options(task_runner=task_runner_for(sweep))(sweep)
    raise_if_interrupted()
    frame = results_frame(rows)
    folder = publish_sweep(frame, sweep_id, sweep.output_dir)
    counts = count_statuses(frame)
    message = f"{len(frame)} cells: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f"; {folder}"
    return Failed(message=message, data=frame) if counts["failed"] else Completed(message=message, data=frame)


if __name__ == "__main__":
    sweep_flow()
