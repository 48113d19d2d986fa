"""Physics of prepared data, checked without cglight's code: the configurational temperature.

For Boltzmann-distributed x and a constant matrix B, integration by parts gives
``E[tr BᵀHB] = β E[‖Bᵀ F‖²]``: the mapped forces and the projected Hessians of the frames fix the
temperature they were sampled at. Wrong units, a wrong β, constrained bonds or MD at another
temperature all move ``T_conf = E‖f‖² / (k_B E[tr BᵀHB])`` away from the set temperature.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import openmm as mm
import pytest

from cglight.prepare import PrepareConfig, prepare_dataset

K_B = 0.0019872041  # kcal/mol/K


@pytest.mark.slow
def test_configurational_temperature_of_prepared_frames(tmp_path):
    # 600 frames from 4 independent replicas, one every 0.1 ps after 5 ps of equilibration. Forces
    # decorrelate within ~0.2 ps, so 20 blocks of 30 consecutive frames (3 ps) are close to
    # independent; the standard error of T_conf comes out near 3% (~9 K), small enough to tell
    # 300 K from 350 K, and the whole build takes ~8 s.
    # Each replica is first heated (1 ps at 600 K): the thermostat must bring it back to 300 K.
    config = PrepareConfig(frames=600, replicas=4, stride_steps=100, equilibration_ps=5.0, shard_frames=150, seed=11, workers=1,
                           heat_temperature=600.0, heat_ps=1.0)
    root = prepare_dataset(config, tmp_path / "ds")
    manifest = json.loads((root / "manifest.json").read_text())
    temperature = manifest["systems"]["ala2"]["temperature"]
    f2, tr = [], []
    for shard in manifest["shards"]:
        with h5py.File(root / shard["path"], "r") as f:
            forces, hessian = f["forces"][:].astype(np.float64), f["hessian"][:].astype(np.float64)
        f2.append((forces**2).sum(axis=(1, 2)))
        tr.append(np.trace(hessian, axis1=1, axis2=2))
    blocks = 20
    f2_blocks = np.concatenate(f2).reshape(blocks, -1).mean(axis=1)
    tr_blocks = np.concatenate(tr).reshape(blocks, -1).mean(axis=1)
    t_conf = f2_blocks.mean() / tr_blocks.mean() / K_B
    t_blocks = f2_blocks / tr_blocks / K_B
    error = t_blocks.std(ddof=1) / np.sqrt(blocks)
    assert error < 15.0, f"error bar {error:.1f} K too wide to mean anything"
    assert abs(t_conf - temperature) < 3 * error, f"T_conf = {t_conf:.1f} ± {error:.1f} K, set {temperature} K"


def test_written_system_is_flexible_and_has_the_solvent(tiny_dataset):
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    entry = manifest["systems"]["ala2"]
    xml = (tiny_dataset / entry["reference"]["system"]).read_text()
    system = mm.XmlSerializer.deserialize(xml)
    mapped = {a for atoms in entry["map"]["atoms"] for a in atoms}
    constrained = {system.getConstraintParameters(i)[j] for i in range(system.getNumConstraints()) for j in (0, 1)}
    assert not mapped & constrained and system.getNumConstraints() == 0
    forces = [f.__class__.__name__ for f in system.getForces()]
    assert "GBSAOBCForce" in forces  # implicit-obc asked
    assert entry["reference"]["solvent"] == "implicit-obc"
