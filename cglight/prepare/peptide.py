"""Build peptides in OpenMM from ideal internal coordinates: uncapped, or capped ACE-…-NME.

No structure file is downloaded or shipped: heavy atoms are placed from textbook bond
lengths, angles and backbone dihedrals (natural extension of reference frame), then
OpenMM's ``Modeller`` adds hydrogens from the force field's own templates.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np

# Bond lengths (Å), angles (deg) of an ideal peptide backbone (Engh & Huber values).
_N_CA, _CA_C, _C_N, _C_O, _CA_CB, _C_CH3, _N_CH3 = 1.458, 1.525, 1.329, 1.231, 1.530, 1.520, 1.458
_A_N_CA_C, _A_CA_C_N, _A_C_N_CA, _A_CA_C_O, _A_N_CA_CB = 111.2, 116.2, 121.7, 120.5, 110.5


def _place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float, torsion: float) -> np.ndarray:
    """Position of atom d bonded to c, with angle b-c-d and dihedral a-b-c-d (degrees)."""
    angle, torsion = np.radians(angle), np.radians(torsion)
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    d2 = np.array([-bond * np.cos(angle), bond * np.sin(angle) * np.cos(torsion), bond * np.sin(angle) * np.sin(torsion)])
    return c + d2[0] * bc + d2[1] * m + d2[2] * n


@dataclass(frozen=True)
class _Atom:
    name: str
    residue: str
    resid: int
    element: str
    xyz: np.ndarray


def alanine_dipeptide_heavy_atoms(phi: float = -70.0, psi: float = 140.0) -> list[_Atom]:
    """Heavy atoms of ACE-ALA-NME in a polyproline-like conformation."""
    ch3 = np.array([0.0, 0.0, 0.0])
    c0 = np.array([_C_CH3, 0.0, 0.0])
    o0 = _place(np.array([0.0, 1.0, 0.0]), ch3, c0, _C_O, 121.0, 0.0)
    n1 = _place(o0, ch3, c0, _C_N, _A_CA_C_N, 180.0)
    ca1 = _place(ch3, c0, n1, _N_CA, _A_C_N_CA, 180.0)
    c1 = _place(c0, n1, ca1, _CA_C, _A_N_CA_C, phi)
    cb1 = _place(c1, n1, ca1, _CA_CB, _A_N_CA_CB, -122.5)
    n2 = _place(n1, ca1, c1, _C_N, _A_CA_C_N, psi)
    o1 = _place(n1, ca1, c1, _C_O, _A_CA_C_O, psi + 180.0)
    ch3_2 = _place(ca1, c1, n2, _N_CH3, _A_C_N_CA, 180.0)
    return [
        _Atom("CH3", "ACE", 1, "C", ch3), _Atom("C", "ACE", 1, "C", c0), _Atom("O", "ACE", 1, "O", o0),
        _Atom("N", "ALA", 2, "N", n1), _Atom("CA", "ALA", 2, "C", ca1), _Atom("C", "ALA", 2, "C", c1),
        _Atom("O", "ALA", 2, "O", o1), _Atom("CB", "ALA", 2, "C", cb1),
        _Atom("N", "NME", 3, "N", n2), _Atom("C", "NME", 3, "C", ch3_2),
    ]


def _pdb_text(atoms: list[_Atom]) -> str:
    lines = []
    for i, a in enumerate(atoms, start=1):
        x, y, z = a.xyz
        lines.append(
            f"ATOM  {i:5d} {a.name:<4s} {a.residue:>3s} A{a.resid:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          {a.element:>2s}"
        )
    lines.append("END")
    return "\n".join(lines) + "\n"


def add_hydrogens(modeller, forcefield) -> None:
    """``Modeller.addHydrogens``, made deterministic.

    OpenMM starts some hydrogens at positions from Python's ``random`` and relaxes them on the
    default platform, so the generator is seeded (and restored afterwards) and the relaxation runs
    on the Reference platform.
    """
    import openmm as mm

    state = random.getstate()
    try:
        random.seed(20261129)
        modeller.addHydrogens(forcefield, platform=mm.Platform.getPlatformByName("Reference"))
    finally:
        random.setstate(state)


def _with_hydrogens(atoms: list[_Atom], forcefield):
    from openmm import app

    pdb = app.PDBFile(io.StringIO(_pdb_text(atoms)))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    add_hydrogens(modeller, forcefield)
    return modeller.topology, modeller.positions


def build_alanine_dipeptide(forcefield):
    """Return ``(topology, positions)`` of ACE-ALA-NME with hydrogens, positions in nm (OpenMM Quantity)."""
    return _with_hydrogens(alanine_dipeptide_heavy_atoms(), forcefield)


# Side chains as internal coordinates: (atom, a, b, c, bond Å, angle b-c-atom °, torsion a-b-c-atom °),
# textbook geometry with extended rotamers; the force field's minimisation polishes it.
_SIDE_CHAINS: dict[str, list[tuple[str, str, str, str, float, float, float]]] = {
    "GLY": [],
    "ALA": [],
    "SER": [("OG", "N", "CA", "CB", 1.417, 110.8, -60.0)],
    "CYS": [("SG", "N", "CA", "CB", 1.808, 113.8, -60.0)],
    "THR": [("OG1", "N", "CA", "CB", 1.43, 109.2, -60.0), ("CG2", "N", "CA", "CB", 1.53, 111.1, 180.0)],
    "VAL": [("CG1", "N", "CA", "CB", 1.53, 110.5, 180.0), ("CG2", "N", "CA", "CB", 1.53, 110.5, -60.0)],
    "ILE": [("CG1", "N", "CA", "CB", 1.53, 110.4, -60.0), ("CG2", "N", "CA", "CB", 1.53, 110.5, 180.0),
            ("CD1", "CA", "CB", "CG1", 1.52, 114.0, 180.0)],
    "LEU": [("CG", "N", "CA", "CB", 1.53, 116.0, -60.0), ("CD1", "CA", "CB", "CG", 1.52, 110.5, 180.0),
            ("CD2", "CA", "CB", "CG", 1.52, 110.5, 60.0)],
    "MET": [("CG", "N", "CA", "CB", 1.52, 114.0, -60.0), ("SD", "CA", "CB", "CG", 1.81, 112.7, 180.0),
            ("CE", "CB", "CG", "SD", 1.79, 100.8, 180.0)],
    "PRO": [("CG", "N", "CA", "CB", 1.50, 104.5, 30.0), ("CD", "CA", "CB", "CG", 1.51, 105.5, -35.0)],
    "ASP": [("CG", "N", "CA", "CB", 1.52, 113.0, -60.0), ("OD1", "CA", "CB", "CG", 1.25, 118.4, 90.0),
            ("OD2", "CA", "CB", "CG", 1.25, 118.4, -90.0)],
    "ASN": [("CG", "N", "CA", "CB", 1.52, 113.0, -60.0), ("OD1", "CA", "CB", "CG", 1.23, 120.8, 90.0),
            ("ND2", "CA", "CB", "CG", 1.33, 116.4, -90.0)],
    "GLU": [("CG", "N", "CA", "CB", 1.52, 114.0, -60.0), ("CD", "CA", "CB", "CG", 1.52, 113.0, 180.0),
            ("OE1", "CB", "CG", "CD", 1.25, 118.4, 90.0), ("OE2", "CB", "CG", "CD", 1.25, 118.4, -90.0)],
    "GLN": [("CG", "N", "CA", "CB", 1.52, 114.0, -60.0), ("CD", "CA", "CB", "CG", 1.52, 113.0, 180.0),
            ("OE1", "CB", "CG", "CD", 1.23, 120.8, 90.0), ("NE2", "CB", "CG", "CD", 1.33, 116.4, -90.0)],
    "LYS": [("CG", "N", "CA", "CB", 1.52, 114.0, -60.0), ("CD", "CA", "CB", "CG", 1.52, 111.0, 180.0),
            ("CE", "CB", "CG", "CD", 1.52, 111.0, 180.0), ("NZ", "CG", "CD", "CE", 1.49, 111.7, 180.0)],
    "ARG": [("CG", "N", "CA", "CB", 1.52, 114.0, -60.0), ("CD", "CA", "CB", "CG", 1.52, 111.0, 180.0),
            ("NE", "CB", "CG", "CD", 1.46, 112.0, 180.0), ("CZ", "CG", "CD", "NE", 1.33, 124.5, 180.0),
            ("NH1", "CD", "NE", "CZ", 1.33, 120.0, 0.0), ("NH2", "CD", "NE", "CZ", 1.33, 120.0, 180.0)],
    "PHE": [("CG", "N", "CA", "CB", 1.50, 113.8, -60.0), ("CD1", "CA", "CB", "CG", 1.39, 120.7, 90.0),
            ("CD2", "CA", "CB", "CG", 1.39, 120.7, -90.0), ("CE1", "CB", "CG", "CD1", 1.39, 120.0, 180.0),
            ("CE2", "CB", "CG", "CD2", 1.39, 120.0, 180.0), ("CZ", "CG", "CD1", "CE1", 1.39, 120.0, 0.0)],
    "TYR": [("CG", "N", "CA", "CB", 1.51, 113.8, -60.0), ("CD1", "CA", "CB", "CG", 1.39, 120.8, 90.0),
            ("CD2", "CA", "CB", "CG", 1.39, 120.8, -90.0), ("CE1", "CB", "CG", "CD1", 1.39, 121.2, 180.0),
            ("CE2", "CB", "CG", "CD2", 1.39, 121.2, 180.0), ("CZ", "CG", "CD1", "CE1", 1.38, 119.6, 0.0),
            ("OH", "CD1", "CE1", "CZ", 1.38, 119.9, 180.0)],
    "TRP": [("CG", "N", "CA", "CB", 1.50, 114.0, -60.0), ("CD1", "CA", "CB", "CG", 1.37, 127.0, 90.0),
            ("CD2", "CA", "CB", "CG", 1.43, 126.6, -90.0), ("NE1", "CB", "CG", "CD1", 1.38, 110.2, 180.0),
            ("CE2", "CB", "CG", "CD2", 1.41, 107.2, 180.0), ("CE3", "CB", "CG", "CD2", 1.40, 133.9, 0.0),
            ("CZ2", "CG", "CD2", "CE2", 1.40, 122.3, 180.0), ("CZ3", "CG", "CD2", "CE3", 1.39, 118.8, 180.0),
            ("CH2", "CD2", "CE2", "CZ2", 1.37, 117.5, 0.0)],
}
ONE_LETTER = {"A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU", "G": "GLY",
              "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE", "P": "PRO", "S": "SER", "T": "THR",
              "W": "TRP", "Y": "TYR", "V": "VAL"}
_ELEMENT = {"O": "O", "N": "N", "S": "S", "C": "C"}


def residue_names(sequence: str) -> list[str]:
    """Three-letter names of a one-letter ``sequence``; ConfigError naming the position of an unknown letter."""
    from cglight.errors import ConfigError

    if not sequence:
        raise ConfigError("sequence is empty; give one-letter codes, e.g. AY")
    residues = []
    for i, letter in enumerate(sequence.upper()):
        name = ONE_LETTER.get(letter)
        if name is None or name not in _SIDE_CHAINS:
            raise ConfigError(f"sequence {sequence!r}: position {i + 1} {letter!r} is not one of {''.join(ONE_LETTER)}")
        residues.append(name)
    return residues


def _acetyl_cap() -> dict[str, np.ndarray]:
    """ACE's CH3, C and O, placed as in :func:`alanine_dipeptide_heavy_atoms`."""
    ch3 = np.array([0.0, 0.0, 0.0])
    c0 = np.array([_C_CH3, 0.0, 0.0])
    return {"CH3": ch3, "C": c0, "O": _place(np.array([0.0, 1.0, 0.0]), ch3, c0, _C_O, 121.0, 0.0)}


def peptide_heavy_atoms(sequence: str, phi: float = -120.0, psi: float = 130.0, caps: bool = False) -> list[_Atom]:
    """Heavy atoms of a peptide as an extended chain: uncapped (charged termini, the C terminus gets
    its second oxygen ``OXT``) or, with ``caps``, ACE-…-NME (acetyl and N-methyl amide caps).

    Backbone from ideal bond lengths and angles, φ/ψ of a β strand (φ = −65° at prolines),
    ω = 180°; side chains from the internal coordinates in ``_SIDE_CHAINS``.
    """
    residues = residue_names(sequence)
    first = 2 if caps else 1
    atoms: list[_Atom] = []
    if caps:
        ace = _acetyl_cap()
        atoms += [_Atom(name, "ACE", 1, name[0], xyz) for name, xyz in ace.items()]
        n = _place(ace["O"], ace["CH3"], ace["C"], _C_N, _A_CA_C_N, 180.0)
        ca = _place(ace["CH3"], ace["C"], n, _N_CA, _A_C_N_CA, 180.0)
        c = _place(ace["C"], n, ca, _CA_C, _A_N_CA_C, -65.0 if residues[0] == "PRO" else phi)
    else:
        n = np.array([0.0, 0.0, 0.0])
        ca = np.array([_N_CA, 0.0, 0.0])
        c = _place(np.array([0.0, 1.0, 0.0]), n, ca, _CA_C, _A_N_CA_C, 0.0)
    for i, name in enumerate(residues):
        if i > 0:
            n_new = _place(prev["N"], prev["CA"], prev["C"], _C_N, _A_CA_C_N, psi)
            ca = _place(prev["CA"], prev["C"], n_new, _N_CA, _A_C_N_CA, 180.0)
            c = _place(prev["C"], n_new, ca, _CA_C, _A_N_CA_C, -65.0 if name == "PRO" else phi)
            n = n_new
        xyz = {"N": n, "CA": ca, "C": c}
        xyz["O"] = _place(n, ca, c, _C_O, _A_CA_C_O, psi + 180.0)
        if i == len(residues) - 1 and not caps:
            xyz["OXT"] = _place(n, ca, c, 1.25, 117.0, psi)
        if name != "GLY":
            xyz["CB"] = _place(c, n, ca, _CA_CB, _A_N_CA_CB, -122.5)
        for atom, a, b, cc, bond, angle, torsion in _SIDE_CHAINS[name]:
            xyz[atom] = _place(xyz[a], xyz[b], xyz[cc], bond, angle, torsion)
        for atom, pos in xyz.items():
            atoms.append(_Atom(atom, name, first + i, _ELEMENT[atom[0]], pos))
        prev = xyz
    if caps:
        n_cap = _place(prev["N"], prev["CA"], prev["C"], _C_N, _A_CA_C_N, psi)
        c_cap = _place(prev["CA"], prev["C"], n_cap, _N_CH3, _A_C_N_CA, 180.0)
        resid = first + len(residues)
        atoms += [_Atom("N", "NME", resid, "N", n_cap), _Atom("C", "NME", resid, "C", c_cap)]
    return atoms


def build_peptide(sequence: str, forcefield, caps: bool = False):
    """Return ``(topology, positions)`` of a peptide with hydrogens (extended chain): uncapped, or ACE-…-NME
    with ``caps``."""
    return _with_hydrogens(peptide_heavy_atoms(sequence, caps=caps), forcefield)


def build_villin(forcefield):
    """Villin headpiece HP35 from the structure OpenMM ships (``app/data/test.pdb``), without water and ions."""
    import os

    from openmm import app

    pdb = app.PDBFile(os.path.join(os.path.dirname(app.__file__), "data", "test.pdb"))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.delete([r for r in modeller.topology.residues() if r.name in ("HOH", "Cl", "CL", "Na", "NA")])
    return modeller.topology, modeller.positions
