"""``ShardStream``: a shard dataset streamed in contiguous blocks, split across ranks and workers.

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

Memory: a worker holds one window (``window_frames`` frames, every field), the chunk it is
building and, while sending it, that chunk's shared-memory copy; the DataLoader queues at most
``prefetch_factor`` chunks per worker and the training process unpacks one. Per rank that is at
most about ``num_workers × (prefetch_factor + 4) × window_frames`` frames (3 windows with
``num_workers = 0``), whatever the size of the dataset; the plan itself is a few integers per
block (about 40 MB for 100 million frames).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from cglight.data.manifest import Manifest
from cglight.data.mixed import pack
from cglight.data.reader import ShardReader
from cglight.data.splits import Segment
from cglight.errors import ConfigError, DatasetError

log = logging.getLogger("cglight")
REMAINDER = ("pad", "drop")


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks, from ``torch.distributed`` when it is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def worker_and_workers() -> tuple[int, int]:
    """This DataLoader worker's id and the number of workers (``0, 1`` in the main process)."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


@dataclass(frozen=True)
class Window:
    """A shuffle window: ``pieces`` ``(shard, start, stop)``, ``frames`` in all, of one system
    (``system``) or, mixing systems, of several (``system`` is -1)."""

    system: int
    pieces: tuple[tuple[int, int, int], ...]
    frames: int


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
        self._blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per group: shard, start, cumulative frames
        self.systems = list(dict.fromkeys(s.system for s in segments))
        # the blocks of a group are shuffled and packed into windows together: one system each,
        # or all systems in one group when mixing
        self.groups = [self.systems] if mix and self.systems else [[system] for system in self.systems]
        win_system, win_index = [], []
        for k, group in enumerate(self.groups):
            mine = [s for s in segments if s.system in group]
            starts = [np.arange(s.start, s.stop, block_frames) for s in mine]
            shard = np.concatenate([np.full(len(a), s.shard) for s, a in zip(mine, starts, strict=True)])
            start = np.concatenate(starts)
            stop = np.concatenate([np.minimum(a + block_frames, s.stop) for s, a in zip(mine, starts, strict=True)])
            if shuffle:
                p = rng.permutation(len(start))
                shard, start, stop = shard[p], start[p], stop[p]
            cum = np.concatenate([[0], np.cumsum(stop - start)])
            self._blocks.append((shard, start, cum))
            n = math.ceil(int(cum[-1]) / self.size)
            win_system.append(np.full(n, k))
            win_index.append(np.arange(n))
        self.win_system = np.concatenate(win_system) if win_system else np.zeros(0, dtype=np.int64)
        self.win_index = np.concatenate(win_index) if win_index else np.zeros(0, dtype=np.int64)
        if shuffle:
            p = rng.permutation(len(self.win_system))
            self.win_system, self.win_index = self.win_system[p], self.win_index[p]
        totals = np.array([int(b[2][-1]) for b in self._blocks], dtype=np.int64)
        self.frames = np.minimum(self.size, totals[self.win_system] - self.win_index * self.size) if len(totals) else self.win_index
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


def batches_per_rank(total: int, world: int, remainder: str) -> int:
    return math.ceil(total / world) if remainder == "pad" else total // world


class ShardStream(IterableDataset):
    """Batches (dicts of tensors, one system each) of the frames in ``segments``, streamed.

    With ``mix`` the blocks of all systems are shuffled into the same windows and every batch is
    a mixed batch (``cglight.data.mixed``), which may hold frames of several systems.

    Iterating it yields chunks (lists of batches) of this rank's share: in a DataLoader worker,
    the chunks of that worker. ``batches()`` yields the batches one by one; a ``StreamLoader``
    unpacks the chunks the same way.
    """

    def __init__(self, root: str | os.PathLike, manifest: Manifest, segments: list[Segment], batch_size: int,
                 shuffle: bool, seed: int = 0, block_frames: int = 64, window_frames: int = 1024,
                 remainder: str = "pad", mix: bool = False) -> None:
        if remainder not in REMAINDER:
            raise ConfigError(f"data.remainder must be one of {', '.join(REMAINDER)}, got {remainder!r}")
        self.root, self.manifest, self.segments = Path(root), manifest, list(segments)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.block_frames, self.window_frames, self.remainder = block_frames, window_frames, remainder
        self.epoch, self.skip, self.rank, self.world = 0, 0, 0, 1
        self.frames = sum(s.frames for s in self.segments)
        self.reader = ShardReader(self.root, manifest)
        self.mix = mix
        self._shard_system = {s.shard: s.system for s in self.segments}
        used = sorted({s.system for s in self.segments})
        if mix and len({self.reader.fields[k] for k in used}) > 1:
            names, systems = list(manifest.systems), list(manifest.systems.values())
            modes = {names[k]: systems[k].hessian for k in used}
            raise ConfigError(f"data.mix_systems: systems with different hessian modes cannot share a batch ({modes}); "
                              "use one hessian mode for all systems or data.mix_systems: false")
        self._window: tuple[int, tuple[dict[int, dict[str, np.ndarray]], np.ndarray, np.ndarray], np.ndarray] | None = None
        self._total: int | None = None

    # ----------------------------------------------------------------- plan
    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def configure(self, rank: int, world: int, epoch: int, skip: int = 0) -> None:
        """Set what the next pass yields: rank ``rank`` of ``world``, ``epoch``, without its first ``skip`` batches."""
        self.rank, self.world, self.epoch, self.skip = rank, world, epoch, skip

    def plan(self, epoch: int | None = None) -> EpochPlan:
        return EpochPlan(self.segments, self.batch_size, self.block_frames, self.window_frames, self.shuffle,
                         self.seed, self.epoch if epoch is None else epoch, self.mix)

    def origins(self) -> list[tuple[int, int]]:
        """``(shard, frame within the shard)`` of every frame the next pass yields, in order; for one rank
        reading one-system batches from the start of the pass (as the calibration frames are read)."""
        if self.mix or self.world != 1 or self.skip:
            raise ValueError("ShardStream.origins: one rank, one-system batches, from the start of a pass only")
        plan = self.plan()
        out: list[tuple[int, int]] = []
        for w in range(len(plan.frames)):
            frames = [(shard, i) for shard, a, b in plan.window(w).pieces for i in range(a, b)]
            out.extend(frames[j] for j in plan.order(w))
        return out

    def batches_per_rank(self, world: int) -> int:
        """Batches every rank yields per epoch (the same in every epoch)."""
        if self._total is None:
            self._total = self.plan(0).total
        return batches_per_rank(self._total, world, self.remainder)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_window"] = None
        return state

    def __iter__(self) -> Iterator:
        worker, workers = worker_and_workers()
        plan = self.plan()
        if plan.total == 0:
            return
        k = batches_per_rank(plan.total, self.world, self.remainder)
        if k == 0:
            raise DatasetError(
                f"{self.root}: {plan.total} batches cannot be split over {self.world} ranks with data.remainder='drop'; "
                "use 'pad', fewer ranks or a smaller batch_size"
            )
        per_chunk = plan.batches_per_window
        first_chunk = self.skip // per_chunk
        for chunk in range(first_chunk, math.ceil(k / per_chunk)):
            if (chunk - first_chunk) % workers != worker:
                continue
            positions = range(max(chunk * per_chunk, self.skip), min((chunk + 1) * per_chunk, k))
            try:
                yield [self._batch(plan, (self.rank * k + i) % plan.total) for i in positions]
            except DatasetError as exc:  # handed to the main process whole, not as a worker traceback
                yield ReadError(str(exc))
                return
        self._window = None

    def batches(self) -> Iterator[dict[str, Tensor]]:
        """The batches of one pass, in order, read in this process."""
        for chunk in self:
            yield from _unpack(chunk)

    # ----------------------------------------------------------------- reading
    def _read_window(self, window: Window) -> tuple[dict[int, dict[str, np.ndarray]], np.ndarray, np.ndarray]:
        """The window's frames per system (see ``_read``), and each window frame's system and index in its system's arrays."""
        systems = np.repeat(np.array([self._shard_system[p[0]] for p in window.pieces], dtype=np.int64),
                            [b - a for _, a, b in window.pieces])
        arrays, local = {}, np.zeros(len(systems), dtype=np.int64)
        for system in dict.fromkeys(systems.tolist()):
            mine = tuple(p for p in window.pieces if self._shard_system[p[0]] == system)
            arrays[system] = self._read(Window(system, mine, sum(b - a for _, a, b in mine)))
            local[systems == system] = np.arange(int((systems == system).sum()))
        return arrays, systems, local

    def _read(self, window: Window) -> dict[str, np.ndarray]:
        """The frames of a one-system window, every field read straight into one array (no second copy)."""
        return self.reader.frames(window.system, [(shard, slice(a, b)) for shard, a, b in window.pieces])

    def _batch(self, plan: EpochPlan, batch: int) -> dict[str, Tensor]:
        w, b = plan.locate(batch)
        if self._window is None or self._window[0] != w:
            self._window = None  # release the previous window before reading the next
            self._window = (w, self._read_window(plan.window(w)), plan.order(w))
        _, (arrays, systems, local), order = self._window
        idx = order[b * self.batch_size : (b + 1) * self.batch_size]
        if not self.mix:
            system = int(systems[0])
            return self.reader.batch(arrays[system], local[idx], system)
        # a mixed batch: the frames of each system (in window order), systems by index
        mine = systems[idx]
        return pack([self.reader.batch(arrays[s], local[idx[mine == s]], s) for s in sorted(set(mine.tolist()))])


@dataclass(frozen=True)
class ReadError:
    """A ``DatasetError`` met by a worker, delivered in place of its chunk."""

    message: str


def _unpack(chunk: list[dict[str, Tensor]] | ReadError) -> list[dict[str, Tensor]]:
    if isinstance(chunk, ReadError):
        raise DatasetError(chunk.message)
    return chunk


def _as_is(item):
    return item


class StreamPosition:
    """Where the training stream is: the epoch of the current pass and how many of its batches were trained on.

    ``consumed`` is counted by the owner as batches reach the training step (not as the loader
    prefetches them). ``load_state_dict`` makes the next pass of that epoch skip them.
    """

    def __init__(self) -> None:
        self.epoch, self.consumed = 0, 0
        self.setting: dict[str, Any] = {}
        self._resume: dict[str, Any] | None = None

    def begin(self, epoch: int, setting: dict[str, Any]) -> int:
        """A pass of ``epoch`` starts under ``setting`` (world size, batch size, seed): batches to skip."""
        skip, resume, self._resume = 0, self._resume, None
        if resume is not None and resume.get("epoch") == epoch:
            skip = int(resume.get("consumed", 0))
            if resume.get("setting") != setting:
                log.warning("resuming under %s, the checkpoint was written under %s: the data stream restarts epoch %d "
                            "from its beginning instead of batch %d", setting, resume.get("setting"), epoch, skip)
                skip = 0
        self.epoch, self.consumed, self.setting = epoch, skip, dict(setting)
        return skip

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "consumed": self.consumed, "setting": dict(self.setting)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict)


class StreamLoader(DataLoader):
    """A DataLoader over a ``ShardStream``: yields batches, ``len`` = batches per rank per epoch.

    Every pass reads the rank from ``torch.distributed`` and its epoch from ``epoch()`` before
    the workers start, so each worker knows its share; with a ``position`` it also skips the
    batches a resumed checkpoint had already trained on, and its ``state_dict`` /
    ``load_state_dict`` (Lightning's resumable-loader interface) are the position's. Workers
    are not persistent: each pass starts them afresh with the pass's epoch.
    """

    def __init__(self, stream: ShardStream, num_workers: int = 0, prefetch_factor: int = 2,
                 epoch: Callable[[], int] | None = None, position: StreamPosition | None = None) -> None:
        # its own generator: starting a pass must not draw from torch's global one, which the
        # probes of the Hessian losses use (the stream's order depends on seed and epoch only)
        super().__init__(stream, batch_size=None, collate_fn=_as_is, num_workers=num_workers,
                         prefetch_factor=prefetch_factor if num_workers > 0 else None, persistent_workers=False,
                         generator=torch.Generator().manual_seed(stream.seed))
        self.epoch, self.position = epoch, position

    def state_dict(self) -> dict[str, Any]:
        return self.position.state_dict() if self.position is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.position is not None and state_dict:
            self.position.load_state_dict(state_dict)

    def __len__(self) -> int:
        return self.dataset.batches_per_rank(rank_and_world()[1])

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        rank, world = rank_and_world()
        stream = self.dataset
        epoch = self.epoch() if self.epoch is not None else stream.epoch
        setting = {"world": world, "batch_size": stream.batch_size, "seed": stream.seed, "remainder": stream.remainder}
        if stream.mix:
            setting["mix_systems"] = True
        skip = self.position.begin(epoch, setting) if self.position is not None else 0
        stream.configure(rank, world, epoch, skip)
        for chunk in super().__iter__():
            yield from _unpack(chunk)
