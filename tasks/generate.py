"""Parallel trace generation: one Ray task per shard, plus the Prefect task wrapper the flow uses.

The tracked stage (run, params, the card's figures, the dataset as an input) is
`metacot_core.pipeline.stages.run_generate`; this module is how its shards are made (`make=`).

`run_generation(cfg)` writes every shard of the plan and returns their stats:
  - workers=1 runs the shards in this process, without Ray (Ray's start-up costs seconds, which
    dominates tiny runs and tests);
  - otherwise a local Ray is started with `num_cpus=workers` (0: all cores), or the cluster at
    RAY_ADDRESS is joined. At most `workers` shards are in flight, so an already-running bigger Ray
    does not oversubscribe.
Shards already finished by the same config are skipped (resume after a crash). A Ray worker that
dies, or the whole node it ran on, is retried (`max_retries`) on a node still alive; it writes to a
temporary file renamed only when complete, so a dead worker never leaves a half shard. Exceptions
raised by generation itself are not retried: generation is deterministic, so a retry would fail the
same way. Shards are spread over the cluster's nodes (`SPREAD`), each records the node that wrote it
(the card's `generation.shard_nodes`), and the storage contract of metacot_core/data/storage.py is
enforced: a node that cannot see `output_dir` fails the run naming itself and the path, and every
shard a node reported must be visible to the driver before the card is written.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import ray
from prefect import task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from metacot_core.data.config import GenerateConfig
from metacot_core.data.generate import (
    ShardSpec,
    checked_plan,
    finish_dataset,
    write_shard,
)
from metacot_core.data.storage import LOCAL_NODE, OutputNotShared, check_reported, remove_probe, write_probe
from tasks.ray_runtime import ensure_ray
from tasks.shard_worker import write_shard_on_node

log = logging.getLogger(__name__)
SHARD_RETRIES = 3
# How long a failed run lets its in-flight shards end on their own before it cancels them.
CANCEL_GRACE_S = 10.0
# Ray's object store only carries small stats dicts here; keep it small on a shared machine.


# The remote function lives in tasks/shard_worker.py (pickled by reference), so workers import Ray and
# metacot_core only, not this module with its Prefect and MLflow imports (seconds per worker).
_write_shard_remote = ray.remote(num_cpus=1, max_retries=SHARD_RETRIES,
                                 scheduling_strategy="SPREAD")(write_shard_on_node)


def _run_in_process(cfg: GenerateConfig, specs: list[ShardSpec], bar: tqdm) -> list[dict[str, Any]]:
    out = []
    for spec in specs:
        out.append({**write_shard(cfg, spec), "node": LOCAL_NODE})
        bar.update(1)
    return out


def _result(ref: Any) -> dict[str, Any]:
    """A shard's stats; a node that broke the storage contract fails the run with its own message."""
    try:
        return ray.get(ref)
    except OutputNotShared as err:  # a RayTaskError that is also the node's error
        raise OutputNotShared(str(getattr(err, "cause", err))) from None


def _stop_in_flight(refs: list[Any], grace_s: float = CANCEL_GRACE_S) -> None:
    """A failed run leaves no shard running: those in flight get `grace_s` to end, the rest are
    force-cancelled. Cancelling at once is what Ray (2.60) can abort the driver on: a force-cancel
    that races a task's own completion fails a check in its task manager ("Tried to complete task
    that was not pending"), which kills the process after the run's error was reported."""
    if not refs:
        return
    _, running = ray.wait(refs, num_returns=len(refs), timeout=grace_s)
    for ref in running:
        ray.cancel(ref, force=True)


def _run_on_ray(cfg: GenerateConfig, specs: list[ShardSpec], bar: tqdm) -> list[dict[str, Any]]:
    started = ensure_ray(cfg.workers or None)  # 0 workers: Ray takes every core
    # Absolute, so every node resolves the same folder whatever its working directory.
    cfg_data = {**cfg.model_dump(mode="json"), "output_dir": str(Path(cfg.output_dir).resolve())}
    probe = write_probe(cfg.output_dir)
    pending: dict[Any, int] = {}
    try:
        limit = cfg.workers or max(1, int(ray.available_resources().get("CPU", 1)))
        results: list[dict[str, Any] | None] = [None] * len(specs)
        queue = list(enumerate(specs))
        while queue or pending:
            while queue and len(pending) < limit:
                i, spec = queue.pop(0)
                pending[_write_shard_remote.remote(cfg_data, spec.to_dict(), probe)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                results[pending.pop(ref)] = _result(ref)
                bar.update(1)
        shards = [r for r in results if r is not None]
        check_reported(cfg.output_dir, shards)
        return shards
    finally:
        _stop_in_flight(list(pending))
        remove_probe(cfg.output_dir, probe)
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
    """Generate, then write the card (with run figures); returns the card. The folder's lock is taken by
    the stage that calls this (metacot_core.pipeline.stages.run_generate)."""
    start = time.perf_counter()
    shards = run_generation(cfg, progress=progress)
    return finish_dataset(cfg, shards, time.perf_counter() - start, cfg.workers)


@task(name="generate-shards", cache_policy=NO_CACHE)
def generate_task(cfg: GenerateConfig) -> dict[str, Any]:
    """Prefect wrapper: every shard (Ray or in-process) and the card."""
    return generate_dataset(cfg, progress=True)
