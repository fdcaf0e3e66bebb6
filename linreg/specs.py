"""Run configuration as pydantic models.

These models are the flow's parameters, so Prefect validates them before any
work starts; the CLI builds the same models, so both paths give the same
messages. Every message names the field and the allowed range.
"""

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from linreg.devices import DeviceError, parse_device
from linreg.solvers.base import SolverSpec
from linreg.solvers.registry import SOLVERS
from linreg.validation import MAX_BATCH, MAX_D, MAX_EPOCHS, MAX_N, MAX_SEED, FiniteFloat, FrozenModel, range_check

DEVICE_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"
# The form parse_device accepts, for the JSON schema (the validator gives the message).
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
DASK_ADDRESS_PATTERN = r"^(tcp|tls|ucx|inproc)://[^\s/]+$"
MAX_TIMEOUT = 7 * 24 * 3600  # a week


def _solver_enum(schema: dict) -> None:
    """The registry's names as the schema's enum, read when the schema is made; at least
    one, none twice (the validator below gives the messages)."""
    schema["items"] = {**schema.get("items", {}), "enum": list(SOLVERS)}
    schema.update(minItems=1, maxItems=len(SOLVERS), uniqueItems=True)


def _solver_keys(schema: dict) -> None:
    schema["propertyNames"] = {"enum": list(SOLVERS)}


# Field types a run and a sweep share (RunSpec and linreg.sweep.SweepSpec): one value, one refusal.
Rows = Annotated[int, range_check(1, MAX_N)]
Seed = Annotated[int, range_check(0, MAX_SEED)]
Noise = Annotated[float, range_check(0.0)]
LearningRate = Annotated[float, range_check(0.0, lo_open=True)]
Epochs = Annotated[int, range_check(1, MAX_EPOCHS)]
BatchSize = Annotated[int, range_check(1, MAX_BATCH)]
Bias = FiniteFloat


def writable_folder(path: Path) -> Path:
    """`path` if it is a folder this process can write in, or can be made in one; else refused."""
    if path.exists() and not path.is_dir():
        raise PydanticCustomError("output_dir", "{path} exists and is not a folder", {"path": str(path)})
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PydanticCustomError("output_dir", "{path} is not a writable folder", {"path": str(probe)})
    return path


OutputDir = Annotated[Path, AfterValidator(writable_folder)]


def dask_address_for(address: str | None, runner: str | None) -> str | None:
    """`address` if it is a scheduler address (tcp://host:port) and the runner is dask; None stays None.

    A validator's helper: `runner` is the model's already-validated runner (None when it was refused).
    """
    if address is None:
        return address
    if runner != "dask":
        raise PydanticCustomError(
            "dask_address", "is only used with runner 'dask' (runner is '{runner}')", {"runner": runner},
        )
    if not re.fullmatch(DASK_ADDRESS_PATTERN, address):
        raise PydanticCustomError(
            "dask_address", "must look like tcp://host:port, got '{address}'", {"address": address}
        )
    return address


def _optional_pattern(pattern: str):
    def add(schema: dict) -> None:
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch["pattern"] = pattern

    return add


# The schema's side of `dask_address_for`, for a `str | None` field.
DASK_ADDRESS_SCHEMA = _optional_pattern(DASK_ADDRESS_PATTERN)


class DataSpec(FrozenModel):
    """What data to generate: y = bias + x @ weights + noise * e, x and e standard normal."""

    model_config = ConfigDict(title="generated")  # the form's name for this kind of data

    source: Literal["generated"] = Field("generated", description="generated: data drawn from known true parameters")

    n: Rows = Field(1000, description=f"rows, 1..{MAX_N}")
    weights: Annotated[list[FiniteFloat], Field(min_length=1, max_length=MAX_D)] = Field(
        default_factory=lambda: [2.0], description=f"true weights, 1..{MAX_D} finite numbers"
    )
    bias: Bias = Field(1.0, description="true intercept")
    noise: Noise = Field(0.1, description="noise standard deviation, >= 0")
    seed: Seed = Field(42, description=f"RandomState seed, 0..{MAX_SEED}")

    @property
    def d(self) -> int:
        return len(self.weights)


MAX_HOLDOUT = 0.9

# A CSV's dialect (FileData's delimiter, decimal and na_values): what ingest_table reads.
DELIMITERS = (",", ";", "\t", "|")
DECIMALS = (".", ",")
MAX_NA_VALUES = 32
# "not this pattern": a `^...$` would let "NA\n" through Python's re.search, which the server's check uses.
LINE_BREAK = r"[\r\n]"


def quoted_choices(values, spelled: dict[str, str] | None = None) -> str:
    """"'a', 'b' or 'c'": values as Python writes them (or as `spelled` names them), so a value
    with a comma or a space reads as one."""
    quoted = [(spelled or {}).get(v, repr(v)) for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _na_values_schema(schema: dict) -> None:
    """The schema's side of `FileData._na_values`: each token non-empty and on one line, at most MAX_NA_VALUES."""
    schema["items"] = {**schema.get("items", {}), "minLength": 1, "not": {"pattern": LINE_BREAK}}
    schema["maxItems"] = MAX_NA_VALUES


def _dialect_schema(schema: dict) -> None:
    """The schema's side of the rules that join fields: a given delimiter is no na_values token,
    and "," is not both delimiter and decimal mark.

    One if/then/else chain, one delimiter per link, rather than an `allOf`: Prefect's form renders
    an `allOf` as one input merged from its parts. "delimiter is d" is written without the keyword
    `required`, which Prefect drops when it checks a deployment's default parameters (as `_data_schema`).
    """
    chain: dict = {}
    for delimiter in reversed(DELIMITERS):
        then = {"properties": {"na_values": {"items": {"not": {"const": delimiter}}}}}
        if delimiter == ",":
            then["properties"]["decimal"] = {"not": {"const": ","}}
        link = {"if": {"not": {"properties": {"delimiter": {"not": {"const": delimiter}}}}}, "then": then}
        if chain:
            link["else"] = chain
        chain = link
    schema.update(chain)


class FileData(FrozenModel):
    """A user's table: a CSV file, a parquet file, or a folder of parquet files (one dataset).

    Checked by `linreg.storage.ingest_table` before any fit: the columns must exist and be
    numeric, with no missing or infinite value (unless `drop_missing`), and no constant feature.
    A CSV is read in its dialect: `delimiter`, `decimal` and `na_values` (`dialect_kwargs`).
    """

    model_config = ConfigDict(title="file", json_schema_extra=_dialect_schema)

    source: Literal["file"] = Field("file", description="file: the user's own CSV or parquet table")
    path: Annotated[str, Field(min_length=1)] = Field(
        description="a .csv or .tsv file (either may be .gz, .bz2 or .zst), a .parquet file, or a folder of "
                    "parquet files; relative paths are resolved where the run starts"
    )
    target: Annotated[str, Field(min_length=1)] = Field(description="the column to predict")
    features: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=MAX_D)] | None = Field(
        None, description="predictor columns, in this order; default: every column but the target"
    )
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(
        None, description="a CSV's field separator: ',', ';', '\\t' (tab) or '|'; none: detected from the header line"
    )
    decimal: Literal[".", ","] = Field(
        ".", description="a CSV's decimal mark: '.' or ',' (',' needs a delimiter other than ',')"
    )
    na_values: list[str] = Field(
        [], title="NA values", json_schema_extra=_na_values_schema,  # [] as the form's default (pydantic copies it)
        description=f"a CSV's extra tokens read as missing, besides the reader's own ('', 'NA', 'NaN', 'null', ...); "
                    f"at most {MAX_NA_VALUES}, each non-empty, on one line, and not the delimiter",
    )
    drop_missing: bool = Field(False, description="drop rows with a missing or infinite value instead of refusing them")
    holdout: Annotated[float, range_check(0.0, MAX_HOLDOUT)] = Field(
        0.0, description=f"fraction of rows held out from every fit and scored after, 0..{MAX_HOLDOUT} (0: none)"
    )
    seed: Seed = Field(
        42, description=f"seed of the holdout split and of the solvers' draws, 0..{MAX_SEED}"
    )

    @property
    def name(self) -> str:
        """The file's or folder's name without its suffix: `longley` for data/longley.csv."""
        return Path(self.path).stem or "data"

    def dialect_kwargs(self) -> dict:
        """`ingest_table`'s CSV dialect keywords (delimiter, decimal, na_values as a tuple), only
        those not at their default, so a call site reads `ingest_table(..., **data.dialect_kwargs())`."""
        fields = type(self).model_fields
        kwargs = {key: getattr(self, key) for key in ("delimiter", "decimal", "na_values")
                  if getattr(self, key) != fields[key].default}
        if "na_values" in kwargs:
            kwargs["na_values"] = tuple(kwargs["na_values"])
        return kwargs

    @field_validator("features")
    @classmethod
    def _distinct_features(cls, features: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if features is None:
            return features
        repeated = [f for f in dict.fromkeys(features) if features.count(f) > 1]
        if repeated:
            raise PydanticCustomError(
                "features", "column(s) named twice: {names}", {"names": ", ".join(map(repr, repeated))}
            )
        target = info.data.get("target")
        if target in features:
            raise PydanticCustomError(
                "features", "the target {target} is among the features; list only predictors",
                {"target": repr(target)},
            )
        return features

    # Before pydantic's own check: the message names every allowed value, and None.
    @field_validator("delimiter", mode="before")
    @classmethod
    def _known_delimiter(cls, delimiter: Any) -> Any:
        if delimiter is not None and delimiter not in DELIMITERS:
            raise PydanticCustomError(
                "delimiter", "must be {allowed}, or null to detect it from the header line; got {value}",
                {"allowed": quoted_choices(DELIMITERS), "value": repr(delimiter)},
            )
        return delimiter

    @field_validator("decimal", mode="before")
    @classmethod
    def _known_decimal(cls, decimal: Any, info: ValidationInfo) -> Any:
        if decimal not in DECIMALS:
            raise PydanticCustomError(
                "decimal", "must be {allowed}, got {value}",
                {"allowed": quoted_choices(DECIMALS), "value": repr(decimal)},
            )
        if decimal == "," and info.data.get("delimiter") == ",":
            raise PydanticCustomError(
                "decimal", "',' cannot be both the decimal mark and the delimiter; with decimal ',' the "
                           "delimiter must be {others}, or left to be detected",
                {"others": quoted_choices([d for d in DELIMITERS if d != ","], {"\t": "tab"})},
            )
        return decimal

    @field_validator("na_values")
    @classmethod
    def _na_values(cls, tokens: list[str], info: ValidationInfo) -> list[str]:
        if len(tokens) > MAX_NA_VALUES:
            raise PydanticCustomError(
                "na_values", "at most {most} tokens, got {count}", {"most": MAX_NA_VALUES, "count": len(tokens)}
            )
        delimiter = info.data.get("delimiter")
        for token in tokens:
            if not token or re.search(LINE_BREAK, token):
                raise PydanticCustomError(
                    "na_values", "each token must be non-empty and on one line, got {token}", {"token": repr(token)}
                )
            if token == delimiter:
                raise PydanticCustomError(
                    "na_values", "the token {token} is the delimiter; a token must differ from it",
                    {"token": repr(token)},
                )
        return tokens


def _data_kind(value: Any) -> str:
    """The union's tag: a dict's `source`, "generated" when absent (parameters saved before files existed)."""
    if isinstance(value, dict):
        return value.get("source", "generated")
    return getattr(value, "source", "generated")


def _data_schema(schema: dict) -> None:
    """The union as the deployment form and the server read it.

    `anyOf` lets the form offer both kinds. The if/then/else picks the branch by
    `source`, so the server's message names the field at fault ("run.data.target is
    a required property") rather than "not valid under any of the given schemas".
    """
    generated, file = schema["anyOf"] = schema.pop("oneOf")  # anyOf: {} (a form's start) fits either
    # "source is present and is 'file'", without the keyword `required`: Prefect drops every
    # `required` when it checks a deployment's default parameters.
    schema["if"] = {"not": {"properties": {"source": {"not": {"const": "file"}}}}}
    schema["then"], schema["else"] = file, generated


RunData = Annotated[
    Union[Annotated[DataSpec, Tag("generated")], Annotated[FileData, Tag("file")]],
    Discriminator(_data_kind),
]


class Timeouts(FrozenModel):
    """Time limits. A fit past its limit ends `failed`, naming the limit, and the others go
    on; a run past its limit stops at its next safe point and ends Failed. Both are checked
    at every epoch and every streamed chunk."""

    fit_seconds: Annotated[float, range_check(0.0, MAX_TIMEOUT, lo_open=True)] = Field(
        3600.0, description=f"seconds one solver may train, (0, {MAX_TIMEOUT}]"
    )
    run_seconds: Annotated[float, range_check(0.0, MAX_TIMEOUT, lo_open=True)] = Field(
        6 * 3600.0, description=f"seconds the whole run may take, (0, {MAX_TIMEOUT}]"
    )


class SolverOverrides(FrozenModel):
    """Fields that replace a solver's own defaults; None keeps the default."""

    lr: LearningRate | None = Field(None, description="learning rate, > 0")
    epochs: Epochs | None = Field(None, description=f"passes over the data, 1..{MAX_EPOCHS}")
    batch_size: BatchSize | None = Field(
        None, description=f"minibatch rows, 1..{MAX_BATCH}; above n it is clipped to n"
    )

    def apply(self, spec: SolverSpec) -> SolverSpec:
        """Return `spec` with the fields set here replaced."""
        return spec.model_copy(update=self.model_dump(exclude_none=True))


def _default_solvers() -> list[str]:
    return list(SOLVERS)


__all__ = ["DataSpec", "FileData", "RunData", "SolverSpec", "SolverOverrides", "Timeouts", "RunSpec", "DEVICE_HELP"]


class RunSpec(FrozenModel):
    """Everything one pipeline run needs."""

    data: RunData = Field(
        default_factory=DataSpec, description="generated data (the default), or a file of your own",
        json_schema_extra=_data_schema,
    )
    solvers: list[str] = Field(
        default_factory=_default_solvers, description="solver names to train", json_schema_extra=_solver_enum
    )
    defaults: SolverOverrides = Field(
        default_factory=SolverOverrides, description="overrides applied to every solver"
    )
    overrides: dict[str, SolverOverrides] = Field(
        default_factory=dict, description="per-solver overrides, keyed by solver name",
        json_schema_extra=_solver_keys,
    )
    runner: Literal["threads", "processes", "dask"] = Field(
        "threads", description="task runner for training: threads, processes, or dask"
    )
    dask_address: str | None = Field(
        None, description="scheduler address (tcp://host:port) of an existing Dask cluster; runner dask only",
        json_schema_extra=DASK_ADDRESS_SCHEMA,
    )
    device: str = Field("auto", description=DEVICE_HELP, json_schema_extra={"pattern": DEVICE_PATTERN})
    output_dir: OutputDir = Field(
        Path("data"),
        description="data root: datasets/ and runs/ go here; with remote workers it must be shared storage",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="time limits for each fit and the whole run")
    fit_intercept: bool = Field(
        True, description="fit y = b + x·w; false fits y = x·w with every solver (bias reported as 0.0, R² uncentred)"
    )
    cov: Literal["nonrobust", "HC0", "HC1", "HC2", "HC3"] = Field(
        "nonrobust", description="the reference's standard errors: nonrobust (classical), or heteroscedasticity-"
                                 "robust HC0, HC1, HC2 or HC3 (statsmodels' cov_type, R's vcovHC)"
    )
    scale: Literal["auto", "none", "standard"] = Field(
        "auto", description="iterative solvers on standardised features and target (standard) or as given (none); "
                            "auto: standard for file data, none for generated data (the tutorial's exact fits)"
    )

    @property
    def from_file(self) -> bool:
        return isinstance(self.data, FileData)

    @property
    def scaling(self) -> Literal["none", "standard"]:
        """`scale` with "auto" decided: standard for a user's file, none for generated data."""
        if self.scale != "auto":
            return self.scale
        return "standard" if self.from_file else "none"

    def label(self, device: str | None = None) -> str:
        """A short name for runs of this spec, e.g. `n1000-d1-seed42-cpu`, or `longley-employed-cpu` for a file."""
        if isinstance(self.data, FileData):
            return f"{self.data.name}-{self.data.target}-{device or self.device}"
        return f"n{self.data.n}-d{self.data.d}-seed{self.data.seed}-{device or self.device}"

    def solver_spec(self, name: str, device: str) -> SolverSpec:
        """The solver's tutorial defaults, then `defaults`, then its own overrides, on `device`."""
        spec = self.defaults.apply(SOLVERS[name].defaults)
        if name in self.overrides:
            spec = self.overrides[name].apply(spec)
        return spec.model_copy(update={"device": device, "fit_intercept": self.fit_intercept})

    @field_validator("solvers")
    @classmethod
    def _known_solvers(cls, names: list[str]) -> list[str]:
        if not names:
            raise PydanticCustomError(
                "solvers", "must name at least one solver; known: {known}", {"known": ", ".join(SOLVERS)}
            )
        check_solver_names(names, SOLVERS)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PydanticCustomError("solvers", "duplicate solver(s): {dupes}", {"dupes": ", ".join(dupes)})
        return names

    @field_validator("overrides")
    @classmethod
    def _known_override_keys(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        check_solver_names(list(overrides), SOLVERS)
        return overrides

    @field_validator("device")
    @classmethod
    def _device_form(cls, device: str) -> str:
        """The string's form only: whether the hardware exists is decided where the fits
        run (`linreg.devices.planned_device`)."""
        return device_form(device)

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, address: str | None, info: ValidationInfo) -> str | None:
        return dask_address_for(address, info.data.get("runner"))


def device_form(device: str) -> str:
    """`device` in its canonical form ("auto", "cpu", "cuda", "cuda:N") for a spec's validator,
    whose error names the field (runs and sweeps alike)."""
    try:
        return parse_device(device)
    except DeviceError as exc:
        raise PydanticCustomError("device", "{reason}", {"reason": str(exc)}) from None


def check_solver_names(names: list[str], known: dict = SOLVERS) -> None:
    """Refuse names that are not in the registry, listing the known ones (runs and sweeps alike)."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PydanticCustomError(
            "solvers", "unknown solver(s): {unknown}; known: {known}",
            {"unknown": ", ".join(unknown), "known": ", ".join(known)},
        )
