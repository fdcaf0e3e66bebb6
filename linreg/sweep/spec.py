"""A sweep's spec: the grid's axes and where it runs, checked as a run's fields are (`linreg.specs`)."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from linreg.solvers.registry import SOLVERS
from linreg.specs import (
    DASK_ADDRESS_SCHEMA, BatchSize, Bias, Epochs, FileData, LearningRate, Noise, OutputDir, Rows, Seed,
    check_solver_names, dask_address_for, device_form,
)
from linreg.sweep.grid import expand_grid
from linreg.validation import MAX_D, MAX_EPOCHS, MAX_N, MAX_SEED, FrozenModel, range_check

MAX_VALUES = 64  # values per axis; a grid is their product
MAX_CELLS = 10_000

Features = Annotated[int, range_check(1, MAX_D)]  # a run's d is its weights' count; a sweep's is an axis


def _axis(description: str, default: list):
    return Field(default_factory=lambda: list(default), min_length=1 if default else 0, max_length=MAX_VALUES,
                 description=description)


class SweepSpec(FrozenModel):
    """A sweep's grid and where it runs. Every list is one axis of the grid."""

    n: list[Rows] = _axis(f"rows of each dataset, 1..{MAX_N}", [1000])
    d: list[Features] = _axis(f"features of each dataset, 1..{MAX_D}", [1])
    seeds: list[Seed] = _axis(f"data seeds, 0..{MAX_SEED}; repeated seeds give the spread", [42])
    solvers: list[str] = Field(default_factory=lambda: list(SOLVERS), min_length=1, description="solver names")
    devices: list[str] = Field(default_factory=lambda: ["cpu"], min_length=1, max_length=MAX_VALUES,
                               description="'cpu', 'cuda' or 'cuda:N'")
    lr: list[LearningRate] = _axis("learning rates, > 0; empty: each solver's own", [])
    epochs: list[Epochs] = _axis(f"epochs, 1..{MAX_EPOCHS}; empty: each solver's own", [])
    batch_size: BatchSize | None = Field(None, description="minibatch size")
    bias: Bias = Field(1.0, description="true intercept of every dataset")
    fit_intercept: bool = Field(True, description="fit y = b + x·w in every cell; False fits y = x·w (b = 0)")
    noise: Noise = Field(0.1, description="noise standard deviation, >= 0")
    runner: Literal["threads", "processes", "dask"] = Field("threads", description="task runner")
    dask_address: str | None = Field(None, description="tcp://host:port of a Dask scheduler; runner dask only",
                                     json_schema_extra=DASK_ADDRESS_SCHEMA)
    output_dir: OutputDir = Field(Path("data"), description="data root: datasets/ and sweeps/<sweep-id>/ go here")
    data: FileData | None = Field(None, description="a user's table instead of generated data (n, d, seeds, "
                                                    "noise and bias then stay unset)")
    scales: list[Literal["auto", "none", "standard"]] = Field(
        default_factory=lambda: ["auto"], min_length=1, max_length=3,
        description="an axis: iterative cells on standardised data (standard) or as given (none); "
                    "auto: standard for a table, none for generated data")

    @property
    def scalings(self) -> list[Literal["none", "standard"]]:
        """The scale axis with "auto" decided, each value once, in order."""
        auto = "standard" if self.data is not None else "none"
        return list(dict.fromkeys(auto if s == "auto" else s for s in self.scales))

    @field_validator("solvers")
    @classmethod
    def _known_solvers(cls, names: list[str]) -> list[str]:
        check_solver_names(names)
        return _no_duplicates(names, "solvers")

    @field_validator("devices")
    @classmethod
    def _device_forms(cls, devices: list[str]) -> list[str]:
        for device in devices:
            if device_form(device) == "auto":
                raise PydanticCustomError("device", "'auto' is no sweep axis; expected 'cpu', 'cuda' or 'cuda:N'")
        return _no_duplicates(devices, "device")

    @field_validator("n", "d", "seeds", "lr", "epochs", "scales")
    @classmethod
    def _distinct(cls, values: list, info) -> list:
        return _no_duplicates(values, info.field_name)

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, address: str | None, info: ValidationInfo) -> str | None:
        return dask_address_for(address, info.data.get("runner"))

    @model_validator(mode="after")
    def _whole_grid(self) -> "SweepSpec":
        generated = [name for name in GENERATED_AXES if name in self.model_fields_set]
        if self.data is not None and generated:
            raise PydanticCustomError(generated[0], "describes generated data and cannot be used with a file "
                                                    "(data); leave out {names}", {"names": ", ".join(generated)})
        if self.data is None and "standard" in self.scales:
            raise PydanticCustomError("scales", "'standard' is for a user's table (data); a generated grid keeps "
                                                "the tutorial's fits (none)", {})
        cells = len(expand_grid(self))
        if cells > MAX_CELLS:
            raise PydanticCustomError("grid", "the grid has {cells} cells; at most {most}",
                                      {"cells": cells, "most": MAX_CELLS})
        return self


GENERATED_AXES = ("n", "d", "seeds", "noise", "bias")


def _no_duplicates(values: list, field: str) -> list:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise PydanticCustomError(field, "duplicate value(s): {dupes}", {"dupes": ", ".join(dupes)})
    return values
