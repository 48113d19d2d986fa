"""Evaluation geometry (φ, ψ, bonds, angles from beads) against mdtraj, an independent implementation."""

from __future__ import annotations

import mdtraj as md
import numpy as np

from cglight.evaluate.geometry import angles, bond_lengths, chain_angles, dihedrals
from cglight.simulate.trajectory import cg_topology


def test_geometry_matches_mdtraj():
    bonds = [[0, 1], [1, 2], [2, 3], [3, 4]]
    top = md.Topology.from_openmm(cg_topology(["C", "N", "CA", "C", "N"], bonds))
    x = np.random.default_rng(0).normal(size=(20, 5, 3)) * 2.0  # Å
    traj = md.Trajectory(x / 10.0, top)
    quads, triples = np.array([[0, 1, 2, 3], [1, 2, 3, 4]]), chain_angles(5, bonds)
    assert triples.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    np.testing.assert_allclose(dihedrals(x, quads), md.compute_dihedrals(traj, quads), atol=1e-5)
    np.testing.assert_allclose(angles(x, triples), md.compute_angles(traj, triples), atol=1e-5)
    np.testing.assert_allclose(bond_lengths(x, np.array(bonds)), 10.0 * md.compute_distances(traj, bonds), atol=1e-5)
