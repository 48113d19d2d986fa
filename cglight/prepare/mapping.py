"""Linear CG maps ``R = M x`` and their force maps ``B`` (``M B = I``), see docs/method.md §1–2."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cglight.errors import ConfigError

CAPS = ("ACE", "NME", "NMA", "NH2")
BEAD_TYPE_OF_NAME = {"N": 1, "CA": 2, "C": 3}
"""Embedding index of a backbone bead, by atom name (0 is left unused)."""


@dataclass(frozen=True)
class CGMap:
    """Per-bead atom lists and weights (rows summing to 1), applied to each Cartesian component."""

    name: str
    atoms: list[list[int]]
    weights: list[list[float]]
    bead_names: list[str]
    bead_types: list[int]
    bonds: list[list[int]]
    n_atoms: int

    def __post_init__(self) -> None:
        if len(self.atoms) != len(self.weights):
            raise ConfigError(f"map '{self.name}': {len(self.atoms)} atom lists but {len(self.weights)} weight lists")
        for i, (a, w) in enumerate(zip(self.atoms, self.weights, strict=True)):
            if len(a) != len(w) or not a:
                raise ConfigError(f"map '{self.name}': bead {i} has {len(a)} atoms but {len(w)} weights")
            if abs(sum(w) - 1.0) > 1e-8:
                raise ConfigError(f"map '{self.name}': weights of bead {i} sum to {sum(w)}, not 1")

    @property
    def n_beads(self) -> int:
        return len(self.atoms)

    def matrix(self) -> np.ndarray:
        """``M`` as an ``[n, N]`` matrix of per-atom weights (the same for x, y and z)."""
        m = np.zeros((self.n_beads, self.n_atoms))
        for i, (a, w) in enumerate(zip(self.atoms, self.weights, strict=True)):
            m[i, a] = w
        return m

    def force_matrix(self) -> np.ndarray:
        """``B`` as ``[N, n]``: the pseudo-inverse ``Mᵀ(M Mᵀ)⁻¹``, which is ``Mᵀ`` for a slice map."""
        m = self.matrix()
        return m.T @ np.linalg.inv(m @ m.T)

    def to_json(self) -> dict[str, list[list]]:
        return {"atoms": [list(map(int, a)) for a in self.atoms], "weights": [list(map(float, w)) for w in self.weights]}


def _chain_atoms(topology, names_of_residue) -> list[tuple[int, str]]:
    beads = []
    for residue in topology.residues():
        by_name = {a.name: a.index for a in residue.atoms()}
        for name in names_of_residue(residue.name):
            if name not in by_name:
                raise ConfigError(f"residue {residue.name}{residue.id} has no atom named {name}")
            beads.append((by_name[name], name))
    return beads


def _backbone_names(residue: str) -> tuple[str, ...]:
    if residue == "ACE":
        return ("C",)
    if residue in ("NME", "NMA", "NH2"):
        return ("N",)
    return ("N", "CA", "C")


def _ca_names(residue: str) -> tuple[str, ...]:
    return () if residue in CAPS else ("CA",)


_SLICES = {"backbone": _backbone_names, "ca-slice": _ca_names}
MAPPINGS = tuple(_SLICES)


def slice_map(topology, mapping: str) -> CGMap:
    """A slice map that keeps one atom per bead, in chain order, bonded along the chain.

    ``backbone`` keeps N, CA, C of every residue plus the cap atoms bonded to the backbone
    (ACE's C, NME's N): for alanine dipeptide the 5 beads C N CA C N. ``ca-slice`` keeps CA.
    """
    if mapping not in _SLICES:
        raise ConfigError(f"unknown mapping {mapping!r}; available: {', '.join(MAPPINGS)}")
    beads = _chain_atoms(topology, _SLICES[mapping])
    if len(beads) < 2:
        raise ConfigError(f"mapping {mapping!r} gives {len(beads)} bead(s) for this molecule; at least 2 are needed")
    return CGMap(
        name=mapping,
        atoms=[[i] for i, _ in beads],
        weights=[[1.0] for _ in beads],
        bead_names=[name for _, name in beads],
        bead_types=[BEAD_TYPE_OF_NAME[name] for _, name in beads],
        bonds=[[i, i + 1] for i in range(len(beads) - 1)],
        n_atoms=topology.getNumAtoms(),
    )
