"""The benchmark harness: a registry of sections, interleaved timing, and the result files.

A section is a module with `run(config) -> list[Row]`, listed once in SECTIONS.
Each row times one contender of ours against a baseline, both run in this
process on the same data, in turn (A B A B ...), so that a noisy machine slows
both alike; it reports medians, their ratio and how far the two answers differ.

Usage: python -m bench [--quick] [--sections a,b] [--out DIR]
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

from linreg.provenance import cpu_model

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class SectionInfo:
    """A registered section: the module holding its `run(config)`, and what it measures."""

    module: str
    about: str


# Sections run in this order. To add one, write bench/<name>.py with
# `run(config) -> list[Row]` and add one line here.
SECTIONS: dict[str, SectionInfo] = {
    "solvers": SectionInfo("bench.solvers", "each solver against the tutorial's own loop for its variant"),
    "closed_form": SectionInfo("bench.closed_form", "closed form vs scikit-learn and a memory-bandwidth floor"),
    "prefect_overhead": SectionInfo("bench.prefect_overhead", "`linreg run` on the embedded API and on a running server"),
    "runners": SectionInfo("bench.runners", "threads vs processes vs a 2-worker Dask LocalCluster; "
                                            "the default run's training vs max(longest fit, sum / cores)"),
    "scale": SectionInfo("bench.scale", "time and peak RSS per solver for n = 1e6, 1e7, 1e8; streaming GB/s"),
    "ingest": SectionInfo("bench.ingest", "a 1e7-row CSV through ingest_table vs pandas.read_csv(engine=pyarrow): "
                                          "time (target <= 1.25x) and peak RSS (target <= 1 GiB)"),
    "history": SectionInfo("bench.history", "the run history of 1,000 run folders as one DataFrame (target < 2 s)"),
    "sweep": SectionInfo("bench.sweep", "`linreg sweep` of 8 solvers x 8 learning rates vs the same fits in a plain loop"),
    "load": SectionInfo("bench.load", "20 deployment runs at once on `make server` (2 workers), SQLite vs PostgreSQL"),
}


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and repetitions; `quick` shrinks everything for the smoke test."""

    quick: bool = False
    seed: int = 42

    @property
    def reps(self) -> int:
        """Timed rounds for contenders that take seconds."""
        return 1 if self.quick else 3

    @property
    def fast_reps(self) -> int:
        """Timed rounds for contenders that take a fraction of a second."""
        return 2 if self.quick else 15

    @property
    def epochs(self) -> int | None:
        """Epochs for iterative solvers: None keeps each solver's (the tutorial's) own."""
        return 20 if self.quick else None


@dataclass
class Row:
    """One comparison: ours against a baseline, medians over interleaved runs.

    Attributes:
        speedup: baseline median / ours median (> 1: ours is faster).
        agreement: max absolute difference between the two fitted parameter
            vectors (bias first); None where the two compute different things.
        tolerance: the agreement expected; `agrees` says whether it holds.
        target: the speed-up asked for, if any; `met` whether the medians reach
            it, the answers agree (where a tolerance is set) and every check holds.
        checks: further conditions of the target, by name (e.g. distance to the closed form).
    """

    section: str
    case: str
    baseline: str
    n: int
    d: int
    reps: int
    ours_s: float
    baseline_s: float
    agreement: float | None = None
    tolerance: float | None = None
    target: float | None = None
    note: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.baseline_s / self.ours_s if self.ours_s > 0 else math.inf

    @property
    def agrees(self) -> bool | None:
        if self.tolerance is None or self.agreement is None:
            return None
        return bool(self.agreement <= self.tolerance)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return bool(self.speedup >= self.target and self.agrees is not False and all(self.checks.values()))

    def to_json(self) -> dict:
        return {**asdict(self), "speedup": self.speedup, "agrees": self.agrees, "met": self.met}


@dataclass
class Timing:
    """Wall seconds of each timed call, and what the last call returned."""

    seconds: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def interleave(contenders: dict[str, Callable[[], Any]], reps: int, warmup: int = 1) -> dict[str, Timing]:
    """Time each contender `reps` times, taking turns (A B A B ...), after `warmup` untimed turns.

    Returns:
        Timing per contender name.
    """
    timings = {name: Timing() for name in contenders}
    for round_ in range(warmup + reps):
        for name, run in contenders.items():
            start = time.perf_counter()
            result = run()
            elapsed = time.perf_counter() - start
            timings[name].result = result
            if round_ >= warmup:
                timings[name].seconds.append(elapsed)
    return timings


def max_abs_difference(a, b) -> float:
    """Largest absolute difference between two parameter vectors."""
    import numpy as np

    return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))


def machine_info() -> dict:
    """What the numbers were measured on: CPU, cores, load, library versions, BLAS and threads."""
    import numpy
    import torch

    info = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: pool.get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"
        ]
    except ImportError:  # the bench extra is not installed: the closed-form section will say so
        info["blas"] = None
    return info


def run_sections(names: list[str], config: BenchConfig) -> dict:
    """Run the named sections in registry order and return the report (what latest.json holds)."""
    started = time.perf_counter()
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": config.quick,
        "machine": machine_info(),
        "sections": {},
    }
    for name in [n for n in SECTIONS if n in names]:
        section_start = time.perf_counter()
        print(f"bench: {name}: {SECTIONS[name].about}", file=sys.stderr, flush=True)
        rows = import_module(SECTIONS[name].module).run(config)
        report["sections"][name] = {
            "about": SECTIONS[name].about,
            "seconds": time.perf_counter() - section_start,
            "rows": [row.to_json() for row in rows],
        }
    report["seconds"] = time.perf_counter() - started
    return report


def _fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_number(x) -> str:
    if x is None:
        return "–"
    return f"{x:.1e}" if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4) else f"{x:.3g}"


def render_markdown(report: dict) -> str:
    """The report as markdown: a header naming date and machine, then one table of every row."""
    m = report["machine"]
    blas = ", ".join(f"{b['internal_api']} {b['architecture']} ({b['num_threads']} threads)" for b in m["blas"] or [])
    lines = [
        f"Measured {report['date'][:10]} on {m['cpu']}, {m['cores']} cores, load average "
        f"{m['load_average'][0]:.1f}; Python {m['python']}, NumPy {m['numpy']}, torch {m['torch']}"
        + (f", BLAS {blas}" if blas else "") + f". `make bench` took {report['seconds'] / 60:.1f} min.",
        "",
        "| section | ours | baseline | n × d | ours (median) | baseline (median) | speed-up | target "
        "| agreement (tolerance) | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for section in report["sections"].values():
        for r in section["rows"]:
            target = f"≥ {r['target']:g}×" if r["target"] is not None else "–"
            agreement = _fmt_number(r["agreement"])
            if r["tolerance"] is not None:
                agreement += f" (≤ {_fmt_number(r['tolerance'])})"
            met = {True: "yes", False: "**no**", None: "–"}[r["met"]]
            lines.append(
                f"| {r['section']} | {r['case']} | {r['baseline']} | {r['n']:,} × {r['d']} "
                f"| {_fmt_seconds(r['ours_s'])} | {_fmt_seconds(r['baseline_s'])} | {r['speedup']:.2f}× "
                f"| {target} | {agreement} | {met} |"
            )
    notes = [f"- {r['case']} vs {r['baseline']}: {r['note']}" for s in report["sections"].values()
             for r in s["rows"] if r["note"]]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def write_results(report: dict, out: Path) -> tuple[Path, Path]:
    """Write latest.json and latest.md under `out`, each through a temporary file and a rename."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "latest.json", out / "latest.md"
    for path, text in zip(paths, (json.dumps(report, indent=2) + "\n", render_markdown(report))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths


README = Path(__file__).with_name("README.md")
MARKER = "<!-- generated by make bench: do not edit below -->"


def regenerate_readme(results: Path = RESULTS, readme: Path = README) -> None:
    """Replace everything below MARKER in bench/README.md with the result files: the tables
    are never pasted by hand, so they cannot go stale."""
    parts = [(results / name).read_text() for name in ("latest.md", "scale.md") if (results / name).exists()]
    text = readme.read_text()
    head = text[: text.index(MARKER) + len(MARKER)]
    readme.write_text(head + "\n\n" + "\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the smoke test's run")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and latest.md")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        parser.error(f"--sections: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(SECTIONS)}")
    report = run_sections(names, BenchConfig(quick=args.quick))
    json_path, md_path = write_results(report, args.out)
    if args.out.resolve() == RESULTS.resolve() and not args.quick and set(names) == set(SECTIONS):
        regenerate_readme()
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0
