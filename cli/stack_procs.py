"""Daemons of the local stack: started in their own session, recorded by id, stopped by id.

The stack's `start` command exits while its servers run on, and `stop` is another process, so each
server is recorded as (pid, start time): psutil's start time tells a live server from a process that
got the same id later, which is never signalled. Stopping one signals its process group (its pid,
since each starts a session) and every descendant found under it, then SIGKILLs what is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from cli.processes import ServerFailed, die_with_parent


@dataclass
class Daemon:
    """A recorded server process."""

    name: str
    pid: int
    started: float  # psutil create_time
    log: str

    def process(self) -> psutil.Process | None:
        """The live process, or None when it is gone (or the id now belongs to another process)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.started) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.NoSuchProcess:
            return None

    def alive(self) -> bool:
        return self.process() is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spawn(name: str, cmd: Sequence[str], env: dict[str, str], cwd: Path, log: Path,
          tie_to_parent: bool = False, **popen: Any) -> tuple[Daemon, subprocess.Popen]:
    """Start `cmd` in a new session, output appended to `log`. `tie_to_parent`: the kernel stops it if
    this process dies (for tests; the stack command leaves its servers running on purpose)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent() if tie_to_parent else None, **popen)
    finally:
        out.close()
    return Daemon(name, proc.pid, psutil.Process(proc.pid).create_time(), str(log)), proc


def group_members(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) processes of process group `pgid`."""
    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return out


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (tests), so no zombie remains."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_daemon(daemon: Daemon, first: signal.Signals = signal.SIGTERM, whole_group: bool = True,
                timeout: float = 20.0) -> bool:
    """`first` to the daemon (and its group when `whole_group`), then SIGKILL to its group and every
    descendant still running after `timeout`. Returns True when something was running."""
    leader = daemon.process()
    if leader is None:
        _reap(daemon.pid)
        return False
    try:
        tree = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = [leader]
    try:
        os.killpg(daemon.pid, first) if whole_group else leader.send_signal(first)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(daemon.pid)
        if not group_members(daemon.pid) and not [p for p in tree if _running(p)]:
            return True
        time.sleep(0.2)
    for proc in [*group_members(daemon.pid), *tree]:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=5)
    _reap(daemon.pid)
    return True


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return False


def log_tail(log: str | Path, lines: int = 25) -> str:
    path = Path(log)
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(check: Callable[[], bool], daemon: Daemon | None, what: str, timeout: float) -> None:
    """Poll `check` until true; fail at once, with the log's tail, when the daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon is not None and not daemon.alive():
            raise ServerFailed(f"{daemon.name} exited before {what}:\n{log_tail(daemon.log)}")
        if check():
            return
        time.sleep(0.5)
    tail = log_tail(daemon.log) if daemon is not None else ""
    raise ServerFailed(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
