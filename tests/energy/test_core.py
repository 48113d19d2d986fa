"""``CGEnergy``: energy terms add up, forces and HVPs of the total against float64 finite
differences, topology look-up, and the buffers' round trip through a state dict."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cglight.energy import TERMS, BackboneConfig, CGEnergy
from cglight.errors import ConfigError
from cglight.testing import assert_grad_matches_fd, assert_hvp_matches_fd

from .test_priors import SYSTEM, _chain

PRIORS = {"bonds": {}, "angles": {}, "dihedrals": {"terms": 2}, "repulsion": {"min_bonds_apart": 3}}
TYPES = torch.tensor([0, 1, 2, 3])


@pytest.fixture(scope="module")
def fitted() -> CGEnergy:
    torch.manual_seed(0)
    model = CGEnergy(BackboneConfig(embedding_dimension=16, num_layers=2, num_rbf=8, max_z=8), PRIORS)
    pos, _ = _chain(400)
    model.fit_priors([(pos[:200], TYPES), (pos[200:], TYPES.expand(200, 4))], {"toy": SYSTEM})
    return model.double().eval()


def test_energy_terms_sum_to_energy(fitted):
    pos, _ = _chain(3, seed=5)
    terms = fitted.energy_terms(pos, TYPES)
    assert tuple(terms) == TERMS == ("bonds", "angles", "dihedrals", "repulsion", "network")
    assert all(v.shape == (3,) and v.abs().min() > 0 for v in terms.values())
    assert torch.allclose(sum(terms.values()), fitted.energy(pos, TYPES), rtol=1e-12)
    single = fitted.energy_terms(pos[0], TYPES)
    assert all(single[k].shape == () and torch.isclose(single[k], terms[k][0]) for k in TERMS)


def test_forces_and_hvp_of_the_total_match_finite_differences(fitted):
    pos, _ = _chain(2, seed=6)
    assert_grad_matches_fd(lambda p: fitted.energy(p, TYPES).sum(), pos)
    assert_hvp_matches_fd(lambda p: fitted.energy(p, TYPES).sum(), pos)
    v = torch.randn(pos.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = fitted.evaluate(pos, TYPES, create_graph=False)
    assert torch.allclose(out.forces, fitted.forces(pos, TYPES)) and torch.allclose(out.hvp(v), fitted.hvp(pos, TYPES, v))
    # the force_fn finite-difference path sees the same total energy (priors included)
    assert torch.allclose(out.hvp_fd(v[None], 1e-5, central=True)[0], fitted.hvp(pos, TYPES, v), rtol=1e-5, atol=1e-6)


def test_hessian_is_the_float64_autograd_hessian_of_the_energy(fitted):
    pos, _ = _chain(2, seed=7)
    h = fitted.hessian(pos, TYPES)
    for frame in range(2):
        oracle = torch.autograd.functional.hessian(lambda x: fitted.energy(x.reshape(1, 4, 3), TYPES).sum(), pos[frame].reshape(-1))
        torch.testing.assert_close(h[frame], oracle, rtol=1e-9, atol=1e-9)


def test_topology_is_looked_up_by_bead_types_or_given(fitted):
    pos, _ = _chain(1, seed=7)
    chain = fitted.energy(pos, TYPES)
    assert torch.equal(fitted.energy(pos, TYPES, bonds=[[0, 1], [1, 2], [2, 3]]), chain)
    with pytest.raises(ConfigError, match=r"no known system has bead types \[0, 1, 2, 2\].*known: \{'toy': \[0, 1, 2, 3\]\}.*bonds="):
        fitted.energy(pos, torch.tensor([0, 1, 2, 2]))
    with pytest.raises(ConfigError, match=r"prior 'bonds' has no fitted parameters for bead types \[\(0, 2\)\]"):
        fitted.energy(pos, TYPES, bonds=[[0, 2], [1, 2], [2, 3]])


def test_state_dict_round_trip_restores_priors_and_systems(fitted):
    clone = CGEnergy(BackboneConfig(embedding_dimension=16, num_layers=2, num_rbf=8, max_z=8), PRIORS).double().eval()
    assert clone.needs_fit
    clone.load_state_dict(fitted.state_dict())
    assert not clone.needs_fit and clone.systems == fitted.systems
    pos, _ = _chain(2, seed=8)
    assert torch.equal(clone.energy(pos, TYPES), fitted.energy(pos, TYPES))


def test_unfitted_priors_are_refused():
    model = CGEnergy(BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=4, max_z=8), {"bonds": {}})
    model.set_systems({"toy": SYSTEM})
    with pytest.raises(RuntimeError, match="priors are not fitted"):
        model.energy(_chain(1)[0], TYPES)


def test_bead_types_beyond_the_embedding_table():
    model = CGEnergy(BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=4, max_z=3))
    with pytest.raises(ConfigError, match="system 'toy' has bead type 3 but model.backbone.max_z is 3"):
        model.check_bead_types({"toy": SimpleNamespace(bead_types=[0, 3], bonds=[], temperature=300.0)})
