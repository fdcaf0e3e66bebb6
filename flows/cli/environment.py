"""The environment variables the CLI sets for Prefect: all of them, in one function."""

import os


def export_prefect_environment(api_url: str | None = None) -> None:
    """Set what Prefect reads from the environment, in this process and the ones it starts.

    Read by Prefect when it is first imported, which happens after the options are
    valid: the library's warnings reach the UI (PREFECT_LOGGING_EXTRA_LOGGERS), and
    those logged outside a flow stay on the console. A user's own values win.

    Args:
        api_url: the API this command reports to, once it is chosen. Exported so that
            Prefect, imported afterwards, and worker processes (`--runner processes`,
            a Dask LocalCluster) report to it instead of each starting a temporary API.
    """
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "linreg")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
