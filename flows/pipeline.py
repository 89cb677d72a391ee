"""Prefect flow `metacot-pipeline`: generate traces -> SFT -> RL (optional) -> evaluate, one experiment.

Run it:
    metacot run --config configs/countdown/pipeline-cpu.yaml
    metacot run --config configs/countdown/pipeline-cpu.yaml sft.train.max_steps=100 rl.enabled=false
    python -m flows.pipeline configs/countdown/pipeline-tiny.yaml

The core stage loop (metacot_core.pipeline.loop.run_pipeline: reuse of finished stages, resume of a
killed run, one process per config) with the MLflow tracker, each stage run as its own flow as a
subflow, so the Prefect UI shows the same flow runs as running the stages one by one, and everything
lands under one MLflow parent run (`pipeline-<name>`) with a nested run per stage. A pipeline killed
and started again also marks the Prefect flow runs it left "Running" as crashed. Generation is
retried (`generate.retries`); training is not, a re-run resumes it instead.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from flows.evaluate import evaluate
from flows.generate_traces import generate_traces
from flows.train_rl import train_rl
from flows.train_sft import train_sft
from metacot_core.pipeline.config import ResolvedPipeline, load_pipeline
from metacot_core.pipeline.loop import result_lines, run_pipeline
from metacot_core.pipeline.state import PipelineState
from metacot_core.pipeline.tracker import Tracker
from tasks.tracking import MlflowTracker, check_tracking, run_location
from tasks.workflow_runs import crash_stale_flow_runs

FLOW_NAME = "metacot-pipeline"
STAGE_FLOWS = {"generate": generate_traces, "sft": train_sft, "rl": train_rl, "evaluate": evaluate}


def subflow_call(pipe: ResolvedPipeline):
    """How the loop runs a stage here: as the stage's Prefect flow, with the stage's retries."""

    def call(stage: str, cfg: Any, tracker: Tracker) -> dict[str, Any]:
        spec = getattr(pipe.config, stage)
        delay = 2 if stage == "generate" else 0
        return STAGE_FLOWS[stage].with_options(retries=spec.retries, retry_delay_seconds=delay)(cfg)

    return call


def run_pipeline_flow(pipe: ResolvedPipeline) -> dict[str, Any]:
    """The stage loop with the MLflow tracker and Prefect subflows; prints and returns the results."""

    def on_start(state: PipelineState) -> None:
        crashed = crash_stale_flow_runs(state)
        if crashed:
            print(f"Prefect flow runs left running by a killed attempt marked crashed: {crashed}")

    results = run_pipeline(pipe, MlflowTracker(pipe.config.experiment), call=subflow_call(pipe),
                           on_start=on_start)
    results["mlflow"] = run_location(results["run_id"])
    print(report(pipe, results))
    return results


@flow(name=FLOW_NAME, log_prints=True, validate_parameters=True)
def pipeline(config_path: str, overrides: list[str] | None = None,
             mlflow_fallback: bool = False) -> dict[str, Any]:
    """One experiment end to end: generate -> SFT -> RL (when enabled) -> evaluate; returns each
    stage's summary, the headline metrics and where the MLflow runs are."""
    check_tracking(mlflow_fallback)
    return run_pipeline_flow(load_pipeline(config_path, overrides or []))


def report(pipe: ResolvedPipeline, results: dict[str, Any]) -> str:
    """The lines a person reads at the end: per-split results and where to look in MLflow."""
    lines = result_lines(pipe, results)
    ml = results["mlflow"]
    lines.append(f"MLflow: parent run {ml['run_id']} (experiment {pipe.config.experiment!r}, id "
                 f"{ml['experiment_id']}) at {ml['tracking_uri']}")
    page = f"#/experiments/{ml['experiment_id']}/runs/{ml['run_id']}"
    if not ml["tracking_uri"].startswith("http"):
        lines.append(f"  browse: metacot mlflow-server, then http://127.0.0.1:5000/{page}")
    else:
        lines.append(f"  browse: {ml['tracking_uri'].rstrip('/')}/{page}")
    lines.append(f"stage folders: {pipe.root}")
    return "\n".join(lines)


if __name__ == "__main__":
    pipeline(sys.argv[1], sys.argv[2:])
