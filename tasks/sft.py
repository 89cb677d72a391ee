"""SFT on Ray Train: DDP workers around `metacot_core.training.sft.train`.

    summary = run_sft(cfg, MlflowTracker(), train=train_sft)   # metacot_core.pipeline.stages

The tracked stage (checks, run, params, dataset, final model) is `metacot_core.pipeline.stages.run_sft`;
this module only says how the training itself runs: `ray.num_workers` DDP workers with `TorchTrainer`
(gloo on CPU, NCCL with `ray.use_gpu`) or, with `ray.enabled=false`, this process. Only rank 0 logs
step metrics, straight into the stage's run through the tracker's picklable step logger, since Ray
Train V2 hands back only the metrics reported together with a checkpoint (the final model folder).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from prefect import task
from prefect.cache_policies import NO_CACHE

from metacot_core.pipeline.stages import run_sft
from metacot_core.pipeline.tracker import StepLogger
from metacot_core.training import sft
from metacot_core.training.config import SFTConfig

SCALAR = (int, float)


def worker_loop(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: train, then report the final model with the summary."""
    import ray.train
    import ray.train.torch

    cfg = SFTConfig.model_validate(config["sft"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(int(config["threads"]))
    logger = config["logger"] if rank == 0 else None
    device = ray.train.torch.get_device() if cfg.ray.use_gpu else torch.device("cpu")
    summary = sft.train(cfg, rank, world, device, on_metrics=logger, progress=rank == 0)
    if logger is not None:
        logger.flush()
    report = {k: v for k, v in summary.items() if isinstance(v, SCALAR) and v is not None}
    checkpoint = ray.train.Checkpoint.from_directory(summary["final_dir"]) if rank == 0 else None
    ray.train.report(report, checkpoint=checkpoint)


def train_on_ray(cfg: SFTConfig, logger: StepLogger) -> dict[str, Any]:
    """Ray Train's DDP workers train (rank 0 logs step metrics with `logger`); returns the summary."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from tasks.ray_runtime import init_ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        need = cfg.ray.num_workers * cfg.ray.cpus_per_worker
        init_ray(
            address=address,
            num_cpus=None if address else max(os.cpu_count() or 1, int(need + 0.999)),
            include_dashboard=None,  # default: Train V2 polls the state API, which the dashboard serves
            log_to_driver=True,
        )
    threads = cfg.ray.torch_threads or max(1, int(cfg.ray.cpus_per_worker))
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={
            "sft": cfg.model_dump(mode="json"),
            "logger": logger,
            "threads": threads,
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.ray.num_workers,
            use_gpu=cfg.ray.use_gpu,
            resources_per_worker={"CPU": cfg.ray.cpus_per_worker},
        ),
        run_config=RunConfig(name=f"sft-{int(time.time())}", storage_path=str(Path(cfg.output_dir) / "ray")),
    )
    result = trainer.fit()
    out = dict(result.metrics or {})
    if result.checkpoint is not None:
        out["ray_checkpoint"] = result.checkpoint.path
    out["final_dir"] = str(Path(cfg.output_dir) / "final")
    return out


def train_sft(cfg: SFTConfig, logger: StepLogger) -> dict[str, Any]:
    """Ray Train workers when `ray.enabled`, else training in this process."""
    if cfg.ray.enabled:
        return train_on_ray(cfg, logger)
    return sft.train(cfg, on_metrics=logger)


@task(name="sft", cache_policy=NO_CACHE)  # a cached result would silently skip training
def sft_task(cfg: SFTConfig, tracker: Any) -> dict[str, Any]:
    """Prefect wrapper: the tracked SFT stage, trained by Ray Train workers when enabled."""
    return run_sft(cfg, tracker, train=train_sft)
