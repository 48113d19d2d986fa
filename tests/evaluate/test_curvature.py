"""Curvature by subspace against independent oracles.

The Hessian is that of an energy built from known internal-coordinate stiffnesses,
``U = Σ ½k_b (r − r₀)² + Σ ½k_θ (θ − θ₀)² + ½k_φ (φ − φ₀)²`` at its minimum, taken by float64
autograd of the energy (not from the subspace code). The soft direction's oracle is geometric:
turning the last bead about the central bond by ``t`` changes the dihedral by exactly ``t`` and
no bond or angle, so the soft eigenvalue of this Hessian is ``k_φ / ‖d_⊥‖²`` with ``d`` that
turn's displacement and ``d_⊥`` its part orthogonal to rigid motions, whatever ``k_b`` and ``k_θ``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cglight.energy.geometry import angles, dihedrals, distances
from cglight.evaluate.curvature import block_norms, curvature_report, rigid_motions, split_hessian, subspace_basis

CHAIN = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [2.1, 1.4, 0.0], [3.5, 1.6, 0.9]])  # Å, dihedral ~ 35°
BONDS = [[0, 1], [1, 2], [2, 3]]


def internal_hessian(pos: np.ndarray, k_bond: float, k_angle: float, k_dihedral: float) -> np.ndarray:
    """The float64 autograd Hessian of the harmonic internal-coordinate energy whose minimum is ``pos``."""
    x0 = torch.tensor(pos[None])
    b, a, d = torch.tensor(BONDS), torch.tensor([[0, 1, 2], [1, 2, 3]]), torch.tensor([[0, 1, 2, 3]])

    def energy(flat):
        x = flat.reshape(1, -1, 3)
        return (0.5 * k_bond * ((distances(x, b) - distances(x0, b)) ** 2).sum()
                + 0.5 * k_angle * ((angles(x, a) - angles(x0, a)) ** 2).sum()
                + 0.5 * k_dihedral * ((dihedrals(x, d) - dihedrals(x0, d)) ** 2).sum())

    return torch.autograd.functional.hessian(energy, x0.reshape(-1)).numpy()


def turn_last_bead(pos: np.ndarray) -> np.ndarray:
    """The displacement per radian of turning bead 3 about the axis of bond 1–2 (only the dihedral changes)."""
    axis = (pos[2] - pos[1]) / np.linalg.norm(pos[2] - pos[1])
    d = np.zeros_like(pos)
    d[3] = np.cross(axis, pos[3] - pos[2])
    return d.reshape(-1)


def test_dimensions_of_a_chain():
    basis = subspace_basis(CHAIN, BONDS)
    assert basis.dims == {"rigid": 6, "stiff": 5, "soft": 1}  # 3 bonds + 2 angles; 1 dihedral
    q = np.concatenate([basis.rigid, basis.stiff, basis.soft], 1)
    np.testing.assert_allclose(q.T @ q, np.eye(12), atol=1e-12)
    five = np.array([[0, 0, 0], [1.3, 0.2, 0], [2.0, 1.4, 0.3], [3.4, 1.5, 1.1], [4.0, 2.9, 1.0]], dtype=float)
    assert subspace_basis(five, [[0, 1], [1, 2], [2, 3], [3, 4]]).dims == {"rigid": 6, "stiff": 7, "soft": 2}


def test_the_dihedral_turn_lies_in_the_soft_subspace():
    basis = subspace_basis(CHAIN, BONDS)
    d = turn_last_bead(CHAIN)
    rigid = np.linalg.qr(rigid_motions(CHAIN))[0]
    d_perp = d - rigid @ (rigid.T @ d)
    assert np.linalg.norm(basis.stiff.T @ d) < 1e-10 * np.linalg.norm(d)
    np.testing.assert_allclose(np.linalg.norm(basis.soft.T @ d), np.linalg.norm(d_perp), rtol=1e-10)


@pytest.mark.parametrize("k_bond, k_angle", [(300.0, 60.0), (0.0, 0.0), (3000.0, 1.0)])
def test_soft_eigenvalue_of_a_known_dihedral_stiffness(k_bond, k_angle):
    k_dihedral = 2.5
    h = internal_hessian(CHAIN, k_bond, k_angle, k_dihedral)
    basis = subspace_basis(CHAIN, BONDS)
    rigid = np.linalg.qr(rigid_motions(CHAIN))[0]
    d = turn_last_bead(CHAIN)
    d_perp = d - rigid @ (rigid.T @ d)
    report = curvature_report(h, h, basis)
    np.testing.assert_allclose(report["soft"]["eigenvalues"], [k_dihedral / (d_perp @ d_perp)], rtol=1e-8)
    assert report["rigid"]["norm"] < 1e-9 * np.linalg.norm(h)  # an invariant energy at its minimum
    assert report["rigid"]["error"] is None  # an empty reference block: no relative error
    for b in ("stiff", "soft") + (("coupling",) if k_bond else ()):
        assert report[b]["error"] == pytest.approx(0.0, abs=1e-12)


def test_bond_and_angle_stiffness_stays_in_the_stiff_block():
    h = internal_hessian(CHAIN, 300.0, 60.0, 0.0)
    norms = block_norms(h, subspace_basis(CHAIN, BONDS))
    assert norms["soft"] < 1e-9 * norms["stiff"] and norms["rigid"] < 1e-9 * norms["stiff"]
    assert norms["coupling"] < 1e-9 * norms["stiff"]
    np.testing.assert_allclose(norms["stiff"], np.linalg.norm(h), rtol=1e-12)


def test_block_norms_add_up_to_the_whole():
    h = np.random.default_rng(0).normal(size=(12, 12))
    h = h + h.T
    blocks = split_hessian(h, subspace_basis(CHAIN, BONDS))
    np.testing.assert_allclose(sum(np.linalg.norm(m) ** 2 for m in blocks.values()), np.linalg.norm(h) ** 2, rtol=1e-12)
    n = block_norms(h, subspace_basis(CHAIN, BONDS))
    np.testing.assert_allclose(sum(v**2 for v in n.values()), np.linalg.norm(h) ** 2, rtol=1e-12)


def test_report_does_not_depend_on_orientation():
    h = internal_hessian(CHAIN, 300.0, 60.0, 2.5)
    model = h + 0.3 * np.random.default_rng(1).normal(size=h.shape)
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    big = np.kron(np.eye(4), rotation)
    moved = CHAIN @ rotation.T + np.array([4.0, -2.0, 7.0])
    a = curvature_report(model, h, subspace_basis(CHAIN, BONDS))
    b = curvature_report(big @ model @ big.T, big @ h @ big.T, subspace_basis(moved, BONDS))
    for block in ("rigid", "stiff", "soft", "coupling"):
        assert a[block]["abs_error"] == pytest.approx(b[block]["abs_error"], rel=1e-9)
        assert (a[block]["error"] is None) == (b[block]["error"] is None) == (block == "rigid")
    np.testing.assert_allclose(a["soft"]["eigenvalues"], b["soft"]["eigenvalues"], rtol=1e-9)


def test_a_wrong_soft_block_shows_in_soft_only():
    h = internal_hessian(CHAIN, 300.0, 60.0, 2.5)
    basis = subspace_basis(CHAIN, BONDS)
    s = basis.soft[:, 0]
    soft = s @ h @ s
    report = curvature_report(h + soft * np.outer(s, s), h, basis)  # the dihedral twice as stiff
    assert report["soft"]["error"] == pytest.approx(1.0, rel=1e-9)
    assert report["stiff"]["error"] < 1e-12 and report["coupling"]["error"] < 1e-9
    assert report["whole"]["error"] < 0.01  # what one Frobenius number would have said


def test_reference_stderr_from_samples():
    """Samples of the reference with noise of known size along the soft direction: the soft
    eigenvalue's standard error is that noise over √S."""
    h = internal_hessian(CHAIN, 300.0, 60.0, 2.5)
    basis = subspace_basis(CHAIN, BONDS)
    s, sigma, count = basis.soft[:, 0], 0.4, 400
    noise = np.random.default_rng(3).normal(0.0, sigma, size=count)
    samples = np.stack([h + e * np.outer(s, s) for e in noise])
    report = curvature_report(h, None, basis, reference_samples=samples)
    assert report["soft"]["reference_eigenvalues_stderr"][0] == pytest.approx(sigma / np.sqrt(count), rel=0.15)
    assert report["soft"]["reference_trace_stderr"] == pytest.approx(sigma / np.sqrt(count), rel=0.15)
    assert report["stiff"]["reference_trace_stderr"] < 1e-9
