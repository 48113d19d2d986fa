"""The constrained-sampling PMF Hessian against the closed form of a Gaussian all-atom system."""

from __future__ import annotations

import numpy as np
import pytest

from cglight.errors import ConfigError
from cglight.prepare.pmf_hessian import conditional_pmf_hessian
from cglight.units import HESSIAN_OPENMM_TO_CGLIGHT

T = 300.0


def _gaussian_system():
    """Four atoms on zero-length springs (u = ½ xᵀKx exactly), atom 0 anchored to the origin."""
    import openmm as mm

    system = mm.System()
    for _ in range(4):
        system.addParticle(12.0)
    springs = mm.HarmonicBondForce()
    k = [2000.0, 1000.0, 1500.0]  # kJ/mol/nm²
    for i, ki in enumerate(k):
        springs.addBond(i, i + 1, 0.0, ki)
    system.addForce(springs)
    anchor = mm.CustomExternalForce("0.5*ka*(x^2+y^2+z^2)")
    anchor.addGlobalParameter("ka", 500.0)
    anchor.addParticle(0, [])
    system.addForce(anchor)
    lap = np.zeros((4, 4))
    for i, ki in enumerate(k):
        lap[[i, i + 1], [i, i + 1]] += ki
        lap[i, i + 1] -= ki
        lap[i + 1, i] -= ki
    lap[0, 0] += 500.0
    return system, np.kron(lap, np.eye(3)) * HESSIAN_OPENMM_TO_CGLIGHT  # kcal/mol/Å²


@pytest.mark.slow
def test_estimate_matches_the_closed_form_pmf_hessian():
    system, k = _gaussian_system()
    mapped = [0, 3]
    m = np.kron(np.eye(4)[mapped], np.eye(3))
    exact = np.linalg.inv(m @ np.linalg.inv(k) @ m.T)
    bare = m @ k @ m.T
    x = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.1, 0.02, 0.0], [0.15, 0.0, 0.01]])  # nm
    est = conditional_pmf_hessian(system, x, mapped, T, samples=8000, stride_steps=100, equilibration_ps=1.0, friction_per_ps=10.0, seed=1)
    err = np.linalg.norm(est.hessian - exact)
    assert err < max(4 * est.frobenius_stderr, 0.03 * np.linalg.norm(exact)), (err, est.frobenius_stderr)
    assert np.linalg.norm(bare - exact) > 5 * err  # the covariance correction is what got it right
    assert est.frobenius_stderr < 0.1 * np.linalg.norm(bare - exact)


def test_constraints_on_mapped_atoms_and_bad_indices_are_refused():
    system, _ = _gaussian_system()
    x = np.zeros((4, 3))
    with pytest.raises(ConfigError, match="outside"):
        conditional_pmf_hessian(system, x, [0, 7], T, samples=20, blocks=2)
    system.addConstraint(0, 1, 0.1)
    with pytest.raises(ConfigError, match="constrains mapped atoms"):
        conditional_pmf_hessian(system, x, [0, 3], T, samples=20, blocks=2)
