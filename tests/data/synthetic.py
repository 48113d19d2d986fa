"""Synthetic shard datasets written through the public shard contract (for tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cglight.data import keys
from cglight.data.manifest import Manifest, ShardInfo, SystemInfo, write_manifest
from cglight.data.shards import write_shard


def write_synthetic(root: str | Path, shards: dict[str, list[int]], beads: int | dict[str, int] = 5, seed: int = 0,
                    temperature: float | None = None) -> Path:
    """A dataset with one system per key of ``shards`` (its shard sizes, in trajectory order) and
    ``beads`` beads (one count for all, or per system), at ``temperature`` (by default 300 K,
    310 K, ... by system).

    ``frame_index`` numbers each system's frames 0, 1, ... in trajectory order; positions are a
    noisy chain, forces small and the Hessians symmetric, so a tiny model trains on them.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    systems, infos = {}, []
    counts = beads if isinstance(beads, dict) else dict.fromkeys(shards, beads)
    for s, (name, sizes) in enumerate(shards.items()):
        beads = counts[name]
        systems[name] = SystemInfo(300.0 + 10 * s if temperature is None else temperature, [(i + s) % 4 for i in range(beads)], [f"B{i}" for i in range(beads)],
                                   [[i, i + 1] for i in range(beads - 1)], "custom", "full")
        start = 0
        for k, f in enumerate(sizes):
            chain = np.arange(beads)[:, None] * np.array([3.8, 0.0, 0.0])
            a = rng.normal(size=(f, 3 * beads, 3 * beads))
            arrays = {
                keys.POS: chain + 0.3 * rng.normal(size=(f, beads, 3)),
                keys.FORCES: rng.normal(size=(f, beads, 3)),
                keys.HESSIAN: (a + a.transpose(0, 2, 1)) / 2,
                keys.FRAME_INDEX: np.arange(start, start + f),
            }
            path = f"{name}/shard-{k:05d}.h5"
            infos.append(ShardInfo(path, name, f, write_shard(root / path, arrays)))
            start += f
    write_manifest(root, Manifest(systems, infos))
    return root
