"""HDF5 shards: atomic writing, validated reading, checksums.

Every error names the file (and the frame, where one is at fault). A shard is written atomically
(``cglight.atomic``), so a crash never leaves a shard that looks whole. Frames are read through
``cglight.data.reader``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from cglight.atomic import atomic_path
from cglight.data import keys
from cglight.data.manifest import ShardInfo, SystemInfo
from cglight.errors import DatasetError


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def expected_shapes(system: SystemInfo, frames: int, probes: int | None = None) -> dict[str, tuple[int, ...]]:
    """Shapes every dataset of a shard of ``system`` must have."""
    n = system.n_beads
    shapes: dict[str, tuple[int, ...]] = {keys.POS: (frames, n, 3), keys.FORCES: (frames, n, 3), keys.FRAME_INDEX: (frames,)}
    if system.hessian == "full":
        shapes[keys.HESSIAN] = (frames, 3 * n, 3 * n)
    elif system.hessian == "probes":
        k = probes if probes is not None else -1
        shapes[keys.PROBES] = (frames, k, 3 * n)
        shapes[keys.HVP] = (frames, k, 3 * n)
    return shapes


def write_shard(path: str | os.PathLike, arrays: dict[str, np.ndarray], attrs: dict | None = None) -> str:
    """Write one shard atomically and return its sha256.

    Float datasets are stored as float32, ``frame_index`` as int64. Non-finite values are refused.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, value in arrays.items():
                if name in keys.FLOAT_DATASETS:
                    value = np.asarray(value, dtype=np.float32)
                    if not np.isfinite(value).all():
                        bad = int(np.argwhere(~np.isfinite(value.reshape(len(value), -1)))[0, 0])
                        raise DatasetError(f"{path}: refusing to write non-finite '{name}' at frame {bad}")
                elif name == keys.FRAME_INDEX:
                    value = np.asarray(value, dtype=np.int64)
                f.create_dataset(name, data=value)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
        digest = sha256(tmp)
    return digest


def open_shard(path: str | os.PathLike) -> h5py.File:
    """Open a shard for reading; a file HDF5 cannot open (truncated, not HDF5, unreadable) is a ``DatasetError`` naming it."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # FileNotFoundError and PermissionError included
        raise DatasetError(f"{path}: truncated or not an HDF5 file ({exc})") from None


@contextmanager
def shard_file(path: str | os.PathLike) -> Iterator[h5py.File]:
    """``with shard_file(path) as f``: a shard open for reading, as ``open_shard``; a failure while reading it
    (a damaged block, a missing dataset) is a ``DatasetError`` naming the file too."""
    f = open_shard(path)
    try:
        with f:
            yield f
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read, damaged or truncated ({exc})") from None
    except KeyError as exc:
        raise DatasetError(f"{path}: missing dataset ({exc})") from None


def verify_checksum(path: str | os.PathLike, shard: ShardInfo, index: int) -> None:
    """Raise unless the file's sha256 is the one the manifest records for it (``shards[index].sha256``)."""
    if shard.sha256 is None:
        return
    digest = sha256(path)
    if digest != shard.sha256:
        raise DatasetError(
            f"{path}: sha256 {digest[:12]}… does not match the manifest's shards[{index}].sha256 {shard.sha256[:12]}…: "
            "the file changed after it was written (`cglight data verify` names what else is at fault; "
            "data.verify_checksums: false reads it anyway)"
        )


def check_shard(root: Path, shard: ShardInfo, system: SystemInfo, verify: bool = False, index: int = 0) -> None:
    """Check that a shard opens and that its datasets have the shapes and dtypes the manifest implies; with
    ``verify``, also its checksum (``index``: its place in the manifest's ``shards``, for the message)."""
    path = root / shard.path
    with shard_file(path) as f:
        probes = f[keys.PROBES].shape[1] if system.hessian == "probes" and keys.PROBES in f else None
        for name, shape in expected_shapes(system, shard.frames, probes).items():
            if name not in f:
                raise DatasetError(f"{path}: missing dataset '{name}' (manifest says hessian='{system.hessian}')")
            ds = f[name]
            if ds.shape != shape:
                raise DatasetError(
                    f"{path}: dataset '{name}' has shape {ds.shape}, the manifest implies {shape} "
                    f"(frames={shard.frames}, beads={system.n_beads})"
                )
            want = np.integer if name == keys.FRAME_INDEX else np.float32
            if not np.issubdtype(ds.dtype, want):
                raise DatasetError(f"{path}: dataset '{name}' has dtype {ds.dtype}, expected {np.dtype(want) if want is np.float32 else 'an integer type'}")
    if verify:
        verify_checksum(path, shard, index)


def check_finite(path: str | os.PathLike, name: str, values: np.ndarray, frames: np.ndarray) -> None:
    """Raise naming the file and the first frame whose ``name`` holds NaN or inf."""
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not finite.all():
        bad = int(frames[int(np.argmin(finite))])
        raise DatasetError(f"{path}: dataset '{name}' holds NaN or inf at frame {bad}")
