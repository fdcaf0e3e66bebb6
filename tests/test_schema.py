"""The flow's parameter JSON schema: every range, length and choice of the models is in it,
so a deployment's form and the server refuse what pydantic refuses."""

import asyncio

import jsonschema
import pytest
from pydantic import ValidationError

from linreg.solvers import SOLVERS
from linreg.specs import MAX_NA_VALUES, RunSpec
from linreg.validation import MAX_D, MAX_N, MAX_SEED


@pytest.fixture(scope="module")
def schema() -> dict:
    """The schema Prefect stores with a deployment: the flow's `parameter_schema`."""
    from prefect.utilities.callables import parameter_schema

    from flows.linreg_flow import linreg_flow

    return parameter_schema(linreg_flow).model_dump_for_openapi()


def run_params(**fields) -> dict:
    return {"run": fields}


def file_params(**fields) -> dict:
    """A run on a user's CSV, with these FileData fields."""
    return run_params(data={"source": "file", "path": "t.csv", "target": "y", **fields})


BAD = {
    "n=0": run_params(data={"n": 0}),
    "n above max": run_params(data={"n": MAX_N + 1}),
    "no weights": run_params(data={"weights": []}),
    "too many weights": run_params(data={"weights": [1.0] * (MAX_D + 1)}),
    "negative noise": run_params(data={"noise": -0.5}),
    "negative seed": run_params(data={"seed": -1}),
    "seed above max": run_params(data={"seed": MAX_SEED + 1}),
    "lr=0": run_params(defaults={"lr": 0}),
    "epochs=0": run_params(defaults={"epochs": 0}),
    "batch_size=0": run_params(defaults={"batch_size": 0}),
    "no solvers": run_params(solvers=[]),
    "unknown solver": run_params(solvers=["closed_form", "sklearn"]),
    "duplicate solver": run_params(solvers=["closed_form", "closed_form"]),
    "unknown override key": run_params(overrides={"sklearn": {"lr": 0.1}}),
    "override lr=0": run_params(overrides={"numpy_gd": {"lr": 0}}),
    "unknown runner": run_params(runner="ray"),
    "device gpu": run_params(device="gpu"),
    "device cuda:x": run_params(device="cuda:x"),
    "dask address": run_params(runner="dask", dask_address="localhost"),
    "fit timeout 0": run_params(timeouts={"fit_seconds": 0}),
    "run timeout above a week": run_params(timeouts={"run_seconds": 8 * 24 * 3600}),
    "unknown field": run_params(epochs=5),
    "unknown delimiter": file_params(delimiter=":"),
    "unknown decimal": file_params(decimal=";"),
    "decimal comma with delimiter comma": file_params(delimiter=",", decimal=","),
    "empty na token": file_params(na_values=["-", ""]),
    "na token with a newline": file_params(na_values=["n\na"]),
    "na token ending in a newline": file_params(na_values=["NA\n"]),
    "na token is the delimiter ;": file_params(delimiter=";", na_values=[";"]),
    "na token is the delimiter tab": file_params(delimiter="\t", na_values=["-", "\t"]),
    "na token is the delimiter ,": file_params(delimiter=",", na_values=[","]),
    "na token is the delimiter |": file_params(delimiter="|", na_values=["|"]),
    "too many na tokens": file_params(na_values=[f"t{i}" for i in range(MAX_NA_VALUES + 1)]),
    "na tokens not a list": file_params(na_values="-"),
}

GOOD = {
    "defaults": {},
    "all fields": run_params(
        data={"n": 5, "weights": [1.0, -2.0], "bias": 0.5, "noise": 0.0, "seed": 0},
        solvers=["closed_form", "numpy_gd"], defaults={"lr": 0.1, "epochs": 3, "batch_size": 2},
        overrides={"numpy_gd": {"epochs": 4}}, runner="threads", device="cuda:1",
        output_dir="data", timeouts={"fit_seconds": 10, "run_seconds": 60},
    ),
    "dask": run_params(runner="dask", dask_address="tcp://10.0.0.5:8786", device="cpu"),
    "file, default dialect": file_params(),
    "file, every dialect field": file_params(delimiter=";", decimal=",", na_values=["-", "?", "n/a"]),
    "file, tab": file_params(delimiter="\t", na_values=[","]),
    "file, delimiter detected, decimal comma": file_params(delimiter=None, decimal=","),
    "file, comma na token, delimiter detected": file_params(na_values=[","]),
    "file, as many na tokens as allowed": file_params(na_values=[f"t{i}" for i in range(MAX_NA_VALUES)]),
    "file, features with commas and spaces": file_params(features=["income, usd", " x1"]),
}


@pytest.mark.parametrize("params", BAD.values(), ids=BAD.keys())
def test_the_schema_refuses_what_pydantic_refuses(schema, params):
    with pytest.raises(ValidationError):
        RunSpec(**params["run"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(params, schema)


@pytest.mark.parametrize("params", GOOD.values(), ids=GOOD.keys())
def test_the_schema_accepts_what_pydantic_accepts(schema, params):
    RunSpec(**params.get("run", {}))
    jsonschema.validate(params, schema)


def test_the_form_shows_ranges_choices_and_patterns(schema):
    """What the UI's form renders as limits and drop-downs."""
    defs = schema["definitions"]
    n = defs["DataSpec"]["properties"]["n"]
    assert (n["minimum"], n["maximum"]) == (1, MAX_N)
    assert defs["SolverOverrides"]["properties"]["lr"]["anyOf"][0]["exclusiveMinimum"] == 0
    run = defs["RunSpec"]["properties"]
    assert run["solvers"]["items"]["enum"] == list(SOLVERS)
    assert run["runner"]["enum"] == ["threads", "processes", "dask"]
    assert run["device"]["pattern"] == "^(auto|cpu|cuda(:[0-9]+)?)$"


def test_the_file_form_offers_the_csv_dialect(schema):
    """The form's "file" choice: a delimiter drop-down (or none, to detect it), a decimal mark, a list of tokens."""
    file = schema["definitions"]["FileData"]["properties"]
    delimiter, decimal, na_values = file["delimiter"], file["decimal"], file["na_values"]
    assert delimiter["default"] is None
    assert [branch.get("enum") for branch in delimiter["anyOf"]] == [[",", ";", "\t", "|"], None]
    assert (decimal["default"], decimal["enum"]) == (".", [".", ","])
    assert (na_values["default"], na_values["maxItems"], na_values["items"]["minLength"]) == ([], MAX_NA_VALUES, 1)
    assert all(file[field]["description"] for field in ("delimiter", "decimal", "na_values"))


@pytest.mark.parametrize("ignore_required", [False, True])
def test_prefect_checks_the_dialect_as_pydantic_does(schema, ignore_required):
    """The server's own check (`enforce_parameter_schema`); a deployment's defaults are checked with every
    `required` removed, so the rules joining fields must not rest on it."""
    from prefect.utilities.schema_tools.validation import ValidationError as SchemaError
    from prefect.utilities.schema_tools.validation import validate

    good = file_params(delimiter=";", decimal=",", na_values=["-"])
    validate(good, schema, raise_on_error=True, ignore_required=ignore_required)
    with pytest.raises(SchemaError, match="'run.data.decimal'"):
        validate(file_params(delimiter=",", decimal=","), schema, raise_on_error=True, ignore_required=ignore_required)
    with pytest.raises(SchemaError, match=r"'run.data.na_values\[1\]'"):
        validate(file_params(delimiter="|", na_values=["-", "|"]), schema, raise_on_error=True,
                 ignore_required=ignore_required)


@pytest.mark.flow
def test_the_server_refuses_a_bad_run_and_creates_none(prefect_server):
    """A deployment with `enforce_parameter_schema`, as `prefect deploy` makes it: a run
    with n = 0 is refused by the API, naming the field, and no flow run exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.utilities.callables import parameter_schema

    from flows.linreg_flow import linreg_flow

    async def scenario():
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("linreg")
            deployment_id = await client.create_deployment(
                flow_id=flow_id, name="schema-check", entrypoint="flows/linreg_flow.py:linreg_flow",
                parameter_openapi_schema=parameter_schema(linreg_flow).model_dump_for_openapi(),
                enforce_parameter_schema=True,
            )
            with pytest.raises(PrefectHTTPStatusError) as refused:
                await client.create_flow_run_from_deployment(deployment_id, parameters=run_params(data={"n": 0}))
            only_this = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            before = await client.read_flow_runs(deployment_filter=only_this)
            await client.create_flow_run_from_deployment(deployment_id, parameters=run_params(data={"n": 5}))
            after = await client.read_flow_runs(deployment_filter=only_this)
            return refused.value, before, after

    refused, before, after = asyncio.run(scenario())
    assert refused.response.status_code == 409
    assert "'run.data.n'" in refused.response.text and "less than the minimum of 1" in refused.response.text
    assert before == [] and len(after) == 1
