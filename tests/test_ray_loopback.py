"""The local Ray that the stages start (generation shards, Tune trials, rollout actors, Ray Train SFT)
listens on 127.0.0.1 only: no gcs_server, raylet, worker or agent socket is open to other machines."""

from __future__ import annotations

import time

import psutil
import pytest
import ray

from tasks.ray_runtime import OBJECT_STORE_BYTES, ensure_ray, init_ray

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def _listening() -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of this process and its children."""
    me = psutil.Process()
    procs = {p.pid: p for p in me.children(recursive=True)}
    procs[me.pid] = me
    out = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in procs:
            try:
                out.add((procs[conn.pid].name(), conn.laddr.ip, conn.laddr.port))
            except psutil.NoSuchProcess:
                continue
    return out


def _wait_for_listeners(names: tuple[str, ...], timeout_s: float = 60.0) -> set[tuple[str, str, int]]:
    """The sockets once every named process listens (agents start a little after ray.init returns)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = _listening()
        have = {name for name, _, _ in found}
        if all(any(n in h for h in have) for n in names) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _start_like_the_generation_stage() -> None:
    assert ensure_ray(1)


def _start_like_ray_train_sft() -> None:  # tasks/sft.run_ray's arguments: the dashboard is on
    init_ray(address=None, num_cpus=1, include_dashboard=None, log_to_driver=True,
             object_store_memory=OBJECT_STORE_BYTES)


@pytest.mark.parametrize("start", [_start_like_the_generation_stage, _start_like_ray_train_sft],
                         ids=["ensure_ray", "sft"])
def test_the_embedded_ray_listens_on_loopback_only(monkeypatch, start) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        ray.shutdown()
    start()
    try:
        ray.get(ray.remote(lambda: 1).remote())  # a worker too
        found = _wait_for_listeners(("gcs_server", "raylet", "DashboardAgent", "RuntimeEnvAgent"))
    finally:
        ray.shutdown()
    names = {name for name, _, _ in found}
    for process in ("gcs_server", "raylet", "DashboardAgent"):
        assert any(process in n for n in names), f"{process} not seen listening: {sorted(found)}"
    open_beyond = sorted(s for s in found if s[1] not in LOOPBACK)
    assert not open_beyond, f"listening beyond this machine: {open_beyond}"
