"""CG trajectory files that mdtraj, VMD and PyMOL read: a topology PDB plus one DCD per replica.

DCDs are appended chunk by chunk (OpenMM's DCD writer, Å on disk). A restart trims a DCD that
holds frames written after the last restart state (a run killed between the two writes), so
that the trajectory stays continuous.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from cglight.atomic import atomic_path

ELEMENTS = ("C", "N", "O", "S", "H", "P")


def cg_topology(bead_names: list[str], bonds: list[list[int]]):
    """An OpenMM topology of the beads: one chain, one residue per bead, the CG bonds."""
    from openmm import app

    top = app.Topology()
    chain = top.addChain()
    atoms = []
    for i, name in enumerate(bead_names):
        residue = top.addResidue("CG", chain)
        symbol = name[:1].upper()
        element = app.Element.getBySymbol(symbol if symbol in ELEMENTS else "C")
        atoms.append(top.addAtom(name[:4], element, residue))
    for i, j in bonds:
        top.addBond(atoms[i], atoms[j])
    return top


def write_topology_pdb(path: str | os.PathLike, topology, pos: np.ndarray) -> None:
    """``pos [n, 3]`` in Å; written atomically."""
    from openmm import app, unit

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        app.PDBFile.writeFile(topology, (np.asarray(pos, dtype=np.float64) * 0.1) * unit.nanometer, f)


def _header_bytes(f) -> int:
    f.seek(92)
    comments = struct.unpack("<i", f.read(4))[0]
    return 104 + comments + 8


def dcd_header_frames(path: str | os.PathLike) -> int | None:
    """The frame count a little-endian CHARMM/OpenMM DCD header states; None for another layout or 0."""
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or struct.unpack("<i", head[:4])[0] != 84 or head[4:8] != b"CORD":
        return None
    return struct.unpack("<i", head[8:])[0] or None


def dcd_frames(path: str | os.PathLike) -> int:
    """Number of frames a DCD written by OpenMM says it holds (0 if missing)."""
    return (dcd_header_frames(path) or 0) if Path(path).is_file() else 0


def trim_dcd(path: str | os.PathLike, frames: int, n_atoms: int) -> None:
    """Keep the first ``frames`` frames of an OpenMM DCD without a box (in place)."""
    with open(path, "r+b") as f:
        header = _header_bytes(f)
        f.seek(8)
        f.write(struct.pack("<i", frames))
        f.truncate(header + frames * 3 * (4 * n_atoms + 8))


def append_frames(path: str | os.PathLike, topology, pos: np.ndarray, dt_ps: float, interval: int) -> None:
    """Append ``pos [F, n, 3]`` (Å) to the DCD at ``path`` (created if missing)."""
    from openmm import app, unit

    path = Path(path)
    exists = path.is_file()
    with open(path, "r+b" if exists else "wb") as f:
        dcd = app.DCDFile(f, topology, dt_ps * unit.picosecond, interval=interval, append=exists)
        for frame in np.asarray(pos, dtype=np.float64):
            dcd.writeModel(frame * 0.1 * unit.nanometer)
