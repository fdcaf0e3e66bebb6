"""The benchmark harness and the GPU check, run on tiny sizes so that they cannot rot.

Both run as subprocesses, as `make bench` and `make gpu-check` run them (their
thread settings and BLAS limits then stay out of this process).
"""

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from procs import run_logged

from bench.harness import SECTIONS
from linreg.solvers import SOLVERS

ROOT = Path(__file__).resolve().parents[1]

# Above QUICK_TIMEOUT, so that run()'s message, not pytest's, reports a hang.
pytestmark = [pytest.mark.bench, pytest.mark.timeout(1800)]
# Every section but "load", which starts a server stack of its own: the burst of
# tests/test_server_faults.py, on the stack those tests share, checks its row (`bench.load.load_row`).
QUICK_SECTIONS = [name for name in SECTIONS if name != "load"]
# The quick bench takes about 5 minutes on two quiet cores; on a loaded machine (CI beside two
# busy loops, the other xdist workers) it took over 9 (issue 18): a bound on a hang, not a budget.
QUICK_TIMEOUT = 1500


def run(*args: str, env: dict | None = None, timeout: int = QUICK_TIMEOUT) -> subprocess.CompletedProcess:
    """Run Python with `args` in a session of its own, output through files (never pipes a stray
    grandchild could hold open); on `timeout`, shorter than pytest's, fail saying what hung."""
    logs = Path(tempfile.mkdtemp(prefix="linreg-bench-test-"))
    # Without the API of the flow tests (conftest's prefect_server), whether or not it ran first:
    # the bench starts its own, as `make bench` does.
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return run_logged([sys.executable, *args], logs, f"python {' '.join(args)}", timeout=timeout,
                      cwd=ROOT, env={**base, **(env or {})})


@pytest.fixture(scope="session")  # not module: it takes minutes, and must run once whatever the order
def quick_bench(tmp_path_factory):
    """latest.json and latest.md of `python -m bench --quick`, every section."""
    out = tmp_path_factory.mktemp("bench")
    done = run("-m", "bench", "--quick", "--sections", ",".join(QUICK_SECTIONS), "--out", str(out))
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


def data_bytes(r) -> int:
    """Bytes of x and y as float64 arrays: what the closed form and the decode floor read."""
    return r["n"] * (r["d"] + 1) * 8


def test_every_row_has_measured_and_consistent_times(quick_bench):
    report, _ = quick_bench
    assert list(report["sections"]) == QUICK_SECTIONS
    assert 0 < sum(s["seconds"] for s in report["sections"].values()) <= report["seconds"]
    for section in report["sections"].values():
        for r in section["rows"]:
            # Medians of calls timed inside the section: never longer than it.
            assert 0 < r["ours_s"] <= section["seconds"], r
            # A baseline is a measurement, a bound derived from some, or a budget (history's): no
            # relation to the section's own seconds holds for all three, and budgets belong to the bench.
            assert 0 < r["baseline_s"] and math.isfinite(r["baseline_s"]), r
            assert math.isfinite(r["speedup"]) and r["speedup"] == pytest.approx(r["baseline_s"] / r["ours_s"]), r
            if "wall_s" in r["extra"]:  # the individual timings behind the median
                assert len(r["extra"]["wall_s"]) == r["reps"], r
                assert statistics.median(r["extra"]["wall_s"]) == pytest.approx(r["ours_s"]), r
            if "fit_seconds" in r["extra"]:  # a scale row: the fit is part of the timed open + fit
                assert 0 < r["extra"]["fit_seconds"] <= r["ours_s"], r


def test_throughputs_are_the_bytes_read_over_the_time_taken(quick_bench):
    report, _ = quick_bench
    gb_rows = [r for r in rows(report) if "ours_GBps" in r["extra"]]
    assert {r["section"] for r in gb_rows} == {"closed_form", "scale"}
    for r in gb_rows:
        extra = r["extra"]
        assert extra["ours_GBps"] == pytest.approx(data_bytes(r) / r["ours_s"] / 1e9), r
        if "floor_GBps" in extra:
            assert extra["floor_GBps"] == pytest.approx(data_bytes(r) / r["baseline_s"] / 1e9), r
            assert extra["fraction"] == pytest.approx(extra["ours_GBps"] / extra["floor_GBps"]), r


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
    assert cases == ["`linreg run`, embedded default (temporary API)", "`linreg run`, an already running server",
                     "training of the default run (`linreg run`, embedded)"]
    for r in rows(report, "prefect_overhead")[:2]:
        walls, computes = r["extra"]["wall_s"], r["extra"]["task_compute_s"]
        assert len(computes) == len(walls) == r["reps"], r
        # The solvers' own seconds are part of each run's wall time (run by run); the rest is the overhead.
        assert all(0 < compute < wall for compute, wall in zip(computes, walls)), r
        median_compute = sorted(computes)[len(computes) // 2]
        assert "overhead" in r["note"] and f"{r['ours_s'] - median_compute:.2f} s" in r["note"], r


def test_every_runner_gives_the_same_fits_as_threads(quick_bench):
    report, _ = quick_bench
    runners = [r for r in rows(report, "runners") if "same fits as threads" in r["checks"]]
    assert {r["case"].split(":")[0] for r in runners} == {"threads", "processes", "dask"}
    assert all(r["checks"]["same fits as threads"] for r in runners)


def test_the_default_runs_training_is_measured_against_its_bound(quick_bench):
    report, _ = quick_bench
    cores = os.sched_getaffinity(0).__len__()
    on_server = {r["case"]: r for r in rows(report, "runners") if r["case"].startswith("training subflow")}
    assert set(on_server) == {"training subflow, default runner, on a running server",
                              "training subflow, a thread per solver, on a running server"}
    (embedded,) = [r for r in rows(report, "prefect_overhead") if r["case"].startswith("training of")]
    for row in (embedded, *on_server.values()):
        fits = row["extra"]["standalone_fit_s"]
        assert set(fits) == set(SOLVERS)
        # The bound two cores allow, from the standalone fits timed in turn with the runs.
        assert row["baseline_s"] == pytest.approx(max(max(fits.values()), sum(fits.values()) / cores))
    # The training the runs report is part of their wall time, and above what the fits alone took.
    walls = rows(report, "prefect_overhead")[0]["extra"]["wall_s"]
    assert len(embedded["extra"]["training_s"]) == len(walls)
    assert all(training < wall for training, wall in zip(embedded["extra"]["training_s"], walls))
    assert embedded["target"] == pytest.approx(1 / 1.25)
    assert embedded["met"] == (embedded["speedup"] >= 1 / 1.25)


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
    done = run("bench/gpu_check.py", "--device", "cpu", "--quick", "--out", str(tmp_path), timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    torch_solvers = {name for name, info in SOLVERS.items() if info.uses_torch}
    assert {r["solver"] for r in report["agreement"]} == torch_solvers
    assert all(r["agrees"] and r["max_abs_difference"] <= r["tolerance"] for r in report["agreement"])
    for r in report["agreement"]:
        assert 0 < r["cpu_seconds"] <= report["seconds"] and 0 < r["device_seconds"] <= report["seconds"], r
    assert {r["solver"] for r in report["throughput"]} == torch_solvers - {"torch_dataloader"}
    for r in report["throughput"]:
        assert r["status"] == "ok" and (r["n"], r["epochs"]) == (20_000, 5), r  # --quick's sizes
        assert 0 < r["seconds"] <= report["seconds"], r
        assert r["epoch_ms"] == pytest.approx(1e3 * r["seconds"] / r["epochs"]), r
        # float32 x and y, read once per epoch
        assert r["GBps"] == pytest.approx(r["n"] * 2 * 4 * r["epochs"] / r["seconds"] / 1e9), r
        assert r["fraction_of_copy_bandwidth"] == pytest.approx(r["GBps"] / report["card"]["copy_GBps"]), r
