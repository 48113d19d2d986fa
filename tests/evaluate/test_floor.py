"""The KL floor against a direct Monte Carlo of perfect models.

The reference and every "perfect model" are independent runs of the same two-state process (a
state ±2 that flips with probability 0.004 per frame, plus AR(1) noise), so the distribution of
KL(reference ‖ perfect model) is known by simulation. The floor, drawn from windows of the
reference only, must reproduce it; a model missing a state must score far above it.
"""

from __future__ import annotations

import numpy as np
import pytest

from cglight.evaluate.divergence import kl_samples, shared_edges
from cglight.evaluate.floor import finite_sample_floor, reference_windows


def two_state(rng: np.random.Generator, frames: int, flip: float = 0.004, stuck: bool = False) -> np.ndarray:
    s = np.empty(frames)
    s[0] = rng.choice([-1.0, 1.0]) if not stuck else 1.0
    flips = rng.random(frames) < flip
    for t in range(1, frames):
        s[t] = -s[t - 1] if flips[t] and not stuck else s[t - 1]
    noise = np.empty(frames)
    noise[0] = rng.normal(0, 0.5)
    for t in range(1, frames):
        noise[t] = 0.9 * noise[t - 1] + rng.normal(0, 0.5 * np.sqrt(1 - 0.81))
    return 2.0 * s + noise


REPLICAS, FRAMES = 16, 250


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    return [two_state(rng, 25000) for _ in range(4)]


def _kl(reference):
    edges = shared_edges(np.concatenate(reference), np.concatenate(reference))
    return lambda ref, mod: kl_samples(ref, mod, edges=edges)


def test_floor_matches_a_direct_monte_carlo_of_perfect_models(reference):
    statistic = _kl(reference)
    whole = np.concatenate(reference)
    rng = np.random.default_rng(1)
    direct = [statistic(whole, np.concatenate([two_state(rng, FRAMES) for _ in range(REPLICAS)])) for _ in range(60)]
    floor = finite_sample_floor(statistic, reference, [FRAMES] * REPLICAS, draws=150, seed=2)
    assert floor["mean"] == pytest.approx(np.mean(direct), rel=0.2)
    assert floor["high"] == pytest.approx(np.quantile(direct, 0.975), rel=0.35)
    assert floor["frames"] == REPLICAS * FRAMES and floor["trajectories"] == REPLICAS
    assert floor["overlap"] == pytest.approx(REPLICAS * FRAMES / 100000)


def test_a_model_missing_a_state_scores_above_its_floor_a_perfect_one_inside(reference):
    statistic = _kl(reference)
    whole = np.concatenate(reference)
    floor = finite_sample_floor(statistic, reference, [FRAMES] * REPLICAS, draws=150, seed=3)
    rng = np.random.default_rng(4)
    perfect = statistic(whole, np.concatenate([two_state(rng, FRAMES) for _ in range(REPLICAS)]))
    missing = statistic(whole, np.concatenate([two_state(rng, FRAMES, stuck=True) for _ in range(REPLICAS)]))
    assert floor["low"] <= perfect <= floor["high"]
    assert missing > 3 * floor["high"]


def test_windows_are_contiguous_and_shaped_like_the_model():
    reference = [np.arange(100.0), np.arange(1000.0, 1030.0)]
    rng = np.random.default_rng(0)
    windows = reference_windows(reference, [50, 10, 150], rng)
    assert [len(w) for w in windows] == [50, 10, 150]
    for w in windows[:2]:
        assert np.all(np.diff(w) == 1.0)  # consecutive frames of one trajectory
