"""Prefect flow `evaluate`: did the model learn to search? Decode, judge every step, compare, report.

Run it:
    metacot eval --checkpoint runs/sft/final --dataset data_out/countdown-cpu --split val_target
    python -m flows.evaluate configs/countdown/eval-cpu.yaml checkpoint=runs/sft/final dataset=data_out/x

The MLflow run (`evaluate`) is nested under the active pipeline run, else under the evaluated model's
run when its id is known (the `parent_run_id` setting, or a run id recorded in the checkpoint).
It gets the config as params, per-split metrics (`val_target.model.solve_rate`, ...), and the
per-problem table, summary.json and plots as artifacts under `eval/`.
`evaluate_no_flow(cfg)` runs the same steps without Prefect (`--no-flow`).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from metacot_core.config import load_config
from metacot_core.evaluation.config import EvalConfig
from metacot_core.pipeline.stages import EVALUATE_RUN
from tasks.evaluate import evaluate_task
from tasks.tracking import MlflowTracker


def build_eval_config(config_path: str | None, overrides: list[str] | None, checkpoint: str | None = None,
                      dataset: str | None = None, splits: list[str] | None = None,
                      parent_run_id: str | None = None) -> EvalConfig:
    """The config file plus overrides; explicit arguments (the CLI's options) win over both."""
    cfg = load_config(EvalConfig, config_path, list(overrides or []))
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


@flow(name=EVALUATE_RUN, log_prints=True)
def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset's held-out splits; returns the summary."""
    return evaluate_task(cfg, MlflowTracker(cfg.experiment))


def evaluate_no_flow(cfg: EvalConfig) -> dict[str, Any]:
    """The flow's one task as a plain call: no Prefect API (`--no-flow`)."""
    return evaluate_task.fn(cfg, MlflowTracker(cfg.experiment))


if __name__ == "__main__":
    evaluate(build_eval_config(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:]))
