"""Prefect flow `train_rl`: RL post-training (STaR or GRPO) of an SFT checkpoint, tracked in MLflow.

Run it:
    metacot train rl --method grpo --config configs/countdown/rl-grpo-cpu.yaml init_checkpoint=runs/sft/final
    python -m flows.train_rl configs/countdown/rl-star-cpu.yaml star.iterations=2

Rerunning the same command after an interruption resumes from the last checkpoint in output_dir.
`train_rl_no_flow(cfg)` runs the same steps without Prefect (`--no-flow`).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from metacot_core.config import load_config
from metacot_core.rl.config import RLConfig
from tasks.rl import rl_task
from tasks.tracking import MlflowTracker


def load_rl_config(config_path: str | None, overrides: list[str] | None = None,
                   method: str | None = None) -> RLConfig:
    """The config file with overrides; `method` (from the CLI flag) wins over the file's."""
    extra = list(overrides or [])
    if method is not None:
        extra.append(f"method={method}")
    return load_config(RLConfig, config_path, extra)


@flow(name="train_rl", log_prints=True)
def train_rl(cfg: RLConfig) -> dict[str, Any]:
    """Run STaR or GRPO (resuming when output_dir has a checkpoint), logged to MLflow."""
    return rl_task(cfg, MlflowTracker())


def train_rl_no_flow(cfg: RLConfig) -> dict[str, Any]:
    """The flow's one task as a plain call: no Prefect API (`--no-flow`)."""
    return rl_task.fn(cfg, MlflowTracker())


if __name__ == "__main__":
    train_rl(load_rl_config(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:]))
