"""End to end on a real Prefect server: a worker runs the deployment, the UI shows its artifacts.

The stack comes from scripts/server.sh, the script behind `make server`, on a
free port with a temporary PREFECT_HOME (flows.server_stack): it shares no SQLite
file with the flow tests. The UI is checked in Debian's headless chromium, driven by Playwright.
"""

import base64
import fnmatch
import json
from collections import Counter
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse
from uuid import UUID

import pytest
from procs import default_sigint, kill_group, run_logged

from flows.server_stack import Stack, server_stack
from linreg.ports import PortTaken, free_port, on_free_port, port_open, says_port_taken
from linreg.solvers import SOLVERS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[1]
PREFECT = Path(sys.executable).parent / "prefect"
CHROMIUM = Path(os.environ.get("LINREG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = ROOT / "data" / "e2e"  # gitignored: a copy to look at after the run
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI_PNG = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
N = 200

START_TIMEOUT = 240  # server.sh start: server, pools, limit, deploy, worker
STOP_TIMEOUT = 120  # server.sh stop waits up to 30 s per process before SIGKILL
RUN_TIMEOUT = 180  # trigger to Completed; about 15 s on two cores
UI_TIMEOUT_MS = 60_000  # the ceiling of each wait in the browser, expect() included (its own default is 5 s)
ALERT_TIMEOUT = 240  # from the runs' end to the last alert: a bound on a hang, not a claim about speed


class WebhookReceiver:
    """A local HTTP endpoint that records every POST: where the stack's alerts go."""

    def __init__(self):
        import http.server
        import threading

        self.posts: list[dict] = []
        received = self.posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"at": time.monotonic(), "path": self.path, "json": json.loads(body or b"null")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout: float, what: str) -> dict:
        """The first POST whose JSON body satisfies `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for post in list(self.posts):
                if predicate(post["json"]):
                    return post
            time.sleep(0.5)
        pytest.fail(f"no alert {what} within {timeout:g} s; received: {[p['json'] for p in self.posts]}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, webhook):
    """Start the stack with scripts/server.sh, alerts to `webhook`; stop it, and check nothing
    is left and its port is free, even on failure. One stack for the module: it takes a minute to start."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium (apt-get install chromium)")
    started = time.monotonic()
    with server_stack("sqlite", new_home=lambda: tmp_path_factory.mktemp("stack"), start_timeout=START_TIMEOUT,
                      stop_timeout=STOP_TIMEOUT, check_port=True, LINREG_START_TIMEOUT="120",
                      PREFECT_WORKER_QUERY_SECONDS="1",  # the worker picks the run up at once
                      LINREG_ALERT_WEBHOOK_URL=webhook.url) as running:
        print(f"stack up in {time.monotonic() - started:.1f}s:\n{running.script_log('start').read_text()}")
        yield running


def trigger_run(stack: Stack, parameters: dict) -> UUID:
    """`prefect deployment run 'linreg/linreg-local'`, as a user types it; returns the flow run's id."""
    result = run_logged(
        [str(PREFECT), "deployment", "run", "linreg/linreg-local", "--params", json.dumps(parameters)],
        stack.run_dir.parent / "trigger-logs", "prefect deployment run", timeout=60, cwd=ROOT, env=stack.env,
    )
    found = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
    assert result.returncode == 0 and found, f"prefect deployment run failed:\n{result.stdout}\n{result.stderr}"
    return UUID(found.group(1))


def wait_for_final_state(client, stack: Stack, flow_run_id: UUID):
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        run = client.read_flow_run(flow_run_id)
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"flow run {flow_run_id} not finished after {RUN_TIMEOUT}s, state "
                        f"{run.state.name if run.state else None}\n{stack.log_tail('worker')}")
        time.sleep(1)


def test_deployment_runs_on_worker_and_ui_shows_artifacts(stack, tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    output_dir = tmp_path / "output"
    parameters = {"run": {"data": {"n": N}, "device": "cpu", "output_dir": str(output_dir)}}
    started = time.monotonic()
    flow_run_id = trigger_run(stack, parameters)

    with SyncPrefectClient(stack.api_url) as client:
        run = wait_for_final_state(client, stack, flow_run_id)
        print(f"flow run {run.name} {run.state.name} {time.monotonic() - started:.1f}s after the trigger")
        assert run.state.is_completed(), f"flow run ended {run.state.name}: {run.state.message}\n{stack.log_tail('worker')}"
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    assert {"linreg-summary", "linreg-report"} <= set(by_key), f"artifacts of the run: {sorted(by_key)}"
    table, report = by_key["linreg-summary"], by_key["linreg-report"]

    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert sorted(row["solver"] for row in rows) == sorted(SOLVERS), "one table row per solver"
    images = DATA_URI_PNG.findall(report.data)
    assert len(images) >= 2, f"linreg-report embeds {len(images)} PNG data URIs, expected the two plots"
    for encoded in images:
        assert base64.b64decode(encoded, validate=True).startswith(PNG_SIGNATURE), "a data URI that is not a PNG"
    assert list((output_dir / "runs").glob("*/summary.json")), f"the worker wrote no run folder under {output_dir}"

    shots = check_ui(stack, flow_run_id, table.id, report.id, len(images), tmp_path / "screenshots")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy2(shot, SCREENSHOTS / shot.name)


# --- the browser part


def expect(actual):
    """Playwright's expect(), waiting up to UI_TIMEOUT_MS like every other browser step.

    Its own default is 5 s, which a loaded CI machine outlasts while the UI is still fetching."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=UI_TIMEOUT_MS)
    return playwright_expect(actual)


@contextmanager
def ui_step(page, what: str, shots: Path):
    """Turn a Playwright failure into a message naming the step, with a screenshot of the page."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        yield
    except (PlaywrightError, AssertionError) as exc:
        shot = shots / f"failed-{re.sub(r'[^a-z0-9]+', '-', what.lower())}.png"
        try:
            page.screenshot(path=str(shot))
        except PlaywrightError:
            shot = "(no screenshot)"
        pytest.fail(f"UI: {what}: {exc}\npage {page.url}, screenshot {shot}")


def check_ui(stack: Stack, flow_run_id: UUID, table_id: UUID, report_id: UUID, n_images: int,
             shots: Path) -> list[Path]:
    """Open the run's artifacts in chromium; check the table and the plots; return the screenshots."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []

    def local_only(route):  # the UI calls an analytics host: nothing may leave the machine
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.route("**/*", local_only)

            with ui_step(page, "the flow run's Artifacts tab lists both artifacts", shots):
                page.goto(f"{stack.ui_url}/runs/flow-run/{flow_run_id}")
                page.locator("li.p-tab#artifacts").click()
                for artifact_id in (table_id, report_id):
                    expect(page.locator(f"a[href$='/artifacts/artifact/{artifact_id}']")).to_be_visible()
                run_tab = shots / "flow-run-artifacts.png"
                page.screenshot(path=str(run_tab))

            with ui_step(page, "linreg-summary shows every solver", shots):
                page.locator(f"a[href$='/artifacts/artifact/{table_id}']").click()
                page.wait_for_url(f"**/artifacts/artifact/{table_id}")
                table = page.locator("table").first
                for name in SOLVERS:
                    expect(table).to_contain_text(name)
                summary = shots / "linreg-summary.png"
                page.screenshot(path=str(summary))

            with ui_step(page, "linreg-report shows every plot", shots):
                page.goto(f"{stack.ui_url}/artifacts/artifact/{report_id}")
                expect(page.locator("img[src^='data:image/png']")).to_have_count(n_images)
                # Tall enough for the whole report: the UI scrolls inside its own container.
                height = page.evaluate(
                    "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
                page.set_viewport_size({"width": 1400, "height": min(max(1000, height + 40), 6000)})
                page.wait_for_function(
                    """n => { const imgs = [...document.querySelectorAll("img[src^='data:image/png']")];
                              return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
                    arg=n_images,
                )
                report = shots / "linreg-report.png"
                page.screenshot(path=str(report))
        finally:
            browser.close()
    print(f"blocked {len(blocked)} request(s) to other hosts: {sorted({urlparse(u).hostname for u in blocked})}")
    return [run_tab, summary, report]


# --- the loop around it: versions, the run form, local runs, alerts, history


def wait_for_runs(client, stack: Stack, flow_run_ids) -> list:
    return [wait_for_final_state(client, stack, run_id) for run_id in flow_run_ids]


def test_deployments_are_versioned_limited_and_refuse_bad_parameters(stack):
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(stack.api_url) as client:
        deployments = {name: client.read_deployment_by_name(f"{flow}/{name}") for flow, name in [
            ("linreg", "linreg-local"), ("linreg", "linreg-daily"), ("linreg", "linreg-gpu"),
            ("linreg-history", "linreg-history")]}
    assert {name: d.version for name, d in deployments.items()} == dict.fromkeys(deployments, stack.version)
    assert all(d.enforce_parameter_schema for d in deployments.values())
    daily = deployments["linreg-daily"]
    assert daily.global_concurrency_limit.limit == 1 and daily.concurrency_options.collision_strategy == "ENQUEUE"
    assert [s.schedule.cron for s in daily.schedules] == ["0 6 * * *"]
    n = deployments["linreg-local"].parameter_openapi_schema["definitions"]["DataSpec"]["properties"]["n"]
    assert (n["minimum"], n["maximum"]) == (1, 1_000_000_000)


def browser_page(playwright, shots: Path):
    from urllib.parse import urlparse

    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).hostname == "127.0.0.1"
               else route.abort())  # the UI's analytics: nothing leaves the machine
    shots.mkdir(parents=True, exist_ok=True)
    return browser, page


def submit_until_accepted(page, url_after: str, stack: Stack, attempts: int = 6) -> None:
    """Click Submit as a user would, and again each time the server answers one of the form's
    requests with a 5xx, until the UI goes to `url_after`.

    Under load the SQLite server answers some requests with 503 "database is locked"
    (docs/server.md); Prefect's Python client retries those, its UI does not: it shows
    "Something went wrong" and stays on the form. What happens next is decided by the
    answers the page receives, never by how long they take; the wait is a bound on a hang
    only. The caller checks that exactly one run was created.
    """
    refused: list[str] = []

    def on_response(response) -> None:  # the form's own two requests: check the values, create the run
        if response.request.method == "POST" and response.status >= 500 \
                and response.url.endswith(("/ui/schemas/validate", "/create_flow_run")):
            refused.append(f"{response.status} {response.url}")

    arrived = url_after.replace("**", "*")
    page.on("response", on_response)
    try:
        for attempt in range(1, attempts + 1):
            refused.clear()
            page.get_by_role("button", name="Submit").click()
            deadline = time.monotonic() + RUN_TIMEOUT  # a hang, not a slow answer
            while not fnmatch.fnmatchcase(page.url, arrived) and not refused:
                if time.monotonic() > deadline:
                    pytest.fail(f"the form got no answer within {RUN_TIMEOUT} s; {stack.log_tail('server', 15)}")
                page.wait_for_timeout(200)  # lets the page's events (responses, navigation) arrive
            if not refused:
                return
            print(f"submit {attempt}: the server answered {refused}; {stack.log_tail('server', 15)}")
            page.wait_for_timeout(2_000 * attempt)  # as a user would, a moment before clicking again
        pytest.fail(f"the form was refused {attempts} times with a 5xx: {refused}")
    finally:
        page.remove_listener("response", on_response)


def test_the_run_form_refuses_n_0_then_starts_a_valid_run(stack, tmp_path):
    """In the UI, as a user would: Run > Custom run on linreg-local, n = 0 is refused by the
    server with the field named, and no run is created; n = 200 starts a run."""
    from playwright.sync_api import sync_playwright
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with SyncPrefectClient(stack.api_url) as client:
        deployment = client.read_deployment_by_name("linreg/linreg-local")
        only_local = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        before = {r.id for r in client.read_flow_runs(deployment_filter=only_local)}
    output_dir = tmp_path / "form-output"
    shots = tmp_path / "screenshots"
    with sync_playwright() as playwright:
        browser, page = browser_page(playwright, shots)
        try:
            with ui_step(page, "the form refuses n = 0", shots):
                page.goto(f"{stack.ui_url}/deployments/deployment/{deployment.id}/run")
                n = page.locator("input[type=number]").first  # run > data > n, the form's first number
                n.fill("0")
                output = page.locator(".schema-form-property").filter(
                    has=page.locator(".schema-form-property__label", has_text=re.compile(r"^Output Dir"))).last
                output.locator("textarea").fill(str(output_dir))
                page.get_by_role("button", name="Submit").click()
                expect(page.get_by_text("Validation failed for field 'run.data.n'").first).to_be_visible()
                expect(page.get_by_text("0 is less than the minimum of 1").first).to_be_visible()
                page.screenshot(path=str(shots / "form-refused.png"))
            with SyncPrefectClient(stack.api_url) as client:
                assert {r.id for r in client.read_flow_runs(deployment_filter=only_local)} == before
            with ui_step(page, "the form starts a run with n = 200", shots):
                n.fill(str(N))
                submit_until_accepted(page, f"**/deployments/deployment/{deployment.id}?tab=Runs", stack)
                page.screenshot(path=str(shots / "form-started.png"))
        finally:
            browser.close()
    with SyncPrefectClient(stack.api_url) as client:
        (new,) = [r for r in client.read_flow_runs(deployment_filter=only_local) if r.id not in before]
        run = wait_for_final_state(client, stack, new.id)
    assert run.state.is_completed(), run.state.message
    assert run.name == f"n{N}-d1-seed42-cpu" and run.parameters["run"]["data"]["n"] == N
    assert list((output_dir / "runs").glob("*/summary.json"))


def test_the_run_form_offers_file_data_and_runs_longley_on_the_worker(stack, tmp_path):
    """The form's data parameter offers both kinds: choosing "file" and naming Longley's CSV and
    target starts a run that fits the table, with no truth, on the worker."""
    from playwright.sync_api import sync_playwright
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with SyncPrefectClient(stack.api_url) as client:
        deployment = client.read_deployment_by_name("linreg/linreg-local")
        only_local = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        before = {r.id for r in client.read_flow_runs(deployment_filter=only_local)}
    output_dir = tmp_path / "file-output"
    shots = tmp_path / "screenshots"
    longley = ROOT / "data" / "examples" / "longley.csv"

    def text_field(label: str):
        return page.locator(".schema-form-property").filter(
            has=page.locator(".schema-form-property__label", has_text=re.compile(rf"^{label}"))).last

    with sync_playwright() as playwright:
        browser, page = browser_page(playwright, shots)
        try:
            with ui_step(page, "the form offers generated and file data", shots):
                page.goto(f"{stack.ui_url}/deployments/deployment/{deployment.id}/run")
                expect(page.get_by_role("button", name="generated", exact=True).first).to_be_visible()
                page.get_by_role("button", name="file", exact=True).first.click()
                for label in ("Delimiter", "Decimal", "NA values"):  # the CSV dialect, as the CLI offers it
                    expect(text_field(label)).to_be_visible()
                page.screenshot(path=str(shots / "form-file.png"), full_page=True)
            with ui_step(page, "a file run is submitted", shots):
                text_field("Path").locator("textarea").fill(str(longley))
                text_field("Target").locator("textarea").fill("employed")
                text_field("Output Dir").locator("textarea").fill(str(output_dir))
                submit_until_accepted(page, f"**/deployments/deployment/{deployment.id}?tab=Runs", stack)
        finally:
            browser.close()
    with SyncPrefectClient(stack.api_url) as client:
        (new,) = [r for r in client.read_flow_runs(deployment_filter=only_local) if r.id not in before]
        run = wait_for_final_state(client, stack, new.id)
    assert run.state.is_completed(), run.state.message
    data = run.parameters["run"]["data"]
    assert (data["source"], data["path"], data["target"]) == ("file", str(longley), "employed")
    assert run.name == "longley-employed-cpu"
    (summary,) = (output_dir / "runs").glob("*/summary.json")
    dataset = json.loads(summary.read_text())["dataset"]
    assert dataset["source"] == "file" and dataset["rows"] == 16 and dataset["weights"] is None


def test_linreg_run_reports_to_the_running_server(stack, tmp_path):
    """With `make server` up, `linreg run` (no PREFECT_API_URL) lands in that server, and its
    last line is the run's page in the server's UI."""
    from prefect.client.orchestration import SyncPrefectClient

    home = tmp_path / "cli-home"
    env = {k: v for k, v in stack.env.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), LINREG_SERVER_RUN_DIR=str(stack.run_dir))
    done = run_logged([str(PREFECT.with_name("linreg")), "run", "--n", str(N), "--solvers", "closed_form,numpy_gd",
                       "--output-dir", str(tmp_path / "out")], tmp_path / "cli-logs", "linreg run", timeout=240,
                      cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"reporting to the project's Prefect server (make server) at {stack.api_url}" in done.stderr
    page = done.stdout.strip().splitlines()[-1]
    found = re.fullmatch(rf"in the UI:  {re.escape(stack.ui_url)}/runs/flow-run/([0-9a-f-]{{36}})", page)
    assert found, page
    with SyncPrefectClient(stack.api_url) as client:
        run = client.read_flow_run(UUID(found.group(1)))
    assert run.state.is_completed() and run.name == f"n{N}-d1-seed42-cpu"
    assert not (home / "temporary-api.log").exists(), "a temporary API was started"


def test_alerts_reach_the_webhook_on_divergence_and_failure(stack, webhook, tmp_path):
    """alerts.yaml, as `make server` installed it: a run whose solver diverges (a large lr) and
    a run whose solver fails (past its time limit) each POST to the webhook (seconds here; the
    wait below only bounds a hang and is no claim about speed)."""
    from prefect.client.orchestration import SyncPrefectClient

    out = str(tmp_path / "alerts")
    diverging = trigger_run(stack, {"run": {"data": {"n": N}, "device": "cpu", "output_dir": out,
                                            "solvers": ["closed_form", "torch_autograd"], "defaults": {"lr": 10.0}}})
    failing = trigger_run(stack, {"run": {"data": {"n": N}, "device": "cpu", "output_dir": out,
                                          "solvers": ["closed_form", "numpy_gd"], "defaults": {"epochs": 10_000_000},
                                          "timeouts": {"fit_seconds": 0.5}}})
    with SyncPrefectClient(stack.api_url) as client:
        runs = {run.id: run for run in wait_for_runs(client, stack, [diverging, failing])}
    ended = time.monotonic()
    assert runs[diverging].state.is_completed() and "diverged (torch_autograd)" in runs[diverging].state.message
    assert runs[failing].state.is_failed() and "failed (numpy_gd)" in runs[failing].state.message
    name = {run_id: run.name for run_id, run in runs.items()}

    def about(run_id, *words):
        return lambda body: body and body.get("source") == "linreg" and all(
            w in body["subject"] + body["body"] for w in (name[run_id], *words))

    for run_id, words, what in [
        (diverging, ("torch_autograd", "diverged"), "for the diverged solver"),
        (failing, ("numpy_gd", "failed", "time limit"), "for the failed solver"),
        (failing, ("Failed",), "for the Failed flow run"),
    ]:
        post = webhook.wait_for(about(run_id, *words), ALERT_TIMEOUT - (time.monotonic() - ended), what)
        print(f"alert {what}: {post['at'] - ended:+.1f} s after the runs ended: {post['json']['subject']}")


def test_history_follows_each_completed_run(stack, tmp_path):
    """Two runs of linreg-local on the same data: the history deployment, triggered after each,
    publishes two rows per solver, and the second report compares with the first."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        ArtifactFilter, ArtifactFilterFlowRunId, DeploymentFilter, DeploymentFilterId, FlowRunFilter,
        FlowRunFilterStartTime,
    )

    out = tmp_path / "history"
    solvers = ["closed_form", "numpy_gd"]
    params = {"run": {"data": {"n": N}, "device": "cpu", "output_dir": str(out), "solvers": solvers}}
    with SyncPrefectClient(stack.api_url) as client:
        history = client.read_deployment_by_name("linreg-history/linreg-history")
        first = wait_for_final_state(client, stack, trigger_run(stack, params))
        second = wait_for_final_state(client, stack, trigger_run(stack, params))
        assert first.state.is_completed() and second.state.is_completed()
        # The trigger's run for the second: started after it ended, on its data root.
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[history.id])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=second.end_time)))
            done = [r for r in runs if r.parameters.get("output_dir") == str(out) and r.state.is_final()]
            if done or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert done, f"no linreg-history run on {out} after the second run\n{stack.log_tail('worker')}"
        assert done[0].state.is_completed(), done[0].state.message
        artifacts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[done[0].id, second.id])))}
    rows = json.loads(artifacts["linreg-history"].data)
    assert Counter(row["solver"] for row in rows) == dict.fromkeys(solvers, 2)
    report = artifacts["linreg-report"].data
    first_id = min(p.name for p in (out / "runs").iterdir())  # run ids sort by time
    assert "## Compared with the previous run on the same data" in report
    assert f"Previous run: `{first_id}`" in report


def test_make_run_then_make_ui_shows_the_run(tmp_path, migrated_prefect_home):
    """The newcomer's loop: `linreg run` on its own (a temporary API), then `linreg ui` (`make ui`);
    the page the run printed opens in chromium and lists the run's artifacts."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    port = free_port()
    home = migrated_prefect_home(tmp_path / "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), LINREG_UI_PORT=str(port), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               LINREG_SERVER_RUN_DIR=str(tmp_path / "no-server"))
    linreg = str(PREFECT.with_name("linreg"))
    done = run_logged([linreg, "run", "--n", str(N), "--solvers", "closed_form,numpy_gd", "--output-dir",
                       str(tmp_path / "out")], tmp_path / "run-logs", "linreg run", timeout=240, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    found = re.fullmatch(rf"in the UI:  (http://127\.0\.0\.1:{port})/runs/flow-run/([0-9a-f-]{{36}})  "
                         r"\(open it with: linreg ui\)", last)  # `make ui` for the project's .prefect/ only
    assert found, last
    flow_run_id = UUID(found.group(2))

    def start_ui(ui_port: int) -> tuple[subprocess.Popen, Path, int]:
        """`linreg ui` on `ui_port`, SIGINT at its default (pytest may have been started with it ignored)."""
        log_path = tmp_path / f"ui-{ui_port}.log"
        with open(log_path, "w") as log:
            ui = subprocess.Popen([linreg, "ui"], cwd=ROOT, env={**env, "LINREG_UI_PORT": str(ui_port)},
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, preexec_fn=default_sigint)
        deadline = time.monotonic() + START_TIMEOUT
        while "Prefect UI over the runs in" not in log_path.read_text():
            if ui.poll() is not None or time.monotonic() > deadline:
                kill_group(ui)
                said = log_path.read_text() + ((home / "ui-server.log").read_text(errors="replace")
                                               if (home / "ui-server.log").exists() else "")
                if "is already in use" in said or says_port_taken(said):
                    raise PortTaken(f"port {ui_port} was taken")  # by another test's server, since the run
                pytest.fail(f"linreg ui did not start:\n{said[-3000:]}")
            time.sleep(0.5)
        return ui, log_path, ui_port

    # The port the run named first; another one only if something took it meanwhile.
    ui, ui_log, port = on_free_port(start_ui, first=port)
    page_url = f"http://127.0.0.1:{port}/runs/flow-run/{flow_run_id}"  # the printed one, unless the port moved
    try:
        with SyncPrefectClient(f"http://127.0.0.1:{port}/api") as client:
            by_key = {a.key: a for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))}
        shots = tmp_path / "screenshots"
        with sync_playwright_page(shots) as page:
            with ui_step(page, "the printed page lists the run's artifacts", shots):

                page.goto(page_url)
                expect(page.get_by_text(f"n{N}-d1-seed42-cpu").first).to_be_visible()
                page.locator("li.p-tab#artifacts").click()
                for key in ("linreg-summary", "linreg-report"):
                    expect(page.locator(f"a[href$='/artifacts/artifact/{by_key[key].id}']")).to_be_visible()
                page.screenshot(path=str(shots / "make-ui-run.png"))
    finally:
        ui.send_signal(signal.SIGINT)  # Ctrl-C, as `make ui` documents
        try:
            ui.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        kill_group(ui)
    assert ui.returncode == 0, ui_log.read_text()
    assert not port_open(port) and not (home / "ui-server.json").exists()


@contextmanager
def sync_playwright_page(shots: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = browser_page(playwright, shots)
        try:
            yield page
        finally:
            browser.close()
