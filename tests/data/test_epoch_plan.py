"""The epoch plan alone (no file read): which frames go to which batch, rank and worker.

Oracle: the segments' frames listed one by one, ``(shard, frame)`` for ``frame in range(start, stop)``,
and the rank/worker rules of the plan's docstring counted by hand (``K = ceil(T / W)`` with ``pad``,
``floor`` with ``drop``; chunk ``j`` to worker ``j mod workers``), never the plan's own bookkeeping.
"""

from __future__ import annotations

import collections

import pytest

from cglight.data.epoch_plan import EpochPlan
from cglight.data.splits import Segment

# system 0: three shards, one uneven and one cut at both ends; system 1: one shard
SEGMENTS = [Segment(0, 0, 0, 37), Segment(0, 1, 0, 5), Segment(0, 2, 3, 60), Segment(1, 3, 0, 19)]
FRAMES = [(s.shard, f) for s in SEGMENTS for f in range(s.start, s.stop)]
SYSTEM = {s.shard: s.system for s in SEGMENTS}


def _plan(epoch: int = 0, mix: bool = False, shuffle: bool = True) -> EpochPlan:
    return EpochPlan(SEGMENTS, batch_size=8, block_frames=4, window_frames=16, shuffle=shuffle, seed=3, epoch=epoch, mix=mix)


def _rank(plan: EpochPlan, rank: int, world: int, remainder: str = "pad", skip: int = 0, workers: int = 1) -> list[int]:
    """The rank's global batches, its workers' chunks put back in chunk order (worker ``j mod workers``)."""
    chunks = [list(plan.chunks(rank, world, remainder, skip, w, workers)) for w in range(workers)]
    return [b for j in range(sum(map(len, chunks))) for b in chunks[j % workers][j // workers]]


@pytest.mark.parametrize("mix", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_frame_once_per_epoch_in_batches_of_batch_size(mix, shuffle):
    plan = _plan(mix=mix, shuffle=shuffle)
    batches = [plan.frames_of(b) for b in range(plan.total)]
    assert sorted(f for b in batches for f in b) == sorted(FRAMES)  # each frame exactly once
    assert sum(len(b) < 8 for b in batches) <= (1 if mix else 2)  # a short batch only at a group's end
    assert all(0 < len(b) <= 8 for b in batches)
    if not mix:
        assert all(len({SYSTEM[s] for s, _ in b}) == 1 for b in batches)
    assert [f for b in batches for f in b] == plan.origins()


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("mix", [False, True])
def test_ranks_share_every_frame_with_equal_batch_counts(world, mix):
    plan = _plan(mix=mix)
    total = plan.total
    k_pad, k_drop = -(-total // world), total // world
    pad = [_rank(plan, r, world, "pad") for r in range(world)]
    assert [len(p) for p in pad] == [k_pad] * world
    assert pad == [[(r * k_pad + i) % total for i in range(k_pad)] for r in range(world)]  # K consecutive, wrapped
    seen = collections.Counter(f for p in pad for b in p for f in plan.frames_of(b))
    assert set(seen) == set(FRAMES)
    twice = sorted(f for b in range(k_pad * world - total) for f in plan.frames_of(b))  # the epoch's first batches
    assert sorted(f for f, n in seen.items() if n == 2) == twice and max(seen.values()) <= 2
    drop = [_rank(plan, r, world, "drop") for r in range(world)]
    assert [len(p) for p in drop] == [k_drop] * world
    kept = [b for p in drop for b in p]
    assert sorted(kept) == list(range(k_drop * world))  # the last batches of the epoch's order are skipped


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("skip", [0, 1, 2, 5])
def test_workers_and_skip_keep_the_rank_order(workers, skip):
    plan = _plan()
    whole = _rank(plan, 1, 2)
    assert _rank(plan, 1, 2, skip=skip, workers=workers) == whole[skip:]


def test_order_depends_on_seed_and_epoch_only():
    assert [_plan(0).frames_of(b) for b in range(_plan(0).total)] == [_plan(0).frames_of(b) for b in range(_plan(0).total)]
    assert _plan(0).origins() != _plan(1).origins() and sorted(_plan(0).origins()) == sorted(_plan(1).origins())
    assert _plan(shuffle=False).origins() == [f for s in sorted(SEGMENTS, key=lambda s: s.system) for f in
                                              [(s.shard, i) for i in range(s.start, s.stop)]]
