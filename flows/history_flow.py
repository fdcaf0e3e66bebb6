"""The run history: every finished run under a data root as one table, with its plot."""

from pathlib import Path
from typing import Annotated

from prefect import flow
from prefect.states import Completed, Failed
from pydantic import Field

from linreg.solvers import SOLVERS
from linreg.storage.catalog import RUNS, Catalog
from linreg.validation import MAX_D, MAX_N, MAX_SEED
from tasks.history import publish_history


@flow(name="linreg-history", flow_run_name="history-{output_dir}", log_prints=True)
def history_flow(
    output_dir: Path = Path("data"),
    solvers: list[str] | None = None,
    last: Annotated[int | None, Field(ge=1, description="only the last N runs")] = None,
    n: Annotated[int | None, Field(ge=1, le=MAX_N, description="only runs with this many rows")] = None,
    d: Annotated[int | None, Field(ge=1, le=MAX_D, description="only runs with this many features")] = None,
    seed: Annotated[int | None, Field(ge=0, le=MAX_SEED, description="only runs with this seed")] = None,
):
    """Publish the history of the runs under `output_dir`: the table artifact `linreg-history`
    (a row per run and solver) and the markdown `linreg-history-report` with its plot.

    Returns the history DataFrame. Fails, publishing nothing, when `output_dir` holds no
    `runs/` folder (a wrong data root, say) or `solvers` names an unknown solver.
    """
    if not Catalog(output_dir).runs.is_dir():
        return Failed(message=f"output_dir: {Path(output_dir).resolve()} has no {RUNS}/ folder; "
                              "is it the data root of linreg runs?")
    unknown = sorted(set(solvers or []) - set(SOLVERS))
    if unknown:
        return Failed(message=f"solvers: unknown {', '.join(unknown)}; known: {', '.join(SOLVERS)}")
    frame = publish_history(output_dir, {"solvers": solvers, "last": last, "n": n, "d": d, "seed": seed})
    runs = frame["run_id"].nunique()
    return Completed(message=f"{runs} runs, {len(frame)} rows", data=frame)


if __name__ == "__main__":
    history_flow()
