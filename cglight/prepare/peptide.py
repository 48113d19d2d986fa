"""Build capped peptides (ACE-X-NME) in OpenMM from ideal internal coordinates.

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


def build_alanine_dipeptide(forcefield):
    """Return ``(topology, positions)`` of ACE-ALA-NME with hydrogens, positions in nm (OpenMM Quantity).

    Deterministic: OpenMM's ``Modeller.addHydrogens`` starts some hydrogens at positions from
    Python's ``random`` and relaxes them on the default platform, so the generator is seeded
    (and restored afterwards) and the relaxation runs on the Reference platform.
    """
    import openmm as mm
    from openmm import app

    pdb = app.PDBFile(io.StringIO(_pdb_text(alanine_dipeptide_heavy_atoms())))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    state = random.getstate()
    try:
        random.seed(20261129)
        modeller.addHydrogens(forcefield, platform=mm.Platform.getPlatformByName("Reference"))
    finally:
        random.setstate(state)
    return modeller.topology, modeller.positions
