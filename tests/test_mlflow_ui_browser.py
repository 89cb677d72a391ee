"""A person's check of the MLflow UI, done by headless Chromium.

Starts a throwaway `mlflow server` (SQLite + artifact folder under tmp_path) on a free loopback port,
logs a `pipeline` run with metrics into experiment `metacot` through `tasks.tracking` (the path the
pipeline uses), then opens the UI in Debian's Chromium, goes Experiments -> metacot -> the run and
checks that the metric and its value are on the page. A screenshot is kept under tmp_path.

Needs `/usr/bin/chromium` and the `playwright` Python package (its bundled driver only; no browser is
downloaded): `bash scripts/ci_setup.sh` installs both. Skips only when Chromium is missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import mlflow
import pytest

from cli.ops import start_mlflow_server, wait_until_healthy
from cli.processes import LOOPBACK, free_port, stop_server
from tasks import tracking

CHROMIUM = Path("/usr/bin/chromium")
# The network here is closed: no first-run, sync, update or QUIC traffic, and a fresh profile per test.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXPERIMENT = "metacot"
RUN_NAME = "pipeline"
# Generous: the UI is a large single-page app and CI shares two cores with other work.
UI_TIMEOUT_MS = 45_000
METRICS = {"eval.solve_rate": 0.4375, "eval.trace_validity": 0.9125}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} missing: `bash scripts/ci_setup.sh` installs it"),
]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A live MLflow server of this test's own; stopped by its process id afterwards."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    log = tmp_path / "mlflow_server.log"
    proc = start_mlflow_server(tmp_path / "mlflow.db", tmp_path / "mlartifacts", port=port, log=log)
    try:
        wait_until_healthy(url, proc, timeout=90, log=log)
        yield url
    finally:
        stop_server(proc)
    assert proc.poll() is not None, "mlflow server still running after stop_server"
    with pytest.raises(ProcessLookupError):  # its whole process group is gone too
        os.killpg(proc.pid, 0)


@pytest.fixture
def logged_run(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Log a run the way the pipeline does (tasks.tracking against MLFLOW_TRACKING_URI)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    previous = mlflow.get_tracking_uri()
    try:
        tracker = tracking.MlflowTracker(EXPERIMENT)
        with tracker.run(RUN_NAME, params={"problem": {"domain": "countdown"}}) as run_id:
            tracker.log_metrics(METRICS)
        run = mlflow.MlflowClient().get_run(run_id)
        return {"url": mlflow_server, "experiment_id": run.info.experiment_id, "run_id": run.info.run_id}
    finally:
        mlflow.set_tracking_uri(previous)  # leave no global pointing at a server that is about to stop


@pytest.mark.timeout(180)
def test_mlflow_ui_shows_pipeline_run_and_metric(logged_run: dict[str, str], tmp_path: Path,
                                                  record_property) -> None:
    screenshot = tmp_path / "mlflow_ui_run.png"
    open_run_page(logged_run["url"], logged_run["experiment_id"], logged_run["run_id"], RUN_NAME,
                  {name: str(value) for name, value in METRICS.items()}, screenshot, tmp_path)
    record_property("screenshot", str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def open_run_page(url: str, experiment_id: str, run_id: str, run_name: str, metrics: dict[str, str],
                  screenshot: Path, workdir: Path, experiment: str = EXPERIMENT) -> None:
    """Experiments -> `experiment` -> the run, in headless Chromium; each metric's row must show its
    text (a value, or "" for the name alone). Also used on the local stack's server."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as err:
        pytest.fail(f"playwright Python package missing ({err}): run `bash scripts/ci_setup.sh`")

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(workdir / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            page = context.new_page()
            experiment_url = f"{url}/#/experiments/{experiment_id}"
            page.goto(f"{url}/#/experiments")
            # MLflow 3 opens in GenAI mode; runs with metrics live under "Model training".
            page.get_by_text("Model training", exact=True).click()
            page.get_by_role("link", name=experiment, exact=True).click()
            runs_page = re.compile(re.escape(experiment_url) + r"/runs\b")
            expect(page).to_have_url(runs_page, timeout=UI_TIMEOUT_MS)
            page.get_by_role("link", name=run_name, exact=True).first.click()
            expect(page).to_have_url(f"{experiment_url}/runs/{run_id}", timeout=UI_TIMEOUT_MS)
            heading = page.get_by_role("heading", name=run_name, exact=True)
            expect(heading).to_be_visible(timeout=UI_TIMEOUT_MS)
            for name, text in metrics.items():
                row = page.get_by_role("row").filter(has_text=name)
                expect(row.first).to_contain_text(text, timeout=UI_TIMEOUT_MS)
            row.first.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot))
        finally:
            context.close()
