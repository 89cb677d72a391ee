"""Every command stops what it started: SIGTERM, SIGHUP (a closed terminal) and a kill -9 of the command
itself leave no server, Prefect API, Ray agent or Ray worker behind (cli/processes.py, cli/watchdog.py);
and a second `metacot mlflow-server` on a busy port says so at once.

Each case runs the real command (`python -m cli ...`) in its own session, waits with psutil until the
processes it starts exist, signals it, and asserts that none of its descendants is left a few seconds
later. Bounded by timeouts; anything a failing case leaves is killed by the fixture."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from sft_fixtures import tiny_dataset

from cli.processes import free_port, port_in_use

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")


@pytest.fixture
def command(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `python -m cli <args>` in its own session, output to a log; kill what is left afterwards."""
    started: list[subprocess.Popen] = []

    def start(*args: str, **env: str) -> subprocess.Popen:
        full = {**os.environ, "PYTHONPATH": str(ROOT), "METACOT_HOME": str(tmp_path),
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
                "PREFECT_HOME": str(tmp_path / "prefect"), **env}
        full.pop("PREFECT_API_URL", None)
        full.pop("RAY_ADDRESS", None)  # a local Ray, started by the command
        log = (tmp_path / "command.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=full, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for leftover in SEEN:  # a failed case: whatever the command had started
        try:
            leftover.kill()
        except psutil.Error:
            pass
    SEEN.clear()


SEEN: list[psutil.Process] = []  # every descendant `wait_for` saw, killed after each test


def wait_for(proc: subprocess.Popen, ready: Callable[[list[psutil.Process]], bool], log: Path,
             timeout: float) -> list[psutil.Process]:
    """The command's descendants once `ready(descendants)` holds (the command must still run)."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        kids = parent.children(recursive=True)
        SEEN.extend(kids)
        if ready(kids):
            return kids
        time.sleep(0.5)
    raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")


def tail(tmp_path: Path) -> str:
    return (tmp_path / "command.log").read_text()[-3000:]


def names(procs: list[psutil.Process]) -> str:
    out = []
    for p in procs:
        try:
            out.append(" ".join(p.cmdline())[:80] or p.name())
        except psutil.Error:
            pass
    return " | ".join(out)


def assert_gone(procs: list[psutil.Process], timeout: float = 20.0) -> None:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {names(alive)}"


def cmdline_has(text: str) -> Callable[[list[psutil.Process]], bool]:
    def check(procs: list[psutil.Process]) -> bool:
        return text in names(procs)

    return check


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_mlflow_server_stops_everything_it_started(command, tmp_path: Path, sig: int) -> None:
    port = free_port()
    proc = command("mlflow-server", "--port", str(port), "--db", str(tmp_path / "mlflow.db"),
                   "--artifacts", str(tmp_path / "art"))
    log = tmp_path / "command.log"
    kids = wait_for(proc, lambda procs: "MLflow UI" in log.read_text() and len(procs) >= 3, log, 180)
    proc.send_signal(sig)
    code = proc.wait(60)
    assert code == (-9 if sig == signal.SIGKILL else 0), log.read_text()[-2000:]
    assert_gone(kids)
    assert not port_in_use("127.0.0.1", port)


def test_a_busy_port_is_reported_at_once(command, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = command("mlflow-server", "--port", str(port), "--db", str(tmp_path / "mlflow.db"),
                       "--artifacts", str(tmp_path / "art"))
        code = proc.wait(120)
    lines = (tmp_path / "command.log").read_text().strip().splitlines()
    assert code == 1 and lines == [f"error: port {port} is in use (on 127.0.0.1); pick another with --port"]


def tiny_experiment(tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "base": "configs/countdown/pipeline-tiny.yaml",
                                    "arms": {"search": ["generate.format=sos"]},
                                    "output_dir": str(tmp_path / "out")}))
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_experiment_stops_prefects_temporary_api(command, tmp_path: Path, sig: int) -> None:
    proc = command("experiment", str(tiny_experiment(tmp_path)), f"output_root={tmp_path / 'runs'}",
                   PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="true")
    kids = wait_for(proc, cmdline_has("uvicorn"), tmp_path / "command.log", 240)
    proc.send_signal(sig)
    code = proc.wait(60)
    assert code == (-9 if sig == signal.SIGKILL else 128 + sig), tail(tmp_path)
    assert_gone(kids)


def sft_config(tmp_path: Path) -> Path:
    data = tiny_dataset(tmp_path / "ds", n_train=16, n_val=4, max_chars=1200)
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"path": str(data), "val_split": "val"},
        "model": {"preset": "1m", "n_layer": 1, "d_model": 32, "n_head": 2},
        "train": {"max_steps": 100000, "seq_len": 256, "micro_batch_size": 2, "eval_every": 100000,
                  "checkpoint_every": 100000, "warmup_steps": 1},
        "ray": {"enabled": True, "num_workers": 1, "cpus_per_worker": 1},
        "tracking": {"experiment": "procs-test", "log_model": False},
        "output_dir": str(tmp_path / "run")}))
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_ray_sft_stops_its_agents_and_workers(command, tmp_path: Path, sig: int) -> None:
    proc = command("train", "sft", "--config", str(sft_config(tmp_path)), "--no-flow")
    # the training worker is up once Ray Train's worker actor exists
    kids = wait_for(proc, cmdline_has("RayTrainWorker"), tmp_path / "command.log", 300)
    proc.send_signal(sig)
    code = proc.wait(90)
    assert code == (-9 if sig == signal.SIGKILL else 128 + sig), tail(tmp_path)
    assert_gone(kids, timeout=30)


ORPHAN_SCRIPT = """
import os, signal, subprocess, sys, time
from cli.processes import start_watchdog
start_watchdog()
time.sleep(2.0)  # the watchdog has listed this process's (no) descendants by now
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # within the second before the watchdog looks again
"""


def test_watchdog_stops_a_process_started_just_before_the_kill(tmp_path: Path) -> None:
    """A server that starts in the watchdog's last second (the Prefect API of a command killed as it
    came up, seen on CI) carries the command's environment token and is stopped with the rest."""
    proc = subprocess.run([sys.executable, "-c", ORPHAN_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    orphan = psutil.Process(int(proc.stdout.split()[0]))
    SEEN.append(orphan)
    try:
        assert_gone([orphan], timeout=15)
    finally:
        if orphan.is_running():
            orphan.kill()
