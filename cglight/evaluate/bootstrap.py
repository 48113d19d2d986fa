"""Confidence intervals by block bootstrap over independent trajectories and time blocks.

MD frames are correlated in time, so frames cannot be resampled one by one. Every trajectory
(replica) is cut into contiguous blocks of ``block`` frames; a bootstrap sample draws, with
replacement, as many blocks as there are, from the reference and the model independently, and
recomputes the statistic.

Histogram divergences are biased upward when samples are few, and resampling with replacement
biases them further in the same direction (the plain percentile interval can then lie entirely
above the estimate). So the value reported is the bootstrap bias-corrected estimate
``θ̃ = 2θ̂ − mean(θ*)`` and the interval the *basic* (reverse-percentile) interval
``[2θ̂ − q_high, 2θ̂ − q_low]``, which is centred on it; the plug-in ``θ̂`` and the estimated bias
``mean(θ*) − θ̂`` are returned too. Either end may reach below zero for a divergence near zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def blocks(trajectories: Sequence[np.ndarray], block: int) -> list[np.ndarray]:
    """Contiguous blocks of ``block`` frames from each trajectory (a short tail is kept as a block)."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    out = []
    for traj in trajectories:
        for start in range(0, len(traj), block):
            out.append(np.asarray(traj[start : start + block]))
    if not out:
        raise ValueError("no frames to bootstrap")
    return out


def block_bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    reference: Sequence[np.ndarray],
    model: Sequence[np.ndarray],
    block: int,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """``{value, low, high, plugin, bias}`` of ``statistic(ref_frames, model_frames)`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rb, mb = blocks(reference, block), blocks(model, block)
    value = statistic(np.concatenate(rb), np.concatenate(mb))
    draws = []
    for _ in range(n_boot):
        r = np.concatenate([rb[i] for i in rng.integers(0, len(rb), len(rb))])
        m = np.concatenate([mb[i] for i in rng.integers(0, len(mb), len(mb))])
        draws.append(statistic(r, m))
    q_low, q_high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    bias = float(np.mean(draws)) - value
    return {"value": value - bias, "low": float(2 * value - q_high), "high": float(2 * value - q_low), "plugin": float(value), "bias": bias}
