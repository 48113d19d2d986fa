"""Bead geometry of CG frames as NumPy arrays, computed by the energy core's geometry (one
implementation of distances, angles and dihedrals in the project), plus the ala2 (φ, ψ) beads."""

from __future__ import annotations

import numpy as np
import torch

from cglight.energy import geometry
from cglight.energy.topology import Topology


def _apply(fn, pos: np.ndarray, index: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return fn(torch.from_numpy(np.asarray(pos, dtype=np.float64)), torch.as_tensor(np.asarray(index), dtype=torch.long)).numpy()


def bond_lengths(pos: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """``[F, n, 3]``, ``[B, 2]`` → ``[F, B]`` (Å)."""
    return _apply(geometry.distances, pos, bonds)


def angles(pos: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """Angles at the middle bead of each ``(i, j, k)`` → ``[F, A]`` (radians)."""
    return _apply(geometry.angles, pos, triples)


def dihedrals(pos: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """IUPAC dihedral of each ``(i, j, k, l)`` → ``[F, D]`` in (−π, π]."""
    return _apply(geometry.dihedrals, pos, quads)


def chain_angles(n: int, bonds: list[list[int]]) -> np.ndarray:
    """Bead triples ``(i, j, k)`` with bonds i–j and j–k (the priors' angles), as ``[A, 3]``."""
    return np.asarray(Topology.from_bonds(n, bonds).angles, dtype=np.int64).reshape(-1, 3)


def phi_psi_beads(bead_names: list[str]) -> np.ndarray | None:
    """``[[C, N, CA, C], [N, CA, C, N]]`` bead indices for a backbone map of one residue
    (alanine dipeptide: C N CA C N), or None if the beads are not that."""
    if list(bead_names) == ["C", "N", "CA", "C", "N"]:
        return np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    return None
