"""Throwaway server processes (MLflow, Prefect): a free port, and stopping one by its process id.

Light on purpose (standard library only): `metacot run` imports it before anything heavy, to start
its temporary Prefect API as early as it can (cli/local_api.py).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the OS picks it), for throwaway servers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send the child SIGTERM when this process dies (Linux).

    It covers what no handler in the parent can: `kill -9`, and a SIGTERM that lands while
    `subprocess.Popen` is still starting the child. A parent already gone when the child gets there
    ends the child at once. None elsewhere (the caller's own stop still runs).
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:
            os._exit(1)

    return arm


def stop_server(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """Stop a server by its process id: SIGTERM its group, then SIGKILL.

    Returns the exit code. The group id is the server's pid because it was started in a new session.
    """
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        # The server's workers may outlive it by a moment: done only when the whole group is gone.
        if _group_gone(proc, wait):
            break
    return proc.wait(timeout=5.0)


def _group_gone(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait up to `timeout` s for the server and every process of its group to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
