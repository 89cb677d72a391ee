"""`metacot serve` as a user runs it: a Prefect server and served deployments in child processes, a run
made with the `prefect` CLI, the run's result checked through the API and in MLflow, then everything
stopped by process id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli.processes import free_port
from cli.serve import DEPLOYMENTS, build_deployments, server_env

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
DEPLOYMENT = "metacot-pipeline/countdown-cpu"


def test_server_env_pins_home_database_and_api_url(tmp_path: Path) -> None:
    env = server_env(tmp_path / "home", port=4321, base={"PREFECT_PROFILE": "remote", "PATH": "/bin"})
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    database = env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert database == f"sqlite+aiosqlite:///{tmp_path / 'home' / 'prefect.db'}"
    assert env["PREFECT_HOME"] == str(tmp_path / "home") and env["PREFECT_SERVER_API_HOST"] == "127.0.0.1"
    assert "PREFECT_PROFILE" not in env and env["PATH"] == "/bin"


def test_deployments_are_built_from_the_flows() -> None:
    built = {f"{d.flow_name}/{d.name}": d for d in build_deployments()}
    assert set(built) == set(DEPLOYMENTS)
    pipeline = built[DEPLOYMENT]
    assert pipeline.parameters == {"config_path": "configs/countdown/pipeline-cpu.yaml"}
    assert pipeline.enforce_parameter_schema
    schema = pipeline._parameter_openapi_schema.properties
    assert set(schema) == {"config_path", "overrides", "mlflow_fallback"}
    with pytest.raises(ValueError, match="unknown deployment 'nope/x'"):
        build_deployments(["nope/x"])


def _get(url: str) -> tuple[int, dict | list | None]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, None


def _wait_for(check, what: str, proc: subprocess.Popen, log: Path, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        value = check()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.mark.e2e
def test_serve_run_a_deployment_and_see_it_in_mlflow(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "METACOT_HOME": str(tmp_path)}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.serve", "--port", str(port), "--home", str(tmp_path / "prefect"),
             "--no-ui", "--deployment", DEPLOYMENT],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        _wait_for(lambda: _get(f"{api}/deployments/name/{DEPLOYMENT}")[0] == 200, "the deployment", proc,
                  log, timeout=180)
        user_env = {**env, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect")}

        def deployment_run(*params: str) -> subprocess.CompletedProcess:
            cmd = [PREFECT, "deployment", "run", DEPLOYMENT]
            for p in params:
                cmd += ["--param", p]
            return subprocess.run(cmd, cwd=ROOT, env=user_env, capture_output=True, text=True, timeout=120)

        bad = deployment_run("bogus=1")
        assert bad.returncode != 0
        assert "parameters were specified but not found on the deployment: 'bogus'" in bad.stdout + bad.stderr

        made = deployment_run("config_path=configs/countdown/pipeline-tiny.yaml",
                              f'overrides=["output_root={tmp_path / "runs"}"]')
        assert made.returncode == 0, made.stdout + made.stderr
        run_id = next(line.split("UUID:")[1].strip() for line in made.stdout.splitlines() if "UUID:" in line)

        def finished() -> dict | None:
            status, body = _get(f"{api}/flow_runs/{run_id}")
            state = (body or {}).get("state") or {}
            return body if state.get("type") in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

        flow_run = _wait_for(finished, "the flow run", proc, log, timeout=300)
        assert flow_run["state"]["type"] == "COMPLETED", log.read_text()[-3000:]
        assert flow_run["parameters"]["config_path"] == "configs/countdown/pipeline-tiny.yaml"
    finally:
        proc.send_signal(signal.SIGTERM)  # serve stops its server and serve processes by their ids
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()[-3000:]
    assert _get(f"{api}/health")[0] == 0  # the server is gone

    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["metacot"], output_format="list")
    parents = [r for r in runs if r.info.run_name == "pipeline-countdown-tiny"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id = parents[0].info.run_id
    children = {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id}
    assert children == {"generate-traces", "sft-countdown-tiny", "evaluate"}
    assert "val_target.solve_rate" in parents[0].data.metrics
