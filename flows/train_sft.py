"""Prefect flow `train_sft`: supervised fine-tuning of a transformer on a trace dataset.

Run it:
    metacot train sft --config configs/countdown/sft-cpu.yaml train.max_steps=200
    python -m flows.train_sft configs/countdown/sft-cpu.yaml ray.num_workers=2

One task wraps the whole stage (`tasks.sft.run_sft`): data and tokenizer checks, Ray Train workers,
MLflow run with params, per-step metrics, the dataset as input and the final model.
`train_sft_without_prefect` runs the same steps without starting Prefect's API (`--no-flow`).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from metacot_core.config import load_config
from metacot_core.training.config import SFTConfig
from tasks.sft import run_sft

STAGE = "train-sft"


@task(name="sft", cache_policy=NO_CACHE)  # a cached result would silently skip training
def sft_task(cfg: SFTConfig) -> dict[str, Any]:
    return run_sft(cfg)


@flow(name=STAGE, log_prints=True)
def train_sft(config_path: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load the config (YAML + `a.b=value` overrides) and train; returns the run summary."""
    cfg = load_config(SFTConfig, config_path, overrides or [])
    return sft_task(cfg)


def train_sft_without_prefect(
    config_path: str | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    return run_sft(load_config(SFTConfig, config_path, overrides or []))


if __name__ == "__main__":
    train_sft(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:])
