"""Turn a RunSummary into rows, a console table and a markdown report."""

import base64
import math

import numpy as np

from linreg.evaluate import RunSummary
from linreg.solvers.base import Status

def _fmt(value: float, digits: int = 6) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def summary_rows(summary: RunSummary) -> list[dict]:
    """One flat row of plain Python values per solver, non-finite numbers as None: for tables and CSV."""
    return [
        {k: _finite_or_none(v) for k, v in {
            "solver": r.solver,
            "status": r.status.value,  # a plain str: table artifacts take plain types only
            "bias": r.bias,
            "weights": " ".join(_fmt(w, 8) for w in r.weights),
            "bias_abs_error": r.bias_abs_error,
            "max_weight_abs_error": float(np.max(r.weights_abs_error)),
            "distance_to_closed_form": r.distance_to_closed_form,
            "mse": r.mse,
            "r2": r.r2,
            "final_loss": r.final_loss,
            "epochs": r.epochs,
            "seconds": round(r.seconds, 4),
            "device": r.device,
            "worker": r.worker or "",
            "message": r.message or "",
        }.items()}
        for r in summary.results
    ]


def _markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        return _fmt(v) if isinstance(v, float) else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def console_table(summary: RunSummary) -> str:
    """A fixed-width table for the terminal."""
    columns = ["solver", "status", "bias", "weights", "distance_to_closed_form", "mse", "r2", "seconds"]
    rows = [[str(c) for c in columns]]
    for row in summary_rows(summary):
        rows.append([_fmt(row[c]) if isinstance(row[c], float) else str(row[c]) for c in columns])
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_markdown(summary: RunSummary, images: dict[str, bytes]) -> str:
    """The run report: dataset identity, results, closed-form inference, embedded plots.

    Args:
        images: title -> PNG bytes, embedded as data URIs so the UI needs no file access.
    """
    ds = summary.dataset
    parts = [
        f"# linreg run `{summary.run_id}`",
        f"Dataset: `{ds.path}`  \nsha256: `{ds.sha256}`  \n"
        f"n={ds.n}, d={ds.d}, true weights={ds.weights}, true bias={ds.bias}, noise={ds.noise}, seed={ds.seed}",
        "## Results",
        *([f"Training took {summary.training_seconds:.2f} s of wall time for "
           f"{sum(r.seconds for r in summary.results):.2f} s of fits."] if summary.training_seconds else []),
        _markdown_table(summary_rows(summary), ["solver", "status", "bias", "weights", "distance_to_closed_form",
                                                "mse", "r2", "epochs", "seconds", "message"]),
        "## Closed-form inference (95% confidence intervals)",
        _markdown_table([i.model_dump() for i in summary.inference],
                        ["parameter", "estimate", "truth", "std_error", "ci_low", "ci_high", "covers_truth"]),
        "## Plots",
    ]
    parts += [f"### {title}\n\n![{title}]({png_data_uri(png)})" for title, png in images.items()]
    return "\n\n".join(parts) + "\n"


def outcome(summary: RunSummary) -> tuple[bool, str]:
    """The run's verdict: (succeeded, one-line message).

    The rule: a run fails when any solver failed (raised); divergence alone does
    not fail it, since a too-large learning rate is a result worth reporting,
    but the message names every diverged solver.
    """
    groups = summary.statuses()
    total = len(summary.results)
    notes = [f"{len(groups[s])} {s} ({', '.join(groups[s])})" for s in (Status.FAILED, Status.DIVERGED) if s in groups]
    if not notes:
        return True, f"all {total} solvers ok"
    return Status.FAILED not in groups, f"{len(groups.get(Status.OK, []))} of {total} solvers ok; " + "; ".join(notes)
