"""Prepared targets against OpenMM itself and against a closed form."""

from __future__ import annotations

import json

import h5py
import mdtraj
import numpy as np
import openmm as mm
import pytest
from openmm import unit

from cglight.prepare.hessian import ProjectedHessian, evaluate_refined

KJ_PER_KCAL = 4.184


def _reference(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    system_entry = manifest["systems"]["ala2"]
    ref = system_entry["reference"]
    system = mm.XmlSerializer.deserialize((dataset / ref["system"]).read_text())
    with mdtraj.formats.DCDTrajectoryFile(str(dataset / ref["trajectory"])) as dcd:
        xyz_angstrom = dcd.read()[0]  # float32 Å exactly as stored; frames recomputed from these
    assert mdtraj.load_pdb(str(dataset / ref["topology"])).n_atoms == xyz_angstrom.shape[1]
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    atoms = [a[0] for a in system_entry["map"]["atoms"]]
    return manifest, context, xyz_angstrom.astype(np.float64) / 10.0, atoms


def _forces_kcal_per_angstrom(context, x_nm):
    context.setPositions(x_nm)
    f = context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return np.asarray(f) / KJ_PER_KCAL / 10.0


def test_mapped_forces_and_positions_agree_with_openmm(tiny_dataset):
    manifest, context, traj, atoms = _reference(tiny_dataset)
    assert traj.shape == (40, 22, 3)
    checked = 0
    for shard in manifest["shards"]:
        with h5py.File(tiny_dataset / shard["path"], "r") as f:
            for j in (0, len(f["pos"]) - 1):
                x = traj[f["frame_index"][j]].astype(np.float64)
                np.testing.assert_allclose(f["pos"][j], x[atoms] * 10.0, atol=1e-4)
                forces = _forces_kcal_per_angstrom(context, x)
                np.testing.assert_allclose(f["forces"][j], forces[atoms], rtol=1e-5, atol=1e-4)
                checked += 1
    assert checked == 2 * len(manifest["shards"]) >= 4


def test_stored_hessian_is_symmetric_and_matches_directional_difference(tiny_dataset):
    manifest, context, traj, atoms = _reference(tiny_dataset)
    rng = np.random.default_rng(0)
    with h5py.File(tiny_dataset / manifest["shards"][0]["path"], "r") as f:
        assert f.attrs["hessian_max_rel_asymmetry"] < 1e-4  # of the raw finite-difference matrix
        for j in (0, 7):
            h = f["hessian"][j].astype(np.float64)
            assert np.abs(h - h.T).max() <= 1e-6 * np.abs(h).max()
            x = traj[f["frame_index"][j]].astype(np.float64)
            d = rng.normal(size=(len(atoms), 3))
            d /= np.linalg.norm(d)
            eps_nm = 2e-5
            dx = np.zeros_like(x)
            dx[atoms] = eps_nm * d
            df = (_forces_kcal_per_angstrom(context, x - dx) - _forces_kcal_per_angstrom(context, x + dx)) / (2 * eps_nm * 10.0)
            hd = (h @ d.reshape(-1)).reshape(-1, 3)
            np.testing.assert_allclose(hd, df[atoms], rtol=1e-3, atol=1e-3 * np.abs(hd).max())


def test_projected_hessian_of_a_quadratic_system_with_a_centre_of_mass_map():
    """u = ½ Σ_i k_i |x_i|² + ½ κ |x_0 − x_1 − r0|² has a closed-form Hessian; B = pinv(M)."""
    kappa, ks = 300.0, np.array([50.0, 80.0, 120.0])
    system = mm.System()
    for _ in range(3):
        system.addParticle(12.0)
    ext = mm.CustomExternalForce("0.5*k*(x^2+y^2+z^2)")
    ext.addPerParticleParameter("k")
    for i, k in enumerate(ks):
        ext.addParticle(i, [k])
    system.addForce(ext)
    comp = mm.CustomCompoundBondForce(2, "0.5*kappa*((x2-x1-0.1)^2+(y2-y1)^2+(z2-z1)^2)")
    comp.addGlobalParameter("kappa", kappa)
    comp.addBond([0, 1], [])
    system.addForce(comp)
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    # bead 0 = weighted centre of atoms 0, 1; bead 1 = atom 2
    m_atoms = np.array([[0.25, 0.75, 0.0], [0.0, 0.0, 1.0]])
    b_atoms = m_atoms.T @ np.linalg.inv(m_atoms @ m_atoms.T)
    x = np.random.default_rng(1).normal(scale=0.1, size=(3, 3))
    frame = ProjectedHessian(context, b_atoms, eps_nm=1e-5)(x)
    h_atoms = np.diag(ks) + kappa * np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    b = np.kron(b_atoms, np.eye(3))
    exact = b.T @ np.kron(h_atoms, np.eye(3)) @ b / KJ_PER_KCAL / 100.0  # kJ/mol/nm² → kcal/mol/Å²
    np.testing.assert_allclose(frame.hessian, exact, rtol=1e-7, atol=1e-9)
    # force = −∇u: the linear part plus the constant from the 0.1 nm offset along x
    g = -(np.kron(h_atoms, np.eye(3)) @ x.reshape(-1)) - kappa * 0.1 * np.kron([1.0, -1.0, 0.0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(frame.forces.reshape(-1), b.T @ g / KJ_PER_KCAL / 10.0, rtol=1e-9, atol=1e-9)


def _half_spring_context(k: float, r0: float):
    """u = k (r − r0)² for r > r0 and 0 inside (C¹: the Hessian jumps at r0), between atoms 0 and 1."""
    system = mm.System()
    for _ in range(2):
        system.addParticle(12.0)
    spring = mm.CustomBondForce("k*step(r-r0)*(r-r0)^2")
    spring.addGlobalParameter("k", k)
    spring.addGlobalParameter("r0", r0)
    spring.addBond(0, 1, [])
    system.addForce(spring)
    return mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))


def test_a_frame_next_to_a_kink_is_re_evaluated_with_smaller_steps_until_one_sided():
    """Closed form on the outer side: ∇²u = 2k [uuᵀ + (r − r0)/r (I − uuᵀ)] per pair block."""
    k, r0, gap = 5000.0, 0.3, 3e-6  # the frame sits 3e-6 nm outside the kink
    u = np.array([1.0, 0.8, 0.6]) / np.linalg.norm([1.0, 0.8, 0.6])  # every axis step of 1e-5 nm crosses it, of 1e-6 none
    x = np.stack([np.zeros(3), (r0 + gap) * u])
    block = 2 * k * (np.outer(u, u) + gap / (r0 + gap) * (np.eye(3) - np.outer(u, u)))
    exact = np.block([[block, -block], [-block, block]]) / KJ_PER_KCAL / 100.0  # kJ/mol/nm² → kcal/mol/Å²
    evaluate = ProjectedHessian(_half_spring_context(k, r0), np.eye(2), eps_nm=1e-5)

    straddled, eps, tried = evaluate_refined(evaluate, x, [0], 1e-3, refinements=0)
    assert eps == 1e-5 and tried == [straddled.asymmetry] and straddled.asymmetry > 1e-2
    assert np.abs(straddled.hessian - exact).max() > 0.1 * np.abs(exact).max()  # the average of both sides

    frame, eps, tried = evaluate_refined(evaluate, x, [0], 1e-3, refinements=3)
    assert eps == pytest.approx(1e-6) and len(tried) == 2 and tried[1] < 1e-6
    np.testing.assert_allclose(frame.hessian, exact, rtol=1e-5, atol=1e-6 * np.abs(exact).max())
    np.testing.assert_allclose(frame.forces, straddled.forces)  # the forces need no step


def test_refinement_keeps_the_probes():
    evaluate = ProjectedHessian(_half_spring_context(5000.0, 0.3), np.eye(2), eps_nm=1e-5, mode="probes", probes=3)
    x = np.stack([np.zeros(3), (0.3 + 3e-6) * np.array([1.0, 0.8, 0.6]) / np.linalg.norm([1.0, 0.8, 0.6])])
    first, _, _ = evaluate_refined(evaluate, x, [4, 2], 1.0, refinements=0)
    refined, eps, tried = evaluate_refined(evaluate, x, [4, 2], 1e-3, refinements=2)
    assert eps < 1e-5 and tried[0] > 1e-3 >= tried[-1]
    np.testing.assert_array_equal(first.probes, refined.probes)


@pytest.mark.parametrize("eps", [0.0, -1e-5])
def test_bad_step_is_refused(eps):
    with pytest.raises(ValueError, match="positive"):
        ProjectedHessian(None, np.eye(3), eps_nm=eps)
