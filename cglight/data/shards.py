"""HDF5 shards: atomic writing, validated reading, checksums.

Every error names the file (and the frame, where one is at fault). A shard is written under a
temporary name and renamed only when complete, so a crash never leaves a shard that looks whole.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
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
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return digest


def check_shard(root: Path, shard: ShardInfo, system: SystemInfo, verify_checksum: bool = False) -> None:
    """Check that a shard's datasets have the shapes and dtypes the manifest implies."""
    path = root / shard.path
    if verify_checksum and shard.sha256 is not None:
        digest = sha256(path)
        if digest != shard.sha256:
            raise DatasetError(f"{path}: sha256 {digest} does not match the manifest's {shard.sha256}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be opened as HDF5 ({exc})") from None
    with f:
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


def check_finite(path: str | os.PathLike, name: str, values: np.ndarray, frames: np.ndarray) -> None:
    """Raise naming the file and the first frame whose ``name`` holds NaN or inf."""
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not finite.all():
        bad = int(frames[int(np.argmin(finite))])
        raise DatasetError(f"{path}: dataset '{name}' holds NaN or inf at frame {bad}")
