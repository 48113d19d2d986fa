"""``CGDataModule``: train/validation/test loaders over a shard dataset.

The last ``val_fraction`` of every system's frames (in trajectory order) is held out for
validation and testing: MD frames are correlated in time, so a random split would leak.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from cglight.data.dataset import ShardDataset, SystemBatchSampler, collate_batch
from cglight.data.manifest import MANIFEST
from cglight.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)


class CGDataModule(L.LightningDataModule):
    """Shard dataset → batches of ``pos``, ``forces``, ``hessian``, ``bead_types``, ``beta``.

    Args:
        path: dataset directory (holding ``manifest.json``).
        batch_size: frames per batch (all from one system).
        val_fraction: fraction of each system's frames, taken from the end, for validation/test.
        num_workers: DataLoader worker processes (0 reads in the training process).
        seed: seed of the per-epoch shuffle.
        verify_checksums: check every shard's sha256 against the manifest when opening.
        build: a ``cglight prepare`` config used by ``cglight fit`` to build the dataset when
            ``path`` has no manifest yet.
    """

    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        num_workers: int = 0,
        seed: int = 0,
        verify_checksums: bool = False,
        build: str | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        if not 0 < val_fraction < 1:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        self.path, self.batch_size, self.val_fraction = Path(path), batch_size, val_fraction
        self.num_workers, self.seed, self.build = num_workers, seed, build
        if not (self.path / MANIFEST).is_file() and build is not None:
            raise DatasetError(f"dataset {self.path} has no {MANIFEST}; build it with `cglight prepare --config {build} --out {self.path}`")
        self.dataset = ShardDataset(self.path, verify_checksums=verify_checksums)
        self.train_frames, self.val_frames = self._split()

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        train, val = [], []
        for s, name in enumerate(self.dataset.system_names):
            frames = np.nonzero(self.dataset.system_of_frame == s)[0]
            n_val = int(round(len(frames) * self.val_fraction))
            if len(frames) - n_val < 1 or n_val < 1:
                raise DatasetError(f"{self.path}: system '{name}' has {len(frames)} frames, too few to hold out val_fraction={self.val_fraction}")
            train.append(frames[: len(frames) - n_val])
            val.append(frames[len(frames) - n_val :])
        return np.concatenate(train), np.concatenate(val)

    def _loader(self, frames: np.ndarray, shuffle: bool) -> DataLoader:
        sampler = SystemBatchSampler(frames, self.dataset.system_of_frame[frames], self.batch_size, shuffle, self.seed)
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=collate_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_frames, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_frames, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_frames, shuffle=False)

    @property
    def systems(self) -> dict:
        return self.dataset.manifest.systems

    def calibration_batches(self, frames: int) -> Iterator[dict]:
        """The first ``frames`` training frames, in order: the same on every rank."""
        chosen = self.train_frames[: max(frames, 1)]
        sampler = SystemBatchSampler(chosen, self.dataset.system_of_frame[chosen], self.batch_size, shuffle=False)
        for indices in sampler:
            yield self.dataset.__getitems__(indices)
