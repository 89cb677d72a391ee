"""A generation run that fails on Ray stops its shards in flight without tripping Ray's cancel race.

Force-cancelling a task the moment it completes can abort the driver in Ray's task manager, after the
run's own error was reported (seen in CI with Ray 2.60). So a failed run lets in-flight shards end for
a grace period and cancels only those still running after it.
"""

from __future__ import annotations

import time

import pytest
from test_rl_actors import ray_local  # noqa: F401 (fixture: local Ray, 2 CPUs)

pytestmark = pytest.mark.e2e


@pytest.mark.usefixtures("ray_local")
def test_in_flight_shards_end_on_their_own_and_a_stuck_one_is_cancelled() -> None:
    import ray

    from tasks.generate import _stop_in_flight

    def shard(seconds: float) -> str:  # nested, so Ray ships it by value to its workers
        time.sleep(seconds)
        return f"slept {seconds}"

    remote = ray.remote(num_cpus=1, max_retries=0)(shard)
    quick, stuck = remote.remote(0.5), remote.remote(600)
    began = time.monotonic()
    _stop_in_flight([quick, stuck], grace_s=3)
    assert ray.get(quick, timeout=30) == "slept 0.5"
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        ray.get(stuck, timeout=60)
    assert time.monotonic() - began < 60
    _stop_in_flight([])  # nothing in flight: nothing to wait for
