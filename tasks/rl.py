"""RL post-training as a tracked stage: the core run (metacot_core.rl.runner) plus MLflow logging.

`run_rl(cfg)` opens an MLflow run (`rl-star` / `rl-grpo`, nested under a pipeline run when there is
one) with the flattened config as params, streams every step's metrics (reward mean/std, solve and
valid-trace rates, trace length, states explored, KL, entropy, collapse alarms, held-out eval with
its Wilson interval), and logs the final checkpoint folder as an artifact. A resumed run opens a new
MLflow run tagged with the checkpoint it continued from; steps keep their numbers, so the curves join.
With `rollout.workers > 0` the rollouts are sampled by a pool of Ray actors (tasks/rl_actors.py, on
the cluster at RAY_ADDRESS when set) while this process learns.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from prefect import task
from prefect.cache_policies import NO_CACHE

from metacot_core.config import config_hash
from metacot_core.rl.common import Sampler
from metacot_core.rl.config import RLConfig
from metacot_core.rl.runner import RLRun, prepare, run
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


@contextmanager
def sampler_for(prepared: RLRun) -> Iterator[Sampler | None]:
    """A Ray rollout pool holding the prepared model when rollout.workers > 0, else None (in-process)."""
    cfg = prepared.cfg.rollout
    if cfg.workers == 0 or prepared.start >= prepared.total:  # nothing to sample: no actors
        yield None
        return
    from tasks.rl_actors import rollout_pool

    with rollout_pool(cfg, prepared.model, prepared.tokenizer) as pool:
        log.info("rl rollouts: %d Ray actors on %s", len(pool.workers), ", ".join(pool.devices))
        yield pool


def run_rl(cfg: RLConfig, track: bool = True) -> dict[str, Any]:
    """Run (or resume) STaR or GRPO per `cfg`; with `track` everything goes to MLflow."""
    prepared = prepare(cfg)  # fails on bad paths before an MLflow run is opened
    if not track:
        with sampler_for(prepared) as sampler:
            return run(cfg, prepared=prepared, sampler=sampler)
    tags = {"stage": stage_name(cfg), "method": cfg.method, "config_hash": config_hash(cfg),
            "init_checkpoint": cfg.init_checkpoint}
    if prepared.resumed_from:
        tags["resumed_from"] = prepared.resumed_from
    with stage_run(stage_name(cfg), params=cfg.model_dump(mode="json"), tags=tags), \
            sampler_for(prepared) as sampler:
        summary = run(cfg, log=log_metrics, prepared=prepared, sampler=sampler)
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
