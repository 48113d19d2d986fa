"""The finite-sample floor of a divergence: what a perfect model sampled as much as this one would score.

A histogram divergence of a finite, correlated sample from the reference is positive even when
the model is exact: a perfect model run as 16 replicas of 60 frames scores well above zero
because 960 correlated frames cannot fill the reference's histogram. So a model's value means
something only next to that floor. The floor is measured on the reference itself: draw, many
times, a subsample shaped like the model's ensemble — as many trajectories, each a contiguous
window of the same number of frames from a random reference trajectory, so the time correlation
inside each one is kept — and compute the same divergence between the whole reference and that
subsample, on the same bins. The spread of those draws is the range a perfect model would land in.

Caveats, stated where the numbers are shown: the windows come from the reference, so they share
``overlap`` of its frames (the floor is a little low when that fraction is large); and the
windows move at the reference's speed along the slow coordinate, so a model that moves faster
(more independent frames per window) has a lower floor than this one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def reference_windows(reference: Sequence[np.ndarray], lengths: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """One window per entry of ``lengths``: contiguous frames of a random reference trajectory at a
    random start; a window longer than every reference trajectory is filled by several whole ones."""
    refs = [np.asarray(r) for r in reference if len(r)]
    if not refs:
        raise ValueError("the reference has no frames")
    longest = max(len(r) for r in refs)
    out = []
    for length in lengths:
        if length <= longest:
            fits = [r for r in refs if len(r) >= length]
            r = fits[rng.integers(len(fits))]
            start = rng.integers(0, len(r) - length + 1)
            out.append(r[start : start + length])
        else:
            parts, need = [], length
            while need > 0:
                r = refs[rng.integers(len(refs))]
                parts.append(r[:need])
                need -= len(parts[-1])
            out.append(np.concatenate(parts))
    return out


def finite_sample_floor(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    reference: Sequence[np.ndarray],
    model_lengths: Sequence[int],
    draws: int = 100,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """``statistic(reference frames, subsample frames)`` over ``draws`` subsamples shaped like a model
    of ``model_lengths`` frames per trajectory: ``{mean, median, low, high, draws, frames,
    trajectories, overlap}`` (``low``/``high``: the central ``level`` range of the draws; ``overlap``:
    the subsample's frames as a fraction of the reference's)."""
    lengths = [int(n) for n in model_lengths if n > 0]
    if not lengths:
        raise ValueError("the model has no frames")
    if draws < 2:
        raise ValueError(f"draws must be >= 2, got {draws}")
    rng = np.random.default_rng(seed)
    whole = np.concatenate([np.asarray(r) for r in reference])
    values = np.array([statistic(whole, np.concatenate(reference_windows(reference, lengths, rng))) for _ in range(draws)])
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": float(values.mean()), "median": float(np.median(values)), "low": float(low), "high": float(high),
            "draws": draws, "frames": int(sum(lengths)), "trajectories": len(lengths), "overlap": float(sum(lengths) / len(whole))}
