"""RL post-training on Ray: rollouts sampled by Ray actors while this process learns.

The tracked stage (run, tags, every step's metrics, the final checkpoint) is
`metacot_core.pipeline.stages.run_rl`; this module gives it the rollout sampler: with
`rollout.workers > 0` a pool of Ray actors holding a policy copy (tasks/rl_actors.py, on the cluster at
RAY_ADDRESS when set), else the learner's own model. A resumed run opens a new run tagged with the
checkpoint it continued from; steps keep their numbers, so the curves join.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from metacot_core.pipeline.stages import run_rl
from metacot_core.rl.common import Sampler
from metacot_core.rl.config import RLConfig
from metacot_core.rl.runner import RLRun

log = logging.getLogger(__name__)


@contextmanager
def sampler_for(prepared: RLRun) -> Iterator[Sampler | None]:
    """A Ray rollout pool holding the prepared model when rollout.workers > 0, else None (in-process)."""
    cfg = prepared.cfg.rollout
    if cfg.workers == 0 or prepared.start >= prepared.total:  # nothing to sample: no actors
        yield None
        return
    from tasks.rl_actors import rollout_pool

    with rollout_pool(cfg, prepared.model, prepared.tokenizer) as pool:
        log.info("rl rollouts: %d Ray actors on %s", len(pool.workers), ", ".join(pool.devices))
        yield pool


@task(name="rl-train", cache_policy=NO_CACHE)
def rl_task(cfg: RLConfig, tracker: Any) -> dict[str, Any]:
    """Prefect wrapper: no retries (a rerun resumes from the last checkpoint instead)."""
    return run_rl(cfg, tracker, sampler=sampler_for)
