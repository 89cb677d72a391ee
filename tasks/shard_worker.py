"""The Ray task body of generation: check the storage contract, write one shard, say which node did.

Kept apart from tasks/generate.py so a Ray worker imports only Ray and metacot_core (not Prefect and
MLflow, seconds per worker); the remote function is pickled by reference to this module.
"""

from __future__ import annotations

from typing import Any

import ray

from metacot_core.data.generate import write_shard_from_dicts
from metacot_core.data.storage import check_probe


def write_shard_on_node(cfg_data: dict[str, Any], spec_data: dict[str, Any], probe: str) -> dict[str, Any]:
    """The shard's stats plus `node`, the id of the Ray node that wrote it."""
    node = ray.get_runtime_context().get_node_id()
    check_probe(cfg_data["output_dir"], probe, node)
    return {**write_shard_from_dicts(cfg_data, spec_data), "node": node}
