"""The Ray driver of tests/test_local_stack.py, run as a process of its own with the stack's env file
sourced, as a user runs a script against the cluster.

Why a process: Ray reads its auth mode once per process, so a pytest process that already loaded Ray
for an earlier test (the whole suite does) cannot join the stack's token-protected cluster. Here Ray
is first imported with the stack's `RAY_AUTH_MODE`/`RAY_AUTH_TOKEN_PATH` set.

    python tests/stack_driver.py SCENARIO '<json arguments>'

prints one JSON line: the alive nodes at the start (node id -> is head; `wait_for_nodes` in the
arguments waits until that many are up) and what the scenario gives.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def alive_nodes() -> dict[str, bool]:
    """Node id -> is head, of the alive nodes."""
    import ray

    return {n["NodeID"]: bool(n["Resources"].get("node:__internal_head__"))
            for n in ray.nodes() if n["Alive"]}


def actor_nodes(class_part: str) -> list[str]:
    """The nodes that ran an actor whose class name contains `class_part`."""
    from ray.util.state import list_actors

    return sorted({a.node_id for a in list_actors(limit=1000, detail=True)
                   if class_part in (a.class_name or "")})


def wait_nodes(count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(alive_nodes()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} Ray nodes not alive after {timeout:.0f} s: {alive_nodes()}")
        time.sleep(0.5)


def generate(overrides: list[str]) -> dict[str, Any]:
    """A generation job on the cluster: its card, or the error it raised (type and message)."""
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig
    from tasks.generate import generate_dataset

    cfg = load_config(GenerateConfig, "configs/countdown/generate-cpu.yaml", overrides)
    try:
        return {"card": generate_dataset(cfg, progress=False)}
    except Exception as err:  # noqa: BLE001 - the test asserts on what was raised
        return {"error": {"type": type(err).__name__, "message": str(err)}}


def sft(overrides: list[str]) -> dict[str, Any]:
    """Ray Train SFT on the cluster: its summary and the nodes its workers ran on."""
    from metacot_core.config import load_config
    from metacot_core.pipeline.stages import run_sft
    from metacot_core.pipeline.tracker import NullTracker
    from metacot_core.training.config import SFTConfig
    from tasks.sft import train_sft

    cfg = load_config(SFTConfig, "configs/countdown/sft-cpu.yaml", overrides)
    summary = run_sft(cfg, NullTracker(), train=train_sft)
    return {"summary": summary, "placed": actor_nodes("TrainWorker")}


def sweep(config: str) -> dict[str, Any]:
    """A Tune sweep on the cluster: its result and the nodes its trials ran on."""
    from flows.sweep import run_sweep

    result = run_sweep(config, verbose=0)
    return {"result": result, "trial_nodes": actor_nodes("ImplicitFunc")}


SCENARIOS = {"generate": generate, "sft": sft, "sweep": sweep}


def main(argv: list[str]) -> int:
    from tasks.ray_runtime import init_ray

    scenario, arguments = SCENARIOS[argv[1]], json.loads(argv[2])
    os.chdir(ROOT)
    init_ray(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    wait_nodes(arguments.pop("wait_for_nodes", 0))
    nodes = alive_nodes()
    result = scenario(**arguments)
    print(json.dumps({"nodes": nodes, **result}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
