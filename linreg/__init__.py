"""linreg: linear regression fitted eight ways, as a pure library (no orchestration here)."""

__version__ = "0.1.0"
