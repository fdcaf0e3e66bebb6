"""Pieces every configuration model shares: frozen models, finite floats, ranges with clear messages.

Ranges are declared with `Field(ge=..., le=..., gt=...)`, so they appear in
the JSON schema of any model (and so in a Prefect deployment's parameter
form); the messages below replace pydantic's default wording with one that
names the allowed interval.
"""

import math
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

MAX_N = 1_000_000_000
MAX_D = 1_000
MAX_SEED = 2**32 - 1
MAX_EPOCHS = 10_000_000
MAX_BATCH = 2**31 - 1


def range_check(lo: float, hi: float | None = None, *, lo_open: bool = False) -> AfterValidator:
    """A validator that refuses values outside [lo, hi] (or (lo, hi]), naming the interval."""

    def check(value):
        if value is None:  # an unset optional override
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError("finite", "must be a finite number, got {value}", {"value": value})
        too_low = value <= lo if lo_open else value < lo
        too_high = hi is not None and value > hi
        if too_low or too_high:
            left = "(" if lo_open else "["
            right = f"{hi}]" if hi is not None else "inf)"
            raise PydanticCustomError(
                "range", "must be in {interval}, got {value}",
                {"interval": f"{left}{lo}, {right}", "value": value},
            )
        return value

    return AfterValidator(check)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError("finite", "must be a finite number, got {value}", {"value": value})
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class FrozenModel(BaseModel):
    """Immutable, and refuses fields it does not know."""

    model_config = ConfigDict(frozen=True, extra="forbid")
