"""Record in MLflow the arms of an experiment that ran elsewhere with `python -m metacot_core.offline`.

    metacot experiment configs/countdown/sos-vs-solution-gpu-lease.yaml --record-offline

The offline runner leaves, per arm, the pipeline's stage folders and state file (stage summaries and
seconds, the hardware it ran on, no MLflow run ids) and the SFT history. This turns each finished arm
into a pipeline run nested under the experiment's run, as `metacot experiment` would have made it:
the stage hashes and pipeline config as params, the SFT steps' loss, validation loss and throughput
as step metrics, the evaluation's metrics, per-problem table, summary and plots, and each stage's
seconds; tagged `executed_offline` with the hardware. Then it writes and logs the results table
(results.md names the hardware that ran the arms, not this machine). Nothing is trained or evaluated
here; an arm recorded before is not recorded twice (its run id is kept in its pipeline state).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param

from flows.experiment import STATE_NAME, log_results, open_parent, write_results
from flows.pipeline import check_tracking, headline_metrics
from metacot_core.data.card import CARD_NAME
from metacot_core.experiment_config import Arm, load_experiment
from metacot_core.offline import EXECUTED_KEY, HISTORY_NAME
from metacot_core.pipeline_state import PipelineState
from tasks import tracking
from tasks.evaluate import log_evaluation
from tasks.generate import log_dataset

SFT_STEP_METRICS = ("loss", "val_loss", "lr", "tokens_per_sec", "grad_norm")


class NotRunOffline(ValueError):
    """An arm asked for has no finished offline run to record."""


def _log_metrics(client: mlflow.MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for i in range(0, len(metrics), 500):  # MLflow's batch limit
        client.log_batch(run_id, metrics=metrics[i:i + 500])


def history_metrics(history: list[dict[str, Any]], now: int) -> list[Metric]:
    """`sft.<name>` step metrics from the SFT history the offline runner saved."""
    return [Metric(f"sft.{key}", float(entry[key]), now, int(entry["step"]))
            for entry in history for key in SFT_STEP_METRICS
            if isinstance(entry.get(key), int | float)]


def arm_state(arm: Arm) -> tuple[PipelineState, dict[str, Any]]:
    """The arm's pipeline state and its offline execution record; NotRunOffline when unfinished."""
    pipe = arm.pipeline
    state = PipelineState(pipe.state_path, pipe.key)
    executed = state.data.get(EXECUTED_KEY)
    if executed is None or state.finished("evaluate", pipe.hashes["evaluate"]) is None:
        raise NotRunOffline(f"arm {arm.label}: no finished offline run in {pipe.state_path} (run "
                            f"`python -m metacot_core.offline <config> --only {arm.arm}` and copy "
                            f"{pipe.root} here)")
    return state, executed


def _already_recorded(state: PipelineState) -> bool:
    if not state.parent_run_id:
        return False
    try:
        run = mlflow.MlflowClient().get_run(state.parent_run_id)
    except Exception:  # noqa: BLE001 - each store raises its own error for an unknown id
        return False
    return run.data.tags.get(EXECUTED_KEY) == "true"


def record_arm(arm: Arm, parent_id: str, state: PipelineState, executed: dict[str, Any]) -> str:
    """One finished offline arm as an MLflow pipeline run under `parent_id`; returns its run id."""
    if _already_recorded(state):
        return str(state.parent_run_id)
    pipe = arm.pipeline
    client = mlflow.MlflowClient()
    exp_id = client.get_run(parent_id).info.experiment_id
    tags = {"stage": "pipeline", "pipeline.name": pipe.config.name, "config_hash": pipe.key,
            "mlflow.parentRunId": parent_id, "experiment.arm": arm.label, EXECUTED_KEY: "true",
            "executed.hardware": executed["hardware"], "executed.by": executed.get("by", ""),
            "executed.started_at": executed.get("started_at", ""),
            "executed.trial": executed.get("trial") or ""}
    run_id = client.create_run(exp_id, run_name=f"pipeline-{pipe.config.name}", tags=tags).info.run_id
    params = {f"hash.{k}": v for k, v in pipe.hashes.items()} | {"name": pipe.config.name,
                                                                 "rl.enabled": str(pipe.rl is not None)}
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(params.items())])
    client.log_dict(run_id, pipe.config.model_dump(mode="json"), "pipeline_config.json")
    now = int(time.time() * 1000)
    metrics = [Metric(f"seconds.{stage}", float(entry["seconds"]), now, 0)
               for stage, entry in state.data["stages"].items() if entry.get("seconds") is not None]
    sft = (state.finished("sft", pipe.hashes["sft"]) or {}).get("summary", {})
    metrics += [Metric(f"sft.final_{key}", float(sft[key]), now, 0)
                for key in ("loss", "val_loss", "tokens_per_sec", "tokens_seen", "params")
                if isinstance(sft.get(key), int | float)]
    history = Path(pipe.sft.output_dir) / HISTORY_NAME
    if history.is_file():
        metrics += history_metrics(json.loads(history.read_text()), now)
    eval_dir = Path(pipe.evaluate.output_dir)
    summary = json.loads((eval_dir / "summary.json").read_text())
    metrics += [Metric(k, v, now, 0) for k, v in headline_metrics(summary).items()]
    _log_metrics(client, run_id, metrics)
    paths = {"table": eval_dir / "table.parquet", "summary": eval_dir / "summary.json",
             "plots": sorted((eval_dir / "plots").glob("*.png"))}
    log_evaluation(run_id, summary, paths)
    card = Path(pipe.generate.output_dir) / CARD_NAME
    if card.is_file():  # the dataset as the run's MLflow input, as the pipeline's generate stage logs it
        log_dataset(json.loads(card.read_text()), pipe.generate.output_dir, run_id)
    for config in sorted((pipe.root / "configs").glob("*.yaml")):
        client.log_artifact(run_id, str(config), artifact_path="configs")
    client.set_terminated(run_id, status="FINISHED")
    state.set_parent(run_id)
    return run_id


def record_arms(found: list[tuple[Arm, PipelineState, dict[str, Any]]], parent_id: str,
                exp_state: PipelineState) -> str:
    """Record each (arm, state, execution record) under the experiment's run; returns the line that
    says where they ran, for the results table."""
    for arm, state, executed in found:
        run_id = record_arm(arm, parent_id, state, executed)
        exp_state.finish(arm.label, arm.pipeline.key, {"recorded_offline": True}, [run_id])
        print(f"recorded arm {arm.label} (ran on {executed['hardware']}): MLflow run {run_id}")
    ran_on = sorted({executed["hardware"] for _, _, executed in found})
    started = sorted(executed.get("started_at", "") for _, _, executed in found)
    by = sorted({executed.get("by", "") for _, _, executed in found})
    trials = {executed["trial"] for _, _, executed in found if executed.get("trial")}
    by_text = ", ".join(by) + (f" ({len(trials)} trial{'s' if len(trials) > 1 else ''})" if trials else "")
    return f"{'; '.join(ran_on)} (run by {by_text} from {started[0]}; recorded here)" if found else ""


def record_offline(config_path: str, overrides: list[str] | None = None, only: list[str] | None = None,
                   mlflow_fallback: bool = False) -> dict[str, Any]:
    """Record every selected arm (all must have finished offline), then the results table."""
    exp = load_experiment(config_path, overrides or [])
    selected = exp.select(only)
    found = [(arm, *arm_state(arm)) for arm in selected]  # every arm checked before anything is logged
    check_tracking(mlflow_fallback)
    tracking.configure(exp.config.experiment)
    exp_state = PipelineState(exp.root / STATE_NAME, exp.key)
    parent_id = open_parent(exp, exp_state)
    client = mlflow.MlflowClient()
    client.set_tag(parent_id, EXECUTED_KEY, "true")
    ran = record_arms(found, parent_id, exp_state)
    command = " ".join(["python -m metacot_core.offline", config_path, *(overrides or []),
                        *(f"--only {name}" for name in only or [])])
    rows, paths = write_results(exp, parent_id, command, ran_on=ran)
    log_results(parent_id, rows, paths)
    client.set_terminated(parent_id, status="FINISHED")
    print(Path(paths["markdown"]).read_text())
    print(f"results: {exp.root} (results.md, results.parquet, plots/); MLflow run {parent_id}")
    return {"rows": rows, "arms": [a.label for a in selected],
            "outputs": {k: [str(p) for p in v] if isinstance(v, list) else str(v) for k, v in paths.items()},
            "mlflow": {"run_id": parent_id, "tracking_uri": mlflow.get_tracking_uri()}}
