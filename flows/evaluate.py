"""Prefect flow `evaluate`: did the model learn to search? Decode, judge every step, compare, report.

Run it:
    metacot eval --checkpoint runs/sft/final --dataset data_out/countdown-cpu --split val_target
    python -m flows.evaluate configs/countdown/eval-cpu.yaml checkpoint=runs/sft/final dataset=data_out/x

The MLflow run (`evaluate`) is nested under the active pipeline run, else under the evaluated model's
run when its id is known (the `parent_run_id` setting, or a run id recorded in the checkpoint).
It gets the config as params, per-split metrics (`val_target.model.solve_rate`, ...), and the
per-problem table, summary.json and plots as artifacts under `eval/`.
"""

from __future__ import annotations

import sys
from typing import Any

import mlflow
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from prefect import flow

from metacot_core.config import load_config
from metacot_core.evaluation.config import EvalConfig
from metacot_core.evaluation.runner import check_inputs, run_evaluation
from tasks.evaluate import (
    checkpoint_run_id,
    evaluate_task,
    load_checkpoint_task,
    load_items_task,
    log_evaluation,
    log_evaluation_task,
    report_task,
)
from tasks.tracking import configure, stage_run

STAGE = "evaluate"


def build_eval_config(config_path: str | None, overrides: list[str] | None, checkpoint: str | None = None,
                      dataset: str | None = None, splits: list[str] | None = None,
                      parent_run_id: str | None = None) -> EvalConfig:
    """The config file plus overrides; explicit arguments (the CLI's options) win over both."""
    extra = list(overrides or [])
    cfg = load_config(EvalConfig, config_path, extra)
    updates: dict[str, Any] = {}
    if checkpoint is not None:
        updates["checkpoint"] = checkpoint
    if dataset is not None:
        updates["dataset"] = dataset
    if splits:
        updates["splits"] = list(splits)
    if parent_run_id is not None:
        updates["parent_run_id"] = parent_run_id
    if updates:
        cfg = EvalConfig.model_validate({**cfg.model_dump(), **updates})
    return cfg


def _run_exists(run_id: str) -> bool:
    try:
        mlflow.get_run(run_id)
    except Exception:  # noqa: BLE001 - MLflow raises different errors per store for an unknown id
        return False
    return True


def parent_tags(cfg: EvalConfig) -> dict[str, str]:
    """Tags that nest the evaluation run under the evaluated model's run, when that run is known.

    The parent is `parent_run_id`, else a run id recorded in the checkpoint; an active pipeline run
    takes precedence (stage_run nests under it). An explicit parent_run_id that does not exist is an
    error; a stale id found in a checkpoint is not. The parent run itself is not touched.
    """
    if mlflow.active_run() is not None:
        return {}
    parent = cfg.parent_run_id or (checkpoint_run_id(cfg.checkpoint) if cfg.checkpoint else None)
    if parent is None:
        return {}
    configure(cfg.experiment)
    if _run_exists(parent):
        return {MLFLOW_PARENT_RUN_ID: parent}
    if cfg.parent_run_id:
        raise ValueError(f"parent_run_id: no MLflow run {parent!r} in this tracking store")
    return {}


def _tags(cfg: EvalConfig) -> dict[str, str]:
    tags = {"stage": STAGE, "checkpoint": str(cfg.checkpoint), "dataset": str(cfg.dataset)}
    return {**tags, **parent_tags(cfg)}


@flow(name=STAGE, log_prints=True)
def evaluate(config_path: str | None = None, overrides: list[str] | None = None,
             checkpoint: str | None = None, dataset: str | None = None, splits: list[str] | None = None,
             parent_run_id: str | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset's held-out splits; returns the summary."""
    cfg = build_eval_config(config_path, overrides, checkpoint, dataset, splits, parent_run_id)
    check_inputs(cfg)
    with stage_run(STAGE, cfg.experiment, params=cfg.model_dump(mode="json"), tags=_tags(cfg)) as run:
        loaded = load_checkpoint_task(cfg)
        items = load_items_task(cfg)
        records, summary = evaluate_task(cfg, loaded, items)
        paths = report_task(records, summary, cfg.output_dir)
        log_evaluation_task(run.info.run_id, summary, paths)
        summary["mlflow_run_id"] = run.info.run_id
    return summary


def evaluate_without_prefect(cfg: EvalConfig, track: bool = True) -> dict[str, Any]:
    """The flow's steps as plain calls (no Prefect API start-up); `track=False` skips MLflow too."""
    if not track:
        return run_evaluation(cfg)[1]
    check_inputs(cfg)
    with stage_run(STAGE, cfg.experiment, params=cfg.model_dump(mode="json"), tags=_tags(cfg)) as run:
        _, summary, paths = run_evaluation(cfg)
        log_evaluation(run.info.run_id, summary, paths)
        summary["mlflow_run_id"] = run.info.run_id
    return summary


if __name__ == "__main__":
    evaluate(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:])
