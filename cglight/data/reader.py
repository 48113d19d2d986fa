"""``ShardReader``: the one reader of a dataset's frames — open shards, frames by slice or by index, the batch they make.

Every read of frames out of shards goes through it: the map-style ``ShardDataset`` (frames by
index), the streaming ``ShardStream`` (contiguous blocks), and the reference frames the commands
use (:func:`reference_trajectories` for ``cglight evaluate`` and the training's simulation check,
:func:`start_frames` for ``cglight simulate``). Every failure is a ``DatasetError`` naming the
file (and the frame, where one is at fault).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

from cglight.data import keys
from cglight.data.manifest import Manifest
from cglight.data.shards import check_finite, open_shard
from cglight.errors import ConfigError, DatasetError
from cglight.units import beta

MAX_OPEN_FILES = 16

Frames = slice | np.ndarray
"""Frames of one shard: a slice with a start and a stop, or increasing frame numbers without repeats."""


def shard_fields(hessian: str) -> tuple[str, ...]:
    """The datasets a shard of a system with Hessian mode ``hessian`` holds, which every batch of it carries."""
    extra = {"full": (keys.HESSIAN,), "probes": (keys.PROBES, keys.HVP)}.get(hessian, ())
    return (keys.POS, keys.FORCES, *extra, keys.FRAME_INDEX)


def _numbers(frames: Frames) -> np.ndarray:
    return np.arange(frames.start, frames.stop) if isinstance(frames, slice) else np.asarray(frames, dtype=np.int64)


def _described(frames: Frames) -> str:
    if isinstance(frames, slice):
        return f"{frames.start}..{frames.stop - 1}"
    return str(np.asarray(frames).tolist())


class ShardReader:
    """The shards of the dataset at ``root`` (described by ``manifest``), open for reading in this process.

    At most ``max_open`` files are open at once (the least recently used is closed). A forked or
    unpickled copy (a DataLoader worker) opens its own: HDF5 handles never cross processes.
    """

    def __init__(self, root: str | os.PathLike, manifest: Manifest, max_open: int = MAX_OPEN_FILES) -> None:
        self.root, self.manifest, self.max_open = Path(root), manifest, max_open
        systems = list(manifest.systems.values())
        self.fields = [shard_fields(s.hessian) for s in systems]
        self._types = [torch.tensor(s.bead_types, dtype=torch.long) for s in systems]
        self._beta = [beta(s.temperature) for s in systems]
        self._files: OrderedDict[int, h5py.File] = OrderedDict()
        self._pid = os.getpid()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1].close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()
        return state

    def path(self, shard: int) -> Path:
        return self.root / self.manifest.shards[shard].path

    def file(self, shard: int) -> h5py.File:
        """Shard ``shard`` (its place in the manifest), open."""
        if os.getpid() != self._pid:  # a forked worker never shares HDF5 handles with its parent
            self._files, self._pid = OrderedDict(), os.getpid()
        if shard in self._files:
            self._files.move_to_end(shard)
            return self._files[shard]
        f = open_shard(self.path(shard))
        self._files[shard] = f
        while len(self._files) > self.max_open:
            self._files.popitem(last=False)[1].close()
        return f

    def _dataset(self, shard: int, name: str, stop: int) -> h5py.Dataset:
        f, path = self.file(shard), self.path(shard)
        if name not in f:
            raise DatasetError(f"{path}: missing dataset '{name}'")
        ds = f[name]
        if ds.shape[0] < stop:
            raise DatasetError(f"{path}: dataset '{name}' has {ds.shape[0]} frames, "
                               f"the manifest says {self.manifest.shards[shard].frames}")
        return ds

    def read(self, shard: int, name: str, frames: Frames, out: np.ndarray | None = None, check: bool = True) -> np.ndarray:
        """Dataset ``name`` of ``frames`` of ``shard``, read straight into ``out`` (float32, or int64 for
        ``frame_index``; made when not given); with ``check``, refused when a value is NaN or inf."""
        numbers = _numbers(frames)
        ds = self._dataset(shard, name, int(numbers[-1]) + 1 if len(numbers) else 0)
        if out is None:
            out = np.empty((len(numbers), *ds.shape[1:]), dtype=np.int64 if name == keys.FRAME_INDEX else np.float32)
        if len(numbers):
            try:
                ds.read_direct(out, source_sel=np.s_[frames] if isinstance(frames, slice) else np.s_[numbers])
            except (OSError, ValueError, TypeError) as exc:
                raise DatasetError(f"{self.path(shard)}: cannot read '{name}' frames {_described(frames)}, "
                                   f"damaged or truncated ({exc})") from None
        if check and name != keys.FRAME_INDEX:
            check_finite(self.path(shard), name, out, numbers)
        return out

    def frames(self, system: int, pieces: Sequence[tuple[int, Frames]]) -> dict[str, np.ndarray]:
        """Every field of ``system`` for the frames the ``(shard, frames)`` ``pieces`` select, one piece after
        the other, each field read straight into one array (no second copy)."""
        counts = [len(_numbers(frames)) for _, frames in pieces]
        total, out, offset = sum(counts), {}, 0
        for (shard, frames), n in zip(pieces, counts, strict=True):
            for name in self.fields[system]:
                if name not in out:
                    shape = self._dataset(shard, name, 0).shape[1:]
                    out[name] = np.empty((total, *shape), dtype=np.int64 if name == keys.FRAME_INDEX else np.float32)
                self.read(shard, name, frames, out[name][offset : offset + n])
            offset += n
        return out

    def batch(self, arrays: dict[str, np.ndarray], rows: np.ndarray, system: int) -> dict[str, Tensor]:
        """The batch of rows ``rows`` of one system's ``arrays`` (from :meth:`frames`), with the fields every
        batch carries: bead types, inverse temperature and the system's index."""
        out = {name: torch.from_numpy(np.ascontiguousarray(v[rows])) for name, v in arrays.items()}
        n = len(rows)
        out[keys.BEAD_TYPES] = self._types[system].expand(n, -1).clone()
        out[keys.BETA] = torch.full((n,), self._beta[system], dtype=torch.float32)
        out[keys.SYSTEM] = torch.full((n,), system, dtype=torch.long)
        return out


def _shards_of(manifest: Manifest, name: str) -> list[int]:
    return [i for i, s in enumerate(manifest.shards) if s.system == name]


def reference_trajectories(root: str | os.PathLike, manifest: Manifest, name: str) -> list[np.ndarray]:
    """The reference CG frames (Å, float64) of system ``name`` as trajectories: a new one wherever
    ``frame_index`` does not advance by one (replicas, or gaps)."""
    root = Path(root)
    pos, index = [], []
    with ShardReader(root, manifest) as reader:
        for i in _shards_of(manifest, name):
            frames = slice(0, manifest.shards[i].frames)
            pos.append(reader.read(i, keys.POS, frames, check=False))  # non-finite frames are counted below
            index.append(reader.read(i, keys.FRAME_INDEX, frames))
    if not pos:
        raise DatasetError(f"{root}: system '{name}' has no frames")
    pos, index = np.concatenate(pos).astype(np.float64), np.concatenate(index)
    bad = ~np.isfinite(pos).reshape(len(pos), -1).all(1)
    if bad.any():
        raise DatasetError(f"{root}: system '{name}' has {int(bad.sum())} reference frame(s) with non-finite positions "
                           f"(frame_index {index[bad][:5].tolist()}...); run `cglight data verify` on it")
    cuts = np.nonzero(np.diff(index) != 1)[0] + 1
    return [p for p in np.split(pos, cuts) if len(p)]


def start_frames(root: str | os.PathLike, manifest: Manifest, name: str, replicas: int, seed: int) -> np.ndarray:
    """``[replicas, n, 3]`` positions (Å, float32) of system ``name``'s frames drawn with ``seed`` (without
    repeats when there are enough frames), in the order of the dataset."""
    root = Path(root)
    shards = _shards_of(manifest, name)
    total = sum(manifest.shards[i].frames for i in shards)
    if total == 0:
        raise ConfigError(f"{root}: system '{name}' has no frames to start from")
    picks = np.sort(np.random.default_rng([seed, 7]).choice(total, size=replicas, replace=total < replicas))
    pos, offset = [], 0
    with ShardReader(root, manifest) as reader:
        for i in shards:
            frames = manifest.shards[i].frames
            local = picks[(picks >= offset) & (picks < offset + frames)] - offset
            if len(local):
                unique, inverse = np.unique(local, return_inverse=True)
                # not checked: a non-finite start stops its replica at its first step, reported as such
                pos.append(reader.read(i, keys.POS, unique, check=False)[inverse])
            offset += frames
    return np.concatenate(pos)
