"""Solvers: one signature, `fit(data, spec) -> FitResult`, one registry."""

from linreg.solvers.base import DIVERGED, FAILED, OK, FitResult
from linreg.solvers.registry import SOLVERS, SolverInfo

__all__ = ["SOLVERS", "SolverInfo", "FitResult", "OK", "DIVERGED", "FAILED"]
