"""One ``cglight prepare`` at a time per dataset directory.

A run holds an exclusive ``flock`` on ``.<name>.lock`` beside the dataset directory ``<name>`` (not
inside it: ``--overwrite`` empties the directory, and a new one must stay empty until claimed). The
file holds the PID of the run. The kernel drops the lock when the process ends in any way, ``kill -9``
included (and when its pool workers, which share it, end with it); the run removes the file when it
ends normally. A second run into the same directory fails at once, naming the directory and the PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from cglight.errors import DatasetError


def lock_path(out: str | os.PathLike) -> Path:
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def prepare_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of dataset directory ``out`` for the ``with`` block; DatasetError if another run holds it."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, out)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still held: a run waiting on this file will find it gone and retry
        os.close(fd)


def _acquire(path: Path, out) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatasetError(f"{out} is being prepared by another process (PID {holder}); "
                               "wait for it to end, or stop it and rerun (a stopped run resumes)") from None
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: take the new one


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return os.path.samestat(os.fstat(fd), st)
