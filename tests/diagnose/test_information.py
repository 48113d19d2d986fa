"""The information diagnostic on a Gaussian all-atom system, where every answer is known.

``u(x) = ½ (x − x₀)ᵀ K (x − x₀)``, sampled exactly, mapped by a slice onto a 4-bead chain: the PMF
Hessian is ``P = (M K⁻¹ Mᵀ)⁻¹`` everywhere. A quadratic model with Hessian ``A`` has forces
``−A (R − R₀)``. With ``A = P`` no block of the covariance-corrected target differs from the model;
with ``A`` wrong by ``c`` along the chain's soft (dihedral) direction only, the soft block and no
other does (the target's centred mean is then ``P − c² (sᵀP⁻¹s) s sᵀ``, the model's ``P + c s sᵀ``).
"""

from __future__ import annotations

import numpy as np
import pytest

from cglight.diagnose.information import information, verdict
from cglight.evaluate.curvature import subspace_basis

CHAIN = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [2.1, 1.4, 0.0], [3.5, 1.6, 0.9]])
BONDS = [[0, 1], [1, 2], [2, 3]]
BETA = 1.0 / (0.0019872041 * 300.0)


def gaussian_frames(frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x0 = np.concatenate([CHAIN, CHAIN[:, ::-1] + 0.8]).reshape(-1)  # 4 beads, then 4 atoms integrated out
    g = rng.normal(size=(24, 24))
    k = 120.0 * g @ g.T / 24 + 60.0 * np.eye(24)  # kcal/mol/Å²
    m = np.zeros((12, 24))
    m[:, :12] = np.eye(12)  # slice map; B = Mᵀ
    pmf = np.linalg.inv(m @ np.linalg.inv(k) @ m.T)
    x = rng.multivariate_normal(x0, np.linalg.inv(k) / BETA, size=frames)
    forces = -(x - x0) @ k.T @ m.T  # f = Bᵀ F
    pos = (x @ m.T).reshape(frames, 4, 3)
    bare = np.broadcast_to(m @ k @ m.T, (frames, 12, 12))
    return pos, forces, bare, pmf


def quadratic_model(pos, hessian):
    frames = len(pos)
    return -(pos.reshape(frames, -1) - CHAIN.reshape(-1)) @ hessian.T, np.broadcast_to(hessian, (frames, 12, 12))


def test_no_information_when_the_model_has_the_pmf_curvature():
    pos, forces, bare, pmf = gaussian_frames(2000)
    readings = information(pos, forces, bare, *quadratic_model(pos, pmf), BONDS, BETA)
    for block, r in readings["hvp_cov/centered"].items():
        assert not r.informative, (block, r)
        assert abs(r.z) < 3
    for block, r in readings["hvp_cov/uncentered"].items():
        assert not r.informative, (block, r)
    # the naive target's mean is the bare BᵀKB, not the PMF's curvature: it "teaches" the wrong thing
    assert readings["hvp"]["stiff"].informative
    assert "nothing to teach" in verdict({"c": readings["hvp_cov/centered"]})[0]


@pytest.mark.parametrize("wrong_by", [40.0, -40.0])
def test_information_exactly_in_the_soft_block_when_the_model_is_wrong_there(wrong_by):
    pos, forces, bare, pmf = gaussian_frames(2000)
    s = subspace_basis(CHAIN, BONDS).soft[:, 0]
    model = pmf + wrong_by * np.outer(s, s)
    readings = information(pos, forces, bare, *quadratic_model(pos, model), BONDS, BETA)
    centered = readings["hvp_cov/centered"]
    assert centered["soft"].informative and not centered["stiff"].informative and not centered["rigid"].informative
    expected_gap = -wrong_by - wrong_by**2 * (s @ np.linalg.inv(pmf) @ s)  # target − model along s
    assert centered["soft"].target - centered["soft"].model == pytest.approx(expected_gap, abs=4 * centered["soft"].stderr)
    assert "soft" in verdict({"hvp_cov/centered": centered})[0] and "stiff" not in verdict({"hvp_cov/centered": centered})[0]


def test_the_standard_error_is_honest_for_correlated_frames():
    """Each frame repeated 5 times in a row (correlated data): the standard error must not shrink by √5."""
    pos, forces, bare, pmf = gaussian_frames(400)
    once = information(pos, forces, bare, *quadratic_model(pos, pmf), BONDS, BETA)["hvp_cov/centered"]["soft"]
    rep = [np.repeat(a, 5, axis=0) for a in (pos, forces, bare)]
    five = information(*rep, *quadratic_model(rep[0], pmf), BONDS, BETA)["hvp_cov/centered"]["soft"]
    assert five.stderr == pytest.approx(once.stderr, rel=0.25)
    assert five.tau == pytest.approx(5 * once.tau, rel=0.3)
