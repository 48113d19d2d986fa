"""Divergences, bootstrap, TICA and transition counts against closed forms and known processes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from cglight.evaluate.bootstrap import block_bootstrap, block_length
from cglight.evaluate.divergence import js, js_samples, kl, kl_samples
from cglight.evaluate.tica import SlowCoordinates
from cglight.evaluate.transitions import core_bounds, count_transitions


def _kl_gauss(m1, s1, m2, s2):
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def test_kl_of_two_gaussians_matches_closed_form_and_direction():
    rng = np.random.default_rng(0)
    ref, mod = rng.normal(0.0, 1.0, 400_000), rng.normal(0.5, 1.5, 400_000)
    assert kl_samples(ref, mod, bins=80) == pytest.approx(_kl_gauss(0, 1, 0.5, 1.5), abs=0.01)
    # the estimator is KL(reference ‖ model): swapping the arguments gives the other direction
    # (0.34 in closed form; the histogram estimate is biased upward by the wide sample's tails)
    assert kl_samples(mod, ref, bins=80) > _kl_gauss(0, 1, 0.5, 1.5) + 0.1


def test_a_stray_model_frame_cannot_stretch_the_bins():
    """Bins span the reference; model frames beyond it fall in an overflow bin. One model frame
    far away (1 in 200 001) must leave KL and JS where they were (bins over the pooled range made KL drop from
    1.15 to 0.61 here: a model that wanders off looked better), and a model that
    lives entirely outside the reference gets a huge KL and JS = ln 2."""
    rng = np.random.default_rng(7)
    ref, mod = rng.normal(0.0, 1.0, 200_000), rng.normal(1.5, 1.0, 200_000)
    stray = np.append(mod, 200.0)
    base = kl_samples(ref, mod)
    assert base == pytest.approx(_kl_gauss(0, 1, 1.5, 1), abs=0.05)
    assert kl_samples(ref, stray) == pytest.approx(base, abs=0.01)
    assert js_samples(ref, stray) == pytest.approx(js_samples(ref, mod), abs=0.005)
    assert kl_samples(ref, ref + 100.0) > 10 and js_samples(ref, ref + 100.0) == pytest.approx(math.log(2), abs=1e-3)


def test_non_finite_samples_are_refused_not_dropped():
    """Fixed bins (the (φ, ψ) surface) once let numpy drop NaN rows silently."""
    from cglight.evaluate.bootstrap import integrated_time

    x = np.random.default_rng(0).normal(size=(100, 2))
    x[3, 1] = np.nan
    edges = [np.linspace(-np.pi, np.pi, 31)] * 2
    with pytest.raises(ValueError, match="1 histogram sample"):
        kl_samples(np.zeros((10, 2)), x, edges=edges)
    with pytest.raises(ValueError, match="not finite"):
        integrated_time([x[:, 1]])


def test_js_of_two_gaussians_matches_quadrature():
    rng = np.random.default_rng(1)
    p, q = stats.norm(0.0, 1.0), stats.norm(1.0, 0.8)

    def integrand(x):
        a, b = p.pdf(x), q.pdf(x)
        m = 0.5 * (a + b)
        return 0.5 * a * math.log(a / m) + 0.5 * b * math.log(b / m)

    exact = integrate.quad(integrand, -12, 12, limit=200)[0]
    assert js_samples(p.rvs(400_000, random_state=rng), q.rvs(400_000, random_state=rng), bins=80) == pytest.approx(exact, abs=0.005)


def test_two_dimensional_kl_matches_closed_form():
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, (400_000, 2))
    mod = rng.normal(0, 1, (400_000, 2)) * [1.0, 1.3] + [0.4, 0.0]
    exact = _kl_gauss(0, 1, 0.4, 1.0) + _kl_gauss(0, 1, 0, 1.3)  # independent dimensions add
    assert kl_samples(ref, mod, bins=40) == pytest.approx(exact, abs=0.02)


def test_an_ensemble_against_itself_is_near_zero_and_js_is_bounded():
    rng = np.random.default_rng(3)
    x = rng.normal(size=200_000)
    assert kl_samples(x[:100_000], x[100_000:]) < 0.005
    disjoint = js_samples(rng.normal(0, 0.1, 10_000), rng.normal(10, 0.1, 10_000))
    assert disjoint == pytest.approx(math.log(2), abs=1e-3)
    p = np.array([0.2, 0.8])
    assert kl(p, p) == 0.0 and js(p, p) == 0.0


def test_block_bootstrap_interval_covers_the_truth_for_correlated_data():
    """AR(1) series with correlation time ~20 frames: a block interval covers the true KL."""
    rng = np.random.default_rng(4)

    def ar1(n, mean, phi=0.95):
        x = np.empty(n)
        x[0] = rng.normal()
        for t in range(1, n):
            x[t] = phi * x[t - 1] + math.sqrt(1 - phi**2) * rng.normal()
        return x + mean

    ref = [ar1(4000, 0.0) for _ in range(8)]
    mod = [ar1(4000, 0.6) for _ in range(8)]
    r = block_bootstrap(lambda a, b: kl_samples(a, b, bins=30), ref, mod, block=200, n_boot=100)
    value, low, high = r["value"], r["low"], r["high"]
    truth = _kl_gauss(0, 1, 0.6, 1)
    assert low <= truth <= high and low < value < high
    assert r["value"] == pytest.approx(r["plugin"] - r["bias"])
    assert high - low > 0.02  # correlated data: the interval is not absurdly narrow


def _ar1_series(rng, count, n, phi, mean=0.0):
    """``count`` stationary AR(1) series of unit variance; integrated correlation time (1 + φ)/(1 − φ)."""
    from scipy.signal import lfilter

    noise = rng.normal(size=(count, n)) * math.sqrt(1 - phi**2)
    noise[:, 0] = rng.normal(size=count)  # start in the stationary distribution
    return [mean + lfilter([1.0], [1.0, -phi], e) for e in noise]


def test_block_length_is_three_correlation_times_of_an_ar1_series():
    rng = np.random.default_rng(8)
    for phi in (0.5, 0.9):
        block, tau, reached = block_length(_ar1_series(rng, 16, 8000, phi))
        assert tau == pytest.approx((1 + phi) / (1 - phi), rel=0.2) and reached
        assert block == math.ceil(3 * tau)
    assert block_length([rng.normal(size=5000)])[1] == pytest.approx(1.0, abs=0.3)  # white noise
    assert block_length([np.full(500, 1 / 3)])[1:] == (1.0, True)  # constant (rounding must not make it 999)
    # many trajectories shorter than a few τ (as short CG runs are): pooled over them, τ still holds
    # (Sokal's window, 5 τ, is longer than the pieces, which is flagged; the sum to lag 99 is 38.8)
    _, tau, reached = block_length(_ar1_series(rng, 200, 100, 0.95))
    assert tau == pytest.approx(39.0, rel=0.25) and not reached
    # shorter than the window (40 frames < 5 τ): flagged; the sum up to lag 39 is 33.9 in closed
    # form, which dividing each lag by its number of pairs recovers (by all frames instead: ~22)
    _, tau, reached = block_length(_ar1_series(rng, 400, 40, 0.95))
    truncated = 1 + 2 * sum(0.95**k for k in range(1, 40))
    assert tau == pytest.approx(truncated, rel=0.12) and not reached


def test_each_ensemble_is_resampled_in_its_own_blocks():
    """Reference in blocks of 1 frame, model in whole trajectories of 10: every bootstrap model
    sample holds each trajectory's frames all together (each value a multiple of 10 times), while
    the reference's frames are drawn one by one."""
    ref = [np.arange(10.0) + 100 * k for k in range(5)]
    mod = [np.full(10, float(k)) for k in range(5)]
    whole = lambda b: float(all(n % 10 == 0 for n in np.unique(b, return_counts=True)[1]))  # noqa: E731
    r = block_bootstrap(lambda a, b: whole(b) + (len(np.unique(a)) < len(a)), ref, mod, 1, n_boot=50, model_block=10)
    assert r["plugin"] == 1.0  # the full samples: whole trajectories, no repeated reference frame
    assert r["bias"] == pytest.approx(1.0)  # every draw: 2 (model whole, and some reference frame drawn twice)


def test_automatic_blocks_give_intervals_that_cover_and_frames_do_not():
    """KL of two correlated (AR(1), τ = 39 frames) Gaussian ensembles, 20 repetitions: intervals
    from blocks of 3 τ (each ensemble measured on its own) cover the true KL in most repetitions,
    while resampling single frames gives intervals about sqrt(τ) times too narrow that rarely do."""
    rng = np.random.default_rng(9)
    truth, covered, frames_covered, ratios = _kl_gauss(0, 1, 0.6, 1), 0, 0, []
    stat = lambda a, b: kl_samples(a, b, bins=20)  # noqa: E731
    for rep in range(20):
        ref, mod = _ar1_series(rng, 8, 1000, 0.95), _ar1_series(rng, 8, 1000, 0.95, mean=0.6)
        rb, mb = block_length(ref)[0], block_length(mod)[0]
        auto = block_bootstrap(stat, ref, mod, rb, n_boot=60, seed=rep, model_block=mb)
        single = block_bootstrap(stat, ref, mod, 1, n_boot=60, seed=rep)
        covered += auto["low"] <= truth <= auto["high"]
        frames_covered += single["low"] <= truth <= single["high"]
        ratios.append((auto["high"] - auto["low"]) / (single["high"] - single["low"]))
    assert covered >= 16, covered  # nominal 95 %: 19 of 20 (measured 20)
    assert frames_covered <= 12, frames_covered  # measured 9
    assert np.median(ratios) > 3


def test_bias_correction_pulls_a_sparse_histogram_kl_towards_the_truth():
    """Few samples in many bins: the plug-in KL of two identical distributions is far above 0; the
    bootstrap bias correction removes most of that, and the basic interval covers 0."""
    rng = np.random.default_rng(6)
    ref = [rng.normal(size=(100, 2)) for _ in range(10)]
    mod = [rng.normal(size=(100, 2)) for _ in range(10)]
    r = block_bootstrap(lambda a, b: kl_samples(a, b, bins=30), ref, mod, block=20, n_boot=100)
    assert r["plugin"] > 1.0 and r["bias"] > 0.5  # the sparse estimate is strongly biased
    assert abs(r["value"]) < 0.5 * r["plugin"] and r["low"] <= 0.0


def test_tica_finds_the_slow_coordinate_of_a_toy_process():
    """x hops rarely between two wells (slow); y and z are fast noise of larger variance."""
    rng = np.random.default_rng(5)
    trajs, slow = [], []
    for _ in range(4):
        n = 5000
        state = np.cumsum(rng.random(n) < 0.004) % 2  # switches every ~250 frames
        x = np.where(state, 1.0, -1.0) + 0.3 * rng.normal(size=n)
        y, z = 2.0 * rng.normal(size=n), 2.0 * rng.normal(size=n)
        # five beads: bead 0 at the origin, beads 2, 3, 4 far out along x, y, z, so the
        # distances from bead 0 carry x, y and z (the other pairs carry mixtures)
        pos = np.zeros((n, 5, 3))
        pos[:, 1] = [-30.0, -30.0, -30.0]
        pos[:, 2, 0], pos[:, 3, 1], pos[:, 4, 2] = 100 + x, 100 + y, 100 + z
        trajs.append(pos)
        slow.append(x)
    tica = SlowCoordinates(lag=10, dim=1).fit(trajs)
    tic1 = np.concatenate([tica.transform(t)[:, 0] for t in trajs])
    assert abs(np.corrcoef(tic1, np.concatenate(slow))[0, 1]) > 0.9
    assert tica.timescales()[0] > 50  # ~125 frames: the hopping time, not the noise


def test_transition_counting_uses_cores_with_hysteresis():
    ref = np.linspace(-1, 1, 101)
    bounds = core_bounds(ref, q=0.2)  # (-0.6, 0.6)
    jittery = np.array([-0.9, -0.5, 0.0, 0.5, -0.5, 0.7, 0.65, 0.1, -0.65, -0.9, 0.9])
    assert count_transitions([jittery], bounds) == 3  # -→+, +→-, -→+; boundary noise ignored
    assert count_transitions([np.zeros(10)], bounds) == 0
