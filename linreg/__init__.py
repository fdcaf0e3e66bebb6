"""linreg: linear regression fitted seven ways, as a pure library (no orchestration here)."""

__version__ = "0.1.0"
