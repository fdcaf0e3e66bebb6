"""The flow's parameter JSON schema: every range, length and choice of the models is in it,
so a deployment's form and the server refuse what pydantic refuses."""

import asyncio

import jsonschema
import pytest
from pydantic import ValidationError

from linreg.solvers import SOLVERS
from linreg.specs import RunSpec
from linreg.validation import MAX_D, MAX_N, MAX_SEED


@pytest.fixture(scope="module")
def schema() -> dict:
    """The schema Prefect stores with a deployment: the flow's `parameter_schema`."""
    from prefect.utilities.callables import parameter_schema

    from flows.linreg_flow import linreg_flow

    return parameter_schema(linreg_flow).model_dump_for_openapi()


def run_params(**fields) -> dict:
    return {"run": fields}


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
