"""Prefect flow `generate_traces`: generate a trace dataset, write its card, log it all to MLflow.

Run it:
    metacot generate --config configs/countdown/generate-cpu.yaml counts.train=100
    python -m flows.generate_traces configs/countdown/generate-cpu.yaml search.node_budget=500

The MLflow run (`generate-traces`, nested under a pipeline run when there is one) gets the flattened
config as params, the card's figures as metrics (rows, solved rate, traces/s, trace-length
percentiles), card.json as an artifact, and the dataset folder as a run input whose digest is the
dataset's content hash (metacot_core.pipeline.stages.run_generate). `generate_no_flow(cfg)` runs
the same steps without Prefect (`--no-flow`).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from metacot_core.config import load_config
from metacot_core.data.config import GenerateConfig
from metacot_core.pipeline.stages import GENERATE_RUN, run_generate
from metacot_core.pipeline.tracker import NullTracker
from tasks.generate import generate_dataset, generate_task
from tasks.tracking import MlflowTracker


@flow(name=GENERATE_RUN, log_prints=True)
def generate_traces(cfg: GenerateConfig) -> dict[str, Any]:
    """Every shard (Ray or in-process), the card, and the MLflow run."""
    return run_generate(cfg, MlflowTracker(), make=generate_task)


def generate_no_flow(cfg: GenerateConfig) -> dict[str, Any]:
    """The flow's steps as plain calls: no Prefect API (`--no-flow`)."""
    return run_generate(cfg, MlflowTracker(), make=generate_dataset)


def generate_untracked(cfg: GenerateConfig) -> dict[str, Any]:
    """The dataset and its card with nothing logged (`--no-track`)."""
    return run_generate(cfg, NullTracker(), make=generate_dataset)


if __name__ == "__main__":
    generate_traces(load_config(GenerateConfig, sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:]))
