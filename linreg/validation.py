"""Pieces every configuration model shares: frozen models, finite floats, ranges with clear messages.

Ranges are declared with `range_check`, which puts them in the JSON schema of
any model (and so in a Prefect deployment's parameter form and the server's
parameter check), and refuses values with a message that names the interval.
"""

import math
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

MAX_N = 1_000_000_000
MAX_D = 1_000
MAX_SEED = 2**32 - 1
MAX_EPOCHS = 10_000_000
MAX_BATCH = 2**31 - 1


@dataclass(frozen=True)
class Range:
    """An interval check for `Annotated[...]` that also writes the interval into the JSON schema.

    Validation raises a PydanticCustomError naming the interval (pydantic's own
    `ge`/`le` wording names only one bound); the schema gets `minimum`,
    `exclusiveMinimum` and `maximum`, so a Prefect deployment's form and the
    server's parameter check (`enforce_parameter_schema`) refuse the same values.
    """

    lo: float
    hi: float | None = None
    lo_open: bool = False

    def check(self, value):
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError("finite", "must be a finite number, got {value}", {"value": value})
        too_low = value <= self.lo if self.lo_open else value < self.lo
        if too_low or (self.hi is not None and value > self.hi):
            left = "(" if self.lo_open else "["
            right = f"{self.hi}]" if self.hi is not None else "inf)"
            raise PydanticCustomError(
                "range", "must be in {interval}, got {value}",
                {"interval": f"{left}{self.lo}, {right}", "value": value},
            )
        return value

    def __get_pydantic_core_schema__(self, source, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        json_schema = handler(schema)
        json_schema["exclusiveMinimum" if self.lo_open else "minimum"] = self.lo
        if self.hi is not None:
            json_schema["maximum"] = self.hi
        return json_schema


def range_check(lo: float, hi: float | None = None, *, lo_open: bool = False) -> Range:
    """Values outside [lo, hi] (or (lo, hi] with `lo_open`) are refused, naming the interval."""
    return Range(lo, hi, lo_open)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError("finite", "must be a finite number, got {value}", {"value": value})
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


def _null_is_nan(value):
    return math.nan if value is None else value


# A reported number that may not exist: JSON has no NaN, so pydantic writes a non-finite float as
# null, and null reads back as NaN (a failed or diverged fit's summary.json then loads again).
ReportFloat = Annotated[float, BeforeValidator(_null_is_nan)]


class FrozenModel(BaseModel):
    """Immutable, and refuses fields it does not know."""

    model_config = ConfigDict(frozen=True, extra="forbid")
