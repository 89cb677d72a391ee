"""`ray start` on 127.0.0.1, for the local stack's Ray nodes (cli/local_stack.py).

    python -m cli.ray_node start --head --node-ip-address 127.0.0.1 --port 6379 ... --block

Why not `ray start` itself: Ray swaps a node address or a cluster address of 127.0.0.1 for the
machine's external one (`resolve_ip_for_localhost`, meant for nodes that other machines must reach),
so a head started on 127.0.0.1 would bind its GCS, raylet and workers to the external interface, and
a second node given `--address 127.0.0.1:6379` would look for the head there. This runs Ray's own
command line with that swap turned off, as tasks/ray_runtime.py does for `ray.init`.
"""

from __future__ import annotations

import sys

import ray._private.services


def main(argv: list[str]) -> None:
    ray._private.services.resolve_ip_for_localhost = lambda host: host
    from ray.scripts.scripts import main as ray_main

    sys.argv = ["ray", *argv]
    ray_main()


if __name__ == "__main__":
    main(sys.argv[1:])
