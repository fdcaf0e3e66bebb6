"""Turn a RunSummary into rows, a console table and a markdown report; render comparisons, history and a sweep."""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING

import numpy as np

from linreg.evaluate import RunSummary
from linreg.solvers.base import Status
from linreg.sweep import count_statuses

if TYPE_CHECKING:  # pandas is imported only where a frame is built: the flow's import stays light
    import pandas as pd

    from linreg.results import Comparison

# summary.csv and the linreg-summary table: these columns, in this order, from RunSummary.to_frame().
SUMMARY_COLUMNS = ["solver", "status", "bias", "weights", "bias_abs_error", "max_weight_abs_error",
                   "distance_to_closed_form", "mse", "r2", "final_loss", "epochs", "seconds", "device", "worker",
                   "message"]
# Where a missing value reads better as "" than as None.
BLANK_WHEN_MISSING = {"worker", "message", "commit"}


def _fmt(value: float, digits: int = 6) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _plain(value):
    """A plain Python value for tables and CSV: numpy scalars unwrapped, missing and non-finite as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if not isinstance(value, (str, int, float, bool)) and _is_missing(value):  # pd.NA, NaT
        return None
    return value


def _is_missing(value) -> bool:
    import pandas as pd  # deferred: pandas costs a console table's start-up only when a value is checked

    return bool(pd.isna(value)) if np.ndim(value) == 0 else False


def frame_rows(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict]:
    """Rows of plain Python values: lists (weights, feature names) joined by spaces, times as ISO text, seconds to 0.1 ms.

    The one step from a results frame (a run's, a sweep's, the history's) to a table artifact,
    a markdown table or a CSV file. `columns`: these, in this order; all the frame's by default.
    """
    out = []
    for record in frame[columns if columns is not None else list(frame.columns)].to_dict("records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, (list, tuple, np.ndarray)):  # weights; a table's feature names
                value = " ".join(v if isinstance(v, str) else _fmt(v, 8) for v in value)
            elif hasattr(value, "isoformat") and not _is_missing(value):
                value = value.isoformat()
            value = _plain(value)
            if key == "seconds" and value is not None:
                value = round(value, 4)
            row[key] = "" if value is None and key in BLANK_WHEN_MISSING else value
        out.append(row)
    return out


HOLDOUT_COLUMNS = ["holdout_mse", "holdout_r2"]


def summary_columns(summary: RunSummary) -> list[str]:
    """SUMMARY_COLUMNS, with the held-out rows' scores after r2 when the run held rows out."""
    if not summary.dataset.n_holdout:
        return SUMMARY_COLUMNS
    at = SUMMARY_COLUMNS.index("r2") + 1
    return SUMMARY_COLUMNS[:at] + HOLDOUT_COLUMNS + SUMMARY_COLUMNS[at:]


def summary_rows(summary: RunSummary) -> list[dict]:
    """One flat row of plain Python values per solver, non-finite numbers as None: for tables and CSV."""
    return frame_rows(summary.to_frame(), summary_columns(summary))


def saved_summary_rows(summary: RunSummary) -> list[dict]:
    """`summary_rows` as summary.csv and the linreg-summary table hold them: for a user's table,
    `weights` becomes a column per feature, `weight_<name>`, in the features' order."""
    rows = summary_rows(summary)
    if summary.dataset.source != "file":
        return rows
    names = [f"weight_{name}" for name in summary.dataset.names]
    out = []
    for row, result in zip(rows, summary.results):
        named = {}
        for key, value in row.items():
            if key == "weights":
                named.update({n: _plain(float(w)) for n, w in zip(names, result.weights)})
            else:
                named[key] = value
        out.append(named)
    return out


def named_coefficient_rows(summary: RunSummary) -> tuple[list[dict], list[str]]:
    """Each solver's bias and weights under the features' names (a user's table's columns)."""
    names = summary.dataset.names
    columns = ["solver", "bias", *names]
    rows = [{"solver": r.solver, "bias": float(r.bias), **{n: float(w) for n, w in zip(names, r.weights)}}
            for r in summary.results]
    return rows, columns


def reference_table(summary: RunSummary) -> tuple[list[dict], list[str]]:
    """The reference's coefficient table, statsmodels' columns, a row per parameter by name."""
    columns = ["parameter", "coefficient", "std_error", "t", "p_value", "ci_low", "ci_high"]
    return [c.model_dump() for c in summary.coefficients or []], columns


def statistics_line(summary: RunSummary) -> str:
    """R², adjusted R², F and its p-value, observations and the condition number, in one line."""
    f = summary.fit_statistics
    if f is None:
        return ""
    return (f"R² {_fmt(f.r_squared)} ({f.r2_convention}), adjusted R² {_fmt(f.adj_r_squared)}, "
            f"F {_fmt(f.f_statistic)} (p {_fmt(f.f_pvalue, 3)}) on {f.df_model} and {f.df_resid} df, "
            # Of the design with its columns scaled to unit length: statsmodels prints the raw design's,
            # which grows with the columns' units (Longley: 4.9e9 there, 4.3e4 here).
            f"{f.nobs} observations, condition number {_fmt(f.condition_number, 3)} (columns scaled)")


ROBUST = "heteroscedasticity-robust"


def covariance_line(summary: RunSummary) -> str:
    """Which covariance the reference's standard errors use: said only when it is a robust one."""
    if summary.cov_type == "nonrobust":
        return ""
    return (f"Standard errors: {summary.cov_type}, {ROBUST} (statsmodels' cov_type); p-values and intervals from "
            "the normal distribution, F the robust Wald test of the slopes.")


def residual_line(summary: RunSummary) -> str:
    """statsmodels' lower block in one line: Durbin–Watson, Omnibus, Jarque–Bera, skew and kurtosis."""
    r = summary.residual_statistics
    if r is None:
        return ""
    return (f"Residuals: Durbin–Watson {_fmt(r.durbin_watson, 4)}, Omnibus {_fmt(r.omnibus, 4)} "
            f"(p {_fmt(r.omnibus_pvalue, 3)}), Jarque–Bera {_fmt(r.jarque_bera, 4)} (p {_fmt(r.jarque_bera_pvalue, 3)}), "
            f"skew {_fmt(r.skew, 4)}, kurtosis {_fmt(r.kurtosis, 4)}")


INFLUENCE_COLUMNS = ["row", "cooks_distance", "leverage", "student_residual"]


def influence_rows(summary: RunSummary) -> tuple[str, list[dict]]:
    """The heading and rows of the most influential rows (largest Cook's distance first)."""
    rows = summary.influential_rows or []
    if not rows:
        return "", []
    ds = summary.dataset
    counted = "data rows count from 1 as in the file" if ds.source == "file" else "rows of the generated dataset, from 1"
    if ds.rows_dropped:
        counted += f", after the {ds.rows_dropped} dropped"
    return (f"Most influential rows of the reference fit ({counted}; student_residual externally studentized):",
            [r.model_dump() for r in rows])


def data_line(summary: RunSummary) -> str:
    """Where the data came from: a generated dataset's spec, or a user's table's file, digest and columns."""
    ds = summary.dataset
    if ds.source != "file":
        return (f"Dataset: `{ds.path}`  \nsha256: `{ds.sha256}`  \n"
                f"n={ds.n}, d={ds.d}, true weights={ds.weights}, true bias={ds.bias}, noise={ds.noise}, seed={ds.seed}")
    read = "read in place" if not ds.converted else f"converted once to `{ds.path}`"
    dtypes = ", ".join(f"{n} ({t})" for n, t in zip(ds.features or [], ds.feature_dtypes or []))
    held = (f"; {ds.n_holdout} rows held out ({ds.holdout:g}, seed {ds.seed}), used by no solver"
            if ds.n_holdout else "")
    dropped = f"; {ds.rows_dropped} rows dropped for a missing value" if ds.rows_dropped else ""
    return (f"Data: `{ds.source_path}` ({read})  \nsha256: `{ds.sha256}`  \n"
            f"{ds.rows} rows{dropped}{held}; {ds.n} fitted  \n"
            f"target: {ds.target} ({ds.target_dtype}); features: {dtypes}  \n"
            f"No true parameters: each fit is scored against the closed form and the data.")


def markdown_table(rows: list[dict], columns: list[str] | None = None, *, digits: int = 6,
                   missing: str | None = None) -> str:
    """The one markdown table renderer: the run report's tables and the sweep's (`sweep_table`).

    Args:
        columns: the header, in order; the first row's keys by default ("(none)" when there is no row).
        digits: significant digits of a float.
        missing: the text of a missing value (None, NaN, pd.NA); by default None reads "None" and
            a non-finite float "nan".
    """
    if columns is None:
        if not rows:
            return "(none)"
        columns = list(rows[0])

    def cell(v) -> str:
        if missing is not None and (v is None or _is_missing(v)):
            return missing
        return _fmt(v, digits) if isinstance(v, float) else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def sweep_table(rows: list[dict]) -> str:
    """A sweep's table (its crossover, its cells not run) as its report and `linreg sweep` print it:
    three significant digits, "–" for a missing value, a line break at the end."""
    return markdown_table(rows, digits=3, missing="–") + "\n"


def _fixed_width(rows: list[dict], columns: list[str], digits: int = 6) -> str:
    """A left-aligned table for the terminal; None shows as "nan"."""
    def cell(v) -> str:
        return _fmt(v, digits) if isinstance(v, float) or v is None else str(v)

    table = [list(columns)] + [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)


def console_table(summary: RunSummary) -> str:
    """A fixed-width table for the terminal, then the reference's line (and its warning, if any).

    For a user's table the weights get a table of their own, a column per feature by name,
    then the reference's statsmodels-style table."""
    if summary.dataset.source != "file":
        columns = ["solver", "status", "bias", "weights", "distance_to_closed_form", "mse", "r2", "seconds"]
        table = _fixed_width(summary_rows(summary), columns)
        return table + ("\n\n" + reference_line(summary) if summary.reference else "")
    holdout = HOLDOUT_COLUMNS if summary.dataset.n_holdout else []
    columns = ["solver", "status", "distance_to_closed_form", "mse", "r2", *holdout, "epochs", "seconds"]
    parts = [_fixed_width(summary_rows(summary), columns), "Coefficients (bias, then each feature by name):",
             _fixed_width(*named_coefficient_rows(summary))]
    if summary.coefficients:
        parts += ["Reference fit (closed form), as statsmodels' OLS reports it:", _fixed_width(*reference_table(summary)),
                  "\n".join(filter(None, [statistics_line(summary), residual_line(summary), covariance_line(summary)]))]
    heading, influential = influence_rows(summary)
    if influential:
        parts += [heading, _fixed_width(influential, INFLUENCE_COLUMNS)]
    if summary.reference:
        parts.append(reference_line(summary))
    return "\n\n".join(parts)


def reference_line(summary: RunSummary) -> str:
    """How the closed form was solved and how far it can be trusted, in one or two lines."""
    ref = summary.reference
    if ref is None:
        return "Reference: not recorded (a run made before linreg recorded it)."
    centred = (f", {_fmt(ref.condition_number_centred, 3)} centred without the intercept column"
               if ref.condition_number_centred is not None else "")
    intercept = "with an intercept" if summary.fit_intercept else "without an intercept"
    line = (f"Reference: closed form by {ref.method}, {intercept}; condition number of the scaled design "
            f"{_fmt(ref.condition_number, 3)}{centred}; about {math.floor(ref.expected_digits)} correct digits; "
            f"R² {ref.r2_convention} (1 − RSS / {'Σ(y − ȳ)²' if ref.r2_convention == 'centred' else 'Σy²'}).")
    return line + (f"\nWarning: {ref.warning}" if ref.warning else "")


def provenance_line(summary: RunSummary) -> str:
    """Which code, libraries, host and device made the run, in one line; says so when unrecorded."""
    p = summary.provenance
    if p is None:
        return "Provenance: not recorded (a run made before linreg recorded it)."
    return (f"Code: commit `{p.commit or 'unknown (not a git checkout)'}`; Python {p.python}, NumPy {p.numpy}, "
            f"torch {p.torch or 'not installed'}, Prefect {p.prefect or 'not installed'}  \n"
            f"Host: `{p.host}`; device: {p.device} ({p.device_name or 'name unknown'})")


COMPARISON_COLUMNS = ["solver", "status", "parameters_change", "error_a", "error_b", "error_change", "mse_change",
                      "seconds_a", "seconds_b", "seconds_ratio", "regression"]


def _comparison_rows(comparison: Comparison, marker: str) -> list[dict]:
    rows = []
    for row in frame_rows(comparison.frame, list(comparison.frame.columns)):
        status = row["status_a"] if row["status_a"] == row["status_b"] else f"{row['status_a']} -> {row['status_b']}"
        regression = f"{marker}: {row['regression']}" if row["regression"] else ""
        rows.append({**row, "status": status, "regression": regression})
    return rows


def _comparison_summary(comparison: Comparison) -> list[str]:
    t = comparison.thresholds
    lines = [*comparison.notes]
    if comparison.only_a:
        lines.append(f"only in {comparison.run_a}: {', '.join(comparison.only_a)}")
    if comparison.only_b:
        lines.append(f"only in {comparison.run_b}: {', '.join(comparison.only_b)}")
    if not comparison.same_model:
        lines.append("no regression verdict: the runs fitted different models, so their errors, MSE and seconds "
                     "are shown side by side, not judged")
        return lines
    found = comparison.regressions
    lines.append(f"{len(found)} regression(s)" + (f": {'; '.join(found)}" if found else "") +
                 f" (error tolerance {t.tolerance:g}; slower means over {t.slowdown:g}x and "
                 f"over +{t.min_seconds:g} s)")
    return lines


def comparison_text(comparison: Comparison) -> str:
    """`linreg compare`'s output: the runs, a row per solver, notes, then the regressions (or none; or,
    between different models, that there is no verdict)."""
    differ = [what for what, same in (("data", comparison.same_data), ("model", comparison.same_model)) if not same]
    head = f"A: {comparison.run_a}\nB: {comparison.run_b}" + (
        f"  (different {' and '.join(differ)})" if differ else "")
    table = _fixed_width(_comparison_rows(comparison, "REGRESSION"), COMPARISON_COLUMNS, digits=4)
    return "\n".join([head, "", table, "", *_comparison_summary(comparison)])


def comparison_markdown(comparison: Comparison | None) -> str:
    """The report's section on the previous run on the same data with the same model, regressions in bold."""
    parts = ["## Compared with the previous run on the same data and model"]
    if comparison is None:
        parts.append("No earlier run on the same data and model (intercept, scaling, columns, holdout) "
                     "under this data root.")
        return "\n\n".join(parts)
    parts.append(f"Previous run: `{comparison.run_a}`. Change = this run minus the previous one.")
    parts.append(markdown_table(_comparison_rows(comparison, "**regression**"), COMPARISON_COLUMNS))
    parts.append("\n".join(f"- {line}" for line in _comparison_summary(comparison)))
    return "\n\n".join(parts)


def _history_cells(wide: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """Rows and columns of the history table: the run, then per solver "seconds s / error",
    or "seconds s / diverged" (or failed) for a fit that did not end ok, "-" where not fitted."""
    solvers = [c[: -len(" s")] for c in wide.columns if c.endswith(" s")]
    rows = []
    for row in frame_rows(wide, list(wide.columns)):
        out = {"run_id": row["run_id"], "data": row["data"], "n": row["n"], "d": row["d"], "seed": row["seed"],
               "commit": row["commit"] or "-"}
        for s in solvers:
            seconds, error, status = row[f"{s} s"], row[f"{s} error"], row[f"{s} status"]
            if status is None:  # this run did not fit that solver
                out[s] = "-"
            else:
                out[s] = f"{_fmt(seconds, 3)} s / " + (_fmt(error, 3) if status == Status.OK else status)
        rows.append(out)
    return rows, ["run_id", "data", "n", "d", "seed", "commit", *solvers]


def history_text(wide: pd.DataFrame) -> str:
    """`linreg history`'s table: a line per run, runs on the same data together, oldest first within
    each (`linreg.results.history_table`, `_history_cells`)."""
    return _fixed_width(*_history_cells(wide))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_markdown(summary: RunSummary, images: dict[str, bytes], comparison: Comparison | None = None) -> str:
    """The run report: dataset identity, provenance, results, the change since the previous run on
    the same data, closed-form inference, embedded plots.

    Args:
        images: title -> PNG bytes, embedded as data URIs so the UI needs no file access.
        comparison: this run (B) against the previous run on the same data (A); None when there is none.
    """
    if summary.dataset.source == "file":
        return _table_markdown(summary, images, comparison)
    parts = [
        *_report_head(summary),
        *_training_line(summary),
        markdown_table(summary_rows(summary), ["solver", "status", "bias", "weights", "distance_to_closed_form",
                                                "mse", "r2", "epochs", "seconds", "message"]),
        comparison_markdown(comparison),
        "## Closed-form inference (95% confidence intervals)",
        markdown_table([i.model_dump() for i in summary.inference],
                        ["parameter", "estimate", "truth", "std_error", "ci_low", "ci_high", "covers_truth"]),
        *_diagnostics_markdown(summary),
        "## Plots",
    ]
    parts += [f"### {title}\n\n![{title}]({png_data_uri(png)})" for title, png in images.items()]
    return "\n\n".join(parts) + "\n"


def _diagnostics_markdown(summary: RunSummary) -> list[str]:
    """The covariance used, the residuals' lower block and the most influential rows, as the report shows them."""
    parts = [line for line in (covariance_line(summary), residual_line(summary)) if line]
    heading, influential = influence_rows(summary)
    if influential:
        parts += [heading, markdown_table(influential, INFLUENCE_COLUMNS)]
    return parts


def _report_head(summary: RunSummary) -> list[str]:
    """A run report's first lines, whatever its data: title, data, provenance, reference, results."""
    return [f"# linreg run `{summary.run_id}`", data_line(summary), provenance_line(summary),
            reference_line(summary).replace("\n", "  \n"), "## Results"]


def _training_line(summary: RunSummary) -> list[str]:
    """How long the training took, against the fits' own seconds (none when not timed)."""
    if not summary.training_seconds:
        return []
    return [f"Training took {summary.training_seconds:.2f} s of wall time for "
            f"{sum(r.seconds for r in summary.results):.2f} s of fits."]


def _table_markdown(summary: RunSummary, images: dict[str, bytes], comparison: Comparison | None) -> str:
    """`render_markdown` for a user's table: named coefficients and the reference's statsmodels-style table,
    no truth."""
    holdout = HOLDOUT_COLUMNS if summary.dataset.n_holdout else []
    scale = {"standard": "The iterative solvers fitted standardised features and target; their coefficients "
                         "are given back in the original units.",
             "none": "The iterative solvers fitted the data as given (no scaling)."}.get(summary.scale or "", "")
    parts = [
        *_report_head(summary),
        *([scale] if scale else []),
        *_training_line(summary),
        markdown_table(summary_rows(summary), ["solver", "status", "distance_to_closed_form", "mse", "r2", *holdout,
                                                "epochs", "seconds", "message"]),
        "### Coefficients by name",
        markdown_table(*named_coefficient_rows(summary)),
        comparison_markdown(comparison),
        "## Reference fit (closed form, 95% confidence intervals)",
        markdown_table(*reference_table(summary)),
        statistics_line(summary),
        *_diagnostics_markdown(summary),
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
    notes = [f"{len(groups[s])} {s} ({', '.join(groups[s])})"
             for s in (Status.FAILED, Status.DIVERGED, Status.RANK_DEFICIENT) if s in groups]
    if not notes:
        return True, f"all {total} solvers ok"
    return Status.FAILED not in groups, f"{len(groups.get(Status.OK, []))} of {total} solvers ok; " + "; ".join(notes)


# The linreg-history table artifact: a row per run and solver, the columns worth a glance.
HISTORY_ARTIFACT_COLUMNS = ["run_id", "time", "n", "d", "noise", "seed", "solver", "status", "seconds", "epochs",
                            "error", "distance_to_closed_form", "mse", "r2", "device", "commit", "host",
                            "device_name"]
HISTORY_REPORT_RUNS = 30


def history_markdown(wide: pd.DataFrame, png: bytes | None, root) -> str:
    """The linreg-history-report: the plot, then the last runs' seconds and errors per solver.

    Args:
        wide: `linreg.results.history_table` of the history (a row per run).
        png: the history plot, or None when there is no run.
    """
    parts = [f"# linreg history under `{root}`"]
    if wide.empty:
        return "\n\n".join(parts + [f"No finished run under `{root}/runs`."]) + "\n"
    parts.append(f"{len(wide)} runs; runs on the same data (the same sha256) together, oldest first. Per solver: seconds of the fit / the largest absolute error of "
                 "bias and weights against the truth (or the status of a fit that did not end ok).")
    if png is not None:
        parts.append(f"![history]({png_data_uri(png)})")
    shown = wide[wide["run_id"].isin(wide.sort_values("time", kind="stable")["run_id"].tail(HISTORY_REPORT_RUNS))]
    if len(shown) < len(wide):
        parts.append(f"The last {len(shown)} runs:")
    parts.append(markdown_table(*_history_cells(shown)))
    return "\n\n".join(parts) + "\n"


# --- A sweep's report --------------------------------------------------------------------------------

def sweep_markdown(sweep_id: str, frame: pd.DataFrame, crossover: pd.DataFrame, images: dict[str, bytes]) -> str:
    """The sweep's markdown report: counts, the crossover table, the plots and the cells not run.

    Args:
        frame: the sweep's rows (`linreg.sweep.results_frame`).
        crossover: `linreg.sweep.crossover_table(frame)`.
        images: title -> PNG bytes, embedded as data URIs.
    """
    counts = count_statuses(frame)
    lines = [f"# linreg sweep {sweep_id}", "",
             f"{len(frame)} cells: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + ".", "",
             "## Crossover: where CUDA beats the CPU", "", sweep_table(frame_rows(crossover)), ""]
    for title, png in images.items():
        lines += [f"## {title}", "", f"![{title}]({png_data_uri(png)})", ""]
    not_run = frame[frame["status"].isin(["skipped", "failed"])]
    if len(not_run):
        reasons = not_run.groupby(["status", "reason"]).size().reset_index(name="cells")
        lines += ["## Cells not run", "", sweep_table(frame_rows(reasons))]
    return "\n".join(lines)
