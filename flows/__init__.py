"""Prefect flows and the `linreg` command line."""
