"""Parallel trace generation: one Ray task per shard, plus the Prefect task wrappers the flow uses.

`run_generation(cfg)` writes every shard of the plan and returns their stats:
  - workers=1 runs the shards in this process, without Ray (Ray's start-up costs seconds, which
    dominates tiny runs and tests);
  - otherwise a local Ray is started with `num_cpus=workers` (0: all cores), or the cluster at
    RAY_ADDRESS is joined. At most `workers` shards are in flight, so an already-running bigger Ray
    does not oversubscribe.
Shards already finished by the same config are skipped (resume after a crash). A Ray worker that
dies is retried (`max_retries`); it writes to a temporary file renamed only when complete, so a
dead worker never leaves a half shard. Exceptions raised by generation itself are not retried:
generation is deterministic, so a retry would fail the same way.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import mlflow
import ray
from prefect import task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from metacot_core.data.card import CARD_NAME
from metacot_core.data.config import GenerateConfig
from metacot_core.data.generate import (
    ShardSpec,
    checked_plan,
    finish_dataset,
    write_shard,
    write_shard_from_dicts,
)
from metacot_core.output_lock import output_lock
from tasks.ray_runtime import ensure_ray

log = logging.getLogger(__name__)
SHARD_RETRIES = 3
# Ray's object store only carries small stats dicts here; keep it small on a shared machine.


# The remote function is a core function (pickled by reference), so workers import metacot_core
# only, not this module with its Prefect and MLflow imports (seconds per worker).
_write_shard_remote = ray.remote(num_cpus=1, max_retries=SHARD_RETRIES)(write_shard_from_dicts)


def _run_in_process(cfg: GenerateConfig, specs: list[ShardSpec], bar: tqdm) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        out.append(write_shard(cfg, spec))
        bar.update(1)
    return out


def _run_on_ray(cfg: GenerateConfig, specs: list[ShardSpec], bar: tqdm) -> list[dict[str, Any]]:
    started = ensure_ray(cfg.workers or None)  # 0 workers: Ray takes every core
    try:
        limit = cfg.workers or max(1, int(ray.available_resources().get("CPU", 1)))
        cfg_data = cfg.model_dump(mode="json")
        pending: dict[Any, int] = {}
        results: list[dict[str, Any] | None] = [None] * len(specs)
        queue = list(enumerate(specs))
        while queue or pending:
            while queue and len(pending) < limit:
                i, spec = queue.pop(0)
                pending[_write_shard_remote.remote(cfg_data, spec.to_dict())] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
                bar.update(1)
        return [r for r in results if r is not None]
    finally:
        if started:
            ray.shutdown()


def run_generation(cfg: GenerateConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Write every shard of `cfg` (resuming finished ones); returns per-shard stats in plan order."""
    specs = checked_plan(cfg)
    with tqdm(total=len(specs), desc="shards", unit="shard", disable=not progress) as bar:
        if cfg.workers == 1:
            return _run_in_process(cfg, specs, bar)
        return _run_on_ray(cfg, specs, bar)


def generate_dataset(cfg: GenerateConfig, progress: bool = True) -> dict[str, Any]:
    """Generate, then write the card (with run figures); returns the card. Refuses (OutputLocked) a
    folder another live process is generating into: their shards and card would not match."""
    with output_lock(cfg.output_dir):
        start = time.perf_counter()
        shards = run_generation(cfg, progress=progress)
        return finish_dataset(cfg, shards, time.perf_counter() - start, cfg.workers)


def card_metrics(card: dict[str, Any]) -> dict[str, float]:
    """The card's headline numbers as flat MLflow metrics."""
    metrics: dict[str, float] = {"rows": card["n_rows"], "solved_rate": card["solved_rate"]}
    for split, info in card["splits"].items():
        metrics[f"rows.{split}"] = info["rows"]
        metrics[f"solved_rate.{split}"] = info["solved_rate"]
    for key in ("trace_tokens", "trace_chars", "n_expanded"):
        for stat, value in card[key].items():
            metrics[f"{key}.{stat}"] = value
    gen = card.get("generation", {})
    for key in ("traces_per_s", "seconds", "shards_resumed"):
        if key in gen:
            metrics[key] = gen[key]
    return metrics


def log_dataset(card: dict[str, Any], output_dir: str | Path, run_id: str, name: str | None = None) -> None:
    """Log the card (metrics, artifact) and the dataset as an input of MLflow run `run_id`.

    The input is a metadata-only dataset (no pandas, nothing loaded): its source is the folder and
    its digest the content hash, so runs on the same data show the same dataset in MLflow.
    The run is addressed by id, so this works from any thread or process a task runs in.
    """
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag, Metric
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    root = Path(output_dir).resolve()
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in card_metrics(card).items()])
    client.log_artifact(run_id, str(root / CARD_NAME))
    client.set_tag(run_id, "dataset.content_hash", card["content_hash"])
    with warnings.catch_warnings():
        # MLflow registers the local source twice (schemes "" and "file") and warns it cannot choose.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(root))
    dataset = MetaDataset(source, name=name or root.name, digest=card["content_hash"][:36])
    tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value="generated")]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)])


@task(name="generate-shards", cache_policy=NO_CACHE)
def generate_task(cfg: GenerateConfig) -> dict[str, Any]:
    """Prefect wrapper: every shard (Ray or in-process) and the card."""
    return generate_dataset(cfg, progress=True)


@task(name="log-dataset", cache_policy=NO_CACHE)
def log_dataset_task(card: dict[str, Any], output_dir: str, run_id: str) -> None:
    """Prefect wrapper: attach the dataset to the stage's MLflow run (by id: tasks may run elsewhere)."""
    log_dataset(card, output_dir, run_id)
