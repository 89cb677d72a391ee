"""Prefect flow `train_sft`: supervised fine-tuning of a transformer on a trace dataset.

Run it:
    metacot train sft --config configs/countdown/sft-cpu.yaml train.max_steps=200
    python -m flows.train_sft configs/countdown/sft-cpu.yaml ray.num_workers=2

One task wraps the whole stage (`tasks.sft.sft_task`: metacot_core.pipeline.stages.run_sft with Ray
Train workers): data and tokenizer checks, MLflow run with params, per-step metrics, the dataset as
input and the final model. `train_sft_no_flow(cfg)` runs the same steps without Prefect (`--no-flow`).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from metacot_core.config import load_config
from metacot_core.training.config import SFTConfig
from tasks.sft import sft_task
from tasks.tracking import MlflowTracker

STAGE = "train-sft"


@flow(name=STAGE, log_prints=True)
def train_sft(cfg: SFTConfig) -> dict[str, Any]:
    """Train (resuming a checkpoint in output_dir); returns the run summary."""
    return sft_task(cfg, MlflowTracker(cfg.tracking.experiment))


def train_sft_no_flow(cfg: SFTConfig) -> dict[str, Any]:
    """The flow's one task as a plain call: no Prefect API (`--no-flow`)."""
    return sft_task.fn(cfg, MlflowTracker(cfg.tracking.experiment))


if __name__ == "__main__":
    train_sft(load_config(SFTConfig, sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:]))
