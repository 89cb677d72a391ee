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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOOPBACK = "127.0.0.1"
# Marks the environment of a command and of everything it starts, for its watchdog (cli/watchdog.py).
TOKEN_ENV = "METACOT_WATCHDOG_TOKEN"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the OS picks it), for throwaway servers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """True when another program holds `host:port`; binding it is the only check that cannot be fooled
    by whatever answers there (a second server once took the first one's /health for its own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers set it: connections of a server that just stopped linger in TIME_WAIT
        # for a minute and must not count as the port being taken; a listening socket still does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class ServerFailed(RuntimeError):
    """A server this command started did not come up (reported in one line by cli/boundary.py)."""


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal), raised in the main thread as a KeyboardInterrupt so the
    clean-up a command does on Ctrl-C runs for them too; the command then exits with 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []  # the exit signal that arrived, should a library re-raise a plain Ctrl-C


def _raise_stopped(signum: int, frame: object) -> None:
    _received.append(signum)
    for sig in EXIT_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def install_exit_signals() -> None:
    """SIGTERM and SIGHUP end this process like Ctrl-C (main thread only, as Python requires)."""
    if threading.current_thread() is threading.main_thread():
        for sig in EXIT_SIGNALS:
            signal.signal(sig, _raise_stopped)


@contextmanager
def exit_signals() -> Iterator[None]:
    """`install_exit_signals` for the duration of a block, the previous handlers restored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in EXIT_SIGNALS}
    install_exit_signals()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interrupt_exit_code(err: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal (130 for Ctrl-C). Ray Train, for one, turns the
    `Stopped` of a SIGTERM into a plain KeyboardInterrupt: the signal recorded on arrival wins."""
    return 128 + getattr(err, "signum", _received[0] if _received else signal.SIGINT)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send the child `sig` (SIGTERM) when this process dies (Linux).

    It covers what no handler in the parent can: `kill -9`, and a SIGTERM that lands while
    `subprocess.Popen` is still starting the child. A parent already gone when the child gets there
    ends the child at once. None elsewhere (the caller's own stop still runs).
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig))
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


def start_watchdog() -> subprocess.Popen | None:
    """Start cli/watchdog.py for this process: when it dies, SIGKILL included, the watchdog stops
    every process it had started and left behind (Ray's agents and workers, a server's workers).

    The kernel wakes the watchdog with SIGUSR1 when this process dies (PR_SET_PDEATHSIG); None off
    Linux. The environment token it sets lets the watchdog find what started in its last second.
    Its output goes nowhere, so it never holds the pipes of whoever reads this command's.
    """
    arm = die_with_parent(signal.SIGUSR1)
    if arm is None:
        return None

    def arm_and_block() -> None:
        # blocked from before exec: a death during the watchdog's start-up stays pending, not fatal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP})
        arm()

    token = f"{os.getpid()}-{time.time_ns()}"
    os.environ[TOKEN_ENV] = token  # before anything is started: every process it starts carries it
    cmd = [sys.executable, "-m", "cli.watchdog", str(os.getpid()), token]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(cmd, preexec_fn=arm_and_block, stdin=quiet, stdout=quiet, stderr=quiet,
                            start_new_session=True)
