"""``CGDataModule``: the shard dataset streamed to Lightning, on one process or many (DDP).

Lightning's hooks, in the order Lightning calls them:

- ``prepare_data`` (global rank 0 only, the other ranks wait at Lightning's barrier): a missing
  dataset is built from ``data.build`` by ``dataset_builder``, which the ``cglight`` command sets
  (``data/`` does not import ``prepare/``: docs/architecture.md).
- ``setup`` (every rank): the manifest is read and every shard's header checked (shapes, dtypes,
  openable, sha256 unless ``verify_checksums`` is false), so a missing, truncated, changed or mismatched shard stops every rank
  with an error naming the file before training starts. The splits are made (``splits.py``).
- ``train_dataloader`` / ``val_dataloader`` / ``test_dataloader``: ``StreamLoader``\\ s over
  ``ShardStream``\\ s (``stream.py``: blocks, shuffle windows, rank and worker split, memory bound).
  The training loader reads ``trainer.current_epoch`` as each pass starts (the epoch hand-over;
  Lightning restores the counter on resume): the order depends on ``seed`` and the epoch only.
- ``on_before_batch_transfer`` counts the training batches that reach the training step;
  ``state_dict`` / ``load_state_dict`` (of this DataModule and, the same position, of the
  training loader, Lightning's resumable-loader interface) put ``(epoch, consumed)`` into the
  checkpoint, so ``--ckpt_path`` resumes the stream at the next unseen batch.

What the model may use (an explicit hand-over, read after ``setup``): ``systems`` (the
manifest's systems) and ``calibration_batches(frames)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch import Tensor

from cglight.data import keys
from cglight.data.calibration import MODES, Outlier, check_calibration_frames, frame_moments
from cglight.data.dataset import ShardDataset
from cglight.data.manifest import MANIFEST, Manifest, SystemInfo, read_manifest
from cglight.data.splits import Segment, Splits, split_dataset
from cglight.data.stream import REMAINDER, ShardStream, StreamLoader, StreamPosition
from cglight.errors import ConfigError, DatasetError

log = logging.getLogger("cglight")

DatasetBuilder = Callable[[str, Path], None]
"""``builder(build, path)``: build the dataset at ``path`` from the ``cglight prepare`` config file ``build``."""


class CGDataModule(L.LightningDataModule):
    """Shard dataset → batches of ``pos``, ``forces``, ``hessian``, ``bead_types``, ``beta``.

    Args:
        path: dataset directory (holding ``manifest.json``).
        batch_size: frames per batch per rank (all from one system unless ``mix_systems``).
        val_fraction: fraction of each system's frames held out for validation: the block right
            after the training frames in trajectory order.
        test_fraction: fraction of each system's frames held out for testing: the end of its
            trajectory.
        holdout_systems: systems held out whole: all their frames are test frames, none trained on.
        num_workers: DataLoader worker processes per rank that read and prefetch (0 reads in the
            training process).
        block_frames: consecutive frames read at once (one HDF5 slice per field).
        window_frames: frames of the shuffle window, mixed within and across shards; it sets the
            memory bound (see ``cglight.data.stream``).
        remainder: what happens when the epoch's batches do not divide over the ranks: ``pad``
            (repeat the epoch's first batches) or ``drop`` (skip the epoch's last batches).
        seed: seed of the shuffle; the order depends on the seed and the epoch only.
        verify_checksums: check every shard's sha256 against the manifest in ``setup`` (on by default; a
            changed shard is refused, naming the file).
        calibration_outliers: what a calibration frame whose forces, Hessian or HVP have a mean square over
            100 times the median of its system's calibration frames does (``cglight.data.calibration``):
            ``refuse`` (default: an error naming the shard file and frame) or ``warn`` (named in a warning).
        mix_systems: shuffle the frames of all systems together, so that a batch holds frames of
            several systems (molecules of different bead counts; the mixed layout of
            ``cglight.data.mixed``, which ``CGPotential`` splits per system). Off by default: a
            batch then holds frames of one system, as before.
        build: a ``cglight prepare`` config used to build the dataset when ``path`` has no
            manifest yet (in ``prepare_data``, by global rank 0, with :attr:`dataset_builder`).
        train_frames: train on only this many of the training frames (learning curves; default: all),
            taken in blocks of ``train_block_frames`` consecutive frames in an order set by ``seed``,
            every system keeping its share; validation and test frames are unchanged (``cglight.data.splits``).
        train_block_frames: consecutive frames per block of ``train_frames``.
    """

    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        holdout_systems: list[str] | None = None,
        num_workers: int = 1,
        block_frames: int = 64,
        window_frames: int = 1024,
        remainder: str = "pad",
        seed: int = 0,
        verify_checksums: bool = True,
        mix_systems: bool = False,
        calibration_outliers: str = "refuse",
        build: str | None = None,
        train_frames: int | None = None,
        train_block_frames: int = 50,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("block_frames", block_frames), ("window_frames", window_frames),
                            ("train_block_frames", train_block_frames),
                            ("train_frames", 1 if train_frames is None else train_frames)):
            if value < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {value}")
        # one check per argument, each naming its key and what is allowed (alike in shape to other validators only)
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        if remainder not in REMAINDER:
            raise ConfigError(f"data.remainder must be one of {', '.join(REMAINDER)}, got {remainder!r}")
        if calibration_outliers not in MODES:
            raise ConfigError(f"data.calibration_outliers must be one of {', '.join(MODES)}, got {calibration_outliers!r}")
        self.calibration_outliers = calibration_outliers
        self.path, self.batch_size, self.build = Path(path), batch_size, build
        self.val_fraction, self.test_fraction, self.holdout_systems = val_fraction, test_fraction, list(holdout_systems or [])
        self.num_workers, self.block_frames, self.window_frames = num_workers, block_frames, window_frames
        self.remainder, self.seed, self.verify_checksums = remainder, seed, verify_checksums
        self.mix_systems = mix_systems
        self.train_frames, self.train_block_frames = train_frames, train_block_frames
        self.prepare_data_per_node = False  # one build per job: the dataset lives on a shared file system
        self.dataset: ShardDataset | None = None
        self.splits: Splits | None = None
        self.position = StreamPosition()
        self._epoch = 0
        self._manifest: Manifest | None = None
        self.dataset_builder: DatasetBuilder | None = None
        """What builds a missing dataset from ``build``; the ``cglight`` command sets it (to ``cglight prepare``)."""

    # ----------------------------------------------------------------- Lightning hooks
    def prepare_data(self) -> None:
        if (self.path / MANIFEST).is_file() or self.build is None:
            return
        if self.dataset_builder is None:
            raise ConfigError(f"data.build: {self.path} holds no dataset and no builder was given; the cglight command "
                              f"builds it, or run `cglight prepare --config {self.build} --out {self.path}` first")
        self.dataset_builder(self.build, self.path)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        self.dataset = ShardDataset(self.path, verify_checksums=self.verify_checksums)  # checks every shard's header
        self.splits = split_dataset(self.manifest, self.val_fraction, self.test_fraction, self.holdout_systems, str(self.path),
                                    self.train_frames, self.train_block_frames, self.seed)

    def _stream(self, segments: list[Segment], shuffle: bool, mix: bool | None = None) -> ShardStream:
        return ShardStream(self.path, self.manifest, segments, self.batch_size, shuffle, self.seed,
                           self.block_frames, self.window_frames, self.remainder, self.mix_systems if mix is None else mix)

    def train_dataloader(self) -> StreamLoader:
        return StreamLoader(self._stream(self._split().train, True), self.num_workers, epoch=self._current_epoch, position=self.position)

    def val_dataloader(self) -> StreamLoader:
        return StreamLoader(self._stream(self._split().val, False), self.num_workers)

    def test_dataloader(self) -> StreamLoader:
        test = self._split().test
        if not test:
            raise ConfigError(f"{self.path}: the test split is empty; set data.test_fraction > 0 or data.holdout_systems")
        return StreamLoader(self._stream(test, False), self.num_workers)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            self.position.consumed += 1  # a batch reaches the training step (prefetched ones are not counted)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The training stream's position: the epoch and how many of its batches this rank trained on."""
        return self.position.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.position.load_state_dict(state_dict)

    # ----------------------------------------------------------------- the epoch hand-over
    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next training pass when no trainer drives this DataModule."""
        self._epoch = epoch

    def _current_epoch(self) -> int:
        """Read by the training loader as each pass starts: Lightning's epoch counter, restored on resume."""
        return self.trainer.current_epoch if self.trainer is not None else self._epoch

    # ----------------------------------------------------------------- the hand-over to the model
    @property
    def manifest(self) -> Manifest:
        """The dataset's manifest (read, without the shard checks of ``setup``, if ``setup`` has not run yet)."""
        if self.dataset is not None:
            return self.dataset.manifest
        if self._manifest is None:
            self._manifest = read_manifest(self.path)
        return self._manifest

    @property
    def systems(self) -> dict[str, SystemInfo]:
        """The manifest's systems, name → ``SystemInfo`` (bead types, temperature, ...)."""
        return self.manifest.systems

    def calibration_batches(self, frames: int) -> Iterator[dict[str, Tensor]]:
        """Batches of about ``frames`` training frames, the same on every rank: every training segment
        (each system, replica and shard) gives its first frames, in proportion to its size, so that
        every system and trajectory is represented.

        After the last batch, a frame whose targets dwarf its system's others (``cglight.data.calibration``)
        is refused, or with ``calibration_outliers: warn`` named in a warning, before the caller uses the
        sums it took."""
        segments = self._split().train
        total = sum(s.frames for s in segments)
        chosen = []
        for s in segments:
            take = min(s.frames, max(1, round(max(frames, 1) * s.frames / total)))
            chosen.append(Segment(s.system, s.shard, s.start, s.start + take))
        stream = self._stream(chosen, shuffle=False, mix=False)  # the priors' fit reads one molecule per batch
        stream.configure(rank=0, world=1, epoch=0)
        origins = [(str(self.path / self.manifest.shards[shard].path), frame) for shard, frame in stream.origins()]
        per_system: dict[int, list[tuple[dict, list[tuple[str, int]]]]] = {}
        seen = 0
        for batch in stream.batches():
            b = len(batch[keys.POS])
            per_system.setdefault(int(batch[keys.SYSTEM][0]), []).append((frame_moments(batch), origins[seen : seen + b]))
            seen += b
            yield batch
        self._report(self._outliers(per_system))

    @staticmethod
    def _outliers(per_system: dict[int, list[tuple[dict, list[tuple[str, int]]]]]) -> list[Outlier]:
        found = []
        for parts in per_system.values():
            moments = {k: np.concatenate([m[k] for m, _ in parts]) for k in parts[0][0]}
            found += check_calibration_frames(moments, [o for _, origins in parts for o in origins])
        return sorted(found, key=lambda o: -o.ratio)

    def _report(self, found: list[Outlier]) -> None:
        if not found:
            return
        more = f" ({len(found)} such frames; the others: {'; '.join(map(str, found[1:4]))}{' …' if len(found) > 4 else ''})"
        text = f"{found[0]}{more if len(found) > 1 else ''}: a corrupted value?"
        if self.calibration_outliers == "warn":
            log.warning("%s The loss normalisation and priors are estimated with it (data.calibration_outliers: warn).", text)
            return
        raise DatasetError(f"{text} It would set the loss normalisation and priors; fix or remove it, or if it is genuine "
                           "set data.calibration_outliers: warn")

    def _split(self) -> Splits:
        if self.splits is None:
            self.setup()
        assert self.splits is not None
        return self.splits
