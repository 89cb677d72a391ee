"""RL post-training as a tracked stage: the core run (metacot_core.rl.runner) plus MLflow logging.

`run_rl(cfg)` opens an MLflow run (`rl-star` / `rl-grpo`, nested under a pipeline run when there is
one) with the flattened config as params, streams every step's metrics (reward mean/std, solve and
valid-trace rates, trace length, states explored, KL, entropy, collapse alarms, held-out eval with
its Wilson interval), and logs the final checkpoint folder as an artifact. A resumed run opens a new
MLflow run tagged with the checkpoint it continued from; steps keep their numbers, so the curves join.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import mlflow
from prefect import task
from prefect.cache_policies import NO_CACHE

from metacot_core.config import config_hash
from metacot_core.rl.config import RLConfig
from metacot_core.rl.runner import prepare, run
from tasks.tracking import stage_run

log = logging.getLogger(__name__)


def stage_name(cfg: RLConfig) -> str:
    return f"rl-{cfg.method}"


def _mlflow_name(key: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and space; anything else becomes _."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)


def log_metrics(metrics: dict[str, float], step: int) -> None:
    """Finite metrics to the active MLflow run, and a one-line progress note to the log."""
    clean = {_mlflow_name(k): float(v) for k, v in metrics.items() if math.isfinite(float(v))}
    if clean:
        mlflow.log_metrics(clean, step=step)
    shown = {k: round(v, 4) for k, v in clean.items()
             if k.endswith(("reward_mean", "solve_rate", "kl")) and not k.startswith("guard")}
    log.info("rl step %d: %s", step, shown)


def run_rl(cfg: RLConfig, track: bool = True) -> dict[str, Any]:
    """Run (or resume) STaR or GRPO per `cfg`; with `track` everything goes to MLflow."""
    if not track:
        return run(cfg)
    prepared = prepare(cfg)  # fails on bad paths before an MLflow run is opened
    tags = {"stage": stage_name(cfg), "method": cfg.method, "config_hash": config_hash(cfg),
            "init_checkpoint": cfg.init_checkpoint}
    if prepared.resumed_from:
        tags["resumed_from"] = prepared.resumed_from
    with stage_run(stage_name(cfg), params=cfg.model_dump(mode="json"), tags=tags):
        summary = run(cfg, log=log_metrics, prepared=prepared)
        if summary.get("checkpoint"):
            mlflow.log_artifacts(summary["checkpoint"], artifact_path="checkpoint")
        mlflow.log_dict(_jsonable(summary), "rl_summary.json")
    return summary


def _jsonable(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in summary.items()}


@task(name="rl-train", cache_policy=NO_CACHE)
def rl_task(cfg: RLConfig, track: bool = True) -> dict[str, Any]:
    """Prefect task wrapper: no retries (a rerun resumes from the last checkpoint instead)."""
    return run_rl(cfg, track)
