"""Prefect events for solvers that end badly, so automations can alert on them.

A diverged solver does not fail the run (its row says `diverged`), so without an
event a scheduled run with a diverged solver would end Completed and tell nobody.
"""

from prefect.context import FlowRunContext
from prefect.events import emit_event

from linreg.evaluate import RunSummary
from linreg.solvers.base import Status

# Event names, one per bad status: `linreg.solver.diverged`, `linreg.solver.failed`, and
# `linreg.solver.rank_deficient` (the reference could not fit the design uniquely, so no solver was judged).
SOLVER_EVENTS = {
    status: f"linreg.solver.{status.value}" for status in (Status.DIVERGED, Status.FAILED, Status.RANK_DEFICIENT)
}


def emit_solver_events(summary: RunSummary) -> list[str]:
    """Emit one event per diverged, failed or rank-deficient solver, about this flow run; return the event names.

    The event's resource is the flow run (`prefect.flow-run.<id>`), as Prefect's
    own flow-run events have it, so the UI lists it on the run's page and an
    automation can match it; the payload holds the solver and its message.
    """
    context = FlowRunContext.get()
    run, flow = context.flow_run, context.flow
    emitted = []
    for row in summary.results:
        if row.status not in SOLVER_EVENTS:
            continue
        emit_event(
            event=SOLVER_EVENTS[row.status],
            resource={
                "prefect.resource.id": f"prefect.flow-run.{run.id}",
                "prefect.resource.name": run.name,
            },
            related=[{"prefect.resource.id": f"prefect.flow.{run.flow_id}", "prefect.resource.role": "flow",
                      "prefect.resource.name": flow.name}],
            payload={"solver": row.solver, "status": row.status.value, "message": row.message or "",
                     "run_id": summary.run_id, "diverged_epoch": row.diverged_epoch},
        )
        emitted.append(SOLVER_EVENTS[row.status])
    return emitted
