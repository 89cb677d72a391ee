"""One writer per output folder: a second command writing into the same folder refuses at once.

Why: two `metacot generate` into one folder left a card whose hash did not match its shards, and a
second `metacot run` of the same config marked the first one's live SFT run KILLED and trained into
the same folder. The lock is an `flock` on `<folder>/.metacot.lock`, which the kernel releases when
its holder dies, so a crashed command never leaves the folder stuck; the file holds the holder's
process id so the refusal can name it. Re-entrant within one process (the pipeline holds its root
while a stage in the same process locks its own folder, or the same folder again).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".metacot.lock"
_HELD: dict[Path, int] = {}  # lock file -> depth, for this process


class FolderBusy(RuntimeError):
    """Another process is writing into the folder."""


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def folder_lock(folder: str | Path, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold `folder` (created if missing) for this process, or raise FolderBusy naming the holder.
    `name` picks the lock file, so several configs may share a folder each with its own lock."""
    root = Path(folder).resolve()
    path = root / name
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield root
        finally:
            _HELD[path] -= 1
        return
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root}: output folder is a file")
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderBusy(f"{root} is in use by process {_holder(path)} (lock {path}); wait for it to "
                         "finish or stop it") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[path] = 1
        yield root
    finally:
        _HELD.pop(path, None)
        os.close(fd)  # closing the descriptor releases the flock
