"""Evaluation as a Prefect task, and the MLflow run a standalone evaluation nests under.

The tracked stage (decode, judge, compare with the teacher, table/summary/plots as artifacts) is
`metacot_core.pipeline.stages.run_evaluate`. An evaluation run outside a pipeline is nested under the
evaluated model's run when its id is known (`parent_tags`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from metacot_core.evaluation.config import EvalConfig
from metacot_core.pipeline.stages import run_evaluate
from tasks.tracking import nesting_tags

# Files a checkpoint may carry that name the MLflow run that trained it (first key found wins).
RUN_ID_FILES = ("metacot.json", "sft_config.json", "rl_config.json")
RUN_ID_KEYS = ("mlflow_run_id", "run_id")


def checkpoint_run_id(checkpoint: str | Path) -> str | None:
    """The MLflow run id recorded in a checkpoint's metadata, when training wrote one."""
    for name in RUN_ID_FILES:
        path = Path(checkpoint) / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            continue
        for key in RUN_ID_KEYS:
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, str) and value:
                return value
    return None


def parent_tags(cfg: EvalConfig) -> dict[str, str]:
    """Tags that nest the evaluation run under the evaluated model's run, when that run is known: the
    `parent_run_id` setting, else a run id recorded in the checkpoint (an active pipeline run takes
    precedence; an explicit parent that does not exist is an error, a stale recorded one is not)."""
    found = checkpoint_run_id(cfg.checkpoint) if cfg.checkpoint else None
    return nesting_tags(cfg.parent_run_id, found, cfg.experiment)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(cfg: EvalConfig, tracker: Any) -> dict[str, Any]:
    """Prefect wrapper: the tracked evaluation stage."""
    return run_evaluate(cfg, tracker, tags=parent_tags(cfg))
