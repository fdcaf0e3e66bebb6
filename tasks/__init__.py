"""Prefect tasks: each calls the library (linreg) and adds what Prefect needs: tags, retries,
artifacts, events and logs (no Prefect cache: the library names files by content); tasks/runners.py
chooses the task runner."""
