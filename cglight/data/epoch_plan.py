"""The epoch plan of ``ShardStream``: which frames go to which window, batch, rank and worker; pure
(no file is read here), a function of the segments, ``seed`` and ``epoch``.

How one epoch is laid out (every process computes the same plan from ``seed`` and ``epoch``
alone, so no process needs to talk to another):

1. Each system's frames (the split's ``Segment``\\ s) are cut into **blocks** of ``block_frames``
   consecutive frames, the unit of reading: one HDF5 slice per dataset, never random frames.
2. With shuffling, the blocks of a system are permuted, then packed into **windows** of
   ``window_frames`` frames (rounded up to a multiple of ``batch_size``). A window is the shuffle
   buffer: its frames come from blocks all over the system's shards and are permuted as a whole,
   then cut into batches. Every batch holds frames of one system; only a system's last window
   can end in a short batch. With ``mix`` (``data.mix_systems``) the blocks of all systems are
   shuffled and packed together instead: a window, and so a batch, holds frames of several
   systems (a mixed batch, ``cglight.data.mixed``), and only the epoch's last window can end in
   a short batch.
3. The windows of all systems are permuted, giving the epoch's list of ``T`` global batches.
4. **Ranks.** With ``W`` ranks every rank takes ``K`` consecutive global batches: rank ``r`` the
   batches ``rK … rK+K-1``. Remainder policy ``pad`` (default): ``K = ceil(T / W)`` and the
   positions past ``T`` wrap around to the epoch's first batches, so every frame is seen at least
   once and the first ``KW - T`` batches twice; ``drop``: ``K = floor(T / W)`` and the last
   ``T - KW`` batches of the epoch's order are skipped (a different few every epoch). Either way
   every rank yields exactly ``K`` batches, so uneven shards never leave a rank waiting.
5. **Workers.** A rank's batches are grouped into chunks of one window's worth of batches; the
   DataLoader workers take the chunks in turn (chunk ``j`` → worker ``j mod num_workers``) and
   deliver each as one item, which the ``StreamLoader`` unpacks. The order a rank sees is
   therefore the plan's order whatever the number of workers.
6. **Resume.** ``skip`` batches already trained on are left out of the pass (whole chunks are not
   read at all).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cglight.data.splits import Segment

REMAINDER = ("pad", "drop")
"""Remainder policies when the epoch's batches do not divide evenly over the ranks (step 4)."""


@dataclass(frozen=True)
class Window:
    """A shuffle window: ``pieces`` ``(shard, start, stop)``, ``frames`` in all, of one system
    (``system``) or, mixing systems, of several (``system`` is -1)."""

    system: int
    pieces: tuple[tuple[int, int, int], ...]
    frames: int


def batches_per_rank(total: int, world: int, remainder: str) -> int:
    """``K``, the batches every rank yields in an epoch of ``total`` batches (step 4)."""
    return math.ceil(total / world) if remainder == "pad" else total // world


def _group_blocks(segments: list[Segment], block_frames: int, shuffle: bool,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks of ``segments`` (one group's), permuted when shuffling: shard, start, cumulative frames."""
    starts = [np.arange(s.start, s.stop, block_frames) for s in segments]
    shard = np.concatenate([np.full(len(a), s.shard) for s, a in zip(segments, starts, strict=True)])
    start = np.concatenate(starts)
    stop = np.concatenate([np.minimum(a + block_frames, s.stop) for s, a in zip(segments, starts, strict=True)])
    if shuffle:
        p = rng.permutation(len(start))
        shard, start, stop = shard[p], start[p], stop[p]
    return shard, start, np.concatenate([[0], np.cumsum(stop - start)])


class EpochPlan:
    """The epoch's windows and global batches (see the module docstring), identical in every process.

    Held as numpy arrays, a few integers per block and per window; a window's pieces are
    worked out when it is read.
    """

    def __init__(self, segments: list[Segment], batch_size: int, block_frames: int, window_frames: int,
                 shuffle: bool, seed: int, epoch: int, mix: bool = False) -> None:
        self.batch_size, self.shuffle, self.seed, self.epoch, self.mix = batch_size, shuffle, seed, epoch, mix
        self.size = math.ceil(window_frames / batch_size) * batch_size
        self.batches_per_window = self.size // batch_size
        rng = np.random.default_rng([seed, epoch])
        self.systems = list(dict.fromkeys(s.system for s in segments))
        # the blocks of a group are shuffled and packed into windows together: one system each,
        # or all systems in one group when mixing
        self.groups = [self.systems] if mix and self.systems else [[system] for system in self.systems]
        self._blocks = [_group_blocks([s for s in segments if s.system in group], block_frames, shuffle, rng)
                        for group in self.groups]  # per group: shard, start, cumulative frames
        counts = [math.ceil(int(cum[-1]) / self.size) for _, _, cum in self._blocks]
        self.win_system = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        self.win_index = np.concatenate([np.arange(n, dtype=np.int64) for n in counts]) if counts else np.zeros(0, np.int64)
        if shuffle:
            p = rng.permutation(len(self.win_system))
            self.win_system, self.win_index = self.win_system[p], self.win_index[p]
        totals = np.array([int(b[2][-1]) for b in self._blocks], dtype=np.int64)
        self.frames = (np.minimum(self.size, totals[self.win_system] - self.win_index * self.size) if len(totals)
                       else self.win_index)
        self.first_batch = np.concatenate([[0], np.cumsum(-(-self.frames // batch_size))]).astype(np.int64)
        self.total = int(self.first_batch[-1])

    def window(self, w: int) -> Window:
        """Window ``w``: the contiguous pieces of shards it reads."""
        k = int(self.win_system[w])
        shard, start, cum = self._blocks[k]
        lo = int(self.win_index[w]) * self.size
        hi = lo + int(self.frames[w])
        pieces = []
        i = int(np.searchsorted(cum, lo, side="right") - 1)
        while i < len(start) and cum[i] < hi:
            a = int(start[i]) + max(lo - int(cum[i]), 0)
            b = int(start[i]) + min(hi, int(cum[i + 1])) - int(cum[i])
            pieces.append((int(shard[i]), a, b))
            i += 1
        group = self.groups[k]
        return Window(group[0] if len(group) == 1 else -1, tuple(pieces), hi - lo)

    def locate(self, batch: int) -> tuple[int, int]:
        """Global batch → (window, batch within the window)."""
        w = int(np.searchsorted(self.first_batch, batch, side="right") - 1)
        return w, batch - int(self.first_batch[w])

    def order(self, window: int) -> np.ndarray:
        """The permutation of a window's frames (identity without shuffling)."""
        n = int(self.frames[window])
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch, 1, window]).permutation(n)

    def window_frames(self, w: int) -> list[tuple[int, int]]:
        """``(shard, frame within the shard)`` of each frame of window ``w``, in the window's (shuffled) order."""
        frames = [(shard, i) for shard, a, b in self.window(w).pieces for i in range(a, b)]
        return [frames[j] for j in self.order(w)]

    def frames_of(self, batch: int) -> list[tuple[int, int]]:
        """``(shard, frame within the shard)`` of each frame of global batch ``batch``, in batch order."""
        w, b = self.locate(batch)
        return self.window_frames(w)[b * self.batch_size : (b + 1) * self.batch_size]

    def origins(self) -> list[tuple[int, int]]:
        """``(shard, frame within the shard)`` of every frame of the epoch, in the order of its global batches."""
        return [f for w in range(len(self.frames)) for f in self.window_frames(w)]

    def chunks(self, rank: int, world: int, remainder: str, skip: int = 0, worker: int = 0,
               workers: int = 1) -> Iterator[list[int]]:
        """The global batches rank ``rank`` of ``world`` yields (steps 4-6), in chunks of one window's worth:
        those of DataLoader worker ``worker`` of ``workers``, without the rank's first ``skip`` batches."""
        k = batches_per_rank(self.total, world, remainder)
        per_chunk = self.batches_per_window
        first_chunk = skip // per_chunk
        for chunk in range(first_chunk, math.ceil(k / per_chunk)):
            if (chunk - first_chunk) % workers != worker:
                continue
            positions = range(max(chunk * per_chunk, skip), min((chunk + 1) * per_chunk, k))
            yield [(rank * k + i) % self.total for i in positions]
