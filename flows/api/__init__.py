"""The Prefect API a command uses, in three jobs, one module each.

- `choose`: which API a command reports to (`PREFECT_API_URL`, `make server`, `linreg ui`,
  else a temporary one), and whether an API answers;
- `process`: the local API processes a command starts and always stops (`TemporaryAPI`,
  `UIServer`), and the queued logs and events flushed before one stops;
- `lock`: `HomeLock`, one writer per PREFECT_HOME's SQLite database.

Nothing here imports Prefect at module level: the CLI imports these before Prefect loads.
"""
