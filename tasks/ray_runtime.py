"""Starting or joining Ray, the same way for every stage that fans work out (generation shards, Tune
trials, rollout actors): join the cluster in RAY_ADDRESS when there is one, else start a local Ray
sized for the work, without the dashboard and with a small object store (these machines have little
shared memory to spare). A local Ray listens on 127.0.0.1 only (see `init_ray`); a cluster in
RAY_ADDRESS is the user's to configure."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

import ray
import ray._private.services

OBJECT_STORE_BYTES = 128 * 1024 * 1024
LOOPBACK = "127.0.0.1"


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """ray.init: join `address` when given, else start a Ray of this machine's own, on 127.0.0.1.

    Ray binds gcs_server, raylet, the workers and the agents to its node address, and a node address of
    127.0.0.1 passed to ray.init is swapped for the machine's external one (`resolve_ip_for_localhost`,
    meant for nodes that others must reach); so the local start keeps that address as given, and no
    socket of the embedded Ray is reachable from another machine.
    """
    keep_loopback = mock.patch.object(ray._private.services, "resolve_ip_for_localhost", lambda host: host)
    if address:
        # A cluster on this machine's loopback (cli/local_stack.py) is joined there: the same swap
        # would send the driver to the external address, where nothing listens.
        if address.split("://")[-1].rsplit(":", 1)[0] in (LOOPBACK, "localhost"):
            with keep_loopback:
                ray.init(address=address, **kwargs)
        else:
            ray.init(address=address, **kwargs)
        return
    with keep_loopback:
        ray.init(_node_ip_address=LOOPBACK, **kwargs)


def ensure_ray(num_cpus: int | None = None, object_store_bytes: int | None = OBJECT_STORE_BYTES) -> bool:
    """Start or join Ray; returns True when this call started it (so the caller shuts it down).

    `num_cpus` sizes a local Ray (None: every core) and `object_store_bytes` its object store (None:
    Ray's default, for work that ships whole models); both are ignored when joining a cluster.
    """
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        init_ray(address=address, log_to_driver=False)
    else:
        init_ray(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 object_store_memory=object_store_bytes)
    return True
