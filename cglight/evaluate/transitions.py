"""Counting slow-mode transitions, so that an unconverged ensemble is visible.

Two core states along a coordinate: below its ``q``-quantile and above its ``1 − q``-quantile
(quantiles of the reference). A transition is counted each time a trajectory reaches one core
after last having been in the other (frames between cores do not count): core-to-core counting
with hysteresis, so that noise at a boundary adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def core_bounds(reference: np.ndarray, q: float = 0.2) -> tuple[float, float]:
    if not 0 < q < 0.5:
        raise ValueError(f"q must be in (0, 0.5), got {q}")
    low, high = np.quantile(np.asarray(reference, dtype=np.float64), [q, 1 - q])
    return float(low), float(high)


def count_transitions(trajectories: Sequence[np.ndarray], bounds: tuple[float, float]) -> int:
    """Core-to-core transitions summed over ``trajectories`` (each a 1-D series)."""
    low, high = bounds
    total = 0
    for x in trajectories:
        state = 0
        for v in np.asarray(x, dtype=np.float64):
            now = -1 if v <= low else (1 if v >= high else 0)
            if now and state and now != state:
                total += 1
            if now:
                state = now
    return total
