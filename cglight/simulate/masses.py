"""Bead masses from the CG map and the all-atom reference topology.

A bead's mass is the total mass of the atoms the map assigns to it: for a slice map the mass
of the kept atom, for a centre-of-mass map the residue's mass. (The map's weights define the
bead position; the mass is what the bead carries, so the weights do not enter.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cglight.data.manifest import SystemInfo
from cglight.errors import DatasetError


def bead_masses(root: str | Path, name: str, system: SystemInfo) -> np.ndarray:
    """Masses in amu of every bead of ``system`` in the dataset at ``root``."""
    root = Path(root)
    if system.map is None or not system.reference or "topology" not in system.reference:
        raise DatasetError(
            f"{root}: system '{name}' records no map or reference topology, so bead masses are unknown; "
            "give them with the simulate key 'masses'"
        )
    path = root / system.reference["topology"]
    if not path.is_file():
        raise DatasetError(f"{path}: reference topology of system '{name}' does not exist (needed for bead masses)")
    from openmm import app, unit

    atoms = list(app.PDBFile(str(path)).topology.atoms())
    masses = []
    for bead, members in enumerate(system.map["atoms"]):
        bad = [a for a in members if not 0 <= a < len(atoms)]
        if bad:
            raise DatasetError(f"{path}: bead {bead} of system '{name}' maps atoms {bad} outside the topology's {len(atoms)} atoms")
        masses.append(sum(atoms[a].element.mass.value_in_unit(unit.dalton) for a in members))
    return np.asarray(masses, dtype=np.float64)
