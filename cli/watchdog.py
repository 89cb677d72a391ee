"""Stops what a command started once the command is gone, however it went (kill -9 included).

    python -m cli.watchdog <pid> [<token>]   (started by every `metacot` command: cli/processes.py)

Why a separate process: no handler runs in a process killed with SIGKILL, and the kernel's
parent-death signal reaches only direct children. A local Ray's dashboard and runtime-env agents,
and its training workers, are grandchildren of the command: after a `kill -9` they ran on for about
100 s. So the watchdog keeps a list of the command's descendants while it lives and, when it dies,
stops the ones still running (SIGTERM, then SIGKILL). psutil compares start times, so a process id
reused since it was recorded is never signalled.

The list is up to a second stale, and a process started in that second (a server coming up just as
the command is killed) is orphaned before the watchdog sees it. So the command also marks its
environment with a token of its own (`TOKEN_ENV`), which everything it starts inherits; when the
command is gone the watchdog stops, besides its list, every process that carries that token.
"""

from __future__ import annotations

import os
import signal
import sys

import psutil

from cli.processes import TOKEN_ENV

POLL_S = 1.0  # how stale the list may be; each look costs a few ms of reading /proc
GRACE_S = 3.0  # SIGTERM -> SIGKILL


# SIGUSR1 is the parent-death signal; a SIGTERM only makes the watchdog look again (it stops when the
# command is gone, not before). Blocked, and waited for in place of a sleep, so none interrupts a look.
WAKE_SIGNALS = {signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP}


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def record(command: psutil.Process) -> dict[int, psutil.Process]:
    """The command's descendants, updated until the command is gone."""
    seen: dict[int, psutil.Process] = {}
    me = os.getpid()
    while alive(command):
        seen.update((p.pid, p) for p in descendants(command) if p.pid != me)
        signal.sigtimedwait(WAKE_SIGNALS, POLL_S)
    return seen


def marked(token: str) -> list[psutil.Process]:
    """Processes whose environment carries this command's token (not this watchdog)."""
    found, me = [], os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(TOKEN_ENV) == token:
                found.append(proc)
        except psutil.Error:  # gone, a zombie, or another user's
            continue
    return found


def stop(procs: list[psutil.Process], grace: float = GRACE_S) -> None:
    """SIGTERM every process still running (and what it started since), SIGKILL those that stay."""
    everything = {p.pid: p for p in procs if alive(p)}
    for proc in list(everything.values()):
        everything.update((c.pid, c) for c in descendants(proc))
    everything.pop(os.getpid(), None)
    for proc in everything.values():
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, survivors = psutil.wait_procs(list(everything.values()), timeout=grace)
    for proc in survivors:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def main(argv: list[str]) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, WAKE_SIGNALS)
    try:
        command = psutil.Process(int(argv[0]))
    except psutil.NoSuchProcess:
        return 0
    left = record(command)
    if len(argv) > 1:
        left.update((p.pid, p) for p in marked(argv[1]))
    stop(list(left.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
