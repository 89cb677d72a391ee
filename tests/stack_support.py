"""Helpers of tests/test_local_stack.py: the stack's APIs over plain HTTP, deployment runs with the
`prefect` CLI as a user makes them, joining the stack's Ray from the test process, process trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from cli.local_stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "metacot-pipeline/countdown-tiny"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def api(stack: LocalStack, path: str, body: dict | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{stack.prefect_api}{path}", data=data,
                                     method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read() or b"null")


def deployment_run(stack: LocalStack, *params: str) -> str:
    """`prefect deployment run` in a user's shell (the stack's env file sourced); the flow run id."""
    cmd = [sys.executable, "-m", "prefect", "deployment", "run", DEPLOYMENT]
    for param in params:
        cmd += ["--param", param]
    done = subprocess.run(cmd, cwd=ROOT, env=stack.client_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return next(line.split("UUID:")[1].strip() for line in done.stdout.splitlines() if "UUID:" in line)


def flow_run(stack: LocalStack, run_id: str) -> dict[str, Any]:
    return api(stack, f"/flow_runs/{run_id}")


def wait_for(check: Callable[[], Any], what: str, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_final(stack: LocalStack, run_id: str, timeout: float = 600) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        run = flow_run(stack, run_id)
        return run if (run.get("state") or {}).get("type") in FINAL else None

    try:
        return wait_for(final, f"flow run {run_id}", timeout, every=2.0)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{tail(stack, 'prefect-worker')}") from None


def subflow_names(stack: LocalStack, parent_id: str) -> list[str]:
    runs = api(stack, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent_id]}}})
    return sorted(api(stack, f"/flows/{r['flow_id']}")["name"] for r in runs)


def tail(stack: LocalStack, name: str, lines: int = 40) -> str:
    log = stack.state / "logs" / f"{name}.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def http_status(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> int:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def cmdlines(pid: int) -> list[str]:
    """The command lines of a process and its descendants (those that vanish meanwhile skipped)."""
    return command_lines(tree(pid))


def command_lines(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            out.append(" ".join(proc.cmdline()))
        except psutil.Error:
            continue
    return out


def signal_all(procs: list[psutil.Process], signum: int) -> None:
    """Send `signum` to each process still there (SIGSTOP/SIGCONT to freeze a node and thaw it)."""
    for proc in procs:
        try:
            proc.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant, by id: the machine or container it ran on is gone."""
    procs = tree(pid)
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return [p.pid for p in procs]


def start_ray_driver(stack: LocalStack, scenario: str, **arguments: Any) -> subprocess.Popen:
    """tests/stack_driver.py as a user's script on the cluster (the stack's env file sourced), in a
    process of its own: Ray reads its auth mode once per process, and this pytest process may have
    loaded Ray without the stack's token for an earlier test. It dies with this process."""
    from cli.processes import die_with_parent

    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "stack_driver.py"), scenario,
                             json.dumps(arguments)], cwd=ROOT, env=stack.client_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=die_with_parent())


def driver_result(proc: subprocess.Popen, timeout: float = 600) -> dict[str, Any]:
    """The driver's JSON line; its stderr in the failure when it did not print one."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"driver exit {proc.returncode}:\n{out[-3000:]}\n{err[-6000:]}"
    return json.loads(lines[-1])


def ray_driver(stack: LocalStack, scenario: str, timeout: float = 600, **arguments: Any) -> dict[str, Any]:
    return driver_result(start_ray_driver(stack, scenario, **arguments), timeout)
