"""The all-atom system of a prepare run: a built-in molecule or the user's PDB and force field.

Every system is built with flexible bonds (``constraints: none``) unless asked otherwise, and a
system whose constraints touch an atom the CG map uses is refused: the mean-force and Hessian
formulas assume those atoms move freely.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cglight.errors import ConfigError
from cglight.prepare.mapping import CGMap
from cglight.prepare import peptide
from cglight.prepare.peptide import build_alanine_dipeptide, build_peptide, build_villin

MOLECULES = {
    "alanine-dipeptide": build_alanine_dipeptide,
    "tetra-alanine": lambda ff: build_peptide("AAAA", ff),  # uncapped, charged termini
    "chignolin": lambda ff: build_peptide("YYDPETGTWY", ff),  # CLN025
    "trpcage": lambda ff: build_peptide("NLYIQWLKDGGPSSGRPPPS", ff),  # Trp-cage TC5b
    "villin": build_villin,  # HP35 from OpenMM's test.pdb, water and ions removed
}
SEQUENCE_PREFIXES = {"capped": True, "peptide": False}
"""``molecule: capped:AY`` builds ACE-ALA-TYR-NME, ``molecule: peptide:AY`` the uncapped ALA-TYR (charged termini)."""


def molecule_builder(molecule: str):
    """The builder ``forcefield -> (topology, positions)`` of a built-in molecule or a ``capped:SEQ``/``peptide:SEQ`` name."""
    prefix, _, sequence = molecule.partition(":")
    if sequence and prefix in SEQUENCE_PREFIXES:
        peptide.residue_names(sequence)  # an unknown letter is refused here, naming its position
        return lambda ff: build_peptide(sequence, ff, caps=SEQUENCE_PREFIXES[prefix])
    if molecule not in MOLECULES:
        raise ConfigError(f"unknown molecule {molecule!r}; available: {', '.join(MOLECULES)}, capped:SEQ (ACE-SEQ-NME) or "
                          "peptide:SEQ (uncapped) with SEQ in one-letter codes (or give 'pdb' and 'forcefield')")
    return MOLECULES[molecule]
SOLVENTS = {
    # name: force-field files (OpenMM ships them)
    "vacuum": ("amber99sbildn.xml",),
    "implicit-obc": ("amber99sbildn.xml", "amber99_obc.xml"),
}
CONSTRAINTS = ("none", "hbonds", "allbonds", "hangles")


@dataclass
class AllAtomSystem:
    topology: object  # openmm.app.Topology
    positions: np.ndarray  # [N, 3] nm
    system: object  # openmm.System
    description: dict[str, str]

    @property
    def masses(self) -> np.ndarray:
        from openmm import unit

        return np.array([self.system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(self.system.getNumParticles())])


def _forcefield(files: list[str] | tuple[str, ...], where: str):
    from openmm import app

    for name in files:
        if not Path(name).is_file() and not _bundled(name):
            raise ConfigError(
                f"{where}: force-field file {name!r} does not exist (neither as a path nor among OpenMM's bundled files, "
                "e.g. amber14-all.xml, implicit/obc2.xml); fix the path in 'forcefield'"
            )
    try:
        return app.ForceField(*files)
    except Exception as exc:  # OpenMM raises plain exceptions for malformed XML
        raise ConfigError(f"{where}: cannot read force field {list(files)}: {exc}") from None


def _bundled(name: str) -> bool:
    from openmm import app

    return (Path(app.__file__).parent / "data" / name).is_file()


def build_system(molecule: str, solvent: str, pdb: str | None = None, forcefield: list[str] | None = None,
                 constraints: str = "none", add_hydrogens: bool = False) -> AllAtomSystem:
    """The all-atom system: a built-in ``molecule`` in ``solvent``, or ``pdb`` with ``forcefield`` files."""
    from openmm import app, unit

    if constraints not in CONSTRAINTS:
        raise ConfigError(f"unknown constraints {constraints!r}; available: {', '.join(CONSTRAINTS)}")
    if pdb is not None:
        if not forcefield:
            raise ConfigError(
                f"pdb {pdb}: give 'forcefield', the list of OpenMM force-field XML files for it (e.g. [amber14-all.xml, implicit/obc2.xml])"
            )
        if not Path(pdb).is_file():
            raise ConfigError(f"pdb file {pdb} does not exist; fix the path in 'pdb'")
        ff = _forcefield(forcefield, f"pdb {pdb}")
        try:
            structure = app.PDBxFile(str(pdb)) if str(pdb).endswith((".cif", ".pdbx")) else app.PDBFile(str(pdb))
        except Exception as exc:
            raise ConfigError(f"pdb file {pdb} cannot be read: {exc}") from None
        modeller = app.Modeller(structure.topology, structure.positions)
        if add_hydrogens:
            peptide.add_hydrogens(modeller, ff)  # (the argument of the same name is the flag)
        topology, positions = modeller.topology, modeller.positions
        description = {"pdb": str(Path(pdb).resolve()), "forcefield": ", ".join(forcefield)}
    else:
        build = molecule_builder(molecule)
        if solvent not in SOLVENTS:
            raise ConfigError(f"unknown solvent {solvent!r}; available: {', '.join(SOLVENTS)}")
        files = list(forcefield) if forcefield else list(SOLVENTS[solvent])
        ff = _forcefield(files, f"molecule {molecule}")
        topology, positions = build(ff)
        description = {"molecule": molecule, "solvent": solvent, "forcefield": ", ".join(files)}
    periodic = topology.getPeriodicBoxVectors() is not None
    kinds = {"none": None, "hbonds": app.HBonds, "allbonds": app.AllBonds, "hangles": app.HAngles}
    try:
        system = ff.createSystem(
            topology, nonbondedMethod=app.PME if periodic else app.NoCutoff,
            constraints=kinds[constraints], rigidWater=constraints != "none",
        )
    except Exception as exc:
        where = f"pdb {pdb}" if pdb else f"molecule {molecule}"
        hint = " (hydrogens missing? set add_hydrogens: true)" if pdb and not add_hydrogens else ""
        raise ConfigError(f"{where}: the force field cannot build a system: {exc}{hint}") from None
    description["constraints"] = constraints
    x = np.asarray(positions.value_in_unit(unit.nanometer) if hasattr(positions, "value_in_unit") else positions, dtype=np.float64)
    return AllAtomSystem(topology, x.reshape(-1, 3), system, description)


def check_constraints(system, cg_map: CGMap, where: str) -> None:
    """Refuse constraints that touch an atom the map uses."""
    used = cg_map.used_atoms()
    for i in range(system.getNumConstraints()):
        a, b, _ = system.getConstraintParameters(i)
        if a in used or b in used:
            raise ConfigError(
                f"{where}: {system.getNumConstraints()} constraints, and constraint {i} (atoms {a}-{b}) involves an atom that map "
                f"'{cg_map.name}' uses; mapped forces and Hessians need flexible bonds there: set constraints: none"
            )


def pdb_text(topology, positions_nm: np.ndarray) -> str:
    from openmm import app, unit

    f = io.StringIO()
    app.PDBFile.writeFile(topology, positions_nm * unit.nanometer, f)
    return f.getvalue()
