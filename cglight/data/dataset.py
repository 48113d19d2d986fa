"""``ShardDataset``: random access to the frames of a shard dataset, read lazily from HDF5.

Training streams through ``cglight.data.stream``; this reader is for looking at given frames.
Its memory is a few integers per shard, never per frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from cglight.data.manifest import Manifest, read_manifest
from cglight.data.reader import ShardReader
from cglight.data.shards import check_shard
from cglight.errors import DatasetError


class ShardDataset(Dataset):
    """All frames of a dataset, indexed globally in manifest order (shard by shard).

    ``dataset[[i, j, ...]]`` (or ``__getitems__``) returns a batch dict of tensors; frames of one
    batch must belong to one system. Frames are read through a ``ShardReader`` (files opened lazily,
    once per process), so the dataset can be used by DataLoader workers. Every shard is opened and
    checked when the dataset is made, and its sha256 compared with the manifest's unless
    ``verify_checksums`` is false.
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
        self.reader = ShardReader(self.root, self.manifest)

    def __len__(self) -> int:
        return int(self.offsets[-1])

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
        # each shard's frames read once, in increasing order; ``rows``: where each asked frame lands
        pieces, rows, read = [], np.empty(len(idx), dtype=np.int64), 0
        for shard in np.unique(shard_of):
            mine = np.nonzero(shard_of == shard)[0]
            unique, inverse = np.unique(idx[mine] - self.offsets[shard], return_inverse=True)
            pieces.append((int(shard), unique))
            rows[mine] = read + inverse
            read += len(unique)
        system = int(systems[0])
        return self.reader.batch(self.reader.frames(system, pieces), rows, system)
