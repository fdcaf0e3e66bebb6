"""Where CUDA starts to beat the CPU, read from a sweep's results frame."""

import numpy as np

NEVER = "never in range"


def timing_table(frame):
    """Median, min and max seconds over seeds and hyperparameters, per (solver, d, n, device kind)."""
    ran = frame[frame["status"].isin(["ok", "diverged"])].copy()
    ran["kind"] = np.where(ran["device"].str.startswith("cuda"), "cuda", "cpu")
    grouped = ran.groupby(["solver", "d", "n", "kind"])["seconds"]
    return grouped.agg(median="median", low="min", high="max", count="count").reset_index()


def crossover_table(frame):
    """For each (solver, d): the smallest n from which CUDA beats the CPU at every larger n of the grid.

    Compared on median seconds over seeds and hyperparameters, at the sizes
    where both devices ran. "never in range" when CUDA loses at the largest
    size; "no CUDA rows" (or "no CPU rows") when one side never ran.

    Returns:
        DataFrame: solver, d, crossover_n (None when never), crossover_elements (n·d),
        cpu_s and cuda_s at the largest n, verdict.
    """
    import pandas as pd  # deferred: the grid and its specs load without pandas

    table = timing_table(frame)
    rows = []
    for (solver, d), group in table.groupby(["solver", "d"], sort=False):
        wide = group.pivot(index="n", columns="kind", values="median").sort_index()
        row = {"solver": solver, "d": int(d), "crossover_n": None, "crossover_elements": None,
               "cpu_s": None, "cuda_s": None}
        missing = [kind for kind in ("cpu", "cuda") if kind not in wide or wide[kind].isna().all()]
        if missing:
            rows.append({**row, "verdict": f"no {missing[0].upper() if missing[0] == 'cpu' else 'CUDA'} rows"})
            continue
        both = wide.dropna(subset=["cpu", "cuda"])
        wins = (both["cuda"] < both["cpu"]).to_numpy()
        row.update(cpu_s=float(both["cpu"].iloc[-1]), cuda_s=float(both["cuda"].iloc[-1]))
        if not wins[-1]:
            rows.append({**row, "verdict": NEVER})
            continue
        first = len(wins) - int(np.argmin(wins[::-1])) if not wins.all() else 0  # start of the final run of wins
        n = int(both.index[first])
        verdict = f"CUDA faster from n = {n:,}" + (" (the smallest n swept)" if first == 0 else "")
        rows.append({**row, "crossover_n": n, "crossover_elements": n * int(d), "verdict": verdict})
    table = pd.DataFrame(rows, columns=["solver", "d", "crossover_n", "crossover_elements", "cpu_s", "cuda_s",
                                        "verdict"])
    return table.astype({"crossover_n": "Int64", "crossover_elements": "Int64", "cpu_s": float, "cuda_s": float})
