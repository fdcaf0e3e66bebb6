"""Benchmarks: `make bench` runs `python -m bench`; see bench/harness.py."""
