"""Slow coordinates: pairwise bead distances → TICA (deeptime) fitted on the reference.

The features of a frame are the distances between all bead pairs ``(i, j)`` with ``j ≥ i + 2``
(directly bonded neighbours barely move and only add noise). TICA is fitted on the reference
trajectories alone, each kept whole so that time-lagged pairs never cross from one trajectory
into the next; the model's frames are then projected on the same coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def distance_pairs(n_beads: int, min_separation: int = 2) -> np.ndarray:
    """Pairs ``(i, j)`` with ``j − i ≥ min_separation``, as ``[P, 2]``."""
    i, j = np.triu_indices(n_beads, k=min_separation)
    if len(i) == 0:
        raise ValueError(f"{n_beads} beads have no pair {min_separation} or more apart")
    return np.stack([i, j], 1)


def pair_distances(pos: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``pos [F, n, 3]`` → ``[F, P]`` distances of ``pairs``."""
    pos = np.asarray(pos, dtype=np.float64)
    return np.linalg.norm(pos[:, pairs[:, 0]] - pos[:, pairs[:, 1]], axis=-1)


class SlowCoordinates:
    """TICA on pairwise distances, fitted on reference trajectories.

    Args:
        lag: TICA lag time in frames of the reference.
        dim: number of slow coordinates kept (TIC1, TIC2, ...).
    """

    def __init__(self, lag: int, dim: int = 2) -> None:
        if lag < 1:
            raise ValueError(f"lag must be >= 1 frame, got {lag}")
        self.lag, self.dim = lag, dim
        self.pairs: np.ndarray | None = None
        self.model = None

    def fit(self, trajectories: Sequence[np.ndarray]) -> SlowCoordinates:
        from deeptime.decomposition import TICA

        usable = [t for t in trajectories if len(t) > self.lag]
        if not usable:
            raise ValueError(f"no reference trajectory is longer than the TICA lag ({self.lag} frames)")
        self.pairs = distance_pairs(np.asarray(usable[0]).shape[1])
        feats = [pair_distances(t, self.pairs) for t in usable]
        self.model = TICA(lagtime=self.lag, dim=min(self.dim, feats[0].shape[1])).fit(feats).fetch_model()
        return self

    def transform(self, pos: np.ndarray) -> np.ndarray:
        """``pos [F, n, 3]`` → ``[F, dim]`` slow coordinates (TIC1 first)."""
        if self.model is None:
            raise RuntimeError("fit the slow coordinates on the reference first")
        return self.model.transform(pair_distances(pos, self.pairs))

    def timescales(self) -> np.ndarray:
        """Implied timescales of the kept coordinates, in frames."""
        return np.asarray(self.model.timescales(lagtime=self.lag))[: self.dim]
