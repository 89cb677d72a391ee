"""SFT run: Ray Train workers around `metacot_core.training.sft.train`, everything logged to MLflow.

    from tasks.sft import run_sft
    summary = run_sft(load_config(SFTConfig, "configs/countdown/sft-cpu.yaml"))

The driver checks the input (`prepare_run`: data, tokenizer, output folder, resume compatibility),
opens the MLflow run (nested under an active parent run), logs params and the dataset, then starts
`ray.num_workers` DDP workers with `TorchTrainer` (gloo on CPU, NCCL with `ray.use_gpu`) or, with
`ray.enabled=false`, trains in this process. Only rank 0 writes to MLflow, straight into the run by
id, since Ray Train V2 hands back only the metrics reported together with a checkpoint (the final
model folder, here). At the end the final model is logged as an MLflow transformers model.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import mlflow
import torch
from mlflow.tracking import MlflowClient

from metacot_core.training import sft
from metacot_core.training.config import SFTConfig
from tasks import tracking

SCALAR = (int, float)


class MlflowStepLogger:
    """Step metrics to an MLflow run by id, batched (one call per `flush_every` steps)."""

    def __init__(self, run_id: str, tracking_uri: str, flush_every: int = 20) -> None:
        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id
        self.flush_every = flush_every
        self.pending: list[Any] = []
        self.calls = 0

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        names = ("loss", "lr", "grad_norm", "tokens_per_sec", "val_loss", "epoch")
        self.pending += [Metric(k, float(metrics[k]), now, step) for k in names if k in metrics]
        self.calls += 1
        if self.calls % self.flush_every == 0 or "val_loss" in metrics:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.client.log_batch(self.run_id, metrics=self.pending)
            self.pending = []


def absolute_paths(cfg: SFTConfig) -> SFTConfig:
    """Paths made absolute, since Ray workers run in another working directory."""

    def absolute(p: str | None) -> str | None:
        return None if p is None else str(Path(p).expanduser().resolve())

    resume = cfg.resume if cfg.resume in ("auto", "never") else absolute(cfg.resume)
    return cfg.model_copy(
        update={
            "data": cfg.data.model_copy(update={"path": absolute(cfg.data.path)}),
            "tokenizer": cfg.tokenizer.model_copy(update={"path": absolute(cfg.tokenizer.path)}),
            "model": cfg.model.model_copy(update={"init_from": absolute(cfg.model.init_from)}),
            "output_dir": absolute(cfg.output_dir),
            "resume": resume,
        }
    )


def worker_loop(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: train, then report the final model with the summary."""
    import ray.train
    import ray.train.torch

    cfg = SFTConfig.model_validate(config["sft"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(int(config["threads"]))
    logger = None
    if rank == 0 and config.get("run_id"):
        logger = MlflowStepLogger(config["run_id"], config["tracking_uri"])
    device = ray.train.torch.get_device() if cfg.ray.use_gpu else torch.device("cpu")
    summary = sft.train(cfg, rank, world, device, on_metrics=logger, progress=rank == 0)
    if logger is not None:
        logger.flush()
    report = {k: v for k, v in summary.items() if isinstance(v, SCALAR) and v is not None}
    checkpoint = ray.train.Checkpoint.from_directory(summary["final_dir"]) if rank == 0 else None
    ray.train.report(report, checkpoint=checkpoint)


def run_ray(cfg: SFTConfig, run_id: str | None) -> dict[str, Any]:
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
            "run_id": run_id,
            "threads": threads,
            "tracking_uri": tracking.default_tracking_uri(),
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
    return out


def log_inputs(cfg: SFTConfig, data: sft.RunData) -> None:
    """Params, the dataset as a tracked input (digest: the card's content hash when the folder has a
    card, so generate and SFT runs show the same dataset; else the hash of the rows trained on)."""
    import json
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    root = Path(cfg.data.path)
    card = root / "card.json"
    content_hash = json.loads(card.read_text()).get("content_hash") if card.is_file() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # local sources register under two schemes
        source = resolve_dataset_source(str(root))
    dataset = MetaDataset(source, name=root.name, digest=(content_hash or data.train_hash)[:36])
    mlflow.log_input(dataset, context="training")
    stats = {f"data.{split}.{k}": v for split, s in data.overflow.items() for k, v in s.items()}
    stats["data.padding_waste"] = sft.padding_waste(data.train)
    mlflow.log_metrics(stats, step=0)
    mlflow.log_params(
        {
            "data.train_rows_hash": data.train_hash,
            "data.train_rows": data.train_rows,
            "tokenizer.vocab_size": len(data.tokenizer),
            "train.seq_len_resolved": data.seq_len,
        }
    )
    if content_hash:
        mlflow.set_tag("dataset.content_hash", content_hash)


def log_final_model(final_dir: str) -> None:
    """The final model + tokenizer as an MLflow transformers model (`mlflow.transformers.load_model`)."""
    import transformers
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(final_dir, local_files_only=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(final_dir, local_files_only=True, trust_remote_code=False)
    # explicit requirements: mlflow's inference imports every optional vision/audio package
    reqs = [f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}"]
    # our own card: without one, mlflow asks the Hugging Face hub for a card named after the path
    card = ModelCard(
        "---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n"
        "# metacot SFT model\nTrained from scratch on search traces by metacot "
        "(see sft_config.json for how).\n"
    )
    mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer},
        name="model",
        task="text-generation",
        pip_requirements=reqs,
        model_card=card,
    )
    mlflow.log_artifact(str(Path(final_dir) / "sft_config.json"))


def run_sft(cfg: SFTConfig) -> dict[str, Any]:
    """The whole SFT stage; returns the summary (final losses, paths, counts)."""
    cfg, data = sft.prepare_run(absolute_paths(cfg))
    with tracking.stage_run(
        cfg.tracking.run_name,
        cfg.tracking.experiment,
        params=cfg.model_dump(mode="json"),
        tags={"stage": "sft"},
    ) as run:
        log_inputs(cfg, data)
        if cfg.ray.enabled:
            summary = run_ray(cfg, run.info.run_id)
            summary["final_dir"] = str(Path(cfg.output_dir) / "final")
        else:
            logger = MlflowStepLogger(run.info.run_id, tracking.default_tracking_uri())
            summary = sft.train(cfg, on_metrics=logger)
            logger.flush()
        for key in ("loss", "val_loss"):
            if summary.get(key) is not None:
                mlflow.log_metric(f"final_{key}", float(summary[key]))
        if cfg.tracking.log_model:
            log_final_model(summary["final_dir"])
        summary["mlflow_run_id"] = run.info.run_id
    return summary
