"""Section "ingest": a user's CSV through `ingest_table`, against pandas only reading it.

A CSV of n = 1e7 rows, 10 features and a target (random floats, about 2.2 GB) is
written in chunks into a scratch folder, deleted at the end. Then, taking turns
(ours, pandas, ours, pandas, ...), each contender runs in a child process of its
own, so that its peak RSS is its own (VmHWM of /proc/self/status; see bench/scale.py
for why not getrusage), and reports through a file, not a pipe:

- ours: `linreg.storage.ingest_table(csv, "y", data_root=<fresh folder>)`, the whole
  ingest: sha256 of the CSV, one streamed read, every value checked, float64
  parquet written atomically;
- baseline: `pandas.read_csv(csv, engine="pyarrow")`, reading alone.

Each child times only the call (imports done before). Targets: ours at most 1.25x
pandas' time (speed-up >= 0.8) and our peak RSS at most 1 GiB; pandas' peak is
reported beside it. The first and last rows each side read must agree exactly.

Two files, two rows: "plain" (the numbers alone), and "notes", the same with a text
column `note` beside them (not a feature) whose values are quoted, one in ten over
two lines with a comma: the reader must track quotes to cut its blocks there.
Quick mode: 20,000 rows.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import BenchConfig, Row

D = 10
TIME_RATIO = 1.25  # ours may take at most this multiple of pandas' time
RSS_LIMIT = 1 << 30
CHILD_TIMEOUT_S = {False: 600, True: 120}  # by quick: under the smoke test's own timeout
GENERATE_ROWS = 1 << 18  # rows per generated chunk: about 60 MB of CSV text
COLUMNS = [*(f"x{j}" for j in range(D)), "y"]
SAMPLE_ROWS = 5  # first and last rows each child reports, to compare the two reads


def rows(config: BenchConfig) -> int:
    return 20_000 if config.quick else 10_000_000


CASES = {  # case: what the file holds beside the numbers
    "plain": "the numbers alone",
    "notes": "a quoted text column, 10% of its values over two lines",
}
# The baseline per case: pandas' pyarrow engine, where it can read the file. It does not
# set pyarrow's newlines_in_values, and refuses the notes file ("CSV parse error: Expected
# 12 columns, got 3"), so that file's baseline is pandas' default (C) engine.
BASELINES = {"plain": "pyarrow", "notes": "c"}
MULTI_LINE = "line one\nline two, after a comma"


def write_csv(path: Path, n: int, seed: int, notes: bool = False) -> int:
    """Write n rows of x0..x9 (then `note`, with `notes`), y = 1 + x @ w + noise as CSV in chunks;
    return the file's bytes."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    weights = np.linspace(-2.0, 2.0, D)
    names = [*COLUMNS[:-1], *(["note"] if notes else []), "y"]
    schema = pa.schema([(c, pa.string() if c == "note" else pa.float64()) for c in names])
    options = pacsv.WriteOptions(quoting_style="needed" if notes else "none")
    with pacsv.CSVWriter(path, schema, write_options=options) as writer:
        for start in range(0, n, GENERATE_ROWS):
            k = min(GENERATE_ROWS, n - start)
            x = rng.standard_normal((k, D))
            y = 1.0 + x @ weights + 0.5 * rng.standard_normal(k)
            text = [pa.array(np.where(np.arange(start, start + k) % 10 == 3, MULTI_LINE, "short note"))] if notes else []
            writer.write_table(pa.Table.from_arrays([*x.T, *text, y], schema=schema))
    return path.stat().st_size


def peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _ends(x: np.ndarray) -> list:
    return np.concatenate([x[:SAMPLE_ROWS], x[-SAMPLE_ROWS:]]).tolist()


def child_main(contender: str, csv: Path, root: Path, out: Path) -> None:
    """In the child: one timed call, then its seconds, peak RSS, rows and sample rows into `out`.

    `contender`: "ours", or "pandas-<engine>".
    """
    if contender == "ours":
        import pyarrow.parquet as pq

        from linreg.storage import ingest_table

        start = time.perf_counter()
        table = ingest_table(csv, "y", COLUMNS[:-1], data_root=root)
        seconds, peak = time.perf_counter() - start, peak_rss_bytes()
        reader = pq.ParquetFile(table.path)
        first = reader.read_row_group(0).to_pandas().to_numpy()
        last = reader.read_row_group(reader.num_row_groups - 1).to_pandas().to_numpy()
        values, n = np.concatenate([first[:SAMPLE_ROWS], last[-SAMPLE_ROWS:]]), table.rows
    else:
        import pandas as pd

        start = time.perf_counter()
        frame = pd.read_csv(csv, engine=contender.removeprefix("pandas-"))
        seconds, peak = time.perf_counter() - start, peak_rss_bytes()
        values, n = np.asarray(_ends(frame[COLUMNS].to_numpy())), len(frame)
    out.write_text(json.dumps({"seconds": seconds, "peak_rss_bytes": peak, "rows": n, "ends": values.tolist()}))


def run_child(contender: str, csv: Path, root: Path, scratch: Path, timeout: float) -> dict:
    """One contender in a fresh interpreter and session, output to files; its report."""
    out, log = scratch / f"{contender}.json", scratch / f"{contender}.log"
    out.unlink(missing_ok=True)
    with open(log, "w") as log_fh:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest", "--child", contender, str(csv), str(root), str(out)],
            stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            code = child.wait(timeout=timeout)
        finally:
            if child.poll() is None:  # timed out, or this process was interrupted: stop its whole group
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    if code != 0:
        raise RuntimeError(f"ingest bench child {contender} exited {code}: {log.read_text()[-2000:]}")
    return json.loads(out.read_text())


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so that the finally clauses stop the child and delete the 2 GB file


def run(config: BenchConfig) -> list[Row]:
    n, timeout = rows(config), CHILD_TIMEOUT_S[config.quick]
    scratch = Path(tempfile.mkdtemp(prefix="linreg-bench-ingest-"))
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    out = []
    try:
        for case in CASES:
            csv = scratch / f"{case}.csv"  # one file at a time: each is 2 GB or more
            csv_bytes = write_csv(csv, n, config.seed, notes=case == "notes")
            reports: dict[str, list[dict]] = {"ours": [], "pandas": []}
            for rep in range(config.reps):  # taking turns, so that a noisy machine slows both alike
                root = scratch / f"root-{rep}"  # a fresh data root: every rep converts, none reuses
                reports["ours"].append(run_child("ours", csv, root, scratch, timeout))
                shutil.rmtree(root)
                reports["pandas"].append(run_child(f"pandas-{BASELINES[case]}", csv, root, scratch, timeout))
            csv.unlink()
            out.append(summary_row(case, reports, n, csv_bytes, config))
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def summary_row(case: str, reports: dict[str, list[dict]], n: int, csv_bytes: int, config: BenchConfig) -> Row:
    ours, pandas = reports["ours"], reports["pandas"]
    ours_s, pandas_s = [r["seconds"] for r in ours], [r["seconds"] for r in pandas]
    ours_rss, pandas_rss = max(r["peak_rss_bytes"] for r in ours), max(r["peak_rss_bytes"] for r in pandas)
    agreement = max(float(np.max(np.abs(np.subtract(a["ends"], b["ends"])))) for a in ours for b in pandas)
    ours_median, pandas_median = float(np.median(ours_s)), float(np.median(pandas_s))
    return Row(
        section="ingest", case=f"ingest_table, {case} ({CASES[case]}): sha256, streamed read and checks, parquet written",
        baseline=f'pandas.read_csv(engine="{BASELINES[case]}"), reading only', n=n, d=D, reps=config.reps,
        ours_s=ours_median, baseline_s=pandas_median, agreement=agreement, tolerance=0.0,
        target=1 / TIME_RATIO,
        checks={"peak RSS <= 1 GiB": ours_rss <= RSS_LIMIT, "all rows read": all(r["rows"] == n for r in ours + pandas)},
        note=(f"a {csv_bytes / 1e9:.2f} GB CSV: ours {ours_median:.2f} s ({ours_median / pandas_median:.2f}x pandas' "
              f"time, target <= {TIME_RATIO}x), peak RSS {ours_rss / 2**20:.0f} MiB (target <= 1024 MiB); "
              f"pandas {pandas_median:.2f} s, peak RSS {pandas_rss / 2**20:.0f} MiB"),
        extra={"wall_s": ours_s, "baseline_wall_s": pandas_s, "csv_bytes": csv_bytes,
               "ours_peak_rss_bytes": ours_rss, "pandas_peak_rss_bytes": pandas_rss,
               "time_ratio": ours_median / pandas_median},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description="a child of the ingest section")
    parser.add_argument("--child", nargs=4, metavar=("CONTENDER", "CSV", "ROOT", "OUT"), required=True)
    contender, csv, root, out = parser.parse_args(argv).child
    child_main(contender, Path(csv), Path(root), Path(out))


if __name__ == "__main__":
    main()
    # The report is written: skip the interpreter's teardown, where native thread pools once
    # aborted a bench child on a loaded machine (see bench/scale.py).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
