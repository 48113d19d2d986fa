"""Hessian modes and a centre-of-mass map, checked against OpenMM itself (not against cglight's code)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import openmm as mm
import pytest
from openmm import unit

from cglight.errors import DatasetError
from cglight.prepare import PrepareConfig, prepare_dataset
from cglight.prepare.reference import read_dcd

KJ_PER_KCAL = 4.184
SMALL = dict(frames=6, stride_steps=20, equilibration_ps=0.1, shard_frames=3, workers=1)


def _forces(context, x_nm):
    """OpenMM's own forces in kcal/mol/Å, [N, 3]."""
    context.setPositions(x_nm)
    f = context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return np.asarray(f) / KJ_PER_KCAL / 10.0


def _load(root, shard=0):
    manifest = json.loads((root / "manifest.json").read_text())
    system = manifest["systems"]["ala2"]
    with h5py.File(root / manifest["shards"][shard]["path"], "r") as f:
        data = {k: f[k][:] for k in f}
    return system, data


@pytest.fixture(scope="module")
def com_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("com") / "ds"
    return prepare_dataset(PrepareConfig(mapping="residue-com", solvent="vacuum", seed=4, **SMALL), root)


def test_centre_of_mass_map_against_a_hand_projection_of_openmm_forces(com_dataset):
    system, data = _load(com_dataset)
    ref = system["reference"]
    aa = mm.XmlSerializer.deserialize((com_dataset / ref["system"]).read_text())
    assert "GBSAOBCForce" not in (com_dataset / ref["system"]).read_text()  # vacuum asked
    context = mm.Context(aa, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    masses = np.array([aa.getParticleMass(i).value_in_unit(unit.dalton) for i in range(aa.getNumParticles())])
    # M from the topology's residues and masses, by hand: 3 beads (ACE, ALA, NME)
    import mdtraj

    top = mdtraj.load_pdb(str(com_dataset / ref["topology"])).topology
    m = np.zeros((3, aa.getNumParticles()))
    for i, r in enumerate(top.residues):
        idx = [a.index for a in r.atoms]
        m[i, idx] = masses[idx] / masses[idx].sum()
    b = np.linalg.pinv(m)  # [N, 3]
    xs = read_dcd(com_dataset / ref["trajectory"]).astype(np.float64) / 10.0
    rng = np.random.default_rng(0)
    for j in range(len(data["frame_index"])):
        x = xs[data["frame_index"][j]]
        np.testing.assert_allclose(data["pos"][j], m @ x * 10.0, rtol=1e-6, atol=1e-4)
        f = _forces(context, x)
        np.testing.assert_allclose(data["forces"][j], b.T @ f, rtol=1e-5, atol=1e-4)
        # Hessian along a random CG direction d: move the atoms by B d, difference OpenMM's forces
        d = rng.normal(size=(3, 3))
        d /= np.linalg.norm(d)
        eps_nm = 2e-5
        dx = b @ d * eps_nm
        df = (_forces(context, x - dx) - _forces(context, x + dx)) / (2 * eps_nm * 10.0)  # kcal/mol/Å²
        hd = data["hessian"][j].astype(np.float64) @ d.reshape(-1)
        np.testing.assert_allclose(hd, (b.T @ df).reshape(-1), rtol=2e-3, atol=2e-3 * np.abs(hd).max())
        assert data["fd_asymmetry"][j] < 1e-5


def test_probes_frame_equals_the_full_hessian_times_the_same_probes(tmp_path):
    full = prepare_dataset(PrepareConfig(hessian="full", seed=2, **SMALL), tmp_path / "full")
    probes = prepare_dataset(PrepareConfig(hessian="probes", hessian_probes=3, seed=2, **SMALL), tmp_path / "probes")
    for shard in (0, 1):
        _, a = _load(full, shard)
        system, p = _load(probes, shard)
        assert system["hessian"] == "probes" and "hessian" not in p
        np.testing.assert_array_equal(a["pos"], p["pos"])  # the same frames
        assert p["probes"].shape == (3, 3, 15) and set(np.unique(p["probes"])) == {-1.0, 1.0}
        expected = np.einsum("fij,fkj->fki", a["hessian"].astype(np.float64), p["probes"])
        scale = np.abs(expected).max()
        np.testing.assert_allclose(p["hvp"], expected, rtol=1e-4, atol=1e-5 * scale)
        assert (p["fd_asymmetry"] < 1e-5).all() and (p["fd_asymmetry"] > 0).all()  # vᵢᵀHvⱼ symmetric to FD accuracy
    # the probes of a frame depend on the seed, replica and frame only: not on shards or workers
    other = prepare_dataset(PrepareConfig(hessian="probes", hessian_probes=3, seed=2, **{**SMALL, "shard_frames": 2, "workers": 2}),
                            tmp_path / "other")
    a = np.concatenate([_load(probes, i)[1]["probes"] for i in (0, 1)])
    b = np.concatenate([_load(other, i)[1]["probes"] for i in (0, 1, 2)])
    np.testing.assert_array_equal(a, b)


def test_none_mode_stores_forces_only(tmp_path):
    root = prepare_dataset(PrepareConfig(hessian="none", seed=2, **SMALL), tmp_path / "none")
    system, data = _load(root)
    assert system["hessian"] == "none" and not {"hessian", "probes", "hvp"} & set(data)
    _, full = _load(prepare_dataset(PrepareConfig(hessian="full", seed=2, **SMALL), tmp_path / "full"))
    np.testing.assert_array_equal(data["forces"], full["forces"])


def test_a_poor_finite_difference_is_refused_naming_the_frame(tmp_path):
    config = PrepareConfig(hessian_max_asymmetry=1e-12, seed=2, **SMALL)
    message = r"system 'ala2', replica 0, frame 0: finite-difference asymmetry .* exceeds hessian_max_asymmetry 1\.0e-12"
    with pytest.raises(DatasetError, match=message):
        prepare_dataset(config, tmp_path / "ds")
    assert not (tmp_path / "ds" / "manifest.json").exists()
