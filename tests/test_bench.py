"""The benchmark harness and the GPU check, run on tiny sizes so that they cannot rot.

Both run as subprocesses, as `make bench` and `make gpu-check` run them (their
thread settings and BLAS limits then stay out of this process).
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.harness import SECTIONS
from linreg.solvers import SOLVERS

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.bench


def run(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run Python with `args`; output goes through files, not pipes, so that a stray
    grandchild holding them open can never keep this waiting."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, stdout=out, stderr=err, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    """latest.json and latest.md of `python -m bench --quick`, every section."""
    out = tmp_path_factory.mktemp("bench")
    done = run("-m", "bench", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((out / "latest.json").read_text()), (out / "latest.md").read_text()


def rows(report, section=None):
    return [r for name, s in report["sections"].items() if section in (None, name) for r in s["rows"]]


def test_every_iterative_solver_is_timed_against_a_tutorial_loop(quick_bench):
    report, _ = quick_bench
    pairs = {(r["case"], r["baseline"]) for r in rows(report, "solvers")}
    assert {case for case, _ in pairs} == {name for name, info in SOLVERS.items() if info.iterative}
    assert all(baseline.startswith("tutorial") for _, baseline in pairs)
    assert {("numpy_sgd", "tutorial DataLoader loop"), ("torch_dataloader", "tutorial DataLoader loop")} <= pairs


def test_every_row_has_finite_times_and_ratios(quick_bench):
    report, _ = quick_bench
    assert set(report["sections"]) == set(SECTIONS)
    for r in rows(report):
        assert r["ours_s"] > 0 and r["baseline_s"] > 0, r
        assert math.isfinite(r["speedup"]) and r["speedup"] > 0, r


def test_answers_agree_within_their_tolerance(quick_bench):
    report, _ = quick_bench
    checked = [r for r in rows(report) if r["tolerance"] is not None]
    assert {r["case"] for r in rows(report, "solvers")} <= {r["case"] for r in checked}
    for r in checked:
        assert r["agreement"] <= r["tolerance"], r
        assert r["agrees"] is True


def test_closed_form_is_measured_against_sklearn_and_the_floor(quick_bench):
    report, _ = quick_bench
    closed = rows(report, "closed_form")
    assert {(r["d"], r["baseline"]) for r in closed if "scikit-learn" in r["baseline"]} == {
        (1, "scikit-learn LinearRegression"), (10, "scikit-learn LinearRegression")
    }
    floors = [r for r in closed if r["baseline"].startswith("one NumPy pass")]
    assert floors and all(0 < r["extra"]["fraction"] == pytest.approx(r["speedup"]) for r in floors)


def test_markdown_names_the_machine_and_has_a_line_per_row(quick_bench):
    report, markdown = quick_bench
    assert report["machine"]["cpu"] in markdown and report["date"][:10] in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| section")]
    assert len(table) == len(rows(report))


def test_prefect_overhead_is_measured_on_both_apis(quick_bench):
    report, _ = quick_bench
    cases = [r["case"] for r in rows(report, "prefect_overhead")]
    assert cases == ["`linreg run`, embedded default (temporary API)", "`linreg run`, an already running server"]
    assert all(r["ours_s"] > 0 and "overhead" in r["note"] for r in rows(report, "prefect_overhead"))


def test_every_runner_gives_the_same_fits_as_threads(quick_bench):
    report, _ = quick_bench
    runners = rows(report, "runners")
    assert {r["case"].split(":")[0] for r in runners} == {"threads", "processes", "dask"}
    assert all(r["checks"]["same fits as threads"] for r in runners)


def test_an_unknown_section_is_refused():
    done = run("-m", "bench", "--sections", "solvers,nope", timeout=120)
    assert done.returncode == 2
    assert "--sections: unknown nope" in done.stderr


def test_gpu_check_without_cuda_skips_cleanly(tmp_path):
    done = run("bench/gpu_check.py", "--out", str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gpu-check skipped: no CUDA" in done.stdout
    assert not (tmp_path / "gpu.json").exists()


def test_gpu_check_dry_run_on_cpu_checks_every_torch_solver(tmp_path):
    done = run("bench/gpu_check.py", "--device", "cpu", "--quick", "--out", str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    torch_solvers = {name for name, info in SOLVERS.items() if info.uses_torch}
    assert {r["solver"] for r in report["agreement"]} == torch_solvers
    assert all(r["agrees"] and r["max_abs_difference"] <= r["tolerance"] for r in report["agreement"])
    assert all(r["GBps"] > 0 and r["status"] == "ok" for r in report["throughput"])
