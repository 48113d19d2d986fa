"""Capped peptides from a sequence (``molecule: capped:SEQ``) and the residue-typed backbone map."""

from __future__ import annotations

import numpy as np
import pytest
from openmm import app

from cglight.errors import ConfigError
from cglight.prepare.mapping import make_map, residue_type
from cglight.prepare.peptide import (ONE_LETTER, alanine_dipeptide_heavy_atoms, build_alanine_dipeptide, build_peptide,
                                     peptide_heavy_atoms)
from cglight.prepare.systems import build_system

FF = ("amber99sbildn.xml", "amber99_obc.xml")
# Atoms of the free amino acid (molecular formula, textbook); in a chain each residue loses one water (3 atoms).
FREE_AMINO_ACID_ATOMS = {"A": 13, "G": 10, "S": 14, "T": 17, "V": 19, "L": 22, "I": 22, "F": 23, "Y": 24, "W": 27,
                         "D": 16, "E": 19, "N": 17, "Q": 20, "K": 24, "M": 20, "P": 17, "C": 14, "R": 26}
PH7_CHARGE = {"D": -1, "E": -1, "K": +1, "R": +1}  # side chains at pH 7 (Modeller's default): one proton off or on
ACETYL, N_METHYL_AMIDE = 6, 6  # CH3-CO- and -NH-CH3


@pytest.fixture(scope="module")
def forcefield():
    return app.ForceField(*FF)


def _minimised_energy(forcefield, topology, positions) -> float:
    import openmm as mm
    from openmm import unit

    system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff)
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    mm.LocalEnergyMinimizer.minimize(context, 1e-3, 0)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def _topology(topology):
    atoms = [(a.name, a.residue.name, a.element.symbol) for a in topology.atoms()]
    bonds = sorted(tuple(sorted((b[0].index, b[1].index))) for b in topology.bonds())
    return atoms, bonds, [r.name for r in topology.residues()]


def test_capped_alanine_is_the_alanine_dipeptide(forcefield):
    ref_top, ref_pos = build_alanine_dipeptide(forcefield)
    top, pos = build_peptide("A", forcefield, caps=True)
    assert _topology(top) == _topology(ref_top)
    # default backbone angles (a beta strand, not the builder's PPII): a nearby minimum, within 1 kJ/mol
    assert abs(_minimised_energy(forcefield, top, pos) - _minimised_energy(forcefield, ref_top, ref_pos)) < 1.0
    # at the dipeptide builder's own phi/psi the heavy atoms are its heavy atoms
    same = peptide_heavy_atoms("A", phi=-70.0, psi=140.0, caps=True)
    ref = alanine_dipeptide_heavy_atoms()
    assert [(a.name, a.residue, a.resid) for a in same] == [(a.name, a.residue, a.resid) for a in ref]
    np.testing.assert_allclose([a.xyz for a in same], [a.xyz for a in ref], atol=1e-9)


@pytest.mark.parametrize("sequence", ["AY", "GSV", "PKD", "FLTN", "WEQ", "MIC", "RK"])
def test_capped_peptide_has_the_atoms_of_its_residues(forcefield, sequence):
    top, pos = build_peptide(sequence, forcefield, caps=True)
    expected = ACETYL + sum(FREE_AMINO_ACID_ATOMS[c] - 3 + PH7_CHARGE.get(c, 0) for c in sequence) + N_METHYL_AMIDE
    assert top.getNumAtoms() == expected == len(pos)
    assert [r.name for r in top.residues()] == ["ACE", *(ONE_LETTER[c] for c in sequence), "NME"]
    assert np.isfinite(_minimised_energy(forcefield, top, pos))  # the force field accepts every residue template


def test_molecule_name_builds_the_capped_or_uncapped_peptide():
    capped = build_system("capped:GSV", "vacuum")
    uncapped = build_system("peptide:GSV", "vacuum")
    assert [r.name for r in capped.topology.residues()] == ["ACE", "GLY", "SER", "VAL", "NME"]
    assert [r.name for r in uncapped.topology.residues()] == ["GLY", "SER", "VAL"]
    assert capped.description["molecule"] == "capped:GSV"
    with pytest.raises(ConfigError, match=r"position 2 'X'"):
        build_system("capped:AX", "vacuum")
    with pytest.raises(ConfigError, match=r"capped:SEQ"):
        build_system("capped:", "vacuum")


def test_backbone_residue_map_types_each_ca_by_its_residue(forcefield):
    top, _ = build_peptide("GSV", forcefield, caps=True)
    masses = np.array([a.element.mass._value for a in top.atoms()])
    typed, plain = make_map(top, masses, "backbone-residue"), make_map(top, masses, "backbone")
    assert typed.bead_names == plain.bead_names == ["C", "N", "CA", "C", "N", "CA", "C", "N", "CA", "C", "N"]
    assert typed.atoms == plain.atoms and typed.bonds == plain.bonds
    assert typed.bead_types == [3, 1, residue_type("GLY"), 3, 1, residue_type("SER"), 3, 1, residue_type("VAL"), 3, 1]
    assert len(set(typed.bead_types)) == 5 and max(typed.bead_types) < 32
