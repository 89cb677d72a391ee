"""Prefect flow `generate_traces`: generate a trace dataset, write its card, log it all to MLflow.

Run it:
    metacot generate --config configs/countdown/generate-cpu.yaml counts.train=100
    python -m flows.generate_traces configs/countdown/generate-cpu.yaml search.node_budget=500

The MLflow run (`generate-traces`, nested under a pipeline run when there is one) gets the flattened
config as params, the card's figures as metrics (rows, solved rate, traces/s, trace-length
percentiles), card.json as an artifact, and the dataset folder as a run input whose digest is the
dataset's content hash. `generate_without_prefect` does the same steps without Prefect (`--no-flow`).
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from metacot_core.config import load_config
from metacot_core.data.config import GenerateConfig
from tasks.generate import generate_dataset, generate_task, log_dataset, log_dataset_task
from tasks.tracking import stage_run

STAGE = "generate-traces"


def _tags(cfg: GenerateConfig) -> dict[str, str]:
    return {"stage": STAGE, "domain": cfg.domain, "config_hash": cfg.content_hash()}


@flow(name=STAGE, log_prints=True)
def generate_traces(config_path: str | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load the config, generate every shard (Ray or in-process), write the card, log to MLflow."""
    cfg = load_config(GenerateConfig, config_path, overrides or [])
    with stage_run(STAGE, params=cfg.model_dump(mode="json"), tags=_tags(cfg)) as run:
        card = generate_task(cfg)
        log_dataset_task(card, cfg.output_dir, run.info.run_id)
    return card


def generate_without_prefect(config_path: str | None = None, overrides: list[str] | None = None,
                             track: bool = True) -> dict[str, Any]:
    """The flow's steps as plain calls (no Prefect API start-up); `track=False` skips MLflow too."""
    cfg = load_config(GenerateConfig, config_path, overrides or [])
    if not track:
        return generate_dataset(cfg)
    with stage_run(STAGE, params=cfg.model_dump(mode="json"), tags=_tags(cfg)) as run:
        card = generate_dataset(cfg)
        log_dataset(card, cfg.output_dir, run.info.run_id)
    return card


if __name__ == "__main__":
    generate_traces(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:])
