"""One writer per output folder: a second command that would write into a folder another live process
is writing refuses at once, with one line naming the folder and the holder's process id.

Two `metacot generate` of different seeds into one folder used to mix their shards under one card, and
a second `metacot run` of a config marked the first's live runs KILLED and trained into its folders.
The lock is an `flock` on a small file beside the target (`.<name>.lock`), so the kernel drops it when
the holder exits, however it exits (SIGKILL included): a crashed holder never leaves it stuck, and a
lock file left behind is harmless. Within one process the lock is re-entrant (a pipeline's stages run
in the process that holds the pipeline's lock).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputLocked(ValueError):
    """The folder is being written by another live process."""


_held: dict[Path, tuple[int, int]] = {}  # lock file -> (open descriptor, depth)
_guard = threading.Lock()


def lock_file(target: str | Path) -> Path:
    """The lock file of `target` (a folder or a file): `.<name>.lock` next to it."""
    target = Path(target).absolute()
    return target.with_name(f".{target.name}.lock")


def _acquire(target: Path, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", errors="replace").strip() or "unknown"
        os.close(fd)
        raise OutputLocked(f"{target}: in use by process {holder} (another metacot command writes here); "
                           "wait for it to finish or choose another output folder") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@contextmanager
def output_lock(target: str | Path) -> Iterator[Path]:
    """Hold `target`'s lock for the block; OutputLocked at once when another process holds it."""
    path = lock_file(target)
    with _guard:
        fd, depth = _held.get(path) or (_acquire(Path(target), path), 0)
        _held[path] = (fd, depth + 1)
    try:
        yield path
    finally:
        with _guard:
            fd, depth = _held.pop(path)
            if depth > 1:
                _held[path] = (fd, depth - 1)
            else:
                os.close(fd)  # closing the last descriptor releases the flock
