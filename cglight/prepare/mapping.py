"""Linear CG maps ``R = M x`` and their force maps ``B = Mᵀ(M Mᵀ)⁻¹`` (``M B = I``).

``M`` is ``[n, N]`` (beads × atoms), each row a set of non-negative weights summing to 1, applied
to x, y and z alike. Any ``B`` with ``M B = I`` gives an unbiased mean force ``Bᵀ F``; cglight
uses the pseudo-inverse ``B = Mᵀ(M Mᵀ)⁻¹``, the choice of least norm. For a slice map (one atom
per bead, weight 1) ``M Mᵀ = I`` and ``B = Mᵀ``: the mapped force is the force on the kept atom.

Built-in maps, by name: ``ca`` (one bead per residue at its CA), ``backbone`` (N, CA, C of every
residue, plus the cap atoms bonded to the backbone: C N CA C N for alanine dipeptide),
``backbone-residue`` (the same beads, each CA typed by its residue, so that a model tells residues apart) and
``residue-com`` (one bead per residue at the centre of mass of all its atoms). Anything else is
read as a map file (YAML or JSON), see :func:`read_map_file`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cglight.errors import ConfigError

CAPS = ("ACE", "NME", "NMA", "NH2")
BEAD_TYPE_OF_NAME = {"N": 1, "CA": 2, "C": 3}
"""Embedding index of a backbone bead, by atom name (0 is left unused); ``backbone-residue`` types CA by residue."""
AMINO_ACIDS = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)
RESIDUE_ALIASES = {"HID": "HIS", "HIE": "HIS", "HIP": "HIS", "CYX": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS"}
FIRST_RESIDUE_TYPE = 4
"""Embedding index of ALA in ``ca``/``residue-com`` maps; the 20 amino acids follow alphabetically
(4 … 23), caps take 24 (ACE) and 25 (NME), anything else 26."""


def residue_type(name: str) -> int:
    name = RESIDUE_ALIASES.get(name, name)
    if name in AMINO_ACIDS:
        return FIRST_RESIDUE_TYPE + AMINO_ACIDS.index(name)
    if name == "ACE":
        return FIRST_RESIDUE_TYPE + len(AMINO_ACIDS)
    if name in ("NME", "NMA", "NH2"):
        return FIRST_RESIDUE_TYPE + len(AMINO_ACIDS) + 1
    return FIRST_RESIDUE_TYPE + len(AMINO_ACIDS) + 2


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
        where = f"map '{self.name}'"
        if len(self.atoms) != len(self.weights):
            raise ConfigError(f"{where}: {len(self.atoms)} atom lists but {len(self.weights)} weight lists")
        for i, (a, w) in enumerate(zip(self.atoms, self.weights, strict=True)):
            if len(a) != len(w) or not a:
                raise ConfigError(f"{where}: bead {i} has {len(a)} atoms but {len(w)} weights")
            bad = [j for j in a if not 0 <= j < self.n_atoms]
            if bad:
                raise ConfigError(
                    f"{where}: bead {i} uses atom {bad[0]}, out of range [0, {self.n_atoms}) for this topology; atom indices count from 0"
                )
            if len(set(a)) != len(a):
                raise ConfigError(f"{where}: bead {i} lists an atom twice ({a})")
            if min(w) < 0:
                raise ConfigError(f"{where}: bead {i} has a negative weight ({w}); weights must be >= 0")
            if abs(sum(w) - 1.0) > 1e-6:
                raise ConfigError(f"{where}: weights of bead {i} sum to {sum(w):.8g}, not 1; normalise them")
        n = len(self.atoms)
        for b in self.bonds:
            if len(b) != 2 or not all(0 <= j < n for j in b) or b[0] == b[1]:
                raise ConfigError(f"{where}: bond {b} is not a pair of distinct bead indices in [0, {n})")
        if np.linalg.matrix_rank(self.matrix()) < n:
            raise ConfigError(f"{where}: the beads are linearly dependent (two beads with the same atoms and weights?)")

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

    def used_atoms(self) -> set[int]:
        """Atoms on which ``M`` (and so ``B``) is non-zero: these must move freely (no constraints)."""
        return {j for a, w in zip(self.atoms, self.weights, strict=True) for j, x in zip(a, w, strict=True) if x != 0}

    def to_json(self) -> dict[str, list[list]]:
        return {"atoms": [list(map(int, a)) for a in self.atoms], "weights": [list(map(float, w)) for w in self.weights]}


def _backbone_names(residue: str) -> tuple[str, ...]:
    if residue == "ACE":
        return ("C",)
    if residue in ("NME", "NMA", "NH2"):
        return ("N",)
    return ("N", "CA", "C")


def _ca_names(residue: str) -> tuple[str, ...]:
    return () if residue in CAPS else ("CA",)


def _protein_residues(topology) -> list:
    """Amino acids (residues with atoms N and CA) and caps, in chain order; water and ions are skipped."""
    return [r for r in topology.residues() if r.name in CAPS or {"N", "CA"} <= {a.name for a in r.atoms()}]


def _named_atom(residue, name: str, where: str) -> int:
    by_name = {a.name: a.index for a in residue.atoms()}
    if name not in by_name:
        raise ConfigError(f"{where}: residue {residue.name}{residue.id} has no atom named {name!r} (it has {', '.join(by_name)})")
    return by_name[name]


def _chain_bonds(chains: list[int]) -> list[list[int]]:
    """Bonds between consecutive beads of the same chain."""
    return [[i, i + 1] for i in range(len(chains) - 1) if chains[i] == chains[i + 1]]


def _slice(topology, name: str, names_of_residue) -> CGMap:
    beads = []
    for residue in _protein_residues(topology):
        for atom in names_of_residue(residue.name):
            beads.append((_named_atom(residue, atom, f"map '{name}'"), atom, residue.name, residue.chain.index))
    if name == "backbone":
        types = [BEAD_TYPE_OF_NAME[a] for _, a, _, _ in beads]
    elif name == "backbone-residue":
        types = [residue_type(r) if a == "CA" else BEAD_TYPE_OF_NAME[a] for _, a, r, _ in beads]
    else:
        types = [residue_type(r) for _, _, r, _ in beads]
    return _checked(
        CGMap(name, [[i] for i, _, _, _ in beads], [[1.0] for _ in beads], [a for _, a, _, _ in beads], types,
              _chain_bonds([c for _, _, _, c in beads]), topology.getNumAtoms()),
    )


def _residue_com(topology, masses: np.ndarray) -> CGMap:
    atoms, weights, names, types, chains = [], [], [], [], []
    for residue in _protein_residues(topology):
        idx = [a.index for a in residue.atoms()]
        m = masses[idx]
        atoms.append(idx)
        weights.append(list(m / m.sum()))
        names.append(residue.name)
        types.append(residue_type(residue.name))
        chains.append(residue.chain.index)
    return _checked(CGMap("residue-com", atoms, weights, names, types, _chain_bonds(chains), topology.getNumAtoms()))


def _checked(cg_map: CGMap) -> CGMap:
    if cg_map.n_beads < 2:
        raise ConfigError(f"mapping {cg_map.name!r} gives {cg_map.n_beads} bead(s) for this molecule; at least 2 are needed")
    return cg_map


MAPPINGS = {"ca": lambda top, masses: _slice(top, "ca", _ca_names), "backbone": lambda top, masses: _slice(top, "backbone", _backbone_names),
            "residue-com": _residue_com, "backbone-residue": lambda top, masses: _slice(top, "backbone-residue", _backbone_names)}
"""Built-in maps by name; any other value of ``mapping`` is a path to a map file."""
ALIASES = {"ca-slice": "ca"}
"""Older names that keep working."""


def make_map(topology, masses: np.ndarray, mapping: str) -> CGMap:
    """The map called ``mapping`` (a built-in name or a map file) for ``topology``."""
    name = ALIASES.get(mapping, mapping)
    if name in MAPPINGS:
        return MAPPINGS[name](topology, np.asarray(masses, dtype=np.float64))
    path = Path(mapping)
    if not path.suffix or not path.is_file():
        raise ConfigError(
            f"unknown mapping {mapping!r}; use one of {', '.join(MAPPINGS)} or the path of an existing map file (.yaml/.json)"
        )
    return read_map_file(path, topology, masses)


def _atom_index(spec, residues: dict[str, object], n_atoms: int, where: str) -> int:
    if isinstance(spec, int) and not isinstance(spec, bool):
        if not 0 <= spec < n_atoms:
            raise ConfigError(f"{where}: atom {spec} is out of range [0, {n_atoms}) for the topology; atom indices count from 0")
        return spec
    if isinstance(spec, str) and ":" in spec:
        res, atom = spec.split(":", 1)
        if res not in residues:
            raise ConfigError(f"{where}: no residue {res!r} in the topology (residue ids: {', '.join(list(residues)[:40])})")
        return _named_atom(residues[res], atom, where)
    raise ConfigError(f"{where}: atom {spec!r} must be a 0-based index or 'RESID:NAME' such as '2:CA'")


def read_map_file(path: str | os.PathLike, topology, masses: np.ndarray) -> CGMap:
    """Read a map file (YAML or JSON)::

        beads:
          - name: CA1            # optional, default B<i>
            type: 4              # optional embedding index, default 1
            atoms: [4, "2:CB"]   # 0-based atom indices or 'RESID:ATOMNAME'
            weights: [0.5, 0.5]  # optional; default: the atoms' masses, normalised
        bonds: [[0, 1]]          # optional CG bonds, default none

    Every error names the file, the bead and what to fix.
    """
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"map file {path}: not valid YAML/JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("beads"), list) or not raw["beads"]:
        raise ConfigError(f"map file {path}: needs a non-empty list 'beads', each with 'atoms' (and optional 'weights', 'name', 'type')")
    residues = {str(r.id): r for r in topology.residues()}
    n_atoms = topology.getNumAtoms()
    masses = np.asarray(masses, dtype=np.float64)
    atoms, weights, names, types = [], [], [], []
    for i, bead in enumerate(raw["beads"]):
        where = f"map file {path}: bead {i}"
        if not isinstance(bead, dict) or not isinstance(bead.get("atoms"), list) or not bead["atoms"]:
            raise ConfigError(f"{where}: needs a non-empty list 'atoms'")
        idx = [_atom_index(a, residues, n_atoms, where) for a in bead["atoms"]]
        w = bead.get("weights")
        if w is None:
            w = list(masses[idx] / masses[idx].sum())
        elif not isinstance(w, list) or len(w) != len(idx) or not all(isinstance(x, (int, float)) for x in w):
            raise ConfigError(f"{where}: 'weights' must be a list of {len(idx)} numbers, one per atom")
        elif abs(sum(w) - 1.0) > 1e-6:
            raise ConfigError(f"{where}: weights sum to {sum(w):.8g}, not 1; normalise them (or leave 'weights' out for mass weights)")
        atoms.append(idx)
        weights.append([float(x) for x in w])
        names.append(str(bead.get("name", f"B{i}")))
        types.append(int(bead.get("type", 1)))
    bonds = raw.get("bonds", [])
    if not isinstance(bonds, list) or not all(isinstance(b, list) for b in bonds):
        raise ConfigError(f"map file {path}: 'bonds' must be a list of [i, j] bead pairs")
    try:
        return _checked(CGMap(str(path), atoms, weights, names, types, bonds, n_atoms))
    except ConfigError as exc:
        raise ConfigError(f"map file {path}: {str(exc).split(': ', 1)[-1]}") from None
