"""The storage contract of generation on a cluster: every node writes into `output_dir`, and every node
and the driver must see the same `output_dir` (one shared folder or volume, as the compose file's `runs`
volume is).

Why checked at all: a Ray node with its own, local `output_dir` writes its shards where the driver
never looks, and the card would be built from the shards the driver happens to see, a silently short
dataset. So the driver leaves a probe file in `output_dir` before it hands out shards; a node that does
not see the probe refuses to write, naming itself and the path (`check_probe`); and after generation
the driver checks that every shard a node reported is there (`check_reported`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from metacot_core.data.schema import DatasetError

PROBE_PREFIX = ".storage-probe-"
LOCAL_NODE = "local"  # the node name of shards written without Ray


class OutputNotShared(DatasetError):
    """A node writes into an `output_dir` that the driver (or another node) does not see."""


def shard_file(stats: Mapping[str, Any]) -> str:
    """The shard's path inside the dataset folder, `<split>/part-NNNNN.parquet`."""
    return f"{stats['split']}/{stats['file']}"


def write_probe(output_dir: str | Path) -> str:
    """Leave a probe file for the nodes to find; returns its token."""
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    (root / f"{PROBE_PREFIX}{token}").write_text("written by the generation driver; removed when it ends\n")
    return token


def remove_probe(output_dir: str | Path, token: str) -> None:
    (Path(output_dir) / f"{PROBE_PREFIX}{token}").unlink(missing_ok=True)


def check_probe(output_dir: str | Path, token: str, node: str) -> None:
    """Raise OutputNotShared when this node does not see the driver's probe in `output_dir`."""
    path = Path(output_dir).resolve()
    if not (path / f"{PROBE_PREFIX}{token}").is_file():
        raise OutputNotShared(
            f"Ray node {node} cannot see output_dir {path} (the driver's probe file is not there): every "
            "node must see the same output_dir, a shared folder or volume; nothing was written")


def check_reported(output_dir: str | Path, shards: Iterable[Mapping[str, Any]]) -> None:
    """Raise OutputNotShared naming each node whose reported shards the driver cannot see."""
    root = Path(output_dir).resolve()
    missing: dict[str, list[str]] = {}
    for stats in shards:
        if not (root / shard_file(stats)).is_file():
            missing.setdefault(str(stats.get("node", LOCAL_NODE)), []).append(shard_file(stats))
    if missing:
        lines = "; ".join(f"node {node}: {', '.join(files)}" for node, files in sorted(missing.items()))
        raise OutputNotShared(f"shards reported written are not in output_dir {root} as the driver sees it "
                              f"({lines}): output_dir must be one folder shared by every node")


def shard_nodes(shards: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Which node wrote (or, for a resumed shard, found) each shard, for the dataset card."""
    return {shard_file(s): str(s.get("node", LOCAL_NODE)) for s in sorted(shards, key=shard_file)}
