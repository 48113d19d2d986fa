"""Confidence intervals by block bootstrap over independent trajectories and time blocks.

MD frames are correlated in time, so frames cannot be resampled one by one. Every trajectory
(replica) is cut into contiguous blocks of ``block`` frames (each ensemble its own length); a
bootstrap sample draws, with replacement, as many blocks as there are, from the reference and the
model independently, and recomputes the statistic. Blocks must be long against the correlation
of the slow coordinate, or the interval comes out too narrow: :func:`block_length` takes
``BLOCK_TAUS`` integrated autocorrelation times of it. For an AR(1) series the block bootstrap's
standard error of the mean is ``sqrt(1 − (1 − e^{−2m}) / (2m))`` of the true one with blocks of
``m τ`` (long τ): 9 % too small at 3 τ, 25 % at τ; measured (8 × 4000 frames, τ = 39, 150
repetitions) 95 % intervals covered the mean 89 % of the time at 3 τ, 86 % at τ. A block longer
than a trajectory is the whole trajectory, so short runs are resampled replica by replica.

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

BLOCK_TAUS = 3.0
"""Block length in integrated autocorrelation times of the slow coordinate."""


def integrated_time(trajectories: Sequence[np.ndarray], c: float = 5.0) -> tuple[float, bool]:
    """``(τ, window_reached)``: the integrated autocorrelation time ``τ = 1 + 2 Σ_{t=1}^{W} ρ(t)``
    (frames) of the 1-D series ``trajectories`` taken together: one mean over all frames, the
    autocovariance at every lag summed over the trajectories and divided by the number of pairs at
    that lag, Sokal's window (the smallest ``W ≥ c τ(W)``). Subtracting each short trajectory's own
    mean instead would remove the slow part of the signal and make ``τ`` far too small (16 replicas
    of 152 frames: 5.6 frames against 14.5 pooled); differences between the trajectories' means count
    as correlation (conservative). ``window_reached`` is False when the trajectories end before the
    window does: ``τ`` is then the sum up to the longest lag, an underestimate. 1 for white noise
    and for a constant series."""
    trajs = [np.asarray(t, dtype=np.float64) for t in trajectories if len(t)]
    if not trajs:
        raise ValueError("no frames to measure a correlation time on")
    frames = np.concatenate(trajs)
    if not np.isfinite(frames).all():
        raise ValueError(f"{int((~np.isfinite(frames)).sum())} value(s) are not finite")
    if np.ptp(frames) <= 1e-12 * max(1.0, float(np.abs(frames).max())):  # constant (to rounding)
        return 1.0, True
    mean = frames.mean()
    longest = max(len(t) for t in trajs)
    cov, pairs = np.zeros(longest), np.zeros(longest)
    for t in trajs:
        y, n = t - mean, len(t)
        f = np.fft.rfft(y, 2 * n)
        cov[:n] += np.fft.irfft(f * np.conj(f))[:n]
        pairs[:n] += np.arange(n, 0, -1)
    rho = (cov / pairs) / (cov[0] / pairs[0])
    tau, reached = 1.0, longest == 1
    for w in range(1, longest):
        tau = 1.0 + 2.0 * rho[1 : w + 1].sum()
        if w >= c * tau:
            reached = True
            break
    return min(max(float(tau), 1.0), float(longest)), reached


def block_length(trajectories: Sequence[np.ndarray], taus: float = BLOCK_TAUS) -> tuple[int, float, bool]:
    """``(block, τ, window_reached)``: ``block = ⌈taus · τ⌉`` frames, ``τ`` from :func:`integrated_time`."""
    tau, reached = integrated_time(trajectories)
    return max(1, int(np.ceil(taus * tau))), tau, reached


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
    model_block: int | None = None,
) -> dict[str, float]:
    """``{value, low, high, plugin, bias}`` of ``statistic(ref_frames, model_frames)`` (see the module
    docstring); ``block`` frames per reference block, ``model_block`` (default: the same) per model block."""
    rng = np.random.default_rng(seed)
    rb, mb = blocks(reference, block), blocks(model, block if model_block is None else model_block)
    value = statistic(np.concatenate(rb), np.concatenate(mb))
    draws = []
    for _ in range(n_boot):
        r = np.concatenate([rb[i] for i in rng.integers(0, len(rb), len(rb))])
        m = np.concatenate([mb[i] for i in rng.integers(0, len(mb), len(mb))])
        draws.append(statistic(r, m))
    q_low, q_high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    bias = float(np.mean(draws)) - value
    return {"value": value - bias, "low": float(2 * value - q_high), "high": float(2 * value - q_low), "plugin": float(value), "bias": bias}
