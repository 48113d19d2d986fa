"""The constrained-sampling PMF Hessian against the closed form of a Gaussian all-atom system."""

from __future__ import annotations

import numpy as np
import pytest

from cglight.errors import ConfigError
from cglight.prepare.pmf_hessian import conditional_pmf_hessian
from cglight.units import HESSIAN_OPENMM_TO_CGLIGHT

T = 300.0


def _gaussian_system(hydrogens: bool = False):
    """Four atoms on zero-length springs (u = ½ xᵀKx exactly), atom 0 anchored to the origin; with
    ``hydrogens``, a light atom (1 amu) on a stiff spring (period ~10 fs, as an X–H bond) to each of
    atoms 1 and 2, and a softer spring between those hydrogens and from one to atom 3."""
    import openmm as mm

    masses = [12.0] * 4 + ([1.0] * 2 if hydrogens else [])
    springs = [(0, 1, 2000.0), (1, 2, 1000.0), (2, 3, 1500.0)]  # kJ/mol/nm²
    if hydrogens:
        springs += [(1, 4, 3.0e5), (2, 5, 3.0e5), (4, 5, 800.0), (5, 3, 600.0)]
    system = mm.System()
    for m in masses:
        system.addParticle(m)
    bonds = mm.HarmonicBondForce()
    for i, j, k in springs:
        bonds.addBond(i, j, 0.0, k)
    system.addForce(bonds)
    anchor = mm.CustomExternalForce("0.5*ka*(x^2+y^2+z^2)")
    anchor.addGlobalParameter("ka", 500.0)
    anchor.addParticle(0, [])
    system.addForce(anchor)
    lap = np.zeros((len(masses), len(masses)))
    for i, j, k in springs:
        lap[[i, j], [i, j]] += k
        lap[i, j] -= k
        lap[j, i] -= k
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


@pytest.mark.slow
def test_default_settings_match_the_closed_form_with_fast_hydrogens():
    """The default sampler and settings (GHMC, 1 fs, 2000 samples 20 steps apart) on a harmonic
    molecule with hydrogen-like atoms vibrating against held atoms: within the stated error."""
    system, k = _gaussian_system(hydrogens=True)
    mapped = [0, 3]
    m = np.kron(np.eye(6)[mapped], np.eye(3))
    exact = np.linalg.inv(m @ np.linalg.inv(k) @ m.T)
    x = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.1, 0.02, 0.0], [0.15, 0.0, 0.01], [0.05, 0.01, 0.0], [0.1, 0.02, 0.01]])
    est = conditional_pmf_hessian(system, x, mapped, T, seed=4)
    assert est.settings["sampler"] == "ghmc" and est.settings["timestep_fs"] == 1.0 and est.samples == 2000
    assert 0.5 < est.acceptance < 1.0
    err = np.linalg.norm(est.hessian - exact)
    assert err < 4 * est.frobenius_stderr, (err, est.frobenius_stderr)
    assert est.frobenius_stderr < 0.3 * np.linalg.norm(exact), (est.frobenius_stderr, np.linalg.norm(exact))
    assert np.linalg.norm(m @ k @ m.T - exact) > 3 * est.frobenius_stderr  # the covariance correction is resolved


def test_convergence_report_halves_the_step_and_doubles_the_samples():
    from cglight.prepare.pmf_hessian import convergence_report

    system, _ = _gaussian_system()
    x = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.1, 0.02, 0.0], [0.15, 0.0, 0.01]])
    report = convergence_report(system, x, [0, 3], T, samples=200, stride_steps=10, equilibration_ps=0.2, seed=2)
    table, est = report["table"], report["estimate"]
    assert report["half_step"].settings["timestep_fs"] == 0.5 and report["half_step"].settings["stride_steps"] == 20
    assert report["more_samples"].samples == 400 and est.samples == 200
    for row in ("half_step", "more_samples"):
        assert table[row]["noise"] > 0 and table[row]["ratio"] == pytest.approx(table[row]["change"] / table[row]["noise"])
    assert est.step_bias == pytest.approx(np.sqrt(max(0.0, table["half_step"]["change"] ** 2 - table["half_step"]["noise"] ** 2)))
    assert table["base"]["error_with_step_bias"] >= table["base"]["stderr"]


def test_constraints_on_mapped_atoms_and_bad_indices_are_refused():
    system, _ = _gaussian_system()
    x = np.zeros((4, 3))
    with pytest.raises(ConfigError, match="outside"):
        conditional_pmf_hessian(system, x, [0, 7], T, samples=20, blocks=2)
    system.addConstraint(0, 1, 0.1)
    with pytest.raises(ConfigError, match="constrains mapped atoms"):
        conditional_pmf_hessian(system, x, [0, 3], T, samples=20, blocks=2)
    with pytest.raises(ConfigError, match="unknown sampler"):
        conditional_pmf_hessian(system, x, [0, 3], T, samples=20, blocks=2, sampler="metropolis")
