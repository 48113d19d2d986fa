"""Bead geometry of CG frames (NumPy): bond lengths, angles, dihedrals, and the ala2 (φ, ψ)."""

from __future__ import annotations

import numpy as np


def bond_lengths(pos: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """``[F, n, 3]``, ``[B, 2]`` → ``[F, B]`` (Å)."""
    return np.linalg.norm(pos[:, bonds[:, 1]] - pos[:, bonds[:, 0]], axis=-1)


def angles(pos: np.ndarray, triples: np.ndarray) -> np.ndarray:
    """Angles at the middle bead of each ``(i, j, k)`` → ``[F, A]`` (radians)."""
    a = pos[:, triples[:, 0]] - pos[:, triples[:, 1]]
    b = pos[:, triples[:, 2]] - pos[:, triples[:, 1]]
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def dihedrals(pos: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """IUPAC dihedral of each ``(i, j, k, l)`` → ``[F, D]`` in (−π, π]."""
    b0 = pos[:, quads[:, 0]] - pos[:, quads[:, 1]]
    b1 = pos[:, quads[:, 2]] - pos[:, quads[:, 1]]
    b2 = pos[:, quads[:, 3]] - pos[:, quads[:, 2]]
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - (b0 * b1n).sum(-1, keepdims=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdims=True) * b1n
    x = (v * w).sum(-1)
    y = (np.cross(b1n, v) * w).sum(-1)
    return np.arctan2(y, x)


def chain_angles(bonds: list[list[int]]) -> np.ndarray:
    """Bead triples ``(i, j, k)`` with bonds i–j and j–k, from the bond list."""
    nbrs: dict[int, list[int]] = {}
    for i, j in bonds:
        nbrs.setdefault(i, []).append(j)
        nbrs.setdefault(j, []).append(i)
    out = [(i, j, k) for j, ns in sorted(nbrs.items()) for a, i in enumerate(sorted(ns)) for k in sorted(ns)[a + 1 :]]
    return np.asarray(out, dtype=np.int64).reshape(-1, 3)


def phi_psi_beads(bead_names: list[str]) -> np.ndarray | None:
    """``[[C, N, CA, C], [N, CA, C, N]]`` bead indices for a backbone map of one residue
    (alanine dipeptide: C N CA C N), or None if the beads are not that."""
    if list(bead_names) == ["C", "N", "CA", "C", "N"]:
        return np.array([[0, 1, 2, 3], [1, 2, 3, 4]])
    return None
