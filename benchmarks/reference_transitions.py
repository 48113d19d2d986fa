"""How often a reference dataset crosses its slow modes: count before trusting it as a reference.

    python benchmarks/reference_transitions.py DATASET [--lag 40] [--q 0.2]

For every system of the dataset (a ``cglight prepare`` output; ``hessian: none`` is enough):
TICA on pairwise bead distances fitted on all replicas (``cglight evaluate``'s slow coordinates),
its two slowest implied timescales, and the core-to-core transitions along TIC1 and TIC2 (cores:
below the ``q``- and above the ``1 − q``-quantile), per replica and in all. Then, for every dihedral
of four consecutive beads, the fraction of frames between 0° and 120° and how many separate
visits there (entries lasting two frames or more). With a backbone map (N CA C of every residue)
the dihedrals alternate ψ, ω, φ; φ in that range is the rare left-handed region (αL, C7ax) whose
sampling decides whether a reference has seen alanine's slowest process (ω stays near 180°).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cglight.data.manifest import read_manifest
from cglight.data.reader import reference_trajectories
from cglight.energy.geometry import dihedrals
from cglight.evaluate.tica import SlowCoordinates
from cglight.evaluate.transitions import core_bounds, count_transitions


def visits(mask: np.ndarray, min_frames: int = 2) -> int:
    """Runs of ``True`` at least ``min_frames`` long."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return int(((stops - starts) >= min_frames).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--lag", type=int, default=40, help="TICA lag in frames")
    parser.add_argument("--q", type=float, default=0.2, help="core quantile")
    args = parser.parse_args()
    root = Path(args.dataset)
    manifest = read_manifest(root)
    for name, info in manifest.systems.items():
        trajs = reference_trajectories(root, manifest, name)
        frames = sum(len(t) for t in trajs)
        dt = (info.reference or {}).get("frame_interval_ps")
        unit = f"{float(dt):g} ps" if dt else "frame"
        print(f"system {name}: {info.n_beads} beads, {len(trajs)} trajectories, {frames} frames, one per {unit}")
        coords = SlowCoordinates(args.lag).fit(trajs)
        ts = coords.timescales()
        scale = float(dt) if dt else 1.0
        print("  TICA lag %d frames; implied timescales: %s" % (args.lag, ", ".join(f"{t * scale:.1f}" for t in ts[:2])) + (" ps" if dt else " frames"))
        tics = [coords.transform(t) for t in trajs]
        for k in range(min(2, tics[0].shape[1])):
            bounds = core_bounds(np.concatenate([t[:, k] for t in tics]), args.q)
            per = [count_transitions([t[:, k]], bounds) for t in tics]
            print(f"  TIC{k + 1} core-to-core transitions: {sum(per)} in all; per trajectory {per}")
        n = info.n_beads
        if n >= 4:
            quads = torch.tensor([[i, i + 1, i + 2, i + 3] for i in range(n - 3)])
            angle = np.concatenate([dihedrals(torch.from_numpy(t), quads).numpy() for t in trajs])
            split = np.cumsum([len(t) for t in trajs])[:-1]
            for d in range(len(quads)):
                names = "-".join(info.bead_names[i] for i in quads[d].tolist())
                inside = (angle[:, d] > 0) & (angle[:, d] < 2 * np.pi / 3)
                entries = sum(visits(m) for m in np.split(inside, split))
                print(f"  dihedral {d} ({names}): in (0°, 120°) in {inside.mean():.4f} of frames, {entries} visits")


if __name__ == "__main__":
    main()
