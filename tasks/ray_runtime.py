"""Starting or joining Ray, the same way for every stage that fans work out (generation shards, Tune
trials, rollout actors): join the cluster in RAY_ADDRESS when there is one, else start a local Ray
sized for the work, without the dashboard and with a small object store (these machines have little
shared memory to spare)."""

from __future__ import annotations

import os

import ray

OBJECT_STORE_BYTES = 128 * 1024 * 1024


def ensure_ray(num_cpus: int | None = None, object_store_bytes: int | None = OBJECT_STORE_BYTES) -> bool:
    """Start or join Ray; returns True when this call started it (so the caller shuts it down).

    `num_cpus` sizes a local Ray (None: every core) and `object_store_bytes` its object store (None:
    Ray's default, for work that ships whole models); both are ignored when joining a cluster.
    """
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 object_store_memory=object_store_bytes)
    return True
