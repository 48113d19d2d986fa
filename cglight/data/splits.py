"""Train / validation / test splits of a shard dataset, as contiguous time blocks.

Consecutive MD frames are correlated, so a random frame split would leak: a validation frame
would have a near-copy in the training set. Each system's frames, in trajectory order (the
manifest's shard order), are cut into three contiguous blocks::

    | train (1 - val_fraction - test_fraction) | validation (val_fraction) | test (test_fraction) |

A system named in ``holdout_systems`` is held out whole: all its frames are test frames, none
are trained or validated on (transferability studies).

``train_frames`` (learning curves) keeps only that many training frames: each system's training
block is cut into blocks of ``train_block_frames`` consecutive frames, the blocks are drawn in an
order set by ``seed`` alone, and each system keeps its share of the frames (in proportion to its
training frames) from its first blocks in that order. The same seed gives the same frames, and a
smaller count a subset of a larger one (one system); validation and test are not touched.

A split is a list of ``Segment``\\ s, contiguous frame ranges of one shard each; nothing here
reads HDF5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cglight.data.manifest import Manifest
from cglight.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, stop)`` of shard number ``shard`` (manifest order), of system number ``system``."""

    system: int
    shard: int
    start: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Splits:
    train: list[Segment]
    val: list[Segment]
    test: list[Segment]


def _take(shards: list[tuple[int, int]], system: int, begin: int, end: int) -> list[Segment]:
    """Frames ``[begin, end)`` of a system whose shards are ``(shard index, frames)`` in order."""
    out, offset = [], 0
    for shard, frames in shards:
        lo, hi = max(begin - offset, 0), min(end - offset, frames)
        if lo < hi:
            out.append(Segment(system, shard, lo, hi))
        offset += frames
    return out


TRAIN_SUBSET_STREAM = 0x5EB5E7
"""Second word of the random stream that orders the training blocks of ``train_frames`` (the shuffle uses others)."""


def _shares(frames: int, sizes: dict[int, int]) -> dict[int, int]:
    """``frames`` split over systems in proportion to ``sizes`` (largest remainder; ties to the lower index)."""
    total = sum(sizes.values())
    exact = {k: frames * n / total for k, n in sizes.items()}
    shares = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: (shares[k] - exact[k], k))[: frames - sum(shares.values())]:
        shares[k] += 1
    return shares


def train_subset(train: list[Segment], frames: int, block_frames: int, seed: int, where: str = "dataset") -> list[Segment]:
    """``frames`` of the training segments ``train`` in blocks of ``block_frames`` (see the module docstring)."""
    total = sum(s.frames for s in train)
    if frames < 1 or frames > total:
        raise ConfigError(f"data.train_frames must be in [1, {total}] (the training frames of {where}), got {frames}")
    if block_frames < 1:
        raise ConfigError(f"data.train_block_frames must be >= 1, got {block_frames}")
    rng = np.random.default_rng([seed, TRAIN_SUBSET_STREAM])
    sizes: dict[int, int] = {}
    for s in train:
        sizes[s.system] = sizes.get(s.system, 0) + s.frames
    chosen: list[Segment] = []
    for system, share in _shares(frames, sizes).items():
        blocks = [Segment(s.system, s.shard, a, min(a + block_frames, s.stop))
                  for s in train if s.system == system for a in range(s.start, s.stop, block_frames)]
        for i in rng.permutation(len(blocks)):
            if share <= 0:
                break
            b = blocks[i]
            chosen.append(Segment(b.system, b.shard, b.start, b.start + min(b.frames, share)))
            share -= chosen[-1].frames
    return sorted(chosen, key=lambda s: (s.system, s.shard, s.start))


def split_dataset(
    manifest: Manifest,
    val_fraction: float,
    test_fraction: float,
    holdout_systems: list[str] | None = None,
    where: str = "dataset",
    train_frames: int | None = None,
    train_block_frames: int = 50,
    seed: int = 0,
) -> Splits:
    """Cut every system into train / validation / test time blocks (see the module docstring)."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ConfigError(f"data.test_fraction must be in [0, 1) with val_fraction + test_fraction < 1, got {test_fraction}")
    names = list(manifest.systems)
    holdout = list(holdout_systems or [])
    unknown = [h for h in holdout if h not in manifest.systems]
    if unknown:
        raise ConfigError(f"data.holdout_systems names {unknown}, not in {where} (systems: {', '.join(names)})")
    train: list[Segment] = []
    val: list[Segment] = []
    test: list[Segment] = []
    for s, name in enumerate(names):
        shards = [(i, sh.frames) for i, sh in enumerate(manifest.shards) if sh.system == name]
        total = sum(f for _, f in shards)
        if name in holdout:
            test += _take(shards, s, 0, total)
            continue
        n_test = int(round(total * test_fraction))
        n_val = int(round(total * val_fraction))
        n_train = total - n_val - n_test
        if n_train < 1 or n_val < 1 or (test_fraction > 0 and n_test < 1):
            raise DatasetError(
                f"{where}: system '{name}' has {total} frames, too few to hold out "
                f"val_fraction={val_fraction} and test_fraction={test_fraction}"
            )
        train += _take(shards, s, 0, n_train)
        val += _take(shards, s, n_train, n_train + n_val)
        test += _take(shards, s, n_train + n_val, total)
    if not train:
        raise ConfigError(f"data.holdout_systems holds out every system of {where}: nothing is left to train on")
    if train_frames is not None:
        train = train_subset(train, train_frames, train_block_frames, seed, where)
    return Splits(train, val, test)
