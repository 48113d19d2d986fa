"""Data stream: loader throughput against the training step's consumption, and peak memory.

    python benchmarks/stream_throughput.py [--frames 20000] [--rss-sizes 1,4,8] [--window 256]

1. Throughput: the training loader of ``CGDataModule`` (default workers, block and window) over
   one epoch of a synthetic 5-bead dataset with full Hessians (the quickstart's shapes), in
   frames/s, against the frames/s one training step of the quickstart model consumes (graph
   network 64×3, force + hvp_cov with 4 probes, batch 32, one thread).
2. Checksums: the time to verify one shard's sha256 against the time to read all its datasets, and
   ``setup`` with and without ``data.verify_checksums`` (on by default: every shard is hashed once
   per process that sets the DataModule up) against one epoch of the training loader.
3. Peak RSS: one epoch over synthetic 35-bead datasets with full Hessians (45 kB a frame) of
   1, 4 and 8 times the loader's memory bound, each in a fresh process; the peak resident memory
   of the training process and of its reading worker should not grow with the dataset (Linux:
   ``VmHWM`` of the process, ``ru_maxrss`` of the worker, which counts the pages it shares with
   its parent from the fork).

Synthetic datasets are written to a temporary directory through the public shard contract and
deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cglight.data import keys
from cglight.data.manifest import Manifest, ShardInfo, SystemInfo, write_manifest
from cglight.data.shards import write_shard


def write_dataset(root: Path, beads: int, frames: int, shard_frames: int = 4096) -> Path:
    """One system of ``frames`` frames with full Hessians, in shards of ``shard_frames``."""
    rng = np.random.default_rng(0)
    system = SystemInfo(300.0, [i % 4 for i in range(beads)], [f"B{i}" for i in range(beads)],
                        [[i, i + 1] for i in range(beads - 1)], "custom", "full")
    shards, start = [], 0
    hessian = rng.normal(size=(1, 3 * beads, 3 * beads)).astype(np.float32)
    while start < frames:
        f = min(shard_frames, frames - start)
        arrays = {
            keys.POS: np.arange(beads)[:, None] * np.array([3.8, 0, 0]) + 0.3 * rng.normal(size=(f, beads, 3)),
            keys.FORCES: rng.normal(size=(f, beads, 3)),
            keys.HESSIAN: np.broadcast_to(hessian, (f, 3 * beads, 3 * beads)),
            keys.FRAME_INDEX: np.arange(start, start + f),
        }
        path = f"sys/shard-{len(shards):05d}.h5"
        shards.append(ShardInfo(path, "sys", f, write_shard(root / path, arrays)))
        start += f
    write_manifest(root, Manifest({"sys": system}, shards))
    return root


def bytes_per_frame(beads: int) -> int:
    return 4 * (3 * beads * 2 + (3 * beads) ** 2) + 8


def loader_throughput(path: Path, window: int | None, epochs: int = 2) -> tuple[float, int]:
    """Frames/s of the training loader alone (workers started afresh each epoch, as in training)."""
    from cglight.data.datamodule import CGDataModule

    dm = CGDataModule(str(path), batch_size=32, **({"window_frames": window} if window else {}))
    dm.setup()
    frames, t = 0, time.perf_counter()
    for epoch in range(epochs):
        dm.set_epoch(epoch)
        for batch in dm.train_dataloader():
            frames += batch[keys.POS].shape[0]
    return frames / (time.perf_counter() - t), dm.num_workers


def consumption(path: Path, repeats: int = 10, warmup: int = 3) -> float:
    """Frames/s one training step of the quickstart model consumes."""
    from step_time import step_times

    from cglight.data import ShardDataset

    batch = ShardDataset(path).__getitems__(list(range(32)))
    losses = {"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 4}}
    return 32 / statistics.median(step_times(losses, batch, repeats, warmup))


def checksum_cost(path: Path, repeats: int = 3) -> None:
    """Print what verifying the checksums costs, against reading the same shard and one epoch of loading."""
    from cglight.data.datamodule import CGDataModule
    from cglight.data.shards import sha256, shard_file

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    def read_all(shard: Path) -> None:
        with shard_file(shard) as f:
            for name in f:
                f[name][...]

    shard = sorted(path.rglob("*.h5"))[0]
    mib = shard.stat().st_size / 2**20
    t_hash, t_read = best(lambda: sha256(shard)), best(lambda: read_all(shard))
    print(f"\nchecksum of one shard ({mib:.1f} MiB, page cache warm): sha256 {t_hash * 1e3:.0f} ms "
          f"({mib / t_hash:.0f} MiB/s), reading every dataset {t_read * 1e3:.0f} ms ({mib / t_read:.0f} MiB/s)")
    setup = {flag: best(lambda flag=flag: CGDataModule(str(path), verify_checksums=flag).setup()) for flag in (True, False)}
    dm = CGDataModule(str(path), batch_size=32)
    dm.setup()
    t = time.perf_counter()
    for _ in dm.train_dataloader():
        pass
    epoch = time.perf_counter() - t
    total = sum(p.stat().st_size for p in path.rglob("*.h5")) / 2**20
    print(f"setup of {total:.0f} MiB: {setup[True]:.2f} s verifying checksums, {setup[False]:.2f} s without; "
          f"one epoch of the training loader {epoch:.2f} s: verifying adds {(setup[True] - setup[False]) / epoch:.0%} "
          "of one epoch's loading, once per fit")


def _epoch_rss(path: str, window: int) -> None:
    """Child process: one epoch of the training loader, then print the peak RSS (MiB) of self and workers."""
    from cglight.data.datamodule import CGDataModule

    dm = CGDataModule(path, batch_size=32, window_frames=window)
    dm.setup()
    frames = sum(b[keys.POS].shape[0] for b in dm.train_dataloader())
    print(json.dumps({"frames": frames, "main": _peak_rss_mib(), "worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def _peak_rss_mib() -> float:
    """This process's peak RSS since it started (``VmHWM``; ``ru_maxrss`` would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000, help="frames of the 5-bead throughput dataset")
    parser.add_argument("--rss-sizes", default="1,4,8", help="35-bead dataset sizes in multiples of the memory bound")
    parser.add_argument("--window", type=int, default=256, help="window_frames of the RSS runs (sets the bound)")
    parser.add_argument("--beads", type=int, default=35)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _epoch_rss(args.child[0], int(args.child[1]))
        return
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        small = write_dataset(Path(tmp) / "small", beads=5, frames=args.frames)
        rate, workers = loader_throughput(small, window=None)
        need = consumption(small)
        print(f"loader (num_workers={workers}, defaults): {rate:9.0f} frames/s")
        print(f"training step (quickstart model, force + hvp_cov 4 probes, batch 32): {need:9.0f} frames/s")
        print(f"loader / consumption: {rate / need:.1f}x")
        checksum_cost(small)

        from cglight.data.datamodule import CGDataModule

        workers = CGDataModule("unused").num_workers
        bound_frames = max(workers, 1) * (2 + 4) * args.window  # num_workers × (prefetch_factor + 4) windows
        bound_mib = bound_frames * bytes_per_frame(args.beads) / 2**20
        print(f"\npeak RSS, {args.beads} beads ({bytes_per_frame(args.beads) / 1e3:.1f} kB/frame), window_frames={args.window}, "
              f"num_workers={workers}: memory bound {bound_frames} frames = {bound_mib:.0f} MiB")
        print(f"{'dataset':>10} {'MiB':>8} {'main peak MiB':>14} {'worker peak MiB':>16}")
        for mult in (float(x) for x in args.rss_sizes.split(",") if x):
            frames = int(mult * bound_frames)
            root = write_dataset(Path(tmp) / f"big{mult}", beads=args.beads, frames=frames)
            env = dict(os.environ, CGLIGHT_NUM_THREADS="1")
            out = subprocess.run([sys.executable, __file__, "--child", str(root), str(args.window)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            size = frames * bytes_per_frame(args.beads) / 2**20
            print(f"{mult:>9.0f}x {size:>8.0f} {r['main']:>14.0f} {r['worker']:>16.0f}")
            for p in root.rglob("*.h5"):
                p.unlink()


if __name__ == "__main__":
    main()
