"""The closed form against NIST StRD's certified values: correct digits (LRE) in memory, streamed, on the device.

    python -m bench.accuracy            # writes docs/accuracy.md and bench/results/accuracy.json

Each of the eleven linear-regression datasets (vendored with their source in
tests/data/strd/) is fitted by `closed_form`:
- in memory;
- streamed: replicated to at least 1e6 rows (the least-squares solution is
  unchanged), written as parquet in row groups of 65,536, read under a 1-byte
  memory budget so that every row group is streamed;
- on the device path: on CUDA when this machine has it, else the same code with
  the device moments run on the CPU (a dry run, said so in the table).
LRE = −log10(|estimate − certified| / |certified|), capped at 15; the table shows the
fewest over the coefficients (and over their standard errors).
"""

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from linreg.data import Dataset
from linreg.solvers import SOLVERS, closed_form
from linreg.specs import DataSpec
from linreg.storage import open_dataset, write_dataset_chunks

ROOT = Path(__file__).resolve().parent.parent
STREAM_ROWS = 1_000_000
ROW_GROUP = 65_536
# What other tools reach on the same files (issue 19's measurements and the published certifications).
ANCHORS = {
    "Filip": "numpy lstsq 0.0; sklearn 0.0; float64 QR 7.4–8.0; gretl refuses; R lm drops a coefficient",
    "Wampler5": "numpy lstsq 5.8; sklearn 0.2; float64 QR 5.6–5.8",
    "Wampler1": "numpy lstsq 7.8–9.6; sklearn 0.2; float64 QR 7.6–10.0",
    "Wampler3": "numpy lstsq 7.8–9.6; sklearn 0.2; float64 QR 7.6–10.0",
    "Wampler4": "numpy lstsq 7.8–9.6; sklearn 0.2; float64 QR 7.6–10.0",
    "Wampler2": "numpy lstsq 10.4; sklearn −0.5; float64 QR 12.6–13.0",
}


def _strd():
    """tests/strd.py, the parser of the vendored files (a test helper, loaded by path)."""
    spec = importlib.util.spec_from_file_location("strd", ROOT / "tests" / "strd.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["strd"] = module
    spec.loader.exec_module(module)
    return module


def _fit(data, case, device: str = "cpu"):
    info = SOLVERS["closed_form"]
    return info.fit(data, info.defaults.model_copy(update={"fit_intercept": case.intercept, "device": device}))


def _spec(case, n: int) -> DataSpec:
    return DataSpec(n=n, weights=[0.0] * case.d, bias=0.0, noise=0.0, seed=0)


def _coefficient_lre(strd, fit, case) -> float:
    est = np.concatenate([[fit.intercept], fit.coef]) if case.intercept else fit.coef
    cert = np.concatenate([[case.intercept_value], case.coef]) if case.intercept else case.coef
    return float(np.min(strd.lre(est, cert)))


def _streamed(strd, case, folder: Path):
    copies = -(-STREAM_ROWS // case.n)
    x, y = np.tile(case.x, (copies, 1)), np.tile(case.y, copies)
    chunks = ((x[i : i + ROW_GROUP], y[i : i + ROW_GROUP]) for i in range(0, len(y), ROW_GROUP))
    ref = write_dataset_chunks(_spec(case, len(y)), chunks, folder / f"{case.name}.parquet")
    return _fit(open_dataset(ref, memory_budget=1), case)


def _device_fit(case, device: str | None):
    """On `device` when given; otherwise the CUDA branch with its moments dry-run on the CPU."""
    data = Dataset(x=case.x, y=case.y, spec=_spec(case, case.n))
    if device is not None:
        return _fit(data, case, device)
    real = closed_form.moments_on_device
    closed_form.moments_on_device = lambda x, y, device: real(x, y, "cpu")
    try:
        return _fit(data, case, "cuda:0")
    finally:
        closed_form.moments_on_device = real


def dataset_row(strd, name: str, folder: Path, device: str | None) -> dict:
    """One dataset's LREs and diagnostics."""
    case = strd.load(name)
    fit = _fit(Dataset(x=case.x, y=case.y, spec=_spec(case, case.n)), case)
    solution = fit.least_squares
    se = np.concatenate([[solution.intercept_se], solution.coef_se]) if case.intercept else solution.coef_se
    cert_se = np.concatenate([[case.intercept_sd], case.coef_sd]) if case.intercept else case.coef_sd
    return {
        "dataset": name, "level": case.level, "n": case.n, "parameters": case.d + int(case.intercept),
        "status": str(fit.status), "method": solution.method,
        "lre_in_memory": _coefficient_lre(strd, fit, case),
        "lre_streamed": _coefficient_lre(strd, _streamed(strd, case, folder), case),
        "lre_device": _coefficient_lre(strd, _device_fit(case, device), case),
        "lre_std_errors": float(np.min(strd.lre(se, cert_se))),
        "lre_residual_sd": float(strd.lre(solution.residual_sd, case.residual_sd)),
        "lre_r_squared": float(strd.lre(solution.r_squared, case.r_squared)),
        "condition_number": solution.condition_number,
        "condition_number_centred": solution.condition_number_centred,
        "expected_digits": solution.expected_digits,
        "warning": solution.warning,
    }


def markdown(rows: list[dict], device_label: str) -> str:
    head = ["dataset", "difficulty", "method", "in memory", "streamed (≥1e6 rows)", f"device ({device_label})",
            "std errors", "residual SD", "R²", "cond (scaled, with 1)", "cond (centred)", "promised digits",
            "others (anchors)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        centred = "—" if r["condition_number_centred"] is None else f"{r['condition_number_centred']:.3g}"
        lines.append("| " + " | ".join([
            r["dataset"], r["level"] or "", r["method"], f"{r['lre_in_memory']:.1f}", f"{r['lre_streamed']:.1f}",
            f"{r['lre_device']:.1f}", f"{r['lre_std_errors']:.1f}", f"{r['lre_residual_sd']:.1f}",
            f"{r['lre_r_squared']:.1f}", f"{r['condition_number']:.3g}", centred, f"{int(r['expected_digits'])}",
            ANCHORS.get(r["dataset"], ""),
        ]) + " |")
    return "\n".join(lines)


DOC_HEAD = """# Accuracy of the reference fit: NIST StRD

`closed_form` is what every other solver is measured against, so it must be right
to the digits the data allow, or say what it lost. These are its correct digits
(LRE, −log10 of the relative error, 15 = exact to NIST's printed digits) against
the certified values of the eleven NIST StRD linear-regression datasets
(tests/data/strd/, public domain). Regenerate with:

    .venv/bin/python -m bench.accuracy

Gates (tests/test_strd.py): every coefficient ≥ 9 digits, ≥ 7 on Filip and
Wampler5, in memory; within 1 digit of that streamed and on the device path;
standard errors, residual SD and R² ≥ 7.

How it works (`linreg/least_squares.py`): the moments are summed in one pass (on
CUDA in float64 when the fit runs there). When the correlation matrix's condition
number is at most 1e6, the normal equations are solved from them (the fast path,
~10+ digits); when only the RSS would cancel (a near-exact fit), it is summed from
the residuals in one more pass. Otherwise one more pass reduces the centred,
scaled [1, x, y] by a Householder QR in extended precision (x86 long double,
64-bit mantissa) per block of rows, the blocks' R factors merged in a binary tree
(TSQR), while a twin of the data, every value moved at random within float64's
rounding, is reduced beside it: the two solutions' difference measures the digits
the data determine. That pass runs on the CPU even when the moments were summed on
CUDA (CUDA has no type wider than float64); the device column shows that the
digits are the same. Where long double is no wider than float64 (Windows, macOS
on ARM), or the design is wider than 64 columns, the QR runs in float64 and
counts its own rounding at its worst.

"promised digits" is what the fit reports (`expected_digits`): on the QR path the
fewest of the twin's measurement and the first-order bound u·κ (the centred
design's κ for the slopes, the uncentred one's for the intercept); on the fast
path u·κ of the correlation matrix, and for the intercept that error amplified
by the means. It is an estimate: tests/test_strd.py checks that on every dataset,
with and without extended precision, it never exceeds the digits delivered by
more than half a digit. Below 9 the fit carries a warning naming the condition
number. A numerically rank-deficient design (a singular value below 1e-13 of the
largest, columns scaled) ends `rank_deficient`, with the minimum-norm solution in
standardised units and the columns involved named.

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="a CUDA device to fit on (default: cuda when available, else a CPU dry run)")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "accuracy.md"), help="the markdown file to write")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "accuracy.json"))
    args = parser.parse_args(argv)
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else None
    strd = _strd()
    with tempfile.TemporaryDirectory(prefix="linreg-strd-") as folder:
        rows = [dataset_row(strd, name, Path(folder), device) for name in strd.NAMES]
    label = device or "dry run on the CPU"
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"device": label, "rows": rows}, indent=2))
    if args.doc:
        Path(args.doc).write_text(DOC_HEAD + markdown(rows, label) + "\n")
    print(markdown(rows, label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
