"""End to end on a real Prefect server: a worker runs the deployment, the UI shows its artifacts.

The stack comes from scripts/server.sh, the script behind `make server`, on a
free port with a temporary PREFECT_HOME: it shares no SQLite file with the flow
tests. The UI is checked in Debian's headless chromium, driven by Playwright.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from uuid import UUID

import pytest
from procs import run_logged

from linreg.solvers import SOLVERS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "server.sh"
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
UI_TIMEOUT_MS = 30_000  # each wait in the browser


@dataclass(frozen=True)
class Stack:
    """A running server + worker, as started by scripts/server.sh."""

    api_url: str
    ui_url: str
    env: dict
    run_dir: Path

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.run_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return f"--- last {lines} lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(tmp: Path, port: int) -> dict:
    """The caller's environment without any PREFECT_* setting, plus the stack's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PORT=str(port),
        LINREG_HOST="127.0.0.1",
        PREFECT_HOME=str(tmp / "prefect-home"),
        LINREG_RUN_DIR=str(tmp / "run"),
        LINREG_START_TIMEOUT="120",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",  # the daily schedule stays out of the test
        PREFECT_WORKER_QUERY_SECONDS="1",  # the worker picks the run up at once
        PREFECT_LOGGING_EXTRA_LOGGERS="linreg",
    )
    return env


def process_family(pids: list[int]) -> set[int]:
    """`pids` and every process below them or in their process groups."""
    table = [tuple(map(int, line.split())) for line in subprocess.run(
        ["ps", "-eo", "pid=,ppid=,pgid="], capture_output=True, text=True, check=True).stdout.splitlines()]
    family, roots = set(pids), set(pids)
    grew = True
    while grew:
        grew = False
        for pid, ppid, pgid in table:
            if pid not in family and (ppid in family or pgid in roots):
                family.add(pid)
                grew = True
    return family


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def recorded_pids(run_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted(run_dir.glob("*.pid")) if p.read_text().strip().isdigit()]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack(tmp_path):
    """Start the stack with scripts/server.sh; stop it, and check nothing is left, even on failure."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium (apt-get install chromium)")
    port = free_port()
    env = stack_env(tmp_path, port)
    run_dir = Path(env["LINREG_RUN_DIR"])
    started = time.monotonic()
    try:
        start = run_logged([str(SCRIPT), "start"], tmp_path / "logs", "scripts/server.sh start",
                           timeout=START_TIMEOUT, cwd=ROOT, env=env)
        assert start.returncode == 0, f"scripts/server.sh start failed ({start.returncode}):\n{start.stdout}\n{start.stderr}"
        print(f"stack up in {time.monotonic() - started:.1f}s:\n{start.stdout}")
        yield Stack(env["PREFECT_API_URL"], f"http://127.0.0.1:{port}", env, run_dir)
    finally:
        _stop(env, run_dir, port, tmp_path / "logs")


def _stop(env: dict, run_dir: Path, port: int, logs: Path) -> None:
    family = process_family(recorded_pids(run_dir)) if run_dir.exists() else set()
    problems = []
    try:
        stop = run_logged([str(SCRIPT), "stop"], logs, "scripts/server.sh stop", timeout=STOP_TIMEOUT,
                          cwd=ROOT, env=env)
        if stop.returncode != 0:
            problems.append(f"scripts/server.sh stop failed ({stop.returncode}):\n{stop.stdout}\n{stop.stderr}")
    except pytest.fail.Exception as exc:  # it hung: still clean up below, then report
        problems.append(str(exc))
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = sorted(pid for pid in family if alive(pid))
    for pid in leftovers:  # last resort, so a failed stop leaks nothing into the next test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if leftovers:
        problems.append(f"processes left running after stop, killed: {leftovers}")
    if port_open(port):
        problems.append(f"port {port} still answers after stop")
    assert not problems, "\n".join(problems)


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
    from playwright.sync_api import expect, sync_playwright

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
