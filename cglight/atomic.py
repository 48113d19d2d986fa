"""``atomic_write``: a file appears whole or not at all.

Every file cglight writes for later use (shards, manifests, markers, restart states, checkpoints,
reports) is written under a temporary name in the same folder, flushed to disk (``fsync``) and
renamed over the target with ``os.replace``; a writer that fails (or a process killed while it
writes) leaves the target as it was and, but for a kill, no temporary file. The temporary name is
``<name>.partial-<pid>``: concurrent processes never share one, and ``partial_target`` tells a
leftover from any other file. Imports nothing of cglight: every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PARTIAL = ".partial-"


def partial_path(path: str | os.PathLike) -> Path:
    """The temporary name this process writes ``path`` under."""
    path = Path(path)
    return path.with_name(f"{path.name}{PARTIAL}{os.getpid()}")


def partial_target(path: str | os.PathLike) -> Path | None:
    """The file a temporary ``<name>.partial-<pid>`` stands for, or None when ``path`` is not one."""
    path = Path(path)
    name, sep, pid = path.name.rpartition(PARTIAL)
    return path.with_name(name) if sep and name and pid.isdigit() else None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (not possible on every platform: then skipped)."""
    with contextlib.suppress(OSError):
        _fsync(folder)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_path(path) as tmp: writer(tmp)``: for writers that want a path (h5py, ``torch.save``,
    OpenMM); the folder is made if missing. Once the block ends the file at ``tmp`` is synced and
    renamed to ``path``; if the block raises, ``tmp`` is removed and ``path`` left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> None:
    """Write ``data`` (text in ``encoding``, or bytes) to ``path`` atomically."""
    raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(raw)
