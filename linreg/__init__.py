"""linreg: linear regression fitted eight ways, as a pure library (no orchestration here)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("linreg")  # one place: pyproject.toml
except PackageNotFoundError:  # run from a tree that was never installed (the GPU machine)
    __version__ = "unknown"
