"""Twenty deployment runs at once against the stack of `make server` (two workers), on each database.

The stack is scripts/server.sh's, with its defaults (workers, work-pool limit), in a
temporary PREFECT_HOME on a free loopback port (bench.load.server_stack); the same
burst is `make bench`'s section "load". About 3 minutes per database on two cores.
"""

import pytest

from bench.load import burst, describe

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RUNS = 20
WAIT = 600  # from the trigger to the last final state; about 2-3 minutes here


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_twenty_runs_at_once_all_complete(db):
    # A creation the server refuses under load (SQLite's 503 "database is locked", past the
    # client's retries; more likely on a busy machine) is pressed again, as a user would:
    # the runs created must all complete, whatever the load.
    figures = burst(db, RUNS, timeout=WAIT, resubmit=True)
    print(describe(figures))
    assert figures["states"] == {"Completed": RUNS}, describe(figures)
    assert not figures["problems"], figures["problems"]  # each: Completed, its own artifacts, its own folder
    assert figures["run_ids_distinct"], "two runs share a run id"
    assert figures["retried_errors"]["submission failed"] == 0, describe(figures)
