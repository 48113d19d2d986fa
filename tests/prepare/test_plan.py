"""The prepare plan and its parts, checked without OpenMM against a count by hand.

Oracle: every replica's frames 0 … quota-1 listed one by one (quota: ``frames`` split by hand into
counts that differ by at most one, capped by a user trajectory's length), and ``range(n)`` for the shards.
"""

from __future__ import annotations

import itertools

import pytest

from cglight.errors import ConfigError
from cglight.prepare.config import PrepareConfig
from cglight.prepare.plan import Part, dataset_plan, part_work


def _quota(frames: int, replicas: int) -> list[int]:
    out = [0] * replicas
    for i in range(frames):  # one frame at a time, round robin
        out[i % replicas] += 1
    return out


@pytest.mark.parametrize("frames, replicas, shard_frames, available",
                         [(10, 3, 4, None), (7, 1, 7, None), (12, 4, 1, None), (9, 2, 100, None), (20, 3, 3, [4, 9, 30])])
def test_shards_cover_every_frame_of_every_replica_once(frames, replicas, shard_frames, available):
    config = PrepareConfig(system="s", frames=frames, replicas=replicas, shard_frames=shard_frames)
    plan = dataset_plan(config, available)
    quota = _quota(frames, len(available) if available else replicas)
    if available:
        quota = [min(q, a) for q, a in zip(quota, available, strict=True)]
    assert [r["frames"] for r in plan["replicas"]] == quota
    covered = [(s["replica"], f) for s in plan["shards"] for f in range(s["start"], s["stop"])]
    assert covered == [(r, f) for r, q in enumerate(quota) for f in range(q)]  # each once, in order
    assert all(0 < s["stop"] - s["start"] <= shard_frames for s in plan["shards"])
    assert [s["index"] for s in plan["shards"]] == list(range(len(plan["shards"])))
    assert len({s["path"] for s in plan["shards"]}) == len(plan["shards"])


@pytest.mark.parametrize("count", range(1, 8))
@pytest.mark.parametrize("shards", [0, 1, 5, 6, 13])
def test_parts_partition_the_shards(count, shards):
    pieces = [list(Part(i, count).select(shards)) for i in range(1, count + 1)]
    assert list(itertools.chain(*pieces)) == list(range(shards))  # exactly once each, parts in order
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_part_work_leaves_out_what_is_done():
    plan = dataset_plan(PrepareConfig(system="s", frames=12, replicas=3, shard_frames=2), None)  # 6 shards, 2 a replica
    work = part_work(plan, Part(2, 3), shard_done=lambda g: g == 2, md_done=lambda r: r == 0)
    assert [s["index"] for s in work.shards] == [2, 3] and [s["index"] for s in work.todo] == [3]
    assert work.md == [1]  # shard 3 is replica 1's; replica 0's MD is done and not needed
    assert part_work(plan, Part(1, 1), lambda g: False, lambda r: False).md == [0, 1, 2]
    assert part_work(plan, Part(1, 1), lambda g: False, lambda r: r == 1).md == [0, 2]  # replica 1's MD is done
    assert part_work(plan, Part(1, 1), lambda g: g in (2, 3), lambda r: False).md == [0, 2]  # replica 1: shards done


@pytest.mark.parametrize("text", ["3/2", "0/4", "two/3", "1"])
def test_bad_part_text_is_refused(text):
    with pytest.raises(ConfigError, match="--part"):
        Part.parse(text)
