"""Prefect tasks: thin wrappers that call linreg and add orchestration concerns."""
