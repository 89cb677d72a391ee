"""Evaluation steps as Prefect tasks, and the MLflow logging of their outputs.

`run_evaluation(cfg)` (metacot_core.evaluation.runner) does the whole evaluation in this process (load
checkpoint and problems, decode, judge, compare with the teacher, write table/summary/plots); the flow
calls the same steps as tasks.
`log_evaluation` attaches metrics and files to an MLflow run by id, so it works from any thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import mlflow
from prefect import task
from prefect.cache_policies import NO_CACHE

from metacot_core.evaluation.config import EvalConfig
from metacot_core.evaluation.generate import load_checkpoint
from metacot_core.evaluation.metrics import flat_metrics
from metacot_core.evaluation.report import write_report
from metacot_core.evaluation.runner import EvalItem, evaluate_loaded, load_items

# Files a checkpoint may carry that name the MLflow run that trained it (first key found wins).
RUN_ID_FILES = ("metacot.json", "sft_config.json", "rl_config.json")
RUN_ID_KEYS = ("mlflow_run_id", "run_id")


def checkpoint_run_id(checkpoint: str | Path) -> str | None:
    """The MLflow run id recorded in a checkpoint's metadata, when training wrote one."""
    for name in RUN_ID_FILES:
        path = Path(checkpoint) / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        for key in RUN_ID_KEYS:
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, str) and value:
                return value
    return None


def log_evaluation(run_id: str, summary: dict[str, Any], paths: dict[str, Any]) -> None:
    """Metrics (flattened per split) and the table, summary and plots as artifacts of run `run_id`."""
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    metrics = flat_metrics(summary.get("splits", {}))
    if "seconds" in summary:
        metrics["seconds"] = float(summary["seconds"])
    names = sorted(metrics)
    for i in range(0, len(names), 500):  # MLflow's batch limit
        client.log_batch(run_id, metrics=[Metric(k, metrics[k], now, 0) for k in names[i:i + 500]])
    client.log_artifact(run_id, str(paths["table"]), artifact_path="eval")
    client.log_artifact(run_id, str(paths["summary"]), artifact_path="eval")
    for plot in paths.get("plots", []):
        client.log_artifact(run_id, str(plot), artifact_path="eval/plots")


@task(name="load-checkpoint", cache_policy=NO_CACHE)
def load_checkpoint_task(cfg: EvalConfig) -> tuple[Any, Any]:
    return load_checkpoint(cfg.checkpoint, cfg.generation.device)


@task(name="load-problems", cache_policy=NO_CACHE)
def load_items_task(cfg: EvalConfig) -> list[EvalItem]:
    return load_items(cfg.dataset, cfg.splits, cfg.max_problems, cfg.format)


@task(name="generate-and-judge", cache_policy=NO_CACHE)
def evaluate_task(cfg: EvalConfig, loaded: tuple[Any, Any],
                  items: list[EvalItem]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    model, tokenizer = loaded
    return evaluate_loaded(cfg, model, tokenizer, items)


@task(name="write-report", cache_policy=NO_CACHE)
def report_task(records: list[dict[str, Any]], summary: dict[str, Any], out_dir: str) -> dict[str, Any]:
    return write_report(records, summary, out_dir)


@task(name="log-evaluation", cache_policy=NO_CACHE)
def log_evaluation_task(run_id: str, summary: dict[str, Any], paths: dict[str, Any]) -> None:
    log_evaluation(run_id, summary, paths)
