"""What ``cglight prepare`` has to do, worked out from the settings alone (no OpenMM, no files).

The **plan** of a dataset: one reference trajectory per replica (``frames`` split evenly over the
replicas, each capped by the frames a user trajectory has), then the shards, ``shard_frames``
consecutive frames of one replica each, numbered in replica order. A **part** ``I/N`` is the I-th
of N contiguous slices of the shards; the parts 1/N … N/N cover every shard exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cglight.errors import ConfigError
from cglight.pool import even_sizes
from cglight.prepare.config import PrepareConfig


@dataclass
class Part:
    """The ``index``-th (1-based) of ``count`` slices of the shards; ``1/1`` is everything."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Part:
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ConfigError(f"--part must look like I/N (e.g. 2/8), got {text!r}") from None
        if not 1 <= i <= n:
            raise ConfigError(f"--part {text}: need 1 <= I <= N")
        return cls(i, n)

    def select(self, n_shards: int) -> range:
        return range((self.index - 1) * n_shards // self.count, self.index * n_shards // self.count)


def dataset_plan(config: PrepareConfig, available: list[int] | None) -> dict:
    """Replicas (their frame counts and reference files) and shards (replica, frame range) in order;
    ``available``: the frames of each user trajectory (one replica each), None when MD makes them."""
    n_rep = len(available) if available is not None else config.replicas
    quota = even_sizes(config.frames, n_rep)
    if available is not None:
        quota = [min(q, a) for q, a in zip(quota, available, strict=True)]
    replicas, shards = [], []
    for r, q in enumerate(quota):
        replicas.append({"replica": r, "frames": q, "path": f"{config.system}/reference/trajectory-{r:03d}.dcd"})
        for start in range(0, q, config.shard_frames):
            g = len(shards)
            shards.append({"index": g, "replica": r, "start": start, "stop": min(start + config.shard_frames, q),
                           "path": f"{config.system}/shard-{g:05d}.h5"})
    return {"system": config.system, "replicas": replicas, "shards": shards}


@dataclass
class PartWork:
    """What a run of one part still has to do."""

    shards: list[dict]
    """The part's shards (entries of the plan)."""
    todo: list[dict]
    """Those not done yet."""
    md: list[int]
    """The replicas whose reference trajectory ``todo`` needs and that is not done yet."""


def part_work(plan: dict, part: Part, shard_done: Callable[[int], bool], md_done: Callable[[int], bool]) -> PartWork:
    """The shards of ``part`` in ``plan``, those not ``shard_done`` (by index) and the replicas they need
    that are not ``md_done`` (by replica)."""
    mine = [plan["shards"][g] for g in part.select(len(plan["shards"]))]
    todo = [s for s in mine if not shard_done(s["index"])]
    needed = sorted({s["replica"] for s in todo})
    return PartWork(mine, todo, [r for r in needed if not md_done(r)])
