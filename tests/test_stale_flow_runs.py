"""A pipeline killed with SIGKILL left its Prefect flow runs "Running" forever; the next run of the same
config marks them (the pipeline's and the stage subflow it was in) Crashed, as it marks its MLflow runs
KILLED (issue 13, item 7). Also: an unreachable MLflow server is one line in seconds for the commands
that run without Prefect too (item 9)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from metacot_core.pipeline.state import PipelineState

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_the_next_run_marks_a_killed_runs_flow_runs_crashed(tmp_path: Path, prefect_api) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType

    from tasks.workflow_runs import crash_stale_flow_runs

    killed: dict[str, str] = {}

    @flow(name="train-sft")
    def stage() -> None:  # the stage subflow the pipeline was in when it was killed
        from prefect.context import FlowRunContext

        killed["stage"] = str(FlowRunContext.get().flow_run.id)

    state = PipelineState(tmp_path / "state.json", "key")

    @flow(name="metacot-pipeline")
    def first() -> None:
        from prefect.context import FlowRunContext

        killed["pipeline"] = str(FlowRunContext.get().flow_run.id)
        state.set_run("prefect", killed["pipeline"])
        stage()

    first()
    from prefect.states import Running

    with get_client(sync_client=True) as client:  # as a SIGKILL leaves them: Running, never told
        for run_id in killed.values():
            client.set_flow_run_state(run_id, Running(), force=True)

    @flow(name="metacot-pipeline")
    def second() -> list[str]:
        return crash_stale_flow_runs(PipelineState(tmp_path / "state.json", "key"))

    crashed = second()
    assert set(crashed) == set(killed.values())
    with get_client(sync_client=True) as client:
        assert {client.read_flow_run(r).state.type for r in killed.values()} == {StateType.CRASHED}
    again = PipelineState(tmp_path / "state.json", "key")
    assert again.run_id("prefect") not in killed.values()  # the second run is recorded now
    assert second() == []  # nothing is crashed twice, and a finished run is left alone


@pytest.mark.parametrize("command", [["generate", "--config", "configs/countdown/generate-cpu.yaml"],
                                     ["train", "sft", "--config", "configs/countdown/sft-cpu.yaml"]])
def test_an_unreachable_mlflow_server_is_one_line_in_seconds_without_prefect(command, tmp_path) -> None:
    from cli.processes import free_port

    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "PYTHONPATH": str(ROOT),
           "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "cli", *command, "--no-flow", f"output_dir={tmp_path}/o"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    seconds = time.perf_counter() - start
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert "is not reachable" in lines[0] and seconds < 60, (seconds, lines)
