"""``ShardStream``: a shard dataset streamed in contiguous blocks, split across ranks and workers.

Which frames each rank and worker gets, batch by batch, is the epoch plan (``cglight.data.epoch_plan``,
pure, the same in every process from ``seed`` and ``epoch``); the reading is ``cglight.data.reader``.
Here the two meet: a pass computes the plan, reads the windows its chunks need and assembles the
batches; ``StreamLoader`` hands the chunks to DataLoader workers and unpacks them in plan order, and
``StreamPosition`` lets a resumed pass skip the batches already trained on.

Memory: a worker holds one window (``window_frames`` frames, every field), the chunk it is
building and, while sending it, that chunk's shared-memory copy; the DataLoader queues at most
``prefetch_factor`` chunks per worker and the training process unpacks one. Per rank that is at
most about ``num_workers × (prefetch_factor + 4) × window_frames`` frames (3 windows with
``num_workers = 0``), whatever the size of the dataset; the plan itself is a few integers per
block (about 40 MB for 100 million frames).
"""

from __future__ import annotations

import logging
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

from cglight.data.epoch_plan import REMAINDER, EpochPlan, Window, batches_per_rank
from cglight.data.manifest import Manifest
from cglight.data.mixed import pack
from cglight.data.reader import ShardReader
from cglight.data.splits import Segment
from cglight.errors import ConfigError, DatasetError

__all__ = ["REMAINDER", "ReadError", "ShardStream", "StreamLoader", "StreamPosition", "rank_and_world", "worker_and_workers"]

log = logging.getLogger("cglight")


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks, from ``torch.distributed`` when it is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def worker_and_workers() -> tuple[int, int]:
    """This DataLoader worker's id and the number of workers (``0, 1`` in the main process)."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


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
        return self.plan().origins()

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
        for batches in plan.chunks(self.rank, self.world, self.remainder, self.skip, worker, workers):
            try:
                yield [self._batch(plan, b) for b in batches]
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
