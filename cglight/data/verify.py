"""``cglight data verify DIR``: every shard's checksum, shapes, dtypes and finite values.

Unlike the reader, which stops at the first fault, ``verify`` reads everything and reports every
file and frame at fault; it never writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from cglight.data import keys
from cglight.data.manifest import read_manifest
from cglight.data.shards import check_shard, sha256, shard_file
from cglight.errors import DatasetError

CHUNK = 256
"""Frames read at a time, so that large shards need little memory."""


def _bad_frames(ds: h5py.Dataset) -> list[int]:
    bad = []
    for start in range(0, ds.shape[0], CHUNK):
        block = ds[start : start + CHUNK]
        finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        bad.extend(int(start + i) for i in np.nonzero(~finite)[0])
    return bad


def _frames(bad: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, bad[:limit]))
    return f"frame {shown}" if len(bad) == 1 else f"frames {shown}" + (f" … ({len(bad)} in all)" if len(bad) > limit else "")


def _scan(path: Path, frames: int) -> list[str]:
    """The faults of a shard's values: non-finite frames, optional datasets of the wrong length."""
    found = []
    with shard_file(path) as f:
        for key in keys.FLOAT_DATASETS:
            if key in f:
                bad = _bad_frames(f[key])
                if bad:
                    found.append(f"{path}: dataset '{key}' holds NaN or inf at {_frames(bad)}")
        for key in (keys.REPLICA, keys.FD_ASYMMETRY):
            if key in f and f[key].shape != (frames,):
                found.append(f"{path}: dataset '{key}' has shape {f[key].shape}, expected ({frames},)")
    return found


def verify_dataset(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Return ``(faults, lines)``: one fault per file/dataset at fault (empty when all is well), and a report."""
    root = Path(root)
    faults: list[str] = []
    lines: list[str] = []
    try:
        manifest = read_manifest(root)
    except DatasetError as exc:
        return [str(exc)], [f"FAULT {exc}"]
    for name, system in manifest.systems.items():
        for key, rel in sorted((system.reference or {}).items()):
            if key in ("topology", "trajectory", "system") and not (root / rel).is_file():
                faults.append(f"{root / rel}: reference file of system '{name}' is missing")
        for rel in system.trajectories or []:
            if not (root / rel).is_file():
                faults.append(f"{root / rel}: reference trajectory of system '{name}' is missing")
    lines.extend(f"FAULT {x}" for x in faults)
    for shard in manifest.shards:
        path = root / shard.path
        system = manifest.systems[shard.system]
        found: list[str] = []
        if shard.sha256 is None:
            lines.append(f"note  {path}: no sha256 in the manifest; checksum not checked")
        elif sha256(path) != shard.sha256:
            found.append(f"{path}: sha256 does not match the manifest (the file changed after it was written)")
        try:
            check_shard(root, shard, system)
        except DatasetError as exc:
            found.append(str(exc))
        else:
            try:
                found += _scan(path, shard.frames)
            except DatasetError as exc:
                found.append(str(exc))
        faults.extend(found)
        lines.extend(f"FAULT {x}" for x in found)
        if not found:
            lines.append(f"ok    {path} ({shard.frames} frames)")
    return faults, lines
