"""Priors: topology, geometry, and Boltzmann-inversion fits that recover known parameters from
exact samples of a known prior (drawn with the Jacobian of each coordinate)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cglight.energy import BackboneConfig, CGEnergy, Topology
from cglight.energy import geometry
from cglight.errors import ConfigError
from cglight.units import KB_KCAL_PER_MOL_K

T = 300.0
KT = KB_KCAL_PER_MOL_K * T
BOND = {(0, 1): (300.0, 1.5), (1, 2): (150.0, 2.0), (2, 3): (400.0, 1.3)}  # k (kcal/mol/Å²), r0 (Å)
ANGLE = {(0, 1, 2): (40.0, 1.9), (1, 2, 3): (80.0, 2.3)}  # k (kcal/mol/rad²), θ0
DIHEDRAL = [0.8, -0.5, 0.3, 0.4]  # a1, a2, b1, b2 (kcal/mol): U = Σ a_n cos nφ + b_n sin nφ
SMALL = BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=4, max_z=8)
SYSTEM = SimpleNamespace(temperature=T, bead_types=[0, 1, 2, 3], bonds=[[0, 1], [1, 2], [2, 3]])


def _harmonic(rng, n, k, x0, jacobian, upper, j_max):
    """Exact samples of p(x) ∝ J(x) exp(−k(x − x0)²/2kT) on (0, upper) by rejection (J ≤ j_max there)."""
    sigma = math.sqrt(KT / k)
    out = []
    while sum(map(len, out)) < n:
        x = rng.normal(x0, sigma, size=4 * n)
        x = x[(x > 0) & (x < upper)]
        out.append(x[rng.random(len(x)) < jacobian(x) / j_max])
    return np.concatenate(out)[:n]


def _dihedral_energy(phi):
    a1, a2, b1, b2 = DIHEDRAL
    return a1 * np.cos(phi) + a2 * np.cos(2 * phi) + b1 * np.sin(phi) + b2 * np.sin(2 * phi)


def _dihedrals(rng, n):
    grid = np.linspace(-np.pi, np.pi, 10001)
    u_min = _dihedral_energy(grid).min()
    out = []
    while sum(map(len, out)) < n:
        phi = rng.uniform(-np.pi, np.pi, size=4 * n)
        out.append(phi[rng.random(len(phi)) < np.exp(-(_dihedral_energy(phi) - u_min) / KT)])
    return np.concatenate(out)[:n]


def _place(a, b, c, r, theta, phi):
    """Bead d with |cd| = r, angle bcd = θ, dihedral abcd = φ (natural extension of reference frame)."""
    bc = (c - b) / np.linalg.norm(c - b, axis=-1, keepdims=True)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    m = np.cross(n, bc)
    d2 = np.stack([-r * np.cos(theta), r * np.sin(theta) * np.cos(phi), r * np.sin(theta) * np.sin(phi)], -1)
    return c + d2[:, :1] * bc + d2[:, 1:2] * m + d2[:, 2:] * n


def _chain(n, seed=0):
    """``n`` frames of a 4-bead chain (types 0 1 2 3) sampled exactly from the known priors."""
    rng = np.random.default_rng(seed)
    r = [_harmonic(rng, n, *BOND[key], lambda x: x**2, 3.0, 9.0) for key in BOND]
    theta = [_harmonic(rng, n, *ANGLE[key], np.sin, np.pi, 1.0) for key in ANGLE]
    phi = _dihedrals(rng, n)
    p0 = np.zeros((n, 3))
    p1 = np.stack([r[0], np.zeros(n), np.zeros(n)], -1)
    p2 = p1 + r[1][:, None] * np.stack([-np.cos(theta[0]), np.sin(theta[0]), np.zeros(n)], -1)
    p3 = _place(p0, p1, p2, r[2], theta[1], phi)
    return torch.from_numpy(np.stack([p0, p1, p2, p3], 1)), (r, theta, phi)


def test_topology_derives_angles_dihedrals_and_pairs():
    # a branched molecule: 0-1-2-3-4 with a side bead 5 on 2
    top = Topology.from_bonds(6, [[1, 0], [1, 2], [2, 3], [3, 4], [2, 5]])
    assert set(top.angles) == {(0, 1, 2), (1, 2, 3), (1, 2, 5), (3, 2, 5), (2, 3, 4)}
    assert set(top.dihedrals) == {(0, 1, 2, 3), (0, 1, 2, 5), (1, 2, 3, 4), (5, 2, 3, 4)}
    assert top.pairs(4) == ((0, 4),)
    assert set(top.pairs(3)) == {(0, 3), (0, 4), (0, 5), (1, 4), (4, 5)}
    assert Topology.from_bonds(3, [[0, 1]]).pairs(4) == ((0, 2), (1, 2))  # unconnected beads repel too
    with pytest.raises(ConfigError, match=r"bond \[0, 7\]"):
        Topology.from_bonds(3, [[0, 7]])


def test_geometry_of_a_constructed_chain():
    pos, (r, theta, phi) = _chain(50, seed=1)
    assert np.allclose(geometry.distances(pos, torch.tensor([[0, 1], [1, 2], [2, 3]])).numpy(), np.stack(r, 1))
    assert np.allclose(geometry.angles(pos, torch.tensor([[0, 1, 2], [1, 2, 3]])).numpy(), np.stack(theta, 1))
    got = geometry.dihedrals(pos, torch.tensor([[0, 1, 2, 3]]))[:, 0].numpy()
    assert np.allclose(np.angle(np.exp(1j * (got - phi))), 0, atol=1e-9)


def _fit(frames: int, seed: int = 0, **options):
    model = CGEnergy(SMALL, {"bonds": {}, "angles": {}, "dihedrals": {"terms": 2}, **options})
    pos, _ = _chain(frames, seed)
    model.fit_priors([(pos, torch.tensor([0, 1, 2, 3]))], {"toy": SYSTEM})
    return {kind: {k: p.tolist() for k, p in term.table().items()} for kind, term in model.priors.items()}, model


def test_fit_recovers_known_priors_within_sampling_error():
    """20000 exact samples: the relative sampling error of k is ~sqrt(2/N) = 1%, of x0 ~σ/sqrt(N)."""
    fitted, _ = _fit(20000)
    for key, (k, r0) in BOND.items():
        got_k, got_r0 = fitted["bonds"][key]
        assert got_k == pytest.approx(k, rel=0.05) and got_r0 == pytest.approx(r0, abs=5 * math.sqrt(KT / k) / math.sqrt(20000))
    for key, (k, t0) in ANGLE.items():
        got_k, got_t0 = fitted["angles"][key]
        assert got_k == pytest.approx(k, rel=0.05) and got_t0 == pytest.approx(t0, abs=5 * math.sqrt(KT / k) / math.sqrt(20000))
    assert np.allclose(fitted["dihedrals"][(0, 1, 2, 3)], DIHEDRAL, atol=0.05)


@pytest.mark.parametrize("bins", [50, 2])  # 2 bins: too sparse for a parabola, the moment fallback
def test_dropping_the_jacobian_would_be_caught(bins):
    """A soft bond (σ/r0 = 10%) where the r² Jacobian moves the mean by ~2σ²/r0: the fit must still
    return r0, not the histogram's centre."""
    rng = np.random.default_rng(3)
    k, r0 = 6.0, 3.0
    r = _harmonic(rng, 20000, k, r0, lambda x: x**2, 8.0, 64.0)
    from cglight.energy.prior_fit import fit_harmonic

    (got_k, got_r0), _ = fit_harmonic("bonds", torch.from_numpy(r), KT, bins)
    assert got_r0 == pytest.approx(r0, abs=0.01) and got_k == pytest.approx(k, rel=0.05)
    peak = r.mean()
    assert abs(peak - r0) > 0.05  # the data alone are off by far more than the tolerance


def test_prior_energy_is_the_closed_form():
    fitted, model = _fit(2000)
    pos, (r, theta, phi) = _chain(3, seed=9)  # the chain is built from these internal coordinates
    terms = model.double().energy_terms(pos, torch.tensor([0, 1, 2, 3]))
    bonds = sum(0.5 * fitted["bonds"][key][0] * (r[i] - fitted["bonds"][key][1]) ** 2 for i, key in enumerate(BOND))
    angles = sum(0.5 * fitted["angles"][key][0] * (theta[i] - fitted["angles"][key][1]) ** 2 for i, key in enumerate(ANGLE))
    a1, a2, b1, b2 = fitted["dihedrals"][(0, 1, 2, 3)]
    dihedrals = a1 * np.cos(phi) + a2 * np.cos(2 * phi) + b1 * np.sin(phi) + b2 * np.sin(2 * phi)
    for name, expected in (("bonds", bonds), ("angles", angles), ("dihedrals", dihedrals)):
        assert np.allclose(terms[name].detach().numpy(), expected, rtol=1e-9), name
    assert torch.equal(terms["repulsion"], torch.zeros(3, dtype=terms["repulsion"].dtype))  # turned off


def test_too_few_samples_is_an_error_naming_the_term():
    with pytest.raises(ConfigError, match=r"prior 'bonds': bead types \(0, 1\) occur 10 times in the 10 fitting frames, fewer than min_samples=20"):
        _fit(10)
    _fit(10, bonds={"min_samples": 5}, angles={"min_samples": 5}, dihedrals={"min_samples": 5, "terms": 1})


def test_repulsion_sigma_is_the_distance_quantile():
    model = CGEnergy(SMALL, {"repulsion": {"min_bonds_apart": 3, "quantile": 0.1}})
    pos, _ = _chain(500, seed=2)
    model.fit_priors([(pos, torch.tensor([0, 1, 2, 3]))], {"toy": SYSTEM})
    eps, sigma = model.priors["repulsion"].table()[(0, 3)].tolist()
    d = (pos[:, 3] - pos[:, 0]).norm(dim=-1)
    assert eps == pytest.approx(KT) and float((d < sigma).double().mean()) == pytest.approx(0.1, abs=0.003)


def test_bad_prior_config():
    with pytest.raises(ConfigError, match=r"unknown prior kind\(s\) \['bond'\]"):
        CGEnergy(SMALL, {"bond": {}})
    with pytest.raises(ConfigError, match=r"model.priors.angles: unknown option\(s\) \['bin'\]; allowed: bins, min_samples"):
        CGEnergy(SMALL, {"angles": {"bin": 3}})
    with pytest.raises(ConfigError, match="min_bonds_apart must be >= 2"):
        CGEnergy(SMALL, {"repulsion": {"min_bonds_apart": 1}})
    with pytest.raises(ConfigError, match="one temperature"):
        CGEnergy(SMALL, {"bonds": {}}).fit_priors([], {"a": SYSTEM, "b": SimpleNamespace(temperature=350.0, bead_types=[1], bonds=[])})
