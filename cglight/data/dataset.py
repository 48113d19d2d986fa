"""``ShardDataset``: random access to the frames of a shard dataset, read lazily from HDF5.

Training streams through ``cglight.data.stream``; this reader is for looking at given frames.
Its memory is a few integers per shard, never per frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cglight.data import keys
from cglight.data.manifest import Manifest, read_manifest
from cglight.data.shards import check_finite, check_shard, open_shard
from cglight.errors import DatasetError
from cglight.units import beta


class ShardDataset(Dataset):
    """All frames of a dataset, indexed globally in manifest order (shard by shard).

    ``dataset[[i, j, ...]]`` (or ``__getitems__``) returns a batch dict of tensors; frames of one
    batch must belong to one system. HDF5 files are opened lazily, once per process, so the
    dataset can be used by DataLoader workers. Every shard is opened and checked when the dataset is
    made, and its sha256 compared with the manifest's unless ``verify_checksums`` is false.
    """

    def __init__(self, root: str | os.PathLike, verify_checksums: bool = True) -> None:
        self.root = Path(root)
        self.manifest: Manifest = read_manifest(self.root)
        self.system_names = list(self.manifest.systems)
        for i, shard in enumerate(self.manifest.shards):  # every shard opened, checked and (by default) its sha256 verified
            check_shard(self.root, shard, self.manifest.systems[shard.system], verify_checksums, i)
        counts = [s.frames for s in self.manifest.shards]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.shard_system = np.array([self.system_names.index(s.system) for s in self.manifest.shards], dtype=np.int64)
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()
        self._types = [torch.tensor(s.bead_types, dtype=torch.long) for s in self.manifest.systems.values()]
        self._beta = [beta(s.temperature) for s in self.manifest.systems.values()]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _file(self, shard: int) -> h5py.File:
        if os.getpid() != self._pid:  # forked worker: never share HDF5 handles across processes
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            self._files[shard] = open_shard(self.root / self.manifest.shards[shard].path)
        return self._files[shard]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def __getitem__(self, index: int | Sequence[int]) -> dict[str, Tensor]:
        if isinstance(index, (int, np.integer)):
            batch = self.__getitems__([int(index)])
            return {k: v[0] for k, v in batch.items()}
        return self.__getitems__(list(index))

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            raise IndexError("empty batch")
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"frame index out of range [0, {len(self)}): {idx.tolist()}")
        shard_of = np.searchsorted(self.offsets, idx, side="right") - 1
        systems = np.unique(self.shard_system[shard_of])
        if systems.size != 1:
            raise DatasetError(f"a batch mixes systems {[self.system_names[s] for s in systems]}; batch frames of one system only")
        system = int(systems[0])
        info = self.manifest.systems[self.system_names[system]]
        parts: dict[str, list[np.ndarray]] = {}
        order: list[np.ndarray] = []
        for shard in np.unique(shard_of):
            sel = np.nonzero(shard_of == shard)[0]
            local = idx[sel] - self.offsets[shard]
            sort = np.argsort(local, kind="stable")
            uniq, inverse = np.unique(local[sort], return_inverse=True)
            f = self._file(int(shard))
            path = self.root / self.manifest.shards[shard].path
            for name in (keys.POS, keys.FORCES, keys.HESSIAN, keys.PROBES, keys.HVP, keys.FRAME_INDEX):
                if name not in f or (name == keys.HESSIAN and info.hessian != "full"):
                    continue
                try:
                    values = f[name][uniq][inverse]
                except OSError as exc:
                    frames = uniq.tolist()
                    raise DatasetError(f"{path}: cannot read '{name}' frames {frames}, damaged or truncated ({exc})") from None
                if name != keys.FRAME_INDEX:
                    check_finite(path, name, values, local[sort])
                parts.setdefault(name, []).append(values)
            order.append(sel[sort])
        back = np.argsort(np.concatenate(order), kind="stable")
        batch = {name: torch.from_numpy(np.concatenate(v)[back]) for name, v in parts.items()}
        b = len(idx)
        batch[keys.BEAD_TYPES] = self._types[system].expand(b, -1).clone()
        batch[keys.BETA] = torch.full((b,), self._beta[system], dtype=torch.float32)
        batch[keys.SYSTEM] = torch.full((b,), system, dtype=torch.long)
        return batch
